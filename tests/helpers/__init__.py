"""What the tests share, each helper written once; imported as `helpers.<module>`.

pyproject.toml's pytest `pythonpath` puts tests/ on sys.path, so this works for the whole
suite and for one directory run alone (`pytest tests/multihost`). The modules hold no
tests and no fixtures: fixtures that several directories use live in tests/conftest.py.
"""

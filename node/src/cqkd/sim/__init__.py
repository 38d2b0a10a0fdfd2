"""Everything that runs a network in one process: the local network on loopback, the
protocol harness on it, a misbehaving worker, the throwaway CA, `cqkd local --serve`, and the
report of `cqkd local`. Production modules never import this package (tests/unit/test_layers.py)."""

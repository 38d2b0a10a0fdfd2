"""Load a module of the checkout by path: scripts and plugins that are no installed package
(Ansible's filter plugins and modules, the dashboard generator, the scaling study)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load(path: Path, name: str) -> ModuleType:
    """The module at `path`, run once under `name`; ImportError when it cannot be loaded."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""The deployment scales, read from the node's own table (node/src/cqkd/dht/params.py).

Loaded by path rather than imported: the controller's Python need not have the node
package installed, only the checkout these playbooks belong to.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleFilterError

_PARAMS = Path(__file__).resolve().parents[2] / "node" / "src" / "cqkd" / "dht" / "params.py"
_MODULE = "_cqkd_scale_table"


def _params() -> ModuleType:
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    spec = importlib.util.spec_from_file_location(_MODULE, _PARAMS)
    if spec is None or spec.loader is None:
        raise AnsibleFilterError(f"cannot load the scale table from {_PARAMS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def cqkd_scale(scale: str, workers: Any = None) -> dict[str, Any]:
    """`'small' | cqkd_scale`, `'custom' | cqkd_scale(20)`: workers, bootstrap nodes,
    hosts group, alpha, k and timeouts of that scale."""
    try:
        profile: dict[str, Any] = _params().scale_profile(
            str(scale), None if workers is None else int(workers)
        )
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error
    return profile


def cqkd_scale_names(_: Any = None) -> list[str]:
    """The names `-e scale=` accepts."""
    return [name for name, _count, _bootstraps in _params().SCALES] + ["custom"]


def cqkd_scale_max_workers(_: Any = None) -> int:
    """The largest worker count `-e scale=custom -e workers=N` accepts."""
    return int(_params().MAX_CUSTOM_WORKERS)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "cqkd_scale": cqkd_scale,
            "cqkd_scale_names": cqkd_scale_names,
            "cqkd_scale_max_workers": cqkd_scale_max_workers,
        }

"""The package's layers, read from its import graph (docs/ARCHITECTURE.md says why).

The graph is parsed from the source with `ast`, not taken from `sys.modules` after an
import: every import statement counts, also one inside a function (a lazy import is still a
dependency, only a later one) and one under TYPE_CHECKING. Importing `cqkd.a.b` also runs
`cqkd/a/__init__.py`, so a package counts as imported with each of its modules.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "node" / "src" / "cqkd"
SIMULATION = "cqkd.sim"
# Entry points: they wire production and simulation together, so they may import both.
ENTRY_POINTS = frozenset({"cqkd.cli", "cqkd.__main__"})
# What runs a network in one process, by the name it is defined under.
SIMULATION_PARTS = frozenset(
    {"LocalNetwork", "attach", "run_sessions", "run_local", "serve_local", "create_local_pki",
     "RogueWorker", "late_join"}
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def with_packages(name: str) -> set[str]:
    """`name` and every package above it that is a module of ours."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & MODULES.keys()


@cache
def direct_imports(module: str) -> frozenset[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from cqkd.qkd import bb84` imports the module cqkd.qkd.bb84.
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            found |= with_packages(name)
    return frozenset(found - {module})


@cache
def reachable(module: str) -> frozenset[str]:
    """Every module of ours that importing `module` may import, directly or not."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for imported in direct_imports(todo.pop()):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return frozenset(seen - {module})


def in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


# Which layer may import which (docs/ARCHITECTURE.md shows this table); every layer may
# import the package itself (`cqkd.__version__`). A layer is a top-level module or package.
BASE = {"cqkd.logs", "cqkd.metrics"}
MAY_IMPORT: dict[str, set[str]] = {
    "cqkd": set(),
    "cqkd.logs": set(),
    "cqkd.metrics": set(),
    "cqkd.settings": set(),
    "cqkd.dht": BASE,
    "cqkd.httpd": BASE,
    "cqkd.lifecycle": BASE,
    "cqkd.ports": {"cqkd.settings"},
    "cqkd.qkd": BASE | {"cqkd.dht", "cqkd.settings"},
    "cqkd.api": BASE | {"cqkd.qkd", "cqkd.ports"},
    "cqkd.endpoint": BASE | {"cqkd.lifecycle", "cqkd.api", "cqkd.qkd", "cqkd.dht",
                             "cqkd.httpd", "cqkd.ports", "cqkd.settings"},
    "cqkd.sim": BASE | {"cqkd.lifecycle", "cqkd.endpoint", "cqkd.api", "cqkd.qkd", "cqkd.dht",
                        "cqkd.httpd", "cqkd.ports", "cqkd.settings"},
    "cqkd.cli": BASE | {"cqkd.lifecycle", "cqkd.sim", "cqkd.endpoint", "cqkd.api", "cqkd.qkd",
                        "cqkd.dht", "cqkd.httpd", "cqkd.ports", "cqkd.settings"},
    "cqkd.__main__": {"cqkd.cli"},
}


def layer_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_graph_is_read() -> None:
    assert "cqkd.dht.node" in direct_imports("cqkd.endpoint")
    assert "cqkd.qkd.bb84" in direct_imports("cqkd.qkd.worker")  # from cqkd.qkd import bb84
    assert "cqkd.sim.report" in reachable("cqkd.cli")  # imported inside a function


def test_the_simulation_lives_in_its_package() -> None:
    defined = {
        node.name: module
        for module, path in MODULES.items()
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.name in SIMULATION_PARTS
    }
    assert defined.keys() == SIMULATION_PARTS
    assert {name: m for name, m in defined.items() if not in_layer(m, SIMULATION)} == {}


def test_settings_do_not_import_the_dht() -> None:
    assert sorted(m for m in reachable("cqkd.settings") if in_layer(m, "cqkd.dht")) == []


def test_the_dht_imports_nothing_above_it() -> None:
    """The DHT takes a DhtConfig, not the process's Settings; it reports through logs and
    metrics and knows nothing of the protocol, the APIs or the simulation."""
    below = {"cqkd", "cqkd.logs", "cqkd.metrics"}
    offenders = {
        m: sorted(i for i in reachable(m) if not in_layer(i, "cqkd.dht") and i not in below)
        for m in MODULES
        if in_layer(m, "cqkd.dht")
    }
    assert {m: found for m, found in offenders.items() if found} == {}


def test_production_modules_never_import_the_simulation() -> None:
    production = [
        m for m in MODULES if not in_layer(m, SIMULATION) and m not in ENTRY_POINTS
    ]
    assert {"cqkd.endpoint", "cqkd.qkd.worker", "cqkd.dht.node", "cqkd.api.etsi"} <= set(
        production
    )
    offenders = {
        m: sorted(i for i in reachable(m) if in_layer(i, SIMULATION)) for m in production
    }
    assert {m: found for m, found in offenders.items() if found} == {}


def test_each_layer_imports_only_what_it_may() -> None:
    assert {layer_of(m) for m in MODULES} == MAY_IMPORT.keys()  # every layer has its row
    refused = {
        f"{m} -> {i}"
        for m in MODULES
        for i in direct_imports(m)
        if layer_of(i) != layer_of(m) and i != "cqkd" and layer_of(i) not in MAY_IMPORT[layer_of(m)]
    }
    assert sorted(refused) == []

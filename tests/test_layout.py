"""The test tree's own layout (issue 13): what tests share is written once, in
tests/helpers, and no test module is imported as a library by another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
HELPERS = TESTS / "helpers"


def modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(TESTS.rglob("*.py"))}


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def top_level_functions(tree: ast.Module) -> set[str]:
    # Functions only: deploy_helpers.Deployment (an Ansible deployment) and helpers.api's
    # Deployment (an in-process one) are different things that happen to share a name.
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return {node.name for node in tree.body if isinstance(node, kinds)}


def test_no_test_module_is_imported_by_another() -> None:
    offenders = {
        str(path.relative_to(TESTS)): sorted(
            name for name in imported(tree) if name.split(".")[-1].startswith("test_")
        )
        for path, tree in modules().items()
    }
    assert not {path: names for path, names in offenders.items() if names}, (
        "move what tests share into tests/helpers"
    )


def test_every_helper_function_is_defined_once() -> None:
    trees = modules()
    helpers = {
        name
        for path, tree in trees.items()
        if path.parent == HELPERS
        for name in top_level_functions(tree)
    }
    again = {
        str(path.relative_to(TESTS)): sorted(top_level_functions(tree) & helpers)
        for path, tree in trees.items()
        if path.parent != HELPERS
    }
    assert not {path: names for path, names in again.items() if names}, (
        "import these from tests/helpers instead of defining them again"
    )

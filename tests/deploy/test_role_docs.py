"""Every role documents its inputs: a README listing every variable of defaults/main.yml
and of meta/argument_specs.yml. No Docker needed."""

from __future__ import annotations

import pytest
import yaml
from deploy_helpers import REPO

ROLES = sorted(path.name for path in (REPO / "roles").iterdir() if path.is_dir())


def role_inputs(role: str) -> tuple[set[str], set[str]]:
    """The variables of defaults/main.yml, and every option of every entry point."""
    root = REPO / "roles" / role
    defaults = yaml.safe_load((root / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((root / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = {name for entry in specs.values() for name in entry.get("options", {})}
    return set(defaults), options


@pytest.mark.parametrize("role", ROLES)
def test_readme_lists_every_variable(role: str) -> None:
    readme = REPO / "roles" / role / "README.md"
    assert readme.exists(), f"roles/{role} has no README.md"
    text = readme.read_text()
    defaults, options = role_inputs(role)
    missing = sorted(name for name in defaults | options if f"`{name}`" not in text)
    assert not missing, f"roles/{role}/README.md does not list {missing}"

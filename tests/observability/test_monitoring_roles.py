"""The monitoring roles' public variables: defaults/main.yml and meta/argument_specs.yml agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


@pytest.mark.parametrize("role", ["prometheus", "grafana"])
def test_defaults_agree_with_argument_specs(role):
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    specs = yaml.safe_load((ROLES / role / "meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    # Required inputs (paths the plays pass in) have no default; every other one has.
    assert set(defaults) == {name for name, spec in options.items() if not spec.get("required")}
    for name, value in defaults.items():
        assert options[name]["default"] == value, name
        assert name.startswith(f"{role}_"), name
        assert options[name]["description"], name
    meta = yaml.safe_load((ROLES / role / "meta/main.yml").read_text())["galaxy_info"]
    assert (meta["namespace"], meta["role_name"]) == ("cqkd", role)

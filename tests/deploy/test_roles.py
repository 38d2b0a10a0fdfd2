"""Every role documents its public knobs: meta/argument_specs.yml agrees with
defaults/main.yml (same names, same defaults), and every knob carries the role's prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted(
    path.parent.parent for path in Path(__file__).parents[2].glob("roles/*/meta/main.yml")
)


def _load(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.name)
def test_argument_specs_agree_with_defaults(role: Path) -> None:
    defaults = _load(role / "defaults" / "main.yml")
    specs = _load(role / "meta" / "argument_specs.yml").get("argument_specs", {})
    assert specs, f"{role.name} has no meta/argument_specs.yml"
    options = {
        name: spec for entry in specs.values() for name, spec in entry.get("options", {}).items()
    }
    assert set(defaults) <= set(options), f"undocumented: {set(defaults) - set(options)}"
    for name, spec in options.items():
        assert name.startswith(f"{role.name}_"), f"{name} lacks the prefix {role.name}_"
        if spec.get("required"):
            assert name not in defaults, f"{name} is required but has a default"
        else:
            assert name in defaults, f"{name} has no default in defaults/main.yml"
            assert spec.get("default") == defaults[name], (
                f"{name}: {spec.get('default')!r} != {defaults[name]!r}"
            )

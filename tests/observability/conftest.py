"""Fixtures of the observability tests: promtool, the repository's rule and dashboard files."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest


@pytest.fixture(scope="session")
def promtool() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run promtool; fails (never skips) when it is missing, with the command to install it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: apt-get install -y --no-install-recommends prometheus")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [path, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
        )

    return run


@pytest.fixture(scope="session")
def render() -> Callable[[Path, dict[str, Any]], str]:
    """Render one of the role's Jinja templates the way Ansible would, for these variables."""

    def run(template: Path, variables: dict[str, Any]) -> str:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        return env.from_string(template.read_text()).render(
            ansible_managed="Ansible managed", **variables
        )

    return run

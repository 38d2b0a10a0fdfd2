"""Helpers of the image tests: the Docker CLI, the package version."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT_LABEL = "io.cqkd.project=cqkd"


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def package_version() -> str:
    text = (REPO / "node" / "pyproject.toml").read_text()
    match = re.search(r'(?m)^version = "([^"]+)"', text)
    assert match, "node/pyproject.toml has no version"
    return match.group(1)

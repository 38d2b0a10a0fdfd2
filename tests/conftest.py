"""Shared by every test: no setting leaks in from the environment of the test run; the
`processes` fixture for tests that start real `cqkd` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cqkd.settings import Settings
from helpers.processes import Processes


@pytest.fixture(autouse=True)
def _clean_settings_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """The test's `cqkd` processes (logs in tmp_path), all killed when it ends."""
    procs = Processes(tmp_path)
    yield procs
    procs.kill_all()

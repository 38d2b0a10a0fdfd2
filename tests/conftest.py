"""Shared by every test: no setting leaks in from the environment of the test run."""

from __future__ import annotations

import pytest
from cqkd.settings import Settings


@pytest.fixture(autouse=True)
def _clean_settings_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)

"""The HTTP APIs' settings: the control API binds loopback unless told otherwise, and the
connection limits are settings with bounds, each refused in one clear line."""

import pytest
from cqkd.settings import SettingsError, load_settings


def test_api_defaults() -> None:
    s = load_settings()
    assert (s.control_host, s.api_request_timeout, s.api_max_connections) == (
        "127.0.0.1",
        10.0,
        256,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("control_host", "999.1.1.1"),
        ("control_host", "localhost:80"),
        ("api_request_timeout", "0"),
        ("api_max_connections", "0"),
    ],
)
def test_bad_api_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name.upper(), value)
    with pytest.raises(SettingsError, match=f"invalid setting {name.upper()}="):
        load_settings()

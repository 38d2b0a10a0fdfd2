"""`cqkd alice` / `cqkd bob` refuse bad settings with exit code 2 and one clear line, before
opening any socket, and never print the token."""

from pathlib import Path

import pytest
from cqkd.cli import main
from cqkd.qkd.crypto import Identity
from helpers.api import make_pki

TOKEN = "settings-test-token-0123456789"


@pytest.fixture
def valid_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = make_pki(tmp_path / "pki")
    Identity.generate().write_key_file(tmp_path / "owner.key")
    for name, value in {
        "BOOTSTRAP_NODES": "127.0.0.1:9",
        "BOB_ADDRESS": "127.0.0.1:9",
        "DHT_PORT": "0",
        "HTTP_PORT": "0",
        "ETSI_PORT": "0",
        "OWNER_KEY_FILE": str(tmp_path / "owner.key"),
        "TRUSTED_OWNERS": Identity.generate().public_key.hex(),
        "ADMISSION_KEYS": Identity.generate().public_key.hex(),
        "API_TOKEN": TOKEN,
        "TLS_CERT_FILE": str(pki.bob.cert),
        "TLS_KEY_FILE": str(pki.bob.key),
        "TLS_CA_FILE": str(pki.ca),
    }.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("role", "env", "message"),
    [
        ("alice", {"BOOTSTRAP_NODES": None}, "BOOTSTRAP_NODES is empty"),
        ("alice", {"BOB_ADDRESS": None}, "BOB_ADDRESS is empty"),
        ("alice", {"BOB_ADDRESS": "nowhere"}, "invalid setting BOB_ADDRESS"),
        ("bob", {"OWNER_KEY_FILE": None}, "OWNER_KEY_FILE is empty"),
        ("bob", {"ADMISSION_KEYS": None}, "ADMISSION_KEYS and ADMISSION_KEY_FILE are empty"),
        ("alice", {"ADMISSION_KEY_FILE": "/nonexistent/admission.key"}, "ADMISSION_KEY_FILE"),
        ("bob", {"API_TOKEN": None}, "an API token is required"),
        ("bob", {"API_TOKEN": "short"}, "at least 16 characters"),
        ("bob", {"API_TOKEN_FILE": "/nonexistent/token"}, "API_TOKEN_FILE"),
        ("bob", {"TLS_CA_FILE": None}, "TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE together"),
        ("bob", {"TLS_CERT_FILE": "/nonexistent.crt"}, "TLS_CERT_FILE /nonexistent.crt"),
        ("bob", {"ETSI_KEY_SIZE": "100"}, "invalid setting ETSI_KEY_SIZE"),
        ("bob", {"ETSI_PORT": "70000"}, "invalid setting ETSI_PORT"),
    ],
)
@pytest.mark.usefixtures("valid_env")
def test_bad_settings_exit_2_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    role: str,
    env: dict[str, str | None],
    message: str,
) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    assert main([role]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err
    assert TOKEN not in err

"""The API token: read from a file or the environment, never shown in an error."""

from pathlib import Path

import pytest
from cqkd.api.auth import read_token

TOKEN = "s3cret-token-0123456789"


def test_file_wins_over_environment(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert read_token("another-long-token-abcdef", path) == TOKEN


def test_environment_token_is_used_without_file() -> None:
    assert read_token(TOKEN, None) == TOKEN


@pytest.mark.parametrize("token", [None, "", "short"])
def test_missing_or_short_token_is_refused(token: str | None) -> None:
    with pytest.raises(ValueError, match="API token") as info:
        read_token(token, None)
    assert not token or token not in str(info.value)


def test_unreadable_file_names_the_setting_not_the_content(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"API_TOKEN_FILE .* cannot be read"):
        read_token(TOKEN, tmp_path / "absent")

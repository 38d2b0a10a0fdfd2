"""Alice and Bob fail closed: without TRUSTED_OWNERS they exit at start with one line,
as real `cqkd alice` / `cqkd bob` processes (workers already refuse to run without it)."""

import os
import subprocess
from pathlib import Path

import pytest
from cqkd.qkd.crypto import Identity
from helpers.processes import CQKD

START_TIMEOUT_SECONDS = 30


@pytest.mark.parametrize("role", ["alice", "bob"])
def test_without_trusted_owners_the_process_exits_at_start_with_one_line(
    tmp_path: Path, role: str
) -> None:
    Identity.generate().write_key_file(tmp_path / "owner.key")
    env = {k: v for k, v in os.environ.items() if k != "TRUSTED_OWNERS"}
    env.update({
        "BOOTSTRAP_NODES": "127.0.0.1:9", "BOB_ADDRESS": "127.0.0.1:9", "DHT_PORT": "0",
        "HTTP_PORT": "0", "ETSI_PORT": "0", "OWNER_KEY_FILE": str(tmp_path / "owner.key"),
        "API_TOKEN": "owner-list-test-token-0123456789",
    })
    done = subprocess.run(
        [*CQKD, role], env=env, capture_output=True, text=True,
        timeout=START_TIMEOUT_SECONDS, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("cqkd: TRUSTED_OWNERS is empty"), done.stderr

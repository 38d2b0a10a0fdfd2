"""The verify play's end-to-end check, roles/qkd_endpoints/library/cqkd_key_check.py, run as
Ansible runs it (a Python process given its arguments in a file) against Alice's and Bob's
real control APIs on a real network: it proves one key and takes it from both stores, it
never returns the key or the token, and a refused request fails with the answer."""

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.api import Deployment

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

MODULE = Path(__file__).parents[2] / "roles" / "qkd_endpoints" / "library" / "cqkd_key_check.py"


async def _run(deployment: Deployment, tmp_path: Path, **overrides: Any) -> tuple[dict, str]:
    """The module's result and its whole output, run beside the network's event loop."""
    args = {
        "alice_url": deployment.control_url("alice"),
        "bob_url": deployment.control_url("bob"),
        "token": deployment.token,
        "key_bits": 256,
        "converge_timeout": 30,
        "session_timeout": 60,
        **overrides,
    }
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(MODULE), str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return json.loads(output), output.decode()


async def test_one_key_is_proved_and_left_in_neither_store(
    deployment: Deployment, tmp_path: Path
) -> None:
    result, output = await _run(deployment, tmp_path)
    assert not result.get("failed"), result
    assert result["network"]["converged"] is True
    session = result["session"]
    assert session["status"] == "confirmed" and session["key_bits"] == 256
    assert deployment.token not in output
    assert "key" not in session
    for side in ("alice", "bob"):
        async with deployment.control(side) as client:
            left = await client.get(f"/keys/{session['key_id']}", headers=deployment.auth)
        assert left.status_code == 404, (side, left.text)


async def test_a_refused_request_fails_with_the_answer(
    deployment: Deployment, tmp_path: Path
) -> None:
    result, output = await _run(deployment, tmp_path, token="not-the-token")
    assert result["failed"] is True
    assert result["msg"].startswith("POST /generate-key answered 401"), result["msg"]
    assert "not-the-token" not in output

"""A started `cqkd worker` imports only what a worker uses: its memory is mostly its imports.

The worker runs as a real process under `python -X importtime`, which reports every module
imported while it runs (lazy imports included) on stderr, beside its JSON log lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.network

# Alice's and Bob's HTTP stack and its models, their array code, and settings loaders a worker
# does not need (pydantic and its schema were 12 of a worker's 40 MiB).
NOT_FOR_WORKERS = frozenset(
    {"fastapi", "starlette", "uvicorn", "httpx", "numpy", "cryptography",
     "pydantic", "pydantic_core", "pydantic_settings", "dotenv"}
)
TIMEOUT_SECONDS = 60.0  # generous: a loaded 2-core CI machine


@contextmanager
def started(role: str, env: dict[str, str], *python_flags: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, *python_flags, "-m", "cqkd", role],
        env={**os.environ, "DHT_PORT": "0", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def read_until(process: subprocess.Popen[str], event: str, lines: list[str]) -> dict[str, object]:
    """The first log entry `event` on stderr; every line read is kept in `lines`."""
    assert process.stderr is not None
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline and (line := process.stderr.readline()):
        lines.append(line)
        if line.startswith("{") and (entry := json.loads(line))["event"] == event:
            return entry  # type: ignore[no-any-return]
    raise AssertionError(f"no {event} event; stderr: {''.join(lines)[-2000:]}")


def imported_modules(lines: list[str]) -> set[str]:
    """Module names from `-X importtime` lines ("import time: us | us | name")."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in lines
        if line.startswith("import time:") and line.count("|") == 2
    }


def imported(lines: list[str]) -> set[str]:
    """Top-level package names of the imported modules."""
    return {name.split(".")[0] for name in imported_modules(lines)}


def test_started_worker_imports_no_api_stack() -> None:
    with started("bootstrap", {}) as boot:
        port = read_until(boot, "http_listening", [])["port"]
        lines: list[str] = []
        with started("worker", {"BOOTSTRAP_NODES": f"127.0.0.1:{port}"}, "-X", "importtime") as w:
            read_until(w, "joined", lines)
            w.send_signal(signal.SIGTERM)
            read_until(w, "stopped", lines)
    modules = imported(lines)
    assert {"asyncio", "kademlia", "nacl", "cqkd"} <= modules  # the report is read right
    assert not modules & NOT_FOR_WORKERS, sorted(modules & NOT_FOR_WORKERS)
    # Nor the in-process simulation (a rogue worker's code among it): cqkd.sim.
    assert "cqkd.qkd.worker" in imported_modules(lines)
    assert sorted(m for m in imported_modules(lines) if m.startswith("cqkd.sim")) == []

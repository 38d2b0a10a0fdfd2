"""A started `cqkd worker` imports only what a worker uses: its memory is mostly its imports.

The worker runs as a real process under `python -X importtime`, which reports every module
imported while it runs (lazy imports included) on stderr, beside its JSON log lines.
"""

from __future__ import annotations

import pytest
from helpers.processes import node

pytestmark = pytest.mark.network

# Alice's and Bob's HTTP stack and its models, their array code, and settings loaders a worker
# does not need (pydantic and its schema were 12 of a worker's 40 MiB).
NOT_FOR_WORKERS = frozenset(
    {"fastapi", "starlette", "uvicorn", "httpx", "numpy", "cryptography",
     "pydantic", "pydantic_core", "pydantic_settings", "dotenv"}
)
TIMEOUT_SECONDS = 60.0  # generous: a loaded 2-core CI machine


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
    with node("bootstrap", start_seconds=TIMEOUT_SECONDS) as boot:
        peers = {"BOOTSTRAP_NODES": f"127.0.0.1:{boot.port}"}
        with node("worker", peers, "-X", "importtime", start_seconds=TIMEOUT_SECONDS) as w:
            w.wait_for("joined", TIMEOUT_SECONDS)
            w.stop()
    modules = imported(w.lines)
    assert {"asyncio", "kademlia", "nacl", "cqkd"} <= modules  # the report is read right
    assert not modules & NOT_FOR_WORKERS, sorted(modules & NOT_FOR_WORKERS)
    # Nor the in-process simulation (a rogue worker's code among it): cqkd.sim.
    assert "cqkd.qkd.worker" in imported_modules(w.lines)
    assert sorted(m for m in imported_modules(w.lines) if m.startswith("cqkd.sim")) == []

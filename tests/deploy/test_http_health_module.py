"""roles/cqkd_container/library/cqkd_http_health.py run as Ansible runs it (a Python process
given its arguments in a file), against real HTTP servers on loopback: one call checks the
nodes of every role, keeps their /health fields apart by role, and names the node that does
not answer. No Docker needed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REPO

MODULE = REPO / "roles" / "cqkd_container" / "library" / "cqkd_http_health.py"


def _server(report: dict[str, Any]) -> ThreadingHTTPServer:
    body = json.dumps(report).encode()

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def nodes() -> Iterator[list[ThreadingHTTPServer]]:
    servers = [
        _server({"status": "ok", "join_seconds": 0.5, "joined_at": 100.0}),
        _server({"status": "ok", "join_seconds": 1.5, "joined_at": 101.0}),
        _server({"status": "ok", "join_seconds": None, "joined_at": None}),  # not joined yet
    ]
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _run(tmp_path: Path, **args: object) -> dict[str, Any]:
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"host": "127.0.0.1", **args}}))
    done = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_one_call_reads_every_role_apart(nodes: list[ThreadingHTTPServer], tmp_path: Path) -> None:
    bootstrap, worker_1, worker_2 = (server.server_address[1] for server in nodes)
    result = _run(tmp_path, groups={"bootstrap": [bootstrap], "worker": [worker_1, worker_2]},
                  fields=["join_seconds", "joined_at"])
    assert not result.get("failed"), result
    assert result["healthy"] == 3
    assert result["values"] == {
        "bootstrap": {"join_seconds": [0.5], "joined_at": [100.0]},
        "worker": {"join_seconds": [1.5], "joined_at": [101.0]},
    }


def test_a_node_that_does_not_answer_fails_the_call_by_name(
    nodes: list[ThreadingHTTPServer], tmp_path: Path
) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        silent = closed.server_address[1]  # bound, then closed: nothing listens there
    result = _run(tmp_path, ports=[nodes[0].server_address[1]], groups={"worker": [silent]},
                  fields=["join_seconds"], timeout=1)
    assert result["failed"] and result["healthy"] == 1
    assert f"127.0.0.1:{silent}/health" in result["msg"]

"""roles/dht_nodes/library/cqkd_node_metrics.py run as Ansible runs it (a Python process
given its arguments in a file), against real HTTP servers on loopback: one call reads the
nodes of every role and keeps them apart. No Docker needed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from deploy_helpers import REPO

MODULE = REPO / "roles" / "dht_nodes" / "library" / "cqkd_node_metrics.py"


def _server(join_seconds: float) -> ThreadingHTTPServer:
    body = (
        "# TYPE cqkd_dht_join_duration_seconds gauge\n"
        f"cqkd_dht_join_duration_seconds {join_seconds}\n"
        'cqkd_dht_join_duration_seconds_other{role="x"} 9\n'
    ).encode()

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def nodes() -> Iterator[list[ThreadingHTTPServer]]:
    servers = [_server(seconds) for seconds in (0.5, 1.5, 2.5)]
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def test_one_call_reads_every_role_apart(nodes: list[ThreadingHTTPServer], tmp_path: Path) -> None:
    bootstrap, worker_1, worker_2 = (server.server_address[1] for server in nodes)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "host": "127.0.0.1",
        # The last worker's port has no server: it counts as unreachable.
        "ports": {"bootstrap": [bootstrap], "worker": [worker_1, worker_2, 1]},
        "names": ["cqkd_dht_join_duration_seconds"],
        "timeout": 2,
    }}))
    done = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True,
                          text=True, timeout=60, check=False)
    result = json.loads(done.stdout)
    assert not result.get("failed"), result
    assert result["values"] == {
        "bootstrap": {"cqkd_dht_join_duration_seconds": [0.5]},
        "worker": {"cqkd_dht_join_duration_seconds": [1.5, 2.5]},
    }
    assert result["unreachable"] == 1

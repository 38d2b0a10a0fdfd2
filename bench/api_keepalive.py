"""Keep-alive round trips on Alice's two APIs: GET /health on the control API and GET
.../status on the ETSI API (mutual TLS), each over one reused connection, on loopback.

    python bench/api_keepalive.py [--requests 2000]

Starts `cqkd local --serve --api-ports any` (8 workers) in its own process and measures
from this one with http.client, so that the client's and the server's loops do not share
a core's time slices more than two processes must. Goal (issue 15): p50 at most 2 ms.
Without TCP_NODELAY on the accepted sockets each round trip waited about 44 ms for the
client's delayed ACK: that is the peer each p50 is printed beside, as a ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import ssl
import subprocess
import sys
import time
from urllib.parse import urlsplit

from common.latency import percentile

GOAL_P50_MS = 2.0
# The peer: issue 15 measured every reused connection stalling about 44 ms per request
# before the listening sockets set TCP_NODELAY.
PEER_P50_MS = 44.0


def round_trips(connection: http.client.HTTPConnection, path: str, count: int) -> list[float]:
    """Milliseconds per request/response over one connection, after 50 warm-up requests."""
    times = []
    for index in range(count + 50):
        began = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path} answered {response.status}")
        if index >= 50:
            times.append((time.perf_counter() - began) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    command = [sys.executable, "-m", "cqkd", "local", "--serve", "--api-ports", "any",
               "--workers", "8", "--json"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        announced = json.loads(server.stdout.readline())
        control = urlsplit(announced["alice_control"])
        etsi = urlsplit(announced["alice_etsi"])
        context = ssl.create_default_context(cafile=announced["ca"])
        sae = announced["master_sae"]
        context.load_cert_chain(sae["cert"], sae["key"])
        cases = [
            (
                "control GET /health",
                http.client.HTTPConnection(control.hostname or "", control.port),
                "/health",
            ),
            (
                "ETSI GET status (TLS)",
                http.client.HTTPSConnection(etsi.hostname or "", etsi.port, context=context),
                f"/api/v1/keys/{announced['slave_sae']['id']}/status",
            ),
        ]
        print(f"{'keep-alive round trip':<24} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'peer p50':>8} {'ratio':>6} goal")
        worst = 0.0
        for name, connection, path in cases:
            times = round_trips(connection, path, args.requests)
            connection.close()
            p50, p99 = percentile(times, 0.50), percentile(times, 0.99)
            worst = max(worst, p50)
            verdict = "met" if p50 <= GOAL_P50_MS else "missed"
            print(f"{name:<24} {len(times):>8} {p50:>8.3f} {p99:>8.3f} "
                  f"{PEER_P50_MS:>8.1f} {p50 / PEER_P50_MS:>6.3f} "
                  f"p50 <= {GOAL_P50_MS} ms: {verdict}")
        return 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())

"""`cqkd bootstrap`, `cqkd worker`, `cqkd probe` and `cqkd local` as real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import httpx
import pytest
from helpers.processes import CQKD, node

pytestmark = pytest.mark.network

METRIC_NAMES = (
    "cqkd_dht_lookup_duration_seconds",
    "cqkd_dht_queries_total",
    "cqkd_dht_discovery_duration_seconds",
    "cqkd_routing_table_peers",
    "cqkd_dht_rejected_datagrams_total",
    "cqkd_session_duration_seconds",
    "cqkd_sessions_total",
    "cqkd_qber_ratio",
    "cqkd_key_positions_total",
    "cqkd_role_operations_total",
    "cqkd_build_info",
)


def test_bootstrap_and_workers_serve_health_and_metrics_then_stop_on_sigterm() -> None:
    with node("bootstrap") as boot:
        peers = f"127.0.0.1:{boot.port}"
        with (
            node("worker", {"BOOTSTRAP_NODES": peers}) as w1,
            node("worker", {"BOOTSTRAP_NODES": peers}) as w2,
        ):
            for worker in (w1, w2):
                worker.wait_for("joined")
            health = httpx.get(w2.url("/health"), timeout=5)
            assert health.status_code == 200
            report = health.json()
            assert report["status"] == "ok" and report["role"] == "worker"
            assert report["routing_table_size"] >= 2 and len(report["node_id"]) == 40
            assert report["uptime_seconds"] >= 0
            # The join's duration and end, as the metrics give them (the deploy reads these).
            own = httpx.get(w2.url("/metrics"), timeout=5).text
            [joined_at] = [float(line.split()[1]) for line in own.splitlines()
                           if line.startswith("cqkd_dht_joined_timestamp_seconds ")]
            assert report["joined_at"] == joined_at
            assert 0 < report["join_seconds"] < report["uptime_seconds"]
            metrics = httpx.get(boot.url("/metrics"), timeout=5)
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            for name in METRIC_NAMES:
                assert f"# TYPE {name} " in metrics.text, name
            assert "cqkd_routing_table_peers 2.0" in metrics.text
            assert httpx.post(w1.url("/health"), timeout=5).status_code == 405
            assert httpx.get(w1.url("/nothing"), timeout=5).status_code == 404
            for worker in (w1, w2):
                assert worker.stop() < 1.0
                assert worker.proc.returncode == 0
        assert boot.stop() < 1.0
        assert boot.proc.returncode == 0
        for line in boot.lines + w1.lines:
            assert "event" in json.loads(line)


def test_http_survives_garbage_and_slow_clients() -> None:
    with node("bootstrap") as boot:
        slow = socket.create_connection(("127.0.0.1", boot.port))
        slow.sendall(b"GET /hea")  # and never more
        for garbage in (b"\x00\xff" * 100 + b"\r\n\r\n", b"GET\r\n\r\n", b"A" * 20000):
            with socket.create_connection(("127.0.0.1", boot.port), timeout=5) as sock:
                sock.sendall(garbage)
                assert sock.recv(100).startswith(b"HTTP/1.1 400")
        assert httpx.get(boot.url("/health"), timeout=5).status_code == 200
        slow.close()


def test_probe_exit_status_follows_health() -> None:
    with node("bootstrap") as boot:
        env = {**os.environ, "DHT_PORT": str(boot.port)}
        ok = subprocess.run([*CQKD, "probe"], env=env, capture_output=True, text=True, timeout=10)
        assert ok.returncode == 0, ok.stderr
    env = {**os.environ, "DHT_PORT": str(boot.port)}
    down = subprocess.run([*CQKD, "probe"], env=env, capture_output=True, text=True, timeout=10)
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1 and "/health" in down.stderr


def test_bad_setting_exits_2_with_one_line() -> None:
    env = {**os.environ, "K": "lots"}
    done = subprocess.run([*CQKD, "bootstrap"], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "K='lots'" in done.stderr


def test_local_json_report() -> None:
    done = subprocess.run(
        [*CQKD, "local", "--workers", "12", "--lookups", "20", "--kill-fraction", "0.25", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["nodes"] == 14 and report["bootstrap_nodes"] == 2
    assert report["killed_workers"] == 3
    assert report["query_success_rate"] == 1.0
    assert 0 < report["discovery_seconds"] < 60
    assert 0 < report["lookup_p50_seconds"] <= report["lookup_p99_seconds"]
    assert report["peak_rss_bytes"] > 10 * 2**20


def test_a_busy_port_is_fatal_and_exits_non_zero() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 0))
        env = {**os.environ, "DHT_PORT": str(busy.getsockname()[1])}
        done = subprocess.run(
            [*CQKD, "bootstrap"], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1
    fatal = json.loads(done.stderr.strip().splitlines()[-1])
    assert fatal["event"] == "fatal" and "Address already in use" in fatal["error"]

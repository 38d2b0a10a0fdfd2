"""Monitoring of a real scale=small deployment: Prometheus scrapes every node, every panel of
every dashboard and every recording rule returns data, and every role's /metrics passes
`promtool check metrics`."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from cqkd.dht.params import scale_profile
from deploy_helpers import SCALE, Deployment
from helpers.keys import finished_session, start_session

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = "http://127.0.0.1:9090"
PROFILE = scale_profile(SCALE)
# Grafana's variables, as "All" and a rate interval of a few 10 s scrapes would set them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "15m",
    "$job": ".+",
    "$instance": ".+",
}
WINDOW_SECONDS = 15 * 60

pytestmark = pytest.mark.deploy


def query_range(expr: str) -> list[dict]:
    now = time.time()
    response = httpx.get(f"{PROMETHEUS}/api/v1/query_range", timeout=10, params={
        "query": expr, "start": now - WINDOW_SECONDS, "end": now, "step": "15s"})
    assert response.status_code == 200, f"{expr}: {response.text}"
    return response.json()["data"]["result"]


def has_data(expr: str) -> bool:
    """True when the expression has at least one number (not NaN) in the last 15 minutes."""
    values = [float(v) for series in query_range(expr) for _, v in series["values"]]
    return any(not math.isnan(v) for v in values)


def panel_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted((REPO / "grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                queries.append((f"{dashboard['uid']} / {panel['title']} / {target['refId']}", expr))
    return queries


def recording_rules() -> list[str]:
    # thresholds.yml.j2 records these two; the other files are plain YAML.
    names = {"cqkd:discovery_timeout:seconds", "cqkd:qber_abort_threshold:ratio"}
    for path in sorted((REPO / "prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return sorted(names)


@pytest.fixture(scope="module")
def monitored(deployment: Deployment) -> dict[str, str]:
    """Waits until Prometheus scrapes every node of the deployment; returns instance -> job."""
    expected = {"bootstrap": PROFILE["bootstrap_count"],
                "worker": PROFILE["workers"], "alice": 1, "bob": 1}
    deadline = time.monotonic() + 90
    while True:
        targets = httpx.get(f"{PROMETHEUS}/api/v1/targets", timeout=10).json()["data"]
        active = targets["activeTargets"]
        up = {t["labels"]["instance"]: t["labels"]["job"] for t in active if t["health"] == "up"}
        counts = {job: list(up.values()).count(job) for job in expected}
        if counts == expected and len(active) == sum(expected.values()):
            return up
        if time.monotonic() > deadline:
            down = [(t["labels"]["instance"], t["lastError"])
                    for t in active if t["health"] != "up"]
            pytest.fail(f"up targets by job {counts}, expected {expected}; not up: {down}")
        time.sleep(2)


def test_every_node_is_an_up_target(monitored):
    nodes = PROFILE["workers"] + PROFILE["bootstrap_count"] + 2
    assert len(monitored) == nodes


def exchange_key(deployment: Deployment, key_bits: int) -> None:
    """One key session through Alice's API, waited for until it is confirmed."""
    auth = {"Authorization": f"Bearer {deployment.api_token}"}
    with httpx.Client(base_url=deployment.alice_url, headers=auth, timeout=10) as alice:
        view = finished_session(alice, start_session(alice, key_bits), seconds=60, interval=0.5)
    assert view["status"] == "confirmed", view


@pytest.fixture(scope="module")
def recent_sessions(deployment: Deployment, monitored) -> None:
    """Key sessions in the last minute, then two scrapes, so that rates have data."""
    for _ in range(2):
        exchange_key(deployment, 256)
    time.sleep(25)


def test_every_panel_query_returns_data(recent_sessions):
    empty = [name for name, expr in panel_queries() if not has_data(expr)]
    assert not empty, f"panels without data: {empty}"


def test_every_recording_rule_returns_data(recent_sessions):
    empty = [name for name in recording_rules() if not has_data(name)]
    assert not empty, f"recording rules without data: {empty}"


def test_no_alert_fires_on_a_healthy_deployment(recent_sessions):
    alerts = httpx.get(f"{PROMETHEUS}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert [a for a in alerts if a["state"] == "firing"] == []


@pytest.mark.parametrize("job", ["bootstrap", "worker", "alice", "bob"])
def test_metrics_of_every_role_pass_promtool_check(monitored, job):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y --no-install-recommends prometheus"
    instance = sorted(i for i, j in monitored.items() if j == job)[0]
    body = httpx.get(f"http://{instance}/metrics", timeout=10).text
    assert re.search(r"^process_resident_memory_bytes \d", body, re.MULTILINE)
    assert re.search(r"^cqkd_build_info\{", body, re.MULTILINE)
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                            text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and not output, output

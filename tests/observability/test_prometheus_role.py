"""roles/prometheus for real: ansible-playbook builds the Debian-based image, writes the
targets of two real `cqkd` processes, and the container scrapes them and evaluates the rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from helpers.ports import free_port
from helpers.processes import CQKD
from helpers.waits import wait_until

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Rules over what a bootstrap node and a worker export. The session rules (QBER, session
# counts) have data only once Alice or Bob finished a session (cqkd_qber_ratio carries a
# `party` label since issue 12); promtool's rule tests and test_monitoring cover them.
DHT_RULES = [
    "job:cqkd_dht_query_success:ratio",
    "job_quantile:cqkd_dht_discovery_duration_seconds:histogram_quantile",
    "job:cqkd_routing_table_peers:avg",
    "job:cqkd_nodes_up:sum",
    "cqkd:discovery_timeout:seconds",
    "cqkd:qber_abort_threshold:ratio",
]

pytestmark = pytest.mark.docker


@pytest.fixture
def nodes(tmp_path) -> Iterator[dict[str, list[str]]]:
    """A bootstrap node and a worker, as real processes on free ports."""
    boot, worker = free_port(), free_port()
    commands = [
        ["bootstrap", "--dht-port", str(boot)],
        ["worker", "--dht-port", str(worker), "--bootstrap-nodes", f"127.0.0.1:{boot}"],
    ]
    processes = []
    try:
        for args in commands:
            log = (tmp_path / f"{args[0]}.log").open("w")
            processes.append(subprocess.Popen(
                [*CQKD, args[0], "--dht-host", "127.0.0.1", *args[1:]],
                stdout=log, stderr=subprocess.STDOUT,
            ))
            port = args[2]
            wait_until(
                lambda p=port: httpx.get(f"http://127.0.0.1:{p}/health").status_code == 200,
                f"{args[0]} /health", 20, interval=1,
            )
        yield {"bootstrap": [f"127.0.0.1:{boot}"], "worker": [f"127.0.0.1:{worker}"]}
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


@dataclass
class RolePrometheus:
    """The role applied to localhost with a container name, volume and port of its own."""

    workdir: Path
    container: str = f"cqkd-prometheus-test-{os.getpid()}"
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def deploy(self, targets: dict[str, list[str]]) -> subprocess.CompletedProcess[str]:
        playbook = self.workdir / "prometheus.yml"
        playbook.write_text(yaml.safe_dump([{
            "name": "Run Prometheus against the test's nodes",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "roles": [{
                "role": "prometheus",
                "prometheus_image_source": "debian",
                "prometheus_rules_dir": str(REPO / "prometheus" / "rules"),
                "prometheus_container_name": self.container,
                "prometheus_data_volume": self.container,
                "prometheus_config_dir": str(self.workdir / "config"),
                "prometheus_web_listen_address": f"127.0.0.1:{self.port}",
                "prometheus_scrape_interval": "2s",
                "prometheus_evaluation_interval": "2s",
                "prometheus_scrape_timeout": "1s",
                "prometheus_targets": targets,
            }],
        }]))
        return subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
            capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
                 "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
        )


@pytest.fixture
def prometheus(tmp_path) -> Iterator[RolePrometheus]:
    role = RolePrometheus(tmp_path)
    try:
        yield role
    finally:
        subprocess.run(["docker", "rm", "-f", role.container], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", role.container], capture_output=True,
                       check=False)


def query(url: str, expr: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_role_scrapes_every_target_and_evaluates_the_rules(nodes, prometheus):
    first = prometheus.deploy(nodes)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    url = prometheus.url

    def all_up():
        targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        seen = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
        expected = {(job, i) for job, instances in nodes.items() for i in instances}
        return set(seen) == expected and all(h == "up" for h in seen.values())

    wait_until(all_up, "every node to be an up target", 60, interval=1)
    for record in DHT_RULES:
        wait_until(lambda r=record: query(url, r), f"data from the recording rule {record}", 60,
                   interval=1)
    # The rule may have the bootstrap's series before the worker's first scrape counts.
    worker_success = 'job:cqkd_dht_query_success:ratio{job="worker"}'
    wait_until(lambda: query(url, worker_success), "the worker's query success", 60, interval=1)
    assert float(query(url, worker_success)[0]["value"][1]) == 1
    rules = [r for g in httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
             for r in g["rules"]]
    assert {r["name"] for r in rules if r["type"] == "alerting"} == {
        "CqkdNodeDown", "CqkdQuerySuccessLow", "CqkdQberAboveAbortThreshold", "CqkdDiscoverySlow"}
    assert all(r["health"] == "ok" for r in rules), rules

    (container,) = json.loads(subprocess.run(
        ["docker", "inspect", prometheus.container],
        capture_output=True, text=True, check=True,
    ).stdout)
    host = container["HostConfig"]
    assert container["Config"]["User"] == "65534:65534"
    assert container["Config"]["Labels"]["io.cqkd.project"] == "cqkd"
    assert container["Config"]["Labels"]["io.cqkd.role"] == "prometheus"
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"] and host["Memory"] > 0
    assert host["NetworkMode"] == "host"

    second = prometheus.deploy(nodes)
    assert second.returncode == 0, second.stdout[-4000:]
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", second.stdout), second.stdout[-3000:]

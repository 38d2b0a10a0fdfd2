"""The nodes' adaptive Kademlia parameters in a real deployment: Ansible passes the scale's
worker count (not alpha, k and the timeout), every node exports the parameters it uses,
they follow node/src/cqkd/dht/params.py after a scale change, and role inputs set in an
inventory's group_vars reach the containers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from cqkd.dht.params import adaptive_params, scale_profile
from deploy_helpers import REPO, Deployment, deployed_containers, run_playbook
from helpers.metrics import DHT_PARAMETER_GAUGES
from prometheus_client.parser import text_string_to_metric_families

MIB = 1024 * 1024
# A custom scale in the table's second row, so every value differs from scale=small's.
CUSTOM_WORKERS = 20
# Role inputs an inventory sets in group_vars: a pinned query timeout (alpha and k still
# adapt) and a worker memory limit no scale uses.
GROUP_VARS = "dht_nodes_query_timeout: 9.5\ndht_nodes_worker_memory_limit: 112M\n"


def node_gauges(port: int) -> dict[str, float]:
    """The parameter gauges of the node whose /metrics answers on this TCP port."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    missing = [name for name in DHT_PARAMETER_GAUGES if name not in values]
    assert not missing, f"port {port} exports no {missing}"
    return {name: values[name] for name in DHT_PARAMETER_GAUGES}


def inventory_with_group_vars(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories" / "local", inventory)
    (inventory / "group_vars" / "all.yml").write_text("---\n" + GROUP_VARS)
    return inventory


@pytest.mark.mutates_deployment(0)
def test_parameters_follow_the_table_after_a_scale_change(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Before: at the shared deployment's scale a worker already uses the table's row for the
    # size it estimates (bootstrap nodes, Alice and Bob count too).
    before = node_gauges(7000)
    assert before["cqkd_dht_network_size_estimate"] >= scale_profile(deployment.scale)["workers"]
    table = adaptive_params(int(before["cqkd_dht_network_size_estimate"]))
    assert (before["cqkd_dht_alpha"], before["cqkd_dht_k"]) == (table.alpha, table.k), before
    run = run_playbook(
        "deploy.yml",
        "-i",
        str(inventory_with_group_vars(tmp_path)),
        "-e",
        "scale=custom",
        "-e",
        f"workers={CUSTOM_WORKERS}",
    )
    try:
        assert run.returncode == 0 and run.failed == 0, run.explain()
        profile = scale_profile("custom", CUSTOM_WORKERS)
        names = sorted(deployed_containers())
        inspected = {
            c["Name"].lstrip("/"): c
            for c in json.loads(subprocess.check_output(["docker", "inspect", *names]))
        }
        workers = [
            c for c in inspected.values() if c["Config"]["Labels"]["io.cqkd.role"] == "worker"
        ]
        assert len(workers) == CUSTOM_WORKERS
        for worker in workers:
            env = dict(item.split("=", 1) for item in worker["Config"]["Env"])
            name = worker["Name"]
            # The inventory's group_vars reached the container.
            assert worker["HostConfig"]["Memory"] == 112 * MIB, name
            assert env["QUERY_TIMEOUT"] == "9.5", name
            # Only what the scale and the inventory set: alpha and k are left to adapt.
            assert env["WORKER_COUNT"] == str(CUSTOM_WORKERS), name
            assert "ALPHA" not in env and "K" not in env, name
            gauges = node_gauges(int(env["DHT_PORT"]))
            estimate = gauges["cqkd_dht_network_size_estimate"]
            table = adaptive_params(int(estimate))
            assert estimate >= CUSTOM_WORKERS, (name, gauges)
            assert gauges["cqkd_dht_alpha"] == table.alpha, (name, gauges)
            assert gauges["cqkd_dht_k"] == table.k, (name, gauges)
            assert gauges["cqkd_dht_query_timeout_seconds"] == 9.5, (name, gauges)
            assert (gauges["cqkd_dht_alpha"], gauges["cqkd_dht_k"]) >= (
                profile["alpha"],
                profile["k"],
            ), (name, gauges)
        print(f"worker on 7000 before {before}, after {node_gauges(7000)}")
        # Alice and Bob take no inventory pin: all four follow the table.
        for party, port in (("cqkd-alice", 8001), ("cqkd-bob", 8002)):
            env = dict(item.split("=", 1) for item in inspected[party]["Config"]["Env"])
            assert env["WORKER_COUNT"] == str(CUSTOM_WORKERS), party
            gauges = node_gauges(port)
            table = adaptive_params(int(gauges["cqkd_dht_network_size_estimate"]))
            assert gauges["cqkd_dht_network_size_estimate"] >= CUSTOM_WORKERS, (party, gauges)
            assert (
                gauges["cqkd_dht_alpha"],
                gauges["cqkd_dht_k"],
                gauges["cqkd_dht_query_timeout_seconds"],
            ) == (table.alpha, table.k, table.query_timeout), (party, gauges)
    finally:
        restored = deployment.deploy()
        assert restored.returncode == 0 and restored.failed == 0, restored.explain()

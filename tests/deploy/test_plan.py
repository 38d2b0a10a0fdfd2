"""The deployment plan (ansible/filter_plugins/cqkd_plan.py): placement of the nodes over the
inventory's hosts and the port-collision check, as plain functions, then once through a real
ansible-playbook run of the preflight. No Docker needed."""

from __future__ import annotations

import json

from deploy_helpers import REPO, run_playbook
from helpers.modules import load

plan = load(REPO / "ansible" / "filter_plugins" / "cqkd_plan.py", "cqkd_plan_plugin")

SCALE = {"workers": 5, "bootstrap_count": 3, "hosts_group": "medium"}
GROUPS = {
    "dht_bootstrap": ["h1", "h2"],
    "dht_workers": ["h1", "h2", "h3"],
    "cqkd_alice": ["qa"],
    "cqkd_bob": ["qb"],
    "medium": ["h1", "h2", "qa", "qb"],
}
ADDRESSES = {host: f"10.0.0.{i}" for i, host in enumerate(["h1", "h2", "h3", "qa", "qb"], 1)}


def _where(nodes: list[dict]) -> list[tuple[str, str, int]]:
    return [(node["name"], node["host"], node["port"]) for node in nodes]


def test_bootstrap_nodes_go_round_robin_over_the_selected_hosts() -> None:
    made = plan.make_plan(SCALE, GROUPS, ADDRESSES)
    assert _where(made["bootstraps"]) == [
        ("cqkd-bootstrap-1", "h1", 5678),
        ("cqkd-bootstrap-2", "h2", 5679),
        ("cqkd-bootstrap-3", "h1", 5680),
    ]
    assert made["bootstrap_addresses"] == ["10.0.0.1:5678", "10.0.0.2:5679", "10.0.0.1:5680"]


def test_workers_spread_evenly_over_the_hosts_of_the_scale_group_only() -> None:
    made = plan.make_plan(SCALE, GROUPS, ADDRESSES)
    # h3 is a worker host but not in the scale's group; h1 takes the remainder.
    assert made["worker_hosts"] == ["h1", "h2"]
    assert _where(made["workers"]) == [
        ("cqkd-worker-0", "h1", 7000),
        ("cqkd-worker-1", "h1", 7001),
        ("cqkd-worker-2", "h1", 7002),
        ("cqkd-worker-0", "h2", 7000),
        ("cqkd-worker-1", "h2", 7001),
    ]
    assert {node["address"] for node in made["workers"] if node["host"] == "h2"} == {"10.0.0.2"}
    # Prometheus' worker targets, in the plan's order.
    assert made["worker_addresses"][2:4] == ["10.0.0.1:7002", "10.0.0.2:7000"]


def test_parties_and_port_overrides() -> None:
    made = plan.make_plan(SCALE, GROUPS, ADDRESSES, {"alice_http": 9001, "worker": 7100})
    assert made["alice"] == {
        "name": "cqkd-alice",
        "role": "alice",
        "host": "qa",
        "address": "10.0.0.4",
        "port": 6000,
        "http_port": 9001,
        "etsi_port": 8443,
    }
    assert (made["bob"]["host"], made["bob"]["port"], made["bob"]["etsi_port"]) == (
        "qb",
        6001,
        8444,
    )
    assert made["workers"][0]["port"] == 7100
    assert made["ports"]["bootstrap"] == 5678


def test_a_scale_group_without_bootstrap_hosts_plans_no_bootstrap_node() -> None:
    """The preflight then fails with its own message instead of a division by zero."""
    made = plan.make_plan(
        SCALE | {"hosts_group": "only_alice"}, GROUPS | {"only_alice": ["qa"]}, ADDRESSES
    )
    assert (made["bootstrap_hosts"], made["bootstraps"], made["workers"]) == ([], [], [])


def test_addresses_prefer_advertise_address_then_ansible_host_then_the_name() -> None:
    hostvars = {
        "h1": {"cqkd_advertise_address": "192.0.2.1", "ansible_host": "198.51.100.1"},
        "h2": {"ansible_host": "198.51.100.2"},
        "qa": {},
        "qb": {},
        "h3": {},
    }
    made = plan.cqkd_plan(SCALE, GROUPS, hostvars)
    assert made["bootstrap_addresses"] == ["192.0.2.1:5678", "198.51.100.2:5679", "192.0.2.1:5680"]
    assert made["alice"]["address"] == "qa"


def test_collisions_name_the_host_port_and_every_service_sharing_it() -> None:
    made = plan.make_plan(SCALE, GROUPS, ADDRESSES, {"worker": 5679})
    assert plan.port_collisions(plan.plan_services(made, {})) == [
        "h1:5680 (cqkd-bootstrap-3, cqkd-worker-1)",
        "h2:5679 (cqkd-bootstrap-2, cqkd-worker-0)",
    ]


def test_collisions_include_monitoring_ports_and_numbers_that_are_not_ports() -> None:
    made = plan.make_plan(SCALE, GROUPS, ADDRESSES, {"alice_http": 70000})
    hostvars = {"qa": {"prometheus_web_listen_address": "0.0.0.0:6000"}}
    assert plan.cqkd_port_collisions(made, hostvars, ["qa"]) == [
        "qa:6000 (cqkd-alice DHT, prometheus)",
        "qa:70000 (cqkd-alice HTTP: not a port)",
    ]
    assert (
        plan.cqkd_port_collisions(plan.make_plan(SCALE, GROUPS, ADDRESSES), {"qa": {}}, ["qa"])
        == []
    )


def test_preflight_hands_every_host_the_plan_of_the_example_inventory(tmp_path) -> None:
    """The real preflight over the multi-host example inventory: placement by host address."""
    probe = tmp_path / "probe.yml"
    probe.write_text(
        f"- import_playbook: {REPO / 'ansible' / 'preflight.yml'}\n"
        "- hosts: dht-4\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"PLAN {{ {'workers': cqkd_host_workers | map(attribute='port') | list,"
        " 'own_bootstraps': cqkd_host_bootstraps, 'bootstraps': cqkd_plan_bootstrap_addresses,"
        " 'alice': cqkd_plan_alice.address} | to_json }}\"\n"
    )
    # The example's hosts are documentation addresses: plan without connecting to them.
    run = run_playbook(str(probe), "-i", "inventories/example", "-e", "scale=xlarge",
                       "-e", "cqkd_preflight_host_checks=false")
    assert run.returncode == 0, run.explain()
    shown = json.loads(
        run.output.split('"msg": "PLAN ', 1)[1].split('"\n', 1)[0].replace('\\"', '"')
    )
    # xlarge: 200 workers over dht-1..4, 6 bootstrap nodes over dht-1..3 (none on dht-4).
    assert shown == {
        "workers": list(range(7000, 7050)),
        "own_bootstraps": [],
        "bootstraps": [
            "192.0.2.11:5678",
            "192.0.2.12:5679",
            "192.0.2.13:5680",
            "192.0.2.11:5681",
            "192.0.2.12:5682",
            "192.0.2.13:5683",
        ],
        "alice": "192.0.2.21",
    }

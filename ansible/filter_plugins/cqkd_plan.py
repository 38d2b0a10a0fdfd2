"""The deployment plan: which node runs on which host, at which address and port, and the
check that no two services of a host share a port.

Plain functions over plain data (`make_plan`, `port_collisions`), unit-tested in
tests/deploy/test_plan.py; the filters below only read the inventory for them.
ansible/preflight.yml computes the plan once per run and hands it to every host as facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

# Port numbers of the nodes on a host; `cqkd_ports` in the inventory overrides any of them.
DEFAULT_PORTS: dict[str, int] = {
    "bootstrap": 5678,
    "worker": 7000,
    "alice_dht": 6000,
    "alice_http": 8001,
    "alice_etsi": 8443,
    "bob_dht": 6001,
    "bob_http": 8002,
    "bob_etsi": 8444,
}
# The monitoring services' ports when the inventory leaves them unset (the roles' defaults).
DEFAULT_PROMETHEUS_LISTEN_ADDRESS = "0.0.0.0:9090"
DEFAULT_GRAFANA_HTTP_PORT = 3000


def make_plan(
    scale: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    addresses: Mapping[str, str],
    ports: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Place the scale's nodes on the inventory's hosts.

    Bootstrap node i (1-based, port bootstrap + i - 1) runs on bootstrap host (i - 1) mod H;
    the workers spread evenly over the worker hosts, the first hosts taking one more when
    the count does not divide, and worker j of a host listens on worker + j. Only hosts of
    the scale's group (`scale['hosts_group']`) are used. `addresses` maps a host to the
    address other nodes reach it at.
    """
    port = {**DEFAULT_PORTS, **(ports or {})}
    selected = set(groups.get(scale["hosts_group"], []))
    bootstrap_hosts = [host for host in groups.get("dht_bootstrap", []) if host in selected]
    worker_hosts = [host for host in groups.get("dht_workers", []) if host in selected]

    bootstraps = [
        _node(
            f"cqkd-bootstrap-{i + 1}",
            "bootstrap",
            bootstrap_hosts[i % len(bootstrap_hosts)],
            addresses,
            int(port["bootstrap"]) + i,
        )
        for i in range(int(scale["bootstrap_count"]) if bootstrap_hosts else 0)
    ]
    workers = []
    total = int(scale["workers"])
    for index, host in enumerate(worker_hosts):
        share = total // len(worker_hosts) + (1 if index < total % len(worker_hosts) else 0)
        workers += [
            _node(f"cqkd-worker-{j}", "worker", host, addresses, int(port["worker"]) + j)
            for j in range(share)
        ]
    return {
        "ports": port,
        "bootstrap_hosts": bootstrap_hosts,
        "worker_hosts": worker_hosts,
        "bootstraps": bootstraps,
        "workers": workers,
        "alice": _party("alice", groups, addresses, port),
        "bob": _party("bob", groups, addresses, port),
        "bootstrap_addresses": [f"{node['address']}:{node['port']}" for node in bootstraps],
    }


def _node(
    name: str, role: str, host: str, addresses: Mapping[str, str], port: int
) -> dict[str, Any]:
    return {"name": name, "role": role, "host": host, "address": addresses[host], "port": port}


def _party(
    role: str,
    groups: Mapping[str, Sequence[str]],
    addresses: Mapping[str, str],
    port: Mapping[str, int],
) -> dict[str, Any] | None:
    hosts = groups.get(f"cqkd_{role}", [])
    if not hosts:
        return None
    return _node(f"cqkd-{role}", role, hosts[0], addresses, int(port[f"{role}_dht"])) | {
        "http_port": int(port[f"{role}_http"]),
        "etsi_port": int(port[f"{role}_etsi"]),
    }


def plan_services(
    plan: Mapping[str, Any], monitoring: Mapping[str, Mapping[str, int]]
) -> list[dict[str, Any]]:
    """Every (host, name, port) the plan and the monitoring hosts listen on.

    `monitoring` maps a monitoring host to its services' ports: {"prometheus": 9090, ...}.
    """
    services = [
        {"host": node["host"], "name": node["name"], "port": node["port"]}
        for node in [*plan["bootstraps"], *plan["workers"]]
    ]
    for party in (plan["alice"], plan["bob"]):
        if party is not None:
            services += [
                {"host": party["host"], "name": f"{party['name']} {kind}", "port": party[key]}
                for kind, key in (("DHT", "port"), ("HTTP", "http_port"), ("ETSI", "etsi_port"))
            ]
    for host, ports in monitoring.items():
        services += [{"host": host, "name": name, "port": port} for name, port in ports.items()]
    return services


def port_collisions(services: Sequence[Mapping[str, Any]]) -> list[str]:
    """ "host:port (name, name)" for every port of a host used twice, and
    "host:port (name: not a port)" for every number outside 1..65535, sorted by host."""
    by_host: dict[str, list[Mapping[str, Any]]] = {}
    for service in services:
        by_host.setdefault(str(service["host"]), []).append(service)
    found = []
    for host in sorted(by_host):
        users: dict[int, list[str]] = {}
        for service in by_host[host]:
            users.setdefault(int(service["port"]), []).append(str(service["name"]))
        found += [
            f"{host}:{port} ({', '.join(names)})"
            for port, names in sorted(users.items())
            if len(names) > 1
        ]
        found += [
            f"{host}:{service['port']} ({service['name']}: not a port)"
            for service in by_host[host]
            if not 1 <= int(service["port"]) <= 65535
        ]
    return found


def _advertise_address(host: str, variables: Mapping[str, Any]) -> str:
    """cqkd_advertise_address, else ansible_host, else the inventory name."""
    for name in ("cqkd_advertise_address", "ansible_host"):
        if name in variables:
            return str(variables[name])
    return host


def cqkd_plan(
    scale: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    ports: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """`cqkd_scale | cqkd_plan(groups, hostvars, cqkd_ports | default({}))`."""
    hosts = {
        host
        for name in ("dht_bootstrap", "dht_workers", "cqkd_alice", "cqkd_bob")
        for host in groups.get(name, [])
    }
    addresses = {host: _advertise_address(host, hostvars[host]) for host in hosts}
    try:
        return make_plan(scale, groups, addresses, ports)
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError(f"cannot plan the deployment: {error!r}") from error


def cqkd_port_collisions(
    plan: Mapping[str, Any],
    hostvars: Mapping[str, Mapping[str, Any]],
    monitoring_hosts: Sequence[str],
) -> list[str]:
    """`cqkd_plan | cqkd_port_collisions(hostvars, monitoring hosts)`: the ports the plan,
    Prometheus (prometheus_web_listen_address) and Grafana (grafana_http_port) would share."""
    monitoring = {
        host: {
            "prometheus": int(
                str(
                    hostvars[host].get(
                        "prometheus_web_listen_address", DEFAULT_PROMETHEUS_LISTEN_ADDRESS
                    )
                ).rsplit(":", 1)[-1]
            ),
            "grafana": int(hostvars[host].get("grafana_http_port", DEFAULT_GRAFANA_HTTP_PORT)),
        }
        for host in monitoring_hosts
    }
    return port_collisions(plan_services(plan, monitoring))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cqkd_plan": cqkd_plan, "cqkd_port_collisions": cqkd_port_collisions}

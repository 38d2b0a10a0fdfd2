"""The deployment plan: which node runs on which host, at which address and port, the
check that no two services of a host share a port, and the check that a host's share of
the plan fits it.

Plain functions over plain data (`make_plan`, `port_collisions`, `host_limit_problems`),
unit-tested in
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
        "worker_addresses": [f"{node['address']}:{node['port']}" for node in workers],
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


# Descriptors one node process holds (sockets, its HTTP server's connections, files), with
# room to spare: a worker held 14 when measured.
FILES_PER_NODE = 64


def host_limit_problems(
    host: str,
    nodes: Sequence[Mapping[str, Any]],
    reservations: Mapping[str, int],
    running: Sequence[str],
    meminfo_available: int,
    ephemeral: Sequence[int],
    file_nr: Sequence[int],
) -> list[str]:
    """What keeps `host` from running its planned `nodes` ({name, port, role}), one message
    per limit: the memory the nodes without a running container reserve (`reservations`:
    bytes per role) against MemAvailable (bytes; a running container's memory is already
    out of it, and a replacement frees it before it starts), the ports against 65535 and
    the ephemeral range (low, high), the open files against fs.file-nr (allocated, unused,
    maximum). Empty when the plan fits."""
    problems = []
    running_names = set(running)
    new = [node for node in nodes if node["name"] not in running_names]
    new_workers = sum(1 for node in new if node["role"] == "worker")
    new_bootstraps = len(new) - new_workers
    reserved = sum(int(reservations[node["role"]]) for node in new)
    if reserved > meminfo_available:
        problems.append(
            f"{new_workers} new workers and {new_bootstraps} new bootstrap nodes reserve "
            f"{round(reserved / 1048576)} MiB of memory on {host} "
            f"(dht_nodes_worker_memory_reservation {round(reservations['worker'] / 1048576)} MiB, "
            "dht_nodes_bootstrap_memory_reservation "
            f"{round(reservations['bootstrap'] / 1048576)} MiB), more than its MemAvailable of "
            f"{round(meminfo_available / 1048576)} MiB: deploy fewer workers, add hosts to "
            "dht_workers, or lower the reservation."
        )
    ports = [int(node["port"]) for node in nodes]
    low, high = ephemeral
    if ports and (max(ports) > 65535 or any(low <= port <= high for port in ports)):
        problems.append(
            f"the nodes of {host} listen on ports {min(ports)} to {max(ports)}, which must stay "
            "at most 65535 and outside the host's ephemeral range net.ipv4.ip_local_port_range "
            f"{low}-{high} (the kernel gives those ports to outgoing connections): change "
            "cqkd_ports."
        )
    allocated, _unused, maximum = file_nr
    if allocated + len(ports) * FILES_PER_NODE > maximum:
        problems.append(
            f"{len(ports)} nodes need about {len(ports) * FILES_PER_NODE} open files on {host}, "
            f"but {allocated} of its fs.file-max {maximum} are in use: raise fs.file-max or "
            "deploy fewer nodes."
        )
    return problems


def cqkd_host_limits(
    proc: str,
    host: str,
    workers: Sequence[Mapping[str, Any]],
    bootstraps: Sequence[Mapping[str, Any]],
    worker_reservation: int,
    bootstrap_reservation: int,
) -> list[str]:
    """`probe.stdout | cqkd_host_limits(host, cqkd_plan_workers, cqkd_plan_bootstraps,
    worker bytes, bootstrap bytes)`: host_limit_problems for the nodes the plan puts on
    `host`, from one probe's output: the running containers' names, one a line, then
    /proc/meminfo, ip_local_port_range and fs/file-nr."""
    names, _, proc_files = proc.partition("MemTotal:")
    lines = proc_files.splitlines()
    available_kb = next(
        int(line.split()[1]) for line in lines if line.startswith("MemAvailable:")
    )
    nodes = [{**node, "role": "worker"} for node in workers if node["host"] == host] + [
        {**node, "role": "bootstrap"} for node in bootstraps if node["host"] == host
    ]
    return host_limit_problems(
        host,
        nodes,
        {"worker": int(worker_reservation), "bootstrap": int(bootstrap_reservation)},
        names.split(),
        available_kb * 1024,
        [int(n) for n in lines[-2].split()],
        [int(n) for n in lines[-1].split()],
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "cqkd_plan": cqkd_plan,
            "cqkd_port_collisions": cqkd_port_collisions,
            "cqkd_host_limits": cqkd_host_limits,
        }

"""Faults on three Docker hosts (the `multihost` Molecule scenario, scale=small): a worker
crashes, a whole host freezes for 30 s, a host leaves the network and comes back. After each
the DHT heals without help and a key exchange works. Key sessions run back to back through
each fault; every one ends confirmed with equal keys on both sides, or failed, never with
unequal keys.

Query probes on every host (probe.py) store and look up values across hosts all along; the
figures (heal times, query success) are printed, and written as JSON to
$CQKD_BENCH_RESULTS/multihost-faults.json when that directory is set (bench/multihost.sh).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from multihost_cluster import NETWORK, PROBE_PERIOD, Api, DockerHost, hosts, molecule, run

pytestmark = pytest.mark.deploy

HEAL_TIMEOUT = 180.0
PAUSE_SECONDS = 30.0
DISCONNECT_SECONDS = 20.0
BASELINE_SECONDS = 20.0
IN_FLIGHT_KEY_BITS = 1024


@dataclass
class Cluster:
    hosts: list[DockerHost]
    api_urls: tuple[str, str, str]  # Alice's, Bob's, the bearer token
    probes_started: float
    figures: dict[str, object] = field(default_factory=dict)
    api: Api = field(init=False)

    def __post_init__(self) -> None:
        self.api = Api(*self.api_urls)

    @property
    def worker_host(self) -> DockerHost:
        """The host that runs neither Alice nor Bob: its faults leave both parties up."""
        return next(h for h in self.hosts if not {"cqkd_alice", "cqkd_bob"} & set(h.groups))


def _dump_state(cluster_hosts: list[DockerHost]) -> None:
    for host in cluster_hosts:
        print(f"=== {host.name}")
        print(host.docker("ps", "--all", "--format", "{{.Names}}  {{.Status}}", check=False))
        for node in host.nodes():
            print(f"--- {node.name}")
            print(host.docker("logs", "--tail", "15", node.name, check=False))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    molecule("destroy")
    the_hosts = hosts()
    try:
        molecule("create")
        molecule("converge")
        # What `molecule test` would prove of this scenario, on the one build make test makes.
        molecule("idempotence")
        molecule("verify")
        alice_host = next(h for h in the_hosts if "cqkd_alice" in h.groups)
        bob_host = next(h for h in the_hosts if "cqkd_bob" in h.groups)
        alice = next(n for n in alice_host.nodes() if n.role == "alice")
        bob = next(n for n in bob_host.nodes() if n.role == "bob")
        token = alice_host.sh("cat", "/etc/cqkd/alice/api-token").strip()
        api_urls = (f"http://{alice_host.address}:{alice.port}",
                    f"http://{bob_host.address}:{bob.port}", token)
        image = alice_host.docker("inspect", "--format", "{{.Config.Image}}", alice.name).strip()
        bootstrap = ",".join(f"{h.address}:{n.port}" for h in the_hosts
                             for n in h.nodes() if n.role == "bootstrap")
        for host in the_hosts:
            host.start_probe(image, bootstrap, [h.name for h in the_hosts if h is not host])
        yield Cluster(the_hosts, api_urls, time.time())
    finally:
        _dump_state(the_hosts)
        molecule("destroy")


def _unhealed(cluster: Cluster) -> list[str]:
    """What still keeps the network from being whole: nodes that do not answer, DHT nodes
    that know no peer beyond their own host, Alice not seeing enough workers."""
    problems = []
    for host in cluster.hosts:
        nodes = host.nodes()
        for node in nodes:
            health = host.health(node)
            if health is None:
                problems.append(f"{host.name}/{node.name} does not answer /health")
            elif node.role in ("bootstrap", "worker") and int(
                    health.get("routing_table_size", 0)) <= len(nodes):  # type: ignore[call-overload]
                problems.append(f"{host.name}/{node.name} knows no peer on another host")
    if not cluster.api.converged():
        problems.append("Alice does not see the network converged")
    return problems


def _wait_healed(cluster: Cluster, since: float) -> float:
    """Seconds from `since` until the network is whole again."""
    while problems := _unhealed(cluster):
        assert time.time() - since < HEAL_TIMEOUT, (
            f"not healed {HEAL_TIMEOUT:.0f} s after the fault: {'; '.join(problems)}"
        )
        time.sleep(1)
    return round(time.time() - since, 1)


def _assert_exchange_works(cluster: Cluster) -> float:
    began = time.time()
    view = cluster.api.wait_session(cluster.api.start_session(256))
    assert view["status"] == "confirmed", f"key exchange after the fault: {view}"
    assert cluster.api.keys_match(str(view["key_id"])), "Alice's and Bob's keys differ"
    return round(time.time() - began, 1)


def _assert_in_flight_session(api: Api, process_id: str) -> str:
    """A session that ran through the fault: confirmed with equal keys, or failed."""
    view = api.wait_session(process_id)
    if view["status"] == "confirmed":
        assert api.keys_match(str(view["key_id"])), (
            "a session confirmed through the fault delivered unequal keys"
        )
    else:
        assert view["status"] == "failed" and view["key_id"] is None, view
    return str(view["outcome"])


@contextmanager
def _sessions_throughout(cluster: Cluster) -> Iterator[Counter[str]]:
    """Key sessions back to back, in a thread, while the block runs; yields their outcomes
    so far. Any session that ends otherwise than confirmed-and-equal or failed fails the test."""
    outcomes: Counter[str] = Counter()
    errors: list[BaseException] = []
    stop = threading.Event()
    api = Api(*cluster.api_urls)  # httpx clients are not shared between threads

    def run_sessions() -> None:
        try:
            while not stop.is_set():
                outcomes[_assert_in_flight_session(api, api.start_session(IN_FLIGHT_KEY_BITS))] += 1
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    thread = threading.Thread(target=run_sessions, name="sessions", daemon=True)
    thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        thread.join(timeout=240)
    if errors:
        raise errors[0]
    assert outcomes, "no session ended while the fault ran"


def _record(cluster: Cluster, fault: str, **figures: object) -> None:
    cluster.figures[fault] = figures
    print(f"{fault}: {json.dumps(figures)}")
    results = os.environ.get("CQKD_BENCH_RESULTS")
    if results:
        path = Path(results) / "multihost-faults.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cluster.figures, indent=2) + "\n")


def _lookup_rate(cluster: Cluster, begin: float, end: float) -> dict[str, object]:
    """The probes' lookups issued in [begin, end): how many, the share that found their
    value, and when (seconds after `begin`) the others were issued."""
    window = [(t, ok) for host in cluster.hosts for t, ok in host.probe_results()
              if begin <= t < end]
    found = sum(ok for _, ok in window)
    return {"lookups": len(window),
            "lookup_success": round(found / len(window), 4) if window else None,
            "failed_lookups_at": sorted(round(t - begin, 1) for t, ok in window if not ok)}


def _wait_lookups_succeed(cluster: Cluster, since: float, window: float = 20.0) -> float:
    """Seconds from `since` until the lookups of a whole `window` succeed at 99 % or more."""
    while True:
        now = time.time()
        results = [r for host in cluster.hosts for r in host.probe_results() if r[0] >= since]
        start = since
        while start + window + PROBE_PERIOD * 2 <= now:
            found = [ok for t, ok in results if start <= t < start + window]
            if found and sum(found) / len(found) >= 0.99:
                return round(start - since, 1)
            start += 1.0
        assert now - since < HEAL_TIMEOUT, (
            f"lookups still fail {HEAL_TIMEOUT:.0f} s after the host rejoined"
        )
        time.sleep(2)


def test_network_is_whole_before_faults(cluster: Cluster) -> None:
    whole = _wait_healed(cluster, cluster.probes_started)
    exchange = _assert_exchange_works(cluster)
    # Lookups from the third round after the network is whole: the first rounds look for
    # values that probes started later have not stored yet.
    settled = cluster.probes_started + whole + 2 * PROBE_PERIOD
    time.sleep(max(0.0, settled + BASELINE_SECONDS - time.time()))
    _record(cluster, "baseline", seconds_to_whole_after_probes_start=whole,
            key_exchange_seconds=exchange, **_lookup_rate(cluster, settled, time.time()))


def test_heals_after_a_worker_crash(cluster: Cluster) -> None:
    host = cluster.worker_host
    worker = next(n for n in host.nodes() if n.role == "worker")
    with _sessions_throughout(cluster) as outcomes:
        time.sleep(1)
        crashed = time.time()
        host.kill_node(worker)
        healed = _wait_healed(cluster, crashed)
    _record(cluster, "worker_crash", sessions_through_fault=dict(outcomes),
            seconds_to_heal=healed, key_exchange_seconds=_assert_exchange_works(cluster))


def test_heals_after_a_host_pause(cluster: Cluster) -> None:
    host = cluster.worker_host
    with _sessions_throughout(cluster) as outcomes:
        time.sleep(1)
        run("docker", "pause", host.name)
        try:
            time.sleep(PAUSE_SECONDS)
        finally:
            run("docker", "unpause", host.name)
        resumed = time.time()
        healed = _wait_healed(cluster, resumed)
    _record(cluster, "host_pause", pause_seconds=PAUSE_SECONDS,
            sessions_through_fault=dict(outcomes), seconds_to_heal=healed,
            key_exchange_seconds=_assert_exchange_works(cluster))


def test_heals_after_a_host_leaves_the_network(cluster: Cluster) -> None:
    host = cluster.worker_host
    with _sessions_throughout(cluster) as outcomes:
        time.sleep(1)
        run("docker", "network", "disconnect", NETWORK, host.name)
        try:
            time.sleep(DISCONNECT_SECONDS)
        finally:
            run("docker", "network", "connect", "--ip", host.address, NETWORK, host.name)
        rejoined = time.time()
        healed = _wait_healed(cluster, rejoined)
    exchange = _assert_exchange_works(cluster)
    lookups_back = _wait_lookups_succeed(cluster, rejoined)
    # A minute of lookups after the rejoin, for the figures.
    time.sleep(max(0.0, rejoined + 62 - time.time()))
    first_minute = _lookup_rate(cluster, rejoined, rejoined + 60)
    _record(cluster, "host_disconnect", disconnect_seconds=DISCONNECT_SECONDS,
            sessions_through_fault=dict(outcomes), seconds_to_heal=healed,
            key_exchange_seconds=exchange, seconds_until_lookups_99=lookups_back,
            first_minute_after_rejoin=first_minute)

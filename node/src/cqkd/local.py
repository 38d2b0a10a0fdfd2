"""A whole network in one process on 127.0.0.1: bootstrap nodes plus N workers, real UDP.

    async with LocalNetwork(settings, workers=100) as net:
        net.nodes, net.bootstraps, net.workers, net.discovery_seconds
        await net.add_node("alice", setup=register_alice_rpcs)   # extra nodes join too
        net.kill_workers(0.1)

Workers start (open their socket and join) at most JOIN_CONCURRENCY at a time.
`discovery_seconds` runs from the last worker's start until every node knows at least
min(k, N-1) live peers; `startup_seconds` from the first node's start to the same point.

`run_local()` is the engine of `cqkd local`: it returns the JSON-able report that the CLI
prints (and that other parts extend with their own keys).
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

from cqkd.dht.bootstrap import BootstrapSelector
from cqkd.dht.node import DhtNode
from cqkd.dht.params import bootstrap_count
from cqkd.settings import Settings

LOOPBACK = "127.0.0.1"
JOIN_CONCURRENCY = 8  # paced joins: more in flight only adds event-loop lag
CONVERGENCE_POLL_SECONDS = 0.05


class ConvergenceError(RuntimeError):
    """The network did not converge within the discovery timeout."""


class LocalNetwork:
    def __init__(
        self,
        settings: Settings,
        workers: int,
        bootstrap_nodes: int | None = None,
        rng: random.Random | None = None,
        maintenance: bool = True,
    ) -> None:
        self.worker_count = workers
        self.bootstrap_count = bootstrap_nodes or bootstrap_count(workers)
        # One network-size hint and fresh ids for every node of this network.
        self.settings = settings.model_copy(update={"worker_count": workers, "node_id": None})
        self.rng = rng or random.Random()
        self.maintenance = maintenance
        self.bootstraps: list[DhtNode] = []
        self.workers: list[DhtNode] = []
        self.extra: list[DhtNode] = []
        self.killed: list[DhtNode] = []
        self.discovery_seconds = 0.0
        self.startup_seconds = 0.0
        self._selector: BootstrapSelector | None = None

    @property
    def nodes(self) -> list[DhtNode]:
        """Every running node."""
        return [n for n in self.bootstraps + self.workers + self.extra if n.running]

    @property
    def bootstrap_addresses(self) -> list[tuple[str, int]]:
        return [n.address for n in self.bootstraps]

    def _node(self, role: str) -> DhtNode:
        return DhtNode(
            self.settings,
            role,
            host=LOOPBACK,
            port=0,
            selector=self._selector,
            maintenance=self.maintenance,
        )

    async def __aenter__(self) -> LocalNetwork:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        began = time.monotonic()
        self.bootstraps = [self._node("bootstrap") for _ in range(self.bootstrap_count)]
        for node in self.bootstraps:
            await node.start()
        for node in self.bootstraps[1:]:
            await node.join(self.bootstrap_addresses[:1])
        # Workers share one selector, as a fleet would share the bootstraps' load.
        self._selector = BootstrapSelector(
            self.bootstrap_addresses,
            self.settings.bootstrap_selection_strategy,
            self.settings.bootstrap_max_connections_per_node,
            rng=self.rng,
        )
        self.workers = [self._node("worker") for _ in range(self.worker_count)]
        # Workers start as a fleet would: each opens its socket and joins at once, at most
        # JOIN_CONCURRENCY at a time (one event loop carries every node's work here).
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)
        last_start = time.monotonic()

        async def start_worker(node: DhtNode) -> None:
            nonlocal last_start
            async with gate:
                await node.start()
                last_start = time.monotonic()
                await node.join(self.bootstrap_addresses)

        await asyncio.gather(*(start_worker(n) for n in self.workers))
        await self.wait_converged()
        self.discovery_seconds = time.monotonic() - last_start
        self.startup_seconds = time.monotonic() - began

    def converged(self, node: DhtNode, live: int) -> bool:
        return len(node.live_peers()) >= min(node.params.k, live - 1)

    async def wait_converged(self) -> None:
        """Until every node knows min(k, N-1) live peers; laggards refresh their table."""
        nodes = self.nodes
        limit = nodes[0].params.discovery_timeout
        deadline = time.monotonic() + limit
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)

        async def refresh(node: DhtNode) -> None:
            async with gate:
                await node.refresh()

        while True:
            lagging = [n for n in nodes if not self.converged(n, len(nodes))]
            if not lagging:
                return
            if time.monotonic() > deadline:
                raise ConvergenceError(
                    f"{len(lagging)} of {len(nodes)} nodes know fewer than min(k, N-1) live "
                    f"peers after {limit:.0f} s"
                )
            await asyncio.gather(*(refresh(n) for n in lagging))
            await asyncio.sleep(CONVERGENCE_POLL_SECONDS)

    async def add_node(self, role: str, setup: Callable[[DhtNode], None] | None = None) -> DhtNode:
        """Start and join one more node (e.g. Alice); `setup` runs before it starts."""
        node = self._node(role)
        if setup is not None:
            setup(node)
        await node.start()
        await node.join(self.bootstrap_addresses)
        self.extra.append(node)
        return node

    async def kill_workers(self, fraction: float) -> list[DhtNode]:
        """Stop a random `fraction` of the running workers, without notice to their peers."""
        running = [n for n in self.workers if n.running]
        victims = self.rng.sample(running, round(fraction * len(running)))
        for node in victims:
            await node.stop()
        self.killed.extend(victims)
        return victims

    async def stop(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes))


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1]


async def run_lookups(net: LocalNetwork, lookups: int) -> dict[str, Any]:
    """`lookups` store/get pairs between random running nodes, one at a time."""
    durations: list[float] = []
    set_durations: list[float] = []
    found = 0
    cpu = time.process_time()
    for index in range(lookups):
        nodes = net.nodes
        writer, reader = net.rng.choice(nodes), net.rng.choice(nodes)
        key, value = f"cqkd-local-{index}-{os.urandom(4).hex()}", os.urandom(16).hex()
        began = time.monotonic()
        await writer.set(key, value)
        set_durations.append(time.monotonic() - began)
        began = time.monotonic()
        got = await reader.get(key)
        durations.append(time.monotonic() - began)
        found += got == value
    cpu = time.process_time() - cpu
    return {
        "lookups": lookups,
        "lookup_p50_seconds": round(_percentile(durations, 0.50), 6),
        "lookup_p99_seconds": round(_percentile(durations, 0.99), 6),
        "set_p50_seconds": round(_percentile(set_durations, 0.50), 6),
        "set_p99_seconds": round(_percentile(set_durations, 0.99), 6),
        # CPU of the whole process (every node) per store/get pair.
        "cpu_per_pair_seconds": round(cpu / lookups, 6) if lookups else None,
        "query_success_rate": round(found / lookups, 6) if lookups else None,
    }


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def run_local(
    settings: Settings,
    workers: int,
    lookups: int,
    kill_fraction: float,
    seed: int | None,
    key_bits: int | None = None,
    sessions: int = 1,
    concurrency: int = 1,
    rogue: str | None = None,
) -> dict[str, Any]:
    """Start a network, wait for convergence, optionally kill workers, run lookups.

    With `key_bits`, Alice and Bob join and run `sessions` key sessions first, and the
    workers are killed while those run (see cqkd.qkd.network); with `rogue`, one worker
    misbehaves so (cqkd.qkd.rogue) and the report says in how many sessions it had a role.
    """
    async with LocalNetwork(settings, workers, rng=random.Random(seed)) as net:
        report: dict[str, Any] = {
            "nodes": len(net.nodes),
            "workers": workers,
            "bootstrap_nodes": net.bootstrap_count,
            "discovery_seconds": round(net.discovery_seconds, 3),
            "startup_seconds": round(net.startup_seconds, 3),
            "k": net.workers[0].params.k if net.workers else None,
            "alpha": net.workers[0].params.alpha if net.workers else None,
        }
        if key_bits:
            from cqkd.qkd.network import attach, run_sessions

            protocol = await attach(net, settings, rogue=rogue)
            try:
                outcome = await run_sessions(
                    net, protocol, key_bits, sessions, concurrency, kill_fraction
                )
                report.update(outcome)
            finally:
                await protocol.stop()
            killed = net.killed
        else:
            killed = await net.kill_workers(kill_fraction) if kill_fraction else []
        report["killed_workers"] = len(killed)
        report.update(await run_lookups(net, lookups))
        report["peak_rss_bytes"] = peak_rss_bytes()
        return report

"""A whole network in one process on 127.0.0.1: bootstrap nodes plus N workers, real UDP.

    async with LocalNetwork(settings, workers=100) as net:
        net.nodes, net.bootstraps, net.workers, net.discovery_seconds
        await net.add_node("alice", setup=register_alice_rpcs)   # extra nodes join too
        net.kill_workers(0.1)

Workers start (open their socket and join) one after another (JOIN_CONCURRENCY).
`discovery_seconds` runs from the last worker's start until every node knows at least
min(k, N-1) live peers; `startup_seconds` from the first node's start to the same point.

`cqkd local` builds its report on it (cqkd.sim.report); Alice, Bob and protocol workers
join it through cqkd.sim.sessions.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Callable

from cqkd.dht.bootstrap import BootstrapSelector
from cqkd.dht.config import DhtConfig
from cqkd.dht.node import DhtNode
from cqkd.dht.params import bootstrap_count
from cqkd.dht.proven import PROVEN_ADDRESSES, ProvenAddresses
from cqkd.settings import Settings

LOOPBACK = "127.0.0.1"
# Joins in flight at once. One event loop carries every node's work, so concurrency buys
# no time; it cost CPU: at 3,000 nodes one join at a time made the same RPCs as 8 at a
# time (41.9 against 42.1 find_node, 2.2 against 2.4 pings per join, no timeouts) in 20.3
# instead of 23.1 CPU seconds, and 10,000 nodes started in 96.0 s instead of 144.9 s (2 at
# a time: 122.6 s; 2026-11-30, alone on the machine). Each join's lookup works among the
# same few nodes; interleaved joins spread the loop's work over many more. The laggards'
# refreshes of wait_converged go one at a time too, for the same reason. discovery_seconds
# (from the last worker's start) thus covers the last join and the convergence after it.
JOIN_CONCURRENCY = 1
CONVERGENCE_POLL_SECONDS = 0.05
# Every node of the network lives in this one heap, so each full garbage collection walks
# every node's tables: at 2,000 nodes collections took 40 % of the process's CPU during the
# join (10.1 of 25.5 s, timed with gc.callbacks). The tables live as long as the network:
# every FREEZE_EVERY joins they are moved out of the collector's reach (gc.freeze, after a
# collection so that no garbage is frozen); stop() hands them back (gc.unfreeze).
FREEZE_EVERY = 250


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
        self.config = DhtConfig(**self.settings.dht_options())
        self.rng = rng or random.Random()
        self.maintenance = maintenance
        self.bootstraps: list[DhtNode] = []
        self.workers: list[DhtNode] = []
        self.extra: list[DhtNode] = []
        self.killed: list[DhtNode] = []
        self.discovery_seconds = 0.0
        self.startup_seconds = 0.0
        self._selector: BootstrapSelector | None = None
        # Every node here is on one host: an address proven to one is proven to all.
        self.proven = ProvenAddresses(max(PROVEN_ADDRESSES, 2 * (workers + self.bootstrap_count)))

    @property
    def nodes(self) -> list[DhtNode]:
        """Every running node."""
        return [n for n in self.bootstraps + self.workers + self.extra if n.running]

    @property
    def bootstrap_addresses(self) -> list[tuple[str, int]]:
        return [n.address for n in self.bootstraps]

    def _node(self, role: str) -> DhtNode:
        return DhtNode(
            self.config,
            role,
            host=LOOPBACK,
            port=0,
            selector=self._selector,
            maintenance=self.maintenance,
            proven=self.proven,
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
        # Each meets every other, as a deployment's bootstrap nodes do (DhtNode.join).
        for node in self.bootstraps:
            await node.join(self.bootstrap_addresses, required=False)
        # Workers share one selector, as a fleet would share the bootstraps' load.
        self._selector = BootstrapSelector(
            self.bootstrap_addresses,
            self.config.bootstrap_strategy,
            self.config.bootstrap_max_connections,
            rng=self.rng,
        )
        self.workers = [self._node("worker") for _ in range(self.worker_count)]
        # Each worker opens its socket and joins, JOIN_CONCURRENCY at a time.
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)
        last_start = time.monotonic()
        joined = 0

        async def start_worker(node: DhtNode) -> None:
            nonlocal last_start, joined
            async with gate:
                await node.start()
                last_start = time.monotonic()
                await node.join(self.bootstrap_addresses)
                joined += 1
                if joined % FREEZE_EVERY == 0:
                    _freeze_heap()

        await asyncio.gather(*(start_worker(n) for n in self.workers))
        await self.wait_converged()
        _freeze_heap()
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

        lagging = nodes
        while True:
            # Only the laggards are checked again (a table rarely shrinks while the network
            # starts), and everyone once more before the end.
            lagging = [n for n in lagging if not self.converged(n, len(nodes))]
            if not lagging:
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
        gc.unfreeze()


def _freeze_heap() -> None:
    gc.collect()
    gc.freeze()

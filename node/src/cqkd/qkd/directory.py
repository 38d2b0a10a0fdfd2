"""Live workers as Alice and Bob see them (step 2): the routing table plus lookups of
random ids, then a parallel `hello` to each peer. Only peers whose hello carries an
admission ticket from one of ADMISSION_KEYS count as workers: a node that merely joined
the DHT serves lookups but never gets a role. Cached briefly, so that back-to-back
sessions do not rediscover; a session that lost positions forces a refresh."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from cqkd.logs import event
from cqkd.metrics import NETWORK_CONVERGED_TIMESTAMP
from cqkd.qkd.channel import Address, Channel, PeerInfo
from cqkd.qkd.crypto import is_admitted
from cqkd.qkd.session import ROLES
from cqkd.settings import Settings

log = logging.getLogger(__name__)

MORE_DISCOVERY_ROUNDS = 3
CONVERGING_REFRESH_SECONDS = 1.0
MISSED_HELLOS_TO_DROP = 2


class WorkerDirectory:
    def __init__(self, channel: Channel, settings: Settings) -> None:
        self.channel = channel
        self.settings = settings
        self.authorities = settings.admission_key_bytes
        self._workers: list[PeerInfo] = []
        self._missed: dict[Address, int] = {}
        self._fresh_until = 0.0
        self._refresh: asyncio.Task[list[PeerInfo]] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        # Wall-clock time (comparable with the workers' cqkd_dht_joined_timestamp_seconds)
        # at which every expected worker was first seen; None while they are not.
        self._converged_at: float | None = None

    def start(self, also: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Refresh in the background: every second until WORKER_COUNT workers are seen,
        then every WORKER_CACHE_SECONDS, so that /ready and /network-status stay current
        without sessions. `also` runs before each refresh (Alice looks for Bob); while it
        returns False the refresh stays at every second."""
        self._maintenance = asyncio.create_task(self._maintain(also))

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance

    async def _maintain(self, also: Callable[[], Awaitable[bool]] | None) -> None:
        while True:
            satisfied = True
            try:
                if also is not None:
                    satisfied = await also()
                await self.workers(refresh=True)
            except Exception as exc:  # keep refreshing; the next round may work
                event(log, "discovery_failed", logging.WARNING, error=type(exc).__name__)
            converged = satisfied and self.status()["converged"]
            await asyncio.sleep(
                max(CONVERGING_REFRESH_SECONDS, self.settings.worker_cache_seconds)
                if converged else CONVERGING_REFRESH_SECONDS
            )

    @property
    def known(self) -> list[PeerInfo]:
        return list(self._workers)

    async def workers(self, refresh: bool = False, wait: bool = True) -> list[PeerInfo]:
        """Live workers, minus those that just failed to answer. A stale list is refreshed;
        with `wait` false a known list is returned at once and refreshed in the background
        (for callers inside an RPC handler, whose caller's timeout is short)."""
        if refresh or time.monotonic() >= self._fresh_until:
            if self._refresh is None or self._refresh.done():
                self._refresh = asyncio.create_task(self._discover())
            if wait or not self._workers:
                await asyncio.shield(self._refresh)
        node = self.channel.node
        return [w for w in self._workers if node.is_reachable(w.address)]

    async def _discover(self) -> list[PeerInfo]:
        node = self.channel.node
        lookups = self.settings.discovery_lookups
        peers = {p.node_id: p for p in await node.discover(lookups)}
        # A routing table holds k peers per bucket: in a larger network than that, more
        # lookups of random ids until the expected worker count is seen (or no progress).
        for _ in range(MORE_DISCOVERY_ROUNDS):
            if len(peers) >= self.settings.worker_count:
                break
            lookups = max(2 * lookups, 4)
            found = {p.node_id: p for p in await node.discover(lookups)}
            if found.keys() <= peers.keys():
                break
            peers.update(found)
        # Known workers stay candidates when this round's lookups missed them, and survive
        # one unanswered hello: on a busy network answers come late, and /ready must not
        # flap. A worker leaves after MISSED_HELLOS_TO_DROP unanswered hellos in a row.
        known = {w.address: w for w in self._workers}
        addresses = list({(p.host, p.port) for p in peers.values()} | known.keys())
        hellos = await asyncio.gather(*(self.channel.hello(a) for a in addresses))
        workers = []
        for address, hello in zip(addresses, hellos, strict=True):
            if hello is not None:
                self._missed.pop(address, None)
                if set(ROLES) <= set(hello.roles) and self.admitted(hello):
                    workers.append(hello)
            elif address in known:
                self._missed[address] = self._missed.get(address, 0) + 1
                if self._missed[address] < MISSED_HELLOS_TO_DROP:
                    workers.append(known[address])
                else:
                    del self._missed[address]
        self._workers = workers
        self._note_convergence()
        self._fresh_until = time.monotonic() + self.settings.worker_cache_seconds
        return self._workers

    def _converged(self) -> bool:
        return len(self._workers) >= max(6, self.settings.worker_count)

    def _note_convergence(self) -> None:
        if not self._converged():
            self._converged_at = None
        elif self._converged_at is None:
            self._converged_at = time.time()
            event(log, "network_converged", workers=len(self._workers))
        NETWORK_CONVERGED_TIMESTAMP.set(self._converged_at or 0)

    def admitted(self, peer: PeerInfo) -> bool:
        """Admitted by the deployment (Alice and Bob refuse to start without ADMISSION_KEYS;
        an engine built without them, in a test, takes every worker)."""
        return not self.authorities or is_admitted(peer.public_key, peer.ticket, self.authorities)

    def status(self) -> dict[str, object]:
        node = self.channel.node
        workers = len(self._workers)
        return {
            "address": f"{node.address[0]}:{node.address[1]}",
            "node_id": node.node_id.hex(),
            "routing_table_peers": node.routing_table_size,
            "live_workers": workers,
            "expected_workers": self.settings.worker_count,
            "converged": self._converged(),
            "converged_at": self._converged_at,
        }

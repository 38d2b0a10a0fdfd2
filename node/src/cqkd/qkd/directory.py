"""Live workers as Alice and Bob see them (step 2): a crawl of the DHT's id space finds
every node (cqkd.qkd.crawl), then a `hello` to each new address. Only peers whose hello
carries an admission ticket from one of ADMISSION_KEYS count as workers: a node that merely
joined the DHT serves lookups but never gets a role. Cached briefly, so that back-to-back
sessions do not rediscover; a session that lost positions forces a refresh.

Cost of one refresh (messages sent by this node): the crawl's FIND_NODE requests (about
4N/k to 8N/k for N nodes and the DHT's k: 64 at N=500, k=40), plus one hello per address
not seen before, plus one hello per known address last answered over WORKER_CACHE_SECONDS
ago (so every known worker once per cache period, not once per refresh). A forced refresh
(`workers(refresh=True)`) greets every known address and waits for every answer. Each
hello's result counts as soon as it arrives, so a slow or dead peer (at most three RPC
timeouts) delays no other, nor the next refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from cqkd.dht.node import Peer
from cqkd.logs import event
from cqkd.metrics import DHT_DISCOVERY_DURATION, NETWORK_CONVERGED_TIMESTAMP
from cqkd.qkd.channel import Address, Channel, PeerInfo
from cqkd.qkd.crawl import Crawl
from cqkd.qkd.crypto import is_admitted
from cqkd.qkd.session import ROLES
from cqkd.settings import Settings

log = logging.getLogger(__name__)

# While not every expected worker is seen: a worker that joins is seen within about this
# plus one crawl (issue 14's goal: 2 s after the last worker is up).
CONVERGING_REFRESH_SECONDS = 0.5
# A background refresh waits this long for its hellos; later answers count when they come
# (a dead peer's takes the RPC timeout), and the next refresh does not greet them again.
HELLO_WAIT_SECONDS = 0.5
MISSED_HELLOS_TO_DROP = 2
# A hello's answer is awaited this many RPC timeouts: while 500 worker containers started
# on 2 cores, thousands of answers reached Alice after the 2-s RPC timeout, known workers
# missed two hellos in a row and were dropped, and her convergence came and went (three
# times in 90 s). Nothing waits on a hello but its own answer.
HELLO_TIMEOUT_RPC_TIMEOUTS = 3


class WorkerDirectory:
    def __init__(self, channel: Channel, settings: Settings) -> None:
        self.channel = channel
        self.settings = settings
        self.authorities = settings.admission_key_bytes
        self._workers: dict[Address, PeerInfo] = {}
        self._missed: dict[Address, int] = {}
        # When each address (worker or not) was last greeted and answered, or, for a
        # known worker, missed: it is greeted again once that is a cache period old.
        self._checked: dict[Address, float] = {}
        # Why each greeted address that is not a worker is not (its last hello's outcome),
        # for /network-status: a deployment that does not converge says which and why.
        self._refused: dict[Address, str] = {}
        self._peers: dict[bytes, Peer] = {}  # the last crawl's nodes, seeds of the next
        self._greetings: dict[Address, asyncio.Task[None]] = {}  # hellos in flight
        # Rechecked after a failed message, their hello not yet answered: not offered to
        # sessions meanwhile, or each round would seal more commands to a stale key.
        self._suspect: set[Address] = set()
        self._fresh_until = 0.0
        self._refresh: asyncio.Task[list[PeerInfo]] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        # Wall-clock time (comparable with the workers' cqkd_dht_joined_timestamp_seconds)
        # at which every expected worker was first seen; None while they are not.
        self._converged_at: float | None = None

    def start(self, also: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Refresh in the background: every CONVERGING_REFRESH_SECONDS until WORKER_COUNT
        workers are seen, then every WORKER_CACHE_SECONDS, so that /ready and
        /network-status stay current without sessions. `also` runs before each refresh
        (Alice looks for Bob); while it returns False the refresh stays that frequent."""
        self._maintenance = asyncio.create_task(self._maintain(also))

    async def stop(self) -> None:
        for task in (self._maintenance, self._refresh, *self._greetings.values()):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _maintain(self, also: Callable[[], Awaitable[bool]] | None) -> None:
        while True:
            satisfied = True
            try:
                if also is not None:
                    satisfied = await also()
                await asyncio.shield(self._begin_refresh(everyone=False))
            except Exception as exc:  # keep refreshing; the next round may work
                event(log, "discovery_failed", logging.WARNING, error=type(exc).__name__)
            converged = satisfied and self.status()["converged"]
            await asyncio.sleep(
                max(CONVERGING_REFRESH_SECONDS, self.settings.worker_cache_seconds)
                if converged else CONVERGING_REFRESH_SECONDS
            )

    @property
    def known(self) -> list[PeerInfo]:
        return list(self._workers.values())

    async def workers(self, refresh: bool = False, wait: bool = True) -> list[PeerInfo]:
        """Live workers, minus those that just failed to answer. A stale list is refreshed
        (`refresh`: at once, greeting every known address again); with `wait` false a known
        list is returned at once and refreshed in the background (for callers inside an RPC
        handler, whose caller's timeout is short)."""
        if refresh or time.monotonic() >= self._fresh_until:
            refreshing = self._begin_refresh(everyone=refresh)
            if wait or not self._workers:
                await asyncio.shield(refreshing)
        node = self.channel.node
        return [w for w in self._workers.values()
                if node.is_reachable(w.address) and w.address not in self._suspect]

    def _begin_refresh(self, everyone: bool) -> asyncio.Task[list[PeerInfo]]:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._discover(everyone))
        return self._refresh

    async def _discover(self, everyone: bool) -> list[PeerInfo]:
        node = self.channel.node
        due = time.monotonic() - self.settings.worker_cache_seconds
        greeted: set[Address] = set()

        def greet(peers: Iterable[Peer | PeerInfo]) -> None:
            for peer in peers:
                address = (peer.host, peer.port)
                if address in self._greetings or address in greeted or not (
                    everyone or self._checked.get(address, due) <= due
                ):
                    continue
                greeted.add(address)
                self._greetings[address] = asyncio.create_task(self._greet(address))

        began = time.monotonic()
        greet(self._workers.values())
        seeds = [p for p in self._peers.values() if node.is_reachable((p.host, p.port))]
        seeds += node.live_peers()
        greet(seeds)
        expected = max(self.settings.worker_count, len(self._peers))
        self._peers = await Crawl(node, expected, greet).run(seeds)
        # Observed as DhtNode.discover's lookups were, which the crawl replaces here.
        DHT_DISCOVERY_DURATION.observe(time.monotonic() - began)
        if self._greetings:
            await asyncio.wait(list(self._greetings.values()),
                               timeout=None if everyone else HELLO_WAIT_SECONDS)
        current = {(p.host, p.port) for p in self._peers.values()} | self._workers.keys()
        self._checked = {a: t for a, t in self._checked.items() if a in current}
        self._refused = {a: r for a, r in self._refused.items() if a in current}
        self._fresh_until = time.monotonic() + self.settings.worker_cache_seconds
        return list(self._workers.values())

    def recheck(self, address: Address) -> None:
        """Hello `address` again now: a worker that refused or missed a message may have
        restarted at the same address with a new identity, whose key the next round must
        use. A redeploy that replaces the containers does exactly that, and known workers
        are otherwise greeted only once per WORKER_CACHE_SECONDS. A hello in flight is
        replaced: it may have gone out while the worker was down, and would be awaited
        HELLO_TIMEOUT_RPC_TIMEOUTS RPC timeouts for nothing. Until it answers, `workers`
        leaves the address out."""
        self._suspect.add(address)
        stale = self._greetings.get(address)
        if stale is not None:
            stale.cancel()
        self._greetings[address] = asyncio.create_task(self._greet(address))

    async def _greet(self, address: Address) -> None:
        """Hello `address` and count its answer at once. A known worker survives one
        unanswered hello (on a busy network answers come late, and /ready must not flap)
        and leaves after MISSED_HELLOS_TO_DROP in a row, a cache period apart."""
        try:
            timeout = HELLO_TIMEOUT_RPC_TIMEOUTS * self.channel.node.config.rpc_timeout
            # Even to an address counted dead: a worker whose hello timed out under load
            # would otherwise stay unseen for the DHT's DEAD_PEER_TTL (15 s). One hello per
            # address is in flight at a time, so a dead one costs one per timeout.
            hello = await self.channel.hello(address, answer_within=timeout, even_if_dead=True)
        finally:
            if self._greetings.get(address) is asyncio.current_task():
                self._greetings.pop(address)
                self._suspect.discard(address)
        if hello is not None:
            self._checked[address] = time.monotonic()
            self._missed.pop(address, None)
            refused = ("not_a_worker" if not set(ROLES) <= set(hello.roles)
                       else None if self.admitted(hello) else "not_admitted")
            if refused is None:
                self._refused.pop(address, None)
                self._workers[address] = hello
            else:
                self._refused[address] = refused
                self._workers.pop(address, None)
        else:
            self._refused[address] = "no_answer"
            if address in self._workers:
                self._checked[address] = time.monotonic()
                self._missed[address] = self._missed.get(address, 0) + 1
                if self._missed[address] >= MISSED_HELLOS_TO_DROP:
                    del self._workers[address], self._missed[address]
        self._note_convergence()

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
            "not_workers": self._not_workers(),
        }

    def _not_workers(self) -> dict[str, int]:
        """How many nodes of the last crawl are not counted as workers, by reason: their
        last hello went unanswered (`no_answer`), or was answered by a node without every
        role (`not_a_worker`: bootstraps, Bob) or without a valid admission ticket
        (`not_admitted`); `greeting` while a hello is in flight, `not_greeted` before."""
        counts: dict[str, int] = {}
        for peer in self._peers.values():
            address = (peer.host, peer.port)
            if address in self._workers:
                continue
            reason = "greeting" if address in self._greetings else self._refused.get(
                address, "not_greeted")
            counts[reason] = counts.get(reason, 0) + 1
        return counts

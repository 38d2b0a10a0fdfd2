"""Workers that join after Alice and Bob, as in a deployment: how long Alice and Bob take
to see every one of them (issue 14's goal: at most 2 s after the last worker is up).

    result = await late_join(settings, workers=200, join_seconds=10.0)
    result.alice_seen, result.bob_seen            # workers each sees at the end (counts)
    result.alice_delay_seconds                    # last worker up -> Alice saw them all

The bootstrap nodes start first, then Bob and Alice (their directories refreshing), then
`workers` admitted workers start and join at an even pace over `join_seconds`, at most
LATE_JOIN_CONCURRENCY at a time. A worker is "up" when its join returned, as a deployed worker
stamps cqkd_dht_joined_timestamp_seconds. Everything runs on 127.0.0.1 over real UDP,
in this process.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from cqkd.dht.config import DhtConfig
from cqkd.dht.node import DhtNode
from cqkd.dht.params import bootstrap_count
from cqkd.dht.proven import PROVEN_ADDRESSES, ProvenAddresses
from cqkd.qkd.alice import Alice
from cqkd.qkd.bob import Bob
from cqkd.qkd.channel import serve_hello
from cqkd.qkd.crypto import Identity, admit
from cqkd.qkd.keystore import KeyStore
from cqkd.qkd.worker import Worker
from cqkd.settings import Settings
from cqkd.sim.network import LOOPBACK

POLL_SECONDS = 0.05
# Workers joining at once, as a fleet's containers start together: Alice's discovery is
# measured against a burst, not one join after another.
LATE_JOIN_CONCURRENCY = 8


@dataclass
class LateJoinResult:
    workers: int
    last_up: float  # wall clock (time.time()) when the last worker's join returned
    alice_seen: int
    bob_seen: int
    alice_converged_at: float | None  # wall clock, as /network-status reports it
    bob_converged_at: float | None

    @property
    def alice_delay_seconds(self) -> float | None:
        """Seconds from the last worker up to Alice seeing all (None: she did not)."""
        if self.alice_converged_at is None:
            return None
        return max(0.0, self.alice_converged_at - self.last_up)

    @property
    def bob_delay_seconds(self) -> float | None:
        if self.bob_converged_at is None:
            return None
        return max(0.0, self.bob_converged_at - self.last_up)


async def late_join(
    settings: Settings, workers: int, join_seconds: float, wait_seconds: float = 60.0
) -> LateJoinResult:
    """Run the scenario; wait at most `wait_seconds` after the last worker is up for both
    Alice and Bob to see every worker. `settings` carries the protocol and DHT knobs."""
    authority = Identity.generate()
    alice_identity, bob_identity = Identity.generate(), Identity.generate()
    settings = settings.model_copy(update={
        "worker_count": workers, "node_id": None,
        "admission_keys": [authority.public_key.hex()],
        "trusted_owners": [alice_identity.public_key.hex(), bob_identity.public_key.hex()],
    })
    config = DhtConfig(**settings.dht_options())
    proven = ProvenAddresses(max(PROVEN_ADDRESSES, 4 * workers))

    def new_node(role: str) -> DhtNode:
        return DhtNode(config, role, host=LOOPBACK, port=0, proven=proven)

    nodes: list[DhtNode] = []
    owners: list[Alice | Bob] = []
    started: list[Worker] = []
    try:
        bootstraps = [new_node("bootstrap") for _ in range(bootstrap_count(workers))]
        nodes += bootstraps
        for node in bootstraps:
            serve_hello(node)
            await node.start()
        entry = [node.address for node in bootstraps]
        for node in bootstraps[1:]:
            await node.join(entry[:1])
        bob = Bob(new_node("bob"), bob_identity, KeyStore(16), settings)
        alice = Alice(new_node("alice"), alice_identity, KeyStore(16), settings, bob.node.address)
        for owner in (bob, alice):
            nodes.append(owner.node)
            await owner.node.start()
            await owner.node.join(entry)
            await owner.start()
            owners.append(owner)

        gate = asyncio.Semaphore(LATE_JOIN_CONCURRENCY)
        last_up = 0.0

        async def start_worker(index: int) -> None:
            nonlocal last_up
            await asyncio.sleep(join_seconds * index / max(1, workers))
            async with gate:
                node = new_node("worker")
                nodes.append(node)
                identity = Identity.generate()
                worker = Worker(node, identity, settings, admit(authority, identity.public_key))
                started.append(worker)
                await node.start()
                await worker.start()
                await node.join(entry)
                last_up = max(last_up, time.time())

        await asyncio.gather(*(start_worker(i) for i in range(workers)))
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline and not (  # noqa: ASYNC110 (status is polled)
            alice.directory.status()["converged"] and bob.directory.status()["converged"]
        ):
            await asyncio.sleep(POLL_SECONDS)
        alice_status, bob_status = alice.directory.status(), bob.directory.status()
        return LateJoinResult(
            workers=workers,
            last_up=last_up,
            alice_seen=int(str(alice_status["live_workers"])),
            bob_seen=int(str(bob_status["live_workers"])),
            alice_converged_at=_timestamp(alice_status["converged_at"]),
            bob_converged_at=_timestamp(bob_status["converged_at"]),
        )
    finally:
        for owner in owners:
            await owner.stop()
        await asyncio.gather(*(worker.stop() for worker in started))
        await asyncio.gather(*(node.stop() for node in nodes if node.running))


def _timestamp(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None

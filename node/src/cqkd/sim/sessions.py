"""The protocol on an in-process network: workers, Alice and Bob on a LocalNetwork, and the
session runs behind `cqkd local --key-bits` (and the in-process tests and benchmarks)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cqkd.qkd.alice import Alice
from cqkd.qkd.bob import Bob
from cqkd.qkd.channel import Traffic, serve_hello
from cqkd.qkd.crypto import Identity, admit
from cqkd.qkd.keystore import KeyStore
from cqkd.qkd.session import CONFIRMED, SessionView
from cqkd.qkd.worker import Worker
from cqkd.settings import Settings
from cqkd.sim.network import LocalNetwork
from cqkd.sim.rogue import RogueWorker
from cqkd.sim.stats import percentile


@dataclass
class Protocol:
    """Alice, Bob and the workers of one LocalNetwork."""

    alice: Alice
    bob: Bob
    alice_keys: KeyStore
    bob_keys: KeyStore
    workers: list[Worker]
    authority: Identity  # the deployment's admission key: it admits workers added later
    rogue: RogueWorker | None = None

    async def stop(self) -> None:
        await self.alice.stop()
        await self.bob.stop()
        await asyncio.gather(*(worker.stop() for worker in self.workers))

    def traffic(self) -> Traffic:
        """The sealed messages Alice, Bob and the workers have sent so far, all together."""
        total = Traffic()
        for channel in [self.alice.channel, self.bob.channel, *(w.channel for w in self.workers)]:
            total.messages += channel.traffic.messages
            total.bytes += channel.traffic.bytes
        return total

    def keys_equal(self, view: SessionView) -> bool:
        """Take the session's key out of both stores: True iff both hold it, bit for bit."""
        if view.key_id is None:
            return False
        mine, theirs = self.alice_keys.pop(view.key_id), self.bob_keys.pop(view.key_id)
        return mine is not None and mine == theirs


async def attach(
    net: LocalNetwork,
    settings: Settings,
    alice_identity: Identity | None = None,
    bob_identity: Identity | None = None,
    rogue: str | None = None,
) -> Protocol:
    """Make the network's workers protocol workers and add Alice and Bob, who trust each
    other; workers obey only them. A throwaway admission key admits every worker of the
    network, as a deployment does (nodes added later are not admitted). With `rogue`, one
    worker, chosen with the network's rng, misbehaves so (cqkd.sim.rogue). `settings`
    carries the protocol knobs."""
    alice_identity = alice_identity or Identity.generate()
    bob_identity = bob_identity or Identity.generate()
    authority = Identity.generate()
    owners = [alice_identity.public_key.hex(), bob_identity.public_key.hex()]
    settings = settings.model_copy(update={
        "trusted_owners": owners, "worker_count": net.worker_count,
        "admission_keys": [authority.public_key.hex()],
    })
    for node in net.bootstraps:
        serve_hello(node)
    rogue_index = net.rng.randrange(len(net.workers)) if rogue and net.workers else None
    workers: list[Worker] = []
    for index, node in enumerate(net.workers):
        identity = Identity.generate()
        ticket = admit(authority, identity.public_key)
        if index == rogue_index:
            assert rogue is not None
            workers.append(RogueWorker(node, identity, settings, ticket, rogue))
        else:
            workers.append(Worker(node, identity, settings, ticket))
    await asyncio.gather(*(worker.start() for worker in workers))
    alice_keys = KeyStore(settings.key_store_max_keys)
    bob_keys = KeyStore(settings.key_store_max_keys)
    bob = Bob(await net.add_node("bob"), bob_identity, bob_keys, settings)
    alice = Alice(await net.add_node("alice"), alice_identity, alice_keys, settings,
                  bob.node.address)
    await bob.start()
    await alice.start()
    found = [w for w in workers if isinstance(w, RogueWorker)]
    return Protocol(alice, bob, alice_keys, bob_keys, workers, authority,
                    found[0] if found else None)


async def run_sessions(
    net: LocalNetwork,
    protocol: Protocol,
    key_bits: int,
    sessions: int,
    concurrency: int,
    kill_fraction: float = 0.0,
) -> dict[str, Any]:
    """Run `sessions` key sessions, `concurrency` at a time; with `kill_fraction`, that
    fraction of the workers is stopped once the first sessions have begun."""
    gate = asyncio.Semaphore(concurrency)
    begun = asyncio.Event()

    async def one() -> SessionView:
        async with gate:
            process_id = protocol.alice.begin_session(key_bits)
            begun.set()
            return await protocol.alice.wait(process_id)

    began, cpu, before = time.monotonic(), time.process_time(), protocol.traffic()
    runs = asyncio.gather(*(one() for _ in range(sessions)))
    if kill_fraction > 0:
        await begun.wait()
        await net.kill_workers(kill_fraction)
    views: list[SessionView] = await runs
    after = protocol.traffic()
    sent = Traffic(after.messages - before.messages, after.bytes - before.bytes)
    report = _session_report(protocol, views, key_bits, concurrency, time.monotonic() - began,
                             sent)
    # The whole process's CPU (Alice, Bob and every worker share it): a figure that other
    # load on the machine does not inflate as it does the wall-clock ones.
    report["cpu_seconds_per_session"] = round((time.process_time() - cpu) / sessions, 5)
    return report


def _session_report(
    protocol: Protocol, views: list[SessionView], key_bits: int, concurrency: int,
    elapsed: float, sent: Traffic,
) -> dict[str, Any]:
    """`cqkd local --key-bits`'s figures over finished `views` (`elapsed`: seconds, `sent`:
    the sealed messages of their sessions, discovery's hellos not included)."""
    confirmed = [v for v in views if v.outcome == CONFIRMED and protocol.keys_equal(v)]
    durations = [v.duration_seconds or 0.0 for v in views]
    qbers = [v.qber for v in views if v.qber is not None]
    efficiencies = [v.reconciliation_efficiency for v in views
                    if v.reconciliation_efficiency is not None]
    rogue = {}
    if protocol.rogue is not None:
        pids = {view.process_id for view in views}
        rogue = {"rogue_worker": protocol.rogue.behaviour,
                 "rogue_sessions": len(protocol.rogue.allocated & pids),
                 "rogue_misbehaved_sessions": len(protocol.rogue.misbehaved & pids)}
    return {
        **rogue,
        "key_bits": key_bits,
        "sessions": len(views),
        "concurrency": concurrency,
        "sessions_confirmed": len(confirmed),
        "session_p50_seconds": round(percentile(durations, 0.50), 4) if durations else 0.0,
        "session_p99_seconds": round(percentile(durations, 0.99), 4) if durations else 0.0,
        "qber_mean": round(statistics.fmean(qbers), 4) if qbers else None,
        "reconciliation_efficiency_mean": (
            round(statistics.fmean(efficiencies), 4) if efficiencies else None),
        "leaked_bits_total": sum(v.leaked_bits or 0 for v in views),
        "raw_positions_total": sum(v.raw_bits for v in views),
        "final_key_bits_per_second": round(key_bits * len(confirmed) / elapsed, 1),
        "messages_total": sent.messages,
        "messages_per_session": round(sent.messages / len(views), 2) if views else None,
        "messages_per_confirmed_key_bit": (
            round(sent.messages / (key_bits * len(confirmed)), 4) if confirmed else None),
        "bytes_per_confirmed_key_bit": (
            round(sent.bytes / (key_bits * len(confirmed)), 2) if confirmed else None),
        "outcomes": dict(Counter(str(v.outcome) for v in views)),
    }

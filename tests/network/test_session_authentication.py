"""Session messages are taken only from whom the session or the command names, for the
session's whole life and after; commands run once, at the worker they were signed for;
only admitted workers get roles. Real UDP on loopback, real workers, Alice and Bob."""

import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from cqkd.qkd.channel import Channel, PeerInfo, RemoteError
from cqkd.qkd.crypto import Identity
from cqkd.qkd.worker import Command, Worker
from cqkd.settings import load_settings
from cqkd.sim.network import LocalNetwork
from cqkd.sim.sessions import Protocol
from helpers.network import protocol_network
from helpers.waits import until
from prometheus_client import REGISTRY

pytestmark = pytest.mark.network

WAIT_SECONDS = 30.0


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("cqkd_messages_refused_total", {"reason": reason}) or 0.0


@contextlib.asynccontextmanager
async def network(workers: int = 8) -> AsyncIterator[tuple[LocalNetwork, Protocol]]:
    async with protocol_network(load_settings(rpc_timeout=3.0), workers) as both:
        yield both


async def third_party(net: LocalNetwork, p: Protocol) -> tuple[Channel, PeerInfo]:
    """A node of the DHT that is neither Alice nor Bob, and Bob as it sees him."""
    channel = Channel(await net.add_node("third"), Identity.generate())
    bob = await channel.hello(p.bob.node.address)
    assert bob is not None
    return channel, bob


async def meddle(channel: Channel, bob: PeerInfo, process_id: str) -> None:
    """Abort and confirm one session at Bob; each must be refused."""
    for message in (
        {"k": "abort", "pid": process_id, "seq": 1, "outcome": "error"},
        {"k": "confirm", "pid": process_id, "seq": 2, "seed": bytes(32), "tag": bytes(32),
         "kid": "00000000-0000-4000-8000-000000000000", "con": "control"},
    ):
        with pytest.raises(RemoteError, match="unknown or finished session"):
            await channel.send(bob, message)


async def test_a_third_node_cannot_abort_or_confirm_a_running_or_finished_session() -> None:
    async with network() as (net, p):
        channel, bob = await third_party(net, p)
        before = refused("foreign_sender")
        # Finished: Bob confirmed and stored the key; an abort used to withdraw it.
        finished = await p.alice.run_session(64)
        assert finished.outcome == "confirmed", finished.error
        await meddle(channel, bob, finished.process_id)
        # Running: meddle as soon as Bob knows the session, then let it finish.
        process_id = p.alice.begin_session(64)
        await until(lambda: p.bob.session(process_id) is not None, "Bob to know the session",
                    WAIT_SECONDS, interval=0.001)
        assert p.bob.session(process_id) is not None
        await meddle(channel, bob, process_id)
        running = await p.alice.wait(process_id)
        assert running.outcome == "confirmed", running.error
        for view in (finished, running):
            assert p.bob.session(view.process_id).status == "confirmed"
            assert view.key_id is not None
            alice_key, bob_key = p.alice_keys.pop(view.key_id), p.bob_keys.pop(view.key_id)
            assert alice_key is not None and alice_key == bob_key
        assert refused("foreign_sender") >= before + 4


def signed(p: Protocol, receiver: PeerInfo) -> dict:
    """A QSG command from Alice for `receiver`, as Alice signs one."""
    me = PeerInfo("", 0, p.alice.identity.public_key)
    command = Command("ef" * 16, bytes(16), "QSG", 0, 8, {"QPP": receiver, "ALICE": me},
                      time.time(), receiver=receiver.public_key)
    return {"k": "command", "cmd": p.alice.identity.sign(command.to_wire())}


async def test_relayed_and_replayed_commands_are_refused_and_counted() -> None:
    async with network(workers=6) as (net, p):
        first, second = [await p.alice.channel.hello(w.node.address) for w in p.workers[:2]]
        assert first is not None and second is not None
        relayed, replayed = refused("relayed"), refused("replayed")
        command = signed(p, first)
        # Another worker gets the command signed for the first: refused.
        with pytest.raises(RemoteError, match="signed for another worker"):
            await p.alice.channel.send(second, command)
        # A node that is not the signer passes it on to the right worker: refused.
        channel, _ = await third_party(net, p)
        with pytest.raises(RemoteError, match="relayed by a node other than its signer"):
            await channel.send(first, command)
        assert refused("relayed") == relayed + 2
        # The right worker runs it once; the same command again is refused.
        assert await p.alice.channel.send(first, command) == {"ok": True}
        with pytest.raises(RemoteError, match="already run"):
            await p.alice.channel.send(first, command)
        assert refused("replayed") == replayed + 1
        view = await p.alice.run_session(64)
        assert view.outcome == "confirmed", view.error


async def test_a_worker_that_merely_joined_the_dht_is_never_allocated() -> None:
    async with network(workers=6) as (net, p):
        node = await net.add_node("intruder")
        settings = p.alice.settings
        intruder = Worker(node, Identity.generate(), settings)  # no admission ticket
        await intruder.start()
        # /network-status says why each crawled node does not count (issue 14): the
        # intruder has no ticket; bootstraps and Bob have no worker roles. (A crawl may
        # have greeted the intruder's node before its Worker answered hellos: that hello
        # is awaited three RPC timeouts.)
        expected = {"not_admitted": 1, "not_a_worker": len(net.bootstraps) + 1}
        await until(lambda: p.alice.directory.status()["not_workers"] == expected,
                    lambda: f"not workers: {p.alice.directory.status()['not_workers']}",
                    seconds=15)
        await p.alice.directory.workers(refresh=True)
        await p.bob.directory.workers(refresh=True)
        known = {w.public_key for w in p.alice.directory.known + p.bob.directory.known}
        assert intruder.identity.public_key not in known
        assert len(p.alice.directory.known) == 6
        for _ in range(5):
            view = await p.alice.run_session(64)
            assert view.outcome == "confirmed", view.error
        # It answers DHT lookups like any node, but it never got a role.
        assert await node.set("admission-test", "1") and await p.alice.node.get(
            "admission-test") == "1"
        assert not intruder._roles

"""Workers, Alice and Bob are attached and closed explicitly: a worker takes commands once
started, refuses them once stopped, and stopping forgets its sessions' state; Alice and Bob
take their messages only while started. Real UDP on loopback."""

import asyncio
import time

import pytest
from cqkd.qkd.channel import RPC_HELLO, RemoteError
from cqkd.qkd.crypto import Identity, admit
from cqkd.qkd.session import CONFIRMED
from cqkd.qkd.worker import Command, Worker
from cqkd.settings import load_settings
from helpers.network import protocol_network

pytestmark = pytest.mark.network


async def test_a_stopped_worker_refuses_commands_and_forgets_its_state() -> None:
    settings = load_settings(rpc_timeout=3.0)
    async with protocol_network(settings, 4) as (_, p):
        worker = p.workers[0]
        peer = next(w for w in await p.alice.directory.workers(refresh=True)
                    if w.public_key == worker.identity.public_key)

        def command() -> dict[str, object]:
            body = Command("0" * 32, bytes(16), "QSG", 0, 8,
                           {"QPP": peer, "ALICE": peer}, time.time(),
                           receiver=worker.identity.public_key).to_wire()
            return {"k": "command", "cmd": p.alice.identity.sign(body)}

        assert await p.alice.channel.send(peer, command()) == {"ok": True}
        await worker.stop()
        assert not worker._tasks and not worker._roles and not worker._nonces
        with pytest.raises(RemoteError, match="unknown message kind"):
            await p.alice.channel.send(peer, command())
        await worker.start()
        assert await p.alice.channel.send(peer, command()) == {"ok": True}


async def test_stopped_owners_refuse_their_messages() -> None:
    # Alice and Bob take their messages between start and stop, like a worker.
    async with protocol_network(load_settings(rpc_timeout=3.0), 4) as (_, p):
        bob = p.alice._bob
        assert bob is not None
        abort = {"k": "abort", "pid": "0" * 32, "seq": 1}

        async def refusal() -> str:
            try:
                await p.alice.channel.send(bob, abort)
            except RemoteError as exc:
                return str(exc)
            return ""

        assert "unknown message kind" not in await refusal()
        await p.bob.stop()
        assert "unknown message kind" in await refusal()


@pytest.mark.parametrize("hello_delay", [0.0, 0.3])
async def test_a_session_after_every_worker_restarted_with_a_new_identity_confirms(
    hello_delay: float,
) -> None:
    # A redeploy replaces the worker containers: the same addresses answer with new keys.
    # Alice and Bob greet a known worker only once per WORKER_CACHE_SECONDS, so the first
    # session after the replacement sealed every command to a key nobody held and failed
    # (`timeout`, 0 sifted bits in 64 rounds), as the deploy test's redeploy did in CI.
    # Hellos answered late (a loaded host) let rounds run on before the rechecks came
    # back: each sealed more commands to stale keys until Bob's known keys were all used
    # (`not_enough_workers`, 1 run in 6 of the suite's load; 4 in 4 with the delay).
    settings = load_settings(rpc_timeout=3.0, worker_cache_seconds=600)
    async with protocol_network(settings, 15) as (_, p):
        assert (await p.alice.run_session(64)).outcome == CONFIRMED
        for index, old in enumerate(p.workers):
            await old.stop()
            identity = Identity.generate()
            p.workers[index] = Worker(old.node, identity, p.alice.settings,
                                      admit(p.authority, identity.public_key))
            await p.workers[index].start()
            if hello_delay:
                slow_down_hellos(p.workers[index], hello_delay)
        assert (await p.alice.run_session(64)).outcome == CONFIRMED


def slow_down_hellos(worker: Worker, seconds: float) -> None:
    answer_hello = worker.channel._on_hello

    async def late_hello(sender: tuple[str, int], payload: bytes) -> bytes:
        await asyncio.sleep(seconds)
        return await answer_hello(sender, payload)

    worker.channel.node.register_rpc(RPC_HELLO, late_hello)

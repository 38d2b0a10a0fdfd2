"""A worker is attached and closed explicitly: it takes commands once started, refuses them
once stopped, and stopping forgets its sessions' state. Real UDP on loopback."""

import time

import pytest
from cqkd.qkd.channel import RemoteError
from cqkd.qkd.worker import Command
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

"""A misbehaving worker, for `cqkd local --rogue-worker BEHAVIOUR` and the adversarial tests.

It is an admitted worker that plays its roles dishonestly (PROTOCOL.md, "Threat model",
says what each behaviour can achieve):

- constant-spins: as QSG, pushes spin 0 at every position (to QPP and to Alice alike).
- constant-bases: as BG_A or BG_B, pushes basis '+' at every position.
- lying-meter: as QPM, reports measured bit 0 at every position to Bob.
- lying-collider: as QPC, declares every position valid, to Alice and Bob alike.
- replay: in any role, relays each command it gets to a worker it feeds, sends every
  datagram it receives back to itself once (a captured-datagram replay on the wire), and
  pushes everything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

from cqkd.dht.node import DhtNode
from cqkd.qkd import bb84
from cqkd.qkd.channel import RPC_MESSAGE, Address, Message, PeerInfo
from cqkd.qkd.crypto import Identity, verify_signed
from cqkd.qkd.session import ROLES
from cqkd.qkd.worker import Command, Worker, push
from cqkd.settings import Settings

# The roles in which each behaviour misbehaves; elsewhere the rogue plays honestly.
TARGETS: dict[str, frozenset[str]] = {
    "constant-spins": frozenset({"QSG"}),
    "constant-bases": frozenset({"BG_A", "BG_B"}),
    "lying-meter": frozenset({"QPM"}),
    "lying-collider": frozenset({"QPC"}),
    "replay": frozenset(ROLES),
}
BEHAVIOURS = tuple(TARGETS)
_REPLAY_MEMORY = 4096


class RogueWorker(Worker):
    def __init__(
        self, node: DhtNode, identity: Identity, settings: Settings, ticket: bytes,
        behaviour: str,
    ) -> None:
        if behaviour not in TARGETS:
            raise ValueError(f"unknown rogue behaviour {behaviour!r}: one of {', '.join(TARGETS)}")
        super().__init__(node, identity, settings, ticket)
        self.behaviour = behaviour
        self.allocated: set[str] = set()  # process_ids in which it got any role
        self.misbehaved: set[str] = set()  # ... and a role its behaviour targets
        self._replayed: set[bytes] = set()
        self._background: set[asyncio.Task[object]] = set()
        if behaviour == "replay":
            node.register_rpc(RPC_MESSAGE, self._replaying)

    def compute(self, c: Command, inputs: dict[str, tuple[int, ...]]) -> list[tuple[str, Message]]:
        outputs = super().compute(c, inputs)
        self.allocated.add(c.process_id)
        if c.role not in TARGETS[self.behaviour]:
            return outputs
        self.misbehaved.add(c.process_id)
        n = c.count
        lies = {"constant-spins": ("s", 0), "constant-bases": (("a", "b"), 0),
                "lying-meter": ("m", 0), "lying-collider": ("v", bb84.mask(n))}
        if self.behaviour in lies:
            kinds, value = lies[self.behaviour]
            return [(to, push(c.round_key, c.chunk, msg["t"], n, value)
                     if msg["t"] in kinds else msg) for to, msg in outputs]
        return outputs

    async def deliver(self, c: Command, outputs: list[tuple[str, Message]]) -> None:
        await super().deliver(c, outputs)
        if self.behaviour == "replay":  # every push once more; refused, as it should be
            for to, message in outputs:
                self._spawn(self._relay(c.feeds[to], message))

    async def _on_command(self, sender: bytes, address: Address, message: Message) -> Message:
        answer = await super()._on_command(sender, address, message)
        if self.behaviour == "replay":
            _, body = verify_signed(message["cmd"], self.trusted)
            feeds = Command.from_wire(body, address).feeds
            worker = next((p for name, p in feeds.items() if name not in ("ALICE", "BOB")), None)
            if worker is not None:
                self._spawn(self._relay(worker, message))
        return answer

    async def _relay(self, peer: PeerInfo, command: Message) -> None:
        with contextlib.suppress(Exception):  # refused, as it should be
            await self.channel.send(peer, command)

    async def _replaying(self, sender: Address, payload: bytes) -> bytes:
        answer = await self.channel._on_message(sender, payload)
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        if digest not in self._replayed:
            if len(self._replayed) >= _REPLAY_MEMORY:
                self._replayed.clear()
            self._replayed.add(digest)
            self._spawn(self.node.call(self.node.address, RPC_MESSAGE, payload))
        return answer

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.ensure_future(coroutine)  # type: ignore[call-overload]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

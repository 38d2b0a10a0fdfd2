"""A worker: plays one role per session for the owners it trusts, pushing results onward.

An owner (Alice or Bob) sends each worker a signed command: its role, a chunk of positions,
a secret round key, and the peers it feeds. Source roles (QSG, BG_A, BG_B) compute at once;
QPP, QPM and QPC compute when all their inputs have been pushed to them. State lives per
(round key, chunk) until used or until the session TTL passes; nothing touches DHT storage.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from cqkd.dht.node import DhtNode
from cqkd.logs import event
from cqkd.metrics import ROLE_OPERATIONS
from cqkd.qkd import bb84
from cqkd.qkd.channel import Address, Channel, Message, PeerInfo, ProtocolError, need
from cqkd.qkd.crypto import Identity, verify_signed
from cqkd.qkd.session import ROLES
from cqkd.settings import Settings

log = logging.getLogger(__name__)

ROUND_KEY_BYTES = 16
MAX_CHUNK_POSITIONS = 1 << 16
PROCESS_ID = re.compile(r"^[0-9a-f]{32}$")

# What each role waits for, and whom it feeds (owners are ALICE and BOB).
INPUTS: dict[str, tuple[str, ...]] = {
    "QSG": (), "BG_A": (), "BG_B": (), "QPP": ("s", "a"), "QPM": ("p", "b"), "QPC": ("cb",),
}
FEEDS: dict[str, tuple[str, ...]] = {
    "QSG": ("QPP", "ALICE"), "BG_A": ("QPP",), "BG_B": ("QPM",), "QPP": ("QPM",),
    "QPM": ("BOB", "QPC"), "QPC": ("ALICE", "BOB"),
}
# Two-vector payloads: polarization (class, bit) and what QPM tells QPC (class, Bob's basis).
PAIRED = frozenset({"p", "cb"})


@dataclass
class Command:
    process_id: str
    round_key: bytes
    role: str
    chunk: int
    count: int
    feeds: dict[str, PeerInfo]
    issued: float

    def to_wire(self) -> bytes:
        return msgpack.packb({
            "pid": self.process_id, "rk": self.round_key, "role": self.role,
            "chunk": self.chunk, "n": self.count, "issued": self.issued,
            "feeds": {name: peer.to_wire() for name, peer in self.feeds.items()},
        })

    @classmethod
    def from_wire(cls, body: bytes, sender: Address) -> Command:
        """Parse a command; a peer with an empty host is the command's sender (its owner)."""
        data = msgpack.unpackb(body)
        if not isinstance(data, dict):
            raise ProtocolError("a command is a map")
        role = need(data, "role", str)
        if role not in ROLES:
            raise ProtocolError(f"unknown role {role[:16]!r}")
        pid = need(data, "pid", str)
        if not PROCESS_ID.match(pid):
            raise ProtocolError("process_id must be 32 hex digits")
        round_key = need(data, "rk", bytes)
        if len(round_key) != ROUND_KEY_BYTES:
            raise ProtocolError("bad round key")
        count = need(data, "n", int)
        if not 0 < count <= MAX_CHUNK_POSITIONS:
            raise ProtocolError(f"chunk size must be 1..{MAX_CHUNK_POSITIONS}")
        feeds_raw = need(data, "feeds", dict)
        if set(feeds_raw) != set(FEEDS[role]):
            raise ProtocolError(f"{role} needs peers {', '.join(FEEDS[role])}")
        return cls(
            pid, round_key, role, need(data, "chunk", int), count,
            {name: PeerInfo.from_wire(value, sender) for name, value in feeds_raw.items()},
            float(need(data, "issued", (int, float))),
        )


@dataclass
class _Task:
    command: Command
    expires: float
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    started: bool = False


def push(round_key: bytes, chunk: int, kind: str, count: int, *vectors: int) -> Message:
    """A push message carrying bit vectors of one chunk."""
    return {"k": "push", "rk": round_key, "chunk": chunk, "t": kind,
            "d": [bb84.to_bytes(v, count) for v in vectors]}


def read_push(message: Message, count: int) -> tuple[int, ...]:
    vectors = need(message, "d", list)
    expected = 2 if message.get("t") in PAIRED else 1
    if len(vectors) != expected or not all(isinstance(v, bytes) for v in vectors):
        raise ProtocolError("bad push payload")
    try:
        return tuple(bb84.from_bytes(v, count) for v in vectors)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


class Worker:
    def __init__(self, node: DhtNode, identity: Identity, settings: Settings) -> None:
        self.channel = Channel(node, identity, roles=ROLES)
        self.trusted = frozenset(settings.trusted_owner_keys)
        self.eavesdrop = settings.eavesdrop
        self.channel_error = settings.channel_error
        self.ttl = settings.session_ttl
        self._tasks: dict[tuple[bytes, int], _Task] = {}
        self._roles: dict[str, tuple[str, float]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.channel.on("command", self._on_command)
        self.channel.on("push", self._on_push)

    @property
    def node(self) -> DhtNode:
        return self.channel.node

    async def _on_command(self, sender: bytes, address: Address, message: Message) -> Message:
        _, body = verify_signed(need(message, "cmd", bytes), self.trusted)
        command = Command.from_wire(body, address)
        now = time.time()
        if abs(now - command.issued) > self.ttl:
            raise ProtocolError("command expired")
        self._expire(now)
        held = self._roles.get(command.process_id)
        if held is not None and held[0] != command.role:
            raise ProtocolError(f"this worker already plays {held[0]} in this session")
        expires = now + self.ttl
        self._roles[command.process_id] = (command.role, expires)
        key = (command.round_key, command.chunk)
        if key not in self._tasks:
            self._tasks[key] = _Task(command, expires)
            self.channel.load = len(self._tasks)
            self._maybe_run(key)
        return {"ok": True}

    async def _on_push(self, sender: bytes, address: Address, message: Message) -> Message:
        key = (need(message, "rk", bytes), need(message, "chunk", int))
        task = self._tasks.get(key)
        if task is None or task.expires < time.time():
            raise ProtocolError("push for an unknown or finished round")
        kind = need(message, "t", str)
        if kind not in INPUTS[task.command.role]:
            raise ProtocolError(f"{task.command.role} takes no {kind[:8]!r} input")
        task.inputs.setdefault(kind, read_push(message, task.command.count))
        self._maybe_run(key)
        return {"ok": True}

    def _maybe_run(self, key: tuple[bytes, int]) -> None:
        task = self._tasks[key]
        if task.started or any(i not in task.inputs for i in INPUTS[task.command.role]):
            return
        task.started = True
        running = asyncio.create_task(self._run(key, task))
        self._running.add(running)
        running.add_done_callback(self._running.discard)

    async def _run(self, key: tuple[bytes, int], task: _Task) -> None:
        c = task.command
        n = c.count
        outputs: list[tuple[str, Message]]
        if c.role == "QSG":
            spins = bb84.random_bits(n)
            outputs = [(to, push(c.round_key, c.chunk, "s", n, spins)) for to in ("QPP", "ALICE")]
        elif c.role in ("BG_A", "BG_B"):
            kind = "a" if c.role == "BG_A" else "b"
            outputs = [(FEEDS[c.role][0], push(c.round_key, c.chunk, kind, n, bb84.random_bits(n)))]
        elif c.role == "QPP":
            pol_class, pol_bit = bb84.polarize(task.inputs["s"][0], task.inputs["a"][0])
            if self.eavesdrop > 0:
                pol_class, pol_bit = bb84.intercept_resend(pol_class, pol_bit, n, self.eavesdrop)
            outputs = [("QPM", push(c.round_key, c.chunk, "p", n, pol_class, pol_bit))]
        elif c.role == "QPM":
            pol_class, pol_bit = task.inputs["p"]
            bob_bases = task.inputs["b"][0]
            measured = bb84.measure(pol_class, pol_bit, bob_bases, n, self.channel_error)
            outputs = [
                ("BOB", push(c.round_key, c.chunk, "m", n, measured)),
                ("QPC", push(c.round_key, c.chunk, "cb", n, pol_class, bob_bases)),
            ]
        else:
            pol_class, bob_bases = task.inputs["cb"]
            valid = bb84.sift(pol_class, bob_bases, n)
            outputs = [(to, push(c.round_key, c.chunk, "v", n, valid)) for to in ("ALICE", "BOB")]
        ROLE_OPERATIONS.labels(role=c.role).inc()
        del self._tasks[key]
        self.channel.load = len(self._tasks)
        results = await asyncio.gather(
            *(self.channel.send(c.feeds[to], msg) for to, msg in outputs), return_exceptions=True
        )
        for (to, _), result in zip(outputs, results, strict=True):
            if result is None or isinstance(result, BaseException):
                peer = c.feeds[to]
                event(log, "push_failed", logging.WARNING, role=c.role, to=to,
                      peer=f"{peer.host}:{peer.port}", error=_describe(result))

    def _expire(self, now: float) -> None:
        for key in [k for k, t in self._tasks.items() if t.expires < now]:
            del self._tasks[key]
        for pid in [p for p, (_, expires) in self._roles.items() if expires < now]:
            del self._roles[pid]
        self.channel.load = len(self._tasks)


def _describe(result: Any) -> str:
    return "no answer" if result is None else type(result).__name__ + f": {result}"[:120]

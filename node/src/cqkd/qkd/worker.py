"""A worker: plays one role per session for the owners it trusts, pushing results onward.

An owner (Alice or Bob) sends each worker a signed command: its role, a chunk of positions,
a secret round key, the peers it feeds, the peers it takes each input from, and the
receiver's own public key with a fresh nonce. A worker runs a command only if it is the
named receiver, got it from the signer itself, and has not seen the nonce before (relayed
and replayed commands are refused and counted). Source roles (QSG, BG_A, BG_B) compute at
once; QPP, QPM and QPC compute when all their inputs came from the named senders. The
owners' own random shares ("masks") are XORed into spins and bases, so that no single
source worker fixes them (PROTOCOL.md, "Threat model"). State lives per
(round key, chunk) until used or until the session TTL passes, swept on a timer; nothing
touches DHT storage.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from cqkd.dht.node import DhtNode
from cqkd.logs import event
from cqkd.metrics import ROLE_OPERATIONS
from cqkd.qkd import bb84
from cqkd.qkd.channel import (
    Address,
    Channel,
    Message,
    PeerInfo,
    ProtocolError,
    Refused,
    need,
)
from cqkd.qkd.crypto import KEY_BYTES, CryptoFailure, Identity, verify_signed
from cqkd.qkd.session import ROLES
from cqkd.settings import Settings

log = logging.getLogger(__name__)

ROUND_KEY_BYTES = 16
MAX_CHUNK_POSITIONS = 1 << 16
PROCESS_ID = re.compile(r"^[0-9a-f]{32}$")

NONCE_BYTES = 16
# What each role waits for, and whom it feeds (owners are ALICE and BOB). "mb" is Bob's
# share of his bases, pushed by Bob with the name of the chain's BG_B.
INPUTS: dict[str, tuple[str, ...]] = {
    "QSG": (), "BG_A": (), "BG_B": (), "QPP": ("s", "a"), "QPM": ("p", "b", "mb"),
    "QPC": ("cb",),
}
# Inputs whose sender the command names; "b" is named by Bob's "mb" push instead.
NAMED_SOURCES: dict[str, tuple[str, ...]] = {
    "QPP": ("s", "a"), "QPM": ("p", "mb"), "QPC": ("cb",),
}
# Owner shares a command may carry, XORed into the input of the same name.
MASKED: dict[str, tuple[str, ...]] = {"QPP": ("s", "a")}
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
    receiver: bytes = b""
    nonce: bytes = field(default_factory=lambda: secrets.token_bytes(NONCE_BYTES))
    sources: dict[str, bytes] = field(default_factory=dict)
    masks: dict[str, bytes] = field(default_factory=dict)

    def to_wire(self) -> bytes:
        return msgpack.packb({
            "pid": self.process_id, "rk": self.round_key, "role": self.role,
            "chunk": self.chunk, "n": self.count, "issued": self.issued,
            "feeds": {name: peer.to_wire() for name, peer in self.feeds.items()},
            "to": self.receiver, "nc": self.nonce, "from": self.sources, "mask": self.masks,
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
        sources = need(data, "from", dict)
        if set(sources) != set(NAMED_SOURCES.get(role, ())) or not all(
                isinstance(k, bytes) and len(k) == KEY_BYTES for k in sources.values()):
            raise ProtocolError(f"{role} needs the senders of its inputs")
        masks = need(data, "mask", dict)
        if set(masks) != set(MASKED.get(role, ())) or not all(
                isinstance(m, bytes) and len(m) == (count + 7) // 8 for m in masks.values()):
            raise ProtocolError(f"{role} needs the owner's shares of its inputs")
        nonce = need(data, "nc", bytes)
        if len(nonce) != NONCE_BYTES:
            raise ProtocolError("bad command nonce")
        return cls(
            pid, round_key, role, need(data, "chunk", int), count,
            {name: PeerInfo.from_wire(value, sender) for name, value in feeds_raw.items()},
            float(need(data, "issued", (int, float))),
            need(data, "to", bytes), nonce, sources, masks,
        )


@dataclass
class _Task:
    command: Command
    expires: float
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    generator: bytes = b""  # the BG_B Bob named (QPM only)
    started: bool = False

    def expected_sender(self, kind: str) -> bytes:
        if kind == "b":
            return self.generator
        return self.command.sources.get(kind, b"")


def push(round_key: bytes, chunk: int, kind: str, count: int, *vectors: int) -> Message:
    """A push message carrying bit vectors of one chunk."""
    return {"k": "push", "rk": round_key, "chunk": chunk, "t": kind,
            "d": [bb84.to_bytes(v, count) for v in vectors]}


def read_push(message: Message, count: int) -> tuple[int, ...]:
    vectors = need(message, "d", list)
    expected = 2 if message.get("t") in PAIRED else 1
    if message.get("t") == "mb" and not (
            isinstance(message.get("bg"), bytes) and len(message["bg"]) == KEY_BYTES):
        raise ProtocolError("Bob's share names no generator")
    if len(vectors) != expected or not all(isinstance(v, bytes) for v in vectors):
        raise ProtocolError("bad push payload")
    try:
        return tuple(bb84.from_bytes(v, count) for v in vectors)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


class Worker:
    def __init__(
        self, node: DhtNode, identity: Identity, settings: Settings, ticket: bytes = b""
    ) -> None:
        """`ticket`: the deployment's admission ticket for `identity` (crypto.admit)."""
        self.channel = Channel(node, identity, roles=ROLES, ticket=ticket)
        self.identity = identity
        self.trusted = frozenset(settings.trusted_owner_keys)
        self.eavesdrop = settings.eavesdrop
        self.channel_error = settings.channel_error
        self.ttl = settings.session_ttl
        self._tasks: dict[tuple[bytes, int], _Task] = {}
        self._roles: dict[str, tuple[str, float]] = {}
        self._nonces: dict[bytes, float] = {}  # nonces run, until their command expires
        self._sweep: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    @property
    def node(self) -> DhtNode:
        return self.channel.node

    async def start(self) -> None:
        """Take commands and pushes from now on (the node answers discovery's hello, with
        this worker's roles, from construction)."""
        self.channel.on("command", self._on_command)
        self.channel.on("push", self._on_push)

    async def stop(self) -> None:
        """Refuse commands and pushes from now on, let the roles being computed go, forget
        every session's state."""
        self.channel.off("command")
        self.channel.off("push")
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        self._tasks.clear()
        self._roles.clear()
        self._nonces.clear()
        self.channel.load = 0

    async def _on_command(self, sender: bytes, address: Address, message: Message) -> Message:
        try:
            signer, body = verify_signed(need(message, "cmd", bytes), self.trusted)
        except CryptoFailure as exc:
            raise Refused("untrusted", str(exc)) from None
        command = Command.from_wire(body, address)
        now = time.time()
        if command.receiver != self.identity.public_key:
            raise Refused("relayed", "command signed for another worker")
        if sender != signer:  # the owner's address and key come from its own message
            raise Refused("relayed", "command relayed by a node other than its signer")
        # A nonce is remembered as long as its command could still be accepted.
        if abs(now - command.issued) > self.ttl:
            raise ProtocolError("command expired")
        self._expire(now)
        if command.nonce in self._nonces:
            raise Refused("replayed", "command already run")
        self._nonces[command.nonce] = command.issued + self.ttl
        self._schedule_sweep()
        held = self._roles.get(command.process_id)
        if held is not None and held[0] != command.role:
            raise ProtocolError(f"this worker already plays {held[0]} in this session")
        expires = now + self.ttl
        self._roles.pop(command.process_id, None)  # to the back: it expires last
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
        if sender != task.expected_sender(kind):
            raise Refused("foreign_sender", f"{kind[:8]!r} from a node the command did not name")
        vectors = read_push(message, task.command.count)
        if kind == "mb" and "b" not in task.inputs:
            # Bob names a spare BG_B when the first one did not answer: the last name wins
            # until the bases have arrived.
            task.inputs["mb"], task.generator = vectors, message["bg"]
        task.inputs.setdefault(kind, vectors)
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
        outputs = self.compute(c, self._inputs(task))
        ROLE_OPERATIONS.labels(role=c.role).inc()
        del self._tasks[key]
        self.channel.load = len(self._tasks)
        await self.deliver(c, outputs)

    @staticmethod
    def _inputs(task: _Task) -> dict[str, tuple[int, ...]]:
        """The inputs with the owners' shares XORed in: spins and bases as the owner and
        the source worker made them together."""
        inputs = dict(task.inputs)
        for kind, share in task.command.masks.items():
            first, *rest = inputs[kind]
            share_bits = int.from_bytes(share, "little") & bb84.mask(task.command.count)
            inputs[kind] = (first ^ share_bits, *rest)
        if "mb" in inputs:
            inputs["b"] = (inputs["b"][0] ^ inputs.pop("mb")[0],)
        return inputs

    def compute(self, c: Command, inputs: dict[str, tuple[int, ...]]) -> list[tuple[str, Message]]:
        """The role's pushes, as (feed name, message); a rogue worker overrides this."""
        n = c.count
        outputs: list[tuple[str, Message]]
        if c.role == "QSG":
            spins = bb84.random_bits(n)
            outputs = [(to, push(c.round_key, c.chunk, "s", n, spins)) for to in ("QPP", "ALICE")]
        elif c.role in ("BG_A", "BG_B"):
            kind = "a" if c.role == "BG_A" else "b"
            outputs = [(FEEDS[c.role][0], push(c.round_key, c.chunk, kind, n, bb84.random_bits(n)))]
        elif c.role == "QPP":
            pol_class, pol_bit = bb84.polarize(inputs["s"][0], inputs["a"][0])
            if self.eavesdrop > 0:
                pol_class, pol_bit = bb84.intercept_resend(pol_class, pol_bit, n, self.eavesdrop)
            outputs = [("QPM", push(c.round_key, c.chunk, "p", n, pol_class, pol_bit))]
        elif c.role == "QPM":
            pol_class, pol_bit = inputs["p"]
            bob_bases = inputs["b"][0]
            measured = bb84.measure(pol_class, pol_bit, bob_bases, n, self.channel_error)
            outputs = [
                ("BOB", push(c.round_key, c.chunk, "m", n, measured)),
                ("QPC", push(c.round_key, c.chunk, "cb", n, pol_class, bob_bases)),
            ]
        else:
            pol_class, bob_bases = inputs["cb"]
            valid = bb84.sift(pol_class, bob_bases, n)
            outputs = [(to, push(c.round_key, c.chunk, "v", n, valid)) for to in ("ALICE", "BOB")]
        return outputs

    async def deliver(self, c: Command, outputs: list[tuple[str, Message]]) -> None:
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
        # Both tables are kept in order of expiry, near enough: the oldest go from the
        # front, where a scan of every entry per command grew with the sessions of a TTL.
        while self._roles and next(iter(self._roles.values()))[1] < now:
            del self._roles[next(iter(self._roles))]
        while self._nonces and next(iter(self._nonces.values())) < now:
            del self._nonces[next(iter(self._nonces))]
        self.channel.load = len(self._tasks)

    def _schedule_sweep(self) -> None:
        """State expires on a timer too, so that it goes even when no traffic comes."""
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self.ttl, self._swept)

    def _swept(self) -> None:
        self._sweep = None
        self._expire(time.time())
        if self._tasks or self._roles or self._nonces:
            self._schedule_sweep()


def _describe(result: Any) -> str:
    return "no answer" if result is None else type(result).__name__ + f": {result}"[:120]

"""Bob: receives Alice's sessions, allocates BG_B, collects his measured bits, and answers
her error estimation, Cascade and confirmation. He stores a key only once its tag matched.

Everything from Alice arrives sealed by her key, which must be among TRUSTED_OWNERS. A
session belongs to the owner who opened it: every later message of it (confirm, abort and
the rest), also after it ended, is refused from anyone else and counted. Session state
lives until the session ends or its TTL passes, swept on a timer whatever traffic comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field

from cqkd.dht.node import DhtNode
from cqkd.logs import event
from cqkd.qkd import bb84
from cqkd.qkd.allocation import allocate_bob
from cqkd.qkd.amplification import SEED_BYTES, confirmation_tag, tags_match, toeplitz_hash
from cqkd.qkd.asking import Answers
from cqkd.qkd.cascade import (
    MAX_RANGES_PER_MESSAGE,
    Cascade,
    pack_flags,
    parities,
    unpack_flags,
)
from cqkd.qkd.channel import (
    Address,
    Message,
    PeerInfo,
    ProtocolError,
    Refused,
    RemoteError,
    need,
)
from cqkd.qkd.crypto import Identity
from cqkd.qkd.estimation import mismatches, qber
from cqkd.qkd.keystore import MAX_CONSUMER_CHARS, KeyStore
from cqkd.qkd.lengths import check_key_bits
from cqkd.qkd.owner import Owner
from cqkd.qkd.rounds import Chunk, Round
from cqkd.qkd.session import (
    CONFIRMED,
    ERROR,
    NOT_ENOUGH_WORKERS,
    TIMEOUT,
    SessionFailed,
    SessionView,
    Status,
)
from cqkd.qkd.sorting import check_permutation, decode_indices, reorder, sifted_bits
from cqkd.qkd.worker import MAX_CHUNK_POSITIONS, PROCESS_ID, ROUND_KEY_BYTES, Command, push
from cqkd.settings import Settings

log = logging.getLogger(__name__)

MAX_ROUND_POSITIONS = 1 << 22


@dataclass
class _Round(Round):
    process_id: str = ""
    positions: int = 0
    fresh: bytearray | None = None  # the sifted bits, in position order


@dataclass
class _Session:
    view: SessionView
    alice: bytes
    began: float
    expires: float
    assigned: dict[bytes, str] = field(default_factory=dict)
    rounds: dict[int, bytes] = field(default_factory=dict)
    pool: bytearray = field(default_factory=bytearray)
    sampled: int = 0
    errors: int = 0
    cascade: Cascade | None = None
    cascade_span: tuple[int, int, bytes] = (0, 0, b"")
    flags: list[int] = field(default_factory=list)  # of the current step, so far


class Bob(Owner[_Round]):
    party = "bob"

    def __init__(
        self, node: DhtNode, identity: Identity, keystore: KeyStore, settings: Settings
    ) -> None:
        super().__init__(node, identity, keystore, settings)
        self._sessions: dict[str, _Session] = {}  # running ones
        self._sweeper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        answers = Answers()
        for kind, handler in {
            "round": self._on_round, "collect": self._on_collect, "sample": self._on_sample,
            "reveal": self._on_reveal, "cascade": self._on_cascade, "verify": self._on_verify,
            "confirm": self._on_confirm,
            "abort": self._on_abort,
        }.items():
            self._handlers[kind] = answers.once(handler)

    async def start(self) -> None:
        self._attach()
        await self.directory.workers(refresh=True)
        self.directory.start()
        self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        period = min(max(self.settings.session_ttl / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(period)
            self._expire()

    async def stop(self) -> None:
        self._detach()
        await self.directory.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for pid in list(self._sessions):
            self._finish(pid, "failed", TIMEOUT, "Bob stopped")

    # --- session bookkeeping ---

    def _session(self, sender: bytes, message: Message) -> _Session:
        pid = need(message, "pid", str)
        self._check_owner(pid, sender)
        session = self._sessions.get(pid)
        if session is None:
            raise ProtocolError("unknown or finished session")
        return session

    def _check_owner(self, pid: str, sender: bytes) -> None:
        owner = self.sessions.owner(pid)
        if owner is not None and owner != sender:
            raise Refused("foreign_sender", "unknown or finished session")

    def _open(self, sender: bytes, message: Message) -> _Session:
        """The running session a round message names, opened by its first round."""
        pid = need(message, "pid", str)
        if not PROCESS_ID.match(pid):
            raise ProtocolError("process_id must be 32 hex digits")
        self._check_owner(pid, sender)
        session = self._sessions.get(pid)
        if session is None:
            if pid in self.sessions:
                raise ProtocolError("session already finished")
            try:
                lc = check_key_bits(need(message, "lc", int), self.settings.max_key_bits)
            except ValueError as exc:
                raise ProtocolError(str(exc)) from None
            now = time.monotonic()
            view = self.sessions.open(pid, lc, owner=sender)
            session = self._sessions[pid] = _Session(
                view, sender, now, now + self.settings.session_ttl)
        return session

    def _finish(self, pid: str, status: Status, outcome: str, error: str | None) -> None:
        session = self._sessions.pop(pid, None)
        if session is None:
            return
        self.sessions.finish(session.view, status, outcome, error, session.began)
        for key in [k for k, r in self._rounds.items() if r.process_id == pid]:
            del self._rounds[key]

    def _expire(self) -> None:
        now = time.monotonic()
        for pid in [p for p, s in self._sessions.items() if s.expires < now]:
            self._finish(pid, "failed", TIMEOUT, "session expired at Bob")

    # --- handlers ---

    async def _on_round(self, sender: bytes, address: Address, message: Message) -> Message:
        if sender not in self.trusted:
            raise Refused("untrusted", "sender is not among TRUSTED_OWNERS")
        self._expire()
        session = self._open(sender, message)
        round_no, round_key, positions = self._check_round(session, message)
        chunks, qpms = _chains(need(message, "chains", list), positions)
        for key in need(message, "used", list):
            if isinstance(key, bytes) and session.assigned.get(key) != "BG_B":
                session.assigned[key] = "ALICE"
        mode = need(message, "mode", str)
        try:
            generators = allocate_bob(await self.directory.workers(wait=False), len(qpms),
                                      mode, session.assigned)
        except SessionFailed:
            generators = await self._allocate_afresh(session, len(qpms), mode)
        self._rounds[round_key] = _Round(chunks, process_id=session.view.process_id,
                                         positions=positions)
        session.rounds[round_no] = round_key
        session.view.raw_bits += positions
        # Alice waits on this answer with a short RPC timeout: a dead BG_B must not stall it.
        for (chunk, qpm), worker in zip(qpms, generators, strict=True):
            task = asyncio.create_task(
                self._command_generator(session, round_key, chunk, chunks[chunk].count, qpm,
                                        worker))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return {"bgb": [w.public_key for w in generators]}

    async def _allocate_afresh(
        self, session: _Session, chains: int, mode: str
    ) -> list[PeerInfo]:
        """BG_B from workers greeted again, when every known one holds Alice's roles: after
        a redeploy Alice may have learnt the workers' new keys first, and Bob's old ones
        are the keys her earlier rounds used. Half an RPC timeout at most: Alice waits on
        this answer. Raises ProtocolError if there still is none."""
        try:
            workers = await asyncio.wait_for(
                asyncio.shield(self.directory.workers(refresh=True)),
                self.node.config.rpc_timeout / 2)
            return allocate_bob(workers, chains, mode, session.assigned)
        except SessionFailed as exc:
            raise ProtocolError(f"{exc.outcome}: {exc}") from None
        except TimeoutError:
            raise ProtocolError(f"{NOT_ENOUGH_WORKERS}: no worker free for BG_B answered a "
                                "hello within half an RPC timeout") from None

    def _check_round(
        self, session: _Session, message: Message
    ) -> tuple[int, bytes, int]:
        """A new round's number, key and size; ProtocolError if any is malformed, repeated
        or past the session's MAX_RAW_POSITIONS."""
        round_no = need(message, "round", int)
        round_key = need(message, "rk", bytes)
        positions = need(message, "n", int)
        if round_no in session.rounds or len(round_key) != ROUND_KEY_BYTES:
            raise ProtocolError("bad or repeated round")
        if not 0 < positions <= MAX_ROUND_POSITIONS:
            raise ProtocolError("bad round size")
        if session.view.raw_bits + positions > self.settings.max_raw_positions:
            raise ProtocolError("the session's raw positions would exceed MAX_RAW_POSITIONS")
        return round_no, round_key, positions

    async def _command_generator(
        self, session: _Session, round_key: bytes, chunk: int, count: int, qpm: PeerInfo,
        worker: PeerInfo,
    ) -> None:
        """Give QPM Bob's share of the bases and the name of its BG_B, then command that
        BG_B; if it does not answer, one other free worker takes its place, so a dead
        generator costs a retry rather than the chain. The bases QPM uses are BG_B's XOR
        Bob's share: a BG_B that pushes constant or chosen bases fixes nothing."""
        pid = session.view.process_id
        share = push(round_key, chunk, "mb", count, bb84.random_bits(count))
        for attempt in range(2):
            command = Command(pid, round_key, "BG_B", chunk, count, {"QPM": qpm}, time.time(),
                              receiver=worker.public_key)
            message = {"k": "command", "cmd": self.identity.sign(command.to_wire())}
            try:
                if (await self.channel.send(qpm, {**share, "bg": worker.public_key}) is None
                        or await self.channel.send(worker, message) is not None):
                    return  # done, or QPM is gone and the chain with it
            except RemoteError:
                pass
            self.directory.recheck(worker.address)
            spare = [w for w in await self.directory.workers(wait=False)
                     if w.public_key != worker.public_key
                     and session.assigned.get(w.public_key, "BG_B") == "BG_B"]
            if attempt or not spare:
                break
            worker = secrets.choice(spare)
            session.assigned[worker.public_key] = "BG_B"
        event(log, "bg_b_command_failed", logging.WARNING, process_id=pid, chunk=chunk)

    def _round_of(self, session: _Session, message: Message) -> _Round:
        round_key = session.rounds.get(need(message, "round", int))
        state = self._rounds.get(round_key) if round_key is not None else None
        if state is None:
            raise ProtocolError("unknown round")
        return state

    async def _on_collect(self, sender: bytes, address: Address, message: Message) -> Message:
        session = self._session(sender, message)
        state = self._round_of(session, message)
        if state.fresh is not None:
            raise ProtocolError("round already collected")
        wanted = [c for c in need(message, "chunks", list) if c in state.chunks]
        # Alice collected first and waits on our answer: a short grace, well under her
        # RPC timeout (past it she resends, and a loaded host answers later still).
        await state.wait_until(wanted, self.node.config.rpc_timeout / 4)
        agreed = state.done(wanted)
        state.fresh = sifted_bits(state.bits(agreed, "m"), state.bits(agreed, "v"),
                                  state.positions)
        return {"chunks": agreed}

    async def _on_sample(self, sender: bytes, address: Address, message: Message) -> Message:
        session = self._session(sender, message)
        state = self._round_of(session, message)
        fresh = state.fresh
        if fresh is None:
            raise ProtocolError("round not collected yet")
        try:  # the sorting rule: its first `sampled` are the sample, the rest the key
            order = decode_indices(need(message, "order", bytes), len(fresh))
            check_permutation(order, len(fresh))
            sampled = need(message, "count", int)
            if not 0 <= sampled <= len(fresh):
                raise ValueError("bad sample size")
            errors = mismatches(fresh, order[:sampled], need(message, "bits", bytes))
        except ValueError as exc:
            raise ProtocolError(f"sample: {exc}") from None
        session.pool.extend(reorder(fresh, order[sampled:]))
        session.sampled += sampled
        session.errors += errors
        view = session.view
        view.sifted_bits = (view.sifted_bits or 0) + len(fresh)
        view.qber = qber(session.errors, session.sampled)
        state.fresh = bytearray()
        return {"errors": errors}

    async def _on_reveal(self, sender: bytes, address: Address, message: Message) -> Message:
        session = self._session(sender, message)
        bits = need(message, "bits", bytes)
        if len(bits) > len(session.pool):
            raise ProtocolError("more revealed bits than the sifted key holds")
        errors = sum(a != b for a, b in zip(session.pool[: len(bits)], bits, strict=True))
        session.view.qber = qber(session.errors + errors, session.sampled + len(bits))
        return {"errors": errors}

    async def _on_cascade(self, sender: bytes, address: Address, message: Message) -> Message:
        session = self._session(sender, message)
        start, n = need(message, "start", int), need(message, "n", int)
        if not (start >= 0 and n > 0 and start + n == len(session.pool)):
            raise ProtocolError("Cascade span does not match the sifted key")
        seed = need(message, "seed", bytes)
        if session.cascade is None or session.cascade_span != (start, n, seed):
            q = need(message, "q", float)
            if not 0.0 <= q <= 0.5:
                raise ProtocolError("bad QBER")
            session.cascade = Cascade(n, q, seed, need(message, "re", bool))
            session.cascade_span = (start, n, seed)
            session.flags = []
        machine = session.cascade
        ranges = machine.queries()
        offset, count = need(message, "off", int), need(message, "count", int)
        if not (offset == len(session.flags) and 0 < count <= MAX_RANGES_PER_MESSAGE
                and offset + count <= len(ranges)):
            raise ProtocolError(f"expected parities from {len(session.flags)} of {len(ranges)}")
        try:
            theirs = unpack_flags(need(message, "par", bytes), count)
        except ValueError as exc:
            raise ProtocolError(f"parities: {exc}") from None
        mine = parities(session.pool[start:], machine, ranges[offset : offset + count])
        flags = [int(a != b) for a, b in zip(theirs, mine, strict=True)]
        session.flags += flags
        if len(session.flags) == len(ranges):
            for position in machine.answer([bool(f) for f in session.flags]):
                session.pool[start + position] ^= 1
            session.flags = []
        return {"flags": pack_flags(flags)}

    async def _on_verify(self, sender: bytes, address: Address, message: Message) -> Message:
        """Error verification: is Alice's hash of her reconciled key ours too?"""
        session = self._session(sender, message)
        seed, digest = need(message, "seed", bytes), need(message, "hash", bytes)
        bits = need(message, "bits", int)
        if len(seed) != SEED_BYTES or not 0 < bits <= min(256, len(session.pool)):
            raise ProtocolError("bad verification hash")
        return {"equal": tags_match(toeplitz_hash(session.pool, bits, seed), digest)}

    async def _on_confirm(self, sender: bytes, address: Address, message: Message) -> Message:
        session = self._session(sender, message)
        seed, tag = need(message, "seed", bytes), need(message, "tag", bytes)
        key_id, consumer = need(message, "kid", str), need(message, "con", str)
        if not 0 < len(consumer) <= MAX_CONSUMER_CHARS:
            raise ProtocolError("bad consumer name")
        if len(seed) != SEED_BYTES:
            raise ProtocolError("bad Toeplitz seed")
        try:
            uuid.UUID(key_id)
        except ValueError:
            raise ProtocolError("key_ID must be a UUID") from None
        view = session.view
        if len(session.pool) < view.key_bits:
            raise ProtocolError("sifted key shorter than the key asked for")
        key = toeplitz_hash(session.pool, view.key_bits, seed)
        own = confirmation_tag(key, view.process_id)
        if tags_match(own, tag):
            self.keystore.add(key_id, key, consumer)
            view.key_id = key_id
            self._finish(view.process_id, "confirmed", CONFIRMED, None)
        # On a mismatch Alice reconciles again or aborts; the key is never stored.
        return {"tag": own}

    async def _on_abort(self, sender: bytes, address: Address, message: Message) -> Message:
        pid = need(message, "pid", str)
        self._check_owner(pid, sender)
        view = self.sessions.view(pid)
        if view is None:
            raise ProtocolError("unknown session")
        outcome = message.get("outcome")
        outcome = outcome if isinstance(outcome, str) and len(outcome) < 32 else ERROR
        if view.key_id is not None:  # Alice never saw our confirmation: withdraw the key
            self.keystore.discard(view.key_id)
            view.key_id = None
        self._finish(pid, "failed", outcome, "aborted by Alice")
        view.status, view.outcome, view.error = "failed", outcome, "aborted by Alice"
        return {"ok": True}


def _chains(
    items: list[object], positions: int
) -> tuple[dict[int, Chunk], list[tuple[int, PeerInfo]]]:
    """The round's chains as Alice describes them, [chunk, start, count, QPM, QPC key]:
    what each chunk waits for (QPM's measured bits, QPC's valid positions), and the QPM of
    each chunk, to which Bob's BG_B sends its bases."""
    chunks: dict[int, Chunk] = {}
    qpms: list[tuple[int, PeerInfo]] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 5
                and all(type(v) is int for v in item[:3]) and isinstance(item[4], bytes)):
            raise ProtocolError("bad chain description")
        chunk, start, count = item[:3]
        if not (start >= 0 and 0 < count <= MAX_CHUNK_POSITIONS
                and start + count <= positions) or chunk in chunks:
            raise ProtocolError("bad chain positions")
        qpm = PeerInfo.from_wire(item[3])
        chunks[chunk] = Chunk(start, count, {"m": qpm.public_key, "v": item[4]})
        qpms.append((chunk, qpm))
    return chunks, qpms

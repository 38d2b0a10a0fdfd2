"""Alice: starts key sessions and drives them to a confirmed key or a clear failure.

A session is rounds of raw positions, as many as the finite-size bound needs for lc bits
(qkd/planner.py, qkd/lengths.py), each: allocate workers, command them, tell Bob, gather
the chunks that came through, then a fresh uniform order of the sifted bits whose head is
the sample sacrificed to error estimation and whose rest is the key. Then Cascade, error
verification, Toeplitz hashing to lc bits and HMAC confirmation; only then both stores
get it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
import uuid
from dataclasses import dataclass, field

from cqkd.dht.node import DhtNode
from cqkd.logs import event
from cqkd.metrics import KEY_POSITIONS
from cqkd.qkd import bb84
from cqkd.qkd.allocation import DEDICATED, ROLES_PER_CHAIN, Chain, allocate_alice, chunks
from cqkd.qkd.amplification import SEED_BYTES, confirmation_tag, tags_match, toeplitz_hash
from cqkd.qkd.asking import Asker
from cqkd.qkd.cascade import (
    MAX_RANGES_PER_MESSAGE,
    Cascade,
    efficiency,
    pack_flags,
    parities,
    unpack_flags,
)
from cqkd.qkd.channel import (
    Address,
    Message,
    PeerInfo,
    need,
)
from cqkd.qkd.crypto import Identity
from cqkd.qkd.estimation import qber
from cqkd.qkd.keystore import CONTROL, KeyStore
from cqkd.qkd.lengths import Security, check_key_bits, final_key_bits, worker_exposure_bits
from cqkd.qkd.owner import Owner
from cqkd.qkd.planner import (
    SIFTED_PER_POSITION,
    blocks_qber,
    first_round_sifted,
    more_sifted,
    no_key_possible,
    split_positions,
)
from cqkd.qkd.rounds import Chunk, Round
from cqkd.qkd.session import (
    CONFIRMATION_FAILED,
    CONFIRMED,
    ERROR,
    QBER_EXCEEDED,
    TIMEOUT,
    SessionFailed,
    SessionView,
    Status,
    TooManySessions,
)
from cqkd.qkd.sorting import encode_indices, random_permutation, reorder, sifted_bits
from cqkd.qkd.worker import MAX_CHUNK_POSITIONS, ROUND_KEY_BYTES, Command
from cqkd.settings import Settings

log = logging.getLogger(__name__)

CONFIRM_ATTEMPTS = 3
# A top-up pays a new verification hash and at least a parity per Cascade pass: smaller
# ones would not cover what they cost, and a session could creep on in tiny rounds.
MIN_TOPUP_SIFTED = 1024
MAX_REVEALED_BITS = 1 << 16  # an abort compares at most this many more bits (message size)
@dataclass
class _Round(Round):
    chains: list[Chain] = field(default_factory=list)
    # Alice's share of each chunk's spins: the spin is QSG's bit XOR hers, so a QSG that
    # pushes constant or chosen bits fixes nothing (PROTOCOL.md, "Threat model").
    spin_masks: dict[int, int] = field(default_factory=dict)
    broken: set[int] = field(default_factory=set)  # chains a worker failed to accept

    @classmethod
    def of(cls, chains: list[Chain]) -> _Round:
        """Each chain waits for its QSG's spins and its QPC's valid positions."""
        return cls(
            {c.chunk: Chunk(c.start, c.count, {"s": c.workers["QSG"].public_key,
                                                "v": c.workers["QPC"].public_key})
             for c in chains},
            chains=chains,
            spin_masks={c.chunk: bb84.random_bits(c.count) for c in chains},
        )


@dataclass
class _Tally:
    """What a session gathered so far: the sifted key (its sample removed) and the counts
    the finite-size bound reads."""

    pool: bytearray = field(default_factory=bytearray)
    reconciled: int = 0  # pool[:reconciled] went through Cascade
    leaked: int = 0  # disclosed bits: parities, verification hashes, what workers saw
    parities_leaked: int = 0
    corrected: int = 0
    sampled: int = 0
    errors: int = 0
    rounds: int = 0
    assigned: dict[bytes, str] = field(default_factory=dict)  # worker key -> its role

    def add_cascade(self, machine: Cascade) -> None:
        self.leaked += machine.leaked
        self.parities_leaked += machine.leaked
        self.corrected += len(machine.corrected)


class Alice(Owner[_Round]):
    party = "alice"

    def __init__(
        self,
        node: DhtNode,
        identity: Identity,
        keystore: KeyStore,
        settings: Settings,
        bob_address: Address,
    ) -> None:
        super().__init__(node, identity, keystore, settings)
        self.bob_address = bob_address
        self._bob: PeerInfo | None = None
        self._tasks: dict[str, asyncio.Task[SessionView]] = {}
        self._consumers: dict[str, str] = {}  # process_id -> consumer, while it runs
        # The one limit on sessions: ACTIVE_SESSIONS run at once, the others wait.
        self._active = asyncio.Semaphore(settings.active_sessions)
        self._asker = Asker(self.channel)
        self._ask = self._asker.ask
        self._last_qber = 0.0  # the first round of a session is planned for it

    async def start(self) -> None:
        self._attach()
        await self._look_for_bob()
        await self.directory.workers(refresh=True)
        self.directory.start(also=self._look_for_bob)

    async def _look_for_bob(self) -> bool:
        with contextlib.suppress(SessionFailed):
            await self._bob_peer()
        return self._bob is not None

    async def stop(self) -> None:
        self._detach()
        await self.directory.stop()
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- public interface ---

    def begin_session(self, key_bits: int, consumer: str = CONTROL) -> str:
        """Start a session in the background; its process_id. ValueError for a bad length,
        TooManySessions when `consumer` has MAX_RUNNING_SESSIONS running or waiting.

        Its key is stored at both ends for `consumer` alone (keystore.CONTROL or
        keystore.etsi_consumer(...)): no other API can collect it."""
        check_key_bits(key_bits, self.settings.max_key_bits)
        running = sum(1 for c in self._consumers.values() if c == consumer)
        if running >= self.settings.max_running_sessions:
            raise TooManySessions(
                f"{running} sessions are running, the most allowed; retry when one ends")
        process_id = secrets.token_hex(16)
        view = self.sessions.open(process_id, key_bits)
        task = asyncio.create_task(self._run(view, consumer))
        self._tasks[process_id], self._consumers[process_id] = task, consumer

        def ended(_: object) -> None:
            self._tasks.pop(process_id, None)
            self._consumers.pop(process_id, None)

        task.add_done_callback(ended)
        return process_id

    async def run_session(self, key_bits: int, consumer: str = CONTROL) -> SessionView:
        return await self.wait(self.begin_session(key_bits, consumer))

    async def wait(self, process_id: str) -> SessionView:
        """The session's view once it has ended (at once if it already has)."""
        task = self._tasks.get(process_id)
        if task is not None:
            return await asyncio.shield(task)
        view = self.sessions.view(process_id)
        if view is None:
            raise KeyError(process_id)
        return view

    def network_status(self) -> dict[str, object]:
        status = super().network_status()
        status["bob_reachable"] = self._bob is not None
        # Alice can make keys only with Bob: not converged (nor ready) before she found him.
        status["converged"] = bool(status["converged"]) and self._bob is not None
        return status

    # --- session ---

    async def _bob_peer(self) -> PeerInfo:
        if self._bob is None:
            bob = await self.channel.hello(self.bob_address)
            if bob is None:
                raise SessionFailed(ERROR, f"Bob at {self.bob_address[0]}:{self.bob_address[1]} "
                                           "does not answer")
            if bob.public_key not in self.trusted:
                raise SessionFailed(ERROR, "Bob's public key is not among TRUSTED_OWNERS")
            self._bob = bob
        return self._bob

    async def _run(self, view: SessionView, consumer: str) -> SessionView:
        began = time.monotonic()
        status: Status = "failed"
        error: str | None = None
        try:
            # Sessions beyond the limit queue here: on a saturated event loop every session
            # would otherwise slow down until RPC timeouts fail them all.
            async with self._active, asyncio.timeout(self.settings.session_timeout):
                await self._exchange(view, consumer)
            status, outcome = "confirmed", CONFIRMED
        except SessionFailed as exc:
            outcome, error = exc.outcome, str(exc)
        except TimeoutError:
            outcome = TIMEOUT
            error = f"no confirmed key within {self.settings.session_timeout:g} s"
        except Exception as exc:  # the session ends; the process keeps serving
            outcome, error = ERROR, f"internal error: {type(exc).__name__}"
            event(log, "session_error", logging.ERROR, process_id=view.process_id,
                  error=type(exc).__name__)
        self.sessions.finish(view, status, outcome, error, began)
        if outcome != CONFIRMED and self._bob is not None:
            with contextlib.suppress(Exception):
                await self._ask(self._bob, {"k": "abort", "pid": view.process_id,
                                            "outcome": outcome})
        self._asker.forget(view.process_id)
        event(log, "session_finished", process_id=view.process_id, outcome=view.outcome,
              key_bits=view.key_bits, raw_bits=view.raw_bits, sifted_bits=view.sifted_bits,
              qber=view.qber, seconds=round(view.duration_seconds or 0.0, 4), error=view.error)
        return view

    async def _exchange(self, view: SessionView, consumer: str) -> None:
        """Rounds until the finite-size bound (lengths.py) gives lc bits, then Cascade,
        error verification, privacy amplification and confirmation."""
        s = self.settings
        lc = view.key_bits
        bob = await self._bob_peer()
        security = Security(s.eps_sec, s.eps_cor)
        max_sifted = int(s.max_raw_positions * SIFTED_PER_POSITION)
        got = _Tally()
        wanted, fraction = first_round_sifted(lc, self._last_qber, security, max_sifted)
        while True:
            await self._sift(view, bob, got, wanted, fraction)
            if no_key_possible(lc, got.errors, got.sampled, s.qber_threshold, security,
                               max_sifted):
                await self._reveal(view, bob, got.pool, got.errors, got.sampled)
            self._last_qber = q = qber(got.errors, got.sampled)
            wanted = more_sifted(lc, len(got.pool), got.reconciled, got.sampled, got.errors,
                                 got.leaked, fraction, security, max_sifted)
            if wanted:
                wanted = max(wanted, MIN_TOPUP_SIFTED)
                continue
            await self._correct(view, bob, got, security)
            view.leaked_bits = got.leaked
            view.reconciliation_efficiency = efficiency(got.parities_leaked, got.corrected,
                                                        len(got.pool))
            if final_key_bits(len(got.pool), got.sampled, q, got.leaked, security) < lc:
                wanted = max(MIN_TOPUP_SIFTED, more_sifted(
                    lc, len(got.pool), got.reconciled, got.sampled, got.errors, got.leaked,
                    fraction, security, max_sifted))
                continue
            if not await self._confirm(view, bob, got.pool, consumer):
                raise SessionFailed(CONFIRMATION_FAILED, "Alice's and Bob's keys differ; discarded")
            return

    async def _sift(
        self, view: SessionView, bob: PeerInfo, got: _Tally, wanted: int, fraction: float
    ) -> None:
        """Rounds of raw positions for about `wanted` more sifted bits; each sacrifices
        `fraction` of its sifted bits to error estimation."""
        s = self.settings
        # What is left of the budget still goes in: the bound decides on what it gives.
        positions = min(math.ceil(wanted / SIFTED_PER_POSITION),
                        s.max_raw_positions - view.raw_bits)
        if positions < 1:
            raise SessionFailed(QBER_EXCEEDED, (
                f"no key of {view.key_bits} bits within {s.max_raw_positions} raw positions at "
                f"QBER {view.qber or 0.0:.3f} (MAX_RAW_POSITIONS)"))
        workers = len(await self.directory.workers(wait=False))
        for size in split_positions(positions, workers, s.allocation_mode):
            if got.rounds >= s.max_rounds:
                raise SessionFailed(TIMEOUT, f"no key after {s.max_rounds} rounds "
                                             "of raw positions (MAX_ROUNDS)")
            fresh = await self._round(view, bob, got.rounds, size, got.assigned)
            # The sorting rule: a uniform order of the round's sifted bits, whose first
            # `sampled` are the error-estimation sample (a uniform subset) and the rest
            # go to the key in that order.
            order = random_permutation(len(fresh))
            sampled = round(fraction * len(fresh))
            reply = await self._ask(bob, {
                "k": "sample", "pid": view.process_id, "round": got.rounds,
                "order": encode_indices(order, len(fresh)), "count": sampled,
                "bits": bytes(reorder(fresh, order[:sampled])),
            })
            got.rounds += 1
            # What one QPP or QPM of this round learned is charged like disclosed bits.
            got.leaked += math.ceil(worker_exposure_bits(len(fresh)))
            got.errors += _count(reply, "errors", sampled)
            got.sampled += sampled
            got.pool.extend(reorder(fresh, order[sampled:]))
            view.sifted_bits = (view.sifted_bits or 0) + len(fresh)
            view.qber = qber(got.errors, got.sampled)
            KEY_POSITIONS.labels(stage="sifted").inc(len(fresh))
            KEY_POSITIONS.labels(stage="sampled").inc(sampled)

    async def _correct(
        self, view: SessionView, bob: PeerInfo, got: _Tally, security: Security
    ) -> None:
        """Cascade over what is new in the pool, then error verification; errors Cascade
        missed get BICONF passes over the whole key (a few parities each, counted too)."""
        # Blocks sized for the sample's upper bound: a low estimate leaves errors behind.
        q_blocks = blocks_qber(got.errors, got.sampled)
        got.add_cascade(await self._reconcile(view, bob, got.pool, got.reconciled, q_blocks))
        got.reconciled = len(got.pool)
        for _ in range(CONFIRM_ATTEMPTS):
            got.leaked += security.verify_bits
            if await self._verify(view, bob, got.pool, security.verify_bits):
                return
            got.add_cascade(
                await self._reconcile(view, bob, got.pool, 0, q_blocks, recheck=True))
        raise SessionFailed(CONFIRMATION_FAILED,
                            "Alice's and Bob's keys still differ after Cascade; discarded")

    async def _round(
        self, view: SessionView, bob: PeerInfo, round_no: int, positions: int,
        assigned: dict[bytes, str],
    ) -> bytearray:
        """Steps 2-18 for `positions` raw positions: the sifted bits, in position order, of
        the chains that completed at both ends."""
        chains = await self._allocate(round_no, positions, assigned)
        positions = sum(c.count for c in chains)
        round_key = secrets.token_bytes(ROUND_KEY_BYTES)
        state = self._rounds[round_key] = _Round.of(chains)
        try:
            live = await self._command_chains(view, bob, round_no, round_key, state, assigned)
            await state.wait_quiet([c.chunk for c in chains if c.chunk not in state.broken],
                                   self.settings.round_timeout)
            have = state.done(c.chunk for c in live)
            reply = await self._ask(bob, {"k": "collect", "pid": view.process_id,
                                          "round": round_no, "chunks": have})
            agreed = set(need(reply, "chunks", list)) & set(have)
            view.raw_bits += positions
            KEY_POSITIONS.labels(stage="raw").inc(positions)
            if len(agreed) < len(chains):
                event(log, "chains_lost", process_id=view.process_id, round=round_no,
                      lost=len(chains) - len(agreed), chains=len(chains))
            masks = sum(state.spin_masks[c] << state.chunks[c].start for c in agreed)
            return sifted_bits(state.bits(agreed, "s") ^ masks, state.bits(agreed, "v"),
                               positions)
        finally:
            del self._rounds[round_key]

    async def _allocate(
        self, round_no: int, positions: int, assigned: dict[bytes, str]
    ) -> list[Chain]:
        """Chains for about `positions` raw positions from the live workers."""
        s = self.settings
        # Workers that failed to answer are marked dead by the DHT layer and left out here,
        # so a top-up after lost chains needs no new discovery. A stale list is refreshed in
        # the background: a session waiting for the crawl (every WORKER_CACHE_SECONDS, longer
        # the larger the network) made session p99 grow from 0.14 s at 50 workers to 2.6 s
        # at 200 in the container study.
        workers = await self.directory.workers(wait=False)
        if round_no and s.allocation_mode == DEDICATED:  # a top-up takes what the network has
            positions = max(1, min(positions, len(workers) // ROLES_PER_CHAIN))
        try:
            chains = allocate_alice(workers, positions, s.allocation_mode, s.pool_chunk_bits,
                                    assigned)
        except SessionFailed:
            # Peers that missed one RPC timeout under load count as dead for a while; a
            # fresh hello revives those that answer.
            workers = await self.directory.workers(refresh=True)
            chains = allocate_alice(workers, positions, s.allocation_mode, s.pool_chunk_bits,
                                    assigned)
        if positions > len(chains) * MAX_CHUNK_POSITIONS:
            # Fewer pools than planned (workers busy with other roles): a worker takes at
            # most MAX_CHUNK_POSITIONS, so this round shrinks and the planner tops up.
            positions = len(chains) * MAX_CHUNK_POSITIONS
            chains = [Chain(c.chunk, start, count, c.workers)
                      for c, (start, count) in zip(chains, chunks(positions, len(chains)),
                                                   strict=True)]
        return chains

    async def _command_chains(
        self, view: SessionView, bob: PeerInfo, round_no: int, round_key: bytes,
        state: _Round, assigned: dict[bytes, str],
    ) -> list[Chain]:
        """Command every chain's workers, sinks first, and tell Bob the round; the chains
        whose sinks all accepted (those whose sources did not are marked broken too)."""
        chains = state.chains
        me = PeerInfo("", 0, self.identity.public_key)
        sinks = [(c, role) for c in chains for role in ("QPC", "QPM", "QPP")]
        acks = await asyncio.gather(*(
            self._command(view, round_key, state, c, role, me, bob) for c, role in sinks))
        state.broken = {c.chunk for (c, _), ok in zip(sinks, acks, strict=True) if not ok}
        live = [c for c in chains if c.chunk not in state.broken]
        round_msg = {
            "k": "round", "pid": view.process_id, "round": round_no, "lc": view.key_bits,
            "mode": self.settings.allocation_mode, "rk": round_key,
            "n": sum(c.count for c in chains),
            "chains": [[c.chunk, c.start, c.count, c.workers["QPM"].to_wire(),
                        c.workers["QPC"].public_key] for c in live],
            "used": [key for key, role in assigned.items() if role != "BG_B"],
        }
        sources = [(c, role) for c in live for role in ("QSG", "BG_A")]
        source_commands = asyncio.gather(
            *(self._command(view, round_key, state, c, role, me, bob) for c, role in sources))
        bob_reply, source_acks = await asyncio.gather(
            self._ask(bob, round_msg), source_commands)
        # A chain whose source is dead will never complete: stop waiting for it.
        state.broken |= {c.chunk for (c, _), ok in zip(sources, source_acks, strict=True)
                         if not ok}
        for key in need(bob_reply, "bgb", list):
            if isinstance(key, bytes):
                assigned[key] = "BG_B"
        return live

    async def _command(
        self, view: SessionView, round_key: bytes, state: _Round, chain: Chain, role: str,
        me: PeerInfo, bob: PeerInfo,
    ) -> bool:
        w = chain.workers
        feeds = {"QSG": {"QPP": w["QPP"], "ALICE": me},
                 "BG_A": {"QPP": w["QPP"]},
                 "QPP": {"QPM": w["QPM"]},
                 "QPM": {"BOB": bob, "QPC": w["QPC"]},
                 "QPC": {"ALICE": me, "BOB": bob}}[role]
        sources = {"QPP": {"s": w["QSG"].public_key, "a": w["BG_A"].public_key},
                   "QPM": {"p": w["QPP"].public_key, "mb": bob.public_key},
                   "QPC": {"cb": w["QPM"].public_key}}.get(role, {})
        masks = {}
        if role == "QPP":  # Alice's shares of spins and bases travel sealed to QPP only
            masks = {"s": bb84.to_bytes(state.spin_masks[chain.chunk], chain.count),
                     "a": bb84.to_bytes(bb84.random_bits(chain.count), chain.count)}
        command = Command(view.process_id, round_key, role, chain.chunk, chain.count, feeds,
                          time.time(), receiver=w[role].public_key, sources=sources,
                          masks=masks)
        worker = chain.workers[role]
        try:
            reply = await self.channel.send(
                worker, {"k": "command", "cmd": self.identity.sign(command.to_wire())})
        except Exception as exc:
            event(log, "command_refused", logging.WARNING, role=role, error=str(exc)[:120])
            reply = None
        if reply is None:  # maybe a new identity at that address: the next round knows
            self.directory.recheck(worker.address)
        return reply is not None

    async def _reveal(
        self, view: SessionView, bob: PeerInfo, pool: bytearray, errors: int, sampled: int
    ) -> None:
        """The key is lost anyway: compare more bits (up to MAX_REVEALED_BITS) for a precise
        QBER, then fail."""
        revealed = bytes(pool[:MAX_REVEALED_BITS])
        reply = await self._ask(bob, {"k": "reveal", "pid": view.process_id, "bits": revealed})
        errors += _count(reply, "errors", len(revealed))
        view.qber = qber(errors, sampled + len(revealed))
        raise SessionFailed(
            QBER_EXCEEDED,
            f"QBER {view.qber:.3f}: no key of {view.key_bits} bits is possible (finite-size "
            f"bound, threshold {self.settings.qber_threshold:g}): possible eavesdropper, "
            "no key delivered",
        )

    async def _reconcile(
        self, view: SessionView, bob: PeerInfo, pool: bytearray, start: int, q: float,
        recheck: bool = False,
    ) -> Cascade:
        """Cascade (or with `recheck`, BICONF passes) over pool[start:] (non-empty); the
        finished machine (its `leaked`, `corrected`)."""
        segment = pool[start:]
        seed = secrets.token_bytes(16)
        machine = Cascade(len(segment), q, seed, recheck)
        while ranges := machine.queries():
            flags: list[int] = []
            for offset in range(0, len(ranges), MAX_RANGES_PER_MESSAGE):
                batch = ranges[offset : offset + MAX_RANGES_PER_MESSAGE]
                reply = await self._ask(bob, {
                    "k": "cascade", "pid": view.process_id, "start": start, "n": len(segment),
                    "q": q, "seed": seed, "re": recheck, "off": offset, "count": len(batch),
                    "par": pack_flags(parities(segment, machine, batch)),
                })
                try:
                    flags += unpack_flags(need(reply, "flags", bytes), len(batch))
                except ValueError:
                    raise SessionFailed(ERROR, "Bob answered Cascade with bad flags") from None
            machine.answer([bool(f) for f in flags])
        return machine

    async def _verify(self, view: SessionView, bob: PeerInfo, pool: bytearray, bits: int) -> bool:
        """Error verification: a random Toeplitz hash of `bits` bits of the reconciled key
        (2-universal: unequal keys pass with probability 2^-bits, at most eps_cor)."""
        seed = secrets.token_bytes(SEED_BYTES)
        digest = toeplitz_hash(pool, bits, seed)
        reply = await self._ask(bob, {"k": "verify", "pid": view.process_id, "seed": seed,
                                      "bits": bits, "hash": digest})
        return need(reply, "equal", bool)

    async def _confirm(
        self, view: SessionView, bob: PeerInfo, pool: bytearray, consumer: str
    ) -> bool:
        """Hash to lc bits and compare HMAC tags; store the key only if they match."""
        seed = secrets.token_bytes(SEED_BYTES)
        key = toeplitz_hash(pool, view.key_bits, seed)
        key_id = str(uuid.uuid4())
        tag = confirmation_tag(key, view.process_id)
        reply = await self._ask(bob, {"k": "confirm", "pid": view.process_id, "seed": seed,
                                      "tag": tag, "kid": key_id, "con": consumer})
        if not tags_match(tag, need(reply, "tag", bytes)):
            return False
        self.keystore.add(key_id, key, consumer)
        view.key_id = key_id
        KEY_POSITIONS.labels(stage="final").inc(view.key_bits)
        return True


def _count(reply: Message, name: str, limit: int) -> int:
    value = need(reply, name, int)
    if not 0 <= value <= limit:
        raise SessionFailed(ERROR, f"Bob answered an impossible {name} count")
    return value

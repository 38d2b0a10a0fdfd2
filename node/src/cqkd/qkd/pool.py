"""A KME key pool: one consumer's keys of one size made ahead of demand, between watermarks.

Real KMEs hand out keys they already hold. Alice keeps, for one consumer (one ETSI SAE
pair), keys of one size in her key store: once fewer than `low` are stored she runs sessions
until `high` are (hysteresis, so that taking one key does not start one session), at most
`concurrency` at once: the sessions Alice runs at once (she alone limits them), so that the
pool keeps her busy without queueing sessions ahead of other consumers'. The keys are the
key store's, bound to the consumer like every other key, and Bob stores the matching ones as every
session confirms; the pool only decides when sessions run.

Requests are served first come, first served: a request the pool cannot fill at once waits
in a FIFO, and new keys go to the oldest waiter first, so a large request is never
overtaken forever by small ones and no request runs sessions of its own.

Requests win over the refill: sessions and requests share Alice's one event loop, and a
session's steps (Cascade, hashing, sealing; and in `cqkd local` the workers' and Bob's)
keep it busy, so requests answered from the pool wait behind them. While requests keep
taking keys (one came less than `demand_seconds` ago) the pool starts no session above
`low` and keeps one in flight at or below it (so it never runs dry under a steady demand
it could meet); once they stop, or as soon as a request has to wait for keys, it runs
`concurrency` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cqkd.logs import event
from cqkd.qkd.keystore import KeyStore

log = logging.getLogger(__name__)

# After a failed session the pool waits before the next one, doubling up to this, so that a
# network without workers is not flooded with sessions bound to fail.
MAX_BACKOFF_SECONDS = 5.0
READY_POLL_SECONDS = 0.2
# A take less than this long ago means requests are coming: 20 SAEs asking again as soon as
# they are answered take a key every few milliseconds.
DEMAND_SECONDS = 0.1

Keys = list[tuple[str, bytes]]
RunSession = Callable[[int, str], Awaitable[Any]]


class PoolUnavailable(Exception):
    """The pool stopped before it could serve a request; the message is for the client."""


@dataclass
class _Waiter:
    number: int
    future: asyncio.Future[Keys]


class KeyPool:
    """Keys of `key_bits` for `consumer`, kept between `low` and `high` in `keystore`
    (`key_bits` as validated by the caller's config: qkd/lengths.check_key_bits).

    `run_session(key_bits, consumer)` is Alice's: it ends with the key stored for the
    consumer (or a failed view, whose `status` is not "confirmed"). `ready()` says whether
    sessions can run yet (Alice joined and found workers). `high` 0 disables pre-generation:
    then the pool runs sessions only for waiting requests. `demand_seconds`: how long after
    a take requests hold the refill back (module docstring).
    """

    def __init__(
        self,
        keystore: KeyStore,
        run_session: RunSession,
        consumer: str,
        key_bits: int,
        *,
        low: int,
        high: int,
        concurrency: int,
        ready: Callable[[], bool] = lambda: True,
        demand_seconds: float = DEMAND_SECONDS,
    ) -> None:
        if not 0 <= low <= high or concurrency < 1:
            raise ValueError(
                f"need 0 <= low ({low}) <= high ({high}) and concurrency ({concurrency}) >= 1"
            )
        self.keystore = keystore
        self.consumer = consumer
        self.key_bits = key_bits
        self.low, self.high, self.concurrency = low, high, concurrency
        self._run_session = run_session
        self._ready = ready
        self.demand_seconds = demand_seconds
        self._last_take = -math.inf  # loop time of the latest request
        self._waiters: deque[_Waiter] = deque()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._refilling = False
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self.sessions_started = 0

    # --- what the HTTP layer uses ---

    def stored(self) -> int:
        """Keys of the pool's size held for its consumer (the ETSI `stored_key_count`)."""
        return self.keystore.count(self.key_bits // 8, self.consumer)

    async def take(self, number: int) -> Keys:
        """`number` keys, at once from the pool or in turn with earlier requests.

        Waits as long as it takes: bound it with asyncio.timeout. A request cancelled after
        it was served gives its keys back. ValueError if `number` is below 1 or above what
        the key store may ever hold."""
        if not 1 <= number <= self.keystore.max_keys:
            raise ValueError(f"number must be 1..{self.keystore.max_keys}")
        self._last_take = asyncio.get_running_loop().time()
        if not self._waiters and (keys := self._take_now(number)):
            self._wake.set()
            return keys
        waiter = _Waiter(number, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._wake.set()
        try:
            return await asyncio.shield(waiter.future)
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                for key_id, key in waiter.future.result():
                    self.keystore.add(key_id, key, self.consumer)
            raise
        finally:
            if not waiter.future.done():
                waiter.future.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            self._wake.set()

    # --- lifecycle ---

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._refill())

    async def stop(self) -> None:
        tasks = [*self._in_flight, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(PoolUnavailable("the key pool stopped; retry"))

    # --- refill ---

    def _take_now(self, number: int) -> Keys:
        return self.keystore.take(number, self.key_bits // 8, self.consumer)

    def _serve_waiters(self) -> None:
        """Hand keys to waiters strictly in arrival order: the head first, or nobody."""
        while self._waiters:
            head = self._waiters[0]
            if head.future.done():
                self._waiters.popleft()
                continue
            keys = self._take_now(head.number)
            if not keys:
                return
            self._waiters.popleft()
            head.future.set_result(keys)

    def _wanted(self) -> int:
        """Sessions to start now: what waiters lack, plus the refill to `high`."""
        stored = self.stored()
        if stored <= self.low:
            self._refilling = True
        elif stored >= self.high:
            self._refilling = False
        waiting = sum(w.number for w in self._waiters if not w.future.done())
        target = waiting + (self.high if self._refilling else 0)
        return target - stored - len(self._in_flight)

    def _limit(self, now: float) -> int:
        """Sessions the pool may have in flight now: `concurrency` while a request waits for
        keys or none came for `demand_seconds`; while requests are answered from the pool,
        none above `low` and one at or below it."""
        waiting = any(not w.future.done() for w in self._waiters)
        if waiting or now - self._last_take >= self.demand_seconds:
            return self.concurrency
        return 1 if self.stored() <= self.low else 0

    async def _refill(self) -> None:
        # Readiness is the engine's state (as /ready reads it): no event announces it.
        while not self._ready():  # noqa: ASYNC110
            await asyncio.sleep(READY_POLL_SECONDS)
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            self._serve_waiters()
            now = loop.time()
            if (wanted := self._wanted()) > 0 and len(self._in_flight) < self._limit(now):
                task = asyncio.create_task(self._session())
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                continue
            # Held back by requests: look again once they stop, if nothing wakes us first.
            quiet_in = self._last_take + self.demand_seconds - now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(quiet_in if wanted > 0 and quiet_in > 0 else None):
                    await self._wake.wait()

    async def _session(self) -> None:
        self.sessions_started += 1
        try:
            view = await self._run_session(self.key_bits, self.consumer)
            failed = view.status != "confirmed"
        except Exception as exc:  # the pool outlives any one session
            event(log, "pool_session_error", logging.WARNING, error=f"{type(exc).__name__}")
            failed = True
        if failed:
            self._failures += 1
            await asyncio.sleep(min(MAX_BACKOFF_SECONDS, 0.05 * 2**self._failures))
        else:
            self._failures = 0
        self._in_flight.discard(asyncio.current_task())  # type: ignore[arg-type]
        self._wake.set()

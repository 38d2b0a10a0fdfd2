"""Token buckets by source address: the cheap first check on every datagram.

A flood larger than a node can parse fills its socket buffer, and the kernel then drops
its peers' answers with the flood's: their RPCs time out and the peers are evicted (in a
30-s flood of 16,000 datagrams/s Alice lost her workers this way). Refusing a flooding
address before any parsing keeps the node's time for everyone else. Buckets are kept for
the `max_keys` most recently seen addresses; a forgotten one starts with a full bucket, so
the protocol also keeps one bucket shared by every address not yet proven.

Each bucket is one float, as in the generic cell rate algorithm (GCRA, ITU-T I.371): the
time at which it will be full again. A key whose bucket is full needs no state at all, so
such keys are swept away as the table grows: the table holds only the addresses heard from
within the last burst / rate seconds (2 s), not every address ever heard (at 10,000 nodes
in one process the buckets of every peer a node had met were its largest state).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

MIN_SWEEP = 16
EPSILON = 1e-9  # float sums of 1 / rate must not refuse the burst's last token


class TokenBuckets:
    """`rate` tokens per second up to `burst` per key; `allow(key)` spends one.

    `allow(key, rate, burst)` uses other figures for that call (an address that has proven
    itself gets more), so one table serves every kind of key.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._clock = clock
        # key -> when its bucket is full again; insertion order is least recently used first.
        self._full_at: dict[Hashable, float] = {}
        self._sweep_at = MIN_SWEEP

    def __len__(self) -> int:
        return len(self._full_at)

    def forget(self, key: Hashable) -> None:
        """Drop the key's bucket: its next `allow` starts full (at that call's burst)."""
        self._full_at.pop(key, None)

    def allow(self, key: Hashable, rate: float | None = None, burst: float | None = None) -> bool:
        interval = 1.0 / (self.rate if rate is None else rate)
        burst = self.burst if burst is None else burst
        now = self._clock()
        table = self._full_at
        full_at = table.pop(key, now)
        if full_at < now:
            full_at = now
        # The bucket holds burst - (full_at - now) / interval tokens; one is needed.
        allowed = full_at - now <= (burst - 1) * interval + EPSILON
        table[key] = full_at + interval if allowed else full_at
        if len(table) > self.max_keys:
            del table[next(iter(table))]
        elif len(table) > self._sweep_at:
            self._sweep(now)
        return allowed

    def _sweep(self, now: float) -> None:
        # Amortised O(1): the next sweep waits until as many keys again have come.
        table = self._full_at
        for key in [key for key, full_at in table.items() if full_at <= now]:
            del table[key]
        self._sweep_at = max(MIN_SWEEP, 2 * len(table))

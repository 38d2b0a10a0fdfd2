"""Token buckets by source address: the cheap first check on every datagram.

A flood larger than a node can parse fills its socket buffer, and the kernel then drops
its peers' answers with the flood's: their RPCs time out and the peers are evicted (in a
30-s flood of 16,000 datagrams/s Alice lost her workers this way). Refusing a flooding
address before any parsing keeps the node's time for everyone else. Buckets are kept for
the `max_keys` most recently seen addresses; a forgotten one starts with a full bucket, so
the protocol also keeps one bucket shared by every address not yet proven.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


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
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()  # [tokens, time]

    def forget(self, key: Hashable) -> None:
        """Drop the key's bucket: its next `allow` starts full (at that call's burst)."""
        self._buckets.pop(key, None)

    def allow(self, key: Hashable, rate: float | None = None, burst: float | None = None) -> bool:
        rate = self.rate if rate is None else rate
        burst = self.burst if burst is None else burst
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [burst, now]
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(burst, bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
        if bucket[0] < 1:
            return False
        bucket[0] -= 1
        return True

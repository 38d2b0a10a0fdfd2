"""Bounded DHT storage: what a node keeps for others' STORE RPCs.

kademlia's ForgetfulStorage keeps any number of values of any size for a week, so a peer
that never joined could fill a node's memory (4,000 STOREs of 8 KB added 30 MiB to a
worker). Here a value is refused, and counted in `cqkd_dht_store_refused_total{reason}`,
when it would pass one of four bounds:

- `max_values` values in all, `max_bytes` bytes in all (the cost of a value is its msgpack
  size plus `ENTRY_OVERHEAD` for the key, the entry and the Python objects);
- `per_source` of each bound for one source address (host, port): one peer cannot take
  more than its share;
- a value over `max_value_bytes` (msgpack) is refused: kademlia republishes what it holds,
  and a STORE of it must fit one datagram;
- values older than `ttl` seconds are forgotten. Entries are kept in insertion order, so
  expiry pops from the front and never scans.

A new value for a key already held replaces it (Kademlia republishes hourly).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
from kademlia.storage import IStorage

from cqkd.metrics import DHT_STORE_REFUSED

Address = tuple[str, int]
OWN: Address = ("", 0)  # the source of values this node stores itself

# A 20-byte key in a bytes object (53), a tuple entry (64), an OrderedDict link (~100).
ENTRY_OVERHEAD = 256
MAX_VALUES = 4096
MAX_BYTES = 4 << 20
PER_SOURCE = 0.25
TTL_SECONDS = 3600.0  # kademlia republishes every hour; a value not republished goes


def value_bytes(value: Any) -> int:
    """The msgpack size of a value, as it travels in a STORE."""
    return len(msgpack.packb(value))


class BoundedStorage(IStorage):  # type: ignore[misc]
    def __init__(
        self,
        max_values: int = MAX_VALUES,
        max_bytes: int = MAX_BYTES,
        per_source: float = PER_SOURCE,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_value_bytes: int | None = None,
    ) -> None:
        self.max_value_bytes = max_value_bytes
        self.max_values = max_values
        self.max_bytes = max_bytes
        self.source_values = max(1, int(max_values * per_source))
        self.source_bytes = max(1, int(max_bytes * per_source))
        self.ttl = ttl
        self._clock = clock
        # key -> (stored at, value, cost in bytes, source)
        self._data: OrderedDict[bytes, tuple[float, Any, int, Address]] = OrderedDict()
        self._bytes = 0
        self._by_source: dict[Address, list[int]] = {}  # source -> [values, bytes]

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        self._expire()
        return len(self._data)

    def put(self, key: bytes, value: Any, source: Address) -> bool:
        """Store `value` from `source`; False (and counted) when a bound refuses it."""
        self._expire()
        size = value_bytes(value)
        cost = size + ENTRY_OVERHEAD
        # A refused value leaves the one it would have replaced in place.
        old = self._data.get(key)
        freed = (1, old[2]) if old is not None else (0, 0)
        mine = freed if old is not None and old[3] == source else (0, 0)
        used = self._by_source.get(source, [0, 0])
        reason = None
        if self.max_value_bytes is not None and size > self.max_value_bytes:
            reason = "too_large"
        elif source != OWN and (
            used[0] - mine[0] >= self.source_values or used[1] - mine[1] + cost > self.source_bytes
        ):
            reason = "per_source"
        elif len(self._data) - freed[0] >= self.max_values:
            reason = "count"
        elif self._bytes - freed[1] + cost > self.max_bytes:
            reason = "bytes"
        if reason is not None:
            DHT_STORE_REFUSED.labels(reason=reason).inc()
            return False
        self._drop(key)
        used = self._by_source.get(source, [0, 0])
        self._data[key] = (self._clock(), value, cost, source)
        self._bytes += cost
        self._by_source[source] = [used[0] + 1, used[1] + cost]
        return True

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.put(key, value, OWN)

    def _drop(self, key: bytes) -> None:
        entry = self._data.pop(key, None)
        if entry is None:
            return
        _, _, cost, source = entry
        self._bytes -= cost
        used = self._by_source[source]
        used[0] -= 1
        used[1] -= cost
        if used[0] == 0:
            del self._by_source[source]

    def _expire(self) -> None:
        horizon = self._clock() - self.ttl
        while self._data:
            key, entry = next(iter(self._data.items()))
            if entry[0] > horizon:
                return
            self._drop(key)

    def __getitem__(self, key: bytes) -> Any:
        self._expire()
        return self._data[key][1]

    def get(self, key: bytes, default: Any = None) -> Any:
        self._expire()
        entry = self._data.get(key)
        return default if entry is None else entry[1]

    def iter_older_than(self, seconds_old: float) -> Iterator[tuple[bytes, Any]]:
        self._expire()
        horizon = self._clock() - seconds_old
        return iter(
            [(key, entry[1]) for key, entry in self._data.items() if entry[0] < horizon]
        )

    def __iter__(self) -> Iterator[tuple[bytes, Any]]:
        self._expire()
        return iter([(key, entry[1]) for key, entry in self._data.items()])

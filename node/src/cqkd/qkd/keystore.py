"""Confirmed keys waiting to be handed out, held in memory only, each bound to its consumer.

Alice and Bob each own one store. The session engine adds a key under the same key_ID and
for the same consumer on both sides once key confirmation succeeded; the HTTP APIs hand
each key out exactly once (`pop`, `pop_many`, `take`), and only to the consumer it was
made for: the control API (CONTROL) or one ETSI SAE pair (`etsi_consumer`). Asking for a
key made for another consumer raises KeyElsewhere, and the key stays where it is. Bob
should store his key before he acknowledges Alice's confirmation, so that any key Alice
hands out is already at Bob.

Keys live in one pool per consumer, oldest first, so that keys made ahead of demand per
consumer (a pool kept between watermarks) fit without another store. Keys never leave
this object except through those calls: its repr shows counts only. The store is bounded;
past `max_keys` the oldest key of the largest pool is dropped, so a consumer that never
collects its keys cannot exhaust memory.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from itertools import islice

DEFAULT_MAX_KEYS = 10_000
CONTROL = "control"
MAX_CONSUMER_CHARS = 300


def etsi_consumer(master_sae_id: str, slave_sae_id: str) -> str:
    """The consumer name of keys made for one ETSI GS QKD 014 SAE pair."""
    return f"etsi:{master_sae_id}:{slave_sae_id}"


class KeyElsewhere(LookupError):
    """Keys made for another consumer; their IDs are in `key_ids`, never their content."""

    def __init__(self, key_ids: list[str]) -> None:
        super().__init__(f"{len(key_ids)} key(s) were made for another consumer")
        self.key_ids = key_ids


class KeyStore:
    """Thread-safe in-memory pools consumer -> key_ID -> key bytes, oldest first."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.max_keys = max_keys
        self._pools: dict[str, dict[str, bytes]] = {}
        self._consumer_of: dict[str, str] = {}
        # Keys per (consumer, size in bytes): a pool's count and take must not walk the
        # whole pool on every ETSI request (they did: a tenth of the request's CPU).
        self._sized: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, key_id: str, key: bytes, consumer: str = CONTROL) -> None:
        """Store a confirmed key for `consumer`; a key_ID is used once, so a duplicate is a
        bug upstream (ValueError)."""
        if not key:
            raise ValueError("refusing to store an empty key")
        if not 0 < len(consumer) <= MAX_CONSUMER_CHARS:
            raise ValueError(f"a consumer name is 1..{MAX_CONSUMER_CHARS} characters")
        with self._lock:
            if key_id in self._consumer_of:
                raise ValueError(f"key_ID {key_id} is already stored")
            if len(self._consumer_of) >= self.max_keys:
                largest = max(self._pools.values(), key=len)
                self._remove(next(iter(largest)))
                self.dropped += 1
            self._pools.setdefault(consumer, {})[key_id] = bytes(key)
            self._consumer_of[key_id] = consumer
            self._sized[consumer, len(key)] += 1

    def _remove(self, key_id: str) -> bytes:
        consumer = self._consumer_of.pop(key_id)
        key = self._pools[consumer].pop(key_id)
        self._sized[consumer, len(key)] -= 1
        return key

    def _check(self, key_ids: Iterable[str], consumer: str) -> None:
        elsewhere = [k for k in key_ids if self._consumer_of.get(k, consumer) != consumer]
        if elsewhere:
            raise KeyElsewhere(elsewhere)

    def pop(self, key_id: str, consumer: str = CONTROL) -> bytes | None:
        """Hand out one key by its ID, or None if it is unknown or already handed out;
        KeyElsewhere if it was made for another consumer."""
        with self._lock:
            self._check([key_id], consumer)
            return self._remove(key_id) if key_id in self._consumer_of else None

    def discard(self, key_id: str) -> None:
        """Withdraw a key whatever its consumer (the session engine, when Alice aborts)."""
        with self._lock:
            if key_id in self._consumer_of:
                self._remove(key_id)

    def pop_many(
        self, key_ids: Iterable[str], consumer: str = CONTROL
    ) -> tuple[dict[str, bytes], list[str]]:
        """All or nothing: the keys if every ID is present, else ({}, the missing IDs);
        KeyElsewhere (nothing handed out) if any was made for another consumer."""
        wanted = list(dict.fromkeys(key_ids))
        with self._lock:
            self._check(wanted, consumer)
            missing = [key_id for key_id in wanted if key_id not in self._consumer_of]
            if missing:
                return {}, missing
            return {key_id: self._remove(key_id) for key_id in wanted}, []

    def take(
        self, number: int, size_bytes: int, consumer: str = CONTROL
    ) -> list[tuple[str, bytes]]:
        """All or nothing: `consumer`'s `number` oldest keys of exactly `size_bytes`, else []."""
        with self._lock:
            if self._sized[consumer, size_bytes] < number:
                return []
            pool = self._pools[consumer]
            chosen = list(islice((kid for kid, key in pool.items() if len(key) == size_bytes),
                                 number))
            return [(kid, self._remove(kid)) for kid in chosen]

    def count(self, size_bytes: int | None = None, consumer: str | None = None) -> int:
        """How many keys are stored (of exactly `size_bytes`, for `consumer`, if given)."""
        with self._lock:
            if consumer is not None and size_bytes is not None:
                return self._sized[consumer, size_bytes]
            pools = self._pools.values() if consumer is None else [self._pools.get(consumer, {})]
            if size_bytes is None:
                return sum(len(pool) for pool in pools)
            return sum(1 for pool in pools for key in pool.values() if len(key) == size_bytes)

    def __contains__(self, key_id: object) -> bool:
        with self._lock:
            return key_id in self._consumer_of

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"KeyStore(keys={self.count()}, max_keys={self.max_keys})"

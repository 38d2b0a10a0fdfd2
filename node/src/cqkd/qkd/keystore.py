"""Confirmed keys waiting to be handed out, held in memory only.

Alice and Bob each own one store. The session engine adds a key under the same key_ID on
both sides once key confirmation succeeded; the HTTP APIs hand each key out exactly once
(`pop`, `pop_many`, `take`). Bob should store his key before he acknowledges Alice's
confirmation, so that any key Alice hands out is already at Bob.

Keys never leave this object except through those calls: its repr shows counts only.
The store is bounded; past `max_keys` the oldest key is dropped, so a peer that never
collects its keys cannot exhaust memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

DEFAULT_MAX_KEYS = 10_000


class KeyStore:
    """Thread-safe in-memory map key_ID -> key bytes, oldest first."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.max_keys = max_keys
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, key_id: str, key: bytes) -> None:
        """Store a confirmed key; a key_ID is used once, so a duplicate is a bug upstream."""
        if not key:
            raise ValueError("refusing to store an empty key")
        with self._lock:
            if key_id in self._keys:
                raise ValueError(f"key_ID {key_id} is already stored")
            if len(self._keys) >= self.max_keys:
                del self._keys[next(iter(self._keys))]
                self.dropped += 1
            self._keys[key_id] = bytes(key)

    def pop(self, key_id: str) -> bytes | None:
        """Hand out one key by its ID, or None if it is unknown or already handed out."""
        with self._lock:
            return self._keys.pop(key_id, None)

    def pop_many(self, key_ids: Iterable[str]) -> tuple[dict[str, bytes], list[str]]:
        """All or nothing: the keys if every ID is present, else ({}, the missing IDs)."""
        wanted = list(dict.fromkeys(key_ids))
        with self._lock:
            missing = [key_id for key_id in wanted if key_id not in self._keys]
            if missing:
                return {}, missing
            return {key_id: self._keys.pop(key_id) for key_id in wanted}, []

    def take(self, number: int, size_bytes: int) -> list[tuple[str, bytes]]:
        """All or nothing: the `number` oldest keys of exactly `size_bytes`, else []."""
        with self._lock:
            chosen = [kid for kid, key in self._keys.items() if len(key) == size_bytes]
            if len(chosen) < number:
                return []
            return [(kid, self._keys.pop(kid)) for kid in chosen[:number]]

    def count(self, size_bytes: int | None = None) -> int:
        """How many keys are stored (of exactly `size_bytes`, if given)."""
        with self._lock:
            if size_bytes is None:
                return len(self._keys)
            return sum(1 for key in self._keys.values() if len(key) == size_bytes)

    def __contains__(self, key_id: object) -> bool:
        with self._lock:
            return key_id in self._keys

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"KeyStore(keys={self.count()}, max_keys={self.max_keys})"

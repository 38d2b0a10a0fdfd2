"""Reassembly of fragmented channel messages, bounded before anything is authenticated.

A message over one RPC travels as fragments `[1][message id: 8][index: 2][count: 2][data]`
(channel.py sends them); the receiver can check the seal only once the last one is in, so
until then anyone can make it buffer data. The buffer is bounded by its real memory cost
(`cost()`: the bytes objects, the slot list and the entry), per source address and in all;
a fragment past a bound is refused with FragmentRefused and nothing already held is lost.
Messages expire `ttl` seconds after their first fragment: entries sit in arrival order, so
expiry pops from the front and never scans.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Address = tuple[str, int]

HEADER_BYTES = 1 + 8 + 2 + 2
MAX_MESSAGE_BYTES = 1 << 20
TTL_SECONDS = 30.0
# One source may hold one message of the largest size, with room to spare; all sources
# together a few of them. A flood from one address then costs at most PER_SOURCE_BYTES.
PER_SOURCE_BYTES = 2 << 20
TOTAL_BYTES = 8 << 20
# An entry: its key tuple, the address and message-id objects, the dict link, the Pending.
ENTRY_BYTES = 400
SLOT_BYTES = 8  # one pointer in the list of parts
BYTES_OBJECT = sys.getsizeof(b"")  # the header of a bytes object (33 on CPython 3.11)


class FragmentRefused(ValueError):
    """A fragment this node will not buffer; the text goes back to the sender."""


@dataclass
class _Pending:
    expires: float
    parts: list[bytes | None]
    source: Address
    cost: int = 0


class Reassembler:
    """Collect fragments by (sender, message id); `add` returns the whole message once
    the last fragment arrives, or None while some are outstanding."""

    def __init__(
        self,
        fragment_data: int,
        per_source_bytes: int = PER_SOURCE_BYTES,
        total_bytes: int = TOTAL_BYTES,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fragment_data = fragment_data
        self.max_count = MAX_MESSAGE_BYTES // fragment_data + 1
        self.per_source_bytes = per_source_bytes
        self.total_bytes = total_bytes
        self.ttl = ttl
        self._clock = clock
        self._pending: OrderedDict[tuple[Address, bytes], _Pending] = OrderedDict()
        self._by_source: dict[Address, int] = {}
        self._total = 0

    @property
    def buffered_bytes(self) -> int:
        """The memory cost of every fragment held, in bytes."""
        return self._total

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, sender: Address, payload: bytes) -> bytes | None:
        """Take one fragment (its frame type byte included).

        Raises FragmentRefused for a malformed fragment or one past a memory bound.
        """
        if len(payload) <= HEADER_BYTES:
            raise FragmentRefused("fragment too short")
        message_id = payload[1:9]
        index = int.from_bytes(payload[9:11], "big")
        count = int.from_bytes(payload[11:13], "big")
        data = payload[HEADER_BYTES:]
        if not 1 < count <= self.max_count or index >= count or len(data) > self.fragment_data:
            raise FragmentRefused("bad fragment numbering")
        now = self._clock()
        self._expire(now)
        key = (sender, message_id)
        entry = self._pending.get(key)
        added = BYTES_OBJECT + len(data)
        if entry is None:
            added += ENTRY_BYTES + SLOT_BYTES * count
        elif len(entry.parts) != count:
            raise FragmentRefused("fragment count changed")
        if entry is None or entry.parts[index] is None:
            if self._by_source.get(sender, 0) + added > self.per_source_bytes:
                raise FragmentRefused("too many fragments buffered from this address")
            if self._total + added > self.total_bytes:
                raise FragmentRefused("too many fragments buffered")
            if entry is None:
                entry = self._pending[key] = _Pending(now + self.ttl, [None] * count, sender)
            entry.parts[index] = bytes(data)
            self._charge(entry, added)
        if index != count - 1:
            return None
        if any(part is None for part in entry.parts):
            raise FragmentRefused("fragments missing")
        self._remove(key)
        return b"".join(part for part in entry.parts if part is not None)

    def _charge(self, entry: _Pending, cost: int) -> None:
        entry.cost += cost
        self._total += cost
        self._by_source[entry.source] = self._by_source.get(entry.source, 0) + cost

    def _remove(self, key: tuple[Address, bytes]) -> None:
        entry = self._pending.pop(key)
        self._total -= entry.cost
        left = self._by_source[entry.source] - entry.cost
        if left:
            self._by_source[entry.source] = left
        else:
            del self._by_source[entry.source]

    def _expire(self, now: float) -> None:
        # Every entry lives for the same ttl, so arrival order is expiry order.
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if entry.expires >= now:
                return
            self._remove(key)

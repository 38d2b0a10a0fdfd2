"""Cascade error reconciliation as a pure state machine that Alice and Bob both run.

Each step the machine names ranges (pass, start, end) of its pass order. Alice sends her
parities of them; Bob compares with his own and answers one mismatch flag per range. Both
feed the flags to their machine, so both derive the same next ranges; only Bob flips the
bits the machine locates. Every range asked costs one disclosed parity bit (`leaked`).

Passes (Martinez-Mateo, Pacher, Peev, Ciurana, Martin, "Demystifying the information
reconciliation protocol Cascade", QIC 15 (2015)): the first block size is the power of 2
nearest FIRST_BLOCK_QBER_PRODUCT / QBER, each later pass's blocks 4 times the previous (the
paper's k2 ~ 4/QBER; measured here, doubling leaks about 8 % more: bench/README.md). The
QBER given is the sample's upper bound, a few percent above the estimate, so 0.8 here is
the usual 0.73 of the estimate (and it picks 32, not 16, near QBER 0.03, where 16 leaked
3 % more on 16,384 bits). Pass 1 in key order, later
passes in public pseudo-random orders from a shared seed. Within a step all odd blocks are
searched at once (one round trip per halving); a corrected bit toggles the parity of its
block in every pass begun, which starts (or cancels) the search there: the cascade.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from cqkd.qkd.bb84 import from_bytes, pack_bits, to_bytes
from cqkd.qkd.lengths import h2
from cqkd.qkd.sorting import order_by_keys

Range = tuple[int, int, int]  # (pass, start, end) in that pass's order
# Ranges per message: Bob's answer is one datagram (replies are not fragmented, about 8 KB),
# so a step with more ranges goes in several messages, parities and flags packed 8 a byte.
MAX_RANGES_PER_MESSAGE = 1 << 15
PASSES = 4
RECHECK_PASSES = 16  # an odd error count in a random half is missed with probability 1/2
BLOCK_GROWTH = 4
FIRST_BLOCK_QBER_PRODUCT = 0.8
QBER_FLOOR = 0.001  # the smallest QBER blocks are sized for (first block 512 bits)


def block_sizes(qber: float, n: int) -> list[int]:
    """Each pass's block size, in bits, for n bits at an expected QBER."""
    k1 = 2 ** round(math.log2(FIRST_BLOCK_QBER_PRODUCT / max(qber, QBER_FLOOR)))
    return [max(2, min(n, k1 * BLOCK_GROWTH**p)) for p in range(PASSES)]


def _public_order(seed: bytes, pass_no: int, n: int) -> list[int]:
    """The shared pseudo-random order of a pass: keys from SHAKE-256 of the seed."""
    for attempt in range(256):
        keys = hashlib.shake_256(seed + bytes([pass_no, attempt])).digest(8 * n)
        order = order_by_keys(keys, n)
        if order is not None:
            return order
    raise ValueError("no distinct sort keys")  # 256 collisions in a row: not in this universe


class Cascade:
    def __init__(self, n: int, qber: float, seed: bytes, recheck: bool = False) -> None:
        """Cascade over n bits with blocks for `qber`; with `recheck`, the extra passes that
        follow a failed verification instead: RECHECK_PASSES passes, each splitting the
        key into two random halves (BICONF, Brassard-Salvail 1993), which find the few
        errors Cascade left at a few parities each."""
        if n < 1:
            raise ValueError("nothing to reconcile")
        self.n = n
        self.block_sizes = [max(1, (n + 1) // 2)] * RECHECK_PASSES if recheck else (
            block_sizes(qber, n))
        passes = self.passes = len(self.block_sizes)
        self.seed = seed
        # Pass orders are made on first use: a pass whose one block is the whole key needs
        # its order only to search it, and a clean key is never searched.
        self._orders: dict[int, list[int]] = {0: list(range(n))}
        self._where: dict[int, list[int]] = {}
        self.current_pass = -1
        # A sample without errors: ask every pass's blocks in one round trip; errors then
        # found are still corrected (statuses toggle in every pass begun), at some extra cost.
        self.all_passes_at_once = qber == 0.0
        self.odd: list[set[int]] = [set() for _ in range(passes)]
        self.searches: dict[tuple[int, int], tuple[int, int]] = {}
        self.leaked = 0
        self.corrected: set[int] = set()  # positions flipped an odd number of times
        self._asked: list[Range] | None = None

    def order(self, pass_no: int) -> list[int]:
        """Pass `pass_no`'s order of the key positions (pass 0: key order)."""
        order = self._orders.get(pass_no)
        if order is None:
            order = self._orders[pass_no] = _public_order(self.seed, pass_no, self.n)
        return order

    def _block_of(self, pass_no: int, position: int) -> int:
        """The block of pass `pass_no` that holds key position `position`."""
        size = self.block_sizes[pass_no]
        if size >= self.n:
            return 0
        where = self._where.get(pass_no)
        if where is None:  # the inverse of the pass order, needed only once a bit flips
            where = self._where[pass_no] = [0] * self.n
            for index, at in enumerate(self.order(pass_no)):
                where[at] = index
        return where[position] // size

    @property
    def done(self) -> bool:
        return self.current_pass >= self.passes - 1 and not self.searches

    def queries(self) -> list[Range]:
        """The ranges whose parity comparison the next step needs; [] when finished."""
        if self._asked is not None:
            return self._asked
        if self.searches:
            asked = [
                (p, start, (start + end) // 2)
                for (p, _), (start, end) in sorted(self.searches.items())
            ]
        elif self.current_pass < self.passes - 1:
            first = self.current_pass + 1
            self.current_pass = self.passes - 1 if self.all_passes_at_once else first
            asked = [
                (p, start, min(start + self.block_sizes[p], self.n))
                for p in range(first, self.current_pass + 1)
                for start in range(0, self.n, self.block_sizes[p])
            ]
        else:
            asked = []
        self._asked = asked
        return asked

    def answer(self, mismatch: Sequence[bool]) -> list[int]:
        """Feed one flag per range of `queries()`; returns the key positions Bob must flip."""
        asked = self.queries()
        if len(mismatch) != len(asked):
            raise ValueError(f"expected {len(asked)} parity flags, got {len(mismatch)}")
        self._asked = None
        self.leaked += len(asked)
        if not self.searches:
            for (p, start, end), odd in zip(asked, mismatch, strict=True):
                if odd:
                    block = start // self.block_sizes[p]
                    self.odd[p].add(block)
                    self.searches[(p, block)] = (start, end)
        else:
            for key, (_, _, mid), odd in zip(sorted(self.searches), asked, mismatch, strict=True):
                start, end = self.searches[key]
                self.searches[key] = (start, mid) if odd else (mid, end)
        flips = []
        for key in sorted(k for k, (s, e) in self.searches.items() if e - s == 1):
            located = self.searches.get(key)
            if located is None or located[1] - located[0] != 1:
                continue  # cancelled by a flip earlier in this step
            position = self.order(key[0])[located[0]]
            flips.append(position)
            self.corrected ^= {position}
            self._toggle(position)
        return flips

    def _toggle(self, position: int) -> None:
        for p in range(self.current_pass + 1):
            k = self.block_sizes[p]
            block = self._block_of(p, position)
            if block in self.odd[p]:
                self.odd[p].discard(block)
                self.searches.pop((p, block), None)
            else:
                self.odd[p].add(block)
                self.searches[(p, block)] = (block * k, min(block * k + k, self.n))


def efficiency(leaked: int, corrected: int, n: int) -> float | None:
    """f = leaked / (n h2(e)) with e = corrected / n, the error rate Cascade corrected
    (Martinez-Mateo et al. 2015 use the frame's error rate); None when there was no error."""
    if n < 1 or corrected < 1:
        return None
    return leaked / (n * h2(corrected / n))


def parities(key: bytearray, machine: Cascade, ranges: Sequence[Range]) -> list[int]:
    """This side's parity of each range of `key` (one byte, 0 or 1, per bit)."""
    out = []
    for p, start, end in ranges:
        if p == 0 or (start == 0 and end == machine.n):  # key order, or any order of it all
            out.append(key.count(1, start, end) & 1)
        else:
            out.append(sum(map(key.__getitem__, machine.order(p)[start:end])) & 1)
    return out


def pack_flags(flags: Sequence[int]) -> bytes:
    """Bits (parities or mismatch flags), 8 a byte, little-endian."""
    return to_bytes(pack_bits(bytes(flags)), len(flags))


def unpack_flags(data: bytes, count: int) -> list[int]:
    """Inverse of pack_flags; ValueError unless `data` is exactly `count` packed bits."""
    value = from_bytes(data, count)
    return [(value >> i) & 1 for i in range(count)]

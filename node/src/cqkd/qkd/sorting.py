"""The sorting rule: Alice's uniform permutation of a round's sifted bits (step 19). Both
sides read the sifted bits in position order, then in the permutation's order: its first
k are the error-estimation sample, the rest go to the key."""

from __future__ import annotations

import secrets
import sys
from array import array
from collections.abc import Sequence
from itertools import compress

_ZERO_ONE = bytes.maketrans(b"01", b"\x00\x01")


def order_by_keys(keys: bytes, n: int) -> list[int] | None:
    """0..n-1 sorted by n random 64-bit keys: a uniform permutation when the keys are
    distinct (None if two collide, about n^2 / 2^65). Sorting runs in C, unlike a
    Fisher-Yates loop with one CSPRNG call per position."""
    values = array("Q", keys)
    if sys.byteorder == "big":  # both sides must read the same keys
        values.byteswap()
    if len(set(values)) != n:
        return None
    # Sorting plain ints (key above, index below) beats sorting with a key function.
    shift = max(1, n.bit_length())
    index_mask = (1 << shift) - 1
    return [t & index_mask for t in sorted([(key << shift) | i for i, key in enumerate(values)])]


def random_permutation(n: int) -> list[int]:
    """A uniform permutation of 0..n-1 from the CSPRNG."""
    while (order := order_by_keys(secrets.token_bytes(8 * n), n)) is None:
        pass
    return order


def check_permutation(order: Sequence[int], n: int) -> None:
    """Raise ValueError unless `order` is a permutation of 0..n-1."""
    # n distinct values, all in 0..n-1 (a set, where sorting would cost n log n)
    if len(order) != n or len(set(order)) != n or (n and not 0 <= min(order) <= max(order) < n):
        raise ValueError(f"not a permutation of 0..{n - 1}")


def _bit_string(vector: int, n: int) -> bytes:
    """Bit i of the vector as byte i (0 or 1): one pass, where shifting per bit is O(n^2)."""
    return format(vector, f"0{n}b").encode()[::-1].translate(_ZERO_ONE) if n else b""


def sifted_bits(bits: int, valid: int, n: int) -> bytearray:
    """The bits at the valid positions of 0..n-1, in position order; one byte per bit."""
    return bytearray(compress(_bit_string(bits, n), _bit_string(valid, n)))


def reorder(bits: bytearray, order: Sequence[int]) -> bytearray:
    """bits[order[0]], bits[order[1]], ...: the bits in the order of the sorting rule."""
    return bytearray(map(bits.__getitem__, order))


def _index_code(limit: int) -> str:
    """Indices below `limit` travel as 2-byte integers up to 65,536 of them, else 4-byte:
    the sorting rule of a round up to 65,536 sifted bits then costs half the bytes."""
    return "H" if limit <= 1 << 16 else "I"


def encode_indices(indices: Sequence[int], limit: int) -> bytes:
    """Indices, each below `limit` (a permutation), as little-endian integers of the
    width `limit` calls for."""
    values = array(_index_code(limit), indices)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def decode_indices(data: bytes, limit: int) -> list[int]:
    """Inverse of encode_indices; ValueError unless every index is below `limit`."""
    values = array(_index_code(limit))
    if len(data) % values.itemsize:
        raise ValueError(f"index list length is not a multiple of {values.itemsize}")
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    if values and max(values) >= limit:
        raise ValueError("index out of range")
    return values.tolist()

"""The sorting rule: Alice's uniform permutation pi of the raw positions, and the sifted key
both sides read in that order (step 19): K = [bit[pi(j)] for j if pi(j) in V]."""

from __future__ import annotations

import secrets
import sys
from array import array
from collections.abc import Sequence


def order_by_keys(keys: bytes, n: int) -> list[int] | None:
    """0..n-1 sorted by n random 64-bit keys: a uniform permutation when the keys are
    distinct (None if two collide, about n^2 / 2^65). Sorting runs in C, unlike a
    Fisher-Yates loop with one CSPRNG call per position."""
    values = array("Q", keys)
    if sys.byteorder == "big":  # both sides must read the same keys
        values.byteswap()
    if len(set(values)) != n:
        return None
    return sorted(range(n), key=values.__getitem__)


def random_permutation(n: int) -> list[int]:
    """A uniform permutation of 0..n-1 from the CSPRNG."""
    while (order := order_by_keys(secrets.token_bytes(8 * n), n)) is None:
        pass
    return order


def check_permutation(order: Sequence[int], n: int) -> None:
    """Raise ValueError unless `order` is a permutation of 0..n-1."""
    if len(order) != n or sorted(order) != list(range(n)):
        raise ValueError(f"not a permutation of 0..{n - 1}")


def sifted_key(bits: int, valid: int, order: Sequence[int]) -> bytearray:
    """The bits at the valid positions, in the order of the sorting rule; one byte per bit."""
    return bytearray((bits >> i) & 1 for i in order if (valid >> i) & 1)


def encode_indices(indices: Sequence[int]) -> bytes:
    """Indices (a permutation or a sample) as 4-byte little-endian integers."""
    return b"".join(i.to_bytes(4, "little") for i in indices)


def decode_indices(data: bytes, limit: int) -> list[int]:
    """Inverse of encode_indices; ValueError unless every index is below `limit`."""
    if len(data) % 4:
        raise ValueError("index list length is not a multiple of 4")
    indices = [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]
    if any(i >= limit for i in indices):
        raise ValueError("index out of range")
    return indices

"""BB84 as bit vectors: the computations of the roles QSG, BG, QPP, QPM, QPC and of Eve.

A vector of n positions is a Python int whose bit i is position i (plus its length n,
carried by the caller). Whole batches are then a handful of big-int operations.

Bases: bit 0 is '+' (rectilinear), bit 1 is 'x' (diagonal). A polarization is the pair
(basis class, bit): (+, 0) = 0 deg, (+, 1) = 90 deg, (x, 0) = 45 deg, (x, 1) = 135 deg.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

_RATE_SCALE = 1 << 32
_BIT_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def mask(n: int) -> int:
    return (1 << n) - 1


def random_bits(n: int) -> int:
    """n uniform bits from the CSPRNG: spins (QSG) and bases (BG_A, BG_B)."""
    return secrets.randbits(n) if n > 0 else 0


def bernoulli_bits(n: int, probability: float) -> int:
    """n independent bits, each 1 with `probability` (CSPRNG)."""
    if probability <= 0.0:
        return 0
    if probability >= 1.0:
        return mask(n)
    threshold = round(probability * _RATE_SCALE)
    draws = secrets.token_bytes(4 * n)
    result = 0
    for i in range(n):
        if int.from_bytes(draws[4 * i : 4 * i + 4], "little") < threshold:
            result |= 1 << i
    return result


def polarize(spins: int, bases: int) -> tuple[int, int]:
    """QPP: the polarization of each position, as (basis class, bit) vectors."""
    return bases, spins


def measure(
    pol_class: int, pol_bit: int, bob_bases: int, n: int, channel_error: float = 0.0
) -> int:
    """QPM: Bob's measured bits. Matching basis: the bit exactly; otherwise a fair coin.
    With a channel error rate, each measured bit flips with that probability."""
    same = ~(pol_class ^ bob_bases) & mask(n)
    measured = (pol_bit & same) | (random_bits(n) & ~same & mask(n))
    return measured ^ bernoulli_bits(n, channel_error)


def intercept_resend(pol_class: int, pol_bit: int, n: int, probability: float) -> tuple[int, int]:
    """Eve on the QPP->QPM link: for each intercepted position she measures in a random
    basis and forwards the polarization she measured (her basis, her bit)."""
    caught = bernoulli_bits(n, probability)
    if not caught:
        return pol_class, pol_bit
    eve_bases = random_bits(n)
    eve_bits = measure(pol_class, pol_bit, eve_bases, n)
    return (pol_class & ~caught) | (eve_bases & caught), (pol_bit & ~caught) | (eve_bits & caught)


def sift(pol_class: int, bob_bases: int, n: int) -> int:
    """QPC: the valid positions V, where the polarization's basis class equals Bob's basis."""
    return ~(pol_class ^ bob_bases) & mask(n)


def to_bytes(bits: int, n: int) -> bytes:
    return bits.to_bytes((n + 7) // 8, "little")


def from_bytes(data: bytes, n: int) -> int:
    """A bit vector of length n; raises ValueError if `data` is not exactly its encoding."""
    if len(data) != (n + 7) // 8:
        raise ValueError(f"expected {(n + 7) // 8} bytes for {n} bits, got {len(data)}")
    value = int.from_bytes(data, "little")
    if value >> n:
        raise ValueError("bits set beyond the vector length")
    return value


def pack_bits(key: Sequence[int]) -> int:
    """A key held one byte per bit (0 or 1) as a bit vector: bit i = key[i]."""
    return int(bytes(reversed(key)).translate(_BIT_DIGITS), 2) if len(key) else 0

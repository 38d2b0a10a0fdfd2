"""How many raw positions, sample bits and reconciled bits a key of lc bits needs."""

from __future__ import annotations

import math


def raw_length(key_bits: int, factor: float = 2.5) -> int:
    """lk = ceil(factor * lc): raw positions for a key of lc bits (about half survive)."""
    if key_bits < 1:
        raise ValueError(f"key length must be at least 1 bit, got {key_bits}")
    return math.ceil(factor * key_bits)


def sample_target(sifted_total: int, fraction: float, minimum: int) -> int:
    """Bits to sacrifice, in all, for error estimation once `sifted_total` bits are sifted."""
    return min(sifted_total, max(minimum, math.ceil(fraction * sifted_total)))


def h2(p: float) -> float:
    """Binary entropy in bits."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def secret_bits(reconciled_bits: int, qber: float, leaked_bits: int) -> int:
    """The most key bits privacy amplification may extract: n (1 - h2(QBER)) - leak."""
    return max(0, math.floor(reconciled_bits * (1.0 - h2(qber))) - leaked_bits)


def bits_needed(key_bits: int, qber: float, leak_per_bit: float) -> int:
    """Reconciled bits n with n (1 - h2(q) - leak_per_bit) >= lc, for planning top-ups."""
    rate = 1.0 - h2(qber) - leak_per_bit
    if rate <= 0.0:
        raise ValueError(f"no secret key is possible at QBER {qber:.3f}")
    return math.ceil(key_bits / rate)

"""Privacy amplification by a random Toeplitz matrix, and key confirmation.

The matrix has rows r_i = t >> i over n columns (a Toeplitz matrix with its columns
reversed, the same universal hash family); its n + m - 1 bits t are public and expanded
from a 32-byte seed with SHAKE-256, so the seed is all Alice has to send.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from cqkd.qkd.bb84 import pack_bits

SEED_BYTES = 32


def toeplitz_hash(key: Sequence[int], out_bits: int, seed: bytes) -> bytes:
    """Compress the key (one byte per bit) to `out_bits` bits, packed little-endian."""
    n = len(key)
    if not 0 < out_bits <= n:
        raise ValueError(f"cannot hash {n} bits down to {out_bits}")
    if len(seed) != SEED_BYTES:
        raise ValueError(f"Toeplitz seed must be {SEED_BYTES} bytes")
    width = n + out_bits - 1
    t = int.from_bytes(hashlib.shake_256(seed).digest((width + 7) // 8), "little")
    x = pack_bits(key)
    # Two ways to the same bits, each the cheaper for its shape: a parity per output bit
    # (short hashes: error verification), or the XOR of t >> j over the key's 1 bits j
    # (privacy amplification), eight key bits at a time from a table of 256.
    if out_bits < (n // 8 + 256) // 4:
        full = (1 << n) - 1
        out = 0
        for i in range(out_bits):
            out |= (((t >> i) & full & x).bit_count() & 1) << i
    else:
        table = [0] * 256  # table[v]: XOR of t >> k over the bits k of v
        for v in range(1, 256):
            table[v] = table[v & (v - 1)] ^ (t >> ((v & -v).bit_length() - 1))
        out = 0
        for offset, v in enumerate(x.to_bytes((n + 7) // 8, "little")):
            if v:
                out ^= table[v] >> (8 * offset)
        out &= (1 << out_bits) - 1
    return out.to_bytes((out_bits + 7) // 8, "little")


def confirmation_tag(key: bytes, process_id: str) -> bytes:
    """HMAC-SHA256(key, process_id): equal tags mean equal keys (short of a forgery)."""
    return hmac.new(key, process_id.encode(), hashlib.sha256).digest()


def tags_match(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)

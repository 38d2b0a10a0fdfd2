"""Key lengths: the rule both APIs apply to a requested length, and the finite-size key
length of BB84 that decides how many raw positions a session needs and how long its key is.

Finite-size bound (Tomamichel, Lim, Gisin, Renner, "Tight finite-key analysis for quantum
cryptography", Nature Communications 3, 634 (2012), Eq. (2)-(3), symmetric BB84):

    l = floor( n (1 - h2(Q + mu)) - leak_EC - log2(2 / (eps_sec^2 eps_cor)) )
    mu = sqrt( (n + k) / (n k) * (k + 1) / k * ln(2 / eps_sec) )

n: reconciled bits that go into privacy amplification; k: sifted bits sacrificed to estimate
the error rate; Q: the errors found in those k bits over k. By the symmetry of BB84 the bit
error rate of a random sample bounds the phase error rate of the rest: Q + mu, except with
probability eps_sec. leak_EC: every bit disclosed by error correction (Cascade's parities
plus the verification hash of log2(1/eps_cor) bits).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

# A key is whole bytes: ETSI GS QKD 014 counts key sizes in bits but only in multiples of 8
# (its `size`), and a byte string with unused top bits would claim bits it does not have.
KEY_BITS_MULTIPLE = 8

SAMPLE_FRACTIONS = tuple(i / 100 for i in range(4, 61, 2))  # the sample-size search grid


def check_key_bits(key_bits: object, max_bits: int) -> int:
    """The requested key length, validated: an int, a multiple of 8, 8..max_bits.

    Raises ValueError whose message names the rule (the APIs answer it with a 4xx)."""
    if isinstance(key_bits, bool) or not isinstance(key_bits, int):
        raise ValueError("key length must be an integer number of bits")
    if not KEY_BITS_MULTIPLE <= key_bits <= max_bits or key_bits % KEY_BITS_MULTIPLE:
        raise ValueError(
            f"key length must be a multiple of {KEY_BITS_MULTIPLE} bits between "
            f"{KEY_BITS_MULTIPLE} and {max_bits} (keys are whole bytes)"
        )
    return key_bits


def h2(p: float) -> float:
    """Binary entropy in bits; 1 at p >= 0.5 (a bound past 1/2 says nothing)."""
    if p <= 0.0:
        return 0.0
    if p >= 0.5:
        return 1.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


@dataclass(frozen=True)
class Security:
    """The security parameters: the key is eps_sec-secret and eps_cor-correct (TLGR 2012)."""

    eps_sec: float = 1e-10
    eps_cor: float = 1e-15

    @property
    def verify_bits(self) -> int:
        """Length of the error-verification hash: a collision passes with 2^-bits <= eps_cor."""
        return math.ceil(math.log2(1 / self.eps_cor))

    @property
    def overhead_bits(self) -> float:
        """log2(2 / (eps_sec^2 eps_cor)): what privacy amplification must leave out."""
        return math.log2(2 / (self.eps_sec**2 * self.eps_cor))


def deviation(n: int, k: int, eps_sec: float) -> float:
    """mu: how far the phase error rate of n key bits may lie above the error rate of a
    random sample of k bits, except with probability eps_sec (TLGR 2012, Eq. (3))."""
    if n < 1 or k < 1:
        return math.inf
    return math.sqrt((n + k) / (n * k) * (k + 1) / k * math.log(2 / eps_sec))


def final_key_bits(n: int, k: int, q: float, leaked: float, security: Security) -> int:
    """l of TLGR 2012 Eq. (2), in bits (0 when no key is possible). `leaked`: every bit
    error correction disclosed, the verification hash included."""
    if n < 1 or k < 1:
        return 0
    mu = deviation(n, k, security.eps_sec)
    bits = n * (1.0 - h2(q + mu)) - leaked - security.overhead_bits
    return max(0, math.floor(bits))


def worker_exposure_bits(round_sifted: int) -> float:
    """Bits one curious worker can learn about the key from one round of `round_sifted`
    sifted bits: log2(round_sifted + 1).

    A QPP or QPM knows the values of its chunk's sifted bits, but not where π puts them in
    the key, so all it holds about the key is how many of them are 1: one of at most
    round_sifted + 1 values. By the chain rule of smooth min-entropy, side information of
    that many values costs at most its log2 in key length (TLGR 2012, Eq. (2), counted like
    the leakage of error correction). A worker serves at most one chunk per round, so a
    session charges this once per round (PROTOCOL.md, "Threat model")."""
    return math.log2(round_sifted + 1)


def expected_final_bits(
    sifted: int, fraction: float, q: float, efficiency: float, security: Security
) -> int:
    """l expected from `sifted` bits with a sample of `fraction`, if Cascade leaks
    efficiency * n * h2(q) and the sample sees q."""
    k = max(1, round(fraction * sifted))
    n = sifted - k
    leak = efficiency * n * h2(q) + security.verify_bits
    return final_key_bits(n, k, q, leak, security)


@dataclass(frozen=True)
class Plan:
    sifted: int  # sifted bits needed in all (sample included)
    fraction: float  # of them sacrificed for error estimation


# A pure function that every session asks (first round, abort check) with the same few
# arguments on a steady channel, and that costs a bisection over the fraction grid.
@functools.lru_cache(maxsize=1024)
def plan(
    key_bits: int, q: float, efficiency: float, security: Security, max_sifted: int
) -> Plan | None:
    """The fewest sifted bits (and the sample fraction that needs fewest) for a key of
    `key_bits` at QBER q; None if even `max_sifted` bits give no such key.

    The sample size rule: for the planned total N, k = fraction * N with the fraction in
    SAMPLE_FRACTIONS that maximises l; N is the least for which that l >= key_bits."""

    def best(sifted: int) -> tuple[int, float]:
        return max((expected_final_bits(sifted, f, q, efficiency, security), f)
                   for f in SAMPLE_FRACTIONS)

    if best(max_sifted)[0] < key_bits:
        return None
    low, high = 1, max_sifted
    while low < high:  # l grows with N: bisect for the least N that suffices
        middle = (low + high) // 2
        if best(middle)[0] >= key_bits:
            high = middle
        else:
            low = middle + 1
    return Plan(low, best(low)[1])


def largest_qber(efficiency: float) -> float:
    """The QBER where the asymptotic rate 1 - h2(Q) - efficiency * h2(Q) reaches 0."""
    low, high = 0.0, 0.5
    for _ in range(60):
        middle = (low + high) / 2
        if 1 - (1 + efficiency) * h2(middle) > 0:
            low = middle
        else:
            high = middle
    return low


def qber_upper(errors: int, sampled: int, eps: float) -> float:
    """A one-sided upper confidence bound on the QBER from `errors` in `sampled` bits
    (Hoeffding: exceeded with probability at most eps); 0.5 for an empty sample."""
    if sampled < 1:
        return 0.5
    return min(0.5, errors / sampled + math.sqrt(math.log(1 / eps) / (2 * sampled)))


def qber_lower(errors: int, sampled: int, eps: float) -> float:
    """The matching lower confidence bound (Hoeffding)."""
    if sampled < 1:
        return 0.0
    return max(0.0, errors / sampled - math.sqrt(math.log(1 / eps) / (2 * sampled)))

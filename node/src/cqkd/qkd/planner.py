"""How many raw positions a session still needs, in rounds that every receiver accepts,
and when the finite-size bound says that no key is possible. Pure functions, no I/O.

Each round is cut to what its receivers enforce: a chain carries at most
MAX_CHUNK_POSITIONS positions (the workers' limit), and Alice's sample message carries the
sorting rule, at most 4 bytes per sifted bit (at most one per position), under the channel's 1 MiB
message cap.
"""

from __future__ import annotations

import math

from cqkd.qkd.allocation import DEDICATED, ROLES_PER_CHAIN
from cqkd.qkd.cascade import PASSES, block_sizes
from cqkd.qkd.lengths import (
    SAMPLE_FRACTIONS,
    Security,
    final_key_bits,
    h2,
    plan,
    qber_lower,
    worker_exposure_bits,
)
from cqkd.qkd.worker import MAX_CHUNK_POSITIONS

# Positions per round: the sorting rule (at most 4 bytes a sifted bit, one per position)
# then fills at most half of the 1 MiB cap of one channel message (fragments.MAX_MESSAGE_BYTES).
ROUND_POSITIONS_MAX = 1 << 17
SIFTED_PER_POSITION = 0.5  # BB84: Bob guesses Alice's basis half of the time
# Cascade's leak as a multiple of n h2(QBER), for planning only (the session counts the
# parities actually disclosed): measured f is 1.08-1.10 (bench/README.md); the margin
# keeps a plan from falling short, which would cost a top-up round.
PLANNING_EFFICIENCY = 1.2
ABORT_EPS = 1e-6  # a session aborts wrongly (key possible, QBER seen too high) this rarely
WILSON_Z = 1.0  # block sizes from the ~84 % upper bound of the sample's QBER
# A round's sifted bits vary as Binomial(positions, 1/2): a first round asks for this many
# standard deviations more than its plan, so that it rarely falls short by a few bits and
# pays a whole top-up round for them.
SIFTING_MARGIN_SD = 3.0


def round_capacity(workers: int, mode: str) -> int:
    """The most raw positions one round may carry with `workers` live workers."""
    if mode == DEDICATED:
        return max(1, workers // ROLES_PER_CHAIN)
    chains = max(1, workers // ROLES_PER_CHAIN)
    return min(ROUND_POSITIONS_MAX, chains * MAX_CHUNK_POSITIONS)


def split_positions(positions: int, workers: int, mode: str) -> list[int]:
    """`positions` raw positions as rounds of at most round_capacity() each, near-equal."""
    if positions < 1:
        return []
    rounds = math.ceil(positions / round_capacity(workers, mode))
    base, extra = divmod(positions, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def blocks_qber(errors: int, sampled: int) -> float:
    """The QBER Cascade sizes its blocks for: the Wilson score upper bound of the sample
    (z = 2), so a sample that saw no error still gets blocks that find the errors it missed."""
    if sampled < 1:
        return 0.5
    p, z2 = errors / sampled, WILSON_Z**2
    centre = p + z2 / (2 * sampled)
    spread = WILSON_Z * math.sqrt(p * (1 - p) / sampled + z2 / (4 * sampled**2))
    return min(0.5, (centre + spread) / (1 + z2 / sampled))


def leak_per_bit(q: float, q_blocks: float) -> float:
    """Parities Cascade is expected to disclose per key bit: PLANNING_EFFICIENCY h2(q), but
    at least one parity per top-level block of every pass (all a clean key costs)."""
    top_level = sum(1 / size for size in block_sizes(q_blocks, ROUND_POSITIONS_MAX << 8))
    return max(PLANNING_EFFICIENCY * h2(q), top_level)


def first_round_sifted(key_bits: int, prior_qber: float, security: Security,
                       max_sifted: int) -> tuple[int, float]:
    """(sifted bits, sample fraction) for a session's first round, planned for the QBER
    the previous session saw; the most the budget allows if that plan needs more."""
    # A prior that allows no key (the last session met an eavesdropper) must not stop
    # this one from measuring: then plan as for a clean channel.
    if plan(key_bits, prior_qber, PLANNING_EFFICIENCY, security, max_sifted) is None:
        prior_qber = 0.0
    found = plan(key_bits, prior_qber, PLANNING_EFFICIENCY, security, max_sifted)
    if found is None:
        return max_sifted, max(SAMPLE_FRACTIONS)
    # The plan leaves out what Alice charges once the round is in (more_sifted): what one
    # worker of the round learns and at least one parity per Cascade block (PASSES more for
    # blocks cut short at the key's end). Asking for it now spares a top-up round.
    sampled = round(found.fraction * found.sifted)
    charged = math.ceil(worker_exposure_bits(max_sifted)) + PASSES
    wanted = found.sifted + more_sifted(
        key_bits, found.sifted - sampled, 0, sampled, round(prior_qber * sampled), charged,
        found.fraction, security, max_sifted)
    wanted += math.ceil(SIFTING_MARGIN_SD * math.sqrt(wanted / 2))
    return min(max_sifted, wanted), found.fraction


def no_key_possible(key_bits: int, errors: int, sampled: int, threshold: float,
                    security: Security, max_sifted: int) -> bool:
    """True when even the sample's lower confidence bound on the QBER exceeds `threshold`
    or leaves no key of `key_bits` within `max_sifted` sifted bits: abort."""
    low = qber_lower(errors, sampled, ABORT_EPS)
    if low > threshold:
        return True
    return plan(key_bits, low, PLANNING_EFFICIENCY, security, max_sifted) is None


def more_sifted(key_bits: int, pool: int, reconciled: int, sampled: int, errors: int,
                leaked: int, fraction: float, security: Security, max_sifted: int) -> int:
    """Fresh sifted bits still needed so that the bound gives `key_bits` once the
    unreconciled part is reconciled (0: enough now); max_sifted when even that falls short.

    pool: key bits held (sample removed), of which `reconciled` already reconciled with
    `leaked` bits disclosed; fresh bits are sampled at `fraction`."""
    q = errors / sampled if sampled else 0.0
    cost = leak_per_bit(q, blocks_qber(errors, sampled))

    def final(extra: int) -> int:
        k = sampled + round(fraction * extra)
        n = pool + extra - round(fraction * extra)
        leak = leaked + cost * (n - reconciled) + security.verify_bits
        return final_key_bits(n, k, q, leak, security)

    if final(0) >= key_bits:
        return 0
    if final(max_sifted) < key_bits:
        # The point estimate allows no key but its lower bound does (else the session had
        # aborted): a larger sample decides. Double what the session has sifted so far.
        return max(1, min(max_sifted, pool + sampled))
    low, high = 1, max_sifted
    while low < high:
        middle = (low + high) // 2
        if final(middle) >= key_bits:
            high = middle
        else:
            low = middle + 1
    return low

"""What one curious worker learns is charged to privacy amplification (PROTOCOL.md,
"Threat model"): a QPP or QPM knows its chunk's sifted bit values but not π, so only their
count of ones, one of m + 1 values."""

import math
from collections import Counter
from itertools import product

import pytest
from cqkd.qkd.lengths import worker_exposure_bits


@pytest.mark.parametrize("m", [1, 4, 8])
def test_a_worker_that_knows_the_bits_but_not_their_order_learns_their_weight_only(
    m: int,
) -> None:
    # Every m-bit chunk, every order: the key's distribution given the worker's view (the
    # multiset of values) is uniform over the arrangements, so the view is worth exactly
    # the entropy of the weight, which the charge bounds.
    weights = Counter(sum(bits) for bits in product((0, 1), repeat=m))
    entropy = -sum(c / 2**m * math.log2(c / 2**m) for c in weights.values())
    assert entropy <= worker_exposure_bits(m) + 1e-12
    assert worker_exposure_bits(m) == math.log2(m + 1)


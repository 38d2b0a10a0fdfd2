"""The sorting rule (permutation), sifting in its order, sampling, QBER and lengths."""

from collections import Counter

import pytest
from cqkd.qkd import bb84
from cqkd.qkd.estimation import mismatches, qber
from cqkd.qkd.sorting import (
    check_permutation,
    decode_indices,
    encode_indices,
    random_permutation,
    reorder,
    sifted_bits,
)


def test_permutation_is_a_permutation() -> None:
    order = random_permutation(1000)
    check_permutation(order, 1000)
    assert order != list(range(1000))


def test_permutation_is_uniform_over_small_sets() -> None:
    counts = Counter(tuple(random_permutation(3)) for _ in range(6000))
    assert len(counts) == 6
    assert all(800 < c < 1200 for c in counts.values())


def test_check_permutation_rejects_repeats_and_gaps() -> None:
    with pytest.raises(ValueError):
        check_permutation([0, 0, 2], 3)
    with pytest.raises(ValueError):
        check_permutation([0, 1], 3)


def test_sifted_bits_are_the_valid_positions_read_in_the_sorting_rule() -> None:
    bits, valid = 0b1010, 0b0111  # positions 0..2 valid with bits 0, 1, 0
    sifted = sifted_bits(bits, valid, 4)
    assert sifted == bytearray([0, 1, 0])
    assert reorder(sifted, [1, 2, 0]) == bytearray([1, 0, 0])


def test_both_sides_get_equal_keys_without_noise() -> None:
    n = 2000
    spins, bases, bob = bb84.random_bits(n), bb84.random_bits(n), bb84.random_bits(n)
    pol = bb84.polarize(spins, bases)
    measured = bb84.measure(*pol, bob, n)
    valid = bb84.sift(pol[0], bob, n)
    alice, bob_key = sifted_bits(spins, valid, n), sifted_bits(measured, valid, n)
    order = random_permutation(len(alice))
    assert reorder(alice, order) == reorder(bob_key, order)
    assert 0.45 * n < len(alice) < 0.55 * n


def test_indices_encode_and_reject_out_of_range() -> None:
    assert decode_indices(encode_indices([5, 0, 70000], 70001), 70001) == [5, 0, 70000]
    # Up to 65,536 indices, 2 bytes each: half the bytes of a sorting rule on the wire.
    assert len(encode_indices([5, 0, 65535], 65536)) == 6
    assert decode_indices(encode_indices([5, 0, 65535], 65536), 65536) == [5, 0, 65535]
    with pytest.raises(ValueError):
        decode_indices(encode_indices([3], 4), 3)
    with pytest.raises(ValueError):
        decode_indices(b"\x00\x01\x02", 10)


def test_the_sample_is_a_uniform_subset() -> None:
    # The sample is the head of a uniform permutation: each 1-of-3 subset equally often.
    counts = Counter(frozenset(random_permutation(3)[:1]) for _ in range(3000))
    assert len(counts) == 3 and all(800 < c < 1200 for c in counts.values())
    check_permutation([], 0)


def test_mismatches_counts_differences() -> None:
    key = bytearray([0, 1, 1, 0, 1])
    assert mismatches(key, [0, 2, 4], [1, 1, 0]) == 2
    with pytest.raises(ValueError):
        mismatches(key, [9], [0])
    assert qber(2, 8) == 0.25 and qber(0, 0) == 0.0

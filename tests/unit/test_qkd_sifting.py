"""The sorting rule (permutation), sifting in its order, sampling, QBER and lengths."""

from collections import Counter

import pytest
from cqkd.qkd import bb84
from cqkd.qkd.estimation import choose_sample, mismatches, qber, remove_indices
from cqkd.qkd.sorting import (
    check_permutation,
    decode_indices,
    encode_indices,
    random_permutation,
    sifted_key,
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


def test_sifted_key_reads_valid_positions_in_permutation_order() -> None:
    bits, valid = 0b1010, 0b0111  # positions 0..2 valid with bits 0, 1, 0
    assert sifted_key(bits, valid, [2, 3, 1, 0]) == bytearray([0, 1, 0])


def test_both_sides_get_equal_keys_without_noise() -> None:
    n = 2000
    spins, bases, bob = bb84.random_bits(n), bb84.random_bits(n), bb84.random_bits(n)
    pol = bb84.polarize(spins, bases)
    measured = bb84.measure(*pol, bob, n)
    valid = bb84.sift(pol[0], bob, n)
    order = random_permutation(n)
    alice, bob_key = sifted_key(spins, valid, order), sifted_key(measured, valid, order)
    assert alice == bob_key
    assert 0.45 * n < len(alice) < 0.55 * n


def test_indices_encode_and_reject_out_of_range() -> None:
    assert decode_indices(encode_indices([5, 0, 70000]), 70001) == [5, 0, 70000]
    with pytest.raises(ValueError):
        decode_indices(encode_indices([3]), 3)
    with pytest.raises(ValueError):
        decode_indices(b"\x00\x01\x02", 10)


def test_sample_is_distinct_sorted_and_sized() -> None:
    sample = choose_sample(100, 12)
    assert len(set(sample)) == 12 and sample == sorted(sample)
    with pytest.raises(ValueError):
        choose_sample(5, 6)


def test_mismatches_counts_differences_and_sampled_bits_are_dropped() -> None:
    key = bytearray([0, 1, 1, 0, 1])
    assert mismatches(key, [0, 2, 4], [1, 1, 0]) == 2
    assert remove_indices(key, [0, 2, 4]) == bytearray([1, 0])
    with pytest.raises(ValueError):
        mismatches(key, [9], [0])
    assert qber(2, 8) == 0.25 and qber(0, 0) == 0.0

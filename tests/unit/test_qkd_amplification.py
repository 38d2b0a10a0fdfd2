"""Toeplitz privacy amplification and HMAC key confirmation."""

import os
import random

import pytest
from cqkd.qkd.amplification import confirmation_tag, tags_match, toeplitz_hash


def key(n: int) -> bytearray:
    return bytearray(random.getrandbits(1) for _ in range(n))


def test_same_input_same_seed_same_output_of_the_asked_length() -> None:
    k, seed = key(300), os.urandom(32)
    out = toeplitz_hash(k, 256, seed)
    assert out == toeplitz_hash(bytearray(k), 256, seed)
    assert len(out) == 32


def test_one_flipped_input_bit_changes_about_half_the_output() -> None:
    k, seed = key(1000), os.urandom(32)
    other = bytearray(k)
    other[500] ^= 1
    a = int.from_bytes(toeplitz_hash(k, 256, seed), "little")
    b = int.from_bytes(toeplitz_hash(other, 256, seed), "little")
    assert 80 < (a ^ b).bit_count() < 176


def test_hash_is_linear_over_gf2() -> None:
    seed = os.urandom(32)
    x, y = key(200), key(200)
    xy = bytearray(a ^ b for a, b in zip(x, y, strict=True))
    hx, hy, hxy = (int.from_bytes(toeplitz_hash(v, 64, seed), "little") for v in (x, y, xy))
    assert hx ^ hy == hxy


def test_refuses_to_lengthen_or_bad_seed() -> None:
    with pytest.raises(ValueError):
        toeplitz_hash(key(10), 11, os.urandom(32))
    with pytest.raises(ValueError):
        toeplitz_hash(key(10), 5, b"short")


def test_confirmation_tags_match_only_for_equal_keys() -> None:
    a = os.urandom(32)
    b = bytearray(a)
    b[0] ^= 1
    assert tags_match(confirmation_tag(a, "p1"), confirmation_tag(bytes(a), "p1"))
    assert not tags_match(confirmation_tag(a, "p1"), confirmation_tag(bytes(b), "p1"))
    assert not tags_match(confirmation_tag(a, "p1"), confirmation_tag(a, "p2"))

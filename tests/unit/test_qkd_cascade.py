"""Cascade: both sides' machines agree, Bob's errors are corrected, every parity counted."""

import random

import pytest
from cqkd.qkd.cascade import Cascade, parities
from cqkd.qkd.planner import blocks_qber


def reconcile(
    alice: bytearray, bob: bytearray, qber: float, recheck: bool = False, seed: bytes = b"seed"
) -> tuple[int, int]:
    ma, mb = Cascade(len(alice), qber, seed, recheck), Cascade(len(bob), qber, seed, recheck)
    steps = 0
    while ranges := ma.queries():
        assert mb.queries() == ranges
        flags = [a != b for a, b in zip(parities(alice, ma, ranges),
                                        parities(bob, mb, ranges), strict=True)]
        for position in mb.answer(flags):
            bob[position] ^= 1
        ma.answer(flags)
        steps += 1
    assert mb.queries() == [] and ma.leaked == mb.leaked
    return ma.leaked, steps


@pytest.mark.parametrize("qber", [0.0, 0.01, 0.03, 0.06])
def test_cascade_corrects_errors(qber: float) -> None:
    rng = random.Random(7)
    for _ in range(5):
        alice = bytearray(rng.getrandbits(1) for _ in range(3000))
        bob = bytearray(bit ^ (rng.random() < qber) for bit in alice)
        leaked, _ = reconcile(alice, bob, max(qber, 0.005))
        assert bob == alice
        assert leaked < 3000


def test_no_errors_costs_one_round_trip_and_few_parities() -> None:
    alice = bytearray(random.getrandbits(1) for _ in range(300))
    leaked, steps = reconcile(alice, bytearray(alice), 0.0)
    assert steps == 1
    assert leaked == 4  # one parity per pass: blocks for QBER 0 span the whole key
    leaked, steps = reconcile(alice, bytearray(alice), 0.01)
    assert steps == 4


def test_errors_missed_by_the_sample_are_still_corrected() -> None:
    rng = random.Random(3)
    for _ in range(10):
        alice = bytearray(rng.getrandbits(1) for _ in range(2000))
        bob = bytearray(alice)
        for position in rng.sample(range(2000), 5):
            bob[position] ^= 1
        # As a session does: blocks for the upper bound of a clean 500-bit sample, then
        # while the verification hash fails (at most twice), BICONF passes.
        reconcile(alice, bob, blocks_qber(0, 500))
        for attempt in range(2):
            if bob != alice:
                leaked, _ = reconcile(alice, bob, 0.0, recheck=True, seed=bytes([attempt]))
                assert leaked < 400  # 32 for the halves, ~log2(n) per error: not a Cascade
        assert bob == alice


def test_wrong_number_of_flags_is_refused() -> None:
    machine = Cascade(100, 0.02, b"s")
    machine.queries()
    with pytest.raises(ValueError):
        machine.answer([True])

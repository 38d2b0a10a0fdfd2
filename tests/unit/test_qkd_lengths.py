"""The key-length rule, the finite-size key length (TLGR 2012) and the round planner."""

import math

import pytest
from cqkd.dht.protocol import MAX_PAYLOAD_BYTES
from cqkd.qkd import fragments
from cqkd.qkd.allocation import DEDICATED, POOLED
from cqkd.qkd.cascade import MAX_RANGES_PER_MESSAGE, pack_flags, unpack_flags
from cqkd.qkd.lengths import (
    Security,
    check_key_bits,
    deviation,
    final_key_bits,
    h2,
    largest_qber,
    plan,
    worker_exposure_bits,
)
from cqkd.qkd.planner import (
    ROUND_POSITIONS_MAX,
    blocks_qber,
    first_round_sifted,
    more_sifted,
    no_key_possible,
    round_capacity,
    split_positions,
)
from cqkd.qkd.worker import MAX_CHUNK_POSITIONS


@pytest.mark.parametrize("bits", [1, 7, 9, 100, 257, 0, -8, 65544, True, 8.0, "256"])
def test_lengths_that_are_not_whole_bytes_or_out_of_range_are_refused(bits: object) -> None:
    with pytest.raises(ValueError, match=r"multiple of 8|integer"):
        check_key_bits(bits, 65536)


@pytest.mark.parametrize("bits", [8, 4096, 65536])
def test_whole_byte_lengths_up_to_the_maximum_are_accepted(bits: int) -> None:
    assert check_key_bits(bits, 65536) == bits


def test_finite_key_length_follows_tlgr_2012() -> None:
    security = Security()
    # log2(2 / (1e-20 * 1e-15)) = 1 + 35 log2(10)
    assert security.overhead_bits == pytest.approx(1 + 35 * math.log2(10))
    assert security.verify_bits == 50
    # mu for n = k = 1e6, by hand: sqrt(2e-6 * (1e6 + 1) / 1e6 * ln(2e10))
    assert deviation(10**6, 10**6, 1e-10) == pytest.approx(0.0068875, rel=1e-4)
    n, k, q, leak = 10**6, 10**6, 0.03, 200_000
    expected = n * (1 - h2(q + deviation(n, k, 1e-10))) - leak - security.overhead_bits
    assert final_key_bits(n, k, q, leak, security) == math.floor(expected)
    # A small sample cannot vouch for a key, whatever it saw.
    assert final_key_bits(2000, 8, 0.0, 0, security) == 0


def test_the_asymptotic_limit_and_the_plans() -> None:
    assert largest_qber(1.0) == pytest.approx(0.110, abs=5e-4)
    security = Security()
    small, large = plan(32, 0.05, 1.2, security, 10**7), plan(65536, 0.05, 1.2, security, 10**7)
    assert small is not None and large is not None
    # Short keys need thousands of sifted bits; the sample shrinks as keys grow.
    assert small.sifted > 5000 and large.sifted > 65536
    assert large.fraction < small.fraction
    assert plan(1024, 0.15, 1.2, security, 10**7) is None


def test_abort_only_when_the_bound_allows_no_key() -> None:
    security = Security()
    assert no_key_possible(1024, 250, 1000, 0.11, security, 10**6)  # eavesdropper: 0.25
    assert no_key_possible(1024, 1500, 10000, 0.11, security, 10**6)  # 0.15
    assert not no_key_possible(32, 3, 20, 0.11, security, 10**6)  # 0.15 on 20 bits: look again
    assert not no_key_possible(1024, 80, 1000, 0.11, security, 10**6)  # 0.08


def test_a_sample_without_errors_still_sizes_blocks_for_errors() -> None:
    assert 0.0 < blocks_qber(0, 500) < 0.02
    assert blocks_qber(50, 1000) > 0.05


def test_top_up_asks_for_more_until_the_bound_gives_the_key() -> None:
    security = Security()
    needed = more_sifted(1024, 2000, 0, 700, 35, 0, 0.3, security, 10**6)
    assert needed > 0
    sampled = 700 + round(0.3 * needed)
    assert more_sifted(1024, 2000 + round(0.7 * needed), 0, sampled, round(0.05 * sampled),
                       0, 0.3, security, 10**6) <= 0.01 * needed


@pytest.mark.parametrize("key_bits", [32, 256, 4096])
@pytest.mark.parametrize("prior", [0.0, 0.03])
def test_a_first_round_on_the_channel_it_was_planned_for_needs_no_top_up(
    key_bits: int, prior: float
) -> None:
    security, max_sifted = Security(), 1 << 21
    wanted, fraction = first_round_sifted(key_bits, prior, security, max_sifted)
    # The round sifts about `wanted` bits (Binomial(2 wanted, 1/2)); 3 standard deviations
    # fewer is still enough once Alice charges the worker exposure, as she does after it.
    sifted = wanted - math.ceil(3 * math.sqrt(wanted / 2))
    sampled = round(fraction * sifted)
    leaked = math.ceil(worker_exposure_bits(sifted))
    assert more_sifted(key_bits, sifted - sampled, 0, sampled, round(prior * sampled), leaked,
                       fraction, security, max_sifted) == 0


def test_rounds_are_split_to_what_every_receiver_accepts() -> None:
    # 6 workers: one chain per round, a worker takes at most MAX_CHUNK_POSITIONS.
    rounds = split_positions(1_500_000, 6, POOLED)
    assert sum(rounds) == 1_500_000
    assert max(rounds) <= MAX_CHUNK_POSITIONS and len(rounds) == 23
    # Many workers: Bob's round message (the permutation, 4 bytes a position) stays far
    # under the channel's message cap.
    rounds = split_positions(1_500_000, 1000, POOLED)
    assert max(rounds) <= ROUND_POSITIONS_MAX == round_capacity(1000, POOLED)
    assert 4 * ROUND_POSITIONS_MAX <= fragments.MAX_MESSAGE_BYTES // 2
    assert split_positions(100, 60, DEDICATED) == [10] * 10  # one worker per role and position
    assert split_positions(0, 6, POOLED) == []


def test_cascade_messages_fit_one_datagram() -> None:
    flags = [i % 3 == 0 for i in range(MAX_RANGES_PER_MESSAGE)]
    packed = pack_flags([int(f) for f in flags])
    assert len(packed) + 512 < MAX_PAYLOAD_BYTES
    assert unpack_flags(packed, len(flags)) == [int(f) for f in flags]
    with pytest.raises(ValueError):
        unpack_flags(packed, len(flags) - 8)

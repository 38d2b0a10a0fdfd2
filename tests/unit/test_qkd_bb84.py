"""The BB84 role functions on bit vectors: QSG/BG randomness, QPP, QPM, QPC, Eve."""

import pytest
from cqkd.qkd import bb84

N = 4000


def bits_of(vector: int, n: int) -> list[int]:
    return [(vector >> i) & 1 for i in range(n)]


def test_random_bits_are_balanced_and_fresh() -> None:
    a, b = bb84.random_bits(N), bb84.random_bits(N)
    assert a != b
    assert 0.45 < a.bit_count() / N < 0.55
    assert a >> N == 0


def test_polarize_maps_spin_and_basis_to_the_four_polarizations() -> None:
    # positions: (spin, basis) = (0,+) (1,+) (0,x) (1,x) -> 0, 90, 45, 135 degrees
    spins, bases = 0b1010, 0b1100
    pol_class, pol_bit = bb84.polarize(spins, bases)
    degrees = {(0, 0): 0, (0, 1): 90, (1, 0): 45, (1, 1): 135}
    got = [degrees[((pol_class >> i) & 1, (pol_bit >> i) & 1)] for i in range(4)]
    assert got == [0, 90, 45, 135]


def test_measure_in_the_same_basis_returns_the_spin_exactly() -> None:
    spins, bases = bb84.random_bits(N), bb84.random_bits(N)
    pol_class, pol_bit = bb84.polarize(spins, bases)
    assert bb84.measure(pol_class, pol_bit, bases, N) == spins


def test_measure_in_the_other_basis_is_a_fair_coin() -> None:
    spins, bases = bb84.random_bits(N), bb84.random_bits(N)
    pol_class, pol_bit = bb84.polarize(spins, bases)
    other = ~bases & bb84.mask(N)
    agree = (~(bb84.measure(pol_class, pol_bit, other, N) ^ spins) & bb84.mask(N)).bit_count()
    assert 0.45 < agree / N < 0.55


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.2])
def test_channel_error_flips_that_fraction(rate: float) -> None:
    spins, bases = bb84.random_bits(N), bb84.random_bits(N)
    measured = bb84.measure(*bb84.polarize(spins, bases), bases, N, channel_error=rate)
    flipped = (measured ^ spins).bit_count() / N
    assert abs(flipped - rate) < 0.03


def test_full_intercept_resend_gives_a_quarter_errors_after_sifting() -> None:
    spins, bases, bob = bb84.random_bits(N), bb84.random_bits(N), bb84.random_bits(N)
    pol = bb84.intercept_resend(*bb84.polarize(spins, bases), N, probability=1.0)
    measured = bb84.measure(*pol, bob, N)
    valid = bb84.sift(pol[0], bob, N)
    errors = ((measured ^ spins) & valid).bit_count() / valid.bit_count()
    assert 0.2 < errors < 0.3


def test_no_interception_leaves_the_polarization_alone() -> None:
    pol = bb84.polarize(bb84.random_bits(N), bb84.random_bits(N))
    assert bb84.intercept_resend(*pol, N, probability=0.0) == pol


def test_sift_keeps_positions_where_bases_agree() -> None:
    assert bb84.sift(0b0110, 0b0101, 4) == 0b1100


def test_vectors_round_trip_and_reject_bad_encodings() -> None:
    vector = bb84.random_bits(13)
    assert bb84.from_bytes(bb84.to_bytes(vector, 13), 13) == vector
    with pytest.raises(ValueError):
        bb84.from_bytes(b"\x00", 13)
    with pytest.raises(ValueError):
        bb84.from_bytes(b"\xff\xff", 13)


def test_pack_bits_puts_position_i_at_bit_i() -> None:
    assert bb84.pack_bits(bytearray([1, 0, 0, 1, 1])) == 0b11001
    assert bb84.pack_bits(bytearray()) == 0

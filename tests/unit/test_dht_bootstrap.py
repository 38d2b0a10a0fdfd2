"""Bootstrap selection strategies, health and the per-bootstrap join cap."""

import random

import pytest
from cqkd.dht.bootstrap import FAILURE_LIMIT, BootstrapSelector, Strategy

A, B, C = ("10.0.0.1", 5678), ("10.0.0.2", 5679), ("10.0.0.3", 5680)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def selector(strategy: Strategy, max_connections: int = 50, **kw: object) -> BootstrapSelector:
    return BootstrapSelector([A, B, C], strategy, max_connections, **kw)  # type: ignore[arg-type]


def test_round_robin_cycles_through_all() -> None:
    s = selector(Strategy.ROUND_ROBIN)
    assert [s.select() for _ in range(6)] == [A, B, C, A, B, C]


def test_round_robin_starts_at_the_given_offset() -> None:
    s = selector(Strategy.ROUND_ROBIN, start=4)
    assert [s.select() for _ in range(3)] == [B, C, A]


def test_priority_prefers_the_first_listed() -> None:
    s = selector(Strategy.PRIORITY)
    assert {s.select() for _ in range(10)} == {A}


def test_least_loaded_counts_reported_load_plus_joins_steered_since() -> None:
    s = selector(Strategy.LEAST_LOADED)
    s.record_load(A, 10)
    s.record_load(B, 3)
    s.record_load(C, 4)
    # B: 3 < 4; then B 4 = C 4, a tie goes to the higher priority (B); then C 4 < B 5.
    assert [s.select() for _ in range(3)] == [B, B, C]


def test_random_uses_every_bootstrap() -> None:
    s = selector(Strategy.RANDOM, rng=random.Random(7))
    assert {s.select() for _ in range(60)} == {A, B, C}


@pytest.mark.parametrize("strategy", list(Strategy))
def test_unhealthy_bootstrap_is_skipped_while_a_healthy_one_exists(strategy: Strategy) -> None:
    s = selector(strategy, rng=random.Random(1))
    for _ in range(FAILURE_LIMIT):
        s.record_failure(A)
    assert A not in {s.select() for _ in range(30)}


def test_two_failures_keep_a_bootstrap_healthy() -> None:
    s = selector(Strategy.PRIORITY)
    for _ in range(FAILURE_LIMIT - 1):
        s.record_failure(A)
    assert s.select() == A


def test_success_resets_the_failure_count() -> None:
    s = selector(Strategy.PRIORITY)
    for _ in range(FAILURE_LIMIT):
        s.record_failure(A)
    s.record_success(A)
    assert s.select() == A


def test_all_unhealthy_still_returns_one() -> None:
    s = selector(Strategy.PRIORITY)
    for address in (A, B, C):
        for _ in range(FAILURE_LIMIT):
            s.record_failure(address)
    assert s.select() == A


def test_cap_steers_joins_away_within_the_interval() -> None:
    clock = Clock()
    s = selector(Strategy.PRIORITY, max_connections=2, interval=10.0, clock=clock)
    assert [s.select() for _ in range(6)] == [A, A, B, B, C, C]
    assert s.select() == A  # every bootstrap at the cap: the join still goes ahead
    clock.now = 11.0
    assert [s.select() for _ in range(2)] == [A, A]


def test_exclude_and_exhaustion() -> None:
    s = selector(Strategy.ROUND_ROBIN)
    assert s.select(exclude={A, B}) == C
    assert s.select(exclude={A, B, C}) is None


def test_empty_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BootstrapSelector([], Strategy.RANDOM)

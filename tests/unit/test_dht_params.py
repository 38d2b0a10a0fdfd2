"""Adaptive Kademlia parameters and the seed's sizing rules."""

import pytest
from cqkd.dht.params import (
    BASE_PARAMS,
    ID_SPACE,
    KademliaParams,
    adaptive_params,
    bootstrap_count,
    estimate_network_size,
    health_interval,
    resolve_params,
)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, (3, 20, 5.0, 60.0)),
        (15, (3, 20, 5.0, 60.0)),
        (16, (4, 26, 8.0, 90.0)),
        (50, (4, 26, 8.0, 90.0)),
        (51, (6, 30, 12.0, 120.0)),
        (100, (6, 30, 12.0, 120.0)),
        (101, (8, 40, 20.0, 180.0)),
        (100_000, (8, 40, 20.0, 180.0)),
    ],
)
def test_adaptive_table_matches_the_seed(size: int, expected: tuple[float, ...]) -> None:
    assert adaptive_params(size) == KademliaParams(*expected)


def test_disabled_adaptation_pins_the_base_values() -> None:
    assert resolve_params(1000, adaptive=False) == BASE_PARAMS


def test_explicit_values_override_adaptive_ones() -> None:
    params = resolve_params(1000, adaptive=True, alpha=2, k=7, query_timeout=1.5)
    assert (params.alpha, params.k, params.query_timeout) == (2, 7, 1.5)
    assert params.discovery_timeout == 180.0


def test_explicit_values_override_base_ones() -> None:
    assert resolve_params(10, adaptive=False, k=9).k == 9


@pytest.mark.parametrize(
    ("workers", "bootstraps"), [(1, 2), (15, 2), (16, 3), (50, 3), (51, 4), (200, 4), (201, 6)]
)
def test_bootstrap_count_follows_the_seed(workers: int, bootstraps: int) -> None:
    assert bootstrap_count(workers) == bootstraps


def test_health_interval_grows_with_size() -> None:
    intervals = [health_interval(n) for n in (10, 40, 90, 1000)]
    assert intervals == sorted(intervals) and intervals[0] < intervals[-1]


def test_network_size_estimate_from_uniform_ids() -> None:
    n = 1000
    own = 0
    # The 40 nearest of n evenly spread ids.
    nearest = [(j + 1) * (ID_SPACE // n) for j in range(40)]
    assert 900 <= estimate_network_size(own, nearest) <= 1100


def test_network_size_estimate_is_at_least_the_peers_known() -> None:
    assert estimate_network_size(0, []) == 1
    assert estimate_network_size(0, [ID_SPACE - 1, ID_SPACE - 2]) == 3

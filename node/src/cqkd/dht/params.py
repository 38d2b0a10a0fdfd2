"""Adaptive Kademlia parameters and the seed's sizing rules, as pure functions."""

from __future__ import annotations

from dataclasses import dataclass

ID_SPACE = 2**160


@dataclass(frozen=True)
class KademliaParams:
    alpha: int
    k: int
    query_timeout: float
    discovery_timeout: float


BASE_PARAMS = KademliaParams(alpha=3, k=20, query_timeout=5.0, discovery_timeout=60.0)

# The seed guide's table by estimated network size (upper bound inclusive).
_ADAPTIVE_TABLE: tuple[tuple[int, KademliaParams], ...] = (
    (15, BASE_PARAMS),
    (50, KademliaParams(alpha=4, k=26, query_timeout=8.0, discovery_timeout=90.0)),
    (100, KademliaParams(alpha=6, k=30, query_timeout=12.0, discovery_timeout=120.0)),
)
_LARGE_PARAMS = KademliaParams(alpha=8, k=40, query_timeout=20.0, discovery_timeout=180.0)


def adaptive_params(network_size: int) -> KademliaParams:
    """The seed's parameters for a network of `network_size` nodes."""
    for upper, params in _ADAPTIVE_TABLE:
        if network_size <= upper:
            return params
    return _LARGE_PARAMS


def resolve_params(
    network_size: int,
    adaptive: bool,
    alpha: int | None = None,
    k: int | None = None,
    query_timeout: float | None = None,
) -> KademliaParams:
    """Adaptive (or base) values, with explicit settings overriding each field."""
    params = adaptive_params(network_size) if adaptive else BASE_PARAMS
    return KademliaParams(
        alpha=alpha if alpha is not None else params.alpha,
        k=k if k is not None else params.k,
        query_timeout=query_timeout if query_timeout is not None else params.query_timeout,
        discovery_timeout=params.discovery_timeout,
    )


def bootstrap_count(workers: int) -> int:
    """The seed's number of bootstrap nodes for a number of workers."""
    if workers <= 15:
        return 2
    if workers <= 50:
        return 3
    if workers <= 200:
        return 4
    return 6


def health_interval(network_size: int) -> float:
    """Seconds between health-check rounds: larger networks check less often per node."""
    if network_size <= 15:
        return 10.0
    if network_size <= 50:
        return 15.0
    if network_size <= 100:
        return 20.0
    return 30.0


def estimate_network_size(own_id: int, nearest_ids: list[int]) -> int:
    """Estimate the network size from the XOR distances of the nearest known peers.

    Ids are uniform, so the j-th nearest of n nodes sits at distance about j * 2^160 / n.
    """
    if not nearest_ids:
        return 1
    distances = sorted(own_id ^ peer for peer in nearest_ids)
    farthest = max(distances[-1], 1)
    density_estimate = len(distances) * ID_SPACE // farthest
    return max(len(distances) + 1, int(density_estimate))

"""Adaptive Kademlia parameters and the seed's sizing rules, as pure functions.

This module is the one table of the deployment scales: the nodes adapt with it, Ansible
reads it (ansible/filter_plugins/cqkd_scale.py loads this file by path, so it must import
nothing outside the standard library), and the README's scale table is its `markdown`
output (`python3 node/src/cqkd/dht/params.py markdown`; a test compares them).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

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


# The named scales of `deploy.yml -e scale=NAME`: name, workers, bootstrap nodes. The name
# of the tier a network size falls in is also the inventory group whose hosts run it.
SCALES: tuple[tuple[str, int, int], ...] = (
    ("small", 15, 2),
    ("medium", 50, 3),
    ("large", 100, 4),
    ("xlarge", 200, 6),
)
MAX_CUSTOM_WORKERS = 1000


def scale_profile(scale: str, workers: int | None = None) -> dict[str, object]:
    """What a deployment of `scale` (or `custom` with `workers`) runs, as plain data."""
    named = {name: (count, bootstraps) for name, count, bootstraps in SCALES}
    if scale == "custom":
        if workers is None or not 1 <= workers <= MAX_CUSTOM_WORKERS:
            raise ValueError(f"scale=custom needs workers in 1..{MAX_CUSTOM_WORKERS}")
        count, bootstraps = workers, bootstrap_count(workers)
    elif scale in named:
        count, bootstraps = named[scale]
    else:
        raise ValueError(f"scale={scale} is unknown: use one of {', '.join(named)}, custom")
    tier = next((name for name, upper, _ in SCALES[:-1] if count <= upper), SCALES[-1][0])
    return {
        "name": scale,
        "hosts_group": tier,
        "workers": count,
        "bootstrap_count": bootstraps,
        **asdict(adaptive_params(count)),
    }


def scales_markdown() -> str:
    """The README's scale table."""
    rows = [
        "| scale | workers | bootstrap nodes | \N{GREEK SMALL LETTER ALPHA} | k "
        "| query timeout | discovery timeout |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _, _ in SCALES:
        p = scale_profile(name)
        rows.append(
            f"| {name} | {p['workers']} | {p['bootstrap_count']} | {p['alpha']} | {p['k']} "
            f"| {p['query_timeout']:g} s | {p['discovery_timeout']:g} s |"
        )
    rows.append(
        f"| custom | `-e workers=N` (1..{MAX_CUSTOM_WORKERS}) | by N: ≤15 → 2, ≤50 → 3, "
        "≤200 → 4, else 6 | by N, as the row whose workers N does not exceed | | | |"
    )
    return "\n".join(rows) + "\n"


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


def main(argv: list[str]) -> int:
    """`params.py markdown`, or `params.py profile SCALE [WORKERS]` (JSON)."""
    if argv[:1] == ["markdown"]:
        sys.stdout.write(scales_markdown())
        return 0
    if argv[:1] == ["profile"] and len(argv) in (2, 3):
        workers = int(argv[2]) if len(argv) == 3 else None
        print(json.dumps(scale_profile(argv[1], workers)))
        return 0
    print("usage: params.py markdown | params.py profile SCALE [WORKERS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

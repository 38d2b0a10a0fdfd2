"""Random allocation of workers to roles and positions (steps 3-6 and 13), free of I/O.

pooled: each role gets a pool of P workers and the positions are cut into P chunks, so 6
live workers suffice. dedicated: one worker per role and position (the paper), 6 lk.
A worker keeps one role for the whole session, across top-up rounds.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cqkd.qkd.channel import PeerInfo
from cqkd.qkd.session import ALICE_ROLES, NOT_ENOUGH_WORKERS, SessionFailed

POOLED, DEDICATED = "pooled", "dedicated"
ROLES_PER_CHAIN = 6  # Alice's five roles and Bob's BG_B


@dataclass(frozen=True)
class Chain:
    """Positions start..start+count-1 of a round and the worker of each of Alice's roles."""

    chunk: int
    start: int
    count: int
    workers: dict[str, PeerInfo]


def chunks(positions: int, parts: int) -> list[tuple[int, int]]:
    """Cut 0..positions-1 into `parts` contiguous (start, count) ranges of near-equal size."""
    base, extra = divmod(positions, parts)
    out, start = [], 0
    for i in range(parts):
        count = base + (1 if i < extra else 0)
        out.append((start, count))
        start += count
    return out


def required_workers(mode: str, positions: int) -> int:
    return ROLES_PER_CHAIN * (positions if mode == DEDICATED else 1)


def allocate_alice(
    candidates: Sequence[PeerInfo],
    positions: int,
    mode: str,
    chunk_bits: int,
    assigned: dict[bytes, str],
) -> list[Chain]:
    """Chains for one round. `assigned` (public key -> role) holds the session's earlier
    choices, Bob's BG_B included; it is updated with the new ones."""
    needed = required_workers(mode, positions)
    if len(candidates) < needed:
        raise SessionFailed(
            NOT_ENOUGH_WORKERS,
            f"{mode} mode needs {needed} live workers for {positions} positions; "
            f"found {len(candidates)}",
        )
    if mode == DEDICATED:
        parts = positions
    else:
        parts = max(1, min(len(candidates) // ROLES_PER_CHAIN, math.ceil(positions / chunk_bits)))
    rng = secrets.SystemRandom()
    for size in [parts] if mode == DEDICATED else range(parts, 0, -1):
        pools = _pools(candidates, size, assigned, rng)
        if pools is not None:
            parts = size
            break
    else:
        raise SessionFailed(
            NOT_ENOUGH_WORKERS,
            f"{mode} mode needs {needed} live workers free for Alice's roles; "
            f"found {len(candidates)} live, {len(assigned)} already holding roles",
        )
    for role, pool in pools.items():
        for peer in pool:
            assigned[peer.public_key] = role
    return [
        Chain(i, start, count, {role: pools[role][i] for role in ALICE_ROLES})
        for i, (start, count) in enumerate(chunks(positions, parts))
    ]


def _pools(
    candidates: Sequence[PeerInfo],
    size: int,
    assigned: dict[bytes, str],
    rng: secrets.SystemRandom,
) -> dict[str, list[PeerInfo]] | None:
    taken: set[bytes] = set()
    pools: dict[str, list[PeerInfo]] = {}
    for role in ALICE_ROLES:
        # Workers that already hold the role first, so top-ups spread secrets no further.
        holding = [p for p in candidates if assigned.get(p.public_key) == role]
        free = [p for p in candidates if p.public_key not in assigned and p.public_key not in taken]
        if len(holding) + len(free) < size:
            return None
        pool = rng.sample(holding, min(size, len(holding)))
        pool += rng.sample(free, size - len(pool))
        pools[role] = pool
        taken.update(p.public_key for p in pool)
    # Bob needs a worker for BG_B that holds no other role.
    if not any(assigned.get(p.public_key, "BG_B") == "BG_B" and p.public_key not in taken
               for p in candidates):
        return None
    return pools


def allocate_bob(
    candidates: Sequence[PeerInfo], chains: int, mode: str, assigned: dict[bytes, str]
) -> list[PeerInfo]:
    """BG_B for each chain: workers holding no other role in the session, at random."""
    eligible = [p for p in candidates if assigned.get(p.public_key, "BG_B") == "BG_B"]
    need = chains if mode == DEDICATED else 1
    if len(eligible) < need:
        raise SessionFailed(
            NOT_ENOUGH_WORKERS,
            f"Bob needs {need} live workers free of Alice's roles for BG_B; found {len(eligible)}",
        )
    rng = secrets.SystemRandom()
    pool = rng.sample(eligible, min(chains, len(eligible)))
    chosen = [pool[i % len(pool)] for i in range(chains)]
    for peer in chosen:
        assigned[peer.public_key] = "BG_B"
    return chosen

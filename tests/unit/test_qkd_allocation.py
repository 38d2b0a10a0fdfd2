"""Random allocation: pools, dedicated chains, one role per worker per session."""

import os

import pytest
from cqkd.qkd.allocation import DEDICATED, POOLED, allocate_alice, allocate_bob, chunks
from cqkd.qkd.channel import PeerInfo
from cqkd.qkd.session import ALICE_ROLES, NOT_ENOUGH_WORKERS, SessionFailed


def workers(n: int) -> list[PeerInfo]:
    return [PeerInfo("127.0.0.1", 7000 + i, os.urandom(32)) for i in range(n)]


def test_chunks_cover_every_position_once() -> None:
    parts = chunks(640, 3)
    assert [count for _, count in parts] == [214, 213, 213]
    assert [start for start, _ in parts] == [0, 214, 427]


def test_pooled_uses_distinct_workers_per_role_and_leaves_one_for_bob() -> None:
    assigned: dict[bytes, str] = {}
    chains = allocate_alice(workers(15), 640, POOLED, 64, assigned)
    assert len(chains) == 2
    used = [c.workers[r].public_key for c in chains for r in ALICE_ROLES]
    assert len(set(used)) == 10 == len(assigned)
    bob = allocate_bob(workers(0) + [p for p in workers(1)], 2, POOLED, assigned)
    assert len(bob) == 2 and all(assigned[p.public_key] == "BG_B" for p in bob)


def test_pooled_works_with_six_workers() -> None:
    pool = workers(6)
    assigned: dict[bytes, str] = {}
    chains = allocate_alice(pool, 640, POOLED, 64, assigned)
    assert len(chains) == 1 and chains[0].count == 640
    (bg_b,) = allocate_bob(pool, 1, POOLED, assigned)
    assert bg_b.public_key not in {c.public_key for c in chains[0].workers.values()}


def test_too_few_workers_names_both_numbers() -> None:
    with pytest.raises(SessionFailed, match=r"needs 6 live workers .* found 5") as info:
        allocate_alice(workers(5), 640, POOLED, 64, {})
    assert info.value.outcome == NOT_ENOUGH_WORKERS
    with pytest.raises(SessionFailed, match="needs 60 live workers"):
        allocate_alice(workers(59), 10, DEDICATED, 64, {})


def test_dedicated_gives_one_worker_per_role_and_position() -> None:
    assigned: dict[bytes, str] = {}
    chains = allocate_alice(workers(60), 10, DEDICATED, 64, assigned)
    assert len(chains) == 10 and all(c.count == 1 for c in chains)
    assert len(assigned) == 50


def test_a_worker_keeps_its_role_in_top_up_rounds() -> None:
    pool = workers(12)
    assigned: dict[bytes, str] = {}
    allocate_alice(pool, 640, POOLED, 64, assigned)
    first = dict(assigned)
    for chain in allocate_alice(pool, 64, POOLED, 64, assigned):
        for role, peer in chain.workers.items():
            assert first.get(peer.public_key, role) == role

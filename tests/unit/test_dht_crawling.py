"""The faster routing-table search and node heap give the same answers as brute force."""

import random
from collections.abc import Coroutine

import pytest
from cqkd.dht.crawling import IndexedNodeHeap
from cqkd.dht.routing import FastRoutingTable
from kademlia.node import Node


class _Protocol:
    """A full bucket pings its head; not under test here."""

    async def call_ping(self, node: Node) -> None:
        pass

    def spawn(self, coro: Coroutine[None, None, None]) -> None:
        coro.close()


def _node(rng: random.Random, port: int = 1) -> Node:
    return Node(rng.randbytes(20), "127.0.0.1", port)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_find_neighbors_returns_the_exact_k_nearest(seed: int) -> None:
    rng = random.Random(seed)
    table = FastRoutingTable(_Protocol(), 20, _node(rng))
    for port in range(1500):
        table.add_contact(_node(rng, port + 1))
    members = [n for bucket in table.buckets for n in bucket.nodes.values()]
    assert len(table.buckets) > 10
    for trial in range(100):
        target = rng.choice(members) if trial % 2 else _node(rng)
        excluded = rng.choice(members)
        k = rng.choice([1, 5, 20, 40])
        got = table.find_neighbors(target, k, exclude=excluded)
        nearest = sorted(
            (n for n in members if n.id not in (target.id, excluded.id)),
            key=lambda n: n.long_id ^ target.long_id,
        )[:k]
        assert [n.id for n in got] == [n.id for n in nearest]


def test_indexed_heap_membership_and_no_return_after_removal() -> None:
    rng = random.Random(9)
    heap = IndexedNodeHeap(_node(rng), maxsize=3)
    nodes = [_node(rng, p) for p in range(1, 6)]
    heap.push(nodes)
    heap.push(nodes[0])
    assert len(heap.heap) == 5 and all(n in heap for n in nodes)
    heap.remove([nodes[0].id])
    heap.push(nodes[0])
    assert nodes[0].id not in heap.get_ids()
    distances = [n.distance_to(heap.node) for n in heap]
    assert distances == sorted(distances) and len(distances) == 3


@pytest.mark.parametrize("seed", [4, 5])
async def test_nearest_of_all_agrees_with_a_full_scan(seed: int) -> None:
    rng = random.Random(seed)
    own = _node(rng)
    table = FastRoutingTable(_Protocol(), 20, own)
    for port in range(1000):
        table.add_contact(_node(rng, port + 1))
    members = [n for bucket in table.buckets for n in bucket.nodes.values()]
    for trial in range(200):
        target = (rng.choice(members) if trial % 3 == 0 else _node(rng)).long_id
        skip = {rng.choice(members).id}
        distance = target ^ own.long_id
        expected = all(n.long_id ^ target > distance for n in members if n.id not in skip)
        assert table.nearest_of_all(target, distance, skip) is expected

"""The bounded buffers of issue 11, on a fake clock: DHT storage and fragment reassembly;
the routing table's per-host limit."""

from __future__ import annotations

import os

import pytest
from cqkd.dht.config import DhtConfig
from cqkd.dht.node import DhtNode
from cqkd.dht.ratelimit import TokenBuckets
from cqkd.dht.storage import ENTRY_OVERHEAD, BoundedStorage, value_bytes
from cqkd.qkd.fragments import FragmentRefused, Reassembler
from kademlia.node import Node

A, B = ("10.0.0.1", 7000), ("10.0.0.2", 7000)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fragment(message_id: bytes, index: int, count: int, data: bytes) -> bytes:
    return b"\x01" + message_id + index.to_bytes(2, "big") + count.to_bytes(2, "big") + data


def test_storage_bounds_count_bytes_source_and_age() -> None:
    clock = Clock()
    cost = value_bytes(b"x" * 100) + ENTRY_OVERHEAD
    storage = BoundedStorage(max_values=8, max_bytes=6 * cost, per_source=0.5, ttl=10, clock=clock)
    assert all(storage.put(bytes([i]) * 20, b"x" * 100, A) for i in range(3))
    assert not storage.put(b"\x09" * 20, b"x" * 100, A)  # A's half of the bytes is used
    assert storage.put(b"\x01" * 20, b"y" * 100, A)  # replacing its own value is not more
    assert all(storage.put(bytes([10 + i]) * 20, b"x" * 100, B) for i in range(3))
    storage[b"\x20" * 20] = b"own"  # the node's own values count only against the totals
    assert not storage.put(b"\x21" * 20, b"x" * 100, B)
    assert not storage.put(b"\x00" * 20, b"x" * 5000, B)  # a refusal keeps the old value
    assert storage.get(b"\x00" * 20) == b"x" * 100
    clock.now = 10.5
    assert len(storage) == 0 and storage.bytes_used == 0
    assert storage.put(b"\x00" * 20, b"x" * 100, A)
    small = BoundedStorage(max_value_bytes=100)  # a STORE of it must fit one datagram
    assert not small.put(b"\x00" * 20, b"x" * 99, A) and small.put(b"\x00" * 20, b"x" * 98, A)


def test_reassembly_is_bounded_by_memory_cost_and_expires_in_order() -> None:
    clock = Clock()
    parts = Reassembler(1000, per_source_bytes=5000, total_bytes=8000, ttl=30, clock=clock)
    data = b"d" * 1000
    accepted = 0
    with pytest.raises(FragmentRefused, match="from this address"):
        for i in range(10):
            assert parts.add(A, fragment(bytes([i]) * 8, 0, 2, data)) is None
            accepted += 1
    assert 0 < accepted < 5 and parts.buffered_bytes <= 5000
    with pytest.raises(FragmentRefused, match=r"too many fragments buffered$"):
        for i in range(10):
            parts.add(B, fragment(bytes([i]) * 8, 0, 2, data))
    assert parts.buffered_bytes <= 8000
    clock.now = 31
    message = parts.add(B, fragment(b"m" * 8, 0, 2, data))  # expiry freed everything
    assert message is None and len(parts) == 1
    assert parts.add(B, fragment(b"m" * 8, 1, 2, b"end")) == data + b"end"
    assert parts.buffered_bytes == 0 and len(parts) == 0
    for bad in (fragment(b"n" * 8, 2, 2, data), fragment(b"n" * 8, 0, 1, data), b"\x01" * 13):
        with pytest.raises(FragmentRefused):
            parts.add(A, bad)


def test_token_buckets_refill_at_their_rate_and_forget_the_oldest_key() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=5, max_keys=2, clock=clock)
    assert [buckets.allow(A) for _ in range(6)] == [True] * 5 + [False]
    clock.now = 0.25  # 2.5 tokens back
    assert [buckets.allow(A) for _ in range(3)] == [True, True, False]
    assert buckets.allow(B) and buckets.allow(("10.0.0.3", 1))  # A is forgotten: full again
    assert all(buckets.allow(A) for _ in range(5))
    buckets.forget(A)  # then other figures: a full bucket of 8
    assert sum(buckets.allow(A, rate=10, burst=8) for _ in range(10)) == 8


async def test_nodes_sharing_one_address_are_all_admitted_up_to_the_network_size() -> None:
    # Every node of `cqkd local` is on 127.0.0.1, as are the workers of a Docker host with
    # host networking: a fixed per-host limit (it was 256) refused most of a 500-node
    # network's peers.
    config = DhtConfig(network_size=500, k=600)  # k: one bucket, no split
    node = DhtNode(config, host="127.0.0.1", port=0)
    await node.start()
    try:
        for port in range(7000, 7400):
            node.protocol.welcome_if_new(Node(os.urandom(20), "127.0.0.1", port))
        assert node.routing_table_size == 400
    finally:
        await node.stop()
    assert DhtConfig(network_size=15).peer_limits == (256, 1024)  # small networks: as before
    assert DhtConfig(network_size=500, max_peers_per_host=4).peer_limits[0] == 4  # explicit


def test_token_buckets_keep_no_state_for_keys_whose_bucket_is_full_again() -> None:
    # At 10,000 nodes in one process every node kept a bucket for every peer it had met.
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=5, max_keys=10_000, clock=clock)
    for port in range(1000):
        assert buckets.allow(("10.0.0.1", port))
    assert buckets.allow(A)
    clock.now = 1.0  # every bucket full again: no state needed
    for port in range(1000, 1200):  # the sweep comes when the table has doubled again
        assert buckets.allow(("10.0.0.1", port))
    assert len(buckets) <= 300
    assert [buckets.allow(B) for _ in range(6)] == [True] * 5 + [False]  # still limits

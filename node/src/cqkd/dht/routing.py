"""The routing table: FastRoutingTable (kademlia's, with exact and fast nearest-neighbour
search), its k-buckets, and who it holds by address, the index behind its admission limits.

kademlia's table is keyed by node id only, so one address sending random ids filled a
worker's table with 1,365 contacts. `AddressIndex` follows every contact that enters or
leaves a k-bucket's live list (`IndexedBucket` reports them, including the replacement a
removal promotes and the moves of a split), so the protocol can ask in O(1):

- which id an address (host, port) holds: one address holds one id (a second id there is a
  restarted node or a forgery; the protocol pings the address to tell which);
- how many contacts share a host, and a subnet (/24 for IPv4, /64 for IPv6), as Mainline
  DHT implementations (libtorrent's `restrict_routing_ips`) and libp2p's diversity filter
  limit them.
"""

from __future__ import annotations

import ipaddress
import sys
import time
from bisect import bisect_right
from collections import Counter
from functools import lru_cache
from itertools import takewhile
from typing import Any

from kademlia.node import Node
from kademlia.routing import KBucket, RoutingTable

from cqkd.dht.params import ID_SPACE

Address = tuple[str, int]

# A bucket away from the node's own id is worth refilling (FastRoutingTable.empty_far_ranges)
# when the network-size estimate puts at least this many nodes in its range.
FAR_BUCKET_NODES = 4

# kademlia's table keeps up to 5 k replacements per bucket; most are never promoted, and at
# 10,000 nodes in one process they were most of a node's memory. k of them refill a bucket
# whose every live contact died (libtorrent keeps as many replacements as live contacts).
REPLACEMENT_FACTOR = 1

# Every datagram comes with a new (host, port) tuple and host string, and a node keeps the
# address of each peer in several tables (rate limits, proven addresses, routing index,
# contacts): one shared copy per address saved a fifth of the DHT's memory at 300 nodes.
_ADDRESSES: dict[Any, Any] = {}
_MAX_SHARED_ADDRESSES = 1 << 16


def shared_address(addr: Any) -> Any:
    """The process's one copy of `addr`, a (host, port) tuple."""
    known = _ADDRESSES.get(addr)
    if known is None:
        if len(_ADDRESSES) >= _MAX_SHARED_ADDRESSES:  # forged sources: start over
            _ADDRESSES.clear()
        known = _ADDRESSES[addr] = (sys.intern(addr[0]), *addr[1:])
    return known


# Every message makes a new Node for its sender, and every node of a process keeps its own
# copy of each contact: the tables share one Node per (id, address) instead (kademlia never
# changes a Node once made). Bounded like _ADDRESSES.
_NODES: dict[bytes, Node] = {}
_MAX_SHARED_NODES = 1 << 17


def contact_node(node_id: bytes, host: str, port: int) -> Node:
    """The process's Node for this contact if there is one, else a new one (not shared
    yet): answers to lookups name mostly known contacts, and a Node costs an int parse."""
    known = _NODES.get(node_id)
    if known is not None and known.port == port and known.ip == host:
        return known
    return Node(node_id, host, port)


def shared_node(node: Node) -> Node:
    """The process's one Node with `node`'s id and address (`node` itself the first time)."""
    known = _NODES.get(node.id)
    if known is not None and known.port == node.port and known.ip == node.ip:
        return known
    if len(_NODES) >= _MAX_SHARED_NODES:
        _NODES.clear()
    _NODES[node.id] = node
    return node


@lru_cache(maxsize=4096)  # parsing took a sixth of a 200-node network's start-up
def subnet(host: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) a host belongs to; the host itself if not an IP."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class AddressIndex:
    """The live contacts by address. The address of a contact is its Node's (the protocol
    admits one id per address and one address per id), so no map back from ids is kept."""

    def __init__(self) -> None:
        self.by_address: dict[Address, bytes] = {}
        self.per_host: Counter[str] = Counter()
        self.per_subnet: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.by_address)

    def add(self, node: Node) -> None:
        address = shared_address((node.ip, node.port))
        held = self.by_address.get(address)
        if held == node.id:
            return
        if held is not None:  # the bucket replaced the address's contact: not counted twice
            self.by_address[address] = node.id
            return
        self.by_address[address] = node.id
        self.per_host[node.ip] += 1
        self.per_subnet[subnet(node.ip)] += 1

    def discard(self, node: Node) -> None:
        address = (node.ip, node.port)
        if self.by_address.get(address) != node.id:
            return
        del self.by_address[address]
        for counter, key in ((self.per_host, address[0]), (self.per_subnet, subnet(address[0]))):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]


class IndexedBucket(KBucket):  # type: ignore[misc]
    """A k-bucket that reports every change of its live list to an AddressIndex."""

    def __init__(self, low: int, high: int, ksize: int, index: AddressIndex) -> None:
        super().__init__(low, high, ksize, REPLACEMENT_FACTOR)
        # Plain dicts keep insertion order too, at two thirds of an OrderedDict's memory.
        self.nodes: dict[bytes, Node] = {}  # type: ignore[assignment]
        self.replacement_nodes: dict[bytes, Node] = {}  # type: ignore[assignment]
        self.index = index

    def add_node(self, node: Node) -> bool:
        """As kademlia's: a known contact moves to the tail (most recently seen), a new one
        enters if there is room, else it becomes the newest replacement."""
        nodes = self.nodes
        if node.id in nodes:
            del nodes[node.id]
            nodes[node.id] = node
        elif len(nodes) < self.ksize:
            nodes[node.id] = node
        else:
            spare = self.replacement_nodes
            spare.pop(node.id, None)
            spare[node.id] = node
            while len(spare) > self.max_replacement_nodes:
                del spare[next(iter(spare))]
            return False
        self.index.add(node)
        return True

    def head(self) -> Node:
        return next(iter(self.nodes.values()))

    def remove_node(self, node: Node) -> None:
        held = self.nodes.get(node.id)
        super().remove_node(node)
        if held is not None:
            self.index.discard(held)
            if self.nodes:  # kademlia promotes the newest replacement to the end
                self.index.add(next(reversed(self.nodes.values())))

    def split(self) -> tuple[IndexedBucket, IndexedBucket]:
        midpoint = (self.range[0] + self.range[1]) // 2
        one = IndexedBucket(self.range[0], midpoint, self.ksize, self.index)
        two = IndexedBucket(midpoint + 1, self.range[1], self.ksize, self.index)
        # The live contacts stay in the table, so in the index: only their bucket changes.
        for node in self.nodes.values():
            (one if node.long_id <= midpoint else two).nodes[node.id] = node
        for node in self.replacement_nodes.values():
            (one if node.long_id <= midpoint else two).add_node(node)
        return one, two


def _first(pair: tuple[int, Node]) -> int:
    return pair[0]


def _block_bound(low: int, high: int, target: int) -> int:
    """The least XOR distance from `target` to the aligned block of bucket [low, high]."""
    shift = (low ^ (high - 1)).bit_length() if high > low else 0
    return ((low ^ target) >> shift) << shift


class FastRoutingTable(RoutingTable):  # type: ignore[misc]
    """find_neighbors visits buckets nearest-first and stops once no further bucket can
    hold a nearer node, so it reads a few buckets instead of the whole table. It returns
    the exact k nearest (the original returned the nearest of the first k nodes met while
    walking out from the target's bucket) and excludes a node by id, not by address."""

    HEAD_PING_INTERVAL = 10.0

    def add_contact(self, node: Node) -> None:
        """As kademlia's, but a full bucket pings its least recently seen node at most once
        per HEAD_PING_INTERVAL, not once per newcomer (a join storm sent thousands)."""
        node = shared_node(node)
        index = self.get_bucket_for(node)
        bucket = self.buckets[index]
        if bucket.add_node(node):
            return
        if bucket.has_in_range(self.node) or bucket.depth() % 5 != 0:
            self.split_bucket(index)
            self.add_contact(node)
            return
        head = bucket.head()
        now = time.monotonic()
        if now - self._head_pings.get(head.id, -self.HEAD_PING_INTERVAL) >= self.HEAD_PING_INTERVAL:
            if len(self._head_pings) > 4 * self.ksize:
                self._head_pings.clear()
            self._head_pings[head.id] = now
            self.protocol.spawn(self.protocol.call_ping(head))

    def flush(self) -> None:
        self.index = AddressIndex()
        self.buckets = [IndexedBucket(0, 2**160, self.ksize, self.index)]
        self._uppers: list[int] | None = None  # the buckets' upper ends, in order
        self._head_pings: dict[bytes, float] = {}
        self._removed: dict[bytes, float] = {}  # insertion order is time order

    REJOIN_GRACE = 60.0

    def remove_contact(self, node: Node) -> None:
        now = time.monotonic()
        self._removed.pop(node.id, None)
        self._removed[node.id] = now
        # Oldest first: forget evictions up to the first one still within the grace.
        expired = takewhile(lambda entry: now - entry[1] >= self.REJOIN_GRACE,
                            self._removed.items())
        for old_id, _ in list(expired):
            del self._removed[old_id]
        super().remove_contact(node)

    def contact(self, node_id: bytes) -> Node | None:
        """The contact the table holds under `node_id`, if any."""
        return self.buckets[self._bucket_index(int.from_bytes(node_id))].nodes.get(node_id)

    def get_bucket_for(self, node: Node) -> int:
        return self._bucket_index(node.long_id)

    def _bucket_index(self, long_id: int) -> int:
        """kademlia's rule (the first bucket whose upper end exceeds the id) by bisection,
        not a scan: every datagram's sender is looked up (a 40th of a 10,000-node run)."""
        if self._uppers is None:
            self._uppers = [bucket.range[1] for bucket in self.buckets]
        return bisect_right(self._uppers, long_id)

    def split_bucket(self, index: int) -> None:
        super().split_bucket(index)
        self._uppers = None

    def empty_far_ranges(self, network_size: int) -> list[tuple[int, int]]:
        """The id ranges [low, high) of the buckets that do not cover this node's id and
        hold no contact although `network_size` nodes spread evenly would put at least
        FAR_BUCKET_NODES in them (kademlia puts an id equal to a bucket's upper end in the
        next bucket).

        Such gaps are the rule, not the exception: a self-lookup meets only nodes near the
        node's id, and a split leaves an empty half wherever no contact came from. In one
        process of 3,000 nodes, 2,871 had one after start-up, 1,233 of them for the half of
        the id space opposite their own."""
        own = self.node.long_id
        return [
            (low, high)
            for low, high in (bucket.range for bucket in self.buckets if not bucket.nodes)
            if not low <= own < high
            and (high - low) * network_size >= FAR_BUCKET_NODES * ID_SPACE
        ]

    def recently_removed(self, node_id: bytes) -> bool:
        """Whether this peer was evicted less than REJOIN_GRACE seconds ago."""
        removed_at = self._removed.get(node_id)
        return removed_at is not None and time.monotonic() - removed_at < self.REJOIN_GRACE

    def nearest_of_all(self, target: int, distance: int, skip: set[bytes]) -> bool:
        """Whether no contact but those in `skip` is within `distance` (XOR) of `target`:
        one pass that reads only the buckets whose block can be that near, no sorting."""
        for bucket in self.buckets:
            low, high = bucket.range
            if _block_bound(low, high, target) > distance and (high ^ target) > distance:
                continue
            for n in bucket.nodes.values():
                if n.long_id ^ target <= distance and n.id not in skip:
                    return False
        return True

    def find_neighbors(
        self, node: Node, k: int | None = None, exclude: Node | None = None
    ) -> list[Node]:
        k = k or self.ksize
        target = node.long_id
        skip = {node.id, exclude.id} if exclude is not None else {node.id}
        # kademlia's buckets are (B, B + 2**s] (the first [0, 2**s]): the ids of one lie in
        # the aligned block [B, B + 2**s) or are its upper end. XOR distances from the
        # target to the block fill [bound, bound + 2**s), and blocks are disjoint, so every
        # node of a bucket but its upper end is nearer than every node of the next: once k
        # are found, a later bucket is read only if its bound is below the k-th distance,
        # which is rare, and the k-th is computed once, not after every bucket (re-running
        # nsmallest so was a third of all CPU at 500 nodes).
        ordered = sorted(
            (min(_block_bound(low, high, target), high ^ target), index)
            for index, (low, high) in enumerate(b.range for b in self.buckets)
        )
        found: list[tuple[int, Node]] = []
        buckets = self.buckets
        kth = None
        for bound, index in ordered:
            if kth is not None and bound > kth:
                break
            found.extend(
                (n.long_id ^ target, n)
                for n in buckets[index].nodes.values()
                if n.id not in skip
            )
            if len(found) >= k:
                found.sort(key=_first)
                del found[k:]
                kth = found[-1][0]
        found.sort(key=_first)
        return [n for _, n in found]

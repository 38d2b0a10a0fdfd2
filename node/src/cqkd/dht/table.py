"""Who the routing table holds, by address: the index behind its admission limits.

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
from collections import Counter
from functools import lru_cache
from itertools import chain

from kademlia.node import Node
from kademlia.routing import KBucket

Address = tuple[str, int]
# Defaults of DHT_MAX_PEERS_PER_HOST and _SUBNET. Containers on one host share its address
# (host networking), so the host limit must exceed the nodes a host runs: workers take
# ports 7000-7999, but a table rarely holds more than a few hundred contacts in all.
MAX_PEERS_PER_HOST = 256
MAX_PEERS_PER_SUBNET = 1024


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
    def __init__(self) -> None:
        self.by_address: dict[Address, bytes] = {}
        self._addresses: dict[bytes, Address] = {}
        self.per_host: Counter[str] = Counter()
        self.per_subnet: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._addresses)

    def add(self, node: Node) -> None:
        self.discard(node)
        address = (node.ip, node.port)
        self._addresses[node.id] = address
        self.by_address[address] = node.id
        self.per_host[node.ip] += 1
        self.per_subnet[subnet(node.ip)] += 1

    def discard(self, node: Node) -> None:
        address = self._addresses.pop(node.id, None)
        if address is None:
            return
        if self.by_address.get(address) == node.id:
            del self.by_address[address]
        for counter, key in ((self.per_host, address[0]), (self.per_subnet, subnet(address[0]))):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]


class IndexedBucket(KBucket):  # type: ignore[misc]
    """A k-bucket that reports every change of its live list to an AddressIndex."""

    def __init__(self, low: int, high: int, ksize: int, index: AddressIndex) -> None:
        super().__init__(low, high, ksize)
        self.index = index

    def add_node(self, node: Node) -> bool:
        added: bool = super().add_node(node)
        if added:
            self.index.add(node)
        return added

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
        for node in self.nodes.values():
            self.index.discard(node)
        for node in chain(self.nodes.values(), self.replacement_nodes.values()):
            (one if node.long_id <= midpoint else two).add_node(node)
        return one, two

"""Proven addresses: those that answered one of our requests, so they receive what is sent
to them (RFC 9000, section 8.1, address validation). Answers to other addresses are
limited to three times the request, and their datagrams to a lower rate (protocol.py).

A node keeps its own table. Nodes of one process on one host (`cqkd local`) share one: an
address proven to one of them is proven to all, as a QUIC server's address-validation
tokens hold across the servers that share their key. Each node proving every peer anew
cost one ping per peer and node (two, when both ends pinged each other), a sixth of the
CPU at 1,000 nodes, and a table per node.
"""

from __future__ import annotations

from collections import OrderedDict

Address = tuple[str, int]

PROVEN_ADDRESSES = 4096  # addresses remembered per table, least recently proven dropped


class ProvenAddresses:
    def __init__(self, capacity: int = PROVEN_ADDRESSES) -> None:
        self.capacity = capacity
        self._addresses: OrderedDict[Address, None] = OrderedDict()

    def __contains__(self, address: object) -> bool:
        return address in self._addresses

    def __len__(self) -> int:
        return len(self._addresses)

    def add(self, address: Address) -> bool:
        """Remember `address` as proven now; True if it was not proven before."""
        known = self._addresses
        if address in known:
            known.move_to_end(address)
            return False
        known[address] = None
        if len(known) > self.capacity:
            known.popitem(last=False)
        return True

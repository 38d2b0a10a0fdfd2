"""Lookups (kademlia's spider crawls) with a faster node heap and rounds that do not wait
for dead peers.

kademlia's NodeHeap checks membership by scanning the heap (quadratic per lookup); with
RoutingTable.find_neighbors (replaced in routing.py) it took over a third of a
200-node network's start-up time (k=40).
"""

from __future__ import annotations

import asyncio
from bisect import insort
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from kademlia.crawling import NodeSpiderCrawl, ValueSpiderCrawl
from kademlia.node import Node, NodeHeap

from cqkd.dht.routing import contact_node


class IndexedNodeHeap(NodeHeap):  # type: ignore[misc]
    """NodeHeap with a set of every id ever pushed (O(1) membership) and its entries kept
    sorted by distance (bisect.insort) rather than heap-ordered: a lookup reads its nearest
    `maxsize` several times a round, which kademlia does with heapq.nsmallest over every
    entry (a twentieth of a 10,000-node start-up).

    A node removed for not answering stays in the set, so a later answer that lists it
    again does not put it back among the nearest.
    """

    def __init__(self, node: Node, maxsize: int) -> None:
        super().__init__(node, maxsize)
        self.heap: list[tuple[int, Node]] = []
        self.seen: set[bytes] = set()

    def push(self, nodes: Node | list[Node]) -> None:
        target = self.node.long_id
        for node in nodes if isinstance(nodes, list) else [nodes]:
            if node.id not in self.seen:
                self.seen.add(node.id)
                # XOR distances are distinct for distinct ids: Nodes are never compared.
                insort(self.heap, (node.long_id ^ target, node))

    def remove(self, peers: list[bytes]) -> None:
        gone = set(peers)
        if gone:
            self.heap = [entry for entry in self.heap if entry[1].id not in gone]

    def popleft(self) -> Node | None:
        return self.heap.pop(0)[1] if self.heap else None

    def __iter__(self) -> Iterator[Node]:
        return (node for _, node in self.heap[: self.maxsize])

    def __contains__(self, node: Node) -> bool:
        return node.id in self.seen


class _IndexedCrawl:
    """The crawl with an IndexedNodeHeap, and rounds that do not wait for dead peers.

    kademlia waits for every RPC of a round, so one dead peer stalls the lookup for a whole
    RPC timeout. Here a round ends after the protocol's round timeout (from measured round
    trip times, as TCP's retransmission timeout); peers still silent count as unanswered
    for this lookup, and their RPCs finish in the background (a timeout evicts them, a late
    answer still refreshes the routing table).
    """

    nearest: NodeHeap
    protocol: Any
    node: Node
    alpha: int
    last_ids_crawled: list[bytes]

    def __init__(self, protocol: Any, node: Node, peers: list[Node], ksize: int, alpha: int):
        super().__init__(protocol, node, [], ksize, alpha)  # type: ignore[call-arg]
        self.nearest = IndexedNodeHeap(node, ksize)
        self.nearest.push(list(peers))

    async def _find(self, rpcmethod: Callable[[Node, Node], Awaitable[Any]]) -> Any:
        count = self.alpha
        if self.nearest.get_ids() == self.last_ids_crawled:
            count = len(self.nearest)
        self.last_ids_crawled = self.nearest.get_ids()
        calls = {}
        for peer in self.nearest.get_uncontacted()[:count]:
            calls[peer.id] = self.protocol.spawn(rpcmethod(peer, self.node))
            self.nearest.mark_contacted(peer)
        if calls:
            await asyncio.wait(calls.values(), timeout=self.protocol.round_timeout)
        # A call cancelled (the node's socket closed under it) counts as unanswered.
        found = {
            peer_id: call.result() if call.done() and not call.cancelled() else (False, None)
            for peer_id, call in calls.items()
        }
        return await self._nodes_found(found)  # type: ignore[attr-defined]


class FastNodeSpiderCrawl(_IndexedCrawl, NodeSpiderCrawl):  # type: ignore[misc]
    async def _nodes_found(self, responses: dict[bytes, tuple[bool, Any]]) -> list[Node]:
        # As NodeSpiderCrawl, but only ids never seen become Node objects.
        unanswered = []
        heap = self.nearest
        for peer_id, (answered, triples) in responses.items():
            if not answered:
                unanswered.append(peer_id)
                continue
            heap.push([contact_node(*t) for t in triples if t[0] not in heap.seen])
        heap.remove(unanswered)
        if heap.have_contacted_all():
            return list(heap)
        return await self.find()  # type: ignore[no-any-return]


class FastValueSpiderCrawl(_IndexedCrawl, ValueSpiderCrawl):  # type: ignore[misc]
    pass

"""Every node of the DHT, found by crawling the id space block by block.

Lookups of random ids (what discovery did before) each return the k nodes nearest one
point, so a few of them miss whole regions of a network of hundreds, and a node that has
just joined is known only to its id-space neighbours. Crawlers of Kademlia networks
(Steiner, En-Najjary and Biersack, "A global view of KAD", IMC 2007; Wolchok and
Halderman, "Crawling BitTorrent DHTs for fun and profit", WOOT 2010) cover the id space
instead: split it into aligned blocks expected to hold fewer than k nodes each, and ask
nodes inside each block for the nodes they know nearest its centre.

A node inside block B knows B's members as a rule (they share a longer id prefix with it
than with anyone outside, so they sit in its deepest buckets, which have room, and a
newcomer's join lookup reaches exactly them). Its answer, nearest first, lists the members
of B it knows and then nodes outside B once B is exhausted. So:

- an answer from inside B that names a node outside B covers B: done;
- an answer from inside B that names only members of B (B holds more than k nodes, or
  the answer was cut) splits B in two, each crawled the same way;
- with no known node inside B, the nearest known nodes are asked, and those they name
  inside B next, for at most STEPS rounds; none found means B is empty.

The rule has exceptions: a node learns of another only when one of them sends the other a
request, so when hundreds join at once a member can miss a block-mate that joined beside
it (2026-11-30, 500 workers in containers: one worker was known to 43 of 510 nodes, and
to neither of the two members of its block nearest the block's centre; Alice asked those
two at every crawl, for 180 s, and never saw it). So the members asked are drawn at random
among the known ones, not the nearest: crawls repeated while some workers are unseen (every
CONVERGING_REFRESH_SECONDS, cqkd.qkd.directory) ask different members, and one that knows
the missing node names it.

Cost: for a network of about N nodes, 2^ceil(log2(2N/k)) blocks (2N/k to 4N/k, so about
k/4 to k/2 nodes each) and WIDTH FIND_NODE requests per block, sent in parallel: 64
requests at N=500 and k=40, 16 at N=100 and k=30. Splits, empty blocks and dead peers add
some; the crawl never sends more than MAX_REQUESTS_PER_BLOCK / WIDTH times that. Each
request waits at most the DHT's RPC timeout.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable

from cqkd.dht.node import DhtNode, Peer

ID_BITS = 160
WIDTH = 2  # nodes asked at once per block: one dead or stale node does not hide a block
STEPS = 3  # rounds of asking nearer nodes, for a block where no member is known yet
MAX_REQUESTS_PER_BLOCK = 8  # bound on splits and steps, per initial block
# Which members are asked: drawn from the OS, so that no peer can predict it.
_DRAW = secrets.SystemRandom()


class Crawl:
    """One crawl by `node`, expecting about `expected` nodes; `on_found` gets each answer's
    peers as they arrive (so the caller can greet them before the crawl ends)."""

    def __init__(
        self, node: DhtNode, expected: int, on_found: Callable[[list[Peer]], None]
    ) -> None:
        self.node = node
        self.on_found = on_found
        self.known: dict[bytes, Peer] = {}
        self.requests = 0
        k = max(2, node.params.k)
        self.depth = max(0, math.ceil(math.log2(max(1, 2 * expected / k))))
        self.budget = MAX_REQUESTS_PER_BLOCK * WIDTH * 2**self.depth

    async def run(self, seeds: list[Peer]) -> dict[bytes, Peer]:
        """Every node found (by id): `seeds` (what is known already) plus the answers."""
        self._add(seeds)
        size = 2 ** (ID_BITS - self.depth)
        await asyncio.gather(*(self._block(i * size, self.depth) for i in range(2**self.depth)))
        return self.known

    def _add(self, peers: list[Peer]) -> None:
        own = self.node.node_id
        for peer in peers:
            if peer.node_id != own:
                self.known.setdefault(peer.node_id, peer)

    def _nearest(self, target: int, asked: set[bytes]) -> list[Peer]:
        reachable = self.node.is_reachable
        return sorted(
            (p for p in self.known.values()
             if p.node_id not in asked and reachable((p.host, p.port))),
            key=lambda p: int.from_bytes(p.node_id, "big") ^ target,
        )[:WIDTH]

    def _to_ask(
        self, target: int, inside: Callable[[bytes], bool], asked: set[bytes]
    ) -> list[Peer]:
        """WIDTH known members of the block not asked yet, drawn at random (module
        docstring); when none is known, the WIDTH known nodes nearest its centre."""
        reachable = self.node.is_reachable
        members = [p for p in self.known.values()
                   if inside(p.node_id) and p.node_id not in asked and reachable((p.host, p.port))]
        if members:
            return _DRAW.sample(members, min(WIDTH, len(members)))
        return self._nearest(target, asked)

    async def _ask(self, peer: Peer, target: int) -> list[Peer] | None:
        """`peer`'s answer, passed on as soon as it arrives, not when the block's other
        request (maybe to a dead peer) ends."""
        answer = await self.node.nearest_known_by(peer, target.to_bytes(20, "big"))
        if answer is not None:
            self._add(answer)
            self.on_found(answer)
        return answer

    async def _block(self, low: int, depth: int) -> None:
        size = 2 ** (ID_BITS - depth)
        target = low + size // 2

        def inside(peer_id: bytes) -> bool:
            return low <= int.from_bytes(peer_id, "big") < low + size

        asked: set[bytes] = set()
        for _ in range(STEPS):
            chosen = self._to_ask(target, inside, asked)
            if not chosen or self.requests + len(chosen) > self.budget:
                return
            self.requests += len(chosen)
            asked.update(p.node_id for p in chosen)
            answers = await asyncio.gather(*(self._ask(p, target) for p in chosen))
            split = False
            for peer, answer in zip(chosen, answers, strict=True):
                if answer is None:
                    continue
                if inside(peer.node_id):
                    if not answer or not all(inside(p.node_id) for p in answer):
                        return  # a member named every member it knows, then outsiders
                    split = True
            if split and depth < ID_BITS:
                await asyncio.gather(self._block(low, depth + 1),
                                     self._block(low + size // 2, depth + 1))
                return
            if not any(inside(p.node_id) for p in self._nearest(target, asked)):
                return  # the nearest nodes name no member: an empty block

"""Health checks of routing-table peers at three depths.

Each round checks a sample of peers at one depth: `PING`; `FIND_NODE` (ping, then a
find_node whose answer must be well formed); `DEEP` (both, plus a find_value of a random key
and a `load` query). Every third round is a find_node round, every tenth a deep one. Round
intervals grow with the network size (params.health_interval). These probes do not evict on
the first timeout, unlike lookups: a peer failing `FAILURE_LIMIT` checks in a row is evicted.

Each sample is the node's NEAREST_IN_SAMPLE nearest neighbours (the constant's comment says
why) and random peers, drawn at the end of the round before, and the protocol watches it
(`CqkdProtocol.watched`): a sampled peer that answered one of our requests, or sent us a
request under its id, in between is known alive and is not pinged (a PING or FIND_NODE
round; lookups already evict a peer whose find_node answer is malformed). DEEP rounds and
peers already failing are checked in full. In a busy network most sampled peers were heard
from: at 10,000 nodes in one process the pings of health rounds were the largest CPU cost
of the fleet after its joins.
"""

from __future__ import annotations

import logging
import os
import random
from enum import IntEnum

from kademlia.node import Node

from cqkd.dht.protocol import CqkdProtocol, valid_node_list
from cqkd.logs import event

log = logging.getLogger(__name__)

FAILURE_LIMIT = 3
SAMPLE_SIZE = 8
# Of each sample, the node's nearest neighbours by id. A ping re-adds its sender to the
# neighbour's table: a node its neighbours evicted on one timed-out RPC under load (a
# lookup evicts at once) and whose own table is full is otherwise known to nobody a crawl
# or lookup for its id asks (two of 200 workers in the container study, 2026-11-30).
NEAREST_IN_SAMPLE = 2
_RNG = random.Random()  # one for every node of a process: a Random is 2.5 KiB


class Depth(IntEnum):
    PING = 1
    FIND_NODE = 2
    DEEP = 3


def depth_for_round(round_number: int) -> Depth:
    if round_number % 10 == 0:
        return Depth.DEEP
    if round_number % 3 == 0:
        return Depth.FIND_NODE
    return Depth.PING


class HealthChecker:
    def __init__(self, protocol: CqkdProtocol, rng: random.Random | None = None) -> None:
        self.protocol = protocol
        self.failures: dict[bytes, int] = {}
        self.rounds = 0
        self.skipped = 0  # sampled peers that needed no check: heard from since sampled
        self._rng = rng or _RNG
        self._planned: list[Node] = []

    async def check_peer(self, peer: Node, depth: Depth) -> bool:
        """True if the peer passed every step of a check at `depth`."""
        proto = self.protocol
        address = (peer.ip, peer.port)
        own = proto.source_node.id
        answered, node_id = await proto.request(address, "ping", own)
        if not answered or node_id != peer.id:
            return False
        if depth >= Depth.FIND_NODE:
            answered, nodes = await proto.request(address, "find_node", own, own)
            if not answered or not valid_node_list(nodes):
                return False
        if depth >= Depth.DEEP:
            answered, found = await proto.request(address, "find_value", own, os.urandom(20))
            if not answered or not (isinstance(found, dict) or valid_node_list(found)):
                return False
            load = await proto.query_load(address)
            if load is None:
                return False
        return True

    async def run_round(self) -> Depth:
        """Check a sample of peers; evict those at FAILURE_LIMIT consecutive failures."""
        self.rounds += 1
        depth = depth_for_round(self.rounds)
        proto = self.protocol
        peers = [node for bucket in proto.router.buckets for node in bucket.get_nodes()]
        # Peers already failing are re-checked every round so eviction takes 3 rounds.
        failing = [p for p in peers if p.id in self.failures]
        healthy = [p for p in peers if p.id not in self.failures]
        in_table = {p.id for p in healthy}
        planned = [p for p in self._planned if p.id in in_table] or self._draw(healthy)
        heard = proto.heard if depth < Depth.DEEP else set()
        sample = failing + [p for p in planned if (p.ip, p.port) not in heard]
        self.skipped += len(planned) + len(failing) - len(sample)
        self._planned = self._draw(healthy)
        proto.watched = {(p.ip, p.port): p.id for p in self._planned}
        proto.heard = set()
        for peer in sample:
            if await self.check_peer(peer, depth):
                self.failures.pop(peer.id, None)
                continue
            count = self.failures.get(peer.id, 0) + 1
            self.failures[peer.id] = count
            if count >= FAILURE_LIMIT:
                del self.failures[peer.id]
                proto.router.remove_contact(peer)
                event(log, "peer_evicted", peer=str(peer), depth=depth.name.lower())
        return depth

    def _draw(self, healthy: list[Node]) -> list[Node]:
        """SAMPLE_SIZE peers: the NEAREST_IN_SAMPLE nearest to this node, the rest at random."""
        nearest = self.protocol.router.find_neighbors(self.protocol.source_node,
                                                      NEAREST_IN_SAMPLE)
        chosen = {p.id for p in nearest}
        rest = [p for p in healthy if p.id not in chosen]
        nearest = [p for p in nearest if p.id not in self.failures]
        return nearest + self._rng.sample(rest, min(SAMPLE_SIZE - len(nearest), len(rest)))

"""DhtNode: one Kademlia node, the interface the rest of cqkd builds on.

    node = DhtNode(DhtConfig(...), role="worker")   # or host=, port= (0: OS-assigned)
    await node.start()                                # listen on UDP
    await node.join([("10.0.0.1", 5678)])             # hostnames are resolved first
    node.address -> (host, port);  node.node_id -> 20 bytes
    await node.stop()

Application RPCs (the CQKD protocol rides on these):

    node.register_rpc(name, handler)   # handler(sender: (host, port), payload: bytes)
                                       #   -> Awaitable[bytes], answered to the caller
    await node.call(address, name, payload) -> bytes | None

They travel as ONE extra Kademlia RPC, `app(nodeid, name, payload)`, validated like the
others: `name` must be registered on the receiver (else the datagram is dropped and counted,
and the caller times out), `payload` is bytes of at most MAX_PAYLOAD_BYTES, and so is the
handler's answer. `call` returns None on timeout, on a peer known dead (no datagram is sent),
or when the peer's handler raised (the peer logs the exception type, never the payload). It
raises ValueError for a payload over MAX_PAYLOAD_BYTES or a name over 64 bytes.

Peers: `live_peers()` lists the routing table (minus peers that just timed out) as
`Peer(node_id, host, port)`; `is_reachable(address)` is False while an address that missed
an RPC is counted dead (the one place that says so); `await find_node(node_id)` is
Kademlia's node lookup (the k nodes nearest an id); `await nearest_known_by(peer, target)`
asks one peer
(a single FIND_NODE) for the contacts it knows nearest a target. `await get(key)` /
`await set(key, value)` are plain Kademlia storage, bounded (storage.py); `set` raises
ValueError for a value whose msgpack form is over MAX_VALUE_BYTES, before anything is
stored or sent. A node made with `accept_store=False` (`cqkd worker`: the CQKD protocol
never stores on workers) declines every STORE it receives (answers False, keeps nothing).
Nodes of one process on one host may share one `proven` table of addresses
(cqkd.dht.proven; cqkd.sim does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from typing import Any, NamedTuple

from kademlia.network import Server
from kademlia.node import Node
from kademlia.utils import digest

from cqkd.dht.bootstrap import BootstrapSelector, Strategy
from cqkd.dht.config import DhtConfig
from cqkd.dht.crawling import FastNodeSpiderCrawl, FastValueSpiderCrawl
from cqkd.dht.health import HealthChecker
from cqkd.dht.params import (
    ID_SPACE,
    KademliaParams,
    estimate_network_size,
    health_interval,
    resolve_params,
)
from cqkd.dht.protocol import (
    APP_ERROR,
    APP_OK,
    MAX_APP_NAME_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_VALUE_BYTES,
    RCVBUF_BYTES,
    Address,
    AppHandler,
    CqkdProtocol,
    ipv4_literal,
)
from cqkd.dht.proven import ProvenAddresses
from cqkd.dht.routing import REPLACEMENT_FACTOR, contact_node
from cqkd.dht.storage import BoundedStorage, value_bytes
from cqkd.logs import event
from cqkd.metrics import (
    DHT_ALPHA,
    DHT_DISCOVERY_DURATION,
    DHT_JOIN_DURATION,
    DHT_JOINED_TIMESTAMP,
    DHT_K,
    DHT_LOOKUP_DURATION,
    DHT_NETWORK_SIZE_ESTIMATE,
    DHT_QUERIES,
    DHT_QUERY_TIMEOUT,
    DHT_REJECTED_DATAGRAMS,
    ROUTING_TABLE_PEERS,
)

__all__ = ["MAX_PAYLOAD_BYTES", "DhtConfig", "DhtNode", "JoinError", "Peer", "adjacent_id"]

log = logging.getLogger(__name__)

# Self-lookups a join repeats while its routing table stays thin (DhtNode._thin); later
# ones come with the maintenance rounds.
JOIN_RETRIES = 2


class Peer(NamedTuple):
    node_id: bytes
    host: str
    port: int


def adjacent_id(node_id: bytes) -> bytes:
    """`node_id` with its last bit flipped: no other id is nearer to it (XOR distance 1),
    so a node lookup of it finds the node `node_id` itself first (DhtNode.find_node)."""
    return (int.from_bytes(node_id, "big") ^ 1).to_bytes(len(node_id), "big")


class JoinError(RuntimeError):
    """No bootstrap node answered within the discovery timeout."""


class _Server(Server):  # type: ignore[misc]
    """kademlia's Server with our protocol; `bootstrap_node` pings through it."""

    protocol_class = CqkdProtocol

    def __init__(
        self,
        node_id: bytes,
        params: KademliaParams,
        config: DhtConfig,
        app_handlers: dict[str, AppHandler],
        accept_store: bool = True,
        proven: ProvenAddresses | None = None,
    ) -> None:
        super().__init__(ksize=params.k, alpha=params.alpha, node_id=node_id)
        # Set here: kademlia's `storage or ForgetfulStorage()` takes an empty one for none.
        self.storage = BoundedStorage(max_value_bytes=MAX_VALUE_BYTES)
        self._config = config
        self._app_handlers = app_handlers
        self._accept_store = accept_store
        self._proven = proven

    def _create_protocol(self) -> CqkdProtocol:
        per_host, per_subnet = self._config.peer_limits
        return CqkdProtocol(
            self.node,
            self.storage,
            self.ksize,
            rpc_timeout=self._config.rpc_timeout,
            dead_peer_ttl=self._config.dead_peer_ttl,
            app_handlers=self._app_handlers,
            accept_store=self._accept_store,
            max_peers_per_host=per_host,
            max_peers_per_subnet=per_subnet,
            proven=self._proven,
        )

    async def listen(self, port: int, interface: str = "0.0.0.0") -> None:
        """As kademlia's, on a socket we create: a 4 MiB receive buffer (bursts of many
        nodes in one process overflow the default), and the protocol may drain it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.bind((interface, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        self.transport, self.protocol = await loop.create_datagram_endpoint(
            self._create_protocol, sock=sock
        )
        self.protocol.sock = sock
        self.refresh_table()

    async def bootstrap_node(self, addr: Address) -> Node | None:
        node_id = await self.protocol.ping_address(addr)
        return Node(node_id, addr[0], addr[1]) if node_id else None

    # get and set_digest as in kademlia, with the indexed crawlers (and no value logging).

    async def get(self, key: str | bytes, local: bool = True) -> Any:
        dkey = digest(key)
        if local and self.storage.get(dkey) is not None:
            return self.storage.get(dkey)
        node = Node(dkey)
        nearest = self.protocol.router.find_neighbors(node)
        if not nearest:
            return None
        spider = FastValueSpiderCrawl(self.protocol, node, nearest, self.ksize, self.alpha)
        return await spider.find()

    async def set_digest(self, dkey: bytes, value: Any) -> bool:
        size = value_bytes(value)
        if size > MAX_VALUE_BYTES:
            raise ValueError(f"value is {size} bytes, over the {MAX_VALUE_BYTES} limit")
        node = Node(dkey)
        nearest = self.protocol.router.find_neighbors(node)
        if not nearest:
            return False
        spider = FastNodeSpiderCrawl(self.protocol, node, nearest, self.ksize, self.alpha)
        nodes = await spider.find()
        if not nodes:
            return False
        if self.node.distance_to(node) < max(n.distance_to(node) for n in nodes):
            self.storage[dkey] = value
        # Like the crawl, do not wait a whole RPC timeout for a dead replica once one store
        # succeeded; the others finish in the background.
        stores = [self.protocol.spawn(self.protocol.call_store(n, dkey, value)) for n in nodes]
        done, pending = await asyncio.wait(stores, timeout=self.protocol.round_timeout)
        if not any(task.result() == (True, True) for task in done) and pending:
            await asyncio.wait(pending)
        return any(task.result() == (True, True) for task in stores if task.done())


class DhtNode:
    def __init__(
        self,
        config: DhtConfig,
        role: str = "worker",
        *,
        host: str | None = None,
        port: int | None = None,
        selector: BootstrapSelector | None = None,
        maintenance: bool = True,
        accept_store: bool = True,
        proven: ProvenAddresses | None = None,
    ) -> None:
        self.config = config
        self.role = role
        self._host = host if host is not None else config.host
        self._port = port if port is not None else config.port
        self._selector = selector
        self._maintenance = maintenance
        self._app_handlers: dict[str, AppHandler] = {}
        node_id = config.node_id or os.urandom(20)
        self.params = self._resolve(config.network_size)
        _publish_params(self.params, config.network_size)
        self._server = _Server(
            node_id, self.params, config, self._app_handlers, accept_store, proven
        )
        self._bootstrap: list[tuple[str, int]] = []
        # Addresses of the bootstrap list that answered with this node's own id (a list
        # that names the node by its host's IP while it binds 0.0.0.0): never asked again.
        self._own_addresses: set[Address] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = 0.0
        # The last join's duration (s) and end (Unix time): /health and the metrics show them.
        self.join_seconds: float | None = None
        self.joined_at: float | None = None
        self.health: HealthChecker | None = None

    # --- identity and lifecycle ---

    @property
    def node_id(self) -> bytes:
        return bytes(self._server.node.id)

    @property
    def address(self) -> Address:
        return (self._host, self._port)

    @property
    def protocol(self) -> CqkdProtocol:
        return self._server.protocol  # type: ignore[no-any-return]

    @property
    def running(self) -> bool:
        transport = self._server.transport
        return transport is not None and not transport.is_closing()

    async def start(self) -> None:
        await self._server.listen(self._port, interface=self._host)
        self._port = self._server.transport.get_extra_info("sockname")[1]
        self.started_at = time.monotonic()
        self.health = HealthChecker(self.protocol)
        if self._maintenance:
            self._tasks.append(asyncio.create_task(self._maintain()))
        event(log, "node_started", role=self.role, port=self._port, node_id=self.node_id.hex())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._server.stop()
        await asyncio.sleep(0)
        event(log, "node_stopped", role=self.role, port=self._port)

    # --- joining ---

    async def _resolve_addresses(self, addresses: list[tuple[str, int]]) -> list[Address]:
        loop = asyncio.get_running_loop()
        resolved: list[Address] = []
        for host, port in addresses:
            try:
                # An IPv4 literal needs no resolver thread (about 0.6 MiB RSS).
                literal = ipv4_literal(host)
                address = (host if literal else await _resolve(loop, host, port), port)
            except OSError as exc:
                event(
                    log,
                    "bootstrap_unresolved",
                    logging.WARNING,
                    host=host,
                    port=port,
                    error=str(exc),
                )
                continue
            if address != self.address and address not in self._own_addresses \
                    and address not in resolved:
                resolved.append(address)
        return resolved

    def _new_selector(self, addresses: list[Address]) -> BootstrapSelector:
        # Each node starts its round robin at its own offset so a fleet spreads out.
        return BootstrapSelector(
            addresses,
            self.config.bootstrap_strategy,
            self.config.bootstrap_max_connections,
            start=int.from_bytes(self.node_id[:4], "big"),
        )

    async def join(self, bootstrap: list[tuple[str, int]], required: bool = True) -> bool:
        """Join through one bootstrap chosen by the selection strategy; a bootstrap node
        (role "bootstrap") meets every other bootstrap of the list instead
        (`meet_bootstraps`), and looks itself up through all that answered.

        Retries with back-off until the discovery timeout, then raises JoinError when
        `required`, else returns False. Without `required` only a bootstrap node given other
        addresses (that resolve, and are not its own) retries (its peers start with it: the
        first one up waits for the next), and any other node returns False at once.
        """
        self._bootstrap = list(bootstrap)
        began = time.monotonic()
        deadline = began + self.params.discovery_timeout
        delay = 0.2
        while True:
            addresses = await self._resolve_addresses(self._bootstrap)
            if self.role == "bootstrap":
                seeds = await self.meet_bootstraps(addresses)
            else:
                entry = await self._contact_bootstrap(addresses) if addresses else None
                seeds = [entry] if entry is not None else []
            if seeds:
                break
            patient = required or (self.role == "bootstrap" and bool(addresses))
            if not patient or time.monotonic() + delay > deadline:
                if required:
                    raise JoinError(
                        f"no bootstrap node answered within {self.params.discovery_timeout:.0f} s"
                        f" (tried {', '.join(f'{h}:{p}' for h, p in self._bootstrap) or 'none'})"
                    )
                return False
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 5.0)
        await self._lookup(self._server.node, seeds, "join")
        for _ in range(JOIN_RETRIES):
            if not self._thin():
                break
            await self._lookup(self._server.node, None, "join")
        self._apply_params()
        elapsed = time.monotonic() - began
        self.join_seconds, self.joined_at = round(elapsed, 6), time.time()
        DHT_DISCOVERY_DURATION.observe(elapsed)
        DHT_JOIN_DURATION.set(elapsed)
        DHT_JOINED_TIMESTAMP.set(self.joined_at)
        event(
            log,
            "joined",
            role=self.role,
            bootstrap=",".join(f"{seed.ip}:{seed.port}" for seed in seeds),
            peers=self.routing_table_size,
            seconds=round(elapsed, 3),
        )
        return True

    async def meet_bootstraps(self, addresses: list[Address] | None = None) -> list[Node]:
        """Ping, all at once, every address of this node's bootstrap list that no contact
        of its routing table has; each peer that answers enters the table, and this node
        the peer's. Returns the contacts it holds at those addresses afterwards.

        A bootstrap node's join and upkeep (the bootstrap layer must be one network): each
        bootstrap node used to join through one other, so six started at once could pair
        off into two networks, each reached by the workers that joined through its members
        (2026-11-30, 500 workers in containers: Alice's crawl found 168, the other 332 were
        a network of their own). `addresses`: the list already resolved."""
        if addresses is None:
            addresses = await self._resolve_addresses(self._bootstrap)
        held = {(n.ip, n.port): n for bucket in self.protocol.router.buckets
                for n in bucket.get_nodes()}
        missing = [a for a in addresses if a not in held]
        answers = await asyncio.gather(*(self._server.bootstrap_node(a) for a in missing))
        for address, answer in zip(missing, answers, strict=True):
            if answer is not None and answer.id == self.node_id:
                self._own_addresses.add(address)  # the list names this node (its host IP)
        return [held[a] for a in addresses if a in held] + [
            n for n in answers if n is not None and n.id != self.node_id
        ]

    async def _contact_bootstrap(self, addresses: list[Address]) -> Node | None:
        selector = self._selector
        if selector is None or {s.address for s in selector.states} != set(addresses):
            selector = self._new_selector(addresses)
            if self._selector is None:
                self._selector = selector
        if selector.strategy is Strategy.LEAST_LOADED:
            loads = await asyncio.gather(*(self.protocol.query_load(a) for a in addresses))
            for probed, load in zip(addresses, loads, strict=True):
                if load is not None:
                    selector.record_load(probed, load)
        tried: set[Address] = set()
        while (address := selector.select(exclude=tried)) is not None:
            tried.add(address)
            node = await self._server.bootstrap_node(address)
            if node is not None and node.id != self.node_id:
                selector.record_success(address)
                return node
            selector.record_failure(address)
            event(
                log, "bootstrap_unreachable", logging.WARNING, address=f"{address[0]}:{address[1]}"
            )
        return None

    # --- peers ---

    @property
    def routing_table_size(self) -> int:
        return sum(len(bucket) for bucket in self.protocol.router.buckets)

    def is_reachable(self, address: Address) -> bool:
        """False while `address` is counted dead: it missed an RPC less than
        `config.dead_peer_ttl` seconds ago, and calls to it fail at once meanwhile."""
        return not self.protocol.is_dead(address)

    def live_peers(self) -> list[Peer]:
        return [
            Peer(bytes(n.id), n.ip, n.port)
            for bucket in self.protocol.router.buckets
            for n in bucket.get_nodes()
            if self.is_reachable((n.ip, n.port))
        ]

    async def _lookup(self, target: Node, seeds: list[Node] | None, operation: str) -> list[Node]:
        seeds = (
            seeds
            if seeds is not None
            else self.protocol.router.find_neighbors(target, self.params.alpha)
        )
        began = time.monotonic()
        spider = FastNodeSpiderCrawl(self.protocol, target, seeds, self.params.k, self.params.alpha)
        try:
            found: list[Node] = await asyncio.wait_for(spider.find(), self.params.query_timeout)
            DHT_QUERIES.labels(operation=operation, result="ok").inc()
            return found
        except TimeoutError:
            DHT_QUERIES.labels(operation=operation, result="timeout").inc()
            return []
        finally:
            DHT_LOOKUP_DURATION.labels(operation=operation).observe(time.monotonic() - began)

    async def refresh(self) -> None:
        """Look up our own id and a random id, to fill the routing table."""
        await asyncio.gather(
            self._lookup(self._server.node, None, "find_node"),
            self._lookup(Node(os.urandom(20)), None, "find_node"),
        )

    async def find_node(self, node_id: bytes) -> list[Peer]:
        """Kademlia's node lookup (iterative FIND_NODE, section 2.3 of the paper): the k
        live nodes nearest `node_id` (20 bytes) that the network knows, nearest first, this
        node left out; [] when the lookup ran out of QUERY_TIMEOUT. As in kademlia, a node
        never names a contact whose id is the target itself: to locate node X, look up an
        id next to X's (`adjacent_id`), whose nearest node is X."""
        found = await self._lookup(Node(node_id), None, "find_node")
        return [Peer(bytes(n.id), n.ip, n.port) for n in found if n.id != self.node_id]

    async def nearest_known_by(self, peer: Peer, target: bytes) -> list[Peer] | None:
        """One FIND_NODE to `peer`: the contacts it knows nearest `target` (20 bytes),
        nearest first, at most its k (fewer if its answer was cut to fit a datagram), this
        node left out; None if it did not answer within the RPC timeout."""
        asked = Node(peer.node_id, peer.host, peer.port)
        began = time.monotonic()
        answered, triples = await self.protocol.call_find_node(asked, Node(target))
        # A query like a lookup's, for the query success rate and lookup duration panels:
        # Alice's and Bob's crawls are most of a deployment's DHT queries.
        DHT_LOOKUP_DURATION.labels(operation="crawl").observe(time.monotonic() - began)
        DHT_QUERIES.labels(operation="crawl", result="ok" if answered else "timeout").inc()
        if not answered:
            return None
        return [Peer(bytes(i), h, p) for i, h, p in triples if i != self.node_id]

    # --- storage ---

    async def get(self, key: str | bytes) -> Any:
        """The value stored under `key`: this node's own copy if it holds one, else what
        a lookup finds; None when none is found within the query timeout."""
        return await self._timed("get", self._server.get(key))

    async def lookup(self, key: str | bytes) -> Any:
        """`get` that always asks the network, even when this node holds a copy: what a
        query-success measurement counts (with k at least the network size, every node
        holds one). None when no peer answers with it within the query timeout."""
        return await self._timed("get", self._server.get(key, local=False))

    async def set(self, key: str | bytes, value: Any) -> bool:
        return bool(await self._timed("set", self._server.set(key, value)))

    async def _timed(self, operation: str, coro: Any) -> Any:
        began = time.monotonic()
        result = "ok"
        try:
            value = await asyncio.wait_for(coro, self.params.query_timeout)
            if value is None or value is False:
                result = "not_found" if operation == "get" else "error"
            return value
        except TimeoutError:
            result = "timeout"
            return None
        finally:
            DHT_QUERIES.labels(operation=operation, result=result).inc()
            DHT_LOOKUP_DURATION.labels(operation=operation).observe(time.monotonic() - began)

    # --- application RPCs ---

    def register_rpc(self, name: str, handler: AppHandler) -> None:
        if not name or len(name.encode()) > MAX_APP_NAME_BYTES:
            raise ValueError(f"RPC name must be 1..{MAX_APP_NAME_BYTES} bytes")
        self._app_handlers[name] = handler

    async def call(
        self, address: Address, name: str, payload: bytes, answer_within: float | None = None,
        even_if_dead: bool = False,
    ) -> bytes | None:
        """Application RPC `name` to `address`: the answer's payload, or None when it did
        not answer within `answer_within` seconds (default: the RPC timeout), refused, or is
        counted dead (`even_if_dead` asks all the same). Raises ValueError for a name or
        payload over its limit."""
        if len(name.encode()) > MAX_APP_NAME_BYTES:
            raise ValueError(f"RPC name must be at most {MAX_APP_NAME_BYTES} bytes")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is {len(payload)} bytes, over {MAX_PAYLOAD_BYTES}")
        answered, response = await self.protocol.request(
            address, "app", self.node_id, name, bytes(payload), timeout=answer_within,
            even_if_dead=even_if_dead,
        )
        if not answered:
            self._evict_address(address)
            return None
        if (
            isinstance(response, list)
            and len(response) == 2
            and response[0] == APP_OK
            and isinstance(response[1], bytes)
        ):
            return bytes(response[1])
        if isinstance(response, list) and len(response) == 2 and response[0] == APP_ERROR:
            event(
                log,
                "app_rpc_remote_error",
                logging.WARNING,
                rpc=name,
                peer=f"{address[0]}:{address[1]}",
                error=str(response[1])[:64],
            )
        else:
            DHT_REJECTED_DATAGRAMS.labels(reason="bad_response").inc()
        return None

    def _evict_address(self, address: Address) -> None:
        for bucket in self.protocol.router.buckets:
            for n in bucket.get_nodes():
                if (n.ip, n.port) == address:
                    self.protocol.router.remove_contact(n)
                    return

    # --- adaptive parameters and maintenance ---

    def _resolve(self, network_size: int) -> KademliaParams:
        c = self.config
        return resolve_params(network_size, c.adaptive, c.alpha, c.k, c.query_timeout)

    def _thin(self, network_size: int | None = None) -> bool:
        """Whether the routing table holds fewer than the k peers (or the whole network,
        if smaller) that every node's table holds once its self-lookup has reached its
        id-space neighbours. A join whose lookup timed out on a loaded host (seen with 500
        workers starting on 2 cores: tables of 4-5 peers) leaves the node known only to
        those few, so its neighbours never name it and crawls and lookups miss it; another
        self-lookup (the join's, Maymounkov and Mazieres 2002, section 2.3) announces it.
        `network_size`: the estimate, if the caller has it (a neighbour search each)."""
        wanted = min(self.params.k, (network_size or self.estimated_network_size()) - 1)
        return self.routing_table_size < wanted

    def estimated_network_size(self) -> int:
        proto = self.protocol
        nearest = proto.router.find_neighbors(self._server.node, self.params.k)
        estimate = estimate_network_size(self._server.node.long_id, [n.long_id for n in nearest])
        return max(self.config.network_size, estimate)

    def _apply_params(self) -> int:
        """Adapt the parameters to the estimated network size, and return that size."""
        network_size = self.estimated_network_size()
        params = self._resolve(network_size)
        _publish_params(params, network_size)
        if params == self.params:
            return network_size
        self.params = params
        server = self._server
        server.alpha, server.ksize = params.alpha, params.k
        server.protocol.router.ksize = params.k
        for bucket in server.protocol.router.buckets:
            bucket.ksize = params.k
            bucket.max_replacement_nodes = params.k * REPLACEMENT_FACTOR
        event(
            log,
            "params_changed",
            alpha=params.alpha,
            k=params.k,
            query_timeout=params.query_timeout,
        )
        return network_size

    async def _maintain(self) -> None:
        # One size estimate (a neighbour search) per round: it sets both the parameters
        # and the next interval.
        network_size = self.estimated_network_size()
        while True:
            interval = health_interval(network_size)
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            try:
                network_size = await self.maintenance_round()
            except Exception as exc:
                # One failed round must not end this node's upkeep for good (the task would
                # die silently and its table rot): log it and keep the rounds going.
                event(log, "maintenance_failed", logging.ERROR, error=type(exc).__name__)

    async def maintenance_round(self) -> int:
        """One round of upkeep: parameters, a health round, a bootstrap node's meeting of
        the bootstrap peers it has no contact with, a rejoin or self-lookup while the table
        is thin, one far bucket refilled. Returns the network-size estimate."""
        assert self.health is not None
        network_size = self._apply_params()
        await self.health.run_round()
        if self.role == "bootstrap" and self._bootstrap:
            # Never a join from here: a bootstrap node's is patient and would hold this
            # round (and start a second join beside one still waiting) for up to the
            # discovery timeout. Meeting the peers is its rejoin.
            await self.meet_bootstraps()
            rejoin = False
        else:
            rejoin = self.routing_table_size == 0 and bool(self._bootstrap)
        ROUTING_TABLE_PEERS.set(self.routing_table_size)
        if rejoin:
            await self.join(self._bootstrap, required=False)
        elif self._thin(network_size):
            await self._lookup(self._server.node, None, "join")
        await self._fill_far_bucket(network_size)
        return network_size

    async def _fill_far_bucket(self, network_size: int) -> None:
        """Kademlia's bucket refresh (Maymounkov and Mazieres 2002, section 2.3: a node
        refreshes every bucket further than its closest neighbour), one bucket a round and
        at two RPCs: an empty far bucket (FastRoutingTable.empty_far_ranges) drawn at
        random with odds by its width (the widest gaps matter most, but one whose candidates
        fail must not hold up the others for good); a find_node
        for a random id of its range, sent to the contact nearest that id; and a ping to the
        first contact the answer names in the range that this table does not hold. That
        contact enters the table if it answers with the same id and the table's per-host
        and per-subnet limits admit it. Without the refresh, lookups at 10,000 nodes in one
        process ended in clusters of nodes that all knew nobody on the key's side of the id
        space (1 to 10 of 1,000 store/get pairs failed)."""
        router = self.protocol.router
        gaps = router.empty_far_ranges(network_size)
        if not gaps:
            return
        [(low, high)] = random.choices(gaps, weights=[high - low for low, high in gaps])
        target = Node(random.randrange(low, min(high, ID_SPACE)).to_bytes(20, "big"))
        asked = router.find_neighbors(target, 1)
        if not asked:
            return
        answered, contacts = await self.protocol.call_find_node(asked[0], target)
        if not answered:
            return
        for node_id, host, port in contacts:
            if low <= int.from_bytes(node_id) < high and router.contact(node_id) is None:
                await self.protocol.call_ping(contact_node(node_id, host, port))
                return


def _publish_params(params: KademliaParams, network_size: int) -> None:
    DHT_ALPHA.set(params.alpha)
    DHT_K.set(params.k)
    DHT_QUERY_TIMEOUT.set(params.query_timeout)
    DHT_NETWORK_SIZE_ESTIMATE.set(network_size)


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> str:
    infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    return str(infos[0][4][0])

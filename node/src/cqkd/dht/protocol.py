"""Our Kademlia protocol: kademlia 2.2's `KademliaProtocol`, hardened and extended.

- Every datagram is validated (size, framing, msgpack, RPC name in an allow-list, argument
  count and types) before anything else sees it; bad ones are dropped and counted in
  `cqkd_dht_rejected_datagrams_total{reason}`. rpcudp's `__getattr__` (any unknown
  attribute becomes a remote call) is disabled: outgoing RPCs go through `request()`.
- Requests with synchronous handlers are answered inline, without one task per datagram,
  and a busy socket is drained in batches (asyncio reads one datagram per loop turn).
- Dead peers: the first RPC timeout evicts a peer from the routing table and remembers its
  address for `dead_peer_ttl` seconds, during which RPCs to it fail at once. A request or
  even a late answer from that address revives it.
- Admission (issue 11): a node that does not use DHT storage (a worker) declines STORE
  (answers False); others keep values in a BoundedStorage (storage.py). One address holds
  one id in the routing table, and hosts and subnets a bounded number (routing.py); a new id
  at a known address is taken only after the address answers a ping with it (a restarted
  node), and an id seen at two addresses is a clash, logged and refused. Answers to an
  address that has not yet answered one of our requests are at most AMPLIFICATION_FACTOR
  times the request; the first such request sends it a ping, whose answer proves the
  address.
- Each source address has a token bucket, checked before any parsing: a flood the node
  cannot parse would otherwise fill the socket buffer and drop its peers' answers too.
- No datagram over MAX_DATAGRAM_BYTES is sent: find_node answers are cut to fit, values are
  refused at `set` when their STORE would not fit.
- Round-trip times feed an RFC 6298 style estimate, `round_timeout`, after which a lookup
  round moves on without its silent peers (see crawling.py).
- Extra RPCs: `load` (joins seen recently, routing table size) and `app` (application
  RPCs by name, see node.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.storage import IStorage

from cqkd.dht.proven import PROVEN_ADDRESSES, ProvenAddresses
from cqkd.dht.ratelimit import TokenBuckets
from cqkd.dht.routing import FastRoutingTable, contact_node, shared_address, subnet
from cqkd.dht.storage import BoundedStorage
from cqkd.logs import LimitedEvents
from cqkd.metrics import DHT_CONTACTS_REFUSED, DHT_REJECTED_DATAGRAMS, DHT_STORE_REFUSED

log = logging.getLogger(__name__)

Address = tuple[str, int]
AppHandler = Callable[[Address, bytes], Awaitable[bytes]]

REQUEST, RESPONSE = 0x00, 0x01
MSG_ID_BYTES = 20
HEADER_BYTES = 1 + MSG_ID_BYTES
MAX_RPC_BYTES = 8192  # rpcudp's limit on the msgpack body of a request
MAX_DATAGRAM_BYTES = HEADER_BYTES + MAX_RPC_BYTES
MAX_APP_NAME_BYTES = 64
# Worst-case msgpack framing of ["app", [nodeid, name, payload]]: 1 + 4 + 1 + 22 + 66 + 5.
MAX_PAYLOAD_BYTES = MAX_RPC_BYTES - 128
# Worst-case msgpack framing of ["store", [nodeid, key, value]]: 1 + 6 + 1 + 22 + 22.
MAX_VALUE_BYTES = MAX_RPC_BYTES - 64
# RFC 9000 (QUIC) section 8.1: at most three times the bytes received to an address that
# has not been validated, so a forged source address cannot turn us into an amplifier.
AMPLIFICATION_FACTOR = 3
MAX_VERIFICATIONS = 256  # address-proving pings in flight at once
VERIFY_RETRY_SECONDS = 30.0
# Datagrams per second (and burst) parsed from one address that has not proven itself, from
# one that has, and from all unproven ones together; the rest are dropped before parsing.
# A proven peer's bursts (pushes of a session chunk) stay far below its limit.
UNPROVEN_RATE, UNPROVEN_BURST = 100.0, 200.0
PROVEN_RATE, PROVEN_BURST = 1000.0, 2000.0
ALL_UNPROVEN_RATE = 5000.0
RCVBUF_BYTES = 4 * 1024 * 1024
LOAD_WINDOW_SECONDS = 60.0
MIN_ROUND_TIMEOUT = 0.05
DRAIN_BATCH = 16

_Pending = tuple["asyncio.Future[tuple[bool, Any]]", asyncio.TimerHandle, Address, float]
_VALUE_TYPES = (int, float, bool, str, bytes)
_ID = "id"  # a 20-byte node id or key
_SIGNATURES: dict[str, tuple[object, ...]] = {
    "ping": (_ID,),
    "store": (_ID, _ID, _VALUE_TYPES),
    "find_node": (_ID, _ID),
    "find_value": (_ID, _ID),
    "load": (_ID,),
    "app": (_ID, str, bytes),
}
APP_OK, APP_ERROR = 0, 1


def _args_valid(args: list[Any], signature: tuple[object, ...]) -> bool:
    if len(args) != len(signature):
        return False
    for arg, kind in zip(args, signature, strict=True):
        if kind == _ID:
            if not (isinstance(arg, bytes) and len(arg) == MSG_ID_BYTES):
                return False
        elif not isinstance(arg, kind) or (kind is str and len(arg) > MAX_APP_NAME_BYTES):  # type: ignore[arg-type]
            return False
    return True


# Hosts already seen to be IPv4 literals (answers name the same few hosts again and
# again); bounded like routing.py's shared tables.
_IPV4_HOSTS: set[str] = set()
_MAX_IPV4_HOSTS = 1 << 16


def ipv4_literal(host: str) -> bool:
    """Whether `host` is a dotted-quad IPv4 address: nodes speak IPv4 only, and a host
    that is not one must never reach sendto(), which resolves names (blocking the loop) and
    raises TypeError on a NUL byte, which makes asyncio close the socket for good."""
    if host in _IPV4_HOSTS:
        return True
    try:
        socket.inet_pton(socket.AF_INET, host)
    except (OSError, ValueError):
        return False
    if len(_IPV4_HOSTS) >= _MAX_IPV4_HOSTS:
        _IPV4_HOSTS.clear()
    _IPV4_HOSTS.add(host)
    return True


def valid_node_list(value: Any) -> bool:
    """A find_node answer: a list of [id (20 bytes), host (IPv4 literal), port (1..65535)]."""
    # This runs on every find_node answer: a plain loop is about twice as fast on
    # CPython 3.11 as the eight map()/set() passes it replaced (4.6 against 9.5 us for k=40).
    if type(value) is not list:
        return False
    for contact in value:
        if type(contact) is not list or len(contact) != 3:
            return False
        node_id, host, port = contact
        if (
            type(node_id) is not bytes
            or len(node_id) != MSG_ID_BYTES
            or type(host) is not str
            or type(port) is not int
            or not 0 < port < 65536
            or not ipv4_literal(host)
        ):
            return False
    return True


def _reject(reason: str) -> None:
    DHT_REJECTED_DATAGRAMS.labels(reason=reason).inc()


class CqkdProtocol(KademliaProtocol):
    def __init__(
        self,
        source_node: Node,
        storage: IStorage,
        ksize: int,
        rpc_timeout: float,
        dead_peer_ttl: float,
        app_handlers: dict[str, AppHandler],
        max_peers_per_host: int,
        max_peers_per_subnet: int,
        accept_store: bool = True,
        proven: ProvenAddresses | None = None,
    ) -> None:
        super().__init__(source_node, storage, ksize)
        self.accept_store = accept_store
        self.max_peers_per_host = max_peers_per_host
        self.max_peers_per_subnet = max_peers_per_subnet
        self._proven = proven if proven is not None else ProvenAddresses()
        self._verify_tried: OrderedDict[Address, float] = OrderedDict()
        self._verifying: dict[Address, list[Callable[[bytes | None], None]]] = {}
        self._log = LimitedEvents(log)
        self._limits = TokenBuckets(UNPROVEN_RATE, UNPROVEN_BURST, PROVEN_ADDRESSES)
        self._all_unproven = TokenBuckets(ALL_UNPROVEN_RATE, ALL_UNPROVEN_RATE, 1)
        self.router = FastRoutingTable(self, ksize, source_node)
        self.rpc_timeout = rpc_timeout
        self.dead_peer_ttl = dead_peer_ttl
        self.app_handlers = app_handlers
        self.sock: socket.socket | None = None  # set by the server that owns the socket
        self._pending: dict[bytes, _Pending] = {}
        self._dead: dict[Address, float] = {}
        self._srtt, self._rttvar = rpc_timeout / 8, rpc_timeout / 16
        self._recent_joins: deque[float] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        # The peers the next health round will check (address -> id, health.py), and those
        # of them heard from since they were chosen: those need no check.
        self.watched: dict[Address, bytes] = {}
        self.heard: set[Address] = set()
        self._handlers: dict[str, Callable[..., Any]] = {
            name: getattr(self, f"rpc_{name}") for name in _SIGNATURES if name != "app"
        }

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)

    # --- transport ---

    def connection_lost(self, exc: Exception | None) -> None:
        self.sock = None
        for future, timer, _, _ in self._pending.values():
            timer.cancel()
            if not future.done():
                future.set_result((False, None))
        self._pending.clear()
        for task in self._tasks:
            task.cancel()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        # asyncio reads one datagram per socket per loop turn; a busy node (a bootstrap
        # during a join storm) then answers late and its peers time out. Drain a batch.
        # Stop before reading a datagram this call will not handle: that one would be lost.
        for left in range(DRAIN_BATCH - 1, -1, -1):
            addr = shared_address(addr)
            try:
                reason = self._handle_datagram(data, addr)
            except Exception as exc:
                # An exception escaping here makes asyncio close the socket: the node would
                # go deaf while its HTTP side still looks healthy. Count it and go on.
                self._log("datagram_handler_failed", logging.ERROR, error=type(exc).__name__)
                reason = "handler_error"
            if reason is not None:
                _reject(reason)
            if left == 0 or self.sock is None:
                return
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. an ICMP error queued on the socket; the transport reports it

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (e.g. port unreachable) are expected when peers die; timeouts handle them.
        pass

    def _handle_datagram(self, data: bytes, addr: Address) -> str | None:
        """Validate and dispatch one datagram; return a rejection reason or None."""
        refused = self._refuse_unparsed(data, addr)
        if refused is not None:
            return refused
        msg_id = data[1:HEADER_BYTES]
        try:
            body = msgpack.unpackb(data[HEADER_BYTES:], raw=False, strict_map_key=True)
        except Exception:
            return "bad_msgpack"
        if data[0] == RESPONSE:
            return self._accept_response_checked(msg_id, body, addr)
        return self._handle_request(msg_id, body, addr, len(data))

    def _refuse_unparsed(self, data: bytes, addr: Address) -> str | None:
        """Why `data` is dropped before any parsing (size, rate limits, kind), or None."""
        if len(data) <= HEADER_BYTES:
            return "too_short"
        if len(data) > MAX_DATAGRAM_BYTES:
            return "too_large"
        if addr in self._proven:
            if not self._limits.allow(addr, PROVEN_RATE, PROVEN_BURST):
                return "rate_limited"
        elif not (self._limits.allow(addr) and self._all_unproven.allow(None)):
            return "rate_limited"
        if data[0] not in (REQUEST, RESPONSE):
            return "bad_kind"
        return None

    def _handle_request(self, msg_id: bytes, body: Any, addr: Address, size: int) -> str | None:
        """Check one request's frame and arguments, then answer it (`size`: the datagram's
        bytes, which bound the answer to an unproven address)."""
        if not (isinstance(body, list) and len(body) == 2 and isinstance(body[1], list)):
            return "bad_frame"
        name, args = body
        signature = _SIGNATURES.get(name) if isinstance(name, str) else None
        if signature is None:
            return "unknown_rpc"
        if not _args_valid(args, signature):
            return "bad_args"
        if name == "store" and not self.accept_store:
            # Declined, not dropped, as a full store does: a silent drop made every writer,
            # and every lookup that caches the value at the nearest node without it (as
            # kademlia's crawl does), wait out an RPC timeout and count this node dead.
            DHT_STORE_REFUSED.labels(reason="unused").inc()
            self._send(RESPONSE, msg_id, False, addr)
            return None
        if msg_id in self._pending and name == "ping":
            # Our own ping come back (a bootstrap list that names this node): not a clash.
            self._send(RESPONSE, msg_id, self.source_node.id, addr)
            return None
        self._dead.pop(addr, None)
        if self.watched.get(addr) == args[0]:
            self.heard.add(addr)
        proven = addr in self._proven
        if name == "app":
            if args[1] not in self.app_handlers:
                return "unknown_app_rpc"
            if len(args[2]) > MAX_PAYLOAD_BYTES:
                return "bad_args"
            self.spawn(self._answer_app(msg_id, addr, args[0], args[1], args[2]))
        else:
            self._answer(msg_id, addr, name, args, proven, size)
        if not proven:
            # After the answer: the peer then has proven us (our answer came first) and does
            # not ping us back to prove us in turn.
            self._verify(addr)
        return None

    def _answer(
        self, msg_id: bytes, addr: Address, name: str, args: list[Any], proven: bool, size: int
    ) -> None:
        """Answer a Kademlia RPC; lookups' answers to an unproven address are cut to
        AMPLIFICATION_FACTOR times the request's `size` (RFC 9000 section 8.1's rule)."""
        response = self._handlers[name](addr, *args)
        body = msgpack.packb(response)  # once: packing was a tenth of a find_node
        if name in ("find_node", "find_value"):
            limit = MAX_RPC_BYTES if proven else AMPLIFICATION_FACTOR * size - HEADER_BYTES
            limit = min(limit, MAX_RPC_BYTES)
            if len(body) > limit:
                body = msgpack.packb(_fit(response, limit))
        self._send_packed(RESPONSE, msg_id, body, addr)

    # --- proving addresses ---

    def is_proven(self, address: Address) -> bool:
        """Whether `address` answered one of our requests (recently enough to remember)."""
        return address in self._proven

    def _prove(self, address: Address) -> None:
        if self._proven.add(address):
            self._limits.forget(address)  # from now on the proven rate and burst apply
            self._verify_tried.pop(address, None)

    def _verify(self, address: Address, then: Callable[[bytes | None], None] | None = None) -> None:
        """Ping `address`; its answer proves it (and `then` gets the id it answers with, or
        None). One ping per address at a time, at most MAX_VERIFICATIONS in flight, and an
        address that did not answer is not pinged again (without `then`) for a while."""
        waiting = self._verifying.get(address)
        if waiting is not None:
            if then is not None and len(waiting) < 4:
                waiting.append(then)
            return
        now = time.monotonic()
        tried = self._verify_tried.get(address)
        if len(self._verifying) >= MAX_VERIFICATIONS or (
            then is None and tried is not None and now - tried < VERIFY_RETRY_SECONDS
        ):
            return
        self._verify_tried[address] = now
        self._verify_tried.move_to_end(address)
        if len(self._verify_tried) > PROVEN_ADDRESSES:
            self._verify_tried.popitem(last=False)
        self._verifying[address] = [then] if then is not None else []
        future = self.request(address, "ping", self.source_node.id, probe=True)

        def answered(done: asyncio.Future[tuple[bool, Any]]) -> None:
            ok, node_id = done.result()
            found = bytes(node_id) if ok and _is_node_id(node_id) else None
            for callback in self._verifying.pop(address, []):
                callback(found)

        future.add_done_callback(answered)

    def _accept_response_checked(self, msg_id: bytes, body: Any, addr: Address) -> str | None:
        pending = self._pending.get(msg_id)
        if pending is None or pending[2] != addr:
            self._dead.pop(addr, None)  # a late answer still proves the peer is alive
            return "unexpected_response"
        del self._pending[msg_id]
        future, timer, _, sent_at = pending
        timer.cancel()
        self._dead.pop(addr, None)
        self._prove(addr)  # it received our random message id
        if addr in self.watched:
            self.heard.add(addr)
        self._observe_rtt(time.monotonic() - sent_at)
        if not future.done():
            future.set_result((True, body))
        return None

    def _send(self, kind: int, msg_id: bytes, body: Any, addr: Address) -> None:
        self._send_packed(kind, msg_id, msgpack.packb(body), addr)

    def _send_packed(self, kind: int, msg_id: bytes, body: bytes, addr: Address) -> None:
        datagram = bytes((kind,)) + msg_id + body
        if len(datagram) > MAX_DATAGRAM_BYTES:
            # The receiver would drop it, and then take us for dead: send nothing instead.
            _reject("answer_too_large")
            self._log("answer_too_large", logging.WARNING, size=len(datagram))
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(datagram, addr)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run `coro` as a task held until done and cancelled when the socket closes.

        An exception it ends with is logged (rate-limited), never left unretrieved."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log("background_task_failed", logging.ERROR, error=type(exc).__name__)

    # --- outgoing requests ---

    def _observe_rtt(self, sample: float) -> None:
        # TCP's smoothed RTT and variation (RFC 6298), for the crawl's round timeout.
        self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - sample)
        self._srtt = 0.875 * self._srtt + 0.125 * sample

    @property
    def round_timeout(self) -> float:
        """How long a lookup round waits for answers before moving on without them."""
        rto = self._srtt + 4 * self._rttvar
        return min(self.rpc_timeout, max(MIN_ROUND_TIMEOUT, rto))

    def is_dead(self, address: Address) -> bool:
        expiry = self._dead.get(address)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._dead[address]
            return False
        return True

    def request(
        self, address: Address, name: str, *args: Any, probe: bool = False,
        timeout: float | None = None, even_if_dead: bool = False,
    ) -> asyncio.Future[tuple[bool, Any]]:
        """Send RPC `name`; the future yields (answered, result), (False, None) after
        `timeout` seconds (default: the RPC timeout), or at once to an address counted dead
        unless `even_if_dead`.

        A `probe` (an address-proving ping) that times out does not mark the peer dead.
        Raises ValueError for a request over MAX_RPC_BYTES (nothing is sent)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        dead = self.is_dead(address) and not even_if_dead
        closed = self.transport is None or self.transport.is_closing()
        if dead or closed or not ipv4_literal(address[0]):
            future.set_result((False, None))
            return future
        body = msgpack.packb([name, args])
        if len(body) > MAX_RPC_BYTES:
            raise ValueError(f"RPC {name} is {len(body)} bytes, over the {MAX_RPC_BYTES} limit")
        msg_id = os.urandom(MSG_ID_BYTES)
        timer = loop.call_later(timeout or self.rpc_timeout, self._on_timeout, msg_id, probe)
        self._pending[msg_id] = (future, timer, address, time.monotonic())
        self.transport.sendto(bytes((REQUEST,)) + msg_id + body, address)
        return future

    def _on_timeout(self, msg_id: bytes, probe: bool = False) -> None:
        future, _, address, _ = self._pending.pop(msg_id)
        if future.cancelled():
            # The caller gave up (a cancelled task): the peer is not dead for an answer
            # nobody waited for. Checked here, not in a done-callback: that cost a loop
            # turn for every request answered.
            return
        if self.dead_peer_ttl > 0 and not probe:
            now = time.monotonic()
            dead = self._dead
            # Oldest expiry first (one TTL for all), so expired entries leave from the front:
            # silent addresses named in answers must not pile up here for good.
            dead.pop(address, None)
            dead[address] = now + self.dead_peer_ttl
            while (oldest := next(iter(dead.items())))[1] < now:
                del dead[oldest[0]]
        future.set_result((False, None))

    # --- kademlia's call_* on top of request(), with answers validated ---

    def _checked(self, result: tuple[bool, Any], valid: Callable[[Any], bool]) -> tuple[bool, Any]:
        if result[0] and not valid(result[1]):
            _reject("bad_response")
            return (False, None)
        return result

    async def call_find_node(self, node_to_ask: Node, node_to_find: Node) -> tuple[bool, Any]:
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.request(address, "find_node", self.source_node.id, node_to_find.id)
        return self.handle_call_response(self._checked(result, valid_node_list), node_to_ask)

    async def call_find_value(self, node_to_ask: Node, node_to_find: Node) -> tuple[bool, Any]:
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.request(address, "find_value", self.source_node.id, node_to_find.id)

        def valid(value: Any) -> bool:
            if isinstance(value, dict):
                return list(value) == ["value"] and isinstance(value["value"], _VALUE_TYPES)
            return valid_node_list(value)

        return self.handle_call_response(self._checked(result, valid), node_to_ask)

    async def call_ping(self, node_to_ask: Node) -> tuple[bool, Any]:
        """Ping a contact; an answer with another id (a node restarted at its address)
        counts as no answer, so the stale contact is evicted."""
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.request(address, "ping", self.source_node.id)
        if result[0] and result[1] != node_to_ask.id:
            _reject("wrong_id")
            result = (False, None)
        return self.handle_call_response(result, node_to_ask)

    async def call_store(self, node_to_ask: Node, key: bytes, value: Any) -> tuple[bool, Any]:
        """(True, True) stored, (True, False) refused by a bound, (False, None) no answer."""
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.request(address, "store", self.source_node.id, key, value)
        return self.handle_call_response(self._checked(result, _is_bool), node_to_ask)

    async def ping_address(self, address: Address) -> bytes | None:
        """Ping an address (a bootstrap); the peer's node id, or None.

        A join always tries: an earlier timeout on a loaded host must not lock a node out
        of its bootstrap for the whole dead-peer TTL."""
        self._dead.pop(address, None)
        answered, node_id = self._checked(
            await self.request(address, "ping", self.source_node.id), _is_node_id
        )
        if not answered:
            return None
        if node_id != self.source_node.id:
            self.welcome_if_new(Node(node_id, address[0], address[1]))
        return node_id

    async def query_load(self, address: Address) -> int | None:
        """Joins a peer saw in the last minute, or None if it did not answer."""
        answered, value = self._checked(
            await self.request(address, "load", self.source_node.id), _is_load
        )
        return value[0] if answered else None

    # --- our RPC handlers ---

    def welcome_if_new(self, node: Node) -> None:
        """Add a peer met for the first time. If it enters the table, count it for `load`
        and hand it the keys it should now hold, unless it is back within REJOIN_GRACE of
        an eviction (mostly a timeout on a loaded host): it had them then. kademlia's own
        version walks the whole storage for every peer a full bucket turns away, which in
        a large network is most peers at every message."""
        address = (node.ip, node.port)
        if node.id == self.source_node.id:
            self._refuse("id_clash", "node_id_clash", logging.ERROR, node_id=node.id.hex(),
                         address=_text(address), held_by="this node")
            return
        known = self.router.contact(node.id)
        if known is not None:
            if (known.ip, known.port) != address:
                self._refuse("id_clash", "node_id_clash", logging.ERROR, node_id=node.id.hex(),
                             address=_text(address), held_by=_text((known.ip, known.port)))
            return
        index = self.router.index
        held = index.by_address.get(address)
        if held is not None:
            self._verify(address, lambda found: self._replace(address, held, node, found))
            return
        if index.per_host[node.ip] >= self.max_peers_per_host:
            DHT_CONTACTS_REFUSED.labels(reason="host_limit").inc()
            return
        if index.per_subnet[subnet(node.ip)] >= self.max_peers_per_subnet:
            DHT_CONTACTS_REFUSED.labels(reason="subnet_limit").inc()
            return
        returning = self.router.recently_removed(node.id)
        self.router.add_contact(node)
        if returning or self.router.is_new_node(node):
            return
        now = time.monotonic()
        self._recent_joins.append(now)
        while self._recent_joins[0] < now - LOAD_WINDOW_SECONDS:
            self._recent_joins.popleft()
        self._hand_over_keys(node)

    def _refuse(self, reason: str, name: str, level: int, **fields: Any) -> None:
        DHT_CONTACTS_REFUSED.labels(reason=reason).inc()
        self._log(name, level, **fields)

    def _replace(self, address: Address, held: bytes, node: Node, found: bytes | None) -> None:
        """A new id `node.id` came from `address`, where the table holds `held`: the
        address answered our ping with `found`. Its node restarted with a new id: evict the
        stale one and take the new. It answered with the old id: the new one is refused."""
        stale = self.router.contact(held)
        if stale is None or (stale.ip, stale.port) != address:
            if found == node.id:  # another answer already replaced it
                self.welcome_if_new(node)
            return
        if found is None or found == node.id:
            self.router.remove_contact(stale)
        if found == node.id:
            self._log("peer_id_changed", logging.WARNING, address=_text(address),
                      old_id=held.hex(), new_id=node.id.hex())
            self.welcome_if_new(node)
        elif found is not None:
            self._refuse("address_taken", "peer_id_refused", logging.INFO,
                         address=_text(address), node_id=node.id.hex(), held_by=found.hex())

    def _hand_over_keys(self, node: Node) -> None:
        """Section 2.5 of the paper: store on a newcomer each key of ours that it is among
        the k nearest to, when we are the nearest holder. (kademlia's version digests the
        stored keys, already digests, a second time, so it aims at the wrong ids.)"""
        own = self.source_node.long_id
        for dkey, value in self.storage:
            key = int.from_bytes(dkey, "big")
            # Most keys have a nearer holder than us among our contacts: one unsorted pass
            # tells so (a full neighbour search per key for every newcomer was a third of
            # all CPU at 500 nodes).
            if not self.router.nearest_of_all(key, key ^ own, {dkey, node.id}):
                continue
            target = Node(dkey)
            neighbors = self.router.find_neighbors(target, exclude=node)
            if not neighbors or (
                node.distance_to(target) < neighbors[-1].distance_to(target)
                and self.source_node.distance_to(target) < neighbors[0].distance_to(target)
            ):
                self.spawn(self.call_store(node, dkey, value))

    def rpc_store(self, sender: Address, nodeid: bytes, key: bytes, value: Any) -> bool:
        """Keep a value for a peer, within the storage bounds; False when refused."""
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]))
        if isinstance(self.storage, BoundedStorage):
            return self.storage.put(key, value, sender)
        self.storage[key] = value
        return True

    def rpc_find_node(
        self, sender: Address, nodeid: bytes, key: bytes
    ) -> list[tuple[bytes, str, int]]:
        source = contact_node(nodeid, sender[0], sender[1])
        self.welcome_if_new(source)
        neighbors = self.router.find_neighbors(Node(key), exclude=source)
        return [(n.id, n.ip, n.port) for n in neighbors]

    def rpc_find_value(self, sender: Address, nodeid: bytes, key: bytes) -> Any:
        value = self.storage.get(key, None)
        if value is None:
            return self.rpc_find_node(sender, nodeid, key)
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]))
        return {"value": value}

    def rpc_load(self, sender: Address, nodeid: bytes) -> list[int]:
        horizon = time.monotonic() - LOAD_WINDOW_SECONDS
        while self._recent_joins and self._recent_joins[0] < horizon:
            self._recent_joins.popleft()
        size = sum(len(bucket) for bucket in self.router.buckets)
        return [len(self._recent_joins), size]

    async def _answer_app(
        self, msg_id: bytes, sender: Address, nodeid: bytes, name: str, payload: bytes
    ) -> None:
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]))
        try:
            answer = await self.app_handlers[name](sender, payload)
            if not isinstance(answer, bytes) or len(answer) > MAX_PAYLOAD_BYTES:
                raise TypeError(f"handler returned {type(answer).__name__} or too many bytes")
            response: list[Any] = [APP_OK, answer]
        except Exception as exc:
            # Refused by the application (a bad box, a bad fragment): counted like the
            # datagrams the transport refuses, and logged at a bounded rate.
            _reject("app_refused")
            self._log(
                "app_rpc_handler_error",
                logging.WARNING,
                rpc=name,
                peer=_text(sender),
                error=type(exc).__name__,
            )
            response = [APP_ERROR, type(exc).__name__]
        self._send(RESPONSE, msg_id, response, sender)


def _is_node_id(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == MSG_ID_BYTES


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _text(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def _fit(answer: Any, limit: int) -> Any:
    """A find_node/find_value answer cut to at most `limit` bytes of msgpack: the nearest
    contacts first (the list is sorted by distance); a value too big becomes no contacts."""
    if len(msgpack.packb(answer)) <= limit:
        return answer
    if not isinstance(answer, list):
        return []
    total = 5  # the largest msgpack array header
    for count, entry in enumerate(answer):
        total += len(msgpack.packb(entry))
        if total > limit:
            return answer[:count]
    return answer


def _is_load(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)

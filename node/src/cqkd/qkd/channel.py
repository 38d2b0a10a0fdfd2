"""Sealed request/answer messages between CQKD nodes over the DHT's `app` RPCs.

A message is a msgpack map, sealed to the receiver (crypto.py). Messages over the RPC size
limit travel as fragments (sent first, each acknowledged) and the last fragment carries
the answer. Answers are sealed back to the sender. A handler rejects bad input by raising
ProtocolError: the sender gets its message (never key material) and raises RemoteError.

`hello` is the one plain RPC: public key, roles offered, load and, for a worker, the
deployment's admission ticket for its key (crypto.admit), for discovery.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from cqkd.dht.node import MAX_PAYLOAD_BYTES, DhtNode
from cqkd.logs import event
from cqkd.metrics import MESSAGES_REFUSED
from cqkd.qkd import bb84
from cqkd.qkd.crypto import KEY_BYTES, CryptoFailure, Identity
from cqkd.qkd.fragments import MAX_MESSAGE_BYTES, Reassembler

log = logging.getLogger(__name__)

RPC_HELLO = "cqkd_hello"
RPC_MESSAGE = "cqkd_msg"
Address = tuple[str, int]
Message = dict[str, Any]

_WHOLE, _FRAGMENT = 0, 1
_FRAGMENT_HEADER = 1 + 8 + 2 + 2
_FRAGMENT_DATA = MAX_PAYLOAD_BYTES - _FRAGMENT_HEADER


class ProtocolError(ValueError):
    """A message this node refuses; the text goes back to the sender, so no secrets in it."""


class Refused(ProtocolError):
    """A message refused for where it came from, counted in cqkd_messages_refused_total.

    `reason` is one of a few fixed labels: relayed (a command signed for another node),
    replayed (a command already run), foreign_sender (not the node the session or command
    named), untrusted (no owner this node trusts)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RemoteError(RuntimeError):
    """The peer refused our message with a ProtocolError."""


@dataclass(frozen=True)
class PeerInfo:
    """A node as its hello describes it."""

    host: str
    port: int
    public_key: bytes
    roles: tuple[str, ...] = ()
    load: int = 0
    ticket: bytes = b""

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    def to_wire(self) -> list[Any]:
        return [self.host, self.port, self.public_key]

    @classmethod
    def from_wire(cls, value: Any, sender: Address | None = None) -> PeerInfo:
        """Parse [host, port, key]; host "" (port 0) stands for `sender`, when given."""
        if sender is not None and isinstance(value, list) and value[:2] == ["", 0]:
            value = [sender[0], sender[1], *value[2:]]
        if not (
            isinstance(value, list | tuple)
            and len(value) == 3
            and isinstance(value[0], str)
            and type(value[1]) is int
            and 0 < value[1] < 65536
            and isinstance(value[2], bytes)
            and len(value[2]) == KEY_BYTES
        ):
            raise ProtocolError("bad peer description")
        return cls(value[0], value[1], value[2])


Handler = Callable[[bytes, Address, Message], Awaitable[Message]]


@dataclass
class Traffic:
    """What a channel sent: `messages` (each a sealed request that gets an answer, however
    many fragments it took) and `bytes` (the RPC payloads of requests, fragments and
    answers, sealing included; UDP and RPC headers not)."""

    messages: int = 0
    bytes: int = 0


def need(message: Message, name: str, kind: type | tuple[type, ...]) -> Any:
    """Field `name` of a received message, checked for type."""
    value = message.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"field {name!r} missing or of the wrong type")
    return value


def need_vector(message: Message, count: int) -> int:
    """The bit vector of `count` positions a push carries in its field "d"."""
    data = need(message, "d", list)
    if len(data) != 1 or not isinstance(data[0], bytes):
        raise ProtocolError("bad push payload")
    try:
        return bb84.from_bytes(data[0], count)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


class Channel:
    """One node's sealed messaging: register handlers by message kind, send to peers."""

    def __init__(
        self, node: DhtNode, identity: Identity, roles: tuple[str, ...] = (), ticket: bytes = b""
    ) -> None:
        self.node = node
        self.identity = identity
        self.roles = roles
        self.ticket = ticket
        self.load = 0
        self.traffic = Traffic()
        self._handlers: dict[str, Handler] = {}
        self._fragments = Reassembler(_FRAGMENT_DATA)
        node.register_rpc(RPC_HELLO, self._on_hello)
        node.register_rpc(RPC_MESSAGE, self._on_message)

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def off(self, kind: str) -> None:
        """Refuse messages of `kind` from now on, as if no handler had been registered."""
        self._handlers.pop(kind, None)

    # --- discovery ---

    async def _on_hello(self, sender: Address, payload: bytes) -> bytes:
        return msgpack.packb([self.identity.public_key, list(self.roles), self.load, self.ticket])

    async def hello(
        self, address: Address, answer_within: float | None = None, even_if_dead: bool = False
    ) -> PeerInfo | None:
        """The node at `address` as it describes itself; None if it did not answer within
        `answer_within` seconds (default: the DHT's RPC timeout), answered nonsense, or is
        counted dead by the DHT layer (unless `even_if_dead`)."""
        answer = await self.node.call(address, RPC_HELLO, b"", answer_within=answer_within,
                                      even_if_dead=even_if_dead)
        if answer is None:
            return None
        try:
            key, roles, load, ticket = msgpack.unpackb(answer)
            if not (isinstance(key, bytes) and len(key) == KEY_BYTES and type(load) is int
                    and isinstance(ticket, bytes)):
                return None
            return PeerInfo(address[0], address[1], key, tuple(str(r) for r in roles), load,
                            ticket)
        except (ValueError, TypeError, msgpack.ExtraData):
            return None

    # --- sending ---

    async def send(
        self, peer: PeerInfo, message: Message, answer_within: float | None = None,
        even_if_dead: bool = False,
    ) -> Message | None:
        """Deliver `message` and return the peer's answer; None if it did not answer within
        `answer_within` seconds (default: the DHT's RPC timeout) or is counted dead by the
        DHT layer (unless `even_if_dead`).

        Raises RemoteError if the peer refused the message.
        """
        sealed = self.identity.seal(peer.public_key, msgpack.packb(message))
        self.traffic.messages += 1
        patience: dict[str, Any] = {"answer_within": answer_within, "even_if_dead": even_if_dead}
        if len(sealed) + 1 <= MAX_PAYLOAD_BYTES:
            self.traffic.bytes += 1 + len(sealed)
            answer = await self.node.call(peer.address, RPC_MESSAGE, bytes((_WHOLE,)) + sealed,
                                          **patience)
        else:
            answer = await self._send_fragments(peer.address, sealed, **patience)
        if answer is None:
            return None
        self.traffic.bytes += len(answer)
        try:
            sender, body = self.identity.open(answer)
            reply = msgpack.unpackb(body)
        except (CryptoFailure, ValueError, msgpack.ExtraData):
            return None
        if sender != peer.public_key or not isinstance(reply, dict):
            return None
        if "error" in reply:
            raise RemoteError(str(reply["error"]))
        return reply

    async def _send_fragments(
        self, address: Address, sealed: bytes, **patience: Any
    ) -> bytes | None:
        if len(sealed) > MAX_MESSAGE_BYTES:
            raise ValueError(f"message of {len(sealed)} bytes is over {MAX_MESSAGE_BYTES}")
        parts = [sealed[i : i + _FRAGMENT_DATA] for i in range(0, len(sealed), _FRAGMENT_DATA)]
        message_id = os.urandom(8)

        def frame(index: int) -> bytes:
            header = bytes((_FRAGMENT,)) + message_id
            return header + index.to_bytes(2, "big") + len(parts).to_bytes(2, "big") + parts[index]

        self.traffic.bytes += len(sealed) + _FRAGMENT_HEADER * len(parts)

        acks = await asyncio.gather(
            *(self.node.call(address, RPC_MESSAGE, frame(i), **patience)
              for i in range(len(parts) - 1))
        )
        if any(ack is None for ack in acks):
            return None
        return await self.node.call(address, RPC_MESSAGE, frame(len(parts) - 1), **patience)

    # --- receiving ---

    async def _on_message(self, sender: Address, payload: bytes) -> bytes:
        if not payload:
            raise ProtocolError("empty message")
        if payload[0] == _FRAGMENT:
            sealed = self._fragments.add(sender, payload)
            if sealed is None:
                return b""
        elif payload[0] == _WHOLE:
            sealed = payload[1:]
        else:
            raise ProtocolError("unknown frame")
        peer_key, body = self.identity.open(sealed)
        message: Any = None
        try:
            message = msgpack.unpackb(body)
            if not isinstance(message, dict):
                raise ProtocolError("a message is a map")
            handler = self._handlers.get(message.get("k"))  # type: ignore[arg-type]
            if handler is None:
                raise ProtocolError("unknown message kind")
            reply = await handler(peer_key, sender, message)
        except (ProtocolError, ValueError, TypeError, msgpack.ExtraData) as exc:
            if isinstance(exc, Refused):
                MESSAGES_REFUSED.labels(reason=exc.reason).inc()
            clear = isinstance(exc, ProtocolError | CryptoFailure)
            text = str(exc) if clear else "malformed message"
            event(log, "message_refused", logging.INFO, peer=f"{sender[0]}:{sender[1]}",
                  kind=str(message.get("k"))[:32] if isinstance(message, dict) else None,
                  reason=text)
            reply = {"error": text}
        return self.identity.seal(peer_key, msgpack.packb(reply))


def serve_hello(node: DhtNode) -> Channel:
    """Let a node that plays no role (a bootstrap) answer discovery's hello."""
    return Channel(node, Identity.generate())

"""uvicorn's h11 protocol with the limits uvicorn lacks, answering in the APIs' JSON shape.

uvicorn bounds the request head's size (`h11_max_incomplete_event_size`) and idle
keep-alive connections (`timeout_keep_alive`, armed only after a response), but neither the
time a client may take to send a request nor the number of open connections in a way that
answers JSON (its `limit_concurrency` answers plain text). So, per connection:

- a request (head and body) must arrive within `request_timeout` seconds of the
  connection opening or of the previous response, else 408 and close: a slow client
  (slowloris) costs one connection for that long, not for ever;
- past `max_connections` open connections, a new one gets 503 and is closed at once;
- a request h11 cannot parse gets 400 in the JSON shape, not uvicorn's plain text.

Each refusal is counted in `cqkd_http_refused_total{api,reason}`. A refused plain-TCP
connection is half-closed after the answer and dropped LINGER_SECONDS later (what HTTP
servers call a lingering close): closing a socket with unread request bytes makes the kernel
send a reset, which can destroy the answer before the client reads it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cqkd.metrics import HTTP_REFUSED

LINGER_SECONDS = 2.0
_REASONS = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}
# h11 states in which the client has sent its whole request (or the connection is over).
_REQUEST_RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


@dataclass(frozen=True)
class ConnectionLimits:
    """`request_timeout` in seconds; `max_connections` open at once per server."""

    api: str
    request_timeout: float = 10.0
    max_connections: int = 256


def refusal(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 response in the error shape, closing the connection."""
    body = json.dumps({"message": message, "details": []}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class LimitedH11Protocol(H11Protocol):
    """Set `limits` on a subclass (ApiServer does) before uvicorn instantiates it."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits(api="unknown")
    _deadline: asyncio.TimerHandle | None = None
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "too many open connections; retry later", "connection_limit")
            return
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:  # after a refusal, late request bytes are read and dropped
            super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_deadline()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "malformed HTTP request", "bad_request")

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        if not self.transport.is_closing():
            self._deadline = self.loop.call_later(
                self.limits.request_timeout, self._deadline_passed
            )

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state in _REQUEST_RECEIVED:
            return  # the application has the request (it may take long: key top-up)
        if self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE and not (
            self.conn.trailing_data[0]
        ):
            # Idle between requests, no byte of a new one: uvicorn's keep-alive timer's case,
            # or a connection that never sent anything. Close without an answer.
            HTTP_REFUSED.labels(api=self.limits.api, reason="idle").inc()
            self.transport.close()
            return
        self._refuse(408, "the request did not arrive in time", "request_timeout")

    def _refuse(self, status: int, message: str, reason: str) -> None:
        HTTP_REFUSED.labels(api=self.limits.api, reason=reason).inc()
        self._disarm_deadline()
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            # The application may wait for the body: it sees a disconnect, as on a close.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        # SEND_RESPONSE: the request head is in but no byte of an answer has left.
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(refusal(status, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:  # TLS: closing reads on until the peer's close_notify
            self.transport.close()

"""A tiny asyncio HTTP/1.1 server for GET /health and GET /metrics.

No framework: a worker must stay small. One request per connection; the request head is
bounded in size and time, so garbage or slow clients cost one short-lived connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from cqkd.logs import event
from cqkd.metrics import exposition

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8192
HEAD_TIMEOUT_SECONDS = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}

Response = tuple[int, str, bytes]


def health_response(report: dict[str, Any]) -> Response:
    status = 200 if report.get("status") == "ok" else 503
    return status, "application/json", json.dumps(report).encode()


def metrics_response() -> Response:
    body, content_type = exposition()
    return 200, content_type, body


class HttpServer:
    """Serves GET `routes` (path -> response factory) on host:port over TCP."""

    def __init__(self, routes: dict[str, Callable[[], Response]], host: str, port: int) -> None:
        self.routes = routes
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_HEAD_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 0.5)

    def _respond(self, head: bytes) -> Response:
        request_line = head.split(b"\r\n", 1)[0].split(b" ")
        if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
            return 400, "text/plain", b"bad request\n"
        method, target = request_line[0], request_line[1].split(b"?", 1)[0]
        route = self.routes.get(target.decode("latin-1"))
        if route is None:
            return 404, "text/plain", b"not found\n"
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        return route()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_SECONDS)
                status, content_type, body = self._respond(head)
            except (
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                TimeoutError,
                ValueError,
            ):
                status, content_type, body = 400, "text/plain", b"bad request\n"
                head = b""
            payload = b"" if head.startswith(b"HEAD ") else body
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT_SECONDS)
        except (ConnectionError, TimeoutError):
            pass
        except Exception as exc:
            event(log, "http_error", logging.WARNING, error=type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


def shared_port(host: str, port: int, attempts: int = 32) -> int:
    """`port`, or when it is 0 a port number free on `host` for both UDP and TCP.

    A node's DHT (UDP) and its /health and /metrics server (TCP) share one number; a number
    the OS picked for the UDP socket alone may be held by a TCP socket (a client
    connection's ephemeral port), and the node then failed to start. Another process can
    still take the number between this check and the node's binds, but only in that
    instant. Raises OSError when `attempts` numbers were all taken."""
    if port:
        return port
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            number = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, number))
                except OSError:
                    continue
                return number
    raise OSError(f"no port number free for both UDP and TCP on {host} in {attempts} tries")

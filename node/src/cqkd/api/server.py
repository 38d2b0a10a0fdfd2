"""One uvicorn server for one app, run inside the caller's event loop.

Alice and Bob each serve two apps (control API, ETSI API) beside their DHT node in one
process, so the servers must not own the loop or the signals: the endpoint starts them,
and stops them on SIGTERM. The socket is bound here, so port 0 works and `port` tells the
port the OS chose.

Limits: at most MAX_HEAD_BYTES of an unfinished request head (h11 counts only what it
cannot parse yet; a complete head arrives in one read, itself bounded), the limits of
connection.py, idle keep-alive connections closed after KEEP_ALIVE_SECONDS. With TLS (ETSI
014, which asks for mutual TLS): the client certificate is required in the
handshake, TLS 1.2 at least, and on TLS 1.2 only AEAD cipher suites with forward secrecy
(TLS 1.3 has no others).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from cqkd.api.auth import ClientCertH11Protocol
from cqkd.api.connection import ConnectionLimits, LimitedH11Protocol

SHUTDOWN_GRACE_SECONDS = 1
MAX_HEAD_BYTES = 8192
KEEP_ALIVE_SECONDS = 5
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path


class HttpServer:
    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        tls: TlsFiles | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        limits = limits or ConnectionLimits(api="etsi014" if tls else "control")
        base: type[LimitedH11Protocol] = LimitedH11Protocol
        options: dict[str, object] = {}
        if tls is not None:
            # CERT_REQUIRED: a client without a certificate of the CA is refused in the
            # handshake, before it can hold a connection open or read any route (/docs too).
            base = ClientCertH11Protocol
            options = {
                "ssl_certfile": str(tls.cert),
                "ssl_keyfile": str(tls.key),
                "ssl_ca_certs": str(tls.ca),
                "ssl_cert_reqs": ssl.CERT_REQUIRED,
                "ssl_ciphers": TLS12_CIPHERS,
            }
        protocol = type(base.__name__, (base,), {"limits": limits})
        self._limits = limits
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            http=protocol,
            **options,  # type: ignore[arg-type]
        )
        self._server = uvicorn.Server(self._config)
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the server is not started")
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind and listen; raises OSError (e.g. port in use) before serving anything."""
        self._config.load()
        if self._config.ssl is not None:
            self._config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._server.lifespan = self._config.lifespan_class(self._config)
        family = socket.AF_INET6 if ":" in self._config.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
        # socket says it is TCP, and without it each keep-alive response waits ~40 ms for
        # the client's delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._config.host, self._config.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        await self._serve(sock)

    async def _serve(self, sock: socket.socket) -> None:
        """uvicorn's `startup(sockets=[sock])` (less what lifespan="off" makes moot) plus
        what it cannot pass on: asyncio's TLS handshake timeout, 60 s by default, so that a
        client that never finishes its handshake is dropped as soon as a slow request is."""
        config, server = self._config, self._server

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=server.server_state,
                app_state=server.lifespan.state,
                _loop=_loop,
            )

        listener = await asyncio.get_running_loop().create_server(
            create_protocol,
            sock=sock,
            ssl=config.ssl,
            backlog=config.backlog,
            ssl_handshake_timeout=self._limits.request_timeout if config.ssl else None,
        )
        server.servers = [listener]
        server.started = True

    async def stop(self) -> None:
        if self._socket is not None and self._server.started:
            await self._server.shutdown(sockets=[self._socket])

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
import contextlib
import socket
import ssl
from collections.abc import Generator
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


class ApiServer:
    """One FastAPI app on host:port, served by uvicorn in the running event loop:
    `start()` binds and listens (OSError, e.g. port in use, before anything is served),
    `stop()` stops accepting, lets open requests finish for SHUTDOWN_GRACE_SECONDS and
    closes every connection."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        tls: TlsFiles | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        limits = limits or ConnectionLimits(api="etsi014" if tls else "control")
        config = _config(app, host, port, tls, limits)
        handshake_timeout = limits.request_timeout if tls is not None else None
        self._server = _EmbeddedServer(config, handshake_timeout)
        self._socket: socket.socket | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the server is not started")
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind and listen; raises OSError (e.g. port in use) before serving anything."""
        config = self._server.config
        config.load()  # serve() loads only a config not loaded yet
        if config.ssl is not None:
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
        # socket says it is TCP, and without it each keep-alive response waits ~40 ms for
        # the client's delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((config.host, config.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        # serve() returns only once stopped: wait for its start-up (or its failure).
        listening = asyncio.create_task(self._server.listening.wait())
        await asyncio.wait({self._serving, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if self._serving.done():
            self._serving.result()
            raise RuntimeError("uvicorn stopped while starting")

    async def stop(self) -> None:
        if self._serving is None:
            if self._socket is not None:
                self._socket.close()
            return
        self._server.should_exit = True
        await self._serving
        self._serving = None


def _config(
    app: FastAPI, host: str, port: int, tls: TlsFiles | None, limits: ConnectionLimits
) -> uvicorn.Config:
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
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        log_level="warning",  # uvicorn's start/stop lines: the endpoint logs its own
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        http=type(base.__name__, (base,), {"limits": limits}),
        **options,  # type: ignore[arg-type]
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's Server, run by its `serve()` inside the caller's event loop, but:

    - it leaves SIGTERM and SIGINT to the process lifecycle (cqkd.lifecycle), which stops
      the DHT node and the engine too: uvicorn would take them for itself while it serves;
    - with `handshake_timeout`, a TLS client that does not finish its handshake in that many
      seconds is dropped, as a slow request is (connection.py); asyncio's default is 60 s.
      uvicorn has no option for it, and the connection reaches the HTTP protocol only once
      the handshake is over, so no protocol or SSL-context hook can see such a client. The
      one way is asyncio's `create_server(ssl_handshake_timeout=...)`, which uvicorn calls
      in `startup()` without it: `startup` below creates that listener itself, with the
      protocol factory uvicorn's own `startup` uses. This is the one private dependency on
      uvicorn (the protocol's constructor arguments and `lifespan.state`); checked by
      tests/api/test_slow_clients.py and test_etsi_tls.py.
    """

    def __init__(self, config: uvicorn.Config, handshake_timeout: float | None) -> None:
        super().__init__(config)
        self.handshake_timeout = handshake_timeout
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.handshake_timeout is None or not sockets:
            await super().startup(sockets=sockets)
            self.listening.set()
            return
        await super().startup(sockets=[])  # lifespan, state; no listener
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        loop = asyncio.get_running_loop()
        for sock in sockets:
            self.servers.append(await loop.create_server(
                create_protocol,
                sock=sock,
                ssl=config.ssl,
                backlog=config.backlog,
                ssl_handshake_timeout=self.handshake_timeout,
            ))
        self.listening.set()

"""One uvicorn server for one app, run inside the caller's event loop.

Alice and Bob each serve two apps (control API, ETSI API) beside their DHT node in one
process, so the servers must not own the loop or the signals: the endpoint starts them,
and stops them on SIGTERM. The socket is bound here, so port 0 works and `port` tells the
port the OS chose.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from cqkd.api.auth import ClientCertH11Protocol

SHUTDOWN_GRACE_SECONDS = 1


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path


class HttpServer:
    def __init__(self, app: FastAPI, host: str, port: int, tls: TlsFiles | None = None) -> None:
        options: dict[str, object] = {"http": "h11"}
        if tls is not None:
            # CERT_OPTIONAL, not CERT_REQUIRED: a certificate that is presented must still
            # verify against the CA, and a client without one gets a 401 saying so (every
            # ETSI route requires it) instead of an opaque TLS alert.
            options = {
                "ssl_certfile": str(tls.cert),
                "ssl_keyfile": str(tls.key),
                "ssl_ca_certs": str(tls.ca),
                "ssl_cert_reqs": ssl.CERT_OPTIONAL,
                "http": ClientCertH11Protocol,
            }
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
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
        self._server.lifespan = self._config.lifespan_class(self._config)
        family = socket.AF_INET6 if ":" in self._config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._config.host, self._config.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        await self._server.startup(sockets=[sock])

    async def stop(self) -> None:
        if self._socket is not None and self._server.started:
            await self._server.shutdown(sockets=[self._socket])

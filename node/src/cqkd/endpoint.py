"""One Alice or Bob process: a DHT node, the engine's Alice or Bob, and their two HTTP APIs.

    cqkd alice   # DHT on UDP 6000, control API on 8001, ETSI 014 on 8443 (mutual TLS)
    cqkd bob     # DHT on UDP 6001, control API on 8002, ETSI 014 on 8444

The control API speaks plain HTTP and carries the bearer token and keys, so it binds
CONTROL_HOST (loopback by default); the ETSI API (mutual TLS) binds DHT_HOST. Like every
other node, Alice and Bob also serve GET /health and GET /metrics on DHT_HOST at their DHT
port number over TCP, which is what Prometheus scrapes from other hosts.

Everything runs in one event loop; SIGTERM or SIGINT stops the APIs, then the engine,
then the node. `EndpointApis` is the part `cqkd local --serve` (cqkd.sim.serve) reuses for
the Alice and Bob of an in-process network.
"""


from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from cqkd.api.auth import read_token
from cqkd.api.connection import ConnectionLimits
from cqkd.api.control import ControlConfig, create_control_app
from cqkd.api.etsi import EtsiConfig, create_etsi_app, key_pool
from cqkd.api.server import ApiServer, TlsFiles
from cqkd.dht.config import DhtConfig
from cqkd.dht.node import DhtNode
from cqkd.httpd import HttpServer, Response, health_response, metrics_response, shared_port
from cqkd.lifecycle import Lifecycle
from cqkd.logs import event
from cqkd.ports import DEFAULT_PORTS, Role, role_settings
from cqkd.qkd.alice import Alice
from cqkd.qkd.bob import Bob
from cqkd.qkd.crypto import Identity
from cqkd.qkd.keystore import KeyStore
from cqkd.qkd.pool import KeyPool
from cqkd.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def tls_files(settings: Settings) -> TlsFiles | None:
    """The ETSI server's TLS files: all three, or none (then ETSI 014 is not served)."""
    named = {
        "TLS_CERT_FILE": settings.tls_cert_file,
        "TLS_KEY_FILE": settings.tls_key_file,
        "TLS_CA_FILE": settings.tls_ca_file,
    }
    given = {name: path for name, path in named.items() if path is not None}
    if not given:
        return None
    if len(given) < len(named):
        raise SettingsError(
            "ETSI 014 needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE together (or none of "
            "them, to serve no ETSI API)"
        )
    for name, path in given.items():
        if not path.is_file():
            raise SettingsError(f"{name} {path} is not a readable file")
    return TlsFiles(cert=given["TLS_CERT_FILE"], key=given["TLS_KEY_FILE"], ca=given["TLS_CA_FILE"])


def etsi_config(settings: Settings, role: Role) -> EtsiConfig:
    kmes = (settings.alice_kme_id, settings.bob_kme_id)
    # Half the store at most, so that the pool never crowds out other consumers' keys.
    high = min(settings.key_pool_high, settings.key_store_max_keys // 2)
    own, peer = kmes if role == "alice" else kmes[::-1]
    try:
        return EtsiConfig(
            role=role,
            kme_id=own,
            peer_kme_id=peer,
            master_sae_id=settings.master_sae_id,
            slave_sae_id=settings.slave_sae_id,
            key_size=settings.etsi_key_size,
            min_key_size=min(settings.etsi_key_size, 64),
            max_key_size=settings.max_key_bits,
            max_key_per_request=settings.etsi_max_keys_per_request,
            topup_timeout_seconds=settings.etsi_topup_timeout,
            pool_low=min(settings.key_pool_low, high),
            pool_high=high,
        )
    except ValueError as exc:
        raise SettingsError(f"ETSI_KEY_SIZE / MAX_KEY_BITS: {exc}") from None


def _control_config(settings: Settings, role: Role, node_id: str) -> ControlConfig:
    try:
        token = read_token(
            settings.api_token.get_secret_value() if settings.api_token else None,
            settings.api_token_file,
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return ControlConfig(role=role, token=token, node_id=node_id,
                         max_key_bits=settings.max_key_bits)


def _limits(settings: Settings, api: str) -> ConnectionLimits:
    return ConnectionLimits(
        api=api,
        request_timeout=settings.api_request_timeout,
        max_connections=settings.api_max_connections,
    )


class EndpointApis:
    """Alice's or Bob's control API and, with TLS files, ETSI 014 API, on `host`."""

    def __init__(
        self,
        role: Role,
        party: Any,
        keystore: KeyStore,
        settings: Settings,
        *,
        node_id: str,
        host: str,
        http_port: int,
        etsi_port: int,
        tls: TlsFiles | None,
        control_host: str | None = None,
    ) -> None:
        """`host` for the ETSI API, `control_host` (default: `host`) for the control API."""
        self.role = role
        self.control = ApiServer(
            create_control_app(_control_config(settings, role, node_id), party, keystore),
            control_host or host,
            http_port,
            limits=_limits(settings, "control"),
        )
        self.etsi: ApiServer | None = None
        self.pool: KeyPool | None = None
        if tls is not None:
            config = etsi_config(settings, role)
            if role == "alice":
                self.pool = key_pool(
                    config,
                    keystore,
                    party,
                    settings.active_sessions,
                    lambda: bool(party.network_status()["converged"]),
                )
            app = create_etsi_app(
                config, keystore, party if role == "alice" else None, self.pool
            )
            self.etsi = ApiServer(app, host, etsi_port, tls, _limits(settings, "etsi014"))

    async def start(self) -> None:
        await self.control.start()
        event(log, "http_listening", role=self.role, api="control", port=self.control.port)
        if self.etsi is None:
            event(
                log,
                "etsi_disabled",
                logging.WARNING,
                role=self.role,
                reason="no TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE",
            )
            return
        await self.etsi.start()
        event(log, "http_listening", role=self.role, api="etsi014", port=self.etsi.port)
        if self.pool is not None:
            self.pool.start()

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.stop()
        servers = [self.control] + ([self.etsi] if self.etsi is not None else [])
        await asyncio.gather(*(server.stop() for server in servers))


async def run_endpoint(settings: Settings, role: Role) -> None:
    """Run Alice or Bob until SIGTERM or SIGINT; errors propagate (exit non-zero)."""
    settings, identity = _endpoint_settings(settings, role)
    tls = tls_files(settings)
    async with Lifecycle(role) as process:
        keystore = KeyStore(settings.key_store_max_keys)
        config = DhtConfig(**settings.dht_options())
        # /health and /metrics at the DHT's port number (TCP), as on every node.
        node = DhtNode(dataclasses.replace(config, port=shared_port(config.host, config.port)),
                       role)
        party: Any
        if role == "alice":
            assert settings.bob_address is not None
            party = Alice(node, identity, keystore, settings, settings.bob_address)
        else:
            party = Bob(node, identity, keystore, settings)
        apis = EndpointApis(
            role,
            party,
            keystore,
            settings,
            node_id=node.node_id.hex(),
            host=settings.dht_host,
            http_port=settings.effective_http_port,
            etsi_port=settings.etsi_port or DEFAULT_PORTS[role].etsi,
            tls=tls,
            control_host=settings.control_host,
        )
        await process.start(node)
        # The engine stops after the APIs that drive it, whether or not it got to start.
        process.on_stop(party.stop)
        status = await process.start(_status_server(settings, role, node))
        event(log, "http_listening", role=role, api="status", port=status.port)
        await process.start(apis)
        if await process.until_stopped(node.join(settings.bootstrap_nodes)):
            event(log, "joined", role=role, routing_table_size=node.routing_table_size)
            await party.start()
            await process.stopped()


def _endpoint_settings(settings: Settings, role: Role) -> tuple[Settings, Identity]:
    """`role`'s settings, checked for what Alice or Bob cannot run without, and its owner
    identity; the admission key file's public key joins ADMISSION_KEYS. SettingsError
    says which setting is missing."""
    settings = role_settings(settings, role)
    if not settings.bootstrap_nodes:
        raise SettingsError(f"BOOTSTRAP_NODES is empty: {role} needs host:port of a bootstrap")
    if role == "alice" and settings.bob_address is None:
        raise SettingsError("BOB_ADDRESS is empty: Alice needs host:port of Bob's DHT node")
    if settings.owner_key_file is None:
        raise SettingsError(f"OWNER_KEY_FILE is empty: {role} signs commands with its key")
    if not settings.trusted_owners:
        raise SettingsError(
            f"TRUSTED_OWNERS is empty: {role} talks only to the other side's public key, "
            "so list Alice's and Bob's (64 hex digits each, comma-separated)"
        )
    identity = Identity.from_file(settings.owner_key_file)
    if settings.admission_key_file is not None:  # the deployment's key: admit what it signs
        try:
            authority = Identity.from_file(settings.admission_key_file)
        except ValueError as exc:
            raise SettingsError(f"ADMISSION_KEY_FILE: {exc}") from None
        settings = settings.model_copy(update={
            "admission_keys": [*settings.admission_keys, authority.public_key.hex()]})
    if not settings.admission_keys:
        raise SettingsError(
            f"ADMISSION_KEYS and ADMISSION_KEY_FILE are empty: {role} gives roles only to "
            "workers the deployment admitted, so give it the admission key (or its public key)"
        )
    return settings, identity


def _status_server(settings: Settings, role: Role, node: DhtNode) -> HttpServer:
    """GET /health and /metrics on DHT_HOST at the DHT port number, as on every node."""
    started = time.monotonic()

    def health() -> Response:
        return health_response(
            {
                "status": "ok",
                "role": role,
                "node_id": node.node_id.hex(),
                "routing_table_size": node.routing_table_size,
                "uptime_seconds": round(time.monotonic() - started, 3),
            }
        )

    routes = {"/health": health, "/metrics": metrics_response}
    return HttpServer(routes, settings.dht_host, node.address[1])

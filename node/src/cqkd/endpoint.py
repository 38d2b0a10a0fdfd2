"""One Alice or Bob process: a DHT node, the engine's Alice or Bob, and their two HTTP APIs.

    cqkd alice   # DHT on UDP 6000, control API on 8001, ETSI 014 on 8443 (mutual TLS)
    cqkd bob     # DHT on UDP 6001, control API on 8002, ETSI 014 on 8444

Everything runs in one event loop; SIGTERM or SIGINT stops the APIs, then the engine,
then the node. `EndpointApis` is the part `cqkd local --serve` reuses for the Alice and Bob
of an in-process network.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from cqkd.api.auth import read_token
from cqkd.api.control import ControlConfig, create_control_app
from cqkd.api.etsi import EtsiConfig, create_etsi_app
from cqkd.api.server import HttpServer, TlsFiles
from cqkd.logs import event
from cqkd.ports import DEFAULT_PORTS, Role, role_settings
from cqkd.qkd.keystore import KeyStore
from cqkd.settings import Settings, SettingsError

log = logging.getLogger(__name__)

WORKER_REFRESH_UNTIL_CONVERGED_SECONDS = 2.0
WORKER_REFRESH_SECONDS = 30.0


def tls_files(settings: Settings) -> TlsFiles | None:
    """The ETSI server's TLS files: all three, or none (then ETSI 014 is not served)."""
    paths = (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
    if all(path is None for path in paths):
        return None
    if any(path is None for path in paths):
        raise SettingsError(
            "ETSI 014 needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE together (or none of "
            "them, to serve no ETSI API)"
        )
    for name, path in zip(("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"), paths, strict=True):
        assert path is not None
        if not path.is_file():
            raise SettingsError(f"{name} {path} is not a readable file")
    cert, key, ca = paths
    assert cert is not None and key is not None and ca is not None
    return TlsFiles(cert=cert, key=key, ca=ca)


def etsi_config(settings: Settings, role: Role) -> EtsiConfig:
    kmes = (settings.alice_kme_id, settings.bob_kme_id)
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
            max_key_size=settings.max_key_bits - settings.max_key_bits % 8,
            max_key_per_request=settings.etsi_max_keys_per_request,
            topup_timeout_seconds=settings.etsi_topup_timeout,
        )
    except ValueError as exc:
        raise SettingsError(f"ETSI_KEY_SIZE / MAX_KEY_BITS: {exc}") from None


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
    ) -> None:
        token = read_token(
            settings.api_token.get_secret_value() if settings.api_token else None,
            settings.api_token_file,
        )
        control = ControlConfig(
            role=role,
            token=token,
            node_id=node_id,
            max_key_bits=settings.max_key_bits,
            max_running_sessions=settings.max_running_sessions,
        )
        self.control = HttpServer(create_control_app(control, party, keystore), host, http_port)
        self.etsi: HttpServer | None = None
        if tls is not None:
            app = create_etsi_app(
                etsi_config(settings, role), keystore, party if role == "alice" else None
            )
            self.etsi = HttpServer(app, host, etsi_port, tls)
        self.role = role

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

    async def stop(self) -> None:
        servers = [self.control] + ([self.etsi] if self.etsi is not None else [])
        await asyncio.gather(*(server.stop() for server in servers))


async def run_endpoint(settings: Settings, role: Role) -> None:
    """Run Alice or Bob until SIGTERM or SIGINT; errors propagate (exit non-zero)."""
    from cqkd.dht.node import DhtNode
    from cqkd.qkd.alice import Alice
    from cqkd.qkd.bob import Bob
    from cqkd.qkd.crypto import Identity

    settings = role_settings(settings, role)
    if not settings.bootstrap_nodes:
        raise SettingsError(f"BOOTSTRAP_NODES is empty: {role} needs host:port of a bootstrap")
    bob_address = settings.bob_address
    if role == "alice" and bob_address is None:
        raise SettingsError("BOB_ADDRESS is empty: Alice needs host:port of Bob's DHT node")
    if settings.owner_key_file is None:
        raise SettingsError(f"OWNER_KEY_FILE is empty: {role} signs commands with its key")
    identity = Identity.from_file(settings.owner_key_file)
    tls = tls_files(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    keystore = KeyStore(settings.key_store_max_keys)
    node = DhtNode(settings, role)
    party: Any
    if role == "alice":
        assert bob_address is not None
        party = Alice(node, identity, keystore, settings, bob_address)
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
    )
    await node.start()
    tasks: list[asyncio.Task[Any]] = []
    try:
        await apis.start()
        joining = asyncio.create_task(node.join(settings.bootstrap_nodes))
        stopping = asyncio.create_task(stop.wait())
        tasks += [joining, stopping]
        await asyncio.wait({joining, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if joining.done():
            joining.result()
            event(log, "joined", role=role, routing_table_size=node.routing_table_size)
            await party.start()
            tasks.append(asyncio.create_task(_follow_workers(party)))
            await stopping
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await apis.stop()
        await party.stop()
        await node.stop()
    event(log, "stopped", role=role)


async def _follow_workers(party: Any) -> None:
    """Keep the engine's view of live workers fresh, so /ready and /network-status follow
    the network: deployments start Alice and Bob before the workers."""
    while True:
        await party.directory.workers(refresh=True)
        converged = bool(party.network_status().get("converged"))
        await asyncio.sleep(
            WORKER_REFRESH_SECONDS if converged else WORKER_REFRESH_UNTIL_CONVERGED_SECONDS
        )

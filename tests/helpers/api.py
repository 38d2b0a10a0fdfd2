"""Alice's and Bob's APIs on loopback over an in-process network: a throwaway PKI, the
two sides' servers, clients.

Real parts only: real UDP DHT nodes and workers, the real engine, uvicorn on OS-assigned
ports, TLS with a throwaway CA, and httpx as the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cqkd.endpoint import EndpointApis
from cqkd.qkd.keystore import KeyStore
from cqkd.settings import Settings, load_settings
from cqkd.sim.pki import LocalPki, create_local_pki

from helpers.network import protocol_network
from helpers.ports import LOOPBACK
from helpers.tls import sae_context

TOKEN = "test-token-0123456789abcdef"
MASTER_SAE, SLAVE_SAE = "sae-master-1", "sae-slave-1"
KME_IDS = {"alice_kme_id": "kme-alice", "bob_kme_id": "kme-bob"}
WORKERS = 15


def make_pki(directory: Path) -> LocalPki:
    return create_local_pki(
        directory,
        alice_kme_id=KME_IDS["alice_kme_id"],
        bob_kme_id=KME_IDS["bob_kme_id"],
        master_sae_id=MASTER_SAE,
        slave_sae_id=SLAVE_SAE,
    )


@dataclass
class Deployment:
    """What the tests reach: the two sides' URLs, their key stores, the PKI."""

    pki: LocalPki
    apis: dict[str, EndpointApis]
    stores: dict[str, KeyStore]
    parties: dict[str, Any]
    token: str = TOKEN
    master_sae: str = MASTER_SAE
    slave_sae: str = SLAVE_SAE

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def enc_keys(self) -> str:
        return f"/api/v1/keys/{self.slave_sae}/enc_keys"

    @property
    def dec_keys(self) -> str:
        return f"/api/v1/keys/{self.master_sae}/dec_keys"

    def control_url(self, side: str) -> str:
        return f"http://{LOOPBACK}:{self.apis[side].control.port}"

    def etsi_url(self, side: str) -> str:
        server = self.apis[side].etsi
        assert server is not None
        return f"https://{LOOPBACK}:{server.port}"

    def control(self, side: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.control_url(side), timeout=30)

    def etsi(self, side: str, sae: str | None) -> httpx.AsyncClient:
        """A client of `side`'s ETSI API as the master or slave SAE, or with no certificate."""
        server = self.apis[side].etsi
        assert server is not None
        return self.etsi_client(server.port, sae)

    def etsi_client(self, port: int, sae: str | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"https://{LOOPBACK}:{port}", verify=sae_context(self.pki, sae), timeout=60
        )


def api_settings(pki: LocalPki, side: str, **overrides: Any) -> Settings:
    pair = pki.alice if side == "alice" else pki.bob
    return load_settings(
        api_token=TOKEN,
        tls_cert_file=str(pair.cert),
        tls_key_file=str(pair.key),
        tls_ca_file=str(pki.ca),
        master_sae_id=MASTER_SAE,
        slave_sae_id=SLAVE_SAE,
        **KME_IDS,
        **overrides,
    )


@contextlib.asynccontextmanager
async def serve_apis(
    pki: LocalPki, side: str, party: Any, store: KeyStore, node_id: str, **overrides: Any
) -> AsyncIterator[EndpointApis]:
    """Alice's or Bob's two APIs on OS-assigned loopback ports."""
    settings = api_settings(pki, side, **overrides)
    apis = EndpointApis(
        side,  # type: ignore[arg-type]
        party,
        store,
        settings,
        node_id=node_id,
        host=LOOPBACK,
        http_port=0,
        etsi_port=0,
        tls=_tls(pki, side),
    )
    await apis.start()
    try:
        yield apis
    finally:
        await apis.stop()


def _tls(pki: LocalPki, side: str) -> Any:
    from cqkd.api.server import TlsFiles

    pair = pki.alice if side == "alice" else pki.bob
    return TlsFiles(cert=pair.cert, key=pair.key, ca=pki.ca)


@contextlib.asynccontextmanager
async def alice_apis(deployment: Deployment, **overrides: Any) -> AsyncIterator[EndpointApis]:
    """A second pair of Alice's APIs over `deployment`'s Alice, with settings `overrides`."""
    alice = deployment.parties["alice"]
    async with serve_apis(
        deployment.pki, "alice", alice, deployment.stores["alice"], alice.node.node_id.hex(),
        **overrides,
    ) as apis:
        yield apis


async def converged(*parties: Any, seconds: float) -> None:
    """Until every party sees all the workers (as a deployment waits for /ready), or
    `seconds`: then the readiness test fails and says why, and the others still run."""
    deadline = asyncio.get_running_loop().time() + seconds
    # The engine announces no event for this; its status is what /ready reads too.
    while not all(party.network_status()["converged"] for party in parties):
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def api_network(
    pki: LocalPki, converge_seconds: float | None = None, **overrides: Any
) -> AsyncIterator[Deployment]:
    """WORKERS workers, Alice and Bob, and both sides' APIs (settings `overrides`); with
    `converge_seconds`, first waits (at most that long) until both sides see every worker."""
    settings = load_settings(**KME_IDS)
    async with protocol_network(settings, WORKERS) as (_, protocol):
        if converge_seconds is not None:
            await converged(protocol.alice, protocol.bob, seconds=converge_seconds)
        parties: dict[str, Any] = {"alice": protocol.alice, "bob": protocol.bob}
        stores = {"alice": protocol.alice_keys, "bob": protocol.bob_keys}
        async with contextlib.AsyncExitStack() as stack:
            apis = {
                side: await stack.enter_async_context(
                    serve_apis(
                        pki, side, parties[side], stores[side], parties[side].node.node_id.hex(),
                        **overrides,
                    )
                )
                for side in ("alice", "bob")
            }
            yield Deployment(pki, apis, stores, parties)

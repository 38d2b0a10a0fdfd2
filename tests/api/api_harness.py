"""What the API tests share: a throwaway PKI, Alice's and Bob's APIs on loopback, clients.

Real parts only: real UDP DHT nodes and workers, the real engine, uvicorn on OS-assigned
ports, TLS with a throwaway CA, and httpx as the client. (A module of its own, not
conftest.py, so that test modules can import it unambiguously.)
"""

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cqkd.endpoint import EndpointApis
from cqkd.qkd.keystore import KeyStore
from cqkd.settings import Settings, load_settings
from cqkd.sim.pki import LocalPki, create_local_pki

TOKEN = "test-token-0123456789abcdef"
MASTER_SAE, SLAVE_SAE = "sae-master-1", "sae-slave-1"
KME_IDS = {"alice_kme_id": "kme-alice", "bob_kme_id": "kme-bob"}
WORKERS = 15
LOOPBACK = "127.0.0.1"


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
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if sae is not None:
            pair = self.pki.master_sae if sae == "master" else self.pki.slave_sae
            context.load_cert_chain(str(pair.cert), str(pair.key))
        return httpx.AsyncClient(base_url=f"https://{LOOPBACK}:{port}", verify=context, timeout=60)


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

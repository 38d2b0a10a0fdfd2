"""ETSI 014's TLS: SAE certificates need the clientAuth EKU on every route (documentation
too), and TLS 1.2 offers only AEAD suites."""

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cqkd.sim.pki import CertPair, LocalPki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from helpers.api import KME_IDS, MASTER_SAE, SLAVE_SAE, Deployment, serve_apis
from helpers.tls import client_context

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

ROUTES = ["/api/v1/keys/{slave}/status", "/docs", "/openapi.json"]


class Ca:
    """A CA of the test's own, to issue certificates pki.py never makes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / "ca.crt"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(
        self, subject: x509.Name, key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(
        self, cn: str, usages: list[x509.ObjectIdentifier] | None, server: bool, stem: str = ""
    ) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]), key.public_key()
        )
        if usages is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        stem = stem or cn
        pair = CertPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        pair.cert.write_bytes(
            builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pair


def client(ca: Ca, pair: CertPair, port: int) -> httpx.AsyncClient:
    context = client_context(ca.path, pair.cert, pair.key)
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=30)


async def test_sae_certificate_needs_client_auth_on_every_route(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A certificate without any EKU passes OpenSSL's client check (one whose EKU lacks
    clientAuth does not): the server must refuse it itself."""
    ca = Ca(tmp_path)
    server = ca.issue(KME_IDS["alice_kme_id"], [ExtendedKeyUsageOID.SERVER_AUTH], server=True)
    fit = ca.issue(MASTER_SAE, [ExtendedKeyUsageOID.CLIENT_AUTH], server=False)
    # The unfit certificate names the master SAE too: only its key usage differs.
    unfit = ca.issue(MASTER_SAE, None, server=False, stem="unfit")
    pki = LocalPki(ca=ca.path, alice=server, bob=server, master_sae=fit, slave_sae=fit)
    alice = deployment.parties["alice"]
    async with serve_apis(
        pki, "alice", alice, deployment.stores["alice"], alice.node.node_id.hex()
    ) as apis:
        assert apis.etsi is not None
        async with client(ca, fit, apis.etsi.port) as good:
            for route in ROUTES:
                response = await good.get(route.format(slave=SLAVE_SAE))
                assert response.status_code == 200, (route, response.text)
        async with client(ca, unfit, apis.etsi.port) as bad:
            for route in ROUTES:
                response = await bad.get(route.format(slave=SLAVE_SAE))
                assert response.status_code == 401, (route, response.text)
                assert "clientAuth" in response.json()["message"]


def tls12_context(deployment: Deployment, ciphers: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(deployment.pki.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    pair = deployment.pki.master_sae
    context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


async def test_tls12_offers_only_aead_suites(deployment: Deployment) -> None:
    url = deployment.etsi_url("alice") + "/docs"
    aead = tls12_context(deployment, "ECDHE-ECDSA-AES128-GCM-SHA256")
    async with httpx.AsyncClient(verify=aead) as good:
        assert (await good.get(url)).status_code == 200
    for suite in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA"):
        cbc = tls12_context(deployment, suite)
        async with httpx.AsyncClient(verify=cbc) as bad:
            with pytest.raises(httpx.ConnectError):
                await bad.get(url)

"""TLS client contexts for the ETSI GS QKD 014 APIs (mutual TLS with SAE certificates)."""

from __future__ import annotations

import ssl
from pathlib import Path

from cqkd.sim.pki import LocalPki


def client_context(
    ca: str | Path, cert: str | Path | None, key: str | Path | None
) -> ssl.SSLContext:
    """Trusts `ca`; presents `cert` with `key` when given (a client without a certificate
    otherwise)."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key is not None else None)
    return context


def sae_context(pki: LocalPki, sae: str | None) -> ssl.SSLContext:
    """As the "master" or "slave" SAE of `pki`, or (None) with no client certificate."""
    if sae is None:
        return client_context(pki.ca, None, None)
    pair = pki.master_sae if sae == "master" else pki.slave_sae
    return client_context(pki.ca, pair.cert, pair.key)

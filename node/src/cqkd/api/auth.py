"""Who may call: a bearer token for the control API, a client certificate for ETSI 014.

The token is compared in constant time and never logged or echoed. The SAE calling the
ETSI API is the common name of its client certificate, which TLS has already verified
against the deployment's CA (the handshake requires one). The certificate must also carry
the clientAuth extended key usage (RFC 5280 4.2.1.12): OpenSSL accepts a client
certificate without any EKU, which would let a KME's server certificate act as an SAE.
uvicorn does not put the peer certificate in the ASGI scope, so a small subclass of its
HTTP protocol copies the verified common name, or why it is refused, into the
per-connection state that every request of that connection sees; `RequireSae` answers 401
on every route (documentation included) of a connection without an SAE.
"""

import asyncio
import hmac
import ssl
from pathlib import Path
from typing import Annotated, Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from cqkd.api.connection import LimitedH11Protocol
from cqkd.api.errors import ApiError, error_response

MIN_TOKEN_CHARS = 16
SAE_STATE_KEY = "client_certificate_cn"
REFUSAL_STATE_KEY = "client_certificate_refusal"
NO_CERTIFICATE = "a client certificate signed by the deployment's CA is required"


def read_token(token: str | None, token_file: Path | None) -> str:
    """The API token from API_TOKEN_FILE (preferred) or API_TOKEN; raises ValueError."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(
                f"API_TOKEN_FILE {token_file} cannot be read: {exc.strerror}"
            ) from None
    if not token:
        raise ValueError("an API token is required: set API_TOKEN_FILE or API_TOKEN")
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the API token must have at least {MIN_TOKEN_CHARS} characters")
    return token


def bearer_token_guard(expected: str) -> Any:
    """A FastAPI dependency that admits only `Authorization: Bearer <expected>`."""
    expected_bytes = expected.encode()
    scheme = HTTPBearer(auto_error=False, description="the deployment's API token")

    async def guard(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise ApiError(
                401, "missing bearer token: send 'Authorization: Bearer <token>'", headers=challenge
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected_bytes):
            raise ApiError(401, "invalid bearer token", headers=challenge)

    return guard


def sae_identity(der: bytes | None) -> tuple[str | None, str | None]:
    """(common name, None) for a verified certificate fit for an SAE, else (None, why)."""
    if not der:
        return None, NO_CERTIFICATE
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        return None, "the client certificate cannot be read"
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return None, "the client certificate must have the clientAuth extended key usage"
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None, "the client certificate has no common name (the SAE_ID)"
    return str(names[0].value), None


class ClientCertH11Protocol(LimitedH11Protocol):
    """The limited h11 protocol, plus the SAE of the verified client certificate."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        sae_id, refusal = sae_identity(der)
        self.app_state = {**self.app_state, SAE_STATE_KEY: sae_id, REFUSAL_STATE_KEY: refusal}
        super().connection_made(transport)


class RequireSae:
    """ASGI middleware: 401 for every request of a connection without an SAE certificate."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        if scope["type"] == "http" and not state.get(SAE_STATE_KEY):
            refusal = state.get(REFUSAL_STATE_KEY) or NO_CERTIFICATE
            await error_response(401, refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def client_sae_id(request: Request) -> str:
    """The calling SAE's ID (its certificate's CN); 401 when it sent no fit certificate."""
    sae_id = getattr(request.state, SAE_STATE_KEY, None)
    if not sae_id:
        refusal = getattr(request.state, REFUSAL_STATE_KEY, None)
        raise ApiError(401, refusal or NO_CERTIFICATE)
    return str(sae_id)

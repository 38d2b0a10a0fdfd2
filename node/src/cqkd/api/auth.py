"""Who may call: a bearer token for the control API, a client certificate for ETSI 014.

The token is compared in constant time and never logged or echoed. The SAE calling the
ETSI API is the common name of its client certificate, which TLS has already verified
against the deployment's CA; uvicorn does not put the peer certificate in the ASGI scope,
so a small subclass of its HTTP protocol copies the verified common name into the
per-connection state that every request of that connection sees.
"""

import asyncio
import hmac
import ssl
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from uvicorn.protocols.http.h11_impl import H11Protocol

from cqkd.api.errors import ApiError

MIN_TOKEN_CHARS = 16
SAE_STATE_KEY = "client_certificate_cn"


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


def _common_name(certificate: dict[str, Any]) -> str | None:
    for rdn in certificate.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the verified client certificate's CN in request.state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        common_name = _common_name(certificate) if certificate else None
        self.app_state = {**self.app_state, SAE_STATE_KEY: common_name}


async def client_sae_id(request: Request) -> str:
    """The calling SAE's ID (its certificate's CN); 401 when it sent no certificate."""
    sae_id = getattr(request.state, SAE_STATE_KEY, None)
    if not sae_id:
        raise ApiError(401, "a client certificate signed by the deployment's CA is required")
    return str(sae_id)

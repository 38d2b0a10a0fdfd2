"""The control API of Alice (port 8001) and Bob (port 8002).

Open: /health, /ready, /metrics, /network-status, /docs. Behind the bearer token:
POST /generate-key (Alice), GET /sessions/{process_id}, GET /keys/{key_ID} (hands a
confirmed key out once, base64). Sessions run in the background: /generate-key answers 202
at once with the process_id and the URL to follow.

Every handler is `async`: FastAPI runs plain functions in a thread pool, and the engine
(and its event loop) must only be touched from the loop it runs on.
"""

import base64
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, cast

from fastapi import Depends, FastAPI, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator

from cqkd import __version__
from cqkd.api.auth import bearer_token_guard
from cqkd.api.errors import ApiError, ErrorBody, install_error_handlers
from cqkd.api.limits import BodySizeLimit
from cqkd.logs import event
from cqkd.metrics import exposition
from cqkd.ports import Role
from cqkd.qkd.keystore import CONTROL, KeyElsewhere, KeyStore
from cqkd.qkd.lengths import KEY_BITS_MULTIPLE, check_key_bits
from cqkd.qkd.session import SessionView, TooManySessions

log = logging.getLogger(__name__)

PROCESS_ID_PATTERN = r"^[0-9a-f]{32}$"


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A JSON integer, as JSON Schema counts them: 3.0 is 3; "3", true and 3.5 are refused.
JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]


class Party(Protocol):
    """Alice or Bob from the engine, as far as the control API uses them."""

    def session(self, process_id: str) -> Any: ...
    def network_status(self) -> dict[str, Any]: ...


class KeyRequester(Party, Protocol):
    """Alice: she alone starts sessions."""

    def begin_session(self, key_bits: int, consumer: str) -> str: ...
    async def run_session(self, key_bits: int, consumer: str) -> Any: ...


@dataclass(frozen=True)
class ControlConfig:
    role: Role
    token: str
    node_id: str
    max_key_bits: int = 16384


class GenerateKeyAccepted(BaseModel):
    process_id: str
    status_url: str


class DeliveredKey(BaseModel):
    key_ID: str
    key: str = Field(description="the key, base64")
    size: int = Field(description="the key's size in bits (whole bytes)")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 405, 413, 415, 422, 429, 503)
}


def create_control_app(
    config: ControlConfig,
    party: Party,
    keystore: KeyStore,
) -> FastAPI:
    """The control app of `config.role`; `party` is the engine's Alice or Bob."""
    app = FastAPI(
        title=f"CQKD {config.role.capitalize()} control API",
        version=__version__,
        description="Key sessions over the CQKD DHT. Key material needs the bearer token.",
        responses=ERRORS,
    )
    install_error_handlers(app, validation_status=422)
    app.add_middleware(BodySizeLimit)
    guarded = [Depends(bearer_token_guard(config.token))]
    _add_status_routes(app, config, party)
    _add_key_routes(app, party, keystore, guarded)
    if config.role == "alice":
        _add_generate_key(app, config, cast(KeyRequester, party), keystore, guarded)
    return app


def _add_status_routes(app: FastAPI, config: ControlConfig, party: Party) -> None:
    """Open routes: liveness, readiness, the network's state, the metrics."""
    started = time.monotonic()

    @app.get("/health", tags=["status"])
    async def health() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {
            "status": "ok",
            "role": config.role,
            "node_id": config.node_id,
            "uptime_seconds": round(time.monotonic() - started, 3),
        }

    @app.get("/ready", tags=["status"])
    async def ready() -> JSONResponse:
        """Readiness: joined the DHT and found enough live workers for a session."""
        network = party.network_status()
        is_ready = bool(network.get("converged"))
        body = {"ready": is_ready, "role": config.role}
        return JSONResponse(body, status_code=200 if is_ready else 503)

    @app.get("/network-status", tags=["status"])
    async def network_status() -> dict[str, Any]:
        """Routing table summary and whether discovery converged."""
        return {"role": config.role, **party.network_status()}

    @app.get("/metrics", tags=["status"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        body, content_type = exposition()
        return Response(body, media_type=content_type)


def _add_key_routes(app: FastAPI, party: Party, keystore: KeyStore, guarded: list[Any]) -> None:
    """Behind the bearer token: a session's view, a confirmed key (once)."""

    @app.get("/sessions/{process_id}", tags=["keys"], dependencies=guarded)
    async def session(
        process_id: Annotated[
            str, Path(pattern=PROCESS_ID_PATTERN, description="32 lowercase hex digits")
        ],
    ) -> SessionView:
        """A session's status, lengths, QBER, duration, outcome and key_ID (never the key)."""
        view = party.session(process_id)
        if view is None:
            raise ApiError(404, "no session with this process_id")
        return view

    @app.get("/keys/{key_ID}", tags=["keys"], dependencies=guarded)
    async def deliver_key(key_ID: uuid.UUID) -> DeliveredKey:
        """Hand out a confirmed key once; the other side holds the same key under this ID."""
        try:
            key = keystore.pop(str(key_ID), CONTROL)
        except KeyElsewhere:
            raise ApiError(
                403, "this key_ID was made for an ETSI 014 SAE pair: only that pair collects it"
            ) from None
        if key is None:
            raise ApiError(404, "no key with this key_ID: unknown or already delivered")
        event(log, "keys_delivered", api="control", keys=1, bits=len(key) * 8)
        return DeliveredKey(
            key_ID=str(key_ID), key=base64.b64encode(key).decode(), size=len(key) * 8
        )


def _add_generate_key(
    app: FastAPI,
    config: ControlConfig,
    alice: KeyRequester,
    keystore: KeyStore,
    guarded: list[Any],
) -> None:
    class GenerateKeyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        # check_key_bits enforces the rule; the schema states it for clients.
        desired_key_length: JsonInt = Field(
            description=f"the key length in bits: a multiple of 8, 8..{config.max_key_bits}",
            json_schema_extra={"minimum": KEY_BITS_MULTIPLE, "maximum": config.max_key_bits,
                               "multipleOf": KEY_BITS_MULTIPLE},
        )

        @field_validator("desired_key_length")
        @classmethod
        def _key_length_rule(cls, value: int) -> int:
            return check_key_bits(value, config.max_key_bits)

    @app.post("/generate-key", tags=["keys"], status_code=202, dependencies=guarded)
    async def generate_key(request: GenerateKeyRequest, response: Response) -> GenerateKeyAccepted:
        """Start a key session in the background; follow it at the returned status URL."""
        if keystore.count() >= keystore.max_keys:
            raise ApiError(
                503,
                f"the key store is full ({keystore.max_keys} keys): "
                "collect keys before asking for more",
            )
        try:
            process_id = alice.begin_session(request.desired_key_length, CONTROL)
        except TooManySessions as exc:
            raise ApiError(429, str(exc), headers={"Retry-After": "1"}) from None
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        event(log, "session_requested", process_id=process_id, key_bits=request.desired_key_length)
        status_url = f"/sessions/{process_id}"
        response.headers["Location"] = status_url
        return GenerateKeyAccepted(process_id=process_id, status_url=status_url)

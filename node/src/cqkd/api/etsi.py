"""ETSI GS QKD 014 v1.1.1 key delivery: Alice is the master SAE's KME, Bob the slave's.

Served over HTTPS with client certificates (see auth.py); the calling SAE is the common
name of its certificate. Alice answers `status` and `enc_keys` to the master SAE: keys of
the default size come from her key pool (qkd/pool.py), kept filled ahead of demand, other
sizes from sessions run for the request; Bob answers `status` and `dec_keys` to the slave
SAE with the same keys, by key_ID. Each key is handed out once.
Sizes are in bits (multiples of 8); keys are base64.
"""

import asyncio
import base64
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from cqkd import __version__
from cqkd.api.auth import RequireSae, client_sae_id
from cqkd.api.control import JsonInt, KeyRequester
from cqkd.api.errors import ApiError, ErrorBody, install_error_handlers
from cqkd.api.limits import BodySizeLimit
from cqkd.logs import event
from cqkd.ports import Role
from cqkd.qkd.keystore import KeyElsewhere, KeyStore, etsi_consumer
from cqkd.qkd.lengths import check_key_bits
from cqkd.qkd.pool import KeyPool, PoolUnavailable
from cqkd.qkd.session import TooManySessions

log = logging.getLogger(__name__)

PREFIX = "/api/v1/keys"
_TOO_SLOW = "keys not available yet: key sessions are too slow; retry"
Caller = Annotated[str, Depends(client_sae_id)]


@dataclass(frozen=True)
class EtsiConfig:
    role: Role
    kme_id: str
    peer_kme_id: str
    master_sae_id: str
    slave_sae_id: str
    key_size: int = 256
    min_key_size: int = 64
    max_key_size: int = 4096
    max_key_per_request: int = 32
    topup_timeout_seconds: float = 30.0
    pool_low: int = 32
    pool_high: int = 64

    def __post_init__(self) -> None:
        sizes = (self.min_key_size, self.key_size, self.max_key_size)
        if not sizes[0] <= sizes[1] <= sizes[2]:
            raise ValueError(
                f"ETSI key sizes need min ({sizes[0]}) <= default ({sizes[1]}) <= max ({sizes[2]})"
            )
        for size in sizes:  # the one key-length rule, with the largest size as the bound
            check_key_bits(size, self.max_key_size)


class Status(BaseModel):
    source_KME_ID: str
    target_KME_ID: str
    master_SAE_ID: str
    slave_SAE_ID: str
    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_SAE_ID_count: int


class KeyRequest(BaseModel):
    """The Key request data format of ETSI GS QKD 014; the rules this KME enforces are in the
    schema (`key_request_model`) so that clients read them from the OpenAPI document."""

    model_config = ConfigDict(extra="forbid")
    number: StrictInt = 1
    size: StrictInt | None = None
    additional_slave_SAE_IDs: list[str] = []
    extension_mandatory: list[dict[str, Any]] = []
    extension_optional: list[dict[str, Any]] = []


def key_request_model(config: EtsiConfig) -> type[KeyRequest]:
    """KeyRequest with this KME's limits: number 1..max_key_per_request, size a multiple
    of 8 in min_key_size..max_key_size bits, no additional slave SAEs (max_SAE_ID_count 0),
    no mandatory extension."""

    class EncKeysRequest(KeyRequest):
        number: JsonInt = Field(
            1, ge=1, le=config.max_key_per_request, description="how many keys"
        )
        size: JsonInt = Field(  # type: ignore[assignment]
            config.key_size,
            ge=config.min_key_size,
            le=config.max_key_size,
            multiple_of=8,
            description="key size in bits",
        )
        additional_slave_SAE_IDs: list[str] = Field(
            [], max_length=0, description="not supported: max_SAE_ID_count is 0"
        )
        extension_mandatory: list[dict[str, Any]] = Field(
            [], max_length=0, description="no mandatory extension is supported"
        )
        extension_optional: list[dict[str, Any]] = Field(
            [], description="accepted and ignored"
        )

    return EncKeysRequest


class KeyIdItem(BaseModel):
    key_ID: uuid.UUID


class KeyIds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key_IDs: list[KeyIdItem] = Field(min_length=1)
    key_IDs_extension: dict[str, Any] | None = None


class Key(BaseModel):
    key_ID: str
    key: str


class KeyContainer(BaseModel):
    keys: list[Key]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 405, 413, 415, 503)
}


def key_pool(
    config: EtsiConfig,
    keystore: KeyStore,
    alice: KeyRequester,
    concurrency: int,
    ready: Callable[[], bool] = lambda: True,
) -> KeyPool:
    """Alice's pool of `config.key_size`-bit keys for the SAE pair; start() it.
    `concurrency`: the sessions Alice runs at once (ACTIVE_SESSIONS), so that the pool never
    queues more sessions at her than she would run."""
    return KeyPool(
        keystore,
        alice.run_session,
        _consumer(config),
        config.key_size,
        low=config.pool_low,
        high=config.pool_high,
        concurrency=concurrency,
        ready=ready,
    )


def create_etsi_app(
    config: EtsiConfig,
    keystore: KeyStore,
    alice: KeyRequester | None = None,
    pool: KeyPool | None = None,
) -> FastAPI:
    """Alice's app (pass `alice`, who runs sessions, and her started `pool` of default-size
    keys; without a pool every request runs its own sessions) or Bob's."""
    app = FastAPI(
        title=f"CQKD {config.role.capitalize()} KME: ETSI GS QKD 014",
        version=__version__,
        responses=ERRORS,
        dependencies=[Depends(client_sae_id)],
    )
    install_error_handlers(app, validation_status=status.HTTP_400_BAD_REQUEST)
    app.add_middleware(BodySizeLimit)
    # Outermost: /docs and /openapi.json follow the same certificate rule as the key routes.
    app.add_middleware(RequireSae)
    if config.role == "alice":
        if alice is None:
            raise ValueError("Alice's ETSI app needs Alice to run top-up sessions")
        _add_master_routes(app, config, keystore, _TopUp(config, keystore, alice, pool))
    else:
        _add_slave_routes(app, config, keystore)
    return app


def _status(config: EtsiConfig, keystore: KeyStore, pool: KeyPool | None = None) -> Status:
    alice_side = config.role == "alice"
    stored = pool.stored() if pool is not None else keystore.count(consumer=_consumer(config))
    return Status(
        source_KME_ID=config.kme_id if alice_side else config.peer_kme_id,
        target_KME_ID=config.peer_kme_id if alice_side else config.kme_id,
        master_SAE_ID=config.master_sae_id,
        slave_SAE_ID=config.slave_sae_id,
        key_size=config.key_size,
        stored_key_count=stored,
        max_key_count=keystore.max_keys,
        max_key_per_request=config.max_key_per_request,
        max_key_size=config.max_key_size,
        min_key_size=config.min_key_size,
        max_SAE_ID_count=0,
    )


def _check_caller(caller: str, expected: str, path_sae_id: str, peer: str) -> None:
    if caller != expected:
        raise ApiError(
            401, "this SAE is not served by this KME", [{"client_certificate_cn": caller}]
        )
    if path_sae_id != peer:
        raise ApiError(
            400, "the SAE_ID in the path is not paired with the calling SAE", [{"expected": peer}]
        )


def _consumer(config: EtsiConfig) -> str:
    """Keys made for this KME pair's SAE pair are delivered to it alone."""
    return etsi_consumer(config.master_sae_id, config.slave_sae_id)


def _encode(keys: list[tuple[str, bytes]]) -> KeyContainer:
    return KeyContainer(
        keys=[Key(key_ID=kid, key=base64.b64encode(key).decode()) for kid, key in keys]
    )


class _TopUp:
    """Takes keys from Alice's pool, or for other sizes from her store, running sessions
    for the shortfall."""

    def __init__(
        self, config: EtsiConfig, keystore: KeyStore, alice: KeyRequester, pool: KeyPool | None
    ) -> None:
        self.config = config
        self.keystore = keystore
        self.alice = alice
        self.pool = pool

    async def take(self, number: int, size: int) -> list[tuple[str, bytes]]:
        """`number` keys of `size` bits for the SAE pair: from the pool for its size, from
        the store for others, running sessions for the shortfall. ApiError 503 when they
        do not come within the top-up timeout or cannot come at all."""
        if self.pool is not None and size == self.pool.key_bits:
            return await self._from_pool(number)
        deadline = asyncio.get_running_loop().time() + self.config.topup_timeout_seconds
        consumer = _consumer(self.config)
        while not (keys := self.keystore.take(number, size // 8, consumer)):
            await self._top_up(number, size, consumer, deadline)
        return keys

    async def _from_pool(self, number: int) -> list[tuple[str, bytes]]:
        assert self.pool is not None
        try:
            async with asyncio.timeout(self.config.topup_timeout_seconds):
                return await self.pool.take(number)
        except TimeoutError:
            raise ApiError(503, _TOO_SLOW) from None
        except PoolUnavailable as exc:
            raise ApiError(503, str(exc)) from None

    async def _top_up(self, number: int, size: int, consumer: str, deadline: float) -> None:
        """Run sessions for what the store lacks of `number` keys of `size` bits."""
        shortfall = number - self.keystore.count(size // 8, consumer)
        if self.keystore.count() + shortfall > self.keystore.max_keys:
            raise ApiError(
                503, "the key store is full: keys made for other requests wait to be collected"
            )
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise ApiError(503, _TOO_SLOW)
        try:
            # Alice queues the sessions beyond those she runs at once (ACTIVE_SESSIONS).
            async with asyncio.timeout(remaining):
                views = await asyncio.gather(
                    *(self.alice.run_session(size, consumer) for _ in range(shortfall))
                )
        except TimeoutError:
            raise ApiError(503, _TOO_SLOW) from None
        except TooManySessions as exc:
            raise ApiError(503, str(exc)) from None
        failed = [view for view in views if view.status != "confirmed"]
        if len(failed) == len(views):
            outcomes = sorted({str(view.outcome) for view in failed})
            raise ApiError(
                503,
                "key sessions failed; no key available",
                [{"outcome": outcome} for outcome in outcomes],
            )


def _size(config: EtsiConfig, number: int, size: int | None) -> int:
    """The key size a request asks for (the default if none), checked against the KME's
    limits; ApiError 400 otherwise."""
    size = config.key_size if size is None else size
    if number > config.max_key_per_request:
        raise ApiError(400, f"number must be at most {config.max_key_per_request}")
    try:
        check_key_bits(size, config.max_key_size)
    except ValueError as exc:
        raise ApiError(400, f"size: {exc}") from None
    if size < config.min_key_size:
        raise ApiError(400, f"size must be at least min_key_size, {config.min_key_size} bits")
    return size


async def _enc_keys(
    config: EtsiConfig, topup: _TopUp, slave_sae_id: str, caller: str, request: KeyRequest
) -> KeyContainer:
    _check_caller(caller, config.master_sae_id, slave_sae_id, config.slave_sae_id)
    if request.additional_slave_SAE_IDs:
        raise ApiError(400, "additional_slave_SAE_IDs are not supported (max_SAE_ID_count 0)")
    if request.extension_mandatory:
        # The extensions' names are the client's: not echoed (nor made encodable).
        raise ApiError(400, "no mandatory extension is supported")
    size = _size(config, request.number, request.size)
    keys = await topup.take(request.number, size)
    event(log, "keys_delivered", api="etsi_enc_keys", sae=caller, keys=len(keys), bits=size)
    return _encode(keys)


def _dec_keys(
    config: EtsiConfig, keystore: KeyStore, master_sae_id: str, caller: str,
    key_ids: list[uuid.UUID],
) -> KeyContainer:
    _check_caller(caller, config.slave_sae_id, master_sae_id, config.master_sae_id)
    if len(key_ids) > config.max_key_per_request:
        raise ApiError(400, f"at most {config.max_key_per_request} key_IDs per request")
    try:
        keys, missing = keystore.pop_many((str(key_id) for key_id in key_ids), _consumer(config))
    except KeyElsewhere as exc:
        raise ApiError(
            400,
            "keys not made for this SAE pair: they go to the consumer they were made for",
            [{"key_ID": key_id} for key_id in exc.key_ids],
        ) from None
    if missing:
        raise ApiError(
            400,
            "keys not found: unknown or already delivered",
            [{"key_ID": key_id} for key_id in missing],
        )
    event(log, "keys_delivered", api="etsi_dec_keys", sae=caller, keys=len(keys))
    return _encode(list(keys.items()))


def _add_master_routes(app: FastAPI, config: EtsiConfig, keystore: KeyStore, topup: _TopUp) -> None:
    @app.get(PREFIX + "/{slave_SAE_ID}/status", tags=["master"])
    async def get_status(slave_SAE_ID: str, caller: Caller) -> Status:
        """Status of the key link to the slave SAE."""
        _check_caller(caller, config.master_sae_id, slave_SAE_ID, config.slave_sae_id)
        return _status(config, keystore, topup.pool)

    request_model = key_request_model(config)

    @app.get(PREFIX + "/{slave_SAE_ID}/enc_keys", tags=["master"])
    async def get_enc_keys(
        slave_SAE_ID: str,
        caller: Caller,
        number: Annotated[
            int, Query(ge=1, le=config.max_key_per_request, description="how many keys")
        ] = 1,
        size: Annotated[
            int | None,
            Query(
                ge=config.min_key_size,
                le=config.max_key_size,
                multiple_of=8,
                description=f"key size in bits; default {config.key_size}",
            ),
        ] = None,
    ) -> KeyContainer:
        """`number` new keys of `size` bits for the master SAE, with their key_IDs."""
        return await _enc_keys(config, topup, slave_SAE_ID, caller,
                               KeyRequest(number=number, size=size))

    @app.post(PREFIX + "/{slave_SAE_ID}/enc_keys", tags=["master"])
    async def post_enc_keys(
        slave_SAE_ID: str,
        request: request_model,  # type: ignore[valid-type]
        caller: Caller,
    ) -> KeyContainer:
        """As GET, with the request in a JSON body."""
        return await _enc_keys(config, topup, slave_SAE_ID, caller, request)


def _add_slave_routes(app: FastAPI, config: EtsiConfig, keystore: KeyStore) -> None:
    class DecKeysRequest(KeyIds):
        key_IDs: list[KeyIdItem] = Field(min_length=1, max_length=config.max_key_per_request)

    @app.get(PREFIX + "/{master_SAE_ID}/status", tags=["slave"])
    async def get_status(master_SAE_ID: str, caller: Caller) -> Status:
        """Status of the key link from the master SAE."""
        _check_caller(caller, config.slave_sae_id, master_SAE_ID, config.master_sae_id)
        return _status(config, keystore)

    @app.get(PREFIX + "/{master_SAE_ID}/dec_keys", tags=["slave"])
    async def get_dec_keys(
        master_SAE_ID: str,
        key_ID: uuid.UUID,
        caller: Caller,
    ) -> KeyContainer:
        """The key with this key_ID, as the master SAE received it."""
        return _dec_keys(config, keystore, master_SAE_ID, caller, [key_ID])

    @app.post(PREFIX + "/{master_SAE_ID}/dec_keys", tags=["slave"])
    async def post_dec_keys(
        master_SAE_ID: str,
        request: DecKeysRequest,
        caller: Caller,
    ) -> KeyContainer:
        """The keys with these key_IDs, as the master SAE received them."""
        return _dec_keys(config, keystore, master_SAE_ID, caller,
                         [item.key_ID for item in request.key_IDs])

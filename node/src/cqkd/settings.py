"""One settings object for every `cqkd` process, read from the environment (the seed's
variable names) and from CLI flags, built once in cli.py and passed down.

A plain pydantic model fed by `load_settings`, not pydantic-settings: every field takes its
variable's raw string (its validators split lists and addresses), so reading the environment
is one dictionary, and every process (a worker above all) saves pydantic-settings' 3-4 MiB.
"""

from __future__ import annotations

import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from cqkd.dht.bootstrap import Strategy
from cqkd.dht.table import MAX_PEERS_PER_HOST, MAX_PEERS_PER_SUBNET

Address = tuple[str, int]
_NODE_ID = re.compile(r"^[0-9a-fA-F]{40}$")
_PUBLIC_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def parse_address(text: str) -> Address:
    """`host:port` with an IPv4 address or a host name; IPv6 is refused (issue 11: the DHT
    runs over IPv4 only, and a bracketed address used to parse, then never resolve)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text.strip()!r} is not host:port")
    if ":" in host or "[" in host:
        raise ValueError(f"{text.strip()!r}: IPv6 addresses are not supported")
    return host, int(port)


class AllocationMode(StrEnum):
    POOLED = "pooled"
    DEDICATED = "dedicated"


class SettingsError(ValueError):
    """A bad setting, with the one line to show the user."""


class NoDecode:
    """Marks a field whose variable is parsed by its own validator (kept from pydantic-settings,
    where it stops JSON decoding; here every variable is a raw string)."""


class Settings(BaseModel):
    """Every knob. The `description` of a field is also its list of accepted values."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # --- DHT layer ---
    dht_host: str = Field("0.0.0.0", description="an IPv4 address to bind (no IPv6)")
    dht_port: int = Field(5678, ge=0, le=65535, description="a port 0..65535 (0: any)")
    http_port: int | None = Field(
        None, ge=0, le=65535, description="a port 0..65535; default: DHT_PORT"
    )
    bootstrap_nodes: Annotated[list[Address], NoDecode] = Field(
        default_factory=list, description="comma-separated host:port list"
    )
    node_id: str | None = Field(None, description="40 hex digits (a 160-bit id)")
    alpha: int | None = Field(None, ge=1, le=64, description="an integer 1..64")
    k: int | None = Field(None, ge=2, le=200, description="an integer 2..200")
    query_timeout: float | None = Field(None, gt=0, le=600, description="seconds, 0 < t <= 600")
    rpc_timeout: float = Field(2.0, gt=0, le=60, description="seconds, 0 < t <= 60")
    dead_peer_ttl: float = Field(15.0, ge=0, le=3600, description="seconds, 0..3600")
    enable_adaptive_kademlia: bool = Field(True, description="true or false")
    worker_count: int = Field(15, ge=0, le=100_000, description="an integer 0..100000")
    bootstrap_selection_strategy: Strategy = Field(
        Strategy.ROUND_ROBIN, description="round_robin, least_loaded, priority or random"
    )
    bootstrap_max_connections_per_node: int = Field(
        50, ge=1, le=100_000, description="an integer 1..100000"
    )
    log_level: LogLevel = Field(LogLevel.INFO, description="DEBUG, INFO, WARNING or ERROR")
    # Routing-table admission (issue 11, dht/table.py).
    dht_max_peers_per_host: int = Field(
        MAX_PEERS_PER_HOST, ge=1, le=100_000,
        description="routing-table contacts per IP address, 1..100000",
    )
    dht_max_peers_per_subnet: int = Field(
        MAX_PEERS_PER_SUBNET, ge=1, le=100_000,
        description="routing-table contacts per /24 (IPv4), 1..100000",
    )

    # --- Alice and Bob: control API and ETSI 014 (issue 3) ---
    etsi_port: int | None = Field(
        None, ge=0, le=65535, description="a port 0..65535; default: 8443 (Alice), 8444 (Bob)"
    )
    control_host: str = Field(
        "127.0.0.1",
        description="an IP address for the control API to bind (plain HTTP with a bearer "
        "token: loopback unless a trusted network carries it)",
    )
    api_request_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds a client may take to send a request, 0 < t <= 300"
    )
    api_max_connections: int = Field(
        256, ge=1, le=100_000, description="open connections per API, 1..100000"
    )
    api_token: SecretStr | None = Field(
        None, description="the control API's bearer token, at least 16 characters"
    )
    api_token_file: Path | None = Field(
        None, description="a file holding the bearer token (wins over API_TOKEN)"
    )
    tls_cert_file: Path | None = Field(None, description="the ETSI server certificate, PEM")
    tls_key_file: Path | None = Field(None, description="its private key, PEM")
    tls_ca_file: Path | None = Field(
        None, description="the CA certificate, PEM, that signed the SAEs' client certificates"
    )
    alice_kme_id: str = Field("cqkd-alice", min_length=1, max_length=128,
                              description="Alice's KME_ID, 1..128 characters")
    bob_kme_id: str = Field("cqkd-bob", min_length=1, max_length=128,
                            description="Bob's KME_ID, 1..128 characters")
    master_sae_id: str = Field("sae-master", min_length=1, max_length=128,
                               description="the CN of the master SAE's client certificate")
    slave_sae_id: str = Field("sae-slave", min_length=1, max_length=128,
                              description="the CN of the slave SAE's client certificate")
    bob_address: Annotated[Address | None, NoDecode] = Field(
        None, description="host:port of Bob's DHT node (Alice only)"
    )
    key_store_max_keys: int = Field(10_000, ge=1, le=10_000_000,
                                    description="an integer 1..10000000")
    # 131,072 bits is the longest key shown to confirm at QBER 0 and 0.05 (23 s and 31 s on
    # 15 in-process workers, bench/README.md); hashing grows as n^2 beyond.
    max_key_bits: int = Field(
        16_384, ge=64, le=131_072, multiple_of=8,
        description="the longest key one may ask for, bits, a multiple of 8, 64..131072",
    )
    max_running_sessions: int = Field(
        64, ge=1, le=10_000,
        description="sessions one consumer may have running or waiting at Alice (more are "
        "refused: 429 on the control API), 1..10000",
    )
    etsi_key_size: int = Field(256, ge=8, le=1_048_576, multiple_of=8,
                               description="the ETSI default key size, bits, a multiple of 8")
    etsi_max_keys_per_request: int = Field(32, ge=1, le=1024, description="an integer 1..1024")
    etsi_topup_timeout: float = Field(30.0, gt=0, le=600, description="seconds, 0 < t <= 600")
    # The control API does not pre-generate: /generate-key starts a session to follow by its
    # process_id. The ETSI SAE pair's keys of ETSI_KEY_SIZE are kept in a pool (qkd/pool.py).
    key_pool_low: int = Field(
        32, ge=0, le=10_000_000,
        description="refill the ETSI key pool when it holds fewer keys, 0..10000000",
    )
    key_pool_high: int = Field(
        64, ge=0, le=10_000_000,
        description="refill the ETSI key pool up to this many keys (0: no pre-generation; at "
        "most half KEY_STORE_MAX_KEYS is used), 0..10000000",
    )

    # --- CQKD protocol (issue 3) ---
    owner_key_file: Path | None = Field(
        None, description="a private key file made by `cqkd keygen` (Alice and Bob)"
    )
    trusted_owners: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated public keys (64 hex digits) of Alice and Bob",
    )
    admission_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated public keys (64 hex digits) whose tickets admit workers "
        "(Alice and Bob)",
    )
    admission_key_file: Path | None = Field(
        None, description="the deployment's admission private key file, `cqkd keygen`: "
        "workers sign their identity with it, Alice and Bob admit what it signs"
    )
    allocation_mode: AllocationMode = Field(
        AllocationMode.POOLED, description="pooled or dedicated"
    )
    qber_threshold: float = Field(
        0.11, gt=0, lt=0.5,
        description="abort once the QBER's lower confidence bound is above it, 0 < q < 0.5",
    )
    eps_sec: float = Field(1e-10, gt=0, lt=1, description="secrecy parameter, 0 < e < 1")
    eps_cor: float = Field(1e-15, gt=0, lt=1, description="correctness parameter, 0 < e < 1")
    max_raw_positions: int = Field(
        1 << 22, ge=1024, le=1 << 26,
        description="raw positions one session may use in all, 1024..67108864",
    )
    eavesdrop: float = Field(
        0.0, ge=0, le=1, description="intercept-resend probability at this worker's QPP, 0..1"
    )
    channel_error: float = Field(
        0.0, ge=0, lt=0.5, description="bit flip probability at this worker's QPM, 0..0.5"
    )
    round_timeout: float = Field(
        2.0, gt=0, le=600, description="seconds of silence before a round gives up, 0 < t <= 600"
    )
    session_timeout: float = Field(60.0, gt=0, le=3600, description="seconds, 0 < t <= 3600")
    session_ttl: float = Field(120.0, gt=0, le=86400, description="seconds, 0 < t <= 86400")
    max_rounds: int = Field(
        64, ge=1, le=1000, description="rounds of raw positions one session may use, 1..1000"
    )
    active_sessions: int = Field(
        2, ge=1, le=1000, description="sessions Alice runs at once (more wait), 1..1000"
    )
    pool_chunk_bits: int = Field(
        256, ge=1, le=65536, description="fewest positions per pooled chain, 1..65536"
    )
    worker_cache_seconds: float = Field(10.0, ge=0, le=3600, description="seconds, 0..3600")
    discovery_lookups: int = Field(2, ge=0, le=64, description="an integer 0..64")

    @field_validator("bootstrap_nodes", mode="before")
    @classmethod
    def _split_addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [parse_address(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("bob_address", mode="before")
    @classmethod
    def _parse_address(cls, value: Any) -> Any:
        return parse_address(value) if isinstance(value, str) and value.strip() else value or None

    @field_validator("trusted_owners", "admission_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for key in value or []:
            if not _PUBLIC_KEY.match(key):
                raise ValueError(f"{key[:70]!r} is not a public key of 64 hex digits")
        return value

    @field_validator("control_host")
    @classmethod
    def _check_control_host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("not an IP address") from None
        return value

    @field_validator("dht_host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError("not an IPv4 address (no IPv6, no host names)") from None
        return value

    @field_validator("node_id")
    @classmethod
    def _check_node_id(cls, value: str | None) -> str | None:
        if value is not None and not _NODE_ID.match(value):
            raise ValueError("not 40 hex digits")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def trusted_owner_keys(self) -> list[bytes]:
        return [bytes.fromhex(key) for key in self.trusted_owners]

    @property
    def admission_key_bytes(self) -> frozenset[bytes]:
        return frozenset(bytes.fromhex(key) for key in self.admission_keys)

    @property
    def node_id_bytes(self) -> bytes | None:
        return bytes.fromhex(self.node_id) if self.node_id else None

    @property
    def effective_http_port(self) -> int:
        return self.dht_port if self.http_port is None else self.http_port


def _environment() -> dict[str, str]:
    """Each field's variable as given, its name in any case (DHT_PORT, dht_port)."""
    return {
        key.lower(): value
        for key, value in os.environ.items()
        if key.lower() in Settings.model_fields
    }


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, overridden by explicit values (CLI flags).

    Raises SettingsError with one line naming the variable and the accepted values.
    """
    try:
        return Settings(**{**_environment(), **overrides})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        field = Settings.model_fields.get(name)
        accepted = field.description if field else ""
        reason = str(error["msg"]).removeprefix("Value error, ")
        # A secret's refused value is never repeated: this line goes to the process's log.
        shown = "<secret>" if field and field.annotation and "SecretStr" in str(
            field.annotation) else repr(error.get("input"))
        raise SettingsError(
            f"invalid setting {name.upper()}={shown}: {reason}; accepted: {accepted}"
        ) from None

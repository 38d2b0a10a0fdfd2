"""One settings object for every `cqkd` process, read from the environment (the seed's
variable names) and from CLI flags, built once in cli.py and passed down.

`load_settings` reads each field's variable as a raw string (or a value given by code)
and turns it into the field's value with the field's parser, which checks its bounds;
a bad value raises SettingsError naming the variable and the accepted values. A frozen
dataclass and a few parsers, not pydantic: a worker or bootstrap node would otherwise load
pydantic and build a model schema only to read its environment, about 12 MiB of its 40
(bench/README.md). `model_fields`, `model_fields_set` and `model_copy` keep pydantic's
names, so callers read and copy settings as before.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

Address = tuple[str, int]
_NODE_ID = re.compile(r"^[0-9a-fA-F]{40}$")
_PUBLIC_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
# cqkd.dht.bootstrap.Strategy's values (tests/unit/test_settings.py checks they agree).
StrategyName = Literal["round_robin", "least_loaded", "priority", "random"]
_STRATEGIES: tuple[StrategyName, ...] = ("round_robin", "least_loaded", "priority", "random")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class AllocationMode(StrEnum):
    POOLED = "pooled"
    DEDICATED = "dedicated"


class SettingsError(ValueError):
    """A bad setting, with the one line to show the user."""


class SecretStr:
    """A secret that never shows in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def parse_address(text: str) -> Address:
    """`host:port` with an IPv4 address or a host name; IPv6 is refused (issue 11: the DHT
    runs over IPv4 only, and a bracketed address used to parse, then never resolve)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text.strip()!r} is not host:port")
    if ":" in host or "[" in host:
        raise ValueError(f"{text.strip()!r}: IPv6 addresses are not supported")
    return host, int(port)


# --- parsers: a variable's string (or a value from code) -> the field's value, or ValueError

Parser = Callable[[Any], Any]


def _integer(low: int, high: int, multiple_of: int = 1) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, str):
            try:
                value = float(value) if "." in value else int(value)
            except ValueError:
                raise ValueError("not an integer") from None
        if isinstance(value, float) and value.is_integer():  # "2.0" is 2, as pydantic reads it
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not an integer")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range")
        if value % multiple_of:
            raise ValueError(f"{value} is not a multiple of {multiple_of}")
        return value

    return parse


def _number(low: float, high: float, *, above: bool = False, below: bool = False) -> Parser:
    """A float in [low, high]; `above`/`below` exclude the bound itself."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("not a number")
        try:
            number = float(value)
        except ValueError:
            raise ValueError("not a number") from None
        if (
            math.isnan(number)
            or not low <= number <= high
            or (above and number == low)
            or (below and number == high)
        ):
            raise ValueError(f"{number:g} is out of range")
        return number

    return parse


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("not a boolean")


def _text(low: int = 0, high: int = 1 << 16) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("not a string")
        if not low <= len(value) <= high:
            raise ValueError(f"{len(value)} characters")
        return value

    return parse


def _choice(values: Iterable[str], convert: Callable[[str], Any] = str) -> Parser:
    allowed = frozenset(values)

    def parse(value: Any) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise ValueError("not one of the accepted values")
        return convert(value)

    return parse


def _optional(parse: Parser) -> Parser:
    return lambda value: None if value is None else parse(value)


def _path(value: Any) -> Path:
    if not isinstance(value, str | Path):
        raise ValueError("not a path")
    return Path(value)


def _secret(value: Any) -> SecretStr:
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("not a string")
    return SecretStr(value)


def _ip(check: Callable[[Any], object], reason: str) -> Parser:
    """An address that `check` (ipaddress.ip_address, IPv4Address) accepts, kept as text."""

    def parse(value: Any) -> str:
        try:
            check(value)
        except ValueError:
            raise ValueError(reason) from None
        return str(value)

    return parse


def _node_id(value: Any) -> str:
    if not isinstance(value, str) or not _NODE_ID.match(value):
        raise ValueError("not 40 hex digits")
    return value


def _addresses(value: Any) -> list[Address]:
    if isinstance(value, str):
        return [parse_address(part) for part in value.split(",") if part.strip()]
    return [parse_address(f"{host}:{port}") for host, port in value]


def _address(value: Any) -> Address | None:
    if isinstance(value, str):
        return parse_address(value) if value.strip() else None
    return parse_address(f"{value[0]}:{value[1]}") if value else None


def _keys(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    for key in value or []:
        if not isinstance(key, str) or not _PUBLIC_KEY.match(key):
            raise ValueError(f"{str(key)[:70]!r} is not a public key of 64 hex digits")
    return list(value or [])


def _log_level(value: Any) -> LogLevel:
    if not isinstance(value, str) or value.upper() not in LogLevel.__members__:
        raise ValueError("not a log level")
    return LogLevel(value.upper())


@dataclass(frozen=True)
class Spec:
    """One setting: its default, its parser, and its accepted values (the flag's help)."""

    default: Any
    parse: Parser
    description: str
    secret: bool = False


def setting(
    default: Any, parse: Parser, description: str, *, secret: bool = False, many: bool = False
) -> Any:
    """A Settings field; `many`: its default is an empty list, one per Settings."""
    spec = Spec([] if many else default, parse, description, secret)
    if many:
        return field(default_factory=list, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class Settings:
    """Every knob. A field's `description` is also its list of accepted values. Build it
    with `load_settings`, which parses and checks; `Settings()` holds the defaults."""

    model_fields: ClassVar[dict[str, Spec]]

    # --- DHT layer: None leaves the DHT's own default (cqkd.dht.config.DhtConfig) ---
    dht_host: str = setting(
        "0.0.0.0",
        _ip(ipaddress.IPv4Address, "not an IPv4 address (no IPv6, no host names)"),
        "an IPv4 address to bind (no IPv6)",
    )
    dht_port: int = setting(5678, _integer(0, 65535), "a port 0..65535 (0: any)")
    http_port: int | None = setting(
        None, _optional(_integer(0, 65535)), "a port 0..65535; default: DHT_PORT"
    )
    bootstrap_nodes: list[Address] = setting(
        None, _addresses, "comma-separated host:port list", many=True
    )
    node_id: str | None = setting(None, _optional(_node_id), "40 hex digits (a 160-bit id)")
    alpha: int | None = setting(None, _optional(_integer(1, 64)), "an integer 1..64")
    k: int | None = setting(None, _optional(_integer(2, 200)), "an integer 2..200")
    query_timeout: float | None = setting(
        None, _optional(_number(0, 600, above=True)), "seconds, 0 < t <= 600"
    )
    rpc_timeout: float | None = setting(
        None, _optional(_number(0, 60, above=True)), "seconds, 0 < t <= 60"
    )
    dead_peer_ttl: float | None = setting(None, _optional(_number(0, 3600)), "seconds, 0..3600")
    enable_adaptive_kademlia: bool | None = setting(None, _optional(_boolean), "true or false")
    worker_count: int = setting(15, _integer(0, 100_000), "an integer 0..100000")
    bootstrap_selection_strategy: StrategyName | None = setting(
        None, _optional(_choice(_STRATEGIES)), "round_robin, least_loaded, priority or random"
    )
    bootstrap_max_connections_per_node: int | None = setting(
        None, _optional(_integer(1, 100_000)), "an integer 1..100000"
    )
    log_level: LogLevel = setting(LogLevel.INFO, _log_level, "DEBUG, INFO, WARNING or ERROR")
    # Routing-table admission (issue 11, dht/routing.py).
    dht_max_peers_per_host: int | None = setting(
        None, _optional(_integer(1, 100_000)), "routing-table contacts per IP address, 1..100000"
    )
    dht_max_peers_per_subnet: int | None = setting(
        None, _optional(_integer(1, 100_000)), "routing-table contacts per /24 (IPv4), 1..100000"
    )

    # --- Alice and Bob: control API and ETSI 014 (issue 3) ---
    etsi_port: int | None = setting(
        None,
        _optional(_integer(0, 65535)),
        "a port 0..65535; default: 8443 (Alice), 8444 (Bob)",
    )
    control_host: str = setting(
        "127.0.0.1",
        _ip(ipaddress.ip_address, "not an IP address"),
        "an IP address for the control API to bind (plain HTTP with a bearer "
        "token: loopback unless a trusted network carries it)",
    )
    api_request_timeout: float = setting(
        10.0,
        _number(0, 300, above=True),
        "seconds a client may take to send a request, 0 < t <= 300",
    )
    api_max_connections: int = setting(
        256, _integer(1, 100_000), "open connections per API, 1..100000"
    )
    api_token: SecretStr | None = setting(
        None,
        _optional(_secret),
        "the control API's bearer token, at least 16 characters",
        secret=True,
    )
    api_token_file: Path | None = setting(
        None, _optional(_path), "a file holding the bearer token (wins over API_TOKEN)"
    )
    tls_cert_file: Path | None = setting(
        None, _optional(_path), "the ETSI server certificate, PEM"
    )
    tls_key_file: Path | None = setting(None, _optional(_path), "its private key, PEM")
    tls_ca_file: Path | None = setting(
        None,
        _optional(_path),
        "the CA certificate, PEM, that signed the SAEs' client certificates",
    )
    alice_kme_id: str = setting(
        "cqkd-alice", _text(1, 128), "Alice's KME_ID, 1..128 characters"
    )
    bob_kme_id: str = setting("cqkd-bob", _text(1, 128), "Bob's KME_ID, 1..128 characters")
    master_sae_id: str = setting(
        "sae-master", _text(1, 128), "the CN of the master SAE's client certificate"
    )
    slave_sae_id: str = setting(
        "sae-slave", _text(1, 128), "the CN of the slave SAE's client certificate"
    )
    bob_address: Address | None = setting(
        None, _address, "host:port of Bob's DHT node (Alice only)"
    )
    key_store_max_keys: int = setting(
        10_000, _integer(1, 10_000_000), "an integer 1..10000000"
    )
    # 131,072 bits is the longest key shown to confirm at QBER 0 and 0.05 (23 s and 31 s on
    # 15 in-process workers, bench/README.md); hashing grows as n^2 beyond.
    max_key_bits: int = setting(
        16_384,
        _integer(64, 131_072, multiple_of=8),
        "the longest key one may ask for, bits, a multiple of 8, 64..131072",
    )
    max_running_sessions: int = setting(
        64,
        _integer(1, 10_000),
        "sessions one consumer may have running or waiting at Alice (more are "
        "refused: 429 on the control API), 1..10000",
    )
    etsi_key_size: int = setting(
        256,
        _integer(8, 1_048_576, multiple_of=8),
        "the ETSI default key size, bits, a multiple of 8",
    )
    etsi_max_keys_per_request: int = setting(32, _integer(1, 1024), "an integer 1..1024")
    etsi_topup_timeout: float = setting(
        30.0, _number(0, 600, above=True), "seconds, 0 < t <= 600"
    )
    # The control API does not pre-generate: /generate-key starts a session to follow by its
    # process_id. The ETSI SAE pair's keys of ETSI_KEY_SIZE are kept in a pool (qkd/pool.py).
    key_pool_low: int = setting(
        32,
        _integer(0, 10_000_000),
        "refill the ETSI key pool when it holds fewer keys, 0..10000000",
    )
    key_pool_high: int = setting(
        64,
        _integer(0, 10_000_000),
        "refill the ETSI key pool up to this many keys (0: no pre-generation; at "
        "most half KEY_STORE_MAX_KEYS is used), 0..10000000",
    )

    # --- CQKD protocol (issue 3) ---
    owner_key_file: Path | None = setting(
        None, _optional(_path), "a private key file made by `cqkd keygen` (Alice and Bob)"
    )
    trusted_owners: list[str] = setting(
        None,
        _keys,
        "comma-separated public keys (64 hex digits) of Alice and Bob",
        many=True,
    )
    admission_keys: list[str] = setting(
        None,
        _keys,
        "comma-separated public keys (64 hex digits) whose tickets admit workers "
        "(Alice and Bob)",
        many=True,
    )
    admission_key_file: Path | None = setting(
        None,
        _optional(_path),
        "the deployment's admission private key file, `cqkd keygen`: "
        "workers sign their identity with it, Alice and Bob admit what it signs",
    )
    allocation_mode: AllocationMode = setting(
        AllocationMode.POOLED,
        _choice(AllocationMode.__members__.values(), AllocationMode),
        "pooled or dedicated",
    )
    qber_threshold: float = setting(
        0.11,
        _number(0, 0.5, above=True, below=True),
        "abort once the QBER's lower confidence bound is above it, 0 < q < 0.5",
    )
    eps_sec: float = setting(
        1e-10, _number(0, 1, above=True, below=True), "secrecy parameter, 0 < e < 1"
    )
    eps_cor: float = setting(
        1e-15, _number(0, 1, above=True, below=True), "correctness parameter, 0 < e < 1"
    )
    max_raw_positions: int = setting(
        1 << 22,
        _integer(1024, 1 << 26),
        "raw positions one session may use in all, 1024..67108864",
    )
    eavesdrop: float = setting(
        0.0, _number(0, 1), "intercept-resend probability at this worker's QPP, 0..1"
    )
    channel_error: float = setting(
        0.0, _number(0, 0.5, below=True), "bit flip probability at this worker's QPM, 0..0.5"
    )
    round_timeout: float = setting(
        2.0,
        _number(0, 600, above=True),
        "seconds of silence before a round gives up, 0 < t <= 600",
    )
    session_timeout: float = setting(
        60.0, _number(0, 3600, above=True), "seconds, 0 < t <= 3600"
    )
    session_ttl: float = setting(120.0, _number(0, 86400, above=True), "seconds, 0 < t <= 86400")
    max_rounds: int = setting(
        64, _integer(1, 1000), "rounds of raw positions one session may use, 1..1000"
    )
    active_sessions: int = setting(
        2, _integer(1, 1000), "sessions Alice runs at once (more wait), 1..1000"
    )
    pool_chunk_bits: int = setting(
        256, _integer(1, 65536), "fewest positions per pooled chain, 1..65536"
    )
    worker_cache_seconds: float = setting(10.0, _number(0, 3600), "seconds, 0..3600")

    # The names given explicitly (environment, flags, model_copy), as pydantic's fields set.
    _given: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def model_fields_set(self) -> frozenset[str]:
        return self._given

    def model_copy(self, *, update: dict[str, Any]) -> Settings:
        """A copy with `update`'s values, taken as they are (not parsed), as pydantic's."""
        return dataclasses.replace(self, **update, _given=self._given | update.keys())

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

    def dht_options(self) -> dict[str, Any]:
        """What this process tells its DHT node, under cqkd.dht.config.DhtConfig's field
        names: `DhtConfig(**settings.dht_options())`. Fields left unset are left out, so
        the DHT's own defaults stand for them."""
        options = {
            "host": self.dht_host,
            "port": self.dht_port,
            "node_id": self.node_id_bytes,
            "network_size": self.worker_count,
            "adaptive": self.enable_adaptive_kademlia,
            "alpha": self.alpha,
            "k": self.k,
            "query_timeout": self.query_timeout,
            "rpc_timeout": self.rpc_timeout,
            "dead_peer_ttl": self.dead_peer_ttl,
            "bootstrap_strategy": self.bootstrap_selection_strategy,
            "bootstrap_max_connections": self.bootstrap_max_connections_per_node,
            "max_peers_per_host": self.dht_max_peers_per_host,
            "max_peers_per_subnet": self.dht_max_peers_per_subnet,
        }
        return {name: value for name, value in options.items() if value is not None}


Settings.model_fields = {
    f.name: f.metadata["spec"] for f in dataclasses.fields(Settings) if "spec" in f.metadata
}


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
    given = {
        name: value
        for name, value in {**_environment(), **overrides}.items()
        if name in Settings.model_fields
    }
    values: dict[str, Any] = {}
    for name, raw in given.items():
        spec = Settings.model_fields[name]
        try:
            values[name] = spec.parse(raw)
        except (TypeError, ValueError) as exc:
            # A secret's refused value is never repeated: this line goes to the process's log.
            shown = "<secret>" if spec.secret else repr(raw)
            raise SettingsError(
                f"invalid setting {name.upper()}={shown}: {exc}; accepted: {spec.description}"
            ) from None
    return Settings(**values, _given=frozenset(given))

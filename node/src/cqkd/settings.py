"""One settings object for every `cqkd` process, read from the environment (the seed's
variable names) and from CLI flags, built once in cli.py and passed down."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cqkd.dht.bootstrap import Strategy

Address = tuple[str, int]
_NODE_ID = re.compile(r"^[0-9a-fA-F]{40}$")


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def parse_address(text: str) -> Address:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text.strip()!r} is not host:port")
    return host.strip("[]"), int(port)


class SettingsError(ValueError):
    """A bad setting, with the one line to show the user."""


class Settings(BaseSettings):
    """Every knob. The `description` of a field is also its list of accepted values."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- DHT layer ---
    dht_host: str = Field("0.0.0.0", description="an IP address to bind")
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
    rpc_timeout: float = Field(1.0, gt=0, le=60, description="seconds, 0 < t <= 60")
    dead_peer_ttl: float = Field(10.0, ge=0, le=3600, description="seconds, 0..3600")
    enable_adaptive_kademlia: bool = Field(True, description="true or false")
    worker_count: int = Field(15, ge=0, le=100_000, description="an integer 0..100000")
    bootstrap_selection_strategy: Strategy = Field(
        Strategy.ROUND_ROBIN, description="round_robin, least_loaded, priority or random"
    )
    bootstrap_max_connections_per_node: int = Field(
        50, ge=1, le=100_000, description="an integer 1..100000"
    )
    log_level: LogLevel = Field(LogLevel.INFO, description="DEBUG, INFO, WARNING or ERROR")

    # --- CQKD protocol (issue 3) ---

    @field_validator("bootstrap_nodes", mode="before")
    @classmethod
    def _split_addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [parse_address(part) for part in value.split(",") if part.strip()]
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
    def node_id_bytes(self) -> bytes | None:
        return bytes.fromhex(self.node_id) if self.node_id else None

    @property
    def effective_http_port(self) -> int:
        return self.dht_port if self.http_port is None else self.http_port


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, overridden by explicit values (CLI flags).

    Raises SettingsError with one line naming the variable and the accepted values.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        field = Settings.model_fields.get(name)
        accepted = field.description if field else ""
        reason = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(
            f"invalid setting {name.upper()}={error.get('input')!r}: {reason}; accepted: {accepted}"
        ) from None

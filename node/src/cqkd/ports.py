"""Alice's and Bob's default ports, applied wherever no port setting was given.

Kept apart from endpoint.py so that `cqkd probe --role` stays cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cqkd.settings import Settings

Role = Literal["alice", "bob"]


@dataclass(frozen=True)
class RolePorts:
    dht: int
    http: int
    etsi: int


DEFAULT_PORTS: dict[Role, RolePorts] = {
    "alice": RolePorts(dht=6000, http=8001, etsi=8443),
    "bob": RolePorts(dht=6001, http=8002, etsi=8444),
}


def role_settings(settings: Settings, role: Role) -> Settings:
    """`settings` with Alice's or Bob's default ports wherever none was given."""
    defaults = DEFAULT_PORTS[role]
    given = settings.model_fields_set
    update = {
        name: value
        for name, value in (
            ("dht_port", defaults.dht),
            ("http_port", defaults.http),
            ("etsi_port", defaults.etsi),
        )
        if name not in given
    }
    return settings.model_copy(update=update)

"""DhtConfig: what one DHT node is given, and the DHT's own defaults.

The DHT layer takes this, never the process's Settings (API token, TLS paths and session
knobs are none of its business), and cqkd.settings does not import the DHT: the settings
carry only what the user set, named for this class's fields by `Settings.dht_options()`,
and the code that wires a process (cqkd.cli, cqkd.endpoint, cqkd.sim) builds
`DhtConfig(**settings.dht_options())`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cqkd.dht.bootstrap import Strategy


@dataclass(frozen=True, slots=True)
class DhtConfig:
    host: str = "127.0.0.1"  # an IPv4 address to bind
    port: int = 0  # UDP; 0: one the OS picks
    node_id: bytes | None = None  # 20 bytes; None: a random id
    # The deployment's size (WORKER_COUNT): the node sizes alpha and k for at least this many
    # nodes until its own estimate is larger (params.py).
    network_size: int = 0
    adaptive: bool = True  # alpha, k and the query timeout follow the estimated network size
    alpha: int | None = None  # each of these three, when set, wins over the adaptation
    k: int | None = None
    query_timeout: float | None = None  # seconds
    rpc_timeout: float = 2.0  # seconds
    dead_peer_ttl: float = 15.0  # seconds an address that missed an RPC is not asked again
    bootstrap_strategy: Strategy = Strategy.ROUND_ROBIN
    bootstrap_max_connections: int = 50  # joins one bootstrap node takes before others
    # Routing-table contacts per IP address and per /24 (issue 11). Containers on one host
    # share its address (host networking), so the host limit must exceed the nodes a host
    # runs: workers take ports 7000-7999, but a table rarely holds more than a few hundred
    # contacts in all.
    max_peers_per_host: int = 256
    max_peers_per_subnet: int = 1024

    def __post_init__(self) -> None:
        # Settings hold the strategy's name; raises ValueError for an unknown one.
        object.__setattr__(self, "bootstrap_strategy", Strategy(self.bootstrap_strategy))

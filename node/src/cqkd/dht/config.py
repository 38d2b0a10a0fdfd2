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
from cqkd.dht.params import bootstrap_count

# Routing-table contacts per IP address and per /24 (issue 11), at least. Nodes sharing one
# address (containers with host networking, or `cqkd local`: every node on 127.0.0.1) are
# all legitimate peers, so the limits grow to the deployment's size: a network never holds
# more nodes than its workers, its bootstraps and these few others (Alice, Bob, clients).
MIN_PEERS_PER_HOST = 256
MIN_PEERS_PER_SUBNET = 1024
OTHER_NODES = 8


def peers_per_address_limit(network_size: int, least: int) -> int:
    """A per-host or per-subnet contact limit for a network of `network_size` workers."""
    return max(least, network_size + bootstrap_count(network_size) + OTHER_NODES)


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
    # Routing-table contacts per IP address and per /24; None: peers_per_address_limit()
    # of network_size (an operator's explicit figure wins).
    max_peers_per_host: int | None = None
    max_peers_per_subnet: int | None = None

    def __post_init__(self) -> None:
        # Settings hold the strategy's name; raises ValueError for an unknown one.
        object.__setattr__(self, "bootstrap_strategy", Strategy(self.bootstrap_strategy))
        for name, least in (
            ("max_peers_per_host", MIN_PEERS_PER_HOST),
            ("max_peers_per_subnet", MIN_PEERS_PER_SUBNET),
        ):
            if getattr(self, name) is None:
                object.__setattr__(self, name, peers_per_address_limit(self.network_size, least))

    @property
    def peer_limits(self) -> tuple[int, int]:
        """(contacts per host, per subnet), as resolved at construction."""
        assert self.max_peers_per_host is not None and self.max_peers_per_subnet is not None
        return self.max_peers_per_host, self.max_peers_per_subnet

"""Every Prometheus metric of the system, defined once on the default registry.

Names follow Prometheus's conventions (a cqkd_ prefix, base units, _total counters);
labels are bounded (no node or key labels).
In-process networks (`cqkd local`) share this registry.
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from cqkd import __version__

disable_created_metrics()  # *_created series only double the scrape size here

_LOOKUP_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
)
_DISCOVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0)
_SESSION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

# --- DHT layer ---
DHT_LOOKUP_DURATION = Histogram(
    "cqkd_dht_lookup_duration_seconds",
    "Duration of DHT lookups (get, set, find_node) and of a crawl's FIND_NODEs (crawl).",
    ["operation"],
    buckets=_LOOKUP_BUCKETS,
)
DHT_QUERIES = Counter(
    "cqkd_dht_queries_total",
    "DHT operations by operation and result.",
    ["operation", "result"],
)
DHT_DISCOVERY_DURATION = Histogram(
    "cqkd_dht_discovery_duration_seconds",
    "Time from a node's join until it knows enough peers (or a discover() call).",
    buckets=_DISCOVERY_BUCKETS,
)
# One value per node, so that a deployment's p50/p99 over nodes are Prometheus quantiles
# over instances (the histogram above mixes a node's join with its later discover() calls).
DHT_JOIN_DURATION = Gauge(
    "cqkd_dht_join_duration_seconds",
    "Time this node took to join: from its first bootstrap attempt to a filled routing table.",
)
DHT_JOINED_TIMESTAMP = Gauge(
    "cqkd_dht_joined_timestamp_seconds", "Unix time at which this node finished joining (up)."
)
ROUTING_TABLE_PEERS = Gauge("cqkd_routing_table_peers", "Peers in the routing table.")
# The live adaptive parameters (node/src/cqkd/dht/params.py's table, or pinned settings).
DHT_ALPHA = Gauge("cqkd_dht_alpha", "Kademlia lookup parallelism in use.")
DHT_K = Gauge("cqkd_dht_k", "Kademlia bucket size in use.")
DHT_QUERY_TIMEOUT = Gauge("cqkd_dht_query_timeout_seconds", "Time a DHT lookup may take.")
DHT_NETWORK_SIZE_ESTIMATE = Gauge(
    "cqkd_dht_network_size_estimate",
    "Network size the node estimates (at least the configured worker count).",
)
DHT_REJECTED_DATAGRAMS = Counter(
    "cqkd_dht_rejected_datagrams_total",
    "Datagrams dropped by validation, by reason.",
    ["reason"],
)
DHT_STORE_REFUSED = Counter(
    "cqkd_dht_store_refused_total",
    "STORE RPCs refused: storage unused on this node, or a bound reached, by reason.",
    ["reason"],
)
DHT_CONTACTS_REFUSED = Counter(
    "cqkd_dht_contacts_refused_total",
    "Peers kept out of the routing table (address, IP or subnet limit, id clash), by reason.",
    ["reason"],
)

# --- CQKD protocol ---
NETWORK_CONVERGED_TIMESTAMP = Gauge(
    "cqkd_network_converged_timestamp_seconds",
    "Unix time at which Alice (or Bob) last began to see every expected worker (0: not now).",
)
SESSION_DURATION = Histogram(
    "cqkd_session_duration_seconds", "Duration of key sessions.", ["party"],
    buckets=_SESSION_BUCKETS,
)
# `party`: alice or bob; both count every session (one process holds both in `cqkd local`).
SESSIONS = Counter("cqkd_sessions_total", "Key sessions by outcome.", ["party", "outcome"])
QBER = Gauge(
    "cqkd_qber_ratio", "Quantum bit error rate estimated in the last session.", ["party"]
)
LEAKED = Counter(
    "cqkd_reconciliation_leaked_total",
    "Bits disclosed by error correction (Cascade parities, verification hashes).",
)
RECONCILIATION_EFFICIENCY = Histogram(
    "cqkd_reconciliation_efficiency_ratio",
    "Cascade's efficiency f = parities / (n h2(e)) per session (1 is the Shannon limit).",
    buckets=(1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5, 2.0, 3.0),
)
# Counted in key positions (one bit each): promtool rejects "bits" in a metric name.
KEY_POSITIONS = Counter(
    "cqkd_key_positions_total", "Key positions (one bit each) by stage.", ["stage"]
)
ROLE_OPERATIONS = Counter(
    "cqkd_role_operations_total", "Role commands executed by workers, by role.", ["role"]
)
# Bounded reasons (see qkd.channel.Refused): relayed, replayed, foreign_sender, untrusted.
MESSAGES_REFUSED = Counter(
    "cqkd_messages_refused_total",
    "Protocol messages refused for their origin (relayed, replayed, wrong sender).",
    ["reason"],
)

# --- HTTP APIs (control, ETSI 014) ---
HTTP_REFUSED = Counter(
    "cqkd_http_refused_total",
    "Connections or requests an API refused before its application saw them, by api and reason.",
    ["api", "reason"],
)

BUILD_INFO = Gauge("cqkd_build_info", "Build information (always 1).", ["version", "python"])
BUILD_INFO.labels(version=__version__, python=platform.python_version()).set(1)


def exposition() -> tuple[bytes, str]:
    """The registry in the Prometheus text format, with its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST

"""Metric names the tests hold the nodes, the dashboards and deployments to."""

# The live adaptive Kademlia parameters every node exports (issue 13): alpha, k, the query
# timeout and the network size they follow. Spelled out, not read from cqkd.metrics, so
# that a renamed gauge fails the tests instead of following along.
DHT_PARAMETER_GAUGES = (
    "cqkd_dht_alpha",
    "cqkd_dht_k",
    "cqkd_dht_query_timeout_seconds",
    "cqkd_dht_network_size_estimate",
)

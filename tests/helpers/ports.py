"""Free loopback ports for the processes and containers the tests start."""

from __future__ import annotations

from cqkd.httpd import shared_port

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP right now: a node uses one number for
    both (the DHT on UDP, /health and /metrics on TCP). Another process may take it before
    the caller binds it; the tests start their processes at once to keep that window short.
    """
    return shared_port(LOOPBACK, 0)

"""A node's DHT (UDP) and its /health and /metrics server (TCP) share one port number."""

import socket

from cqkd.httpd import shared_port
from helpers.ports import LOOPBACK


def test_a_picked_number_is_free_for_udp_and_tcp() -> None:
    for _ in range(50):
        number = shared_port(LOOPBACK, 0)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind((LOOPBACK, number))
            udp.bind((LOOPBACK, number))


def test_a_number_given_by_the_settings_is_kept() -> None:
    assert shared_port(LOOPBACK, 6000) == 6000

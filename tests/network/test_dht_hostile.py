"""Issue 11 items 1-8: a hostile peer over real UDP on 127.0.0.1 against in-process nodes.

The hostile peer is a bare asyncio datagram socket that crafts rpcudp datagrams itself; it
answers pings only when told to (an attacker with a forged address cannot).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
from collections.abc import Callable

import msgpack
import pytest
from cqkd.dht.config import DhtConfig
from cqkd.dht.node import DhtNode
from cqkd.dht.protocol import (
    AMPLIFICATION_FACTOR,
    MAX_DATAGRAM_BYTES,
    MAX_VALUE_BYTES,
)
from cqkd.dht.storage import MAX_BYTES, MAX_VALUES, PER_SOURCE
from cqkd.metrics import DHT_CONTACTS_REFUSED, DHT_REJECTED_DATAGRAMS, DHT_STORE_REFUSED
from cqkd.qkd.channel import RPC_MESSAGE, Channel
from cqkd.qkd.crypto import Identity
from cqkd.qkd.fragments import PER_SOURCE_BYTES
from cqkd.settings import Settings, load_settings
from cqkd.sim.network import LocalNetwork
from helpers.processes import CQKD
from helpers.waits import until
from kademlia.node import Node

pytestmark = pytest.mark.network

Address = tuple[str, int]


def fast_settings(**overrides: object) -> Settings:
    return load_settings(rpc_timeout=0.5, **overrides)


def fast_config(**overrides: object) -> DhtConfig:
    return DhtConfig(**fast_settings(**overrides).dht_options())


def count(metric: object, reason: str) -> float:
    return metric.labels(reason=reason)._value.get()  # type: ignore[attr-defined,no-any-return]


def request(name: str, *args: object) -> bytes:
    return b"\x00" + os.urandom(20) + msgpack.packb([name, list(args)])


class Hostile(asyncio.DatagramProtocol):
    """A raw UDP peer: keeps every answer it gets; answers pings if `honest`."""

    def __init__(self, honest: bool = False) -> None:
        self.honest = honest
        self.node_id = os.urandom(20)
        self.answers: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, honest: bool = False) -> Hostile:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(
            lambda: cls(honest), local_addr=("127.0.0.1", 0)
        )
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if data[0] == 1:
            self.answers.append(data)
        elif self.honest and msgpack.unpackb(data[21:])[0] == "ping":
            self.send(b"\x01" + data[1:21] + msgpack.packb(self.node_id), addr)

    def send(self, data: bytes, addr: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def bodies(self) -> list[object]:
        return [msgpack.unpackb(a[21:]) for a in self.answers]

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


async def settle(check: Callable[[], object], within: float = 5.0) -> None:
    """Wait until check() is true (datagrams on loopback take a few loop turns)."""
    await until(check, "the condition", within, interval=0.02)


async def proven(peer: Hostile, *nodes: DhtNode) -> None:
    """Let the nodes prove the peer's address (it answers their ping): past the rate limit
    of unproven addresses, the bounds under test are what refuses."""
    assert peer.honest and peer.transport is not None
    address = peer.transport.get_extra_info("sockname")
    for node in nodes:
        peer.send(request("ping", peer.node_id), node.address)
    await settle(lambda: all(node.protocol.is_proven(address) for node in nodes))
    peer.answers.clear()


async def started(*nodes: DhtNode) -> None:
    for node in nodes:
        await node.start()


# --- item 1: STORE ---


async def test_store_is_declined_by_workers_and_bounded_elsewhere() -> None:
    worker = DhtNode(fast_config(), "worker", host="127.0.0.1", port=0, accept_store=False)
    keeper = DhtNode(fast_config(), "bootstrap", host="127.0.0.1", port=0)
    await started(worker, keeper)
    peer = await Hostile.open(honest=True)
    try:
        await proven(peer, worker, keeper)
        unused = count(DHT_STORE_REFUSED, "unused")
        per_source = count(DHT_STORE_REFUSED, "per_source")
        sent = int(MAX_VALUES * PER_SOURCE) + 200
        value = os.urandom(900)
        for i in range(sent):
            for target in (worker, keeper):
                peer.send(request("store", peer.node_id, os.urandom(20), value), target.address)
            if i % 20 == 0:
                await asyncio.sleep(0.005)  # stay within the receive buffers
        await settle(lambda: len(peer.answers) >= 2 * sent)
        await asyncio.sleep(0.2)
        # Both answer every STORE: the worker declines each (False, never a silent drop,
        # which made writers and caching lookups wait out an RPC timeout), the keeper
        # stores up to its bounds.
        assert len(peer.answers) == 2 * sent
        assert count(DHT_STORE_REFUSED, "unused") - unused == sent
        assert len(worker.protocol.storage) == 0
        stored = peer.bodies().count(True)
        refused = peer.bodies().count(False) - sent
        assert stored == len(keeper.protocol.storage) <= MAX_VALUES * PER_SOURCE
        assert refused == sent - stored > 0
        assert count(DHT_STORE_REFUSED, "per_source") - per_source == refused
        assert keeper.protocol.storage.bytes_used <= MAX_BYTES * PER_SOURCE
    finally:
        peer.close()
        await worker.stop()
        await keeper.stop()


# --- item 2: fragments ---


async def test_fragments_before_authentication_are_capped_per_source() -> None:
    node = DhtNode(fast_config(), "bob", host="127.0.0.1", port=0)
    Channel(node, Identity.generate())
    await node.start()
    flood, other = await Hostile.open(honest=True), await Hostile.open()
    try:
        await proven(flood, node)
        data = os.urandom(7000)
        sent = 2 * PER_SOURCE_BYTES // len(data)  # twice what one source may hold
        for i in range(sent):
            fragment = b"\x01" + os.urandom(8) + (0).to_bytes(2, "big") + (2).to_bytes(2, "big")
            flood.send(request("app", flood.node_id, RPC_MESSAGE, fragment + data), node.address)
            if i % 20 == 0:
                await asyncio.sleep(0.005)
        await settle(lambda: len(flood.answers) >= sent, within=15)
        accepted = sum(body == [0, b""] for body in flood.bodies())
        assert 0 < accepted * len(data) <= PER_SOURCE_BYTES
        assert accepted < sent
        # Another address still gets its fragments in.
        fragment = b"\x01" + os.urandom(8) + (0).to_bytes(2, "big") + (2).to_bytes(2, "big")
        other.send(request("app", other.node_id, RPC_MESSAGE, fragment + data), node.address)
        await settle(lambda: len(other.answers) == 1)
        assert other.bodies() == [[0, b""]]
    finally:
        flood.close()
        other.close()
        await node.stop()


# --- item 3: routing-table flooding ---


async def test_one_address_holds_one_contact_and_a_host_a_bounded_number() -> None:
    node = DhtNode(fast_config(dht_max_peers_per_host=4), host="127.0.0.1", port=0)
    await node.start()
    peers = [await Hostile.open(honest=True) for _ in range(12)]
    try:
        await proven(peers[0], node)
        for i in range(300):  # one address, random ids
            peers[0].send(request("ping", os.urandom(20)), node.address)
            if i % 20 == 0:
                await asyncio.sleep(0.005)  # stay within the receive buffers
        await settle(lambda: len(peers[0].answers) == 300)
        assert node.routing_table_size <= 1
        for peer in peers[1:]:  # eleven more addresses of one host
            peer.send(request("ping", peer.node_id), node.address)
        await settle(lambda: all(p.answers for p in peers[1:]))
        assert node.routing_table_size == 4
        assert count(DHT_CONTACTS_REFUSED, "host_limit") > 0
    finally:
        for peer in peers:
            peer.close()
        await node.stop()


# --- item 4: sizes checked before acting ---


async def test_values_and_answers_fit_the_receivers_limit() -> None:
    failures: list[object] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: failures.append(context))
    async with LocalNetwork(fast_settings(), workers=4) as net:
        writer, reader = net.workers[0], net.workers[1]
        with pytest.raises(ValueError, match="over the"):
            await writer.set("big", os.urandom(MAX_VALUE_BYTES + 1))
        assert len(writer.protocol.storage) == 0
        largest = os.urandom(MAX_VALUE_BYTES - 8)
        assert await writer.set("largest", largest)
        assert await reader.get("largest") == largest
        assert not reader.protocol.is_dead(writer.address)
        # k = 200 (the largest setting) and long host strings: a find_node answer to a
        # proven peer is cut to fit, never sent too large.
        target = net.workers[2]
        target.protocol.router.ksize = 200
        for bucket in target.protocol.router.buckets:
            bucket.ksize = 200
        for _ in range(300):
            target.protocol.router.add_contact(Node(os.urandom(20), "255.255.255.255", 65535))
        peer = await Hostile.open(honest=True)
        peer.send(request("ping", peer.node_id), target.address)
        await settle(lambda: len(peer.answers) == 1)
        await asyncio.sleep(0.1)  # the target's proving ping is answered
        peer.send(request("find_node", peer.node_id, os.urandom(20)), target.address)
        await settle(lambda: len(peer.answers) == 2)
        assert MAX_DATAGRAM_BYTES // 2 < len(peer.answers[1]) <= MAX_DATAGRAM_BYTES
        peer.close()
    gc.collect()  # an exception never retrieved is reported when its task is collected
    await asyncio.sleep(0)
    assert not failures, failures


# --- item 5: identity clashes ---


async def test_same_node_id_twice_is_logged_and_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    twin_id = os.urandom(20).hex()
    boot = DhtNode(fast_config(), "bootstrap", host="0.0.0.0", port=0)
    first = DhtNode(fast_config(node_id=twin_id), host="127.0.0.1", port=0)
    second = DhtNode(fast_config(node_id=twin_id), host="127.0.0.1", port=0)
    await started(boot, first, second)
    try:
        clashes = count(DHT_CONTACTS_REFUSED, "id_clash")
        entry = ("127.0.0.1", boot.address[1])
        # A bootstrap list that names the node itself is no clash.
        assert await boot.join([entry], required=False) is False
        await first.join([entry])
        await second.join([entry], required=False)
        lines = [r for r in caplog.records if r.getMessage() == "node_id_clash"]
        assert lines and count(DHT_CONTACTS_REFUSED, "id_clash") > clashes
        assert {r.fields["node_id"] for r in lines} == {twin_id}  # type: ignore[attr-defined]
        fields = lines[0].fields  # type: ignore[attr-defined]
        assert fields["node_id"] == twin_id
        addresses = {fields["address"], fields["held_by"]}
        assert addresses == {f"127.0.0.1:{first.address[1]}", f"127.0.0.1:{second.address[1]}"}
        held = boot.protocol.router.contact(bytes.fromhex(twin_id))
        assert (held.ip, held.port) == first.address  # the first stays, unmoved
    finally:
        for node in (boot, first, second):
            await node.stop()


async def test_a_node_restarted_with_a_new_id_replaces_its_stale_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with LocalNetwork(fast_settings(), workers=4) as net:
        gone = net.workers[0]
        old_id, port = gone.node_id, gone.address[1]
        holders = [n for n in net.nodes if n.protocol.router.contact(old_id) is not None]
        assert len(holders) >= 3
        await gone.stop()
        reborn = DhtNode(fast_config(), host="127.0.0.1", port=port)
        await reborn.start()
        try:
            await reborn.join(net.bootstrap_addresses)
            contacted = [n for n in holders if n.running
                         and n.protocol.router.contact(reborn.node_id) is not None]
            await settle(lambda: all(n.protocol.router.contact(old_id) is None
                                     for n in contacted), within=3)
            assert contacted
            changed = [r for r in caplog.records if r.getMessage() == "peer_id_changed"]
            assert 1 <= len(changed) <= len(contacted)
            # A ping to the old id, answered by the new node, is not a success.
            checker = contacted[0].protocol
            answered, _ = await checker.call_ping(Node(old_id, "127.0.0.1", port))
            assert not answered
        finally:
            await reborn.stop()


# --- item 6: host addresses ---


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DHT_HOST", "::1"), ("DHT_HOST", "999.1.1.1"), ("BOOTSTRAP_NODES", "[::1]:5678")],
)
def test_unsupported_addresses_exit_2_with_one_line(variable: str, value: str) -> None:
    env = {**os.environ, "BOOTSTRAP_NODES": "127.0.0.1:9", variable: value, "DHT_PORT": "0"}
    done = subprocess.run(
        [*CQKD, "worker"], env=env, capture_output=True, text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr[-500:]
    assert done.stderr.strip().count("\n") == 0
    assert f"invalid setting {variable}=" in done.stderr


# --- item 7: refusals in the application layer ---


async def test_refused_messages_are_counted_and_their_log_lines_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    node = DhtNode(fast_config(), "bob", host="127.0.0.1", port=0)
    Channel(node, Identity.generate())
    await node.start()
    peer = await Hostile.open(honest=True)
    try:
        await proven(peer, node)
        before = count(DHT_REJECTED_DATAGRAMS, "app_refused")
        for i in range(200):
            box = b"\x00" + os.urandom(120)  # a whole message whose seal does not open
            peer.send(request("app", peer.node_id, RPC_MESSAGE, box), node.address)
            if i % 20 == 0:
                await asyncio.sleep(0.005)
        await settle(lambda: len(peer.answers) == 200)
        assert count(DHT_REJECTED_DATAGRAMS, "app_refused") - before == 200
        lines = [r for r in caplog.records if r.getMessage() == "app_rpc_handler_error"]
        assert 0 < len(lines) <= 10
    finally:
        peer.close()
        await node.stop()


# --- item 8: amplification ---


async def test_answers_to_unproven_addresses_are_at_most_three_times_the_request() -> None:
    node = DhtNode(fast_config(), host="127.0.0.1", port=0)
    await node.start()
    for i in range(40):
        node.protocol.router.add_contact(Node(os.urandom(20), "10.0.0.1", 7000 + i))
    forged, honest = await Hostile.open(), await Hostile.open(honest=True)
    try:
        ask = request("find_node", forged.node_id, os.urandom(20))
        forged.send(ask, node.address)
        await settle(lambda: len(forged.answers) == 1)
        assert len(forged.answers[0]) <= AMPLIFICATION_FACTOR * len(ask)
        assert forged.bodies()[0]  # still some contacts: the nearest first
        honest.send(request("ping", honest.node_id), node.address)
        await settle(lambda: len(honest.answers) == 1)
        await asyncio.sleep(0.1)  # the node's proving ping is answered
        honest.send(ask, node.address)
        await settle(lambda: len(honest.answers) == 2)
        assert len(honest.bodies()[1]) == node.params.k  # type: ignore[arg-type]
    finally:
        forged.close()
        honest.close()
        await node.stop()



# --- all items: a flood from one address is refused before it is parsed ---


async def test_an_unproven_flooding_address_is_dropped_before_parsing() -> None:
    node = DhtNode(fast_config(), host="127.0.0.1", port=0)
    await node.start()
    flood, peer = await Hostile.open(), await Hostile.open(honest=True)
    try:
        await proven(peer, node)
        before = count(DHT_REJECTED_DATAGRAMS, "rate_limited")
        for i in range(1000):
            flood.send(request("find_node", flood.node_id, os.urandom(20)), node.address)
            if i % 20 == 0:
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)
        limited = count(DHT_REJECTED_DATAGRAMS, "rate_limited") - before
        assert len(flood.answers) + limited == 1000
        assert 500 < limited < 1000
        peer.send(request("ping", peer.node_id), node.address)  # a proven peer still served
        await settle(lambda: len(peer.answers) == 1)
    finally:
        flood.close()
        peer.close()
        await node.stop()

"""Alice and Bob find every worker, also those that join after them (issue 14): a crawl of
the id space, not lookups of random ids. Real UDP on loopback, in this process."""

import asyncio
import math

import pytest
from cqkd.dht.node import DhtNode, Peer
from cqkd.dht.routing import contact_node
from cqkd.qkd.channel import RPC_HELLO
from cqkd.qkd.crawl import Crawl
from cqkd.settings import load_settings
from cqkd.sim.late_join import late_join
from cqkd.sim.network import LocalNetwork
from helpers.network import protocol_network
from helpers.waits import until

pytestmark = pytest.mark.network


async def test_alice_and_bob_see_every_worker_that_joined_after_them() -> None:
    # 400 workers join over 10 s once Alice and Bob run. A count, not a time: 5 s after
    # the last one is up (the goal is 2 s; the crawl took under 1 s here at a load of 40)
    # both must see every one. Lookups of random ids missed 1 to 10 of them, 5 runs in 5.
    result = await late_join(load_settings(rpc_timeout=3.0), workers=400, join_seconds=10.0,
                             wait_seconds=5.0)
    assert (result.alice_seen, result.bob_seen) == (400, 400)


async def test_a_crawl_from_one_bootstrap_finds_every_node_within_its_request_bound() -> None:
    async with LocalNetwork(load_settings(rpc_timeout=3.0), workers=200) as net:
        crawler = await net.add_node("alice")
        everyone = {n.node_id for n in net.nodes} - {crawler.node_id}
        bootstrap = next(p for p in crawler.live_peers()
                         if p.node_id == net.bootstraps[0].node_id)
        seen: set[bytes] = set()
        crawl = Crawl(crawler, expected=200, on_found=lambda peers: seen.update(
            p.node_id for p in peers))
        found = await crawl.run([bootstrap])
        assert set(found) == everyone and everyone - {bootstrap.node_id} <= seen
        # 204 nodes at k=40: 16 blocks of about 13, two requests each, and more steps in
        # blocks where the crawler knew nobody at first.
        assert crawl.depth == 4 and 32 <= crawl.requests <= crawl.budget == 256


async def test_repeated_crawls_find_a_node_only_one_member_of_its_block_knows() -> None:
    # Hundreds of nodes joining at once leave holes in what block-mates know of each other
    # (500 workers in containers: one known to 43 of 510 nodes, to neither member nearest
    # its block's centre, and never seen by Alice in 180 s of crawls). Here the hidden node
    # is known only to the member of its block farthest from the centre; the crawls that
    # Alice repeats while a worker is unseen must reach it.
    async with LocalNetwork(load_settings(rpc_timeout=3.0), workers=200) as net:
        crawler = await net.add_node("alice")
        depth = Crawl(crawler, expected=200, on_found=lambda peers: None).depth
        size = 2 ** (160 - depth)

        def block_mates(node: DhtNode) -> list[DhtNode]:
            low = int.from_bytes(node.node_id, "big") // size * size
            centre = low + size // 2
            return sorted(
                (n for n in net.nodes
                 if n is not node and n is not crawler
                 and low <= int.from_bytes(n.node_id, "big") < low + size),
                key=lambda n: int.from_bytes(n.node_id, "big") ^ centre,
            )

        # A worker with at least five block-mates (about 200 / 2**depth = 12 on average).
        hidden, mates = next((w, m) for w in net.workers if len(m := block_mates(w)) >= 5)
        keeper = mates[-1]
        for node in net.nodes:
            if node is not keeper and (contact := node.protocol.router.contact(hidden.node_id)):
                node.protocol.router.remove_contact(contact)
        if keeper.protocol.router.contact(hidden.node_id) is None:
            keeper.protocol.router.add_contact(contact_node(hidden.node_id, *hidden.address))
        # What Alice's earlier crawls found: every other node.
        seeds = [Peer(n.node_id, *n.address) for n in net.nodes if n not in (hidden, crawler)]
        # A crawl asks two of the mates it knows: it misses the keeper with odds
        # 1 - 2 / len(mates); enough crawls to miss it in all with odds under 1e-6.
        enough = math.ceil(math.log(1e-6) / math.log(1 - 2 / len(mates)))
        crawls = 0
        found: dict[bytes, Peer] = {}
        while hidden.node_id not in found and crawls < enough:
            crawls += 1
            found = await Crawl(crawler, expected=200, on_found=lambda peers: None).run(seeds)
        assert hidden.node_id in found, f"not found in {crawls} crawls"


async def test_a_worker_that_answers_hellos_late_is_not_dropped() -> None:
    # A loaded host answers after the RPC timeout (500 starting containers on 2 cores:
    # thousands of late answers); Alice waits three RPC timeouts for a hello's answer. On
    # the old code the slow worker missed both forced refreshes and was dropped (5 of 6).
    async with protocol_network(load_settings(rpc_timeout=0.5), workers=6) as (_, p):
        slow = p.workers[0]
        answer_hello = slow.channel._on_hello

        async def late_hello(sender: tuple[str, int], payload: bytes) -> bytes:
            await asyncio.sleep(0.9)
            return await answer_hello(sender, payload)

        slow.channel.node.register_rpc(RPC_HELLO, late_hello)
        for _ in range(2):
            seen = await p.alice.directory.workers(refresh=True)
        assert slow.channel.node.address in {(w.host, w.port) for w in seen}
        assert len(p.alice.directory.known) == 6


async def test_a_worker_that_missed_a_hello_is_greeted_again_before_the_dead_mark_ends() -> None:
    # A missed hello marks the address dead in the DHT layer for DEAD_PEER_TTL (15 s),
    # during which the old code's hellos failed at once: Alice could not see the worker
    # again for that long (workers whose hellos timed out while 500 containers started).
    # Hellos now ask all the same.
    async with protocol_network(load_settings(rpc_timeout=0.5), workers=6) as (_, p):
        slow = p.workers[0]
        answer_hello = slow.channel._on_hello
        silent = [True]

        async def hello_after_the_first(sender: tuple[str, int], payload: bytes) -> bytes:
            if silent:
                silent.clear()
                await asyncio.Event().wait()  # never answers this one, not even late
            return await answer_hello(sender, payload)

        slow.channel.node.register_rpc(RPC_HELLO, hello_after_the_first)
        address = slow.channel.node.address
        seen = await p.alice.directory.workers(refresh=True)
        assert address not in {(w.host, w.port) for w in seen}
        assert not p.alice.node.is_reachable(address)
        p.alice.directory.recheck(address)

        async def seen_again() -> bool:
            workers = await p.alice.directory.workers(wait=False)
            return address in {(w.host, w.port) for w in workers}

        await until(seen_again, "Alice sees the worker again", seconds=5)


async def test_a_recheck_replaces_a_hello_sent_before_the_worker_restarted() -> None:
    # A hello sent while a worker is between its stop and its restart is never answered;
    # the old code's recheck waited for it (three RPC timeouts) and greeted nobody, so the
    # session after a redeploy could find too few workers. The stale hello, once replaced,
    # must not mark the address dead when its timer would have run out either.
    async with protocol_network(load_settings(rpc_timeout=1.0), workers=6) as (_, p):
        worker = p.workers[0]
        answer_hello = worker.channel._on_hello
        restarted = asyncio.Event()

        async def hello_once_restarted(sender: tuple[str, int], payload: bytes) -> bytes:
            if not restarted.is_set():
                await asyncio.Event().wait()  # stopped: this hello is never answered
            return await answer_hello(sender, payload)

        worker.channel.node.register_rpc(RPC_HELLO, hello_once_restarted)
        address = worker.channel.node.address
        directory = p.alice.directory
        directory.recheck(address)
        await asyncio.sleep(0.2)  # the hello is in flight
        restarted.set()
        directory.recheck(address)

        async def seen() -> bool:
            return address in {(w.host, w.port) for w in await directory.workers(wait=False)}

        await until(seen, "Alice greets the restarted worker", seconds=1.5)
        await asyncio.sleep(3.5)  # past the stale hello's three RPC timeouts
        assert p.alice.node.is_reachable(address)
        assert await seen()

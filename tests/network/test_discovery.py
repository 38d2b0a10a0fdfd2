"""Alice and Bob find every worker, also those that join after them (issue 14): a crawl of
the id space, not lookups of random ids. Real UDP on loopback, in this process."""

import pytest
from cqkd.qkd.crawl import Crawl
from cqkd.settings import load_settings
from cqkd.sim.late_join import late_join
from cqkd.sim.network import LocalNetwork

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

"""Session state at Bob expires on a timer, whatever traffic comes: 500 sessions that Alice
opens and never finishes are gone after their TTL with no further message, and Bob's
memory is back to where it was (within 5 MiB)."""

import asyncio
import gc
import os

import pytest
from cqkd.qkd.channel import Channel
from cqkd.settings import load_settings
from helpers.network import protocol_network

pytestmark = pytest.mark.network

SESSIONS = 500
POSITIONS = 2000
TTL_SECONDS = 2.0
SLACK_BYTES = 5 << 20


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_500_half_open_sessions_leave_no_state_after_the_ttl() -> None:
    settings = load_settings(rpc_timeout=5.0, session_ttl=TTL_SECONDS)
    async with protocol_network(settings, 6) as (net, p):
        # Alice's key on a node of its own: Bob sees sessions that Alice never goes on with.
        alice = Channel(await net.add_node("half-open"), p.alice.identity)
        bob = await alice.hello(p.bob.node.address)
        assert bob is not None
        gc.collect()
        baseline = rss_bytes()

        async def open_one(index: int) -> None:
            reply = await alice.send(bob, {
                "k": "round", "pid": f"{index:032x}", "seq": 1, "round": 0, "lc": 64,
                "mode": "pooled", "rk": index.to_bytes(16, "big"), "n": POSITIONS,
                "chains": [], "used": [],
            })
            assert reply == {"bgb": []}

        for start in range(0, SESSIONS, 25):
            await asyncio.gather(*(open_one(i) for i in range(start, start + 25)))
        assert len(p.bob._sessions) == SESSIONS
        grown = rss_bytes() - baseline
        # No traffic from here on: only Bob's timer can clear the state.
        for _ in range(int(4 * TTL_SECONDS / 0.1)):
            if not p.bob._sessions:
                break
            await asyncio.sleep(0.1)
        gc.collect()
        assert not p.bob._sessions and not p.bob._rounds
        after = rss_bytes() - baseline
        assert after <= SLACK_BYTES, f"RSS +{after >> 20} MiB after the TTL (+{grown >> 20})"
        assert p.bob.session(f"{0:032x}").outcome == "timeout"

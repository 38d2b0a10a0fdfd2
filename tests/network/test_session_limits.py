"""Alice alone limits her sessions: ACTIVE_SESSIONS run at once, the rest wait, and each
consumer may have MAX_RUNNING_SESSIONS running or waiting. Real UDP on loopback."""

import asyncio

import pytest
from cqkd.qkd.keystore import CONTROL, etsi_consumer
from cqkd.qkd.session import TooManySessions
from cqkd.settings import load_settings
from helpers.network import protocol_network

pytestmark = pytest.mark.network


async def test_each_consumer_may_have_max_running_sessions_at_alice() -> None:
    settings = load_settings(max_running_sessions=2, active_sessions=1)
    async with protocol_network(settings, 6) as (_, p):
        sae_pair = etsi_consumer("sae-master", "sae-slave")
        control = [p.alice.begin_session(64, CONTROL) for _ in range(2)]
        with pytest.raises(TooManySessions, match="2 sessions are running"):
            p.alice.begin_session(64, CONTROL)
        # Another consumer's sessions are counted apart: the control API cannot starve
        # the SAE pair's pool, nor the other way round.
        etsi = p.alice.begin_session(64, sae_pair)
        views = await asyncio.gather(*(p.alice.wait(pid) for pid in [*control, etsi]))
        assert [v.outcome for v in views] == ["confirmed"] * 3, [v.error for v in views]
        # Ended sessions free their places.
        view = await p.alice.run_session(64, CONTROL)
        assert view.outcome == "confirmed", view.error

"""One in-process CQKD network (15 workers, Alice, Bob) with both sides' APIs, per module."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from api_harness import KME_IDS, WORKERS, Deployment, make_pki, serve_apis
from cqkd.settings import load_settings
from cqkd.sim.network import LocalNetwork
from cqkd.sim.pki import LocalPki
from cqkd.sim.sessions import attach

CONVERGENCE_SECONDS = 30.0


async def converged(*parties: Any) -> None:
    """Until every party sees all the workers (as a deployment waits for /ready), or the
    timeout: then the readiness test fails and says why, and the others still run."""
    deadline = asyncio.get_running_loop().time() + CONVERGENCE_SECONDS
    # The engine announces no event for this; its status is what /ready reads too.
    while not all(party.network_status()["converged"] for party in parties):
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.1)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return make_pki(tmp_path_factory.mktemp("foreign-pki"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(pki: LocalPki) -> AsyncIterator[Deployment]:
    settings = load_settings(**KME_IDS)
    async with LocalNetwork(settings, workers=WORKERS) as net:
        protocol = await attach(net, settings)
        await converged(protocol.alice, protocol.bob)
        parties = {"alice": protocol.alice, "bob": protocol.bob}
        stores = {"alice": protocol.alice_keys, "bob": protocol.bob_keys}
        try:
            async with contextlib.AsyncExitStack() as stack:
                apis = {
                    side: await stack.enter_async_context(
                        serve_apis(
                            pki, side, parties[side], stores[side], parties[side].node.node_id.hex()
                        )
                    )
                    for side in ("alice", "bob")
                }
                yield Deployment(pki, apis, stores, parties)
        finally:
            await protocol.stop()

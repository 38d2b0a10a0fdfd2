"""One in-process CQKD network (15 workers, Alice, Bob) with both sides' APIs, per module."""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from cqkd.sim.pki import LocalPki
from helpers.api import Deployment, api_network, make_pki

CONVERGENCE_SECONDS = 30.0


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return make_pki(tmp_path_factory.mktemp("foreign-pki"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(pki: LocalPki) -> AsyncIterator[Deployment]:
    async with api_network(pki, converge_seconds=CONVERGENCE_SECONDS) as deployment:
        yield deployment

"""Alice's KME key pool: enc_keys answers from keys made ahead of demand, fairly, and the pool
refills to its high watermark. Real network, real engine, real TLS clients."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest
import pytest_asyncio
from cqkd.sim.pki import LocalPki
from helpers.api import Deployment, api_network

if TYPE_CHECKING:
    from cqkd.qkd.pool import KeyPool

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

LOW, HIGH = 20, 60
FILL_SECONDS = 120.0  # generous: 60 sessions on a loaded 2-core machine


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pooled(pki: LocalPki) -> AsyncIterator[Deployment]:
    # No wait for convergence: the pool waits until Alice is ready.
    async with api_network(pki, key_pool_low=LOW, key_pool_high=HIGH) as deployment:
        yield deployment


def pool_of(deployment: Deployment) -> "KeyPool":
    pool = deployment.apis["alice"].pool
    assert pool is not None
    return pool


async def stored_key_count(master: httpx.AsyncClient, deployment: Deployment) -> int:
    response = await master.get(f"/api/v1/keys/{deployment.slave_sae}/status")
    assert response.status_code == 200, response.text
    return int(response.json()["stored_key_count"])


async def until_full(
    master: httpx.AsyncClient, deployment: Deployment, keys: int = HIGH
) -> None:
    """Until the pool holds `keys` keys (it refills to HIGH once below LOW)."""
    deadline = asyncio.get_running_loop().time() + FILL_SECONDS
    while (count := await stored_key_count(master, deployment)) < keys:
        assert asyncio.get_running_loop().time() < deadline, f"pool at {count} of {keys}"
        await asyncio.sleep(0.2)


async def test_enc_keys_answers_from_the_pool_without_a_session(pooled: Deployment) -> None:
    async with pooled.etsi("alice", "master") as master, pooled.etsi("bob", "slave") as slave:
        await until_full(master, pooled)
        pool = pool_of(pooled)
        assert await stored_key_count(master, pooled) == pool.stored() == HIGH
        started = pool.sessions_started
        response = await master.post(pooled.enc_keys, json={"number": 8})
        assert response.status_code == 200, response.text
        keys = response.json()["keys"]
        # HIGH - 8 is above LOW: the pool starts no session, and none ran for the request.
        assert pool.sessions_started == started
        assert await stored_key_count(master, pooled) == HIGH - 8
        ids = [{"key_ID": key["key_ID"]} for key in keys]
        at_bob = await slave.post(pooled.dec_keys, json={"key_IDs": ids})
        assert at_bob.status_code == 200, at_bob.text
        assert at_bob.json()["keys"] == keys


async def test_twenty_concurrent_clients_get_distinct_keys(pooled: Deployment) -> None:
    clients = [pooled.etsi("alice", "master") for _ in range(20)]
    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        await until_full(clients[0], pooled, LOW)
        # 100 keys: more than the pool holds, so later requests wait for sessions in turn.
        responses = await asyncio.gather(
            *(client.post(pooled.enc_keys, json={"number": 5}) for client in clients)
        )
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    ids = [key["key_ID"] for r in responses for key in r.json()["keys"]]
    assert len(ids) == len(set(ids)) == 100


async def test_waiting_requests_are_served_in_arrival_order(pooled: Deployment) -> None:
    pool = pool_of(pooled)
    async with asyncio.timeout(FILL_SECONDS):
        await pool.take(max(pool.stored(), 1))  # drained: the big request waits for sessions
        finished: list[str] = []

        async def request(name: str, number: int) -> None:
            await pool.take(number)
            finished.append(name)

        big = asyncio.create_task(request("big", 32))
        await asyncio.sleep(0)  # the big request is queued first
        await asyncio.gather(big, *(request(f"small{i}", 1) for i in range(5)))
    # Served in turn: small requests do not overtake the big one that came first.
    assert finished[0] == "big", finished


async def test_pool_refills_to_high_after_draining(pooled: Deployment) -> None:
    async with pooled.etsi("alice", "master") as master:
        await until_full(master, pooled, LOW)
        pool = pool_of(pooled)
        started = pool.sessions_started
        while (stored := await stored_key_count(master, pooled)) >= LOW:
            response = await master.post(pooled.enc_keys, json={"number": min(stored, 32)})
            assert response.status_code == 200, response.text
        await until_full(master, pooled)
    assert pool.sessions_started - started >= HIGH - LOW

"""Alice's KME key pool: enc_keys answers from keys made ahead of demand, fairly, and the pool
refills to its high watermark. Real network, real engine, real TLS clients."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from cqkd.qkd.pool import KeyPool
from cqkd.qkd.session import SessionView
from cqkd.sim.pki import LocalPki
from helpers.api import Deployment, api_network

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

LOW, HIGH = 20, 60
FILL_SECONDS = 120.0  # generous: 60 sessions on a loaded 2-core machine


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pooled(pki: LocalPki) -> AsyncIterator[Deployment]:
    # No wait for convergence: the pool waits until Alice is ready.
    async with api_network(pki, key_pool_low=LOW, key_pool_high=HIGH) as deployment:
        yield deployment


def pool_of(deployment: Deployment) -> KeyPool:
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


async def test_requests_hold_the_refill_back(pooled: Deployment) -> None:
    """Counted, not timed: while requests are being answered from the pool it runs one
    session at a time at or below its low watermark and none above it; a request that has
    to wait for keys gets every session it may run at once."""
    alice = pooled.parties["alice"]
    running, most = 0, 0
    ended = asyncio.Event()

    async def counted(key_bits: int, consumer: str) -> SessionView:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            view: SessionView = await alice.run_session(key_bits, consumer)
            return view
        finally:
            running -= 1
            ended.set()

    async def until(done: Callable[[], bool]) -> None:
        while not done():
            ended.clear()
            await ended.wait()

    # Its own consumer, so the ETSI pool's keys stay out of the counts; requests hold the
    # refill back for an hour after each take, so a loaded machine cannot end the demand.
    pool = KeyPool(pooled.stores["alice"], counted, "test:demand", 256, low=4, high=12,
                   concurrency=2, demand_seconds=3600)
    pool.start()
    try:
        async with asyncio.timeout(FILL_SECONDS):
            await until(lambda: pool.stored() >= 12)  # no request yet: two sessions at once
            assert most == 2
            most = 0
            await pool.take(9)  # 3 left: at or below LOW, the refill runs beside the requests
            await until(lambda: pool.stored() > 4 and not running)
            await asyncio.sleep(0.2)  # a session the refill would start starts at once
            assert (most, running, pool.stored()) == (1, 0, 5)
            most = 0
            assert len(await pool.take(8)) == 8  # waits for keys: both sessions at once
            assert most == 2
    finally:
        await pool.stop()

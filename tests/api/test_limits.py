"""Limits answer 429 / 503 with a clear message: too many sessions, a full store, slow top-up."""

import asyncio
import contextlib
from collections.abc import Iterator

import httpx
import pytest
from cqkd.qkd.keystore import KeyStore
from helpers.api import Deployment, alice_apis

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


@contextlib.contextmanager
def full(store: KeyStore) -> Iterator[None]:
    """Make `store` full as it is, for the length of the block."""
    limit = store.max_keys
    store.max_keys = store.count()
    try:
        yield
    finally:
        store.max_keys = limit


async def test_too_many_running_sessions_429(deployment: Deployment) -> None:
    async with alice_apis(deployment, max_running_sessions=1) as apis:
        url = f"http://127.0.0.1:{apis.control.port}/generate-key"
        async with httpx.AsyncClient() as client:
            first, second = await asyncio.gather(
                *(
                    client.post(url, json={"desired_key_length": 4096}, headers=deployment.auth)
                    for _ in range(2)
                )
            )
    assert sorted([first.status_code, second.status_code]) == [202, 429]
    refused = first if first.status_code == 429 else second
    assert refused.headers["retry-after"] == "1"
    assert "sessions are running" in refused.json()["message"]


async def test_full_store_refuses_new_sessions_503(deployment: Deployment) -> None:
    async with deployment.control("alice") as alice:
        with full(deployment.stores["alice"]):
            response = await alice.post(
                "/generate-key", json={"desired_key_length": 64}, headers=deployment.auth
            )
    assert response.status_code == 503
    assert "key store is full" in response.json()["message"]


async def test_full_store_refuses_enc_keys_503(deployment: Deployment) -> None:
    async with deployment.etsi("alice", "master") as master:
        with full(deployment.stores["alice"]):
            response = await master.post(deployment.enc_keys, json={"number": 1, "size": 1024})
    assert response.status_code == 503
    assert set(response.json()) == {"message", "details"}


async def test_slow_top_up_503(deployment: Deployment) -> None:
    async with alice_apis(deployment, etsi_topup_timeout=0.001) as apis:
        assert apis.etsi is not None
        async with deployment.etsi_client(apis.etsi.port, "master") as master:
            response = await master.post(deployment.enc_keys, json={"number": 1, "size": 2048})
    assert response.status_code == 503
    assert "retry" in response.json()["message"]

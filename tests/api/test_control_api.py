"""Alice's and Bob's control APIs over real HTTP, driving the real engine on a real network."""

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers.api import Deployment
from helpers.keys import afinished_session

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

SESSION_WAIT_SECONDS = 30.0


@pytest.mark.parametrize("side", ["alice", "bob"])
async def test_status_endpoints_answer_without_token(deployment: Deployment, side: str) -> None:
    async with deployment.control(side) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.json()["role"] == side
        ready = await client.get("/ready")
        assert ready.status_code == 200, (await client.get("/network-status")).text
        assert ready.json()["ready"] is True
        network = await client.get("/network-status")
        assert network.status_code == 200
        assert network.json()["converged"] is True
        # Her own time of seeing every worker: the verify play's and the study's convergence.
        assert 0 < network.json()["converged_at"] <= time.time()
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "cqkd_build_info" in metrics.text
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        schema = (await client.get("/openapi.json")).json()
        assert ("/generate-key" in schema["paths"]) == (side == "alice")


async def test_generated_key_is_the_same_at_alice_and_bob(deployment: Deployment) -> None:
    async with deployment.control("alice") as alice, deployment.control("bob") as bob:
        accepted = await alice.post(
            "/generate-key", json={"desired_key_length": 256}, headers=deployment.auth
        )
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert len(body["process_id"]) == 32
        assert accepted.headers["location"] == body["status_url"]
        view = await afinished_session(
            alice, body["status_url"], deployment.auth, SESSION_WAIT_SECONDS
        )
        assert view["status"] == "confirmed", view
        assert view["outcome"] == "confirmed"
        assert view["key_bits"] == 256
        assert view["raw_bits"] >= 640
        assert view["sifted_bits"] > 0
        assert view["qber"] == 0.0
        assert view["duration_seconds"] > 0
        key_id = view["key_id"]
        alice_key = await alice.get(f"/keys/{key_id}", headers=deployment.auth)
        bob_key = await bob.get(f"/keys/{key_id}", headers=deployment.auth)
        assert alice_key.status_code == bob_key.status_code == 200
        assert alice_key.json() == bob_key.json()
        assert alice_key.json()["size"] == 256
        assert len(base64.b64decode(alice_key.json()["key"])) == 32
        again = await alice.get(f"/keys/{key_id}", headers=deployment.auth)
        assert again.status_code == 404
        assert "already delivered" in again.json()["message"]


async def test_concurrent_requests_each_get_their_own_session(deployment: Deployment) -> None:
    async with deployment.control("alice") as alice:
        responses = await asyncio.gather(
            *(
                alice.post(
                    "/generate-key", json={"desired_key_length": 128}, headers=deployment.auth
                )
                for _ in range(5)
            )
        )
        assert all(response.status_code == 202 for response in responses)
        urls = {response.json()["status_url"] for response in responses}
        assert len(urls) == 5
        views = await asyncio.gather(
            *(afinished_session(alice, url, deployment.auth, SESSION_WAIT_SECONDS) for url in urls)
        )
        assert [view["outcome"] for view in views] == ["confirmed"] * 5, views
        assert len({view["key_id"] for view in views}) == 5


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/generate-key"), ("GET", f"/sessions/{'0' * 32}"), ("GET", f"/keys/{uuid.uuid4()}")],
)
@pytest.mark.parametrize("credentials", ["none", "wrong", "basic", "prefix"])
async def test_key_endpoints_need_the_token(
    deployment: Deployment, method: str, path: str, credentials: str
) -> None:
    headers = {
        "none": {},
        "wrong": {"Authorization": "Bearer wrong-token-0123456789"},
        "basic": {"Authorization": f"Basic {deployment.token}"},
        "prefix": {"Authorization": f"Bearer {deployment.token[:-1]}"},
    }[credentials]
    async with deployment.control("alice") as alice:
        response = await alice.request(
            method, path, headers=headers, json={"desired_key_length": 8}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["message"]
        assert deployment.token not in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"desired_key_length": 0},
        {"desired_key_length": -256},
        {"desired_key_length": 10**12},
        {"desired_key_length": "256"},
        {"desired_key_length": 256.5},
        {"desired_key_length": True},
        {"desired_key_length": None},
        {"desired_key_length": [256]},
        {},
        {"desired_key_length": 256, "secret": "hunter2-secret"},
        [256],
        "256",
    ],
)
async def test_bad_generate_key_bodies_get_422(deployment: Deployment, body: Any) -> None:
    async with deployment.control("alice") as alice:
        response = await alice.post("/generate-key", json=body, headers=deployment.auth)
        assert response.status_code == 422, response.text
        error = response.json()
        assert error["message"].startswith("invalid request")
        assert error["details"]
        assert "hunter2" not in response.text


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe", b"desired_key_length=256"])
async def test_unparsable_bodies_get_422(deployment: Deployment, content: bytes) -> None:
    async with deployment.control("alice") as alice:
        response = await alice.post(
            "/generate-key",
            content=content,
            headers={**deployment.auth, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["message"]


@pytest.mark.parametrize("side", ["alice", "bob"])
async def test_unknown_and_malformed_ids(deployment: Deployment, side: str) -> None:
    async with deployment.control(side) as client:
        unknown_session = await client.get(f"/sessions/{'a' * 32}", headers=deployment.auth)
        assert unknown_session.status_code == 404
        assert unknown_session.json()["message"] == "no session with this process_id"
        for bad in ("xyz", "A" * 32, "0" * 33, "0" * 31):
            response = await client.get(f"/sessions/{bad}", headers=deployment.auth)
            assert response.status_code == 422, bad
        unknown_key = await client.get(f"/keys/{uuid.uuid4()}", headers=deployment.auth)
        assert unknown_key.status_code == 404
        malformed_key = await client.get("/keys/not-a-uuid", headers=deployment.auth)
        assert malformed_key.status_code == 422


async def test_bob_does_not_start_sessions(deployment: Deployment) -> None:
    async with deployment.control("bob") as bob:
        response = await bob.post(
            "/generate-key", json={"desired_key_length": 256}, headers=deployment.auth
        )
        assert response.status_code in (404, 405)
        assert response.json()["message"]


async def test_unknown_paths_and_methods_are_4xx(deployment: Deployment) -> None:
    async with deployment.control("alice") as alice:
        assert (await alice.get("/nope")).status_code == 404
        assert (await alice.delete("/health")).status_code == 405
        assert (await alice.get("/generate-key", headers=deployment.auth)).status_code == 405


async def test_oversized_bodies_get_413_before_any_check(deployment: Deployment) -> None:
    big = b'{"desired_key_length": 256, "pad": "' + b"x" * 1_000_000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    async with deployment.control("alice") as alice:
        declared = await alice.post("/generate-key", content=big)
        streamed = await alice.post("/generate-key", content=chunks())
        assert (await alice.get("/health")).status_code == 200
    assert declared.status_code == streamed.status_code == 413
    assert "request body over" in declared.json()["message"]

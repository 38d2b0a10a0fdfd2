"""Exact key lengths on both APIs (issue 12): a length is refused with a 4xx naming the
rule (keys are whole bytes, up to MAX_KEY_BITS), or delivered with exactly that many
random bits, reported as such, the same at Alice and Bob."""

import base64
import re
from typing import Any

import httpx
import pytest
from cqkd.settings import load_settings
from helpers.api import Deployment
from helpers.keys import afinished_session, astart_session

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

MAX_KEY_BITS = load_settings().max_key_bits
REFUSED = [1, 7, 9, 100, 257, 65536, MAX_KEY_BITS + 8]
DELIVERED = [8, 4096, MAX_KEY_BITS]
SESSION_WAIT_SECONDS = 120.0


async def generate(alice: httpx.AsyncClient, auth: dict[str, str], bits: int) -> dict[str, Any]:
    status_url = await astart_session(alice, bits, auth)
    view = await afinished_session(alice, status_url, auth, SESSION_WAIT_SECONDS)
    assert view["outcome"] == "confirmed", view
    return view


@pytest.mark.parametrize("bits", REFUSED)
async def test_control_api_refuses_lengths_that_are_not_whole_bytes_or_too_long(
    deployment: Deployment, bits: int
) -> None:
    async with deployment.control("alice") as alice:
        response = await alice.post(
            "/generate-key", json={"desired_key_length": bits}, headers=deployment.auth
        )
    assert response.status_code == 422, response.text
    assert f"multiple of 8 bits between 8 and {MAX_KEY_BITS}" in response.text


@pytest.mark.parametrize("bits", DELIVERED)
async def test_control_api_delivers_exactly_the_length_asked(
    deployment: Deployment, bits: int
) -> None:
    async with deployment.control("alice") as alice, deployment.control("bob") as bob:
        view = await generate(alice, deployment.auth, bits)
        assert view["key_bits"] == bits
        keys = [(await side.get(f"/keys/{view['key_id']}", headers=deployment.auth)).json()
                for side in (alice, bob)]
    assert keys[0] == keys[1]
    assert keys[0]["size"] == bits
    assert len(base64.b64decode(keys[0]["key"])) * 8 == bits


async def test_every_bit_of_the_last_byte_is_random(deployment: Deployment) -> None:
    async with deployment.control("alice") as alice:
        last_bytes = []
        for _ in range(50):
            view = await generate(alice, deployment.auth, 8)
            key = (await alice.get(f"/keys/{view['key_id']}", headers=deployment.auth)).json()
            last_bytes.append(base64.b64decode(key["key"])[-1])
    # Each of the 8 bits takes both values across 50 keys (a fixed bit: chance 2^-49).
    for bit in range(8):
        assert {(byte >> bit) & 1 for byte in last_bytes} == {0, 1}, (bit, last_bytes)


@pytest.mark.parametrize("bits", REFUSED)
async def test_etsi_refuses_the_same_lengths_with_400_naming_the_rule(
    deployment: Deployment, bits: int
) -> None:
    async with deployment.etsi("alice", "master") as master:
        response = await master.post(deployment.enc_keys, json={"number": 1, "size": bits})
    assert response.status_code == 400, response.text
    # The schema states the rule (multipleOf, minimum, maximum), so the validator names it.
    message = response.json()["message"]
    assert "size" in message and re.search(
        r"multiple of 8|greater than or equal to \d+|less than or equal to \d+", message
    ), message


@pytest.mark.parametrize("bits", [64, 4096, MAX_KEY_BITS])
async def test_etsi_delivers_exactly_the_size_asked(deployment: Deployment, bits: int) -> None:
    async with (
        deployment.etsi("alice", "master") as master,
        deployment.etsi("bob", "slave") as slave,
    ):
        issued = await master.post(deployment.enc_keys, json={"number": 2, "size": bits})
        assert issued.status_code == 200, issued.text
        keys = issued.json()["keys"]
        delivered = await slave.post(
            deployment.dec_keys, json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}
        )
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["keys"] == keys
    assert all(len(base64.b64decode(k["key"])) * 8 == bits for k in keys)

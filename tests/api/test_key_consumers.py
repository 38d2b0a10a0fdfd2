"""A key goes only to the consumer it was made for: a key made through the control API is
delivered only there, a key made for ETSI 014 only to its SAE pair. Both orders of the
two-consumer case get a clear 4xx, and the key stays with its own consumer."""

import base64
from typing import Any

import pytest
from helpers.api import Deployment
from helpers.keys import afinished_session, astart_session

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

SESSION_WAIT_SECONDS = 30.0


async def control_key(deployment: Deployment) -> str:
    """A 256-bit key made through Alice's control API; its key_ID."""
    async with deployment.control("alice") as alice:
        status_url = await astart_session(alice, 256, deployment.auth)
        view = await afinished_session(alice, status_url, deployment.auth, SESSION_WAIT_SECONDS)
        assert view["status"] == "confirmed", view
        return str(view["key_id"])


async def collect(deployment: Deployment, side: str, key_id: str) -> tuple[int, dict[str, Any]]:
    async with deployment.control(side) as client:
        response = await client.get(f"/keys/{key_id}", headers=deployment.auth)
    return response.status_code, response.json()


async def test_a_control_key_is_not_for_the_saes(deployment: Deployment) -> None:
    key_id = await control_key(deployment)
    async with (
        deployment.etsi("alice", "master") as master,
        deployment.etsi("bob", "slave") as slave,
    ):
        issued = await master.post(deployment.enc_keys, json={"number": 1, "size": 256})
        assert issued.status_code == 200, issued.text
        etsi_key = issued.json()["keys"][0]
        assert etsi_key["key_ID"] != key_id, "the master SAE got the control API's key"
        refused = await slave.post(deployment.dec_keys, json={"key_IDs": [{"key_ID": key_id}]})
        assert refused.status_code == 400, refused.text
        assert "not made for this SAE pair" in refused.json()["message"]
        assert refused.json()["details"] == [{"key_ID": key_id}]
        delivered = await slave.post(
            deployment.dec_keys, json={"key_IDs": [{"key_ID": etsi_key["key_ID"]}]})
        assert delivered.json()["keys"] == [etsi_key]
    # Still there for the control API, at both ends, equal.
    (alice_status, alice_key), (bob_status, bob_key) = [
        await collect(deployment, side, key_id) for side in ("alice", "bob")]
    assert alice_status == bob_status == 200
    assert base64.b64decode(alice_key["key"]) == base64.b64decode(bob_key["key"])
    assert all(key_id not in store for store in deployment.stores.values())


async def test_an_etsi_key_is_not_for_the_control_api(deployment: Deployment) -> None:
    async with deployment.etsi("alice", "master") as master:
        issued = await master.post(deployment.enc_keys, json={"number": 1, "size": 256})
        assert issued.status_code == 200, issued.text
    etsi_key = issued.json()["keys"][0]
    # Alice's copy went to the master SAE; Bob's waits for the slave SAE alone.
    status, body = await collect(deployment, "bob", etsi_key["key_ID"])
    assert status == 403, body
    assert "made for an ETSI 014 SAE pair" in body["message"]
    async with deployment.etsi("bob", "slave") as slave:
        delivered = await slave.post(
            deployment.dec_keys, json={"key_IDs": [{"key_ID": etsi_key["key_ID"]}]})
        assert delivered.status_code == 200, delivered.text
        assert delivered.json()["keys"] == [etsi_key]
    assert all(etsi_key["key_ID"] not in store for store in deployment.stores.values())

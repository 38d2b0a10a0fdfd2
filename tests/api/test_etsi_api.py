"""ETSI GS QKD 014 over mutual TLS on loopback: Alice (master's KME) and Bob (slave's KME)."""

import base64
import ssl
import uuid
from typing import Any

import httpx
import pytest
from helpers.api import Deployment

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]


async def test_one_exchange_gives_both_saes_the_same_keys(deployment: Deployment) -> None:
    async with (
        deployment.etsi("alice", "master") as master,
        deployment.etsi("bob", "slave") as slave,
    ):
        issued = await master.post(deployment.enc_keys, json={"number": 2, "size": 256})
        assert issued.status_code == 200, issued.text
        keys = issued.json()["keys"]
        assert len(keys) == 2
        for key in keys:
            uuid.UUID(key["key_ID"])
            assert len(base64.b64decode(key["key"])) == 32
        delivered = await slave.post(
            deployment.dec_keys, json={"key_IDs": [{"key_ID": key["key_ID"]} for key in keys]}
        )
        assert delivered.status_code == 200, delivered.text
        assert delivered.json()["keys"] == keys
        again = await slave.post(
            deployment.dec_keys, json={"key_IDs": [{"key_ID": keys[0]["key_ID"]}]}
        )
        assert again.status_code == 400
        assert again.json()["details"] == [{"key_ID": keys[0]["key_ID"]}]


async def test_get_variants_and_default_size(deployment: Deployment) -> None:
    async with (
        deployment.etsi("alice", "master") as master,
        deployment.etsi("bob", "slave") as slave,
    ):
        issued = await master.get(deployment.enc_keys)
        assert issued.status_code == 200, issued.text
        (key,) = issued.json()["keys"]
        assert len(base64.b64decode(key["key"])) == 256 // 8
        delivered = await slave.get(deployment.dec_keys, params={"key_ID": key["key_ID"]})
        assert delivered.status_code == 200, delivered.text
        assert delivered.json()["keys"] == [key]


async def test_status_at_both_kmes(deployment: Deployment) -> None:
    async with (
        deployment.etsi("alice", "master") as master,
        deployment.etsi("bob", "slave") as slave,
    ):
        at_alice = await master.get(f"/api/v1/keys/{deployment.slave_sae}/status")
        at_bob = await slave.get(f"/api/v1/keys/{deployment.master_sae}/status")
    assert at_alice.status_code == at_bob.status_code == 200
    for status in (at_alice.json(), at_bob.json()):
        assert status["source_KME_ID"] == "kme-alice"
        assert status["target_KME_ID"] == "kme-bob"
        assert status["master_SAE_ID"] == deployment.master_sae
        assert status["slave_SAE_ID"] == deployment.slave_sae
        assert status["key_size"] == 256
        assert status["max_key_per_request"] >= 1
        assert status["min_key_size"] <= 256 <= status["max_key_size"]
        assert status["max_SAE_ID_count"] == 0
        assert isinstance(status["stored_key_count"], int)


async def test_without_client_certificate_the_handshake_fails(deployment: Deployment) -> None:
    async with deployment.etsi("alice", None) as anonymous:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await anonymous.get(f"/api/v1/keys/{deployment.slave_sae}/status")


async def test_certificate_from_another_ca_fails_the_handshake(
    deployment: Deployment, foreign_pki: Any
) -> None:
    context = ssl.create_default_context(cafile=str(deployment.pki.ca))
    context.load_cert_chain(str(foreign_pki.master_sae.cert), str(foreign_pki.master_sae.key))
    async with httpx.AsyncClient(base_url=deployment.etsi_url("alice"), verify=context) as c:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await c.get(f"/api/v1/keys/{deployment.slave_sae}/status")


async def test_wrong_sae_for_the_kme_401(deployment: Deployment) -> None:
    async with (
        deployment.etsi("alice", "slave") as slave_at_alice,
        deployment.etsi("bob", "master") as master_at_bob,
    ):
        enc = await slave_at_alice.post(deployment.enc_keys, json={"number": 1})
        dec = await master_at_bob.post(
            deployment.dec_keys, json={"key_IDs": [{"key_ID": str(uuid.uuid4())}]}
        )
    assert enc.status_code == dec.status_code == 401


async def test_unpaired_sae_in_path_400(deployment: Deployment) -> None:
    async with (
        deployment.etsi("alice", "master") as master,
        deployment.etsi("bob", "slave") as slave,
    ):
        enc = await master.post("/api/v1/keys/someone-else/enc_keys", json={"number": 1})
        dec = await slave.get(
            "/api/v1/keys/someone-else/dec_keys", params={"key_ID": str(uuid.uuid4())}
        )
    assert enc.status_code == dec.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"number": 0},
        {"number": -1},
        {"number": 10**6},
        {"number": "2"},
        {"number": 1.5},
        {"size": 0},
        {"size": -256},
        {"size": 7},
        {"size": 260},
        {"size": 10**9},
        {"size": "256"},
        {"additional_slave_SAE_IDs": ["sae-other"]},
        {"extension_mandatory": [{"abc_route_type": "direct"}]},
        {"unknown_field": 1},
        [1],
    ],
)
async def test_bad_enc_keys_requests_400(deployment: Deployment, body: Any) -> None:
    async with deployment.etsi("alice", "master") as master:
        response = await master.post(deployment.enc_keys, json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message", "details"}


@pytest.mark.parametrize("query", ["number=0", "number=x", "size=12", "size=-8", "number=999"])
async def test_bad_enc_keys_queries_400(deployment: Deployment, query: str) -> None:
    async with deployment.etsi("alice", "master") as master:
        response = await master.get(f"{deployment.enc_keys}?{query}")
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"key_IDs": []},
        {"key_IDs": [{"key_ID": "not-a-uuid"}]},
        {"key_IDs": [{}]},
        {"key_IDs": "abc"},
        {"key_IDs": [{"key_ID": str(uuid.uuid4())}]},
        {"key_IDs": [{"key_ID": str(uuid.uuid4())}] * 1000},
        {},
    ],
)
async def test_bad_dec_keys_requests_400(deployment: Deployment, body: Any) -> None:
    async with deployment.etsi("bob", "slave") as slave:
        response = await slave.post(deployment.dec_keys, json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message", "details"}


async def test_malformed_json_400(deployment: Deployment) -> None:
    async with deployment.etsi("alice", "master") as master:
        response = await master.post(
            deployment.enc_keys,
            content=b'{"number": ',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400


async def test_dec_keys_is_all_or_nothing(deployment: Deployment) -> None:
    async with (
        deployment.etsi("alice", "master") as master,
        deployment.etsi("bob", "slave") as slave,
    ):
        (key,) = (await master.post(deployment.enc_keys, json={"number": 1})).json()["keys"]
        unknown = str(uuid.uuid4())
        mixed = await slave.post(
            deployment.dec_keys, json={"key_IDs": [{"key_ID": key["key_ID"]}, {"key_ID": unknown}]}
        )
        assert mixed.status_code == 400
        assert mixed.json()["details"] == [{"key_ID": unknown}]
        alone = await slave.post(deployment.dec_keys, json={"key_IDs": [{"key_ID": key["key_ID"]}]})
        assert alone.json()["keys"] == [key]

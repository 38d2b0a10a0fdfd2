"""Every error on both APIs is a 4xx in the JSON shape {"message", "details"} that echoes
no client input, down to the HTTP parser; 405 lists every method; a wrong Content-Type is
named; the ETSI OpenAPI document states the rules the server enforces."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from helpers.api import Deployment
from helpers.tls import sae_context

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

MARKER = "zq-client-chosen-name-7731"


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "details"}
    assert MARKER not in response.text
    return body


async def post_raw(
    client: httpx.AsyncClient, url: str, body: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    # The body keeps the lone surrogate as the escape "\ud800", as an attacker sends it.
    return await client.post(
        url, content=body.encode(), headers={"content-type": "application/json", **(headers or {})}
    )


@pytest.mark.parametrize(
    "body",
    [
        '{"number": 1, "extension_mandatory": [{"\\ud800": 1}]}',
        json.dumps({"number": 1, "extension_mandatory": [{MARKER: 1}]}),
        json.dumps({"number": 1, MARKER: 1}),
    ],
)
async def test_enc_keys_errors_do_not_echo_or_break(deployment: Deployment, body: str) -> None:
    async with deployment.etsi("alice", "master") as master:
        response = await post_raw(master, deployment.enc_keys, body)
    assert_error(response, 400)
    assert "\\ud800" not in response.text


async def test_bad_key_id_is_not_echoed(deployment: Deployment) -> None:
    """pydantic's UUID errors quote the first bad character ("found `x` at 5")."""
    odd = "\u2603"
    async with deployment.etsi("bob", "slave") as slave:
        query = await slave.get(deployment.dec_keys, params={"key_ID": f"0000-{odd}{MARKER}"})
        body = await slave.post(deployment.dec_keys, json={"key_IDs": [{"key_ID": f"{odd}-1"}]})
    for response in (query, body):
        assert_error(response, 400)
        assert odd not in response.text


async def test_control_errors_do_not_echo(deployment: Deployment) -> None:
    async with deployment.control("alice") as alice:
        response = await post_raw(
            alice,
            "/generate-key",
            json.dumps({"desired_key_length": 64, MARKER: 2}),
            deployment.auth,
        )
    assert_error(response, 422)


@pytest.mark.parametrize("api", ["control", "etsi"])
async def test_unparsable_http_gets_json_400(deployment: Deployment, api: str) -> None:
    apis = deployment.apis["alice"]
    context = None
    if api == "etsi":
        assert apis.etsi is not None
        context = sae_context(deployment.pki, "master")
    port = apis.control.port if api == "control" else apis.etsi.port  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1" if context else None
    )
    writer.write(f"GET /health HTTP/1.1\r\nHost 127.0.0.1 {MARKER}\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert set(json.loads(body)) == {"message", "details"}
    assert MARKER.encode() not in answer


async def test_unfinished_head_over_8_kib_gets_json_400(deployment: Deployment) -> None:
    """What h11 buffers of a head it cannot parse yet is bounded (its default: 16 KiB)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", deployment.apis["alice"].control.port
    )
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"p" * 9000)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert set(json.loads(body)) == {"message", "details"}


@pytest.mark.parametrize("path_attr", ["enc_keys", "dec_keys"])
async def test_405_allows_get_and_post(deployment: Deployment, path_attr: str) -> None:
    side, sae = ("alice", "master") if path_attr == "enc_keys" else ("bob", "slave")
    async with deployment.etsi(side, sae) as client:
        response = await client.delete(getattr(deployment, path_attr))
    assert_error(response, 405)
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert allowed == {"GET", "POST"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type_is_named(deployment: Deployment, content_type: str) -> None:
    async with deployment.etsi("alice", "master") as master:
        response = await master.post(
            deployment.enc_keys, content=b'{"number": 1}', headers={"content-type": content_type}
        )
    body = assert_error(response, 415)
    assert "application/json" in body["message"]


async def test_etsi_openapi_states_the_enforced_rules(deployment: Deployment) -> None:
    async with deployment.etsi("alice", "master") as master:
        document = (await master.get("/openapi.json")).json()
    operation = document["paths"]["/api/v1/keys/{slave_SAE_ID}/enc_keys"]
    reference = operation["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][reference.rsplit("/", 1)[1]]["properties"]
    assert schema["number"]["minimum"] == 1
    assert schema["number"]["maximum"] == 32
    size = schema["size"]
    assert (size["minimum"], size["maximum"], size["multipleOf"]) == (64, 16384, 8)
    assert schema["additional_slave_SAE_IDs"]["maxItems"] == 0
    assert schema["extension_mandatory"]["maxItems"] == 0
    query = {p["name"]: p["schema"] for p in operation["get"]["parameters"] if p["in"] == "query"}
    assert query["number"]["maximum"] == 32
    query_size = next(s for s in query["size"]["anyOf"] if s.get("type") == "integer")
    assert query_size["multipleOf"] == 8

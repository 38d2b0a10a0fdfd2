"""Slow and idle clients are dropped, open connections are capped, and every API socket
sends without Nagle's delay: real sockets against Alice's two APIs on loopback."""

import asyncio
import contextlib
import json
import socket
import ssl
import time

import httpx
import pytest
from helpers.api import Deployment, alice_apis
from helpers.tls import sae_context

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

REQUEST_TIMEOUT = 1.0
# Generous: the refusal must come after the timeout, and on a loaded 2-core machine the
# loop may be late; a server without a deadline keeps the connection for 60 s or more.
GRACE = 6.0
SLOW_CLIENTS = 20


async def slowloris(
    port: int, context: ssl.SSLContext | None, body: bool = False
) -> tuple[float, bytes]:
    """Send a request head one header line per 0.3 s, never finishing it (or a whole head,
    then its body one byte per 0.3 s); return when and what the server answered before it
    closed the connection."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1" if context else None
    )
    began = time.monotonic()
    if body:
        path = "/generate-key" if context is None else "/api/v1/keys/x/enc_keys"
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{".encode()
        )
    else:
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    answer = b""

    async def trickle() -> None:
        for index in range(int((REQUEST_TIMEOUT + GRACE) / 0.3)):
            await asyncio.sleep(0.3)
            writer.write(b" " if body else f"X-Slow-{index}: 1\r\n".encode())
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    trickling = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT + GRACE):
            answer = await reader.read()  # until the server closes
    except TimeoutError:
        pass
    finally:
        trickling.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return time.monotonic() - began, answer


@pytest.mark.parametrize("body", [False, True], ids=["head", "body"])
@pytest.mark.parametrize("api", ["control", "etsi"])
async def test_slow_clients_get_408_and_are_closed(
    deployment: Deployment, api: str, body: bool
) -> None:
    async with alice_apis(deployment, api_request_timeout=REQUEST_TIMEOUT) as apis:
        server = apis.control if api == "control" else apis.etsi
        assert server is not None
        context = sae_context(deployment.pki, "master") if api == "etsi" else None
        slow = asyncio.gather(
            *(slowloris(server.port, context, body) for _ in range(SLOW_CLIENTS))
        )
        await asyncio.sleep(0.2)
        # The API keeps serving others meanwhile.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{apis.control.port}") as client:
            assert (await client.get("/health")).status_code == 200
        results = await slow
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{apis.control.port}") as client:
            metrics = (await client.get("/metrics")).text
    api_label = "control" if api == "control" else "etsi014"
    assert f'cqkd_http_refused_total{{api="{api_label}",reason="request_timeout"}}' in metrics
    for seconds, answer in results:
        assert seconds < REQUEST_TIMEOUT + GRACE, "the slow client was never dropped"
        assert seconds >= REQUEST_TIMEOUT * 0.9
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert json.loads(body)["message"] == "the request did not arrive in time"


@pytest.mark.parametrize("api", ["control", "etsi"])
async def test_silent_connections_are_closed(deployment: Deployment, api: str) -> None:
    """Not a byte sent: on ETSI the TLS handshake never starts (asyncio's default: 60 s)."""
    async with alice_apis(deployment, api_request_timeout=REQUEST_TIMEOUT) as apis:
        server = apis.control if api == "control" else apis.etsi
        assert server is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        began = time.monotonic()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT + GRACE):
                assert await reader.read() == b""  # closed without a word
        finally:
            writer.close()
    assert time.monotonic() - began >= REQUEST_TIMEOUT * 0.9


async def test_connections_past_the_cap_get_503_at_once(deployment: Deployment) -> None:
    cap = 5
    async with alice_apis(deployment, api_max_connections=cap) as apis:
        idle = [
            await asyncio.open_connection("127.0.0.1", apis.control.port) for _ in range(cap)
        ]
        try:
            await asyncio.sleep(0.2)  # the server has accepted them all
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{apis.control.port}", timeout=10
            ) as client:
                refused = await client.get("/health")
            assert refused.status_code == 503
            assert refused.json() == {
                "message": "too many open connections; retry later",
                "details": [],
            }
        finally:
            for _, writer in idle:
                writer.close()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{apis.control.port}") as client:
            assert (await client.get("/health")).status_code == 200


async def test_etsi_handshake_requires_a_client_certificate(deployment: Deployment) -> None:
    """A client without a certificate cannot even send a request."""
    context = ssl.create_default_context(cafile=str(deployment.pki.ca))
    server = deployment.apis["alice"].etsi
    assert server is not None
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname="127.0.0.1"
        )
        try:
            writer.write(b"GET /docs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            # TLS 1.3: the server's refusal arrives after the client's side of the handshake.
            await reader.readexactly(1)
        finally:
            writer.close()


@pytest.mark.parametrize("api", ["control", "etsi"])
async def test_accepted_sockets_set_tcp_nodelay(deployment: Deployment, api: str) -> None:
    """Without TCP_NODELAY every keep-alive response waits for the client's delayed ACK."""
    apis = deployment.apis["alice"]
    server = apis.control if api == "control" else apis.etsi
    assert server is not None
    client = (
        deployment.control("alice") if api == "control" else deployment.etsi("alice", "master")
    )
    async with client:
        assert (await client.get("/health" if api == "control" else "/docs")).status_code == 200
        connections = server._server.server_state.connections
        assert connections
        for connection in connections:
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0

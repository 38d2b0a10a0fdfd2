"""ApiServer embeds uvicorn in the caller's loop: two servers start and stop in any order
without touching the process's signal handlers (cqkd.lifecycle owns SIGTERM and SIGINT),
and SIGTERM stops them through the lifecycle. Real sockets on loopback."""

import asyncio
import os
import signal

import httpx
import pytest
from cqkd.api.server import ApiServer
from cqkd.lifecycle import Lifecycle
from fastapi import FastAPI

pytestmark = pytest.mark.network


def app() -> FastAPI:
    application = FastAPI()

    @application.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"pong": True}

    return application


async def test_servers_leave_the_process_signal_handlers_alone() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    first, second = ApiServer(app(), "127.0.0.1", 0), ApiServer(app(), "127.0.0.1", 0)
    await first.start()
    await second.start()
    async with httpx.AsyncClient() as client:
        for server in (first, second):
            reply = await client.get(f"http://127.0.0.1:{server.port}/ping")
            assert reply.json() == {"pong": True}
    await first.stop()  # the first started stops first: uvicorn's own capture would then
    await second.stop()  # leave the second's handler installed for good
    after = {signum: signal.getsignal(signum) for signum in before}
    assert after == before


async def test_sigterm_stops_the_servers_through_the_lifecycle() -> None:
    async with Lifecycle("alice") as process:
        servers = [await process.start(ApiServer(app(), "127.0.0.1", 0)) for _ in range(2)]
        ports = [server.port for server in servers]
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(process.stopped(), 5)
    async with httpx.AsyncClient() as client:
        for port in ports:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/ping")

"""The process lifecycle: real SIGTERM and SIGINT to this process stop what was started,
in reverse order, also when starting fails; the `stopped` event times the shutdown."""

import asyncio
import json
import logging
import os
import signal

import pytest
from cqkd.lifecycle import Lifecycle
from cqkd.logs import JsonFormatter


class Recorder:
    """A service that notes its start and stop in a shared list."""

    def __init__(self, name: str, journal: list[str], fail: bool = False) -> None:
        self.name, self.journal, self.fail = name, journal, fail

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")
        if self.fail:
            raise OSError(f"{self.name} cannot bind")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


def signal_soon(signum: int) -> None:
    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_the_services_in_reverse_order(
    signum: int, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[str] = []
    caplog.set_level(logging.INFO, logger="cqkd.lifecycle")
    async with Lifecycle("worker") as process:
        await process.start(Recorder("node", journal))
        process.on_stop(lambda: asyncio.sleep(0, journal.append("stop engine")))
        await process.start(Recorder("http", journal))
        signal_soon(signum)
        await asyncio.wait_for(process.stopped(), 5)
        assert process.stopping
    assert journal == ["start node", "start http", "stop http", "stop engine", "stop node"]
    stopped = [json.loads(JsonFormatter().format(r)) for r in caplog.records
               if r.getMessage() == "stopped"]
    assert len(stopped) == 1 and stopped[0]["role"] == "worker"
    assert 0 <= stopped[0]["shutdown_seconds"] < 1
    # The loop's handlers are gone: the default SIGINT handler is back for whoever runs next.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_a_failed_start_stops_what_started_and_the_failure_propagates() -> None:
    journal: list[str] = []
    with pytest.raises(OSError, match="http cannot bind"):
        async with Lifecycle("bootstrap") as process:
            await process.start(Recorder("node", journal))
            await process.start(Recorder("http", journal, fail=True))
            await process.start(Recorder("never", journal))
    assert journal == ["start node", "start http", "stop http", "stop node"]


async def test_a_signal_cancels_the_work_it_interrupts() -> None:
    journal: list[str] = []
    async with Lifecycle("alice") as process:
        await process.start(Recorder("node", journal))
        signal_soon(signal.SIGTERM)
        finished = await asyncio.wait_for(process.until_stopped(asyncio.sleep(60)), 5)
    assert finished is False
    assert journal == ["start node", "stop node"]


async def test_work_that_finishes_first_is_reported_and_its_error_propagates() -> None:
    async with Lifecycle("worker") as process:
        assert await process.until_stopped(asyncio.sleep(0)) is True
        with pytest.raises(RuntimeError, match="no bootstrap answered"):
            await process.until_stopped(_fail("no bootstrap answered"))
        assert not process.stopping


async def _fail(message: str) -> None:
    await asyncio.sleep(0)
    raise RuntimeError(message)

"""One process lifecycle for every entry point: signals, start, run, graceful stop.

    async with Lifecycle("worker") as process:
        node = await process.start(DhtNode(...))     # stopped last
        await process.start(HttpServer(...))          # stopped before the node
        if await process.until_stopped(node.join(...)):
            await process.stopped()                   # until SIGTERM or SIGINT

SIGTERM and SIGINT request a stop; what was started stops in reverse order, also when
starting or running fails, and the `stopped` event gives the time from the signal to the
end of the stop (`shutdown_seconds`). Only the event loop's signal handlers are used, so
several servers in one loop never fight over the process's signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol, TypeVar

from cqkd.logs import event

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Service(Protocol):
    """Anything the lifecycle starts: a node, a server, a protocol role."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


S = TypeVar("S", bound=Service)
T = TypeVar("T")


class Lifecycle:
    """The lifecycle of one process (or one in-process network) named `role` in its logs."""

    def __init__(self, role: str, **fields: Any) -> None:
        self.role = role
        self._fields = fields
        self._stop = asyncio.Event()
        self._stop_requested = 0.0
        self._stack = contextlib.AsyncExitStack()
        self._signals: list[int] = []

    def request_stop(self) -> None:
        """What SIGTERM and SIGINT do; safe to call more than once."""
        self._stop_requested = self._stop_requested or time.monotonic()
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def __aenter__(self) -> Lifecycle:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self.request_stop)
            self._signals.append(signum)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._stack.aclose()
        finally:
            loop = asyncio.get_running_loop()
            for signum in self._signals:
                loop.remove_signal_handler(signum)
            self._signals.clear()
        if exc is None:
            began = self._stop_requested
            shutdown = time.monotonic() - began if began else 0.0
            event(log, "stopped", role=self.role, shutdown_seconds=round(shutdown, 3),
                  **self._fields)

    async def start(self, service: S) -> S:
        """Start `service`; it is stopped when the lifecycle ends, before what started
        earlier. One that fails to start is stopped at once (it may have started parts:
        a stop must be safe after any partial start), and the failure propagates."""
        try:
            await service.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await service.stop()
            raise
        self._stack.push_async_callback(service.stop)
        return service

    def on_stop(self, callback: Callable[[], Awaitable[Any]]) -> None:
        """Run `callback` when the lifecycle ends, before what was started until now."""
        self._stack.push_async_callback(callback)

    async def stopped(self) -> None:
        """Wait until a stop is requested."""
        await self._stop.wait()

    async def until_stopped(self, work: Awaitable[T]) -> bool:
        """Run `work` unless a stop is requested first (then `work` is cancelled); True iff
        it finished. Its exception propagates."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if task.cancelled():
            return False
        task.result()
        return True

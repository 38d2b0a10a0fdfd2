"""Polling until a condition holds, with a deadline that names what was awaited."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import httpx

T = TypeVar("T")


def _name(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


def wait_until(
    check: Callable[[], T],
    what: str | Callable[[], str],
    seconds: float = 60.0,
    interval: float = 0.2,
) -> T:
    """Call `check` every `interval` seconds until it returns something truthy; return that.

    An `httpx.HTTPError` counts as "not yet" (a server that is still starting refuses
    connections). After `seconds`, raise AssertionError naming `what` (or what it returns,
    evaluated only then, so that it can show a log or a status at the moment of failure).
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {_name(what)}")
        time.sleep(interval)


@overload
async def until(
    check: Callable[[], Awaitable[T]],
    what: str | Callable[[], str],
    seconds: float = ...,
    interval: float = ...,
) -> T: ...


@overload
async def until(
    check: Callable[[], T],
    what: str | Callable[[], str],
    seconds: float = ...,
    interval: float = ...,
) -> T: ...


async def until(
    check: Callable[[], Any],
    what: str | Callable[[], str],
    seconds: float = 5.0,
    interval: float = 0.05,
) -> Any:
    """`wait_until` inside an event loop: `check` may be a plain or an async function; the
    loop runs the other tasks (the network under test) between calls. No exception counts
    as "not yet" here: in-process checks read state, they do not connect."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {_name(what)}")
        await asyncio.sleep(interval)

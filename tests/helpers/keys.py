"""Asking Alice's control API for a key and waiting until its session has finished.

`POST /generate-key` answers 202 with the session's `status_url`; `GET status_url` shows
the session view (`status` "running" until it ends, then `outcome`, `key_id`, ...).
"""

from __future__ import annotations

from typing import Any

import httpx

from helpers.waits import until, wait_until


def start_session(client: httpx.Client, bits: int, auth: dict[str, str] | None = None) -> str:
    """Ask `client` (a control API) for a key of `bits` bits; the status URL it answers."""
    accepted = client.post("/generate-key", json={"desired_key_length": bits}, headers=auth)
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["status_url"])


def finished_session(
    client: httpx.Client,
    status_url: str,
    auth: dict[str, str] | None = None,
    seconds: float = 60.0,
    interval: float = 0.2,
) -> dict[str, Any]:
    """The session's view once its status is no longer "running" (any outcome: callers
    assert the one they expect); AssertionError after `seconds`."""
    view: dict[str, Any] = wait_until(
        lambda: (v := client.get(status_url, headers=auth).json())["status"] != "running" and v,
        f"the session at {status_url}",
        seconds,
        interval,
    )
    return view


async def astart_session(
    client: httpx.AsyncClient, bits: int, auth: dict[str, str] | None = None
) -> str:
    """`start_session` for an async client."""
    accepted = await client.post("/generate-key", json={"desired_key_length": bits}, headers=auth)
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["status_url"])


async def afinished_session(
    client: httpx.AsyncClient,
    status_url: str,
    auth: dict[str, str] | None = None,
    seconds: float = 30.0,
    interval: float = 0.05,
) -> dict[str, Any]:
    """`finished_session` for an async client; every status answer must be 200."""

    async def finished() -> dict[str, Any] | None:
        response = await client.get(status_url, headers=auth)
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view if view["status"] != "running" else None

    view = await until(finished, f"the session at {status_url}", seconds, interval)
    assert view is not None  # `until` returns only a truthy result
    return view

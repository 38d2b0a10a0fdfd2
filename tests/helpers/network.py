"""An in-process CQKD network (bootstrap nodes, workers, Alice and Bob) on loopback UDP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from cqkd.settings import Settings
from cqkd.sim.network import LocalNetwork
from cqkd.sim.sessions import Protocol, attach


@contextlib.asynccontextmanager
async def protocol_network(
    settings: Settings, workers: int, rogue: str | None = None
) -> AsyncIterator[tuple[LocalNetwork, Protocol]]:
    """`workers` workers with Alice and Bob attached (and a rogue worker of the `rogue`
    behaviour, see `attach`); Alice and Bob are stopped, then the network, on the way out."""
    async with LocalNetwork(settings, workers) as net:
        protocol = await attach(net, settings, rogue=rogue)
        try:
            yield net, protocol
        finally:
            await protocol.stop()

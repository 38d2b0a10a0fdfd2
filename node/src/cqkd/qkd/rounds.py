"""A round in flight at Alice or Bob: the pushes each chunk of its positions waits for.

In a round, Alice waits for each chunk's spins from its QSG ("s") and valid positions from
its QPC ("v"); Bob for the measured bits from its QPM ("m") and the valid positions from its
QPC ("v"). A vector is taken only from the one worker the round names for it, and only the
first one counts; every push wakes whoever waits on the round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from cqkd.qkd.channel import Message, ProtocolError, Refused, need, need_vector


@dataclass
class Chunk:
    """`count` positions from `start`; `senders` maps each push kind it waits for to the
    public key of the only worker that may push it."""

    start: int
    count: int
    senders: dict[str, bytes]
    vectors: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.vectors.keys() >= self.senders.keys()


@dataclass
class Round:
    chunks: dict[int, Chunk]
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def receive(self, sender: bytes, message: Message) -> None:
        """Take one push; ProtocolError for a chunk or kind the round does not wait for,
        Refused for a sender it did not name."""
        chunk = self.chunks.get(need(message, "chunk", int))
        kind = message.get("t")
        if chunk is None or kind not in chunk.senders:
            raise ProtocolError("unexpected push")
        if sender != chunk.senders[kind]:
            raise Refused("foreign_sender", "push from a worker the round did not name for it")
        chunk.vectors.setdefault(kind, need_vector(message, chunk.count))
        self.changed.set()

    def done(self, chunks: Iterable[int]) -> list[int]:
        """Those of `chunks` whose every vector arrived."""
        return [c for c in chunks if self.chunks[c].done]

    def bits(self, chunks: Iterable[int], kind: str) -> int:
        """The `kind` vectors of `chunks` (done ones) at their positions in the round."""
        value = 0
        for c in chunks:
            chunk = self.chunks[c]
            value |= chunk.vectors[kind] << chunk.start
        return value

    async def wait_quiet(self, chunks: list[int], silence: float) -> None:
        """Until every one of `chunks` is done, or no push came for `silence` seconds: a
        busy network is slow, a dead chain is silent."""
        while len(self.done(chunks)) < len(chunks):
            self.changed.clear()
            try:
                async with asyncio.timeout(silence):
                    await self.changed.wait()
            except TimeoutError:
                return

    async def wait_until(self, chunks: list[int], seconds: float) -> None:
        """Until every one of `chunks` is done, or `seconds` have passed."""
        try:
            async with asyncio.timeout(seconds):
                while len(self.done(chunks)) < len(chunks):
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            return

"""Bob answers each of Alice's numbered session messages once (qkd/asking.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cqkd.qkd.asking import Answers

ALICE = b"a" * 32
ADDRESS = ("127.0.0.1", 6000)


def counting_handler(delay: float = 0.0) -> tuple[Any, list[int]]:
    runs: list[int] = []

    async def handler(sender: bytes, address: Any, message: Any) -> Any:
        runs.append(message["seq"])
        await asyncio.sleep(delay)
        return {"ran": len(runs)}

    return handler, runs


async def test_a_resent_message_gets_the_first_answer_without_a_second_run() -> None:
    handler, runs = counting_handler()
    answer = Answers().once(handler)
    message = {"pid": "p", "seq": 1}
    assert await answer(ALICE, ADDRESS, message) == {"ran": 1}
    assert await answer(ALICE, ADDRESS, message) == {"ran": 1}
    assert runs == [1]
    assert await answer(ALICE, ADDRESS, {"pid": "p", "seq": 2}) == {"ran": 2}


async def test_a_copy_arriving_while_the_first_still_runs_waits_for_its_answer() -> None:
    # Alice resends after three RPC timeouts; on a loaded host Bob may still be handling
    # the first copy, and a second run allocated and commanded a second set of workers.
    handler, runs = counting_handler(delay=0.2)
    answer = Answers().once(handler)
    message = {"pid": "p", "seq": 1}
    first, copy = await asyncio.gather(answer(ALICE, ADDRESS, message),
                                       answer(ALICE, ADDRESS, dict(message)))
    assert first == copy == {"ran": 1}
    assert runs == [1]


async def test_a_refusal_is_given_again_to_a_copy() -> None:
    async def refusing(sender: bytes, address: Any, message: Any) -> Any:
        await asyncio.sleep(0.05)
        raise ValueError("refused")

    answer = Answers().once(refusing)
    message = {"pid": "p", "seq": 1}
    results = await asyncio.gather(answer(ALICE, ADDRESS, message),
                                   answer(ALICE, ADDRESS, dict(message)),
                                   return_exceptions=True)
    assert [str(r) for r in results] == ["refused", "refused"]
    with pytest.raises(ValueError, match="refused"):
        await answer(ALICE, ADDRESS, message)

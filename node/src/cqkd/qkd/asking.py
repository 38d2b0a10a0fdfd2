"""Alice asks, Bob answers once: the numbering that makes a session message safe to resend.

Alice numbers her messages per session (`seq`), waits BOB_ANSWER_RPC_TIMEOUTS RPC timeouts
for each answer and sends a message once more at once when none came; Bob answers a message
he has answered before with the same answer instead of applying it twice. Bob's
refusals travel back as "outcome: text" where the outcome is a session outcome, which ends
Alice's session with that outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from cqkd.logs import event
from cqkd.qkd.channel import Address, Channel, Handler, Message, PeerInfo, RemoteError, need
from cqkd.qkd.session import ERROR, KEPT_SESSIONS, OUTCOMES, TIMEOUT, SessionFailed

log = logging.getLogger(__name__)

# As for a worker's hello (directory.HELLO_TIMEOUT_RPC_TIMEOUTS): on a loaded host answers
# come late. One missed by the 2-s RPC timeout used to mark Bob dead, and the resend waited
# out DEAD_PEER_TTL (15 s): sessions of 18-24 s while a fresh 500-worker deployment filled
# Alice's key pool. Bob is the session's one partner: the resend goes even while he is
# counted dead.
BOB_ANSWER_RPC_TIMEOUTS = 3


class Asker:
    """Alice's side: `ask` sends a session message to Bob and returns his answer."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._sequence: dict[str, int] = {}  # process_id -> the last number sent

    async def ask(self, bob: PeerInfo, message: Message) -> Message:
        """Bob's answer to `message` (which names its session in "pid"). SessionFailed with
        Bob's outcome if he refused it, TIMEOUT if he did not answer twice."""
        pid = message["pid"]
        message["seq"] = self._sequence[pid] = self._sequence.get(pid, 0) + 1
        patience = BOB_ANSWER_RPC_TIMEOUTS * self.channel.node.config.rpc_timeout
        for attempt in range(2):
            try:
                reply = await self.channel.send(bob, message, answer_within=patience,
                                                even_if_dead=True)
            except RemoteError as exc:
                outcome, _, text = str(exc).partition(": ")
                if outcome in OUTCOMES and text:
                    raise SessionFailed(outcome, f"Bob: {text}") from None
                raise SessionFailed(ERROR, f"Bob refused {message['k']!r}: {exc}") from None
            if reply is not None:
                return reply
            event(log, "bob_silent", logging.WARNING, process_id=pid, message=message["k"],
                  attempt=attempt + 1)
        raise SessionFailed(TIMEOUT, f"Bob did not answer {message['k']!r}")

    def forget(self, process_id: str) -> None:
        """The session ended: no more messages of it."""
        self._sequence.pop(process_id, None)


class Answers:
    """Bob's side: the last answer of each of the last KEPT_SESSIONS sessions."""

    def __init__(self) -> None:
        # pid -> (sender, seq, the answer: a future while the handler still runs)
        self._last: OrderedDict[str, tuple[bytes, int, asyncio.Future[Message]]] = OrderedDict()

    def once(self, handler: Handler) -> Handler:
        """`handler`, answering a resent message (same sender, session and number) with
        the answer it gave, without running again; a copy that arrives while the first
        still runs waits for that run's answer (Alice resends after three RPC timeouts,
        when a loaded host may still be handling the first copy). A handler's error is
        raised to every copy."""

        async def answer(sender: bytes, address: Address, message: Message) -> Message:
            pid, seq = need(message, "pid", str), need(message, "seq", int)
            last = self._last.get(pid)
            if last is not None and last[0] == sender and last[1] == seq:
                return await asyncio.shield(last[2])
            reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            self._last[pid] = (sender, seq, reply)
            self._last.move_to_end(pid)
            while len(self._last) > KEPT_SESSIONS:
                self._last.popitem(last=False)
            try:
                reply.set_result(await handler(sender, address, message))
            except asyncio.CancelledError:
                reply.cancel()
                raise
            except Exception as exc:
                reply.set_exception(exc)
                reply.exception()  # retrieved: no "never retrieved" warning without copies
                raise
            return reply.result()

        return answer

"""What Alice and Bob, the two owners of a key, share: a sealed channel on their DHT node,
the workers they know, the sessions they keep and the rounds in flight."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from cqkd.dht.node import DhtNode
from cqkd.qkd.channel import Address, Channel, Handler, Message, ProtocolError, need
from cqkd.qkd.crypto import Identity
from cqkd.qkd.directory import WorkerDirectory
from cqkd.qkd.keystore import KeyStore
from cqkd.qkd.rounds import Round
from cqkd.qkd.session import SessionBook, SessionView
from cqkd.settings import Settings

R = TypeVar("R", bound=Round)


class Owner(Generic[R]):
    """Alice's and Bob's common part; `party` ("alice" or "bob") names them in metrics."""

    party: ClassVar[str]

    def __init__(
        self, node: DhtNode, identity: Identity, keystore: KeyStore, settings: Settings
    ) -> None:
        self.channel = Channel(node, identity)
        self.identity = identity
        self.keystore = keystore
        self.settings = settings
        self.directory = WorkerDirectory(self.channel, settings)
        self.trusted = frozenset(settings.trusted_owner_keys)
        self.sessions = SessionBook(self.party)
        self._rounds: dict[bytes, R] = {}  # by round key
        # The messages this party takes while started (`_attach` in start, `_detach` in
        # stop); subclasses add theirs.
        self._handlers: dict[str, Handler] = {"push": self._on_push}

    def _attach(self) -> None:
        """Take this party's messages from now on: the first step of `start`."""
        for kind, handler in self._handlers.items():
            self.channel.on(kind, handler)

    def _detach(self) -> None:
        """Refuse them from now on, as if never registered: the first step of `stop`."""
        for kind in self._handlers:
            self.channel.off(kind)

    @property
    def node(self) -> DhtNode:
        return self.channel.node

    def session(self, process_id: str) -> SessionView | None:
        return self.sessions.view(process_id)

    def network_status(self) -> dict[str, object]:
        status = self.directory.status()
        status["role"] = self.party
        return status

    async def _on_push(self, sender: bytes, address: Address, message: Message) -> Message:
        state = self._rounds.get(need(message, "rk", bytes))
        if state is None:
            raise ProtocolError("push for an unknown or finished round")
        state.receive(sender, message)
        return {"ok": True}

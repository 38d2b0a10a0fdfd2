"""What a key session looks like from outside, the sessions Alice and Bob keep, and the
names shared by Alice, Bob and the workers."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from cqkd.metrics import LEAKED, QBER, RECONCILIATION_EFFICIENCY, SESSION_DURATION, SESSIONS

ALICE_ROLES = ("QSG", "BG_A", "QPP", "QPM", "QPC")
BOB_ROLES = ("BG_B",)
ROLES = ALICE_ROLES + BOB_ROLES

# Outcomes (the `outcome` label of cqkd_sessions_total).
CONFIRMED = "confirmed"
QBER_EXCEEDED = "qber_exceeded"
NOT_ENOUGH_WORKERS = "not_enough_workers"
CONFIRMATION_FAILED = "confirmation_failed"
TIMEOUT = "timeout"
ERROR = "error"
OUTCOMES = frozenset(
    {CONFIRMED, QBER_EXCEEDED, NOT_ENOUGH_WORKERS, CONFIRMATION_FAILED, TIMEOUT, ERROR}
)

Status = Literal["running", "confirmed", "failed"]
# Views of ended sessions are kept for GET /sessions/{process_id}, the oldest dropped first.
KEPT_SESSIONS = 10_000


@dataclass
class SessionView:
    """A session's public state: counts and outcome, never key material."""

    process_id: str
    status: Status
    outcome: str | None
    key_bits: int
    raw_bits: int
    sifted_bits: int | None
    qber: float | None
    duration_seconds: float | None
    key_id: str | None
    error: str | None
    # Error correction: bits disclosed (Cascade's parities and the verification hashes),
    # and its efficiency f = Cascade's parities / (n h2(e)), e the error rate it corrected.
    leaked_bits: int | None = None
    reconciliation_efficiency: float | None = None


class SessionFailed(Exception):
    """Ends a session with `outcome`; the message is for users, so no secrets in it."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class TooManySessions(Exception):
    """A consumer already has MAX_RUNNING_SESSIONS running or waiting; retry when one ends."""


def record_session(view: SessionView, party: str) -> None:
    """Count an ended session in the metrics of `party` (alice or bob); error correction's
    figures at Alice only, so that one process holding both counts them once."""
    SESSIONS.labels(party=party, outcome=view.outcome).inc()
    SESSION_DURATION.labels(party=party).observe(view.duration_seconds or 0.0)
    if view.qber is not None:
        QBER.labels(party=party).set(view.qber)
    if party == "alice" and view.leaked_bits is not None:
        LEAKED.inc(view.leaked_bits)
        if view.reconciliation_efficiency is not None:
            RECONCILIATION_EFFICIENCY.observe(view.reconciliation_efficiency)


class SessionBook:
    """The sessions one party ("alice" or "bob") knows, by process_id: the views of the last
    KEPT_SESSIONS, each with the owner key that opened it (Bob's sessions belong to the
    Alice who opened them)."""

    def __init__(self, party: str) -> None:
        self.party = party
        self._views: OrderedDict[str, tuple[SessionView, bytes]] = OrderedDict()

    def open(self, process_id: str, key_bits: int, owner: bytes = b"") -> SessionView:
        """A new running session's view, kept from now on."""
        view = SessionView(process_id, "running", None, key_bits, 0, None, None, None, None,
                           None)
        self._views[process_id] = view, owner
        while len(self._views) > KEPT_SESSIONS:
            self._views.popitem(last=False)
        return view

    def __contains__(self, process_id: str) -> bool:
        return process_id in self._views

    def view(self, process_id: str) -> SessionView | None:
        kept = self._views.get(process_id)
        return kept[0] if kept is not None else None

    def owner(self, process_id: str) -> bytes | None:
        kept = self._views.get(process_id)
        return kept[1] if kept is not None else None

    def views(self) -> list[SessionView]:
        return [view for view, _ in self._views.values()]

    def finish(
        self, view: SessionView, status: Status, outcome: str, error: str | None, began: float
    ) -> None:
        """End a session begun at `began` (time.monotonic()) and count it in the metrics."""
        view.status, view.outcome, view.error = status, outcome, error
        view.duration_seconds = time.monotonic() - began
        record_session(view, self.party)

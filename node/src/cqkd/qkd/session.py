"""What a key session looks like from outside, and the names shared by Alice, Bob, workers."""

from __future__ import annotations

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

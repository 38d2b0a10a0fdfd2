"""What a key session looks like from outside, and the names shared by Alice, Bob, workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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


class SessionFailed(Exception):
    """Ends a session with `outcome`; the message is for users, so no secrets in it."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome

"""Duplicates a late commit leaves behind, and when they can no longer appear.

Flow Service has no idempotency key. A create whose answer never came (a client timeout, a dropped
connection, a 5xx whose backend carried on) may still commit upstream after the gateway gave up on
it, and after the retry's name lookup found nothing and created a second copy. Resource names carry
the activation's marker, so every copy can be found again by name: before the forward path ends and
in every compensation, all resources named for a step are listed (every page), the recorded one is
kept (forward) or deleted with the rest (compensation), and each other copy is deleted and reported.
Only steps that ever sent more than one create, or whose create went unanswered, can have copies, so
only those are listed (outcome_was_unknown): the fault-free path makes no extra call.

A copy can still appear while a create may still commit, so both sweeps wait for that first: until
the late-commit window has passed since the latest attempt of each create step whose outcome was
ever unknown. A create answered on its first attempt, or refused with a 4xx, needs no wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .lifecycle import StepStatus
from .model import StepState


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A copy of a step's resource that no attempt recorded, found and deleted."""

    step: str
    kind: str
    resource_id: str

    def event(self) -> dict[str, str]:
        return {"kind": self.kind, "resourceId": self.resource_id, "action": "deleted"}


def outcome_was_unknown(state: StepState) -> bool:
    """Some attempt of this create may have committed without the gateway hearing of it."""
    if state.attempts == 0:
        return False
    if state.attempts > 1:  # every retry follows an attempt that did not succeed, for any reason
        return True
    if state.status in (StepStatus.SUCCEEDED, StepStatus.COMPENSATED):
        return False  # its only attempt was answered
    return not _refused(state)


def settled_at(states: Iterable[StepState], window: timedelta) -> datetime | None:
    """When no create of these steps can commit any more; None when none ever could late."""
    deadlines = [
        state.attempted_at + window for state in states if state.attempted_at is not None and outcome_was_unknown(state)
    ]
    return max(deadlines, default=None)


def _refused(state: StepState) -> bool:
    """The last attempt was answered with a 4xx other than 429: Adobe refused it, nothing committed."""
    status = (state.error or {}).get("upstreamStatus")
    return isinstance(status, int) and 400 <= status < 500 and status != 429

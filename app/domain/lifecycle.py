"""The activation lifecycle of contract §3 as a state machine with guarded transitions."""

from __future__ import annotations

from enum import StrEnum


class ActivationStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"


TERMINAL_STATUSES = frozenset(
    {
        ActivationStatus.SUCCEEDED,
        ActivationStatus.FAILED,
        ActivationStatus.ROLLED_BACK,
        ActivationStatus.ROLLBACK_FAILED,
    }
)

# What a worker may still have to do something about (the claim query uses the same list).
ACTIVE_STATUSES = frozenset({ActivationStatus.PENDING, ActivationStatus.RUNNING, ActivationStatus.ROLLING_BACK})

_TRANSITIONS: dict[ActivationStatus, frozenset[ActivationStatus]] = {
    ActivationStatus.PENDING: frozenset(
        {ActivationStatus.RUNNING, ActivationStatus.ROLLING_BACK, ActivationStatus.FAILED}
    ),
    ActivationStatus.RUNNING: frozenset(
        {ActivationStatus.SUCCEEDED, ActivationStatus.FAILED, ActivationStatus.ROLLING_BACK}
    ),
    # A failed activation is compensated automatically (or on request).
    ActivationStatus.FAILED: frozenset({ActivationStatus.ROLLING_BACK}),
    ActivationStatus.SUCCEEDED: frozenset({ActivationStatus.ROLLING_BACK}),
    ActivationStatus.ROLLING_BACK: frozenset({ActivationStatus.ROLLED_BACK, ActivationStatus.ROLLBACK_FAILED}),
    # A later rollback call retries the deletes that failed.
    ActivationStatus.ROLLBACK_FAILED: frozenset({ActivationStatus.ROLLING_BACK}),
    ActivationStatus.ROLLED_BACK: frozenset(),
}


class InvalidTransition(Exception):
    def __init__(self, current: ActivationStatus, target: ActivationStatus) -> None:
        super().__init__(f"an activation in status {current} cannot become {target}")
        self.current = current
        self.target = target


def can_transition(current: ActivationStatus, target: ActivationStatus) -> bool:
    return target in _TRANSITIONS[current]


def check_transition(current: ActivationStatus, target: ActivationStatus) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(current, target)


def yields_to_rollback(current: ActivationStatus, target: ActivationStatus) -> bool:
    """A requested rollback always wins: the write that would end the forward run as
    succeeded or failed ends it rolling_back instead when a rollback was requested by then, so that
    a request arriving at any moment before that write is acted on (saga_store applies this rule)."""
    return current == ActivationStatus.RUNNING and target in (ActivationStatus.SUCCEEDED, ActivationStatus.FAILED)


def sources_of(target: ActivationStatus) -> frozenset[ActivationStatus]:
    """Statuses from which ``target`` is reachable: used as the WHERE guard of the UPDATE."""
    return frozenset(s for s, targets in _TRANSITIONS.items() if target in targets)

"""The activation lifecycle of contract §3 as a state machine with guarded transitions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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

# What a worker may still have to do something about: the claim's predicate (tables.CLAIMABLE, held
# to this set by a test) and the queue statistics read it.
ACTIVE_STATUSES = frozenset({ActivationStatus.PENDING, ActivationStatus.RUNNING, ActivationStatus.ROLLING_BACK})

# Credentials exist only while the forward run may still need them (the target base connection
# step erases them as soon as it is done with them). The database applies this rule on every write
# (the trigger erase_credentials_off_the_forward_path of migration 0003, held to this set by a
# test), so no statement has to remember it.
CREDENTIAL_STATUSES = frozenset({ActivationStatus.PENDING, ActivationStatus.RUNNING})


def forward_complete(step_statuses: Iterable[StepStatus]) -> bool:
    """The forward run is complete when every step of its workflow succeeded (the completing
    write records it, and the activation becomes succeeded unless a rollback was requested)."""
    return all(status == StepStatus.SUCCEEDED for status in step_statuses)


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


class OperationStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# Contract §9: pause, resume (and later update, export) change a live activation only; rollback
# and retire take an activation in any status.
LIVE = ActivationStatus.SUCCEEDED


def is_live(status: ActivationStatus) -> bool:
    return status == LIVE


def create_operation_status(status: ActivationStatus, applied_revision: int | None) -> OperationStatus:
    """The create operation is the activation's own saga: its status is read from the activation.
    A create that was confirmed upstream (verify_flow wrote applied_revision) succeeded, whatever
    happened to the activation later; one that was torn down before that did not."""
    if status == ActivationStatus.PENDING:
        return OperationStatus.PENDING
    if status == ActivationStatus.RUNNING:
        return OperationStatus.RUNNING
    return OperationStatus.SUCCEEDED if applied_revision is not None else OperationStatus.FAILED


def sync_status(
    status: ActivationStatus,
    revision: int,
    applied_revision: int | None,
    sync_error: dict[str, object] | None,
    differences: Sequence[object] = (),
) -> str:
    """Contract §9's sync.status. `failed`: the last operation that changed the flow failed for good
    (the flow keeps what it had); `applying`: a newer revision is on its way; `drifted`: the last
    reconcile found the flow different from the applied desired state (§13); `in_sync`: the flow
    was confirmed at the current revision; `unknown` otherwise (before the flow exists, or once it
    is being torn down)."""
    if status not in (ActivationStatus.SUCCEEDED, ActivationStatus.RUNNING, ActivationStatus.PENDING):
        return "unknown"
    if sync_error is not None:
        return "failed"
    if applied_revision is None:
        return "applying" if status != ActivationStatus.SUCCEEDED else "unknown"
    if applied_revision < revision:
        return "applying"
    return "drifted" if differences else "in_sync"

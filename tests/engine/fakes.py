"""In-memory fakes of the saga engine's ports (app/domain/ports.py), for fast in-process tests.

FakeStore reproduces the semantics of the SQL statements of app/adapters/db/saga_store.py and
app/adapters/db/operation_store.py (fencing by lease epoch, the rollback-wins rules, what reaching
each status sets, the database's credential-erasure rule), statement by statement: each method
changes the rows only after every check passed, as one statement would, and hands out copies (the
runner never shares objects with it).
FakeFlowService is Adobe's Flow Service as app/adapters/flowservice/client.py presents it, with
fault injection. Nothing here touches a database, a socket or a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import inspect
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import jsonpatch

from app.adapters.db.tables import activation_steps, activations
from app.domain.catalog import DestinationCatalog
from app.domain.lifecycle import (
    ACTIVE_STATUSES,
    ActivationStatus,
    OperationStatus,
    StepStatus,
    check_transition,
    yields_to_rollback,
)
from app.domain.model import Activation, DesiredChange, Lease, LeaseLost, Operation, StepState
from app.domain.observer import NullSagaObserver
from app.domain.operations import OperationRunner
from app.domain.ports import (
    BegunOperation,
    CallLog,
    Cipher,
    ClaimedLease,
    Created,
    EventRows,
    FlowService,
    Guard,
    OperationStore,
    QueryParams,
    ResourceKind,
    SagaStore,
    StepWrite,
    UpstreamCall,
    UpstreamError,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from app.domain.retry import RetryPolicy
from app.domain.saga import SagaRunner
from app.domain.workflows import WORKFLOWS, OperationKind, Workflow, Workflows
from flowservice_emulator.catalog import Catalog

T = TypeVar("T")


def definition_of(kind: OperationKind, version: int = 1, registry: Workflows = WORKFLOWS) -> Workflow:
    """A definition the registry must have."""
    definition = registry.get(kind, version)
    if definition is None:
        raise LookupError(f"no {kind} workflow v{version}")
    return definition


# The create workflow every activation so far was accepted with.
CREATE_V1 = definition_of(OperationKind.CREATE, 1)

S3_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYS3cr3tXYZ"
FAST_RETRY = RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01, retry_after_max=0.01)

_ACTIVATION_COLUMNS = frozenset(activations.c.keys())
_STEP_COLUMNS = frozenset(activation_steps.c.keys())
_LEASE_COLUMNS = frozenset({"lease_owner", "lease_expires_at", "lease_epoch", "run_after"})
_OPERATION_VALUES = frozenset({"state", "flow_etag"})
_CREDENTIAL_STATUSES = frozenset({ActivationStatus.PENDING, ActivationStatus.RUNNING})
# What pause and resume set as the desired state (app/services/operations.py, TARGET_STATES).
_TARGET_STATES = {OperationKind.PAUSE: "disabled", OperationKind.RESUME: "enabled"}


def _now() -> datetime:
    return datetime.now(UTC)


def _names(steps: Sequence[str]) -> None:
    # saga_store._names: step names travel as one comma-separated text parameter.
    if any("," in name for name in steps):
        raise ValueError(f"step names cannot contain commas: {steps}")


def _json_copy(value: Any) -> Any:
    """A JSON round trip, as a jsonb column makes it: raises TypeError on what PostgreSQL would refuse."""
    return json.loads(json.dumps(value, allow_nan=False))


def _start(state: StepState, now: datetime) -> int:
    # saga_store._START_STEP
    state.status = StepStatus.RUNNING
    state.attempts += 1
    state.started_at = state.started_at or now
    state.attempted_at = now
    state.finished_at = None
    return state.attempts


# ============================================================================ the store
@dataclass(slots=True)
class StoredEvent:
    type: str
    step: str | None
    data: dict[str, Any]
    epoch: int  # the lease epoch of the write that inserted it (0: no lease)


@dataclass(slots=True)
class _OperationRow:
    operation: Operation
    seq: int
    desired_state: str | None


@dataclass(slots=True)
class _Row:
    activation: Activation
    lease_epoch: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    run_after: datetime = field(default_factory=_now)
    events: list[StoredEvent] = field(default_factory=list)
    operations: list[_OperationRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Deferral:
    operation_id: uuid.UUID
    delay_seconds: float
    reason: str


WriteHook = Callable[[uuid.UUID, str | None, Mapping[str, Any]], None]


class FakeStore:
    """SagaStore and OperationStore in memory: one row per activation (with its steps, lease,
    events and operation queue)."""

    def __init__(self, *, create_versions: Sequence[int] = (1,)) -> None:
        self._rows: dict[uuid.UUID, _Row] = {}
        self._versions = frozenset(create_versions)
        self._seq = itertools.count(1)
        # Test hooks and observations.
        self.before_write: list[WriteHook] = []  # called by write_step before its fence is checked
        self.unmatched_step_writes: list[str] = []  # step values for a step the activation has no row of
        self.deferrals: list[Deferral] = []

    # ------------------------------------------------------------------ test set-up and inspection
    def add_activation(
        self,
        workflow: Workflow = CREATE_V1,
        *,
        credentials_ciphertext: str | None,
        destination_name: str = "Adobe Campaign",
        storage: dict[str, Any] | None = None,
        segments: list[dict[str, Any]] | None = None,
        attributes: list[str] | None = None,
        name: str | None = "Spring newsletter",
        sandbox: str = "prod",
        client_id: str = "client-1",
    ) -> uuid.UUID:
        """A pending activation as the intake stores it, with a step row for each step of ``workflow``."""
        now = _now()
        activation = Activation(
            id=uuid.uuid4(),
            client_id=client_id,
            status=ActivationStatus.PENDING,
            destination_name=destination_name,
            destination=None,
            sandbox=sandbox,
            name=name,
            storage=storage if storage is not None else s3_storage(),
            credentials_ciphertext=credentials_ciphertext,
            segments=segments if segments is not None else default_segments(),
            attributes=attributes if attributes is not None else ["person.name.lastName", "personalEmail.address"],
            flow_id=None,
            flow_etag=None,
            error=None,
            rollback_requested_at=None,
            created_at=now,
            updated_at=now,
            completed_at=None,
            steps={
                step: StepState(name=step, position=i, status=StepStatus.PENDING)
                for i, step in enumerate(workflow.step_names)
            },
            workflow_version=workflow.version,
        )
        self._rows[activation.id] = _Row(activation=activation)
        return activation.id

    def get(self, activation_id: uuid.UUID) -> Activation:
        """The activation as stored (a copy)."""
        return copy.deepcopy(self._rows[activation_id].activation)

    def events(self, activation_id: uuid.UUID) -> list[StoredEvent]:
        return copy.deepcopy(self._rows[activation_id].events)

    def lease_owner(self, activation_id: uuid.UUID) -> str | None:
        return self._rows[activation_id].lease_owner

    def epoch(self, activation_id: uuid.UUID) -> int:
        return self._rows[activation_id].lease_epoch

    def lease(self, activation_id: uuid.UUID, *, owner: str = "worker-1", seconds: float = 60.0) -> Lease:
        """Claim ``activation_id`` (whatever its status) as CLAIM_SQL does: the epoch moves on."""
        row = self._rows[activation_id]
        row.lease_epoch += 1
        row.lease_owner = owner
        row.lease_expires_at = _now() + timedelta(seconds=seconds)
        return Lease(
            activation_id=activation_id,
            epoch=row.lease_epoch,
            owner=owner,
            valid_until=time.monotonic() + seconds,
            workflow_version=row.activation.workflow_version,
        )

    def take_over(self, activation_id: uuid.UUID, *, owner: str = "another-worker") -> None:
        """Another worker claims the activation: every write of the current lease is refused from now on."""
        self.lease(activation_id, owner=owner)

    def request_rollback(self, activation_id: uuid.UUID) -> tuple[ActivationStatus, bool] | None:
        """repository.request_rollback: a finished activation, or a pending one no worker holds,
        starts rolling back at once; a running one is marked, for its worker to act on. Returns the
        status left and whether rolling back started; None when there was nothing to do."""
        row = self._rows.get(activation_id)
        if row is None:
            return None
        activation = row.activation
        if activation.status in (ActivationStatus.ROLLING_BACK, ActivationStatus.ROLLED_BACK):
            return None
        now = _now()
        previous = activation.status
        lease_free = row.lease_expires_at is None or row.lease_expires_at < now
        starts = previous in (
            ActivationStatus.FAILED,
            ActivationStatus.SUCCEEDED,
            ActivationStatus.ROLLBACK_FAILED,
        ) or (previous == ActivationStatus.PENDING and lease_free)
        activation.rollback_requested_at = activation.rollback_requested_at or now
        if starts:
            activation.status = ActivationStatus.ROLLING_BACK
            activation.completed_at = None
            activation.compensation_retry_at = None
            activation.run_crashes = 0
        row.run_after = now
        activation.updated_at = now
        _erase_credentials_off_the_forward_path(activation)
        if starts:
            data = {"status": activation.status.value, "from": previous.value, "reason": "requested"}
            row.events.append(StoredEvent("status", None, data, 0))
        return activation.status, starts

    def enqueue_operation(
        self,
        activation_id: uuid.UUID,
        workflow: Workflow,
        *,
        desired_state: str | None = None,
        change: DesiredChange | None = None,
        params: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        """Queue an operation of ``workflow`` as the API's queue does: pending, a step row per
        step, the activation's revision, desired state (or, for an update, ``change``: its lists,
        name and drift policy) and queue count moved on."""
        row = self._rows[activation_id]
        activation = row.activation
        if change is not None:
            activation.name, activation.segments = change.name, _json_copy(change.segments)
            activation.attributes, activation.drift_policy = list(change.attributes), change.drift_policy
        now = _now()
        if workflow.kind != OperationKind.EXPORT:  # an export leaves the desired state as it is
            activation.revision += 1
        activation.queued_operations += 1
        activation.desired_state = desired_state or _TARGET_STATES.get(workflow.kind, activation.desired_state)
        activation.updated_at = now
        row.run_after = now
        operation = Operation(
            id=uuid.uuid4(),
            activation_id=activation_id,
            kind=workflow.kind.value,
            workflow_version=workflow.version,
            status=OperationStatus.PENDING,
            revision=activation.revision,
            error=None,
            created_at=now,
            steps={
                step: StepState(name=step, position=i, status=StepStatus.PENDING)
                for i, step in enumerate(workflow.step_names)
            },
            params=_json_copy(params or {}),
        )
        row.operations.append(_OperationRow(operation, next(self._seq), activation.desired_state))
        return operation.id

    def force_queue_count(self, activation_id: uuid.UUID, count: int) -> None:
        """Make the queue count drift from the queue (what RELEASE_EMPTY_QUEUE repairs)."""
        self._rows[activation_id].activation.queued_operations = count

    def operation(self, operation_id: uuid.UUID) -> Operation:
        return copy.deepcopy(self._operation_row(operation_id).operation)

    # ------------------------------------------------------------------ SagaStore: queue and lease
    async def claim(self, *, owner: str, limit: int, lease_seconds: float) -> list[ClaimedLease]:
        now = _now()
        claimed: list[ClaimedLease] = []
        for row in sorted(self._rows.values(), key=lambda r: r.run_after):
            if len(claimed) >= limit:
                break
            expired = row.lease_expires_at is None or row.lease_expires_at < now
            if not (_claimable(row.activation) and row.run_after <= now and expired):
                continue
            if row.activation.workflow_version not in self._versions:
                continue
            row.lease_owner = owner
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            row.lease_epoch += 1
            claimed.append(ClaimedLease(row.activation.id, row.lease_epoch, row.activation.workflow_version))
        return claimed

    async def renew(self, lease: Lease, lease_seconds: float) -> bool:
        row = self._rows.get(lease.activation_id)
        if row is None or row.lease_epoch != lease.epoch:
            return False
        row.lease_expires_at = None if row.lease_owner is None else _now() + timedelta(seconds=lease_seconds)
        return True

    async def release(self, lease: Lease, *, delay_seconds: float = 0.0) -> None:
        row = self._rows.get(lease.activation_id)
        if row is None or row.lease_epoch != lease.epoch:
            return
        row.lease_owner = row.lease_expires_at = None
        row.run_after = _now() + timedelta(seconds=delay_seconds)

    # ------------------------------------------------------------------ SagaStore: the run's writes
    async def begin_run(self, lease: Lease, *, first_steps: Sequence[str]) -> tuple[Activation, dict[str, int]]:
        check_transition(ActivationStatus.PENDING, ActivationStatus.RUNNING)
        check_transition(ActivationStatus.PENDING, ActivationStatus.ROLLING_BACK)
        _names(first_steps)
        row = self._fence(lease)
        activation = row.activation
        now = _now()
        # The statement's main query sees the rows as they were before it, but for the status.
        snapshot = copy.deepcopy(activation)
        started: dict[str, int] = {}
        if activation.status == ActivationStatus.PENDING:
            if activation.rollback_requested_at is None:
                activation.status = ActivationStatus.RUNNING
                for name in first_steps:
                    if name in activation.steps:
                        started[name] = _start(activation.steps[name], now)
            else:
                activation.status = ActivationStatus.ROLLING_BACK
            data = {"status": activation.status.value, "from": ActivationStatus.PENDING.value}
            row.events.append(StoredEvent("status", None, data, lease.epoch))
        activation.updated_at = now
        _erase_credentials_off_the_forward_path(activation)
        snapshot.status = activation.status
        return snapshot, started

    async def load(self, lease: Lease) -> Activation:
        # Not fenced, like LOAD_ACTIVATION: a plain read by id.
        row = self._rows.get(lease.activation_id)
        if row is None:
            raise LeaseLost(f"activation {lease.activation_id} vanished")
        return copy.deepcopy(row.activation)

    async def write_step(
        self,
        lease: Lease,
        step: str | None = None,
        *,
        values: Mapping[str, Any] | None = None,
        activation_values: Mapping[str, Any] | None = None,
        events: EventRows = (),
        start: Sequence[str] = (),
        start_unless_rollback: bool = True,
        complete: bool = False,
    ) -> StepWrite:
        values = dict(values or {})
        activation_values = dict(activation_values or {})
        for column in activation_values:
            _check_column(column, _ACTIVATION_COLUMNS)
        if step is not None:
            for column in values:
                _check_column(column, _STEP_COLUMNS)
        _names(start)
        rows = _event_rows(events, lease.epoch)
        for hook in list(self.before_write):
            hook(lease.activation_id, step, values)
        row = self._fence(lease)
        activation = row.activation
        now = _now()
        # In SET, columns are the old values: decided before anything changes.
        if complete and activation.rollback_requested_at is None and activation.status == ActivationStatus.RUNNING:
            activation.status = ActivationStatus.SUCCEEDED
            activation.completed_at = now
            activation.error = None
            row.lease_owner = row.lease_expires_at = None
        for column, value in activation_values.items():
            _set_activation_column(row, column, value)
        activation.updated_at = now
        _erase_credentials_off_the_forward_path(activation)
        if step is not None and values:
            state = activation.steps.get(step)
            if state is None:
                self.unmatched_step_writes.append(step)  # the UPDATE matches no row: silently nothing
            else:
                for column, value in values.items():
                    _set_step_column(state, column, value)
        started: dict[str, int] = {}
        if start and not (start_unless_rollback and activation.rollback_requested_at is not None):
            for name in start:
                if name in activation.steps:
                    started[name] = _start(activation.steps[name], now)
        row.events.extend(rows)
        completed = complete and activation.status == ActivationStatus.SUCCEEDED
        if completed:
            data = {"status": ActivationStatus.SUCCEEDED.value, "from": ActivationStatus.RUNNING.value}
            row.events.append(StoredEvent("status", None, data, lease.epoch))
        return StepWrite(
            rollback_requested=activation.rollback_requested_at is not None, started=started, completed=completed
        )

    async def set_status(
        self,
        lease: Lease,
        current: ActivationStatus,
        *path: ActivationStatus,
        error: dict[str, Any] | None = None,
        keep_error: bool = False,
        event: dict[str, Any] | None = None,
        events: EventRows = (),
        retry_in: float | None = None,
    ) -> ActivationStatus:
        hops = [current, *path]
        for before, after in itertools.pairwise(hops):
            check_transition(before, after)
        target = hops[-1]
        yields = len(path) == 1 and yields_to_rollback(current, target)
        rows = list(events)
        if not yields:
            for before, after in itertools.pairwise(hops):
                data = {"status": after.value, "from": before.value, **((event or {}) if after == target else {})}
                rows.append({"type": "status", "step": None, "data": data})
        stored = _event_rows(rows, lease.epoch)
        if error is not None:
            _json_copy(error)
        row = self._rows.get(lease.activation_id)
        if row is None or row.lease_epoch != lease.epoch or row.activation.status != current:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over, or not {current}")
        reached = target
        if yields and row.activation.rollback_requested_at is not None:
            reached = ActivationStatus.ROLLING_BACK
        _reach(row, reached, error=error, keep_error=keep_error, retry_in=None if yields else retry_in)
        row.events.extend(stored)
        if yields:
            data = {"status": reached.value, "from": current.value}
            data.update((event or {}) if reached == target else {"reason": "requested"})
            row.events.append(StoredEvent("status", None, _json_copy(data), lease.epoch))
        return reached

    async def record_crash(self, lease: Lease, error: str) -> tuple[int, ActivationStatus]:
        row = self._fence(lease)
        row.activation.run_crashes += 1
        data = {"error": error, "crashes": row.activation.run_crashes}
        row.events.append(StoredEvent("crash", None, data, lease.epoch))
        return row.activation.run_crashes, row.activation.status

    # ------------------------------------------------------------------ OperationStore
    async def begin_operation(self, lease: Lease, *, runnable: Collection[str] = ()) -> BegunOperation | None:
        row = self._fence(lease)
        candidates = [
            o
            for o in row.operations
            if o.operation.status in (OperationStatus.PENDING, OperationStatus.RUNNING)
            and o.operation.kind not in (OperationKind.ROLLBACK.value, OperationKind.RETIRE.value)
        ]
        if not candidates:
            # RELEASE_EMPTY_QUEUE: the count had drifted; set it right and let the activation go.
            row.activation.queued_operations = 0
            row.lease_owner = row.lease_expires_at = None
            return None
        entry = min(candidates, key=lambda o: o.seq)
        operation = entry.operation
        previous = operation.status
        operation.status = OperationStatus.RUNNING
        operation.started_at = operation.started_at or _now()
        if previous == OperationStatus.PENDING:
            data = {
                "operationId": str(operation.id),
                "kind": operation.kind,
                "status": "running",
                "revision": operation.revision,
            }
            row.events.append(StoredEvent("operation", None, data, lease.epoch))
        begun = copy.deepcopy(operation)  # like the statement's step_rows: read before the first step starts
        first_attempt = None
        if f"{operation.kind}:{operation.workflow_version}" in runnable:
            unfinished = [s for s in operation.steps.values() if s.status != StepStatus.SUCCEEDED]
            if unfinished:
                first_attempt = _start(min(unfinished, key=lambda s: s.position), _now())
        return BegunOperation(begun, first_attempt)

    async def start_operation_step(self, lease: Lease, operation_id: uuid.UUID, step: str, *, events: EventRows) -> int:
        rows = _event_rows(events, lease.epoch)
        row = self._fence(lease)
        operation = self._operation_of(row, operation_id)
        state = operation.steps.get(step) if operation is not None else None
        row.events.extend(rows)
        if state is None:
            # `(SELECT attempts FROM started)` is NULL: int(None) in the adapter.
            raise TypeError(f"operation {operation_id} has no step {step!r}")
        return _start(state, _now())

    async def finish_operation_step(
        self,
        lease: Lease,
        operation_id: uuid.UUID,
        step: str,
        *,
        succeeded: bool,
        error: dict[str, Any] | None = None,
        activation_values: Mapping[str, Any] | None = None,
        events: EventRows = (),
        start_next: str | None = None,
    ) -> int | None:
        values = _step_values(activation_values)
        status = StepStatus.SUCCEEDED if succeeded else StepStatus.FAILED
        rows = _event_rows([*events, _step_event(operation_id, step, status, error)], lease.epoch)
        row = self._fence(lease)
        _set_step_values(row.activation, values)
        operation = self._operation_of(row, operation_id)
        state = operation.steps.get(step) if operation is not None else None
        if state is not None:
            state.status = status
            state.finished_at = _now()
            state.error = _json_copy(error) if error is not None else None
        following = operation.steps.get(start_next) if operation is not None and start_next and succeeded else None
        attempts = _start(following, _now()) if following is not None else None
        row.events.extend(rows)
        return attempts

    async def finish_operation(
        self,
        lease: Lease,
        operation: Operation,
        *,
        error: dict[str, Any] | None,
        events: EventRows = (),
        last_step: str | None = None,
        activation_values: Mapping[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        succeeded = error is None
        values = _step_values(activation_values if succeeded else None)
        status = OperationStatus.SUCCEEDED if succeeded else OperationStatus.FAILED
        data: dict[str, Any] = {
            "operationId": str(operation.id),
            "kind": operation.kind,
            "status": status.value,
            "revision": operation.revision,
        }
        if error is not None:
            data["error"] = error
        step_rows = [_step_event(operation.id, last_step, StepStatus.SUCCEEDED, None)] if last_step else []
        rows = _event_rows([*events, *step_rows, {"type": "operation", "step": None, "data": data}], lease.epoch)
        row = self._fence(lease)
        activation = row.activation
        now = _now()
        _set_step_values(activation, values)
        queued = activation.queued_operations  # SET reads the old values
        activation.queued_operations = max(queued - 1, 0)
        activation.run_crashes = 0
        confirms = operation.kind != OperationKind.EXPORT.value  # an export leaves revision and sync as they were
        if succeeded and confirms:
            activation.applied_revision = max(activation.applied_revision or 0, operation.revision)
            activation.sync_error = None
            activation.sync_checked_at = now
        elif confirms:
            activation.sync_error = _json_copy(error)
            if queued <= 1:
                activation.desired_state = activation.state or activation.desired_state
        row.lease_owner = row.lease_expires_at = None
        row.run_after = now
        stored = self._operation_of(row, operation.id)
        last = stored.steps.get(last_step) if stored is not None and last_step and succeeded else None
        if last is not None:
            last.status, last.finished_at, last.error = StepStatus.SUCCEEDED, now, None
        if stored is not None and stored.status == OperationStatus.RUNNING:
            stored.status = status
            stored.error = _json_copy(error) if error is not None else None
            stored.completed_at = now
            stored.result = _json_copy(result) if succeeded and result is not None else None
        row.events.extend(rows)

    async def defer_operation(self, lease: Lease, operation: Operation, *, delay_seconds: float, reason: str) -> None:
        row = self._fence(lease)
        now = _now()
        row.lease_owner = row.lease_expires_at = None
        row.run_after = now + timedelta(seconds=delay_seconds)
        said = any(
            e.type == "workflow_unavailable" and e.data.get("operationId") == str(operation.id) for e in row.events
        )
        if not said:
            data = {"operationId": str(operation.id), "reason": reason}
            row.events.append(StoredEvent("workflow_unavailable", None, data, lease.epoch))
        self.deferrals.append(Deferral(operation.id, delay_seconds, reason))

    # ------------------------------------------------------------------ internals
    def _fence(self, lease: Lease) -> _Row:
        row = self._rows.get(lease.activation_id)
        if row is None or row.lease_epoch != lease.epoch:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return row

    @staticmethod
    def _operation_of(row: _Row, operation_id: uuid.UUID) -> Operation | None:
        return next((o.operation for o in row.operations if o.operation.id == operation_id), None)

    def _operation_row(self, operation_id: uuid.UUID) -> _OperationRow:
        for row in self._rows.values():
            for entry in row.operations:
                if entry.operation.id == operation_id:
                    return entry
        raise KeyError(operation_id)


def _step_values(activation_values: Mapping[str, Any] | None) -> dict[str, Any]:
    values = dict(activation_values or {})
    if not values.keys() <= _OPERATION_VALUES:
        raise ValueError(f"an operation's step may set only {sorted(_OPERATION_VALUES)}, not {sorted(values)}")
    return values


def _set_step_values(activation: Activation, values: Mapping[str, Any]) -> None:
    # `%(values)s::jsonb ->> 'state'`: the value as text.
    if "state" in values:
        activation.state = _as_text(values["state"])
    if "flow_etag" in values:
        activation.flow_etag = _as_text(values["flow_etag"])


def _step_event(operation_id: uuid.UUID, step: str, status: StepStatus, error: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status.value, "operationId": str(operation_id)}
    if error is not None:
        data["error"] = error
    return {"type": "step", "step": step, "data": data}


def _claimable(activation: Activation) -> bool:
    # tables.CLAIMABLE
    return (
        activation.status in ACTIVE_STATUSES
        or (activation.status == ActivationStatus.ROLLBACK_FAILED and activation.compensation_retry_at is not None)
        or (activation.status == ActivationStatus.SUCCEEDED and activation.queued_operations > 0)
    )


def _reach(row: _Row, target: ActivationStatus, *, error: Any, keep_error: bool, retry_in: float | None) -> None:
    """saga_store._status_sets: what reaching ``target`` sets besides the status."""
    activation = row.activation
    now = _now()
    activation.status = target
    activation.updated_at = now
    if not keep_error:
        activation.error = copy.deepcopy(error)
    activation.completed_at = now if target.terminal else None
    if target.terminal:
        row.lease_owner = row.lease_expires_at = None
    if target == ActivationStatus.ROLLING_BACK:
        activation.run_crashes = 0
        activation.compensation_retry_at = None
    if target == ActivationStatus.ROLLED_BACK:
        activation.compensation_retry_at = None
    if retry_in is not None:
        activation.compensation_retry_at = now + timedelta(seconds=retry_in)
        row.run_after = activation.compensation_retry_at
        activation.compensation_rounds += 1
    _erase_credentials_off_the_forward_path(activation)


def _erase_credentials_off_the_forward_path(activation: Activation) -> None:
    """The database's own rule (the trigger of migration 0003, lifecycle.CREDENTIAL_STATUSES):
    credentials exist only while the forward run may still need them. Applied by every write that
    may move the status or set the credentials, as the trigger is."""
    if activation.status not in _CREDENTIAL_STATUSES:
        activation.credentials_ciphertext = None


def _check_column(name: str, allowed: frozenset[str]) -> None:
    if name not in allowed:
        raise ValueError(f"unknown column {name!r}")


def _set_activation_column(row: _Row, column: str, value: Any) -> None:
    if column in _LEASE_COLUMNS:
        setattr(row, column, value)
        return
    if column == "status":
        value = ActivationStatus(value)
    elif isinstance(value, dict | list):
        value = _json_copy(value)
    setattr(row.activation, column, value)


def _set_step_column(state: StepState, column: str, value: Any) -> None:
    if column == "status":
        value = StepStatus(value)
    elif isinstance(value, dict | list):
        value = _json_copy(value)
    setattr(state, column, value)


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _event_rows(rows: EventRows, epoch: int) -> list[StoredEvent]:
    # saga_store._event_rows: each row needs a type and data; data must be valid jsonb.
    return [StoredEvent(str(r["type"]), r.get("step"), _json_copy(r["data"]), epoch) for r in rows]


# ============================================================================ the Flow Service
Callback = Callable[[], Awaitable[None] | None]


@dataclass(slots=True)
class _Fault:
    method: str
    path: str
    error: int | UpstreamError | None  # a status, an error to raise as is, None: no answer
    commit: bool  # the request takes effect upstream before the error
    late: bool  # the request takes effect only after the next request like it
    times: int

    def build(self, method: str, path: str) -> UpstreamError:
        if isinstance(self.error, UpstreamError):
            return self.error
        if self.error is None:
            return UpstreamUnavailable(method=method, path=path, reason="timeout (injected)")
        return _status_error(self.error, method, path, code="injected", message="injected fault")


@dataclass(slots=True)
class _Hook:
    method: str
    path: str
    callback: Callback
    after: bool
    times: int


def _status_error(status: int, method: str, path: str, *, code: str | None, message: str) -> UpstreamStatusError:
    return UpstreamStatusError(
        status=status, code=code, message=message, request_id=str(uuid.uuid4()), method=method, path=path
    )


def _etag() -> str:
    return f'"{uuid.uuid4()}"'


_CATALOG = Catalog()


class FakeFlowService:
    """The FlowService port in memory, like FlowServiceClient over the emulator: ``guard`` runs
    right before each request "leaves", and every answered (or unanswered) request is reported to
    ``log``. Faults and hooks match a request by method and by its path or path template (e.g.
    ``POST /flows`` is the create, ``POST /flows/{id}/action`` any flow action)."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._catalog = catalog or _CATALOG
        self.resources: dict[str, dict[str, dict[str, Any]]] = {kind.value: {} for kind in ResourceKind}
        self.calls: list[UpstreamCall] = []
        self.adhoc_jobs: dict[tuple[str, str], str] = {}  # (flow, audience) → the run id of its export
        self.runs: list[dict[str, Any]] = []  # the export runs the ad-hoc jobs started
        self.unguarded: list[str] = []  # requests sent without a guard
        self._faults: list[_Fault] = []
        self._hooks: list[_Hook] = []
        self._late: list[tuple[str, str, Callable[[], Any]]] = []

    # ------------------------------------------------------------------ fault injection
    def fail_next(
        self,
        method: str,
        path: str,
        error: int | UpstreamError | None = 500,
        *,
        commit: bool = False,
        times: int = 1,
    ) -> None:
        """The next ``times`` matching requests fail: with status ``error``, with ``error`` itself,
        or (None) without an answer. With ``commit`` the request takes effect before it fails."""
        self._faults.append(_Fault(method, path, error, commit, False, times))

    def commit_then_fail(self, method: str, path: str, *, times: int = 1) -> None:
        """The request takes effect upstream, but its answer never arrives."""
        self.fail_next(method, path, None, commit=True, times=times)

    def commit_late(self, method: str, path: str) -> None:
        """The request gets no answer and takes effect only after the next request like it: the
        late commit of duplicates.py."""
        self._faults.append(_Fault(method, path, None, False, True, 1))

    def on_request(self, method: str, path: str, callback: Callback, *, after: bool = False, times: int = 1) -> None:
        """Run ``callback`` when a matching request arrives (before its guard), or once it was handled."""
        self._hooks.append(_Hook(method, path, callback, after, times))

    # ------------------------------------------------------------------ inspection
    def of(self, kind: ResourceKind) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.resources[kind.value].values()))

    def counts(self) -> dict[str, int]:
        return {kind: len(items) for kind, items in self.resources.items()}

    def requests(self, method: str | None = None, endpoint: str | None = None) -> list[UpstreamCall]:
        return [
            c
            for c in self.calls
            if (method is None or c.method == method) and (endpoint is None or endpoint in (c.endpoint, c.path))
        ]

    # ------------------------------------------------------------------ FlowService
    async def count(self, collection: str, *, sandbox: str, params: QueryParams | None = None) -> int:
        return len(await self.list_all(collection, sandbox=sandbox, params=params))

    async def list_all(
        self,
        collection: str,
        *,
        sandbox: str,
        params: QueryParams | None = None,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> list[dict[str, Any]]:
        path = f"/{collection}"

        def handle() -> tuple[int, list[dict[str, Any]]]:
            if collection == "connectionSpecs":
                items = self._catalog.connection_specs()
            elif collection == "flowSpecs":
                items = self._catalog.flow_specs()
            elif collection == "runs":
                items = copy.deepcopy(self.runs)
            elif collection in self.resources:
                items = [copy.deepcopy(r) for r in self.resources[collection].values() if r["sandboxName"] == sandbox]
            else:
                raise _status_error(404, "GET", path, code="1439", message="no such collection")
            pairs = list(params.items()) if isinstance(params, Mapping) else list(params or ())
            for key, prop in pairs:
                name, equals, value = prop.partition("==")
                if key == "property" and equals and "." not in name:  # windows (`>`) pass everything
                    items = [item for item in items if str(item.get(name)) in value.split(",")]
            return 200, items

        return await self._request("GET", path, path, guard, log, handle)

    async def create(
        self,
        kind: ResourceKind,
        body: dict[str, Any],
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> Created:
        path = f"/{kind.value}"
        document = _json_copy(body)

        def handle() -> tuple[int, Created]:
            self._validate(kind, document, sandbox)
            resource = {**copy.deepcopy(document), "id": str(uuid.uuid4()), "etag": _etag(), "sandboxName": sandbox}
            if kind == ResourceKind.FLOWS:
                resource["state"] = "enabled"
            self.resources[kind.value][resource["id"]] = resource
            return 201, Created(id=resource["id"], etag=resource["etag"])

        return await self._request("POST", path, path, guard, log, handle)

    async def get(
        self,
        kind: ResourceKind,
        resource_id: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> dict[str, Any]:
        path = f"/{kind.value}/{resource_id}"

        def handle() -> tuple[int, dict[str, Any]]:
            return 200, copy.deepcopy(self._require(kind, resource_id, "GET", sandbox))

        return await self._request("GET", path, f"/{kind.value}/{{id}}", guard, log, handle)

    async def find_all_by_name(
        self,
        kind: ResourceKind,
        name: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> list[dict[str, Any]]:
        params = {"property": f"name=={name}", "limit": "100"}
        items = await self.list_all(kind.value, sandbox=sandbox, params=params, guard=guard, log=log)
        return [item for item in items if item.get("name") == name]

    async def patch(
        self,
        kind: ResourceKind,
        resource_id: str,
        operations: list[dict[str, Any]],
        *,
        etag: str,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> str | None:
        path = f"/{kind.value}/{resource_id}"
        ops = _json_copy(operations)

        def handle() -> tuple[int, str | None]:
            resource = self._require(kind, resource_id, "PATCH", sandbox)
            if etag != resource["etag"]:
                raise _status_error(412, "PATCH", path, code="1412", message="etag does not match")
            try:
                patched: dict[str, Any] = jsonpatch.apply_patch(resource, ops)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise _status_error(400, "PATCH", path, code="1434", message=str(exc)) from None
            patched["id"], patched["etag"] = resource_id, _etag()
            self.resources[kind.value][resource_id] = patched
            return 202, str(patched["etag"])

        return await self._request("PATCH", path, f"/{kind.value}/{{id}}", guard, log, handle)

    async def delete(
        self,
        kind: ResourceKind,
        resource_id: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> bool:
        path = f"/{kind.value}/{resource_id}"

        def handle() -> tuple[int, bool]:
            self._require(kind, resource_id, "DELETE", sandbox)
            if kind == ResourceKind.CONNECTIONS:
                flows = self._flows_using_base_connection(resource_id)
                if flows:
                    message = f"Base connection {resource_id} is used by {len(flows)} flow(s). Delete the flows first."
                    raise _status_error(400, "DELETE", path, code="1418", message=message)
            del self.resources[kind.value][resource_id]
            return 204, True

        try:
            return await self._request("DELETE", path, f"/{kind.value}/{{id}}", guard, log, handle)
        except UpstreamStatusError as exc:
            if exc.status == 404:
                return False
            raise

    async def flow_action(
        self,
        flow_id: str,
        op: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> str | None:
        path = f"/flows/{flow_id}/action"

        def handle() -> tuple[int, str | None]:
            flow = self._require(ResourceKind.FLOWS, flow_id, "POST", sandbox)
            states = {"enable": "enabled", "disable": "disabled"}
            if op not in states:
                raise _status_error(400, "POST", path, code="1400", message=f"unknown op {op!r}")
            flow["state"] = states[op]
            flow["etag"] = _etag()
            return 200, str(flow["etag"])

        return await self._request("POST", path, "/flows/{id}/action", guard, log, handle)

    async def adhoc_run(
        self,
        activation_info: Mapping[str, list[str]],
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> dict[str, Any]:
        """One job (a run id) per call and flow; an audience already in a job is refused with
        Adobe's text, as while its export runs (the fake's jobs never finish)."""
        path = "/data/core/activation/disflowprovider/adhocrun"

        def handle() -> tuple[int, dict[str, Any]]:
            order = []
            for flow_id, audiences in activation_info.items():
                self._require(ResourceKind.FLOWS, flow_id, "POST", sandbox)
                for audience in audiences:
                    running = self.adhoc_jobs.get((flow_id, audience))
                    if running is not None:
                        message = (
                            f"Run already going on for audience {audience} for order {flow_id} with run id {running}"
                        )
                        raise _status_error(400, "POST", path, code=None, message=message)
                run_id = str(uuid.uuid4())
                entities = [{"id": f"segment:{audience}", "outputRecordCount": 0} for audience in audiences]
                self.runs.append(
                    {
                        "id": run_id,
                        "flowId": flow_id,
                        "metrics": {
                            "durationSummary": {"startedAtUTC": int(time.time() * 1000)},
                            "recordSummary": {"targetSummaries": [{"entitySummaries": entities}]},
                            "statusSummary": {"status": "Processing"},
                        },
                    }
                )
                for audience in audiences:
                    self.adhoc_jobs[(flow_id, audience)] = run_id
                    order.append({"segment": audience, "order": flow_id, "statusURL": f"/runs/{run_id}"})
            return 200, {"order": order}

        return await self._request("POST", path, path, guard, log, handle)

    # ------------------------------------------------------------------ internals
    async def _request(
        self,
        method: str,
        path: str,
        endpoint: str,
        guard: Guard | None,
        log: CallLog | None,
        handle: Callable[[], tuple[int, T]],
    ) -> T:
        await asyncio.sleep(0)  # a request is an await: let the other branch run meanwhile
        await self._run_hooks(method, path, endpoint, after=False)
        if guard is None:
            self.unguarded.append(f"{method} {path}")
        else:
            guard()  # raises when the lease is gone: nothing is sent, nothing recorded
        started = time.perf_counter()
        fault = self._take_fault(method, path, endpoint)
        error: UpstreamError | None = None
        status: int | None = None
        result: T | None = None
        try:
            if fault is None or fault.commit:
                status, result = handle()
            if fault is not None:
                if fault.late:
                    self._late.append((method, path, handle))
                error = fault.build(method, path)
        except UpstreamStatusError as exc:
            error = exc
        if fault is None and error is None:
            self._commit_late(method, path)
        if isinstance(error, UpstreamStatusError):
            status = error.status
        elif error is not None:
            status = None
        self._record(log, method, path, endpoint, status, started, error)
        await self._run_hooks(method, path, endpoint, after=True)
        if error is not None:
            raise error
        return cast(T, result)

    def _commit_late(self, method: str, path: str) -> None:
        pending = [entry for entry in self._late if entry[0] == method and entry[1] == path]
        for entry in pending:
            self._late.remove(entry)
            with contextlib.suppress(UpstreamStatusError):  # refused when it lands: it changes nothing
                entry[2]()

    def _take_fault(self, method: str, path: str, endpoint: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method == method and fault.path in (path, endpoint):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _run_hooks(self, method: str, path: str, endpoint: str, *, after: bool) -> None:
        for hook in list(self._hooks):
            if hook.after == after and hook.method == method and hook.path in (path, endpoint):
                hook.times -= 1
                if hook.times <= 0:
                    self._hooks.remove(hook)
                outcome = hook.callback()
                if inspect.isawaitable(outcome):
                    await outcome

    def _record(
        self,
        log: CallLog | None,
        method: str,
        path: str,
        endpoint: str,
        status: int | None,
        started: float,
        error: UpstreamError | None,
    ) -> None:
        call = UpstreamCall(
            method=method,
            path=path,
            endpoint=endpoint,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            request_id=str(uuid.uuid4()),
            adobe_request_id=str(uuid.uuid4()) if status is not None else None,
            error=type(error).__name__ if isinstance(error, UpstreamUnavailable) else None,
            context=dict(log.labels) if log is not None else {},
        )
        self.calls.append(call)
        if log is not None:
            log.record(call)

    def _require(self, kind: ResourceKind, resource_id: str, method: str, sandbox: str) -> dict[str, Any]:
        """The resource, if it exists in ``sandbox`` (resources of other sandboxes are not found)."""
        resource = self.resources[kind.value].get(resource_id)
        if resource is None or resource["sandboxName"] != sandbox:
            path = f"/{kind.value}/{resource_id}"
            raise _status_error(404, method, path, code="1439", message="Resource not found")
        return resource

    def _validate(self, kind: ResourceKind, body: dict[str, Any], sandbox: str) -> None:
        """The checks of the emulator that catch wiring mistakes: referenced resources and specs exist."""
        path = f"/{kind.value}"

        def refuse(message: str) -> UpstreamStatusError:
            return _status_error(400, "POST", path, code="1400", message=message)

        if not body.get("name"):
            raise refuse("name is required")
        if kind == ResourceKind.FLOWS:
            if "state" in body:
                raise refuse("The field 'state' is not allowed in a create flow request.")
            if self._catalog.flow_spec_readonly(str((body.get("flowSpec") or {}).get("id"))) is None:
                raise refuse("unknown flow spec")
            for field_name, collection in (
                ("sourceConnectionIds", ResourceKind.SOURCE_CONNECTIONS),
                ("targetConnectionIds", ResourceKind.TARGET_CONNECTIONS),
            ):
                ids = body.get(field_name) or []
                if not ids or any(not self._exists(collection, i, sandbox) for i in ids):
                    raise refuse(f"{field_name} must name existing {collection.value}")
            return
        spec_id = str((body.get("connectionSpec") or {}).get("id"))
        if self._catalog.connection_spec_readonly(spec_id) is None:
            raise refuse("unknown connection spec")
        if kind in (ResourceKind.SOURCE_CONNECTIONS, ResourceKind.TARGET_CONNECTIONS) and not self._exists(
            ResourceKind.CONNECTIONS, str(body.get("baseConnectionId")), sandbox
        ):
            raise refuse("baseConnectionId must name an existing base connection")
        if kind == ResourceKind.CONNECTIONS and "auth" in body:
            auth_name = (body.get("auth") or {}).get("specName")
            if self._catalog.auth_spec_readonly(spec_id, str(auth_name)) is None:
                raise refuse(f"unknown auth spec {auth_name!r}")

    def _exists(self, kind: ResourceKind, resource_id: str, sandbox: str) -> bool:
        resource = self.resources[kind.value].get(resource_id)
        return resource is not None and resource["sandboxName"] == sandbox

    def _flows_using_base_connection(self, base_id: str) -> list[str]:
        # flowservice_emulator/resources.py: a base connection linked to a flow through a
        # connection that still exists cannot be deleted.
        users = {
            (kind, doc["id"])
            for kind in (ResourceKind.SOURCE_CONNECTIONS.value, ResourceKind.TARGET_CONNECTIONS.value)
            for doc in self.resources[kind].values()
            if doc.get("baseConnectionId") == base_id
        }
        return [
            flow["id"]
            for flow in self.resources[ResourceKind.FLOWS.value].values()
            if any((ResourceKind.SOURCE_CONNECTIONS.value, s) in users for s in flow.get("sourceConnectionIds", []))
            or any((ResourceKind.TARGET_CONNECTIONS.value, t) in users for t in flow.get("targetConnectionIds", []))
        ]


# ============================================================================ the cipher
class FakeCipher:
    """Reversible and obvious: JSON behind a prefix. Fingerprints are plain SHA-256."""

    PREFIX = "fake-cipher:"

    def encrypt(self, secrets: dict[str, Any]) -> str:
        return self.PREFIX + json.dumps(secrets, sort_keys=True)

    def decrypt(self, token: str) -> dict[str, Any]:
        if not token.startswith(self.PREFIX):
            raise ValueError("not a token of FakeCipher")
        data: dict[str, Any] = json.loads(token[len(self.PREFIX) :])
        return data

    def fingerprint(self, canonical: bytes) -> str:
        return hashlib.sha256(canonical).hexdigest()

    def fingerprint_matches(self, canonical: bytes, stored: str) -> bool:
        return hmac.compare_digest(self.fingerprint(canonical), stored)


# ============================================================================ request data
def s3_storage() -> dict[str, Any]:
    """S3 storage settings as the intake stores them: without the secret key."""
    return {
        "type": "s3",
        "accessId": "AKIAIOSFODNN7EXAMPLE",
        "bucketName": "acme-aep-exports",
        "path": "campaign/spring",
    }


def default_segments() -> list[dict[str, Any]]:
    return [{"id": str(uuid.uuid4()), "name": f"Segment {i}"} for i in range(2)]


# ============================================================================ the engine
@dataclass(slots=True)
class Engine:
    """A SagaRunner and its OperationRunner wired as app/runtime.py wires them, on the fakes."""

    store: FakeStore
    upstream: FakeFlowService
    cipher: FakeCipher
    catalog: DestinationCatalog
    workflows: Workflows
    runner: SagaRunner
    operations: OperationRunner

    def new_activation(
        self, workflow: Workflow = CREATE_V1, *, secrets: dict[str, Any] | None = None, **fields: Any
    ) -> uuid.UUID:
        secrets = secrets if secrets is not None else {"secretKey": S3_SECRET_KEY}
        return self.store.add_activation(workflow, credentials_ciphertext=self.cipher.encrypt(secrets), **fields)

    async def run(self, activation_id: uuid.UUID, *, owner: str = "worker-1") -> ActivationStatus:
        return await run_cycle(self.runner, self.store, activation_id, owner=owner)

    def with_workflows(self, workflows: Workflows, **options: Any) -> Engine:
        """Another build (another registry of workflows) on the same database and the same Adobe."""
        return make_engine(workflows=workflows, store=self.store, upstream=self.upstream, **options)


def make_engine(
    *,
    workflows: Workflows = WORKFLOWS,
    auto_compensate: bool = True,
    retry: RetryPolicy = FAST_RETRY,
    store: FakeStore | None = None,
    upstream: FakeFlowService | None = None,
    crash_limit: int = 5,
) -> Engine:
    store = store or FakeStore(create_versions=workflows.versions(OperationKind.CREATE))
    upstream = upstream or FakeFlowService()
    cipher = FakeCipher()
    catalog = DestinationCatalog(ttl_seconds=3600.0)
    observer = NullSagaObserver()
    late_commit_window = timedelta(0)
    operations = OperationRunner(
        store,
        upstream,
        catalog,
        cipher,
        workflows=workflows,
        retry=retry,
        observer=observer,
        late_commit_window=late_commit_window,
    )
    runner = SagaRunner(
        store,
        upstream,
        catalog,
        cipher,
        operations=operations,
        retry=retry,
        auto_compensate=auto_compensate,
        workflows=workflows,
        observer=observer,
        late_commit_window=late_commit_window,
        crash_limit=crash_limit,
    )
    return Engine(store, upstream, cipher, catalog, workflows, runner, operations)


async def run_cycle(
    runner: SagaRunner, store: FakeStore, activation_id: uuid.UUID, *, owner: str = "worker-1"
) -> ActivationStatus:
    """One claim cycle: a fresh lease (the epoch moves on), then the run."""
    return await runner.run(store.lease(activation_id, owner=owner))


def _conforms(
    store: FakeStore, upstream: FakeFlowService, cipher: FakeCipher
) -> tuple[SagaStore, OperationStore, FlowService, Cipher]:
    """mypy holds the fakes to the ports' protocols."""
    return store, store, upstream, cipher

"""The use cases of changing a live activation (contract §9, §11): pause, resume, retire (and the
v1 rollback), each one operation in the activation's queue; and reading the operations.

Each mutation is decided in one transaction holding the activation's row lock (OperationQueue):
an Idempotency-Key already used answers its first answer again (scoped per client and per
activation); If-Match must name the current revision; pause and resume need a live activation
(lifecycle.is_live) and answer 200 with no new operation when the activation is, or is on its way
to, the state asked for.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.domain.exports import export_refusal
from app.domain.flow_diff import plan_update
from app.domain.flow_update import desired_flow
from app.domain.lifecycle import OperationStatus, StepStatus, create_operation_status, is_live
from app.domain.model import Activation, DesiredChange, Operation, StepState
from app.domain.ports import FlowService, ResourceKind, UpstreamError
from app.domain.workflows import OperationKind, Workflows

from .problems import ServiceProblem

if TYPE_CHECKING:
    from app.adapters.db.operation_queue import LockedActivation, OperationQueue, QueueTransaction
    from app.adapters.db.repository import ActivationRepository

# The state each flow-state operation reaches.
TARGET_STATES = {OperationKind.PAUSE: "disabled", OperationKind.RESUME: "enabled"}


def etag_of(revision: int) -> str:
    """The ETag of an activation's revision (contract §9)."""
    return f'"r{revision}"'


def matches(if_match: str | None, revision: int) -> bool:
    """RFC 9110 If-Match against the current revision's ETag: `*`, or a list naming it (a weak
    validator compares weakly; If-Match is a strong comparison, so W/ never matches)."""
    if if_match is None:
        return True
    candidates = [part.strip() for part in if_match.split(",")]
    return "*" in candidates or etag_of(revision) in candidates


@dataclass(frozen=True, slots=True)
class MutationOutcome:
    """What a mutation did: the status to answer, the operation it queued or replayed (None: nothing
    new was asked of the service), and whether it was a replay."""

    status_code: int
    operation_id: uuid.UUID | None
    replayed: bool = False


class OperationService:
    def __init__(
        self,
        queue: OperationQueue,
        repository: ActivationRepository,
        workflows: Workflows,
        fingerprint: Callable[[bytes], str],
        fingerprint_matches: Callable[[bytes, str], bool],
        flows: FlowService,
    ) -> None:
        self._flows = flows
        self._queue = queue
        self._repository = repository
        self._workflows = workflows
        self._fingerprint = fingerprint
        self._fingerprint_matches = fingerprint_matches

    async def change_state(
        self,
        activation_id: uuid.UUID,
        client_id: str,
        kind: OperationKind,
        *,
        key: str,
        if_match: str | None,
    ) -> MutationOutcome:
        """Queue a pause or resume."""
        target = TARGET_STATES[kind]
        definition = self._workflows.current(kind)
        canonical = f"{kind.value}:{activation_id}".encode()

        async def decide(tx: QueueTransaction) -> MutationOutcome:
            locked = await self._admit(tx, kind, key, canonical, if_match)
            if isinstance(locked, MutationOutcome):
                return locked
            if locked.desired_state == target:
                await tx.remember_key(key, self._fingerprint(canonical), None, 200)
                return MutationOutcome(200, None)
            operation_id = uuid.uuid4()
            await tx.queue_flow_state(
                operation_id,
                kind=kind.value,
                version=definition.version,
                revision=locked.revision + 1,
                desired_state=target,
                steps=definition.step_names,
            )
            await tx.remember_key(key, self._fingerprint(canonical), operation_id, 202)
            return MutationOutcome(202, operation_id)

        outcome: MutationOutcome = await self._queue.mutate(activation_id, client_id, decide)
        return outcome

    async def update(
        self,
        activation_id: uuid.UUID,
        client_id: str,
        change: Callable[[DesiredChange], DesiredChange],
        *,
        canonical: bytes,
        key: str,
        if_match: str | None,
    ) -> MutationOutcome:
        """Queue an update to the desired state ``change`` makes of the current one (contract §10);
        200 and no new revision when it changes nothing."""
        definition = self._workflows.current(OperationKind.UPDATE)
        canonical = b"update:" + str(activation_id).encode() + b":" + canonical

        async def decide(tx: QueueTransaction) -> MutationOutcome:
            locked = await self._admit(tx, OperationKind.UPDATE, key, canonical, if_match)
            if isinstance(locked, MutationOutcome):
                return locked
            current = DesiredChange(locked.name, locked.segments, locked.attributes, locked.drift_policy)
            desired = change(current)
            if desired == current:
                await tx.remember_key(key, self._fingerprint(canonical), None, 200)
                return MutationOutcome(200, None)
            operation_id = uuid.uuid4()
            await tx.queue_update(
                operation_id,
                version=definition.version,
                revision=locked.revision + 1,
                steps=definition.step_names,
                desired=desired,
            )
            await tx.remember_key(key, self._fingerprint(canonical), operation_id, 202)
            return MutationOutcome(202, operation_id)

        outcome: MutationOutcome = await self._queue.mutate(activation_id, client_id, decide)
        return outcome

    async def export(
        self,
        activation_id: uuid.UUID,
        client_id: str,
        segment_ids: list[str] | None,
        *,
        canonical: bytes,
        key: str,
        if_match: str | None,
    ) -> MutationOutcome:
        """Queue an export now of these audiences (all of the activation's when None), every
        guardrail checked first (contract §12); the desired state and its revision stay."""
        definition = self._workflows.current(OperationKind.EXPORT)
        canonical = b"export:" + str(activation_id).encode() + b":" + canonical

        async def decide(tx: QueueTransaction) -> MutationOutcome:
            locked = await self._admit(tx, OperationKind.EXPORT, key, canonical, if_match)
            if isinstance(locked, MutationOutcome):
                return locked
            wanted = segment_ids if segment_ids is not None else [s["id"] for s in locked.segments]
            refusal = export_refusal(
                desired_state=locked.desired_state,
                state=locked.state,
                segments=locked.segments,
                segment_ids=wanted,
                today=datetime.now(UTC).date(),
            )
            if refusal is not None:
                raise ServiceProblem(refusal.status, refusal.slug, refusal.title, refusal.detail)
            operation_id = uuid.uuid4()
            await tx.queue_export(
                operation_id,
                version=definition.version,
                revision=locked.revision,
                steps=definition.step_names,
                segments=wanted,
            )
            await tx.remember_key(key, self._fingerprint(canonical), operation_id, 202)
            return MutationOutcome(202, operation_id)

        outcome: MutationOutcome = await self._queue.mutate(activation_id, client_id, decide)
        return outcome

    async def plan_update(
        self, activation: Activation, change: Callable[[DesiredChange], DesiredChange]
    ) -> tuple[Activation, list[dict[str, Any]]]:
        """A dry run of an update: the activation it would become and the calls that would write
        upstream, from the flow as Adobe has it now (read only; nothing is written anywhere)."""
        if not is_live(activation.status):
            raise _not_live(activation.status.value, OperationKind.UPDATE)
        current = DesiredChange(activation.name, activation.segments, activation.attributes, activation.drift_policy)
        desired = change(current)
        if desired == current:
            return activation, []
        would_be = replace(
            activation,
            name=desired.name,
            segments=desired.segments,
            attributes=desired.attributes,
            drift_policy=desired.drift_policy,
            revision=activation.revision + 1,
            queued_operations=activation.queued_operations + 1,
        )
        assert activation.flow_id is not None  # a live activation has its flow
        try:
            flow = await self._flows.get(ResourceKind.FLOWS, activation.flow_id, sandbox=activation.sandbox)
        except UpstreamError as exc:
            raise ServiceProblem(
                503, "upstream-unavailable", "Adobe unavailable", "the dataflow could not be read to plan the update"
            ) from exc
        operations = plan_update(flow, desired_flow(would_be))
        plan = [{"method": "PATCH", "path": f"/flows/{activation.flow_id}", "body": operations}] if operations else []
        return would_be, plan

    async def tear_down(
        self,
        activation_id: uuid.UUID,
        client_id: str,
        kind: OperationKind,
        *,
        key: str | None,
        if_match: str | None,
    ) -> MutationOutcome:
        """Retire (DELETE) or roll back: the create's compensation, for an activation in any status.
        202 when it started or was requested now; 200 when it is already under way or done."""
        canonical = f"{kind.value}:{activation_id}".encode()

        async def decide(tx: QueueTransaction) -> MutationOutcome:
            locked = await tx.lock()
            if locked is None:
                raise _not_found(activation_id)
            if key is not None:
                replay = await self._replay(tx, key, canonical)
                if replay is not None:
                    return replay
            if not matches(if_match, locked.revision):
                raise _stale(locked.revision)
            operation_id = uuid.uuid4()
            started = await tx.request_teardown(operation_id, kind=kind.value)
            status_code, recorded = (202, operation_id) if started else (200, None)
            if key is not None:
                await tx.remember_key(key, self._fingerprint(canonical), recorded, status_code)
            return MutationOutcome(status_code, recorded)

        outcome: MutationOutcome = await self._queue.mutate(activation_id, client_id, decide)
        return outcome

    async def _admit(
        self, tx: QueueTransaction, kind: OperationKind, key: str, canonical: bytes, if_match: str | None
    ) -> LockedActivation | MutationOutcome:
        """What every change of a live activation checks first, under the row lock: it exists, a
        used key answers its first answer again, the activation is live, If-Match is current."""
        locked = await tx.lock()
        if locked is None:
            raise _not_found(tx.activation_id)
        replay = await self._replay(tx, key, canonical)
        if replay is not None:
            return replay
        if not is_live(locked.status):
            raise _not_live(locked.status.value, kind)
        if not matches(if_match, locked.revision):
            raise _stale(locked.revision)
        return locked

    async def _replay(self, tx: QueueTransaction, key: str, canonical: bytes) -> MutationOutcome | None:
        earlier = await tx.existing_key(key)
        if earlier is None:
            return None
        if not self._fingerprint_matches(canonical, earlier.request_fingerprint):
            raise ServiceProblem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was already used with a different request on this activation",
            )
        return MutationOutcome(earlier.response_status, earlier.operation_id, replayed=True)

    # ------------------------------------------------------------------ reads
    async def list_operations(
        self, activation: Activation, *, limit: int, before: int | None
    ) -> tuple[list[Operation], int | None]:
        """Newest first. The create operation (the activation's own saga, whose id is the
        activation's) is the oldest of all, so it ends the last page."""
        rows = await self._queue.list_operations(activation.id, limit=limit, before=before)
        page = [operation for _, operation in rows]
        if len(page) == limit:  # a full page: more follow, the create operation at least
            return page, rows[-1][0]
        page.append(create_operation(activation))
        return page, None

    async def get_queued_operation(self, activation_id: uuid.UUID, operation_id: uuid.UUID) -> Operation | None:
        """An operation of the queue (any but the create), read alone: what `Prefer: wait` polls."""
        return await self._queue.get_operation(activation_id, operation_id)

    async def get_operation(self, activation: Activation, operation_id: uuid.UUID) -> Operation | None:
        if operation_id == activation.id:
            return create_operation(activation)
        return await self._queue.get_operation(activation.id, operation_id)


def create_operation(activation: Activation) -> Operation:
    """The create operation as contract §9 shows it, read from the activation and its steps."""
    steps = sorted(activation.steps.values(), key=lambda s: s.position)
    status = create_operation_status(activation.status, activation.applied_revision)
    finished = [s.finished_at for s in steps if s.finished_at is not None]
    started = [s.started_at for s in steps if s.started_at is not None]
    completed_at: datetime | None = None
    if status in (OperationStatus.SUCCEEDED, OperationStatus.FAILED):
        completed_at = max(finished) if finished else activation.completed_at
    failed = next((s for s in steps if s.status == StepStatus.FAILED), None)
    return Operation(
        id=activation.id,
        activation_id=activation.id,
        kind=OperationKind.CREATE.value,
        workflow_version=activation.workflow_version,
        status=status,
        revision=1,
        error=(failed.error if failed is not None else activation.error) if status == OperationStatus.FAILED else None,
        created_at=activation.created_at,
        started_at=min(started) if started else None,
        completed_at=completed_at,
        steps={s.name: StepState(**{f: getattr(s, f) for f in StepState.__slots__}) for s in steps},
    )


def _not_found(activation_id: uuid.UUID) -> ServiceProblem:
    return ServiceProblem(404, "not-found", "Not found", f"no activation {activation_id}")


def _not_live(status: str, kind: OperationKind) -> ServiceProblem:
    return ServiceProblem(
        409,
        "activation-not-live",
        "Activation not live",
        f"a {kind.value} needs a live activation (status succeeded); this one is {status}",
    )


def _stale(revision: int) -> ServiceProblem:
    return ServiceProblem(
        412,
        "precondition-failed",
        "Precondition failed",
        f"If-Match does not name the current revision (its ETag is {etag_of(revision)})",
    )

"""The worker's side of the operation queue (domain.ports.OperationStore): named statements, each
run as one statement of its own on the worker's pool, each fenced like the saga's writes: the
first CTE updates the activation row only under the current lease epoch, everything else joins
on it, so a worker that lost its lease writes nothing and gets no row (LeaseLost).

An operation's end also releases the lease (the activation stays `succeeded`, which the worker
takes as released) and makes the activation claimable at once when more operations wait.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from psycopg.types.json import Jsonb

from app.domain.drift import STATE_CHANGED
from app.domain.lifecycle import OperationStatus, StepStatus
from app.domain.model import Lease, LeaseLost, Operation
from app.domain.ports import BegunOperation, EventRows
from app.domain.runs import placeholder_run
from app.domain.workflows import OperationKind

from .saga_store import TERMINAL_CHANNEL, event_rows
from .snapshot import step_from_json
from .statements import StatementPool

# Inserts the rows of %(events)s (the run's upstream calls, then the write's own events) for the
# fenced activation, in their order: ids follow it, so the timeline keeps call order.
_EVENTS_CTE = """
, new_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT fence.id, e.type, e.step, e.data
      FROM fence, jsonb_to_recordset(%(events)s) AS e(ord int, type text, step text, data jsonb)
     ORDER BY e.ord
)"""

# An operation row `o` with its steps as one JSON array (one round trip for the whole read): what
# operation_from_row maps, for the worker and the API alike.
OPERATION_COLUMNS = """
       o.id, o.activation_id, o.kind, o.workflow_version, o.status, o.revision, o.error, o.created_at,
       o.started_at, o.completed_at, o.params, o.result,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'name', s.name, 'position', s.position, 'status', s.status, 'attempts', s.attempts,
                   'started_at', s.started_at, 'finished_at', s.finished_at, 'attempted_at', s.attempted_at,
                   'error', s.error) ORDER BY s.position), '[]'::jsonb)
          FROM operation_steps s WHERE s.operation_id = o.id) AS step_rows"""

# The oldest unfinished operation, made running; when this build runs its workflow version
# (%(runnable)s, "kind:version"), its first unfinished step's attempt starts in the same write, as
# FINISH_OPERATION_STEP starts the next one: the step_rows read is the state from before it.
BEGIN_OPERATION = f"""
WITH fence AS (
    UPDATE activations SET updated_at = now()
     WHERE id = %(id)s AND lease_epoch = %(epoch)s
 RETURNING id
), next_operation AS (
    SELECT o.id, o.status AS previous FROM activation_operations o, fence
     WHERE o.activation_id = fence.id AND o.status IN ('pending', 'running')
       AND o.kind NOT IN ('rollback', 'retire')
     ORDER BY o.seq LIMIT 1
), started AS (
    UPDATE activation_operations AS o
       SET status = 'running', started_at = coalesce(o.started_at, now())
      FROM next_operation
     WHERE o.id = next_operation.id
 RETURNING o.*, next_operation.previous
), status_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT activation_id, 'operation', NULL,
           jsonb_build_object('operationId', id, 'kind', kind, 'status', 'running', 'revision', revision)
      FROM started WHERE previous = 'pending'
), first_step AS (
    SELECT s.operation_id, min(s.position) AS position
      FROM started JOIN operation_steps s ON s.operation_id = started.id
     WHERE s.status <> 'succeeded' AND started.kind || ':' || started.workflow_version = ANY(%(runnable)s)
     GROUP BY s.operation_id
), first_started AS (
    UPDATE operation_steps AS s
       SET status = 'running', attempts = s.attempts + 1, started_at = coalesce(s.started_at, now()),
           attempted_at = now(), finished_at = NULL
      FROM first_step
     WHERE s.operation_id = first_step.operation_id AND s.position = first_step.position
 RETURNING s.attempts
)
SELECT fence.id AS fenced, (SELECT attempts FROM first_started) AS first_attempt, {OPERATION_COLUMNS}
  FROM fence LEFT JOIN started AS o ON true
"""

# The queue was empty after all (its count had drifted): set it right and let the activation go.
RELEASE_EMPTY_QUEUE = """
UPDATE activations SET queued_operations = 0, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
 WHERE id = %(id)s AND lease_epoch = %(epoch)s
"""

START_OPERATION_STEP = f"""
WITH fence AS (
    UPDATE activations SET updated_at = now()
     WHERE id = %(id)s AND lease_epoch = %(epoch)s
 RETURNING id
), started AS (
    UPDATE operation_steps AS s
       SET status = 'running', attempts = s.attempts + 1, started_at = coalesce(s.started_at, now()),
           attempted_at = now(), finished_at = NULL
      FROM fence
     WHERE s.operation_id = %(operation_id)s AND s.name = %(step)s
 RETURNING s.attempts
){_EVENTS_CTE}
SELECT (SELECT attempts FROM started) AS attempts FROM fence
"""

# What a step of an operation may set on the activation: the flow's state and etag it confirmed.
_SET_STEP_VALUES = """
           state = CASE WHEN %(values)s::jsonb ? 'state' THEN %(values)s::jsonb ->> 'state' ELSE state END,
           flow_etag = CASE WHEN %(values)s::jsonb ? 'flow_etag' THEN %(values)s::jsonb ->> 'flow_etag'
                            ELSE flow_etag END"""

# A step's outcome; when it succeeded and another step follows, that one's attempt starts in the
# same write (%(next_step)s, NULL when none does), so a step costs one statement, not two.
FINISH_OPERATION_STEP = f"""
WITH fence AS (
    UPDATE activations
       SET updated_at = now(),{_SET_STEP_VALUES}
     WHERE id = %(id)s AND lease_epoch = %(epoch)s
 RETURNING id
), finished AS (
    UPDATE operation_steps AS s SET status = %(status)s, finished_at = now(), error = %(error)s::jsonb
      FROM fence
     WHERE s.operation_id = %(operation_id)s AND s.name = %(step)s
), next_started AS (
    UPDATE operation_steps AS s
       SET status = 'running', attempts = s.attempts + 1, started_at = coalesce(s.started_at, now()),
           attempted_at = now(), finished_at = NULL
      FROM fence
     WHERE s.operation_id = %(operation_id)s AND s.name = %(next_step)s::text
 RETURNING s.attempts
){_EVENTS_CTE}
SELECT id, (SELECT attempts FROM next_started) AS next_attempts FROM fence
"""

# The operation ends: succeeded, it confirms its revision upstream (and its last step, %(step)s,
# succeeds in the same write with the values it confirmed); failed, the live activation keeps
# what it had and sync says why (contract §9), and the desired state goes back to the state last
# confirmed unless a later operation waits to set it. Either way the queue moves on, the lease
# goes, and `Prefer: wait` requests are woken.
FINISH_OPERATION = f"""
WITH fence AS (
    UPDATE activations
       SET updated_at = now(),{_SET_STEP_VALUES},
           queued_operations = greatest(queued_operations - 1, 0),
           run_crashes = 0,
           applied_revision = CASE WHEN %(succeeded)s::boolean AND %(confirms)s::boolean
                                   THEN greatest(coalesce(applied_revision, 0), %(revision)s::int)
                                   ELSE applied_revision END,
           sync_error = CASE WHEN NOT %(confirms)s::boolean THEN sync_error
                             WHEN %(succeeded)s::boolean THEN NULL ELSE %(error)s::jsonb END,
           sync_checked_at = CASE WHEN %(succeeded)s::boolean AND %(confirms)s::boolean THEN now()
                                  ELSE sync_checked_at END,
           sync_differences = CASE
               WHEN NOT %(succeeded)s::boolean OR NOT %(confirms)s::boolean OR sync_differences IS NULL
                   THEN sync_differences
               WHEN %(resolves)s = 'all' THEN NULL
               ELSE (SELECT jsonb_agg(d) FROM jsonb_array_elements(sync_differences) d
                      WHERE d ->> 'kind' <> %(resolves)s) END,
           desired_state = CASE WHEN NOT %(succeeded)s::boolean AND %(confirms)s::boolean AND queued_operations <= 1
                                THEN coalesce(state, desired_state)
                                ELSE desired_state END,
           lease_owner = NULL, lease_expires_at = NULL, run_after = now()
     WHERE id = %(id)s AND lease_epoch = %(epoch)s
 RETURNING id, flow_id
), last_step AS (
    UPDATE operation_steps AS s SET status = 'succeeded', finished_at = now(), error = NULL
      FROM fence
     WHERE s.operation_id = %(operation_id)s AND s.name = %(step)s::text
), ended AS (
    UPDATE activation_operations AS o
       SET status = %(status)s, error = %(error)s::jsonb, completed_at = now(), result = %(result)s::jsonb
      FROM fence
     WHERE o.id = %(operation_id)s AND o.status = 'running'
), adhoc_runs AS (
    INSERT INTO activation_runs AS r (id, activation_id, flow_id, status, trigger, started_at, run)
    SELECT run ->> 'id', fence.id, fence.flow_id, 'processing', 'adhoc', CAST(run ->> 'startedAt' AS timestamptz), run
      FROM fence, jsonb_array_elements(%(adhoc_runs)s::jsonb) AS run
    ON CONFLICT (id) DO UPDATE SET trigger = 'adhoc', run = jsonb_set(r.run, '{{trigger}}', '"adhoc"')
){_EVENTS_CTE}, notified AS (
    SELECT pg_notify('{TERMINAL_CHANNEL}', id::text) FROM fence
)
SELECT id, (SELECT count(*) FROM notified) AS notified FROM fence
"""

# Left for a process whose build has the operation's workflow version: looked at again later,
# said once in the timeline.
DEFER_OPERATION = """
WITH fence AS (
    UPDATE activations
       SET updated_at = now(), lease_owner = NULL, lease_expires_at = NULL,
           run_after = now() + make_interval(secs => %(delay)s)
     WHERE id = %(id)s AND lease_epoch = %(epoch)s
 RETURNING id
), noted AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT fence.id, 'workflow_unavailable', NULL,
           jsonb_build_object('operationId', %(operation_id)s::text, 'reason', %(reason)s::text)
      FROM fence
     WHERE NOT EXISTS (SELECT FROM activation_events e
                        WHERE e.activation_id = fence.id AND e.type = 'workflow_unavailable'
                          AND e.data ->> 'operationId' = %(operation_id)s::text)
)
SELECT id FROM fence
"""

_OPERATION_VALUES = frozenset({"state", "flow_etag"})


class OperationStore:
    def __init__(self, statements: StatementPool) -> None:
        self._db = statements

    async def begin_operation(self, lease: Lease, *, runnable: Collection[str] = ()) -> BegunOperation | None:
        row = await self._db.fetchone(BEGIN_OPERATION, {**_fence(lease), "runnable": list(runnable)})
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        if row["id"] is None:
            await self._db.execute(RELEASE_EMPTY_QUEUE, _fence(lease))
            return None
        return BegunOperation(operation_from_row(row), row["first_attempt"])

    async def start_operation_step(self, lease: Lease, operation_id: uuid.UUID, step: str, *, events: EventRows) -> int:
        params = {**_fence(lease), "operation_id": operation_id, "step": step, "events": event_rows(events)}
        row = await self._fenced(START_OPERATION_STEP, params, lease)
        return int(row["attempts"])

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
        status = StepStatus.SUCCEEDED if succeeded else StepStatus.FAILED
        rows = [*events, _step_event(operation_id, step, status, error)]
        params = {
            **_fence(lease),
            "operation_id": operation_id,
            "step": step,
            "next_step": start_next if succeeded else None,
            "status": status.value,
            "error": Jsonb(error) if error is not None else None,
            "values": Jsonb(_step_values(activation_values)),
            "events": event_rows(rows),
        }
        row = await self._fenced(FINISH_OPERATION_STEP, params, lease)
        return int(row["next_attempts"]) if row["next_attempts"] is not None else None

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
        status = OperationStatus.SUCCEEDED if error is None else OperationStatus.FAILED
        data: dict[str, Any] = {
            "operationId": str(operation.id),
            "kind": operation.kind,
            "status": status.value,
            "revision": operation.revision,
        }
        if error is not None:
            data["error"] = error
        step_rows = [_step_event(operation.id, last_step, StepStatus.SUCCEEDED, None)] if last_step else []
        rows = [*events, *step_rows, {"type": "operation", "step": None, "data": data}]
        params = {
            **_fence(lease),
            "operation_id": operation.id,
            "succeeded": error is None,
            "step": last_step if error is None else None,
            "values": Jsonb(_step_values(activation_values if error is None else None)),
            "status": status.value,
            "revision": operation.revision,
            "error": Jsonb(error) if error is not None else None,
            "events": event_rows(rows),
            "resolves": resolved_drift(operation.kind),
            "confirms": confirms_revision(operation.kind),
            "result": Jsonb(result) if error is None and result is not None else None,
            "adhoc_runs": Jsonb(adhoc_runs(result) if error is None else []),
        }
        await self._fenced(FINISH_OPERATION, params, lease)

    async def defer_operation(self, lease: Lease, operation: Operation, *, delay_seconds: float, reason: str) -> None:
        params = {**_fence(lease), "operation_id": str(operation.id), "delay": delay_seconds, "reason": reason}
        await self._fenced(DEFER_OPERATION, params, lease)

    async def _fenced(self, sql: str, params: Mapping[str, Any], lease: Lease) -> dict[str, Any]:
        row = await self._db.fetchone(sql, params)
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return row


def confirms_revision(kind: str) -> bool:
    """Whether the operation's end says how the flow stands against the desired state (an update,
    a pause, a resume), which an export does not: it leaves revision and sync as they were."""
    return kind != OperationKind.EXPORT.value


def adhoc_runs(result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The runs an export started or joined, as the run list shows them until Adobe lists them."""
    if not result:
        return []
    return [placeholder_run(run["id"], result.get("startedAt")) for run in result.get("runs", [])]


def resolved_drift(kind: str) -> str:
    """The differences an operation that succeeded has resolved (its read back proved it): an update
    all of them; a pause or resume the state's (domain/drift.py's kinds)."""
    return "all" if kind == OperationKind.UPDATE.value else STATE_CHANGED


def _step_values(activation_values: Mapping[str, Any] | None) -> dict[str, Any]:
    values = dict(activation_values or {})
    if not values.keys() <= _OPERATION_VALUES:
        raise ValueError(f"an operation's step may set only {sorted(_OPERATION_VALUES)}, not {sorted(values)}")
    return values


def _step_event(operation_id: uuid.UUID, step: str, status: StepStatus, error: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status.value, "operationId": str(operation_id)}
    if error is not None:
        data["error"] = error
    return {"type": "step", "step": step, "data": data}


def _fence(lease: Lease) -> dict[str, Any]:
    return {"id": lease.activation_id, "epoch": lease.epoch}


def operation_from_row(row: Mapping[str, Any]) -> Operation:
    """The one mapper of an operation row (with its ``step_rows`` as JSON), worker and API alike."""
    return Operation(
        id=row["id"],
        activation_id=row["activation_id"],
        kind=row["kind"],
        workflow_version=row["workflow_version"],
        status=OperationStatus(row["status"]),
        revision=row["revision"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        steps={s["name"]: step_from_json(s) for s in row["step_rows"] or []},
        params=row["params"] or {},
        result=row["result"],
    )

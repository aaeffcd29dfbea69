"""What the reconciler reads and writes (contract §13): the live activations whose desired state is
applied (nothing queued, the revision confirmed), the differences it found, and the repair it queues
under `driftPolicy: enforce`. Named statements on a statement pool; the batch writes are fenced by
the reconcile lease (run_store.py) when a cycle holds one.

An activation that changed between the read and the write (a new revision, an operation queued)
is left alone: the operation on its way converges the flow anyway, and the next cycle looks again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from .intake import NOTIFY_CHANNEL
from .run_store import LEASE_FENCE, BackgroundLease, fence_params
from .statements import StatementPool

_RECONCILABLE_COLUMNS = """
SELECT id, name, segments, attributes, flow_id, revision, desired_state, drift_policy, sync_differences, sandbox
  FROM activations"""
_APPLIED = """status = 'succeeded' AND flow_id IS NOT NULL AND queued_operations = 0
   AND applied_revision IS NOT NULL AND applied_revision >= revision"""

RECONCILABLE = f"""{_RECONCILABLE_COLUMNS}
 WHERE {_APPLIED} AND sandbox = %(sandbox)s
"""

RECONCILABLE_ONE = f"""{_RECONCILABLE_COLUMNS}
 WHERE {_APPLIED} AND id = %(id)s
"""

# The differences found (an empty list: none), per activation at the revision it was read at; a
# "drift" event when they appear or change, "drift_resolved" when they are gone.
RECORD_DIFFERENCES = f"""
WITH {LEASE_FENCE}, found AS (
    SELECT f.* FROM fence, jsonb_to_recordset(%(found)s) AS f(id uuid, revision int, differences jsonb)
), previous AS (
    SELECT a.id, a.sync_differences FROM activations a JOIN found USING (id)
), recorded AS (
    UPDATE activations AS a
       SET sync_differences = CASE WHEN jsonb_array_length(found.differences) > 0 THEN found.differences END,
           sync_checked_at = now()
      FROM found
     WHERE a.id = found.id AND a.revision = found.revision AND a.queued_operations = 0 AND a.status = 'succeeded'
 RETURNING a.id, a.sync_differences
), changed AS (
    SELECT recorded.id, recorded.sync_differences AS now, previous.sync_differences AS before
      FROM recorded JOIN previous USING (id)
     WHERE recorded.sync_differences IS DISTINCT FROM previous.sync_differences
), drift_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, CASE WHEN now IS NULL THEN 'drift_resolved' ELSE 'drift' END, NULL,
           jsonb_build_object('differences', coalesce(now, '[]'::jsonb))
      FROM changed
)
SELECT (SELECT count(*) FROM recorded) AS recorded,
       coalesce((SELECT jsonb_agg(id) FROM changed WHERE now IS NOT NULL), '[]') AS newly_drifted,
       (SELECT count(*) FROM fence) AS fenced
"""

# Under `enforce`: an operation at the same revision (the desired state does not change, the flow
# goes back to it), queued only while nothing else is, with its steps, its event and the worker's wake.
QUEUE_REPAIR = f"""
WITH target AS (
    SELECT id FROM activations
     WHERE id = %(id)s AND revision = %(revision)s AND queued_operations = 0 AND status = 'succeeded'
       FOR UPDATE
), new_operation AS (
    INSERT INTO activation_operations (id, activation_id, kind, workflow_version, status, revision, params)
    SELECT %(operation_id)s, target.id, %(kind)s, %(version)s, 'pending', %(revision)s,
           jsonb_build_object('reason', 'drift')
      FROM target
    RETURNING id, activation_id
), new_steps AS (
    INSERT INTO operation_steps (operation_id, name, position, status)
    SELECT new_operation.id, step.name, step.position - 1, 'pending'
      FROM new_operation, unnest(CAST(%(steps)s AS text[])) WITH ORDINALITY AS step(name, position)
), queued_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT activation_id, 'operation', NULL,
           jsonb_build_object('operationId', id, 'kind', CAST(%(kind)s AS text), 'status', 'pending',
                              'revision', CAST(%(revision)s AS int), 'reason', 'drift')
      FROM new_operation
), moved AS (
    UPDATE activations AS a SET queued_operations = queued_operations + 1, run_after = now(), updated_at = now()
      FROM new_operation WHERE a.id = new_operation.activation_id
)
SELECT pg_notify('{NOTIFY_CHANNEL}', CAST(activation_id AS text)) FROM new_operation
"""


@dataclass(frozen=True, slots=True)
class Reconcilable:
    id: uuid.UUID
    name: str | None
    segments: list[dict[str, Any]]
    attributes: list[str]
    flow_id: str
    revision: int
    desired_state: str
    drift_policy: str
    differences: list[dict[str, Any]]
    sandbox: str


@dataclass(frozen=True, slots=True)
class RecordedDifferences:
    recorded: int
    newly_drifted: list[uuid.UUID]
    fenced_out: bool


class DriftStore:
    def __init__(self, statements: StatementPool) -> None:
        self._db = statements

    async def reconcilable(self, sandbox: str) -> list[Reconcilable]:
        return [_reconcilable(row) for row in await self._db.fetchall_rows(RECONCILABLE, {"sandbox": sandbox})]

    async def reconcilable_one(self, activation_id: uuid.UUID) -> Reconcilable | None:
        row = await self._db.fetchone(RECONCILABLE_ONE, {"id": activation_id})
        return _reconcilable(row) if row is not None else None

    async def record(
        self, found: Sequence[tuple[Reconcilable, list[dict[str, Any]]]], *, lease: BackgroundLease | None
    ) -> RecordedDifferences:
        rows = [{"id": str(a.id), "revision": a.revision, "differences": d} for a, d in found]
        row = await self._db.fetchone(RECORD_DIFFERENCES, {"found": Jsonb(rows), **fence_params(lease)})
        assert row is not None  # the statement always answers one row
        return RecordedDifferences(
            int(row["recorded"]), [uuid.UUID(i) for i in row["newly_drifted"]], fenced_out=not row["fenced"]
        )

    async def queue_repair(
        self, activation: Reconcilable, *, kind: str, version: int, steps: Sequence[str]
    ) -> uuid.UUID | None:
        operation_id = uuid.uuid4()
        params = {
            "id": activation.id,
            "revision": activation.revision,
            "operation_id": operation_id,
            "kind": kind,
            "version": version,
            "steps": list(steps),
        }
        row = await self._db.fetchone(QUEUE_REPAIR, params)
        return operation_id if row is not None else None


def _reconcilable(row: dict[str, Any]) -> Reconcilable:
    return Reconcilable(
        id=row["id"],
        name=row["name"],
        segments=row["segments"],
        attributes=row["attributes"],
        flow_id=row["flow_id"],
        revision=row["revision"],
        desired_state=row["desired_state"],
        drift_policy=row["drift_policy"],
        differences=row["sync_differences"] or [],
        sandbox=row["sandbox"],
    )

"""The API's side of the operation queue: a mutation of an activation (pause, resume, retire) is
decided and queued in one transaction that first locks the activation row, so mutations of one
activation are serialized and each sees the one before it. The decision itself (live or not, the
ETag, already in that state) is the service's (app/services/operations.py), on what this reads.
Every statement is named here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.domain.lifecycle import ActivationStatus
from app.domain.model import DesiredChange, Operation

from .intake import NOTIFY_CHANNEL
from .operation_store import OPERATION_COLUMNS, operation_from_row
from .repository import REQUEST_ROLLBACK
from .statements import StatementPool

LOCK_ACTIVATION = """
SELECT id, status, revision, desired_state, state, queued_operations, name, segments, attributes,
       drift_policy, flow_id, sandbox
  FROM activations
 WHERE id = %(id)s AND client_id = %(client_id)s
   FOR UPDATE
"""

EXISTING_OPERATION_KEY = """
SELECT request_fingerprint, operation_id, response_status FROM operation_keys
 WHERE client_id = %(client_id)s AND activation_id = %(id)s AND key = %(key)s AND expires_at > now()
"""

INSERT_OPERATION_KEY = """
INSERT INTO operation_keys (client_id, activation_id, key, request_fingerprint, operation_id, response_status,
                            expires_at)
VALUES (%(client_id)s, %(id)s, %(key)s, %(fingerprint)s, %(operation_id)s, %(response_status)s,
        now() + make_interval(secs => %(retention)s))
ON CONFLICT (client_id, activation_id, key) DO UPDATE
   SET request_fingerprint = excluded.request_fingerprint, operation_id = excluded.operation_id,
       response_status = excluded.response_status, created_at = now(), expires_at = excluded.expires_at
"""

# What queueing any operation writes besides the activation's new desired state: the operation
# and its steps, the event, and a NOTIFY that wakes a worker (the statements below add the rest).
_NEW_OPERATION = """
WITH new_operation AS (
    INSERT INTO activation_operations (id, activation_id, kind, workflow_version, status, revision, params)
    VALUES (%(operation_id)s, %(id)s, %(kind)s, %(version)s, 'pending', %(revision)s,
            coalesce(CAST(%(params)s AS jsonb), '{}'))
    RETURNING id
), new_steps AS (
    INSERT INTO operation_steps (operation_id, name, position, status)
    SELECT new_operation.id, step.name, step.position - 1, 'pending'
      FROM new_operation, unnest(CAST(%(steps)s AS text[])) WITH ORDINALITY AS step(name, position)
), queued_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT %(id)s, 'operation', NULL,
           jsonb_build_object('operationId', CAST(%(operation_id)s AS text), 'kind', CAST(%(kind)s AS text),
                              'status', 'pending', 'revision', CAST(%(revision)s AS int))
)"""

# A pause or resume: the new revision and desired state, and the queue count.
QUEUE_FLOW_STATE_OPERATION = f"""{_NEW_OPERATION}, moved AS (
    UPDATE activations
       SET revision = %(revision)s, desired_state = %(desired_state)s, queued_operations = queued_operations + 1,
           run_after = now(), updated_at = now()
     WHERE id = %(id)s
)
SELECT pg_notify('{NOTIFY_CHANNEL}', CAST(%(id)s AS text))
"""

# An update (contract §10): the new revision and the whole desired lists, name and drift policy.
QUEUE_UPDATE_OPERATION = f"""{_NEW_OPERATION}, moved AS (
    UPDATE activations
       SET revision = %(revision)s, name = %(name)s, segments = CAST(%(segments)s AS jsonb),
           attributes = CAST(%(attributes)s AS jsonb), drift_policy = %(drift_policy)s,
           queued_operations = queued_operations + 1, run_after = now(), updated_at = now()
     WHERE id = %(id)s
)
SELECT pg_notify('{NOTIFY_CHANNEL}', CAST(%(id)s AS text))
"""

# An export (contract §12): no new revision (the desired state does not change), its audiences in
# the operation's params.
QUEUE_EXPORT_OPERATION = f"""{_NEW_OPERATION}, moved AS (
    UPDATE activations
       SET queued_operations = queued_operations + 1, run_after = now(), updated_at = now()
     WHERE id = %(id)s
)
SELECT pg_notify('{NOTIFY_CHANNEL}', CAST(%(id)s AS text))
"""

# A rollback or retire that started or was recorded: its operation is running from now (the
# compensation closes it, see saga_store), and whatever waited in the queue will never run. Each
# cancelled operation ends with its `operation` event (failed, with the reason), as any other does,
# before the teardown's own.
RECORD_TEARDOWN_OPERATION = """
WITH cancelled AS (
    UPDATE activation_operations
       SET status = 'failed', completed_at = now(),
           error = jsonb_build_object('type', 'urn:activation-gateway:problem:operation-cancelled',
                                      'title', 'Operation cancelled', 'status', 409,
                                      'detail', 'the activation is being torn down (' || CAST(%(kind)s AS text) || ')')
     WHERE activation_id = %(id)s AND status IN ('pending', 'running') AND kind NOT IN ('rollback', 'retire')
 RETURNING id, kind, revision, error, seq
), new_operation AS (
    INSERT INTO activation_operations (id, activation_id, kind, workflow_version, status, revision, started_at)
    SELECT %(operation_id)s, a.id, %(kind)s, a.workflow_version, 'running', a.revision, now()
      FROM activations a WHERE a.id = %(id)s
), dequeued AS (
    UPDATE activations SET queued_operations = 0 WHERE id = %(id)s
), recorded_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT %(id)s, 'operation', NULL, data FROM (
        SELECT seq AS ord, jsonb_build_object('operationId', CAST(id AS text), 'kind', kind, 'status', 'failed',
                                              'revision', revision, 'error', error) AS data
          FROM cancelled
        UNION ALL
        SELECT NULL, jsonb_build_object('operationId', CAST(%(operation_id)s AS text), 'kind', CAST(%(kind)s AS text),
                                        'status', 'running')
    ) AS e
    ORDER BY e.ord NULLS LAST
)
SELECT 1
"""

# Newest first, keyset-paged on seq; one statement whatever the page size.
LIST_OPERATIONS = f"""
SELECT o.seq, {OPERATION_COLUMNS}
  FROM activation_operations o
 WHERE o.activation_id = %(id)s AND (CAST(%(before)s AS bigint) IS NULL OR o.seq < CAST(%(before)s AS bigint))
 ORDER BY o.seq DESC
 LIMIT %(limit)s
"""

GET_OPERATION = f"""
SELECT o.seq, {OPERATION_COLUMNS}
  FROM activation_operations o
 WHERE o.activation_id = %(id)s AND o.id = %(operation_id)s
"""


@dataclass(frozen=True, slots=True)
class LockedActivation:
    id: uuid.UUID
    status: ActivationStatus
    revision: int
    desired_state: str
    state: str | None
    queued_operations: int
    name: str | None
    segments: list[dict[str, Any]]
    attributes: list[str]
    drift_policy: str
    flow_id: str | None
    sandbox: str


@dataclass(frozen=True, slots=True)
class OperationKey:
    request_fingerprint: str
    operation_id: uuid.UUID | None
    response_status: int


class OperationQueue:
    """One transaction per mutation: ``mutate`` locks the activation and hands the decision to the
    service with the calls it may make, all inside the transaction. On psycopg straight (the
    API's statement pool): a mutation is on the critical path of every change a caller waits for."""

    def __init__(self, statements: StatementPool, *, key_retention_hours: float) -> None:
        self._db = statements
        self._key_retention_seconds = key_retention_hours * 3600.0

    async def mutate(
        self,
        activation_id: uuid.UUID,
        client_id: str,
        decide: Callable[[QueueTransaction], Awaitable[Any]],
    ) -> Any:
        async def work(conn: AsyncConnection[Any]) -> Any:
            return await decide(QueueTransaction(conn, activation_id, client_id, self._key_retention_seconds))

        return await self._db.transaction(work)

    async def list_operations(
        self, activation_id: uuid.UUID, *, limit: int, before: int | None
    ) -> list[tuple[int, Operation]]:
        rows = await self._db.fetchall_rows(LIST_OPERATIONS, {"id": activation_id, "limit": limit, "before": before})
        return [(row["seq"], operation_from_row(row)) for row in rows]

    async def get_operation(self, activation_id: uuid.UUID, operation_id: uuid.UUID) -> Operation | None:
        row = await self._db.fetchone(GET_OPERATION, {"id": activation_id, "operation_id": operation_id})
        return operation_from_row(row) if row is not None else None


class QueueTransaction:
    def __init__(self, conn: AsyncConnection[Any], activation_id: uuid.UUID, client_id: str, retention: float) -> None:
        self._conn = conn
        self.activation_id = activation_id
        self.client_id = client_id
        self._retention = retention

    async def lock(self) -> LockedActivation | None:
        row = await self._fetchone(LOCK_ACTIVATION, self._ids())
        if row is None:
            return None
        return LockedActivation(
            id=row["id"],
            status=ActivationStatus(row["status"]),
            revision=row["revision"],
            desired_state=row["desired_state"],
            state=row["state"],
            queued_operations=row["queued_operations"],
            name=row["name"],
            segments=row["segments"],
            attributes=row["attributes"],
            drift_policy=row["drift_policy"],
            flow_id=row["flow_id"],
            sandbox=row["sandbox"],
        )

    async def existing_key(self, key: str) -> OperationKey | None:
        row = await self._fetchone(EXISTING_OPERATION_KEY, {**self._ids(), "key": key})
        if row is None:
            return None
        return OperationKey(row["request_fingerprint"], row["operation_id"], row["response_status"])

    async def remember_key(
        self, key: str, fingerprint: str, operation_id: uuid.UUID | None, response_status: int
    ) -> None:
        params = {
            **self._ids(),
            "key": key,
            "fingerprint": fingerprint,
            "operation_id": operation_id,
            "response_status": response_status,
            "retention": self._retention,
        }
        await self._conn.execute(INSERT_OPERATION_KEY, params)

    async def queue_flow_state(
        self,
        operation_id: uuid.UUID,
        *,
        kind: str,
        version: int,
        revision: int,
        desired_state: str,
        steps: Sequence[str],
    ) -> None:
        params = {
            "id": self.activation_id,
            "operation_id": operation_id,
            "kind": kind,
            "version": version,
            "revision": revision,
            "desired_state": desired_state,
            "steps": list(steps),
            "params": None,
        }
        await self._conn.execute(QUEUE_FLOW_STATE_OPERATION, params)

    async def queue_update(
        self,
        operation_id: uuid.UUID,
        *,
        version: int,
        revision: int,
        steps: Sequence[str],
        desired: DesiredChange,
    ) -> None:
        params = {
            "id": self.activation_id,
            "operation_id": operation_id,
            "kind": "update",
            "version": version,
            "revision": revision,
            "steps": list(steps),
            "name": desired.name,
            "segments": json.dumps(desired.segments),
            "attributes": json.dumps(desired.attributes),
            "drift_policy": desired.drift_policy,
            "params": None,
        }
        await self._conn.execute(QUEUE_UPDATE_OPERATION, params)

    async def queue_export(
        self, operation_id: uuid.UUID, *, version: int, revision: int, steps: Sequence[str], segments: Sequence[str]
    ) -> None:
        params = {
            "id": self.activation_id,
            "operation_id": operation_id,
            "kind": "export",
            "version": version,
            "revision": revision,
            "steps": list(steps),
            "params": Jsonb({"segments": list(segments)}),
        }
        await self._conn.execute(QUEUE_EXPORT_OPERATION, params)

    async def request_teardown(self, operation_id: uuid.UUID, *, kind: str) -> bool:
        """Request the rollback (repository.REQUEST_ROLLBACK) and record its operation; False when
        nothing was to be done (already rolling back or rolled back)."""
        row = await self._fetchone(REQUEST_ROLLBACK, {**self._ids(), "ch": NOTIFY_CHANNEL})
        if row is None:
            return False
        await self._conn.execute(
            RECORD_TEARDOWN_OPERATION, {"id": self.activation_id, "operation_id": operation_id, "kind": kind}
        )
        return True

    async def _fetchone(self, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
        cursor = await self._conn.cursor(row_factory=dict_row).execute(sql, params)
        return await cursor.fetchone()

    def _ids(self) -> dict[str, Any]:
        return {"id": self.activation_id, "client_id": self.client_id}

"""Activation persistence for the API: creating activations under idempotency keys, reading them,
rollback requests. The worker's claims, leases and fenced step writes are in saga_store.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.domain.lifecycle import ActivationStatus, sources_of
from app.domain.model import Activation
from app.domain.paging import decode_cursor, encode_cursor

from .intake import NOTIFY_CHANNEL
from .snapshot import LIST_CLIENT_ACTIVATIONS, LOAD_CLIENT_ACTIVATION, activation_from_row
from .statements import StatementPool
from .tables import activation_events, activations, idempotency_keys

_LIST_CLIENT_ACTIVATIONS = text(LIST_CLIENT_ACTIVATIONS)

# Finished activations a rollback request moves to rolling_back at once, by the state machine.
_ROLLS_BACK_AT_ONCE = ", ".join(
    f"'{status.value}'" for status in sorted(sources_of(ActivationStatus.ROLLING_BACK)) if status.terminal
)

# One statement: the request is recorded and, where no worker holds the activation, acted on.
# `FOR UPDATE` makes the decision on the latest committed row: a worker's write that commits while
# this waits for the lock is seen (succeeded → rolling_back), and a worker's later write sees the
# request (the saga store's rule). A pending activation whose lease is live is being started by a
# worker: begin_run reads the request in its own locked update. Nothing happens to one already
# rolling back or rolled back. (Moving to rolling_back erases the credentials: the database's rule.)
REQUEST_ROLLBACK = f"""
WITH target AS (
    SELECT id, status,
           status IN ({_ROLLS_BACK_AT_ONCE})
           OR (status = 'pending' AND (lease_expires_at IS NULL OR lease_expires_at < now())) AS starts
      FROM activations
     WHERE id = %(id)s AND client_id = %(client_id)s AND status NOT IN ('rolling_back', 'rolled_back')
       FOR UPDATE
), requested AS (
    UPDATE activations AS a
       SET rollback_requested_at = coalesce(a.rollback_requested_at, now()),
           status = CASE WHEN target.starts THEN 'rolling_back' ELSE a.status END,
           completed_at = CASE WHEN target.starts THEN NULL ELSE a.completed_at END,
           compensation_retry_at = CASE WHEN target.starts THEN NULL ELSE a.compensation_retry_at END,
           run_crashes = CASE WHEN target.starts THEN 0 ELSE a.run_crashes END,
           run_after = now(), updated_at = now()
      FROM target
     WHERE a.id = target.id
 RETURNING a.id, a.status, target.starts AS started, target.status AS previous
), status_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, 'status', NULL, jsonb_build_object('status', status, 'from', previous, 'reason', 'requested')
      FROM requested WHERE started
), woken AS (
    SELECT pg_notify(%(ch)s, id::text) FROM requested
)
SELECT status, started, (SELECT count(*) FROM woken) AS woken FROM requested
"""

_STOP_COMPENSATION_RETRIES = text(
    """
WITH stopped AS (
    UPDATE activations SET compensation_retry_at = NULL, updated_at = now()
     WHERE id = :id AND status = 'rollback_failed' AND compensation_retry_at IS NOT NULL
 RETURNING id
), stop_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, 'compensation_retries_stopped', NULL, '{"by": "operator"}'::jsonb FROM stopped
)
SELECT id FROM stopped
"""
)


@dataclass(frozen=True, slots=True)
class RollbackRequest:
    """What a rollback request did: the status it left, and whether rolling back started now."""

    status: ActivationStatus
    started: bool


class ActivationRepository:
    def __init__(self, engine: AsyncEngine, statements: StatementPool) -> None:
        self._engine = engine
        self._db = statements  # the hot reads and the rollback request: psycopg straight

    # ------------------------------------------------------------------ API side (no lease)
    async def get(self, activation_id: uuid.UUID, *, client_id: str | None = None) -> Activation | None:
        row = await self._db.fetchone(LOAD_CLIENT_ACTIVATION, {"id": activation_id, "client_id": client_id})
        return activation_from_row(row) if row is not None else None

    async def require(self, activation_id: uuid.UUID) -> Activation:
        activation = await self.get(activation_id)
        if activation is None:
            raise LookupError(f"activation {activation_id} does not exist")
        return activation

    async def list_page(
        self,
        *,
        client_id: str,
        limit: int,
        status: ActivationStatus | None = None,
        destination: str | None = None,
        cursor: str | None = None,
    ) -> tuple[list[Activation], str | None]:
        """Newest first, keyset-paginated on (created_at, id): stable under concurrent inserts."""
        before_created, before_id = decode_cursor(cursor) if cursor else (None, None)
        params = {
            "client_id": client_id,
            "status": status.value if status is not None else None,
            "destination": destination or None,
            "before_created": before_created,
            "before_id": before_id,
            "limit": limit + 1,
        }
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_LIST_CLIENT_ACTIVATIONS, params)).all()
        items = [activation_from_row(dict(row._mapping)) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit and items else None
        return items, next_cursor

    async def events(self, activation_id: uuid.UUID) -> list[Row[Any]]:
        async with self._engine.connect() as conn:
            result = await conn.execute(
                select(activation_events)
                .where(activation_events.c.activation_id == activation_id)
                .order_by(activation_events.c.id)
            )
            return list(result.all())

    async def request_rollback(self, activation_id: uuid.UUID, *, client_id: str) -> RollbackRequest | None:
        """Record the caller's wish and act on it, decided in one statement on the row as it is
        once the statement holds its lock (so a worker's last write cannot slip in between): an
        activation that is finished, or pending with no worker on it, starts rolling back at once;
        one a worker is running is marked, and the worker acts on it at its next step boundary (a
        run that would end succeeded or failed rolls back instead, see saga_store). None when
        nothing was to be done (already rolling back or rolled back, or no such activation)."""
        params = {"id": activation_id, "client_id": client_id, "ch": NOTIFY_CHANNEL}
        row = await self._db.fetchone(REQUEST_ROLLBACK, params)
        if row is None:
            return None
        return RollbackRequest(status=ActivationStatus(row["status"]), started=bool(row["started"]))

    async def stop_compensation_retries(self, activation_id: uuid.UUID) -> bool:
        """An operator's decision: no more automatic retries of this failed compensation."""
        async with self._engine.begin() as conn:
            row = (await conn.execute(_STOP_COMPENSATION_RETRIES, {"id": activation_id})).first()
        return row is not None

    async def add_event(
        self,
        activation_id: uuid.UUID,
        type_: str,
        step: str | None,
        data: dict[str, Any],
        *,
        epoch: int | None = None,
    ) -> None:
        """Append an event; with ``epoch``, only while that lease is current (a worker that lost
        its lease writes nothing, not even history). The row lock taken by the check keeps the
        epoch from changing before commit."""
        activation_id = uuid.UUID(str(activation_id))  # the call observer passes the id as text
        async with self._engine.begin() as conn:
            if epoch is not None:
                owned = (
                    await conn.execute(
                        select(activations.c.id)
                        .where(activations.c.id == activation_id, activations.c.lease_epoch == epoch)
                        .with_for_update()
                    )
                ).first()
                if owned is None:
                    return
            await _add_event(conn, activation_id, type_, step, data)

    # ------------------------------------------------------------------ housekeeping
    async def reap_idempotency_keys(self, *, now: datetime | None = None) -> int:
        """Delete keys past retention. expires_at is only set once the activation is terminal."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.expires_at.is_not(None),
                    idempotency_keys.c.expires_at < (now or func.now()),
                )
            )
            return int(result.rowcount)


async def _add_event(
    conn: AsyncConnection, activation_id: uuid.UUID, type_: str, step: str | None, data: dict[str, Any]
) -> None:
    await conn.execute(insert(activation_events).values(activation_id=activation_id, type=type_, step=step, data=data))

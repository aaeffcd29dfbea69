"""Activation persistence for the API: creating activations under idempotency keys, reading them,
rollback requests. The worker's claims, leases and fenced step writes are in saga_store.py."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.domain.lifecycle import ActivationStatus, StepStatus, sources_of
from app.domain.model import Activation, StepState

from .intake import NOTIFY_CHANNEL
from .tables import activation_events, activation_steps, activations, idempotency_keys

# The statuses in which a step may still need the stored credentials.
_FORWARD_PATH = frozenset({ActivationStatus.PENDING, ActivationStatus.RUNNING})


class ActivationRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------ API side (no lease)
    async def get(self, activation_id: uuid.UUID, *, client_id: str | None = None) -> Activation | None:
        async with self._engine.connect() as conn:
            return await _load(conn, activation_id, client_id=client_id)

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
        query = select(activations.c.id).where(activations.c.client_id == client_id)
        if status is not None:
            query = query.where(activations.c.status == status.value)
        if destination:
            query = query.where(func.lower(activations.c.destination_name) == destination.lower())
        if cursor:
            created_at, last_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    activations.c.created_at < created_at,
                    and_(activations.c.created_at == created_at, activations.c.id < last_id),
                )
            )
        query = query.order_by(activations.c.created_at.desc(), activations.c.id.desc()).limit(limit + 1)
        async with self._engine.connect() as conn:
            ids = [row.id for row in (await conn.execute(query)).all()]
            items = [a for a in [await _load(conn, i) for i in ids[:limit]] if a is not None]
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(ids) > limit and items else None
        return items, next_cursor

    async def events(self, activation_id: uuid.UUID) -> list[Row[Any]]:
        async with self._engine.connect() as conn:
            result = await conn.execute(
                select(activation_events)
                .where(activation_events.c.activation_id == activation_id)
                .order_by(activation_events.c.id)
            )
            return list(result.all())

    async def request_rollback(self, activation_id: uuid.UUID) -> None:
        """Mark the wish; the worker acts on it at the next step boundary."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(activations)
                .where(activations.c.id == activation_id, activations.c.rollback_requested_at.is_(None))
                .values(rollback_requested_at=func.now(), run_after=func.now(), updated_at=func.now())
            )
            await conn.execute(text("SELECT pg_notify(:ch, :id)"), {"ch": NOTIFY_CHANNEL, "id": str(activation_id)})

    async def transition_unleased(
        self, activation_id: uuid.UUID, target: ActivationStatus, *, data: dict[str, Any] | None = None
    ) -> bool:
        """A status change made by the API (e.g. rollback of a finished activation), guarded by the
        state machine in the WHERE clause, and only while no worker holds a live lease."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(activations)
                .where(
                    activations.c.id == activation_id,
                    activations.c.status.in_([s.value for s in sources_of(target)]),
                    or_(activations.c.lease_expires_at.is_(None), activations.c.lease_expires_at < func.now()),
                )
                .values(status=target.value, updated_at=func.now(), run_after=func.now(), completed_at=None)
                # Off the forward path the credentials are never needed again: erase them now.
                .values(**({} if target in _FORWARD_PATH else {"credentials_ciphertext": None}))
            )
            if result.rowcount == 0:
                return False
            await _add_event(conn, activation_id, "status", None, {"status": target.value, **(data or {})})
            await conn.execute(text("SELECT pg_notify(:ch, :id)"), {"ch": NOTIFY_CHANNEL, "id": str(activation_id)})
            return True

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


async def _load(conn: AsyncConnection, activation_id: uuid.UUID, *, client_id: str | None = None) -> Activation | None:
    query = select(activations).where(activations.c.id == activation_id)
    if client_id is not None:
        query = query.where(activations.c.client_id == client_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    steps = (
        await conn.execute(
            select(activation_steps)
            .where(activation_steps.c.activation_id == activation_id)
            .order_by(activation_steps.c.position)
        )
    ).all()
    return Activation(
        id=row.id,
        client_id=row.client_id,
        status=ActivationStatus(row.status),
        destination_name=row.destination_name,
        destination=row.destination,
        sandbox=row.sandbox,
        name=row.name,
        storage=row.storage,
        credentials_ciphertext=row.credentials_ciphertext,
        segments=row.segments,
        attributes=row.attributes,
        flow_id=row.flow_id,
        flow_etag=row.flow_etag,
        error=row.error,
        rollback_requested_at=row.rollback_requested_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
        steps={
            s.name: StepState(
                name=s.name,
                position=s.position,
                status=StepStatus(s.status),
                attempts=s.attempts,
                resource_id=s.resource_id,
                started_at=s.started_at,
                finished_at=s.finished_at,
                error=s.error,
            )
            for s in steps
        },
    )


def encode_cursor(created_at: datetime, activation_id: uuid.UUID) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{activation_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ValueError on anything that is not a cursor this service issued."""
    padded = cursor + "=" * (-len(cursor) % 4)
    raw = base64.urlsafe_b64decode(padded.encode()).decode()
    created, _, ident = raw.partition("|")
    return datetime.fromisoformat(created), uuid.UUID(ident)

"""Activation persistence. Every write a worker makes is fenced by its lease epoch: the activation
row is locked and its epoch checked in the same transaction, so a worker that lost its lease
changes nothing (domain/model.py LeaseLost)."""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Row,
    Select,
    Text,
    and_,
    bindparam,
    column,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.domain.lifecycle import ActivationStatus, StepStatus, check_transition, sources_of
from app.domain.model import Activation, Lease, LeaseLost, StepState

from .tables import activation_events, activation_steps, activations, idempotency_keys

# The statuses in which a step may still need the stored credentials.
_FORWARD_PATH = frozenset({ActivationStatus.PENDING, ActivationStatus.RUNNING})

NOTIFY_CHANNEL = "activation_ready"
# Sent when an activation becomes terminal, with its id: `Prefer: wait` answers at once.
TERMINAL_CHANNEL = "activation_terminal"
_NOTIFY_TERMINAL = text(f"SELECT pg_notify('{TERMINAL_CHANNEL}', :id)")

# The claim, also EXPLAINed by the benchmark (bench/history.py). It walks the partial index
# ix_activations_claimable (active statuses only, ordered by run_after), so its cost does not grow
# with the number of finished activations.
CLAIM_SQL = """
WITH candidates AS (
    SELECT id FROM activations
    WHERE status IN ('pending', 'running', 'rolling_back')
      AND run_after <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY run_after
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE activations AS a
   SET lease_owner = :owner,
       lease_expires_at = now() + make_interval(secs => :lease),
       lease_epoch = a.lease_epoch + 1
  FROM candidates
 WHERE a.id = candidates.id
RETURNING a.id, a.lease_epoch
"""
_CLAIM = text(CLAIM_SQL)
# Built once: the fence runs in every worker transaction, and compiling it each time showed up in
# profiles (SQLAlchemy's cache key generation included).
_FENCE = (
    update(activations)
    .where(activations.c.id == bindparam("fence_id"), activations.c.lease_epoch == bindparam("fence_epoch"))
    .values(updated_at=func.now())
    .returning(activations.c.id)
)


# Buffered upstream-call rows, taken only once the transaction holds the activation row: concurrent
# writers of one activation queue on that lock, so rows taken in lock order get ids in call order
# (taking them before the lock let a later transaction insert earlier rows first).
EventSource = Callable[[], Sequence[dict[str, Any]]]


def _no_events() -> Sequence[dict[str, Any]]:
    return ()


@dataclass(frozen=True, slots=True)
class NewActivation:
    id: uuid.UUID
    client_id: str
    destination_name: str
    sandbox: str
    name: str | None
    storage: dict[str, Any]
    credentials_ciphertext: str
    segments: list[dict[str, Any]]
    attributes: list[str]
    step_names: Sequence[str]

    def as_pending(self, created_at: datetime) -> Activation:
        """The activation exactly as create_idempotent stored it (created_at is the transaction's
        now(), the same as the key's): the 202 answer needs no read back (two queries less)."""
        return Activation(
            id=self.id,
            client_id=self.client_id,
            status=ActivationStatus.PENDING,
            destination_name=self.destination_name,
            destination=None,
            sandbox=self.sandbox,
            name=self.name,
            storage=self.storage,
            credentials_ciphertext=self.credentials_ciphertext,
            segments=self.segments,
            attributes=self.attributes,
            flow_id=None,
            flow_etag=None,
            error=None,
            rollback_requested_at=None,
            created_at=created_at,
            updated_at=created_at,
            completed_at=None,
            steps={
                name: StepState(name=name, position=i, status=StepStatus.PENDING)
                for i, name in enumerate(self.step_names)
            },
        )


@dataclass(frozen=True, slots=True)
class IdempotentInsert:
    """Outcome of inserting an activation under an idempotency key."""

    created: bool
    activation_id: uuid.UUID
    request_fingerprint: str
    response_status: int | None
    key_created_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedLease:
    activation_id: uuid.UUID
    epoch: int


class ActivationRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Single-statement writes need no BEGIN/COMMIT round trips: the statement is its own transaction.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    # ------------------------------------------------------------------ API side (no lease)
    async def create_idempotent(
        self, new: NewActivation, *, key: str, fingerprint: str, response_status: int | None
    ) -> IdempotentInsert:
        """Insert the activation and its key in one transaction; a concurrent insert of the same key
        waits on the primary key and then finds the winner (no check-then-insert race)."""
        async with self._engine.begin() as conn:
            inserted = (
                await conn.execute(
                    pg_insert(idempotency_keys)
                    .values(
                        client_id=new.client_id,
                        key=key,
                        request_fingerprint=fingerprint,
                        activation_id=new.id,
                        response_status=response_status,
                    )
                    .on_conflict_do_nothing(index_elements=["client_id", "key"])
                    .returning(idempotency_keys.c.created_at)
                )
            ).first()
            if inserted is None:
                row = (
                    await conn.execute(
                        select(idempotency_keys).where(
                            idempotency_keys.c.client_id == new.client_id, idempotency_keys.c.key == key
                        )
                    )
                ).one()
                return IdempotentInsert(
                    created=False,
                    activation_id=row.activation_id,
                    request_fingerprint=row.request_fingerprint,
                    response_status=row.response_status,
                    key_created_at=row.created_at,
                )
            await conn.execute(
                insert(activations).values(
                    id=new.id,
                    client_id=new.client_id,
                    status=ActivationStatus.PENDING.value,
                    destination_name=new.destination_name,
                    sandbox=new.sandbox,
                    name=new.name,
                    storage=new.storage,
                    credentials_ciphertext=new.credentials_ciphertext,
                    segments=new.segments,
                    attributes=new.attributes,
                )
            )
            await conn.execute(
                insert(activation_steps),
                [
                    {"activation_id": new.id, "name": name, "position": i, "status": StepStatus.PENDING.value}
                    for i, name in enumerate(new.step_names)
                ],
            )
            await _add_event(conn, new.id, "status", None, {"status": ActivationStatus.PENDING.value})
            await conn.execute(text("SELECT pg_notify(:ch, :id)"), {"ch": NOTIFY_CHANNEL, "id": str(new.id)})
            return IdempotentInsert(
                created=True,
                activation_id=new.id,
                request_fingerprint=fingerprint,
                response_status=response_status,
                key_created_at=inserted.created_at,
            )

    async def set_key_response_status(self, client_id: str, key: str, status: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(idempotency_keys)
                .where(
                    idempotency_keys.c.client_id == client_id,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.response_status.is_(None),
                )
                .values(response_status=status)
            )

    async def get(self, activation_id: uuid.UUID, *, client_id: str | None = None) -> Activation | None:
        async with self._engine.connect() as conn:
            return await _load(conn, activation_id, client_id=client_id)

    async def require(self, activation_id: uuid.UUID) -> Activation:
        activation = await self.get(activation_id)
        if activation is None:
            raise LookupError(f"activation {activation_id} does not exist")
        return activation

    async def get_status(self, activation_id: uuid.UUID) -> ActivationStatus | None:
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(select(activations.c.status).where(activations.c.id == activation_id))
            ).scalar_one_or_none()
        return ActivationStatus(value) if value else None

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

    # ------------------------------------------------------------------ worker side (leased)
    async def claim(self, *, owner: str, limit: int, lease_seconds: float) -> list[ClaimedLease]:
        """Claim up to ``limit`` runnable activations. SKIP LOCKED lets many workers share the table;
        an expired lease is simply claimable again, with a higher epoch (the fencing token)."""
        statement = _CLAIM
        async with self._engine.begin() as conn:
            rows = (await conn.execute(statement, {"limit": limit, "owner": owner, "lease": lease_seconds})).all()
        return [ClaimedLease(activation_id=row.id, epoch=row.lease_epoch) for row in rows]

    async def renew(self, lease: Lease, lease_seconds: float) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(activations)
                .where(activations.c.id == lease.activation_id, activations.c.lease_epoch == lease.epoch)
                .values(lease_expires_at=func.now() + timedelta(seconds=lease_seconds))
            )
            return result.rowcount == 1

    async def release(self, lease: Lease, *, delay_seconds: float = 0.0) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(activations)
                .where(activations.c.id == lease.activation_id, activations.c.lease_epoch == lease.epoch)
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    run_after=func.now() + timedelta(seconds=delay_seconds),
                )
            )

    async def load(self, lease: Lease) -> Activation:
        async with self._engine.connect() as conn:
            activation = await _load(conn, lease.activation_id)
        if activation is None:
            raise LeaseLost(f"activation {lease.activation_id} vanished")
        return activation

    @asynccontextmanager
    async def fenced(self, lease: Lease) -> AsyncIterator[AsyncConnection]:
        """A transaction that holds the activation row and proves the lease is still ours."""
        async with self._engine.begin() as conn:
            owned = (await conn.execute(_FENCE, {"fence_id": lease.activation_id, "fence_epoch": lease.epoch})).first()
            if owned is None:
                raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
            yield conn

    async def set_status(
        self,
        lease: Lease,
        current: ActivationStatus,
        *path: ActivationStatus,
        error: dict[str, Any] | None = None,
        keep_error: bool = False,
        event: dict[str, Any] | None = None,
        upstream_events: EventSource = _no_events,
    ) -> None:
        """Move along ``current → path[0] → path[1] …`` in one transaction, each hop checked by the
        state machine and recorded as an event; readers never see the intermediate statuses.
        ``upstream_events`` (rows buffered by the saga) are written first, in the same transaction."""
        hops = [current, *path]
        for before, after in itertools.pairwise(hops):
            check_transition(before, after)
        target = hops[-1]
        values: dict[str, Any] = {"status": target.value}
        if not keep_error:
            values["error"] = error
        values["completed_at"] = func.now() if target.terminal else None
        if target.terminal or target == ActivationStatus.ROLLING_BACK:
            # Secrets are only needed to create the target base connection; never keep them longer.
            values["credentials_ciphertext"] = None
        async with self.fenced(lease) as conn:
            result = await conn.execute(
                update(activations)
                .where(activations.c.id == lease.activation_id, activations.c.status == current.value)
                .values(**values)
            )
            if result.rowcount != 1:
                raise LeaseLost(f"activation {lease.activation_id} is no longer {current}")
            await _add_events(conn, lease.activation_id, upstream_events())
            if target.terminal:
                await self._expire_keys(conn, lease.activation_id)
            for before, after in itertools.pairwise(hops):
                data = {"status": after.value, "from": before.value}
                if after == target:
                    data.update(event or {})
                await _add_event(conn, lease.activation_id, "status", None, data)
            if target.terminal:
                # Wakes the API requests holding a `Prefer: wait` for this activation.
                await conn.execute(_NOTIFY_TERMINAL, {"id": str(lease.activation_id)})

    async def _expire_keys(self, conn: AsyncConnection, activation_id: uuid.UUID) -> None:
        # Retention counts from the end of the activation (contract §1: kept ≥ 24 h after it ends).
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.activation_id == activation_id)
            .values(expires_at=func.now() + text("interval '24 hours'"))
        )

    async def update_step(
        self,
        lease: Lease,
        step: str,
        *,
        event: dict[str, Any] | None = None,
        activation_values: dict[str, Any] | None = None,
        upstream_events: EventSource = _no_events,
        **values: Any,
    ) -> bool:
        """Record a step's outcome (with the upstream calls that led to it); returns whether a
        rollback has been requested meanwhile. One statement, one round trip: see _fenced_step."""
        async with lease.writes:
            rows = [*upstream_events(), *([{"type": "step", "step": step, "data": event}] if event else [])]
            statement = _fenced_step(step, values, activation_values or {}, with_events=bool(rows))
            params = {"fence_id": lease.activation_id, "fence_epoch": lease.epoch, "step_name": step}
            if rows:
                params["events"] = [{**row, "ord": i} for i, row in enumerate(rows)]
            async with self._autocommit.connect() as conn:
                fence = (await conn.execute(statement, params)).first()
        if fence is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return fence.rollback_requested_at is not None

    async def start_step_attempt(self, lease: Lease, step: str, status: StepStatus) -> int:
        """Record the intent before the upstream call; returns the attempt number."""
        async with lease.writes:
            params = {"fence_id": lease.activation_id, "fence_epoch": lease.epoch, "step_name": step}
            async with self._autocommit.connect() as conn:
                fence = (await conn.execute(_START_STEP, {**params, "status": status.value})).first()
        if fence is None or fence.attempts is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return int(fence.attempts)

    async def add_event(
        self,
        activation_id: uuid.UUID,
        type_: str,
        step: str | None,
        data: dict[str, Any],
        *,
        epoch: int | None = None,
        upstream_events: EventSource = _no_events,
    ) -> None:
        """Append an event (after ``upstream_events``, rows buffered by the saga); with ``epoch``,
        only while that lease is current (a worker that lost its lease writes nothing, not even
        history). The row lock taken by the check keeps the epoch from changing before commit."""
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
            await _add_events(conn, activation_id, upstream_events())
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


def _fenced_step(
    step: str, step_values: dict[str, Any], activation_values: dict[str, Any], *, with_events: bool
) -> Select[Any]:
    """One statement that proves the lease and records a step: data-modifying CTEs run in one
    transaction. The fence UPDATE locks the activation row and matches only the current epoch (a
    concurrent takeover is re-checked after its commit), and every other write joins on its result,
    so a worker that lost its lease writes nothing at all; it then returns no row. Its shape depends
    only on which columns are set, so SQLAlchemy compiles it once per call site."""
    fence = (
        update(activations)
        .where(activations.c.id == bindparam("fence_id"), activations.c.lease_epoch == bindparam("fence_epoch"))
        .values(updated_at=func.now(), **activation_values)
        .returning(activations.c.id, activations.c.rollback_requested_at)
        .cte("fence")
    )
    step_update = (
        update(activation_steps)
        .where(activation_steps.c.activation_id == fence.c.id, activation_steps.c.name == bindparam("step_name"))
        .values(**step_values)
        .returning(activation_steps.c.attempts)
        .cte("step_update")
    )
    statement = select(
        fence.c.rollback_requested_at, select(step_update.c.attempts).scalar_subquery().label("attempts")
    )
    if with_events:
        # Ids follow `ord`: the timeline keeps the order in which the calls finished.
        rows = (
            func.jsonb_to_recordset(bindparam("events", type_=JSONB))
            .table_valued(column("ord", Integer), column("type", Text), column("step", Text), column("data", JSONB))
            .render_derived(name="new_events", with_types=True)
        )
        inserted = insert(activation_events).from_select(
            ["activation_id", "type", "step", "data"],
            select(fence.c.id, rows.c.type, rows.c.step, rows.c.data)
            .select_from(fence.join(rows, true()))
            .order_by(rows.c.ord),
        )
        statement = statement.add_cte(inserted.cte("inserted_events"))
    return statement


_START_STEP = text(
    """
    WITH fence AS (
        UPDATE activations SET updated_at = now()
         WHERE id = :fence_id AND lease_epoch = :fence_epoch
     RETURNING id
    )
    UPDATE activation_steps AS s
       SET status = :status, attempts = s.attempts + 1,
           started_at = coalesce(s.started_at, now()), finished_at = NULL
      FROM fence
     WHERE s.activation_id = fence.id AND s.name = :step_name
 RETURNING s.attempts
    """
)


async def _add_event(
    conn: AsyncConnection, activation_id: uuid.UUID, type_: str, step: str | None, data: dict[str, Any]
) -> None:
    await conn.execute(insert(activation_events).values(activation_id=activation_id, type=type_, step=step, data=data))


async def _add_events(conn: AsyncConnection, activation_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> None:
    """Several events in one statement, in the given order (ids follow it)."""
    if rows:
        await conn.execute(
            insert(activation_events).values(
                [
                    {"activation_id": activation_id, "type": r["type"], "step": r["step"], "data": r["data"]}
                    for r in rows
                ]
            )
        )


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

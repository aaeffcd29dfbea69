"""The worker's side of persistence: claims, leases and the saga's fenced writes, each one SQL
statement run straight on psycopg (statements.py: autocommit, a statement is its own transaction).

Why not SQLAlchemy here: these statements run about a dozen times per activation, and through
SQLAlchemy (statement construction, cache-key generation, the greenlet bridge, result processing)
they cost more of the gateway's CPU than the upstream calls themselves (bench/,
docs/performance.md). The statements are fixed text, built once per shape; the table definitions in
tables.py and the migrations stay the single source of the schema (column names are checked
against them).

Fencing: every write starts with an UPDATE of the activation row that matches only the current
lease epoch (the fence CTE). It locks the row, a concurrent takeover is re-checked after its
commit, and every other part of the statement joins on its result, so a worker that lost its
lease writes nothing at all, not even history; the statement then returns no row (LeaseLost).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb

from app.domain.lifecycle import ActivationStatus, check_transition, yields_to_rollback
from app.domain.model import Activation, Lease, LeaseLost
from app.domain.ports import ClaimedLease, EventRows, StepWrite

from .snapshot import LOAD_ACTIVATION, STEP_ROWS, activation_from_row
from .statements import StatementPool
from .tables import CLAIMABLE, activation_steps, activations

# Sent when an activation becomes terminal (or an operation of it ends), with its id: `Prefer: wait` answers at once.
TERMINAL_CHANNEL = "activation_terminal"

# The claim, also EXPLAINed by the benchmark (bench/history.py). It walks the partial index
# ix_activations_claimable (active statuses, and failed compensations with a retry scheduled; ordered
# by run_after), so its cost does not grow with the number of finished activations. Its predicate is
# the index's, word for word, so the planner can use it.
CLAIM_SQL = f"""
WITH candidates AS (
    SELECT id FROM activations
    WHERE ({CLAIMABLE})
      AND run_after <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
      AND workflow_version = ANY(string_to_array(%(versions)s, ',')::int[])
    ORDER BY run_after
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE activations AS a
   SET lease_owner = %(owner)s,
       lease_expires_at = now() + make_interval(secs => %(lease)s),
       lease_epoch = a.lease_epoch + 1
  FROM candidates
 WHERE a.id = candidates.id
RETURNING a.id, a.lease_epoch, a.workflow_version
"""

# Renewal keeps a released lease released (a renewal racing the terminal write must not hand the
# activation a fresh expiry), and still answers "ours" while the epoch matches.
_RENEW = """
UPDATE activations
   SET lease_expires_at = CASE WHEN lease_owner IS NULL THEN NULL
                               ELSE now() + make_interval(secs => %(lease)s) END
 WHERE id = %(id)s AND lease_epoch = %(epoch)s
"""

_RELEASE = """
UPDATE activations
   SET lease_owner = NULL, lease_expires_at = NULL, run_after = now() + make_interval(secs => %(delay)s)
 WHERE id = %(id)s AND lease_epoch = %(epoch)s
"""


# Starting a step (attempts counts forward attempts; started_at keeps the first one's time,
# attempted_at the latest one's: see app/domain/duplicates.py for why).
_START_STEP = (
    "status = 'running', attempts = s.attempts + 1, started_at = coalesce(s.started_at, now()),"
    " attempted_at = now(), finished_at = NULL"
)

# Load the activation under the lease, and start its run: a pending activation becomes running
# (rolling_back if a rollback was requested before it started; the database then erases its
# credentials, see lifecycle.CREDENTIAL_STATUSES)
# and its first steps start. Exactly one of `moved` and `fence` matches (both see the same
# snapshot, one wants 'pending' and the other anything else). The main query sees the rows as they
# were before the statement, hence the coalesce for the status and the separate `started`.
_BEGIN_RUN = f"""
WITH moved AS (
    UPDATE activations
       SET status = CASE WHEN rollback_requested_at IS NULL THEN 'running' ELSE 'rolling_back' END,
           updated_at = now()
     WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = 'pending'
 RETURNING id, status
), fence AS (
    UPDATE activations SET updated_at = now()
     WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status <> 'pending'
 RETURNING id
), status_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, 'status', NULL, jsonb_build_object('status', status, 'from', 'pending') FROM moved
), started AS (
    UPDATE activation_steps AS s
       SET {_START_STEP}
      FROM moved
     WHERE moved.status = 'running' AND s.activation_id = moved.id AND s.name = ANY(string_to_array(%(start)s, ','))
 RETURNING s.name, s.attempts
)
SELECT a.*, coalesce((SELECT status FROM moved), a.status) AS current_status, ({STEP_ROWS}) AS step_rows,
       (SELECT jsonb_object_agg(name, attempts) FROM started) AS started
  FROM activations a
 WHERE a.id = %(id)s AND (EXISTS (SELECT FROM moved) OR EXISTS (SELECT FROM fence))
"""


def _insert_events(source: str, more_rows: str = "") -> str:
    """The CTE inserting the ``%(events)s`` rows (buffered upstream calls, then the write's own
    events) for the activation of CTE ``source``, plus ``more_rows`` (a UNION ALL of further
    (id, ord, type, step, data) rows). Inserted in `ord` order: ids follow it, so the timeline
    keeps the order in which the calls finished."""
    return f"""
, new_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, type, step, data FROM (
        SELECT {source}.id, e.ord, e.type, e.step, e.data
          FROM {source}, jsonb_to_recordset(%(events)s) AS e(ord int, type text, step text, data jsonb){more_rows}
    ) AS new_rows ORDER BY ord
)"""


_ACTIVATION_COLUMNS = frozenset(activations.c.keys())
_STEP_TABLE_COLUMNS = frozenset(activation_steps.c.keys())


class SagaStore:
    def __init__(
        self, statements: StatementPool, *, key_retention_hours: float = 24.0, create_versions: Sequence[int] = (1,)
    ) -> None:
        self._db = statements
        self._key_retention_seconds = key_retention_hours * 3600.0
        # The create workflow versions this build has: it claims only activations of those.
        self._versions = ",".join(str(int(v)) for v in create_versions)

    # ------------------------------------------------------------------ queue and lease
    async def claim(self, *, owner: str, limit: int, lease_seconds: float) -> list[ClaimedLease]:
        """Claim up to ``limit`` runnable activations. SKIP LOCKED lets many workers share the table;
        an expired lease is simply claimable again, with a higher epoch (the fencing token)."""
        params = {"limit": limit, "owner": owner, "lease": lease_seconds, "versions": self._versions}
        rows = await self._db.fetchall(CLAIM_SQL, params)
        return [ClaimedLease(activation_id=row[0], epoch=row[1], workflow_version=row[2]) for row in rows]

    async def renew(self, lease: Lease, lease_seconds: float) -> bool:
        params = {"id": lease.activation_id, "epoch": lease.epoch, "lease": lease_seconds}
        return await self._db.execute(_RENEW, params) == 1

    async def release(self, lease: Lease, *, delay_seconds: float = 0.0) -> None:
        await self._db.execute(_RELEASE, {"id": lease.activation_id, "epoch": lease.epoch, "delay": delay_seconds})

    # ------------------------------------------------------------------ the saga's reads and writes
    async def begin_run(self, lease: Lease, *, first_steps: Sequence[str]) -> tuple[Activation, dict[str, int]]:
        """The activation, loaded under the lease (as it was before this statement). A pending one
        becomes running (or rolling_back), and if running, ``first_steps`` start: returned with
        their attempt numbers."""
        check_transition(ActivationStatus.PENDING, ActivationStatus.RUNNING)
        check_transition(ActivationStatus.PENDING, ActivationStatus.ROLLING_BACK)
        params = {"id": lease.activation_id, "epoch": lease.epoch, "start": _names(first_steps)}
        row = await self._db.fetchone(_BEGIN_RUN, params)
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return activation_from_row(row), row["started"] or {}

    async def load(self, lease: Lease) -> Activation:
        row = await self._db.fetchone(LOAD_ACTIVATION, {"id": lease.activation_id})
        if row is None:
            raise LeaseLost(f"activation {lease.activation_id} vanished")
        return activation_from_row(row)

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
        """One fenced statement: set ``values`` on ``step`` (if given), ``activation_values`` on the
        activation, insert ``events`` in order, and start the steps of ``start`` (attempts + 1,
        running) unless ``start_unless_rollback`` and a rollback has been requested meanwhile.
        With ``complete`` (the last step succeeded), the activation also becomes succeeded, as
        set_status would make it, unless a rollback has been requested. Reports whether a
        rollback has been requested, which steps it started and whether it completed the run."""
        values = values or {}
        activation_values = activation_values or {}
        sql = _step_write_sql(
            tuple(sorted(activation_values)),
            tuple(sorted(values)) if step is not None else None,
            starts=bool(start),
            with_events=bool(events),
            completes=complete,
        )
        params: dict[str, Any] = {"id": lease.activation_id, "epoch": lease.epoch, "step": step}
        params.update({f"a_{k}": _param(v) for k, v in activation_values.items()})
        params.update({f"s_{k}": _param(v) for k, v in values.items()})
        if start:
            params["start"] = _names(start)
            params["unless_rollback"] = start_unless_rollback
        if events or complete:
            params["events"] = _event_rows(events)
        if complete:
            params["key_retention"] = self._key_retention_seconds
        row = await self._db.fetchone(sql, params)
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return StepWrite(
            rollback_requested=row["rollback_requested_at"] is not None,
            started=row["started"] or {},
            completed=complete and row["status"] == ActivationStatus.SUCCEEDED.value,
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
        """Move along ``current → path[0] → path[1] …`` in one statement, each hop checked by the
        state machine and recorded as an event after ``events`` (rows buffered by the saga); readers
        never see the intermediate statuses. Reaching a terminal status also starts the retention
        of the idempotency keys, releases the lease, and NOTIFYs the `Prefer: wait` requests.

        A requested rollback wins over the end of the forward run (lifecycle.yields_to_rollback):
        ``running → succeeded`` or ``running → failed`` becomes ``running → rolling_back`` when a
        rollback has been requested by the time the statement runs. Returns the status reached.
        ``retry_in`` (with ``rollback_failed``) schedules an automatic compensation retry."""
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
        params: dict[str, Any] = {
            "id": lease.activation_id,
            "epoch": lease.epoch,
            "current": current.value,
            "target": target.value,
            "events": _event_rows(rows),
            "event": Jsonb(event or {}),
            "key_retention": self._key_retention_seconds,
            "retry_in": retry_in,
        }
        if not keep_error:
            params["error"] = _param(error)
        sql = _status_sql(target, keep_error=keep_error, yields=yields, schedule_retry=retry_in is not None)
        row = await self._db.fetchone(sql, params)
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over, or not {current}")
        return ActivationStatus(row["status"])

    async def record_crash(self, lease: Lease, error: str) -> tuple[int, ActivationStatus]:
        """Count a run that ended in an unexpected exception (``error``: its class name, never its
        text); returns the count so far and the activation's status."""
        row = await self._db.fetchone(_RECORD_CRASH, {"id": lease.activation_id, "epoch": lease.epoch, "error": error})
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return int(row["run_crashes"]), ActivationStatus(row["status"])


_RECORD_CRASH = """
WITH counted AS (
    UPDATE activations SET run_crashes = run_crashes + 1, updated_at = now()
     WHERE id = %(id)s AND lease_epoch = %(epoch)s
 RETURNING id, run_crashes, status
), crash_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, 'crash', NULL, jsonb_build_object('error', %(error)s::text, 'crashes', run_crashes) FROM counted
)
SELECT run_crashes, status FROM counted
"""


# A step write that finishes the last step also ends the run, unless a rollback was requested
# meanwhile (the request wins; the runner then rolls back). In SET, columns are the old values.
_SUCCEEDS = "(rollback_requested_at IS NULL AND status = 'running')"
_SUCCEEDED_SETS = {
    "status": f"CASE WHEN {_SUCCEEDS} THEN 'succeeded' ELSE status END",
    "completed_at": f"CASE WHEN {_SUCCEEDS} THEN now() ELSE completed_at END",
    "error": f"CASE WHEN {_SUCCEEDS} THEN NULL ELSE error END",
    "lease_owner": f"CASE WHEN {_SUCCEEDS} THEN NULL ELSE lease_owner END",
    "lease_expires_at": f"CASE WHEN {_SUCCEEDS} THEN NULL ELSE lease_expires_at END",
}
_SUCCEEDED_EVENT = """
        UNION ALL
        SELECT fence.id, 2147483647, 'status', NULL, jsonb_build_object('status', 'succeeded', 'from', 'running')
          FROM fence WHERE fence.status = 'succeeded'"""


@functools.cache
def _step_write_sql(
    activation_columns: tuple[str, ...],
    step_columns: tuple[str, ...] | None,
    *,
    starts: bool,
    with_events: bool,
    completes: bool = False,
) -> str:
    for name in activation_columns:
        _check_column(name, _ACTIVATION_COLUMNS)
    assignments = {name: f"%(a_{name})s" for name in activation_columns}
    if completes:
        assignments = {**_SUCCEEDED_SETS, **assignments}
    sets = "".join(f", {name} = {value}" for name, value in assignments.items())
    parts = [
        f"""WITH fence AS (
    UPDATE activations SET updated_at = now(){sets}
     WHERE id = %(id)s AND lease_epoch = %(epoch)s
 RETURNING id, rollback_requested_at, status
)"""
    ]
    if step_columns is not None:
        for name in step_columns:
            _check_column(name, _STEP_TABLE_COLUMNS)
        step_sets = ", ".join(f"{name} = %(s_{name})s" for name in step_columns)
        if step_sets:
            parts.append(
                f"""
, finished AS (
    UPDATE activation_steps AS s SET {step_sets}
      FROM fence WHERE s.activation_id = fence.id AND s.name = %(step)s
)"""
            )
    if starts:
        parts.append(
            f"""
, started AS (
    UPDATE activation_steps AS s
       SET {_START_STEP}
      FROM fence
     WHERE s.activation_id = fence.id AND s.name = ANY(string_to_array(%(start)s, ','))
       AND NOT (%(unless_rollback)s AND fence.rollback_requested_at IS NOT NULL)
 RETURNING s.name, s.attempts
)"""
        )
    if with_events or completes:
        parts.append(_insert_events("fence", _SUCCEEDED_EVENT if completes else ""))
    if completes:
        parts.append(_TERMINAL_EFFECTS.format(source="(SELECT id FROM fence WHERE status = 'succeeded')"))
    started = "(SELECT jsonb_object_agg(name, attempts) FROM started)" if starts else "NULL::jsonb"
    notified = "(SELECT count(*) FROM notified)" if completes else "0"
    parts.append(
        f"\nSELECT fence.rollback_requested_at, fence.status, {started} AS started, {notified} AS notified FROM fence"
    )
    return "".join(parts)


# Reaching a terminal status: retention of the idempotency keys counts from the end of the
# activation (contract §1: kept ≥ 24 h after it ends; IDEMPOTENCY_KEY_RETENTION_HOURS), and
# `Prefer: wait` requests are woken. A SELECT in a CTE runs only if the statement reads it: the
# final SELECT counts `notified`.
_TERMINAL_EFFECTS = f"""
, keys AS (
    UPDATE idempotency_keys SET expires_at = now() + make_interval(secs => %(key_retention)s)
     WHERE activation_id IN {{source}}
), notified AS (
    SELECT pg_notify('{TERMINAL_CHANNEL}', id::text) FROM {{source}} AS ended
)"""


# What reaching each status sets besides the status itself, column by column (off the forward path
# the database erases the credentials by itself: lifecycle.CREDENTIAL_STATUSES). A compensation
# that starts gets a fresh crash budget; one that ends either way ends the scheduled retries,
# unless the new rollback_failed schedules the next.
def _status_sets(target: ActivationStatus, *, keep_error: bool, schedule_retry: bool) -> dict[str, str]:
    sets = {"status": "%(target)s", "updated_at": "now()"}
    if not keep_error:
        sets["error"] = "%(error)s"
    sets["completed_at"] = "now()" if target.terminal else "NULL"
    if target.terminal:
        # Nothing is left to do: the lease goes with the same write (no separate release).
        sets.update(lease_owner="NULL", lease_expires_at="NULL")
    if target == ActivationStatus.ROLLING_BACK:
        sets.update(run_crashes="0", compensation_retry_at="NULL")
    if target == ActivationStatus.ROLLED_BACK:
        sets["compensation_retry_at"] = "NULL"
    if schedule_retry:
        sets.update(
            compensation_retry_at="now() + make_interval(secs => %(retry_in)s)",
            run_after="now() + make_interval(secs => %(retry_in)s)",
            compensation_rounds="compensation_rounds + 1",
        )
    return sets


def _yielding_sets(target: ActivationStatus, *, keep_error: bool) -> dict[str, str]:
    """The sets of ending the forward run as ``target``, each decided by one CASE: unless a
    rollback was requested, as ``target``; otherwise as ``rolling_back``. The CASE reads the row as
    it is once the statement holds its lock, so a request committed a moment before still wins."""
    as_target = _status_sets(target, keep_error=keep_error, schedule_retry=False)
    as_rolling_back = _status_sets(ActivationStatus.ROLLING_BACK, keep_error=keep_error, schedule_retry=False)
    as_rolling_back["status"] = f"'{ActivationStatus.ROLLING_BACK.value}'"
    sets: dict[str, str] = {}
    for column in dict.fromkeys([*as_target, *as_rolling_back]):
        then, otherwise = as_target.get(column, column), as_rolling_back.get(column, column)
        sets[column] = (
            then if then == otherwise else (f"CASE WHEN rollback_requested_at IS NULL THEN {then} ELSE {otherwise} END")
        )
    return sets


# With a yielding transition, which status event happened is known only in the statement.
_YIELDED_STATUS_EVENT = """
        UNION ALL
        SELECT moved.id, 2147483647, 'status', NULL,
               jsonb_build_object('status', moved.status, 'from', %(current)s::text)
               || CASE WHEN moved.status = %(target)s THEN %(event)s::jsonb
                       ELSE '{"reason": "requested"}'::jsonb END
          FROM moved"""


# The end of a compensation ends the rollback or retire operation that asked for it (contract §9):
# succeeded when everything was deleted, failed when something could not be, unless an automatic
# retry is scheduled (the operation is still under way).
_CLOSES_TEARDOWN = frozenset({ActivationStatus.ROLLED_BACK, ActivationStatus.ROLLBACK_FAILED})
_CLOSE_TEARDOWN_OPERATION = """
, teardown_closed AS (
    UPDATE activation_operations AS o
       SET status = CASE WHEN moved.status = 'rolled_back' THEN 'succeeded' ELSE 'failed' END,
           completed_at = now()
      FROM moved
     WHERE o.activation_id = moved.id AND o.kind IN ('rollback', 'retire') AND o.status = 'running'
)"""


@functools.cache
def _status_sql(target: ActivationStatus, *, keep_error: bool, yields: bool, schedule_retry: bool) -> str:
    if yields:
        sets = _yielding_sets(target, keep_error=keep_error)
    else:
        sets = _status_sets(target, keep_error=keep_error, schedule_retry=schedule_retry)
    assignments = ", ".join(f"{column} = {value}" for column, value in sets.items())
    sql = f"""WITH moved AS (
    UPDATE activations SET {assignments}
     WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = %(current)s
 RETURNING id, status
){_insert_events("moved", _YIELDED_STATUS_EVENT if yields else "")}"""
    if target in _CLOSES_TEARDOWN and not (target == ActivationStatus.ROLLBACK_FAILED and schedule_retry):
        sql += _CLOSE_TEARDOWN_OPERATION
    if not target.terminal:
        return sql + "\nSELECT id, status FROM moved"
    return (
        sql
        + _TERMINAL_EFFECTS.format(source="(SELECT id FROM moved WHERE status = %(target)s)")
        + "\nSELECT id, status, (SELECT count(*) FROM notified) AS notified FROM moved"
    )


def _names(steps: Sequence[str]) -> str:
    # Step names as one text parameter: adapting a Python list to text[] cost more CPU than the
    # rest of the parameters together. Names are identifiers, never commas.
    if any("," in name for name in steps):
        raise ValueError(f"step names cannot contain commas: {steps}")
    return ",".join(steps)


def _check_column(name: str, allowed: frozenset[str]) -> None:
    # Column names are interpolated into SQL text: only the table's own columns get there.
    if name not in allowed:
        raise ValueError(f"unknown column {name!r}")


def _param(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


def _event_rows(rows: EventRows) -> Jsonb:
    return Jsonb([{"ord": i, "type": r["type"], "step": r.get("step"), "data": r["data"]} for i, r in enumerate(rows)])

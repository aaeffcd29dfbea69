"""The worker's side of persistence: claims, leases and the saga's fenced writes, each one SQL
statement run straight on psycopg (statements.py: autocommit, a statement is its own transaction).

Why not SQLAlchemy here: these statements run about a dozen times per activation, and through
SQLAlchemy (statement construction, cache-key generation, the greenlet bridge, result processing)
they cost more of the gateway's CPU than the upstream calls themselves (bench/,
docs/performance.md). The table definitions in tables.py and the migrations stay the single source
of the schema.

Every statement is named below and reads as it runs: fixed text, never assembled. A write names
what it sets in a JSON parameter, and the statement sets exactly those columns (``? 'column'``).

Fencing: every write first locks the activation row only under the current lease epoch (the
``current`` or ``fence`` CTE). A concurrent takeover is re-checked after its commit, and every other
part of the statement joins on that row, so a worker that lost its lease writes nothing at all, not
even history; the statement then returns no row (LeaseLost). The same lock settles the race with a
rollback request (repository.REQUEST_ROLLBACK): a request committed before the write is seen by it,
and the rule of lifecycle.yields_to_rollback decides.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb

from app.domain.lifecycle import ActivationStatus, check_transition
from app.domain.model import Activation, Lease, LeaseLost
from app.domain.ports import ClaimedLease, EventRows, StepWrite

from .snapshot import LOAD_ACTIVATION, STEP_ROWS, activation_from_row
from .statements import StatementPool
from .tables import CLAIMABLE

# Sent when an activation becomes terminal (or an operation of it ends), with its id: the requests
# holding a `Prefer: wait` answer at once.
TERMINAL_CHANNEL = "activation_terminal"

# The claim, also EXPLAINed by the benchmark (bench/history.py). It walks the partial index
# ix_activations_claimable (ordered by run_after), so its cost does not grow with the number of
# finished activations. Its predicate is the index's, word for word, so the planner can use it. It
# takes only activations of a create workflow version this build has (workflows.py).
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
RENEW_LEASE = """
UPDATE activations
   SET lease_expires_at = CASE WHEN lease_owner IS NULL THEN NULL
                               ELSE now() + make_interval(secs => %(lease)s) END
 WHERE id = %(id)s AND lease_epoch = %(epoch)s
"""

RELEASE_LEASE = """
UPDATE activations
   SET lease_owner = NULL, lease_expires_at = NULL, run_after = now() + make_interval(secs => %(delay)s)
 WHERE id = %(id)s AND lease_epoch = %(epoch)s
"""

# Load the activation under the lease, and start its run: a pending activation becomes running
# (rolling_back if a rollback was requested before it started; the database then erases its
# credentials, lifecycle.CREDENTIAL_STATUSES) and its first steps start (attempts counts forward
# attempts; started_at keeps the first one's time, attempted_at the latest one's: see
# app/domain/duplicates.py). Exactly one of `moved` and `fence` matches (both see the same snapshot,
# one wants 'pending' and the other anything else). The main query sees the rows as they were
# before the statement, hence the coalesce for the status and the separate `started`. The fence
# of a run that starts nothing only reads: the statement then writes nothing, and its commit
# waits for no WAL flush (an operation's pickup, a resumed run; every later write is fenced).
BEGIN_RUN = f"""
WITH moved AS (
    UPDATE activations
       SET status = CASE WHEN rollback_requested_at IS NULL THEN 'running' ELSE 'rolling_back' END,
           updated_at = now()
     WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = 'pending'
 RETURNING id, status
), fence AS (
    SELECT id FROM activations
     WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status <> 'pending'
), status_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, 'status', NULL, jsonb_build_object('status', status, 'from', 'pending') FROM moved
), started AS (
    UPDATE activation_steps AS s
       SET status = 'running', attempts = s.attempts + 1, started_at = coalesce(s.started_at, now()),
           attempted_at = now(), finished_at = NULL
      FROM moved
     WHERE moved.status = 'running' AND s.activation_id = moved.id AND s.name = ANY(string_to_array(%(start)s, ','))
 RETURNING s.name, s.attempts
)
SELECT a.*, coalesce((SELECT status FROM moved), a.status) AS current_status, ({STEP_ROWS}) AS step_rows,
       (SELECT jsonb_object_agg(name, attempts) FROM started) AS started
  FROM activations a
 WHERE a.id = %(id)s AND (EXISTS (SELECT FROM moved) OR EXISTS (SELECT FROM fence))
"""

# The activation columns a step's result names in %(activation)s (StepResult.activation_values;
# confirming a revision upstream is also the time of the sync check), as a fragment of the SET
# lists of WRITE_STEP and COMPLETE_RUN: a column not named keeps its value.
_SET_ACTIVATION_VALUES = """
           destination = CASE WHEN %(activation)s::jsonb ? 'destination'
                              THEN %(activation)s::jsonb -> 'destination' ELSE a.destination END,
           credentials_ciphertext = CASE WHEN %(activation)s::jsonb ? 'credentials_ciphertext'
                                         THEN %(activation)s::jsonb ->> 'credentials_ciphertext'
                                         ELSE a.credentials_ciphertext END,
           flow_id = CASE WHEN %(activation)s::jsonb ? 'flow_id'
                          THEN %(activation)s::jsonb ->> 'flow_id' ELSE a.flow_id END,
           flow_etag = CASE WHEN %(activation)s::jsonb ? 'flow_etag'
                            THEN %(activation)s::jsonb ->> 'flow_etag' ELSE a.flow_etag END,
           state = CASE WHEN %(activation)s::jsonb ? 'state' THEN %(activation)s::jsonb ->> 'state' ELSE a.state END,
           applied_revision = CASE WHEN %(activation)s::jsonb ? 'applied_revision'
                                   THEN (%(activation)s::jsonb ->> 'applied_revision')::int
                                   ELSE a.applied_revision END,
           sync_checked_at = CASE WHEN %(activation)s::jsonb ? 'applied_revision'
                                  THEN now() ELSE a.sync_checked_at END"""

# The step's columns named in %(step_values)s (finished_at: now).
_STEP_WRITTEN = """
    UPDATE activation_steps AS s
       SET status = coalesce(%(step_values)s::jsonb ->> 'status', s.status),
           resource_id = CASE WHEN %(step_values)s::jsonb ? 'resource_id'
                              THEN %(step_values)s::jsonb ->> 'resource_id' ELSE s.resource_id END,
           error = CASE WHEN %(step_values)s::jsonb ? 'error'
                        THEN nullif(%(step_values)s::jsonb -> 'error', 'null'::jsonb) ELSE s.error END,
           finished_at = CASE WHEN %(step_values)s::jsonb ? 'finished_at' THEN now() ELSE s.finished_at END
      FROM fence
     WHERE s.activation_id = fence.id AND s.name = %(step)s"""

# One write of the forward run or of the compensation at a step boundary that does not end the run:
# the activation's and the step's named columns, the steps of %(start)s started (a comma list,
# perhaps empty) unless %(unless_rollback)s and a rollback has been requested, and the rows of
# %(events)s in order (the run's upstream calls, then the write's own events). The hot path: one
# statement per step, with nothing a step that does not end the run needs.
WRITE_STEP = f"""
WITH fence AS (
    UPDATE activations AS a
       SET updated_at = now(),{_SET_ACTIVATION_VALUES}
     WHERE a.id = %(id)s AND a.lease_epoch = %(epoch)s
 RETURNING a.id, a.rollback_requested_at, a.status
), step_written AS ({_STEP_WRITTEN}
), started AS (
    UPDATE activation_steps AS s
       SET status = 'running', attempts = s.attempts + 1, started_at = coalesce(s.started_at, now()),
           attempted_at = now(), finished_at = NULL
      FROM fence
     WHERE s.activation_id = fence.id AND s.name = ANY(string_to_array(%(start)s, ','))
       AND NOT (%(unless_rollback)s::boolean AND fence.rollback_requested_at IS NOT NULL)
 RETURNING s.name, s.attempts
), new_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT fence.id, e.type, e.step, e.data
      FROM fence, jsonb_to_recordset(%(events)s) AS e(ord int, type text, step text, data jsonb)
     ORDER BY e.ord
)
SELECT fence.rollback_requested_at, fence.status, false AS completes,
       (SELECT jsonb_object_agg(name, attempts) FROM started) AS started
  FROM fence
"""

# The write of the last step of a forward run, which ends it: as WRITE_STEP (no steps are left to
# start), and the activation succeeded, its lease released, the idempotency keys' retention started
# and `Prefer: wait` woken — unless a rollback was requested by then: it wins
# (lifecycle.yields_to_rollback), the step is still recorded and the runner rolls back instead.
COMPLETE_RUN = f"""
WITH current AS (
    SELECT id, rollback_requested_at IS NULL AND status = 'running' AS completes
      FROM activations
     WHERE id = %(id)s AND lease_epoch = %(epoch)s
       FOR UPDATE
), fence AS (
    UPDATE activations AS a
       SET updated_at = now(),{_SET_ACTIVATION_VALUES},
           status = CASE WHEN current.completes THEN 'succeeded' ELSE a.status END,
           completed_at = CASE WHEN current.completes THEN now() ELSE a.completed_at END,
           error = CASE WHEN current.completes THEN NULL ELSE a.error END,
           lease_owner = CASE WHEN current.completes THEN NULL ELSE a.lease_owner END,
           lease_expires_at = CASE WHEN current.completes THEN NULL ELSE a.lease_expires_at END
      FROM current
     WHERE a.id = current.id
 RETURNING a.id, a.rollback_requested_at, a.status, current.completes
), step_written AS ({_STEP_WRITTEN}
), new_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, type, step, data FROM (
        SELECT fence.id, e.ord, e.type, e.step, e.data
          FROM fence, jsonb_to_recordset(%(events)s) AS e(ord int, type text, step text, data jsonb)
        UNION ALL
        SELECT fence.id, 2147483647, 'status', NULL, '{{"status": "succeeded", "from": "running"}}'::jsonb
          FROM fence WHERE fence.completes
    ) AS new_rows ORDER BY ord
), keys AS (
    UPDATE idempotency_keys SET expires_at = now() + make_interval(secs => %(key_retention)s)
     WHERE activation_id IN (SELECT id FROM fence WHERE completes)
), notified AS (
    SELECT pg_notify('activation_terminal', id::text) FROM fence WHERE completes
)
SELECT fence.rollback_requested_at, fence.status, fence.completes, NULL::jsonb AS started,
       (SELECT count(*) FROM notified) AS notified
  FROM fence
"""

# The end of the forward run (from running, or from pending when a run crashed before it could
# start): %(target)s (succeeded or failed), or, with %(compensate)s, failed and at once rolling back.
# A rollback requested by the time this runs wins over the end of a running run: it becomes
# rolling_back instead (lifecycle.yields_to_rollback), which only the statement can know, so it
# writes the status events itself. A run that ends releases its lease, starts the retention of
# the idempotency keys and wakes `Prefer: wait`; one that rolls back gets a fresh crash budget.
END_FORWARD_RUN = """
WITH current AS (
    SELECT id, status AS previous,
           CASE WHEN %(compensate)s::boolean THEN 'rolling_back'
                WHEN rollback_requested_at IS NOT NULL AND status = 'running' THEN 'rolling_back'
                ELSE %(target)s::text END AS reached
      FROM activations
     WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = %(current)s::text
       FOR UPDATE
), moved AS (
    UPDATE activations AS a
       SET status = current.reached,
           error = %(error)s::jsonb,
           updated_at = now(),
           completed_at = CASE WHEN current.reached = 'rolling_back' THEN NULL ELSE now() END,
           lease_owner = CASE WHEN current.reached = 'rolling_back' THEN a.lease_owner END,
           lease_expires_at = CASE WHEN current.reached = 'rolling_back' THEN a.lease_expires_at END,
           run_crashes = CASE WHEN current.reached = 'rolling_back' THEN 0 ELSE a.run_crashes END,
           compensation_retry_at = CASE WHEN current.reached = 'rolling_back' THEN NULL
                                        ELSE a.compensation_retry_at END
      FROM current
     WHERE a.id = current.id
 RETURNING a.id, a.status, current.previous
), new_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, type, step, data FROM (
        SELECT moved.id, e.ord, e.type, e.step, e.data
          FROM moved, jsonb_to_recordset(%(events)s) AS e(ord int, type text, step text, data jsonb)
        UNION ALL  -- the run ended as asked
        SELECT moved.id, 1000000, 'status', NULL,
               jsonb_build_object('status', moved.status, 'from', moved.previous) || %(event)s::jsonb
          FROM moved WHERE moved.status = %(target)s::text
        UNION ALL  -- it failed and is compensated at once
        SELECT moved.id, 1000000, 'status', NULL, jsonb_build_object('status', 'failed', 'from', moved.previous)
          FROM moved WHERE %(compensate)s::boolean
        UNION ALL
        SELECT moved.id, 1000001, 'status', NULL,
               jsonb_build_object('status', 'rolling_back', 'from', 'failed') || %(event)s::jsonb
          FROM moved WHERE %(compensate)s::boolean
        UNION ALL  -- a requested rollback won
        SELECT moved.id, 1000000, 'status', NULL,
               jsonb_build_object('status', 'rolling_back', 'from', moved.previous, 'reason', 'requested')
          FROM moved WHERE moved.status = 'rolling_back' AND NOT %(compensate)s::boolean
    ) AS new_rows ORDER BY ord
), keys AS (
    UPDATE idempotency_keys SET expires_at = now() + make_interval(secs => %(key_retention)s)
     WHERE activation_id IN (SELECT id FROM moved WHERE status <> 'rolling_back')
), notified AS (
    SELECT pg_notify('activation_terminal', id::text) FROM moved WHERE status <> 'rolling_back'
)
SELECT id, status, (SELECT count(*) FROM notified) AS notified FROM moved
"""

# Compensation starts: on request while running, or for an automatic retry of a failed one. The
# error that made it necessary stays; the crash budget and any scheduled retry start afresh.
START_COMPENSATION = """
WITH moved AS (
    UPDATE activations
       SET status = 'rolling_back', updated_at = now(), completed_at = NULL,
           run_crashes = 0, compensation_retry_at = NULL
     WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = %(current)s::text
 RETURNING id, status
), new_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT moved.id, e.type, e.step, e.data
      FROM moved, jsonb_to_recordset(%(events)s) AS e(ord int, type text, step text, data jsonb)
     ORDER BY e.ord
)
SELECT id, status FROM moved
"""

# Compensation ends: rolled_back, or rollback_failed with an automatic retry %(retry_in)s seconds
# from now (CompensationRetries), or none. It releases the lease, starts the retention of the
# idempotency keys, wakes `Prefer: wait`, and ends the rollback or retire operation that asked for
# it (contract §9): succeeded when everything was deleted, failed when something could not be,
# unless a retry is scheduled (the operation is still under way).
END_COMPENSATION = """
WITH moved AS (
    UPDATE activations
       SET status = %(target)s::text, updated_at = now(), completed_at = now(),
           lease_owner = NULL, lease_expires_at = NULL,
           compensation_retry_at = CASE WHEN %(retry_in)s::float8 IS NOT NULL
                                        THEN now() + make_interval(secs => %(retry_in)s::float8)
                                        WHEN %(target)s::text = 'rolled_back' THEN NULL
                                        ELSE compensation_retry_at END,
           run_after = CASE WHEN %(retry_in)s::float8 IS NOT NULL
                            THEN now() + make_interval(secs => %(retry_in)s::float8) ELSE run_after END,
           compensation_rounds = compensation_rounds + CASE WHEN %(retry_in)s::float8 IS NOT NULL THEN 1 ELSE 0 END
     WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = 'rolling_back'
 RETURNING id, status
), teardown_closed AS (
    UPDATE activation_operations AS o
       SET status = CASE WHEN moved.status = 'rolled_back' THEN 'succeeded' ELSE 'failed' END,
           completed_at = now()
      FROM moved
     WHERE o.activation_id = moved.id AND o.kind IN ('rollback', 'retire') AND o.status = 'running'
       AND %(retry_in)s::float8 IS NULL
), new_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT moved.id, e.type, e.step, e.data
      FROM moved, jsonb_to_recordset(%(events)s) AS e(ord int, type text, step text, data jsonb)
     ORDER BY e.ord
), keys AS (
    UPDATE idempotency_keys SET expires_at = now() + make_interval(secs => %(key_retention)s)
     WHERE activation_id IN (SELECT id FROM moved)
), notified AS (
    SELECT pg_notify('activation_terminal', id::text) FROM moved
)
SELECT id, status, (SELECT count(*) FROM notified) AS notified FROM moved
"""

RECORD_CRASH = """
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

# What a write may name (WRITE_STEP sets exactly these when named).
_ACTIVATION_VALUES = frozenset(
    {"destination", "credentials_ciphertext", "flow_id", "flow_etag", "state", "applied_revision"}
)
_STEP_VALUES = frozenset({"status", "resource_id", "error", "finished_at"})
_ENDS_FORWARD = frozenset({ActivationStatus.SUCCEEDED, ActivationStatus.FAILED})
_ENDS_COMPENSATION = frozenset({ActivationStatus.ROLLED_BACK, ActivationStatus.ROLLBACK_FAILED})


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
        return await self._db.execute(RENEW_LEASE, params) == 1

    async def release(self, lease: Lease, *, delay_seconds: float = 0.0) -> None:
        await self._db.execute(RELEASE_LEASE, {"id": lease.activation_id, "epoch": lease.epoch, "delay": delay_seconds})

    # ------------------------------------------------------------------ the saga's reads and writes
    async def begin_run(self, lease: Lease, *, first_steps: Sequence[str]) -> tuple[Activation, dict[str, int]]:
        """The activation, loaded under the lease (as it was before this statement). A pending one
        becomes running (or rolling_back), and if running, ``first_steps`` start: returned with
        their attempt numbers."""
        check_transition(ActivationStatus.PENDING, ActivationStatus.RUNNING)
        check_transition(ActivationStatus.PENDING, ActivationStatus.ROLLING_BACK)
        params = {"id": lease.activation_id, "epoch": lease.epoch, "start": _names(first_steps)}
        row = await self._db.fetchone(BEGIN_RUN, params)
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
        """WRITE_STEP (COMPLETE_RUN with ``complete``): set ``values`` on ``step`` (if given),
        ``activation_values`` on the activation, insert ``events`` in order, and start the steps of
        ``start`` (attempts + 1, running) unless ``start_unless_rollback`` and a rollback has been
        requested meanwhile. With ``complete`` (the last step succeeded), the activation also
        becomes succeeded, unless a rollback has been requested. Reports whether a rollback has been
        requested, which steps it started and whether it completed the run."""
        step_values = dict(values or {}) if step is not None else {}
        activation = dict(activation_values or {})
        _check_names(step_values, _STEP_VALUES, "step")
        _check_names(activation, _ACTIVATION_VALUES, "activation")
        if "finished_at" in step_values:
            step_values["finished_at"] = True  # the statement's now()
        if complete and start:
            raise ValueError("the write that ends a run has no steps left to start")
        params = {
            "id": lease.activation_id,
            "epoch": lease.epoch,
            "step": step,
            "step_values": Jsonb(step_values),
            "activation": Jsonb(activation),
            "events": event_rows(events),
        }
        if complete:
            params["key_retention"] = self._key_retention_seconds
        else:
            params.update(start=_names(start), unless_rollback=start_unless_rollback)
        row = await self._db.fetchone(COMPLETE_RUN if complete else WRITE_STEP, params)
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return StepWrite(
            rollback_requested=row["rollback_requested_at"] is not None,
            started=row["started"] or {},
            completed=bool(row["completes"]),
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
        never see the intermediate statuses. Which statement runs follows from the move:
        END_FORWARD_RUN (to succeeded or failed, or failed and at once rolling_back), START_COMPENSATION
        (to rolling_back), END_COMPENSATION (to rolled_back or rollback_failed; ``retry_in``
        schedules an automatic retry). Returns the status reached (a requested rollback may have
        decided it, see END_FORWARD_RUN)."""
        hops = [current, *path]
        for before, after in itertools.pairwise(hops):
            check_transition(before, after)
        target = hops[-1]
        params: dict[str, Any] = {
            "id": lease.activation_id,
            "epoch": lease.epoch,
            "current": current.value,
            "key_retention": self._key_retention_seconds,
        }
        compensate = path == (ActivationStatus.FAILED, ActivationStatus.ROLLING_BACK)
        if target in _ENDS_FORWARD or compensate:
            if keep_error:
                raise ValueError("the end of a forward run records its error")
            params.update(
                target=ActivationStatus.FAILED.value if compensate else target.value,
                compensate=compensate,
                error=Jsonb(error) if error is not None else None,
                event=Jsonb(event or {}),
                events=event_rows(events),
            )
            sql = END_FORWARD_RUN
        else:
            if not keep_error or len(path) != 1:
                raise ValueError(f"{current} → {target} keeps the error and is one move")
            data = {"status": target.value, "from": current.value, **(event or {})}
            status_event = {"type": "status", "step": None, "data": data}
            params["events"] = event_rows([*events, status_event])
            if target == ActivationStatus.ROLLING_BACK:
                sql = START_COMPENSATION
            elif target in _ENDS_COMPENSATION:
                params.update(target=target.value, retry_in=retry_in)
                sql = END_COMPENSATION
            else:
                raise ValueError(f"no statement moves an activation to {target}")
        row = await self._db.fetchone(sql, params)
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over, or not {current}")
        return ActivationStatus(row["status"])

    async def record_crash(self, lease: Lease, error: str) -> tuple[int, ActivationStatus]:
        """Count a run that ended in an unexpected exception (``error``: its class name, never its
        text); returns the count so far and the activation's status."""
        row = await self._db.fetchone(RECORD_CRASH, {"id": lease.activation_id, "epoch": lease.epoch, "error": error})
        if row is None:
            raise LeaseLost(f"lease on {lease.activation_id} (epoch {lease.epoch}) was taken over")
        return int(row["run_crashes"]), ActivationStatus(row["status"])


def _names(steps: Sequence[str]) -> str:
    # Step names as one text parameter: adapting a Python list to text[] cost more CPU than the
    # rest of the parameters together. Names are identifiers, never commas.
    if any("," in name for name in steps):
        raise ValueError(f"step names cannot contain commas: {steps}")
    return ",".join(steps)


def _check_names(values: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"a write cannot set the {what} column(s) {sorted(unknown)}")


def event_rows(rows: EventRows) -> Jsonb:
    """Event rows as the statements' %(events)s parameter, numbered in order (`ord`)."""
    return Jsonb([{"ord": i, "type": r["type"], "step": r.get("step"), "data": r["data"]} for i, r in enumerate(rows)])

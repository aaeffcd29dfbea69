"""The runs mirrored from Adobe, the differences a reconcile found, and the leases of the background
cycles (contract §12, §13): named statements on the worker's or the API's statement pool.

Mirroring is idempotent: a run is keyed by Adobe's id, a finished run never goes back to
processing, and its events ("run" when it finished, "run_delayed" once when it stays processing
too long) are written by the statement that records the change, so a cycle cut off and run again
writes nothing twice. A background cycle's writes are fenced by its lease's epoch: a process that
lost the lease (it stalled past the expiry and another took over) writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from app.domain.runs import MirroredRun

from .statements import StatementPool

# Take a background cycle's lease when it is free or expired; the epoch it answers fences the
# cycle's writes. Held until it expires: the expiry is also when the next cycle may start anywhere.
TAKE_BACKGROUND_LEASE = """
INSERT INTO background_leases AS l (name, owner, epoch, expires_at)
VALUES (%(name)s, %(owner)s, 1, now() + make_interval(secs => %(seconds)s))
ON CONFLICT (name) DO UPDATE
   SET owner = excluded.owner, epoch = l.epoch + 1, expires_at = excluded.expires_at
 WHERE l.expires_at <= now()
RETURNING epoch
"""

# A cycle done: the lease is held only until the next cycle is due (anywhere).
SCHEDULE_NEXT_CYCLE = """
UPDATE background_leases SET expires_at = now() + make_interval(secs => %(seconds)s)
 WHERE name = %(name)s AND epoch = %(epoch)s
"""

# The sandboxes with a live activation whose flow exists: where a cycle has something to read.
LIVE_SANDBOXES = """
SELECT DISTINCT sandbox FROM activations WHERE status = 'succeeded' AND flow_id IS NOT NULL ORDER BY sandbox
"""

# A sandbox's live flows, and the runs of theirs still unfinished (read again by id each cycle).
LIVE_FLOWS = """
SELECT flow_id, id AS activation_id FROM activations
 WHERE status = 'succeeded' AND flow_id IS NOT NULL AND sandbox = %(sandbox)s
"""

UNFINISHED_RUNS = """
SELECT r.id FROM activation_runs r JOIN activations a ON a.id = r.activation_id
 WHERE r.status IN ('processing', 'waiting') AND a.status = 'succeeded' AND a.sandbox = %(sandbox)s
"""

# Of one activation (an on-demand refresh): its flow, the newest start mirrored, its unfinished runs.
ACTIVATION_RUN_STATE = """
SELECT a.flow_id, a.sandbox,
       (SELECT max(started_at) FROM activation_runs r WHERE r.activation_id = a.id) AS newest_started_at,
       coalesce((SELECT array_agg(r.id) FROM activation_runs r
                  WHERE r.activation_id = a.id AND r.status IN ('processing', 'waiting')), '{}') AS unfinished
  FROM activations a WHERE a.id = %(id)s
"""

WATERMARK = """
SELECT after_ms FROM cycle_watermarks WHERE cycle = %(cycle)s AND sandbox = %(sandbox)s
"""

# The lease (when the cycle holds one) fences the whole statement: no lease row matches, nothing is written.
LEASE_FENCE = """
fence AS (
    SELECT 1 WHERE CAST(%(lease)s AS text) IS NULL
        OR EXISTS (SELECT FROM background_leases
                    WHERE name = %(lease)s AND epoch = %(epoch)s AND expires_at > now())
)"""

# A watermark only moves on.
SET_WATERMARK = f"""
WITH {LEASE_FENCE}
INSERT INTO cycle_watermarks AS w (cycle, sandbox, after_ms)
SELECT %(cycle)s, %(sandbox)s, %(after_ms)s FROM fence
ON CONFLICT (cycle, sandbox) DO UPDATE
   SET after_ms = greatest(w.after_ms, excluded.after_ms), updated_at = now()
"""

# Record a batch of runs as read: new ones inserted, unfinished ones brought up to date (a finished
# run is final, and a run keeps the trigger it was first recorded with: an export names its runs
# before Adobe lists them). Runs that are new and finished, or finished since, get their "run"
# event; each activation's lastRun follows its newest run.
RECORD_RUNS = f"""
WITH {LEASE_FENCE}, incoming AS (
    SELECT r.* FROM fence, jsonb_to_recordset(%(runs)s) AS r(
        id text, activation_id uuid, flow_id text, status text, trigger text,
        started_at timestamptz, completed_at timestamptz, run jsonb)
), previous AS (
    SELECT r.id, r.status FROM activation_runs r JOIN incoming USING (id)
), recorded AS (
    INSERT INTO activation_runs AS r (id, activation_id, flow_id, status, trigger, started_at, completed_at, run)
    SELECT id, activation_id, flow_id, status, trigger, started_at, completed_at, run FROM incoming
    ON CONFLICT (id) DO UPDATE
       SET status = excluded.status, started_at = excluded.started_at, completed_at = excluded.completed_at,
           run = jsonb_set(excluded.run, '{{trigger}}', to_jsonb(r.trigger)), updated_at = now()
     WHERE r.status NOT IN ('succeeded', 'failed') AND r.run - 'trigger' IS DISTINCT FROM excluded.run - 'trigger'
 RETURNING r.id, r.activation_id, r.status, r.started_at, r.run
), finished_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT recorded.activation_id, 'run', NULL, recorded.run
      FROM recorded LEFT JOIN previous USING (id)
     WHERE recorded.status IN ('succeeded', 'failed')
       AND (previous.status IS NULL OR previous.status NOT IN ('succeeded', 'failed'))
     ORDER BY recorded.started_at, recorded.id
), newest AS (
    SELECT DISTINCT ON (activation_id) activation_id, id, started_at, run
      FROM recorded ORDER BY activation_id, started_at DESC, id DESC
), last_runs AS (
    UPDATE activations AS a SET last_run = newest.run
      FROM newest
     WHERE a.id = newest.activation_id
       AND (a.last_run IS NULL OR a.last_run ->> 'id' = newest.id
            OR CAST(a.last_run ->> 'startedAt' AS timestamptz) <= newest.started_at)
)
SELECT (SELECT count(*) FROM recorded) AS recorded,
       (SELECT count(*) FROM incoming) AS incoming,
       (SELECT count(*) FROM fence) AS fenced,
       coalesce((SELECT jsonb_agg(jsonb_build_object('status', r.status, 'run', r.run))
                   FROM recorded r LEFT JOIN previous USING (id)
                  WHERE r.status IN ('succeeded', 'failed')
                    AND (previous.status IS NULL OR previous.status NOT IN ('succeeded', 'failed'))),
                '[]') AS finished
"""

# Runs processing past the threshold (Adobe's UI alerts at 150 minutes): each reported once.
REPORT_DELAYED_RUNS = f"""
WITH {LEASE_FENCE}, delayed AS (
    UPDATE activation_runs AS r SET delay_reported = true, updated_at = now()
      FROM fence
     WHERE r.status IN ('processing', 'waiting') AND NOT r.delay_reported
       AND r.started_at < now() - make_interval(secs => %(threshold)s)
 RETURNING r.id, r.activation_id, r.started_at
), delayed_events AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT activation_id, 'run_delayed', NULL,
           jsonb_build_object('runId', id, 'startedAt', started_at, 'thresholdSeconds', %(threshold)s)
      FROM delayed
)
SELECT count(*) AS delayed FROM delayed
"""

# Newest first, keyset-paged on (started_at, id), one statement whatever the page size.
LIST_RUNS = """
SELECT id, started_at, run FROM activation_runs
 WHERE activation_id = %(id)s
   AND (CAST(%(status)s AS text) IS NULL OR status = %(status)s)
   AND (CAST(%(since)s AS timestamptz) IS NULL OR started_at >= %(since)s)
   AND (CAST(%(before_started)s AS timestamptz) IS NULL
        OR (started_at, id) < (CAST(%(before_started)s AS timestamptz), CAST(%(before_id)s AS text)))
 ORDER BY started_at DESC, id DESC
 LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class BackgroundLease:
    name: str
    epoch: int


@dataclass(frozen=True, slots=True)
class ActivationRunState:
    flow_id: str | None
    sandbox: str
    newest_started_at: datetime | None
    unfinished: list[str]


@dataclass(frozen=True, slots=True)
class RecordedRuns:
    written: int  # inserted or changed
    finished: list[dict[str, Any]]  # {"status", "run"} of the runs that finished (or were new and finished)
    fenced_out: bool  # the lease was lost: nothing was written


class RunStore:
    def __init__(self, statements: StatementPool) -> None:
        self._db = statements

    async def take_lease(self, name: str, *, owner: str, seconds: float) -> BackgroundLease | None:
        row = await self._db.fetchone(TAKE_BACKGROUND_LEASE, {"name": name, "owner": owner, "seconds": seconds})
        return BackgroundLease(name, int(row["epoch"])) if row is not None else None

    async def schedule_next(self, lease: BackgroundLease, *, seconds: float) -> None:
        await self._db.execute(SCHEDULE_NEXT_CYCLE, {"name": lease.name, "epoch": lease.epoch, "seconds": seconds})

    async def live_sandboxes(self) -> list[str]:
        return [row["sandbox"] for row in await self._db.fetchall_rows(LIVE_SANDBOXES, {})]

    async def live_flows(self, sandbox: str) -> dict[str, uuid.UUID]:
        rows = await self._db.fetchall_rows(LIVE_FLOWS, {"sandbox": sandbox})
        return {row["flow_id"]: row["activation_id"] for row in rows}

    async def unfinished_runs(self, sandbox: str) -> list[str]:
        return [row["id"] for row in await self._db.fetchall_rows(UNFINISHED_RUNS, {"sandbox": sandbox})]

    async def activation_run_state(self, activation_id: uuid.UUID) -> ActivationRunState | None:
        row = await self._db.fetchone(ACTIVATION_RUN_STATE, {"id": activation_id})
        if row is None:
            return None
        return ActivationRunState(row["flow_id"], row["sandbox"], row["newest_started_at"], list(row["unfinished"]))

    async def watermark(self, cycle: str, sandbox: str) -> int | None:
        row = await self._db.fetchone(WATERMARK, {"cycle": cycle, "sandbox": sandbox})
        return int(row["after_ms"]) if row is not None else None

    async def set_watermark(self, cycle: str, sandbox: str, after_ms: int, *, lease: BackgroundLease | None) -> None:
        params = {"cycle": cycle, "sandbox": sandbox, "after_ms": after_ms, **fence_params(lease)}
        await self._db.execute(SET_WATERMARK, params)

    async def record_runs(
        self, runs: Sequence[tuple[uuid.UUID, MirroredRun]], *, lease: BackgroundLease | None
    ) -> RecordedRuns:
        rows = [
            {
                "id": run.id,
                "activation_id": str(activation_id),
                "flow_id": run.flow_id,
                "status": run.status.value,
                "trigger": run.view["trigger"],
                "started_at": run.started_at.isoformat(),
                "completed_at": run.completed_at.isoformat() if run.completed_at else None,
                "run": run.view,
            }
            for activation_id, run in runs
        ]
        row = await self._db.fetchone(RECORD_RUNS, {"runs": Jsonb(rows), **fence_params(lease)})
        assert row is not None  # the statement always answers one row
        return RecordedRuns(int(row["recorded"]), list(row["finished"]), fenced_out=not row["fenced"])

    async def report_delayed_runs(self, threshold_seconds: float, *, lease: BackgroundLease | None) -> int:
        row = await self._db.fetchone(REPORT_DELAYED_RUNS, {"threshold": threshold_seconds, **fence_params(lease)})
        return int(row["delayed"]) if row is not None else 0

    async def list_runs(
        self,
        activation_id: uuid.UUID,
        *,
        limit: int,
        status: str | None,
        since: datetime | None,
        before: tuple[datetime, str] | None,
    ) -> list[tuple[datetime, str, dict[str, Any]]]:
        params = {
            "id": activation_id,
            "limit": limit,
            "status": status,
            "since": since,
            "before_started": before[0] if before else None,
            "before_id": before[1] if before else None,
        }
        rows = await self._db.fetchall_rows(LIST_RUNS, params)
        return [(row["started_at"], row["id"], row["run"]) for row in rows]


def fence_params(lease: BackgroundLease | None) -> dict[str, Any]:
    """The parameters of LEASE_FENCE: no lease (an on-demand read) fences nothing."""
    return {"lease": lease.name if lease else None, "epoch": lease.epoch if lease else None}

"""Queue statistics for /metrics, read on each scrape.

Only the active statuses are counted: that set is what ``ix_activations_claimable`` (a partial index
on exactly those statuses) covers, so the query stays bounded by the work in progress however many
finished activations the table holds. Finished activations are counted by the workers as they finish
(``gateway_activations_finished_total``), the usual way for Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.lifecycle import ACTIVE_STATUSES

from .tables import CLAIMABLE

ACTIVE = ", ".join(f"'{status.value}'" for status in sorted(ACTIVE_STATUSES))

_QUERY = text(
    f"""
    SELECT status,
           count(*) FILTER (WHERE lease_expires_at IS NULL OR lease_expires_at < now()) AS waiting,
           count(*) FILTER (WHERE lease_expires_at >= now()) AS leased
      FROM activations
     WHERE status IN ({ACTIVE})
     GROUP BY status
    """
)


@dataclass(frozen=True, slots=True)
class QueueStats:
    by_status: dict[str, int] = field(default_factory=dict)  # every active status, zeros included
    waiting: int = 0  # active and not leased by any worker (queued, backing off, or lease expired)
    leased: int = 0  # held by a live lease of some worker process


async def queue_stats(engine: AsyncEngine) -> QueueStats:
    async with engine.connect() as conn:
        rows = (await conn.execute(_QUERY)).all()
    by_status = dict.fromkeys(sorted(status.value for status in ACTIVE_STATUSES), 0)
    waiting = leased = 0
    for row in rows:
        by_status[row.status] = int(row.waiting) + int(row.leased)
        waiting += int(row.waiting)
        leased += int(row.leased)
    return QueueStats(by_status=by_status, waiting=waiting, leased=leased)


# Unfinished work this build has no workflow definition for (see domain/workflows.py): activations
# whose create version it lacks, and queued or running operations whose (kind, version) it lacks.
# Both scans are bounded: the first by the claimable index, the second by the unfinished operations.
UNRUNNABLE = text(
    f"""
    SELECT (SELECT count(*) FROM activations
             WHERE ({CLAIMABLE}) AND NOT (workflow_version = ANY(CAST(:create_versions AS int[]))))
         + (SELECT count(*) FROM activation_operations
             WHERE status IN ('pending', 'running') AND kind NOT IN ('rollback', 'retire')
               AND NOT (kind || ':' || workflow_version = ANY(CAST(:operation_versions AS text[]))))
           AS unrunnable
    """
)


async def unrunnable_work(
    engine: AsyncEngine, *, create_versions: Sequence[int], operation_versions: Sequence[str]
) -> int:
    """How many unfinished activations and operations need a workflow version this build lacks
    (``operation_versions``: "kind:version" of every operation definition it has)."""
    params = {"create_versions": list(create_versions), "operation_versions": list(operation_versions)}
    async with engine.connect() as conn:
        return int((await conn.execute(UNRUNNABLE, params)).scalar_one())


# Of the live activations that ever had a successful export run, the age of the oldest "newest
# success": the one that has gone longest without delivering (NULL when none had one). One index
# probe per live activation (ix_activation_runs_activation_started, newest first).
NEWEST_SUCCESS_AGE = text(
    """
    SELECT extract(epoch FROM now() - min(newest.completed_at)) AS age
      FROM activations a
      CROSS JOIN LATERAL (
          SELECT coalesce(r.completed_at, r.started_at) AS completed_at FROM activation_runs r
           WHERE r.activation_id = a.id AND r.status = 'succeeded'
           ORDER BY r.started_at DESC, r.id DESC LIMIT 1
      ) AS newest
     WHERE a.status = 'succeeded'
    """
)


async def newest_success_age(engine: AsyncEngine) -> float | None:
    async with engine.connect() as conn:
        value = (await conn.execute(NEWEST_SUCCESS_AGE)).scalar_one()
    return float(value) if value is not None else None

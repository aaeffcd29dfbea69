"""Does cost grow with history? Bulk-insert finished activations (with their steps, events and
idempotency keys, as the service would have left them) and time the hot queries before and after."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import psycopg
from sqlalchemy import text

from app.adapters.db.engine import create_engine
from app.adapters.db.intake import ActivationIntake
from app.adapters.db.repository import ActivationRepository
from app.adapters.db.saga_store import CLAIM_SQL, SagaStore
from app.adapters.db.statements import StatementPool
from app.domain.steps import STEP_NAMES

from .workload import percentile

# What one finished activation leaves behind: 8 steps; 3 status events, 8 step events, 6 upstream calls.
STATUS_EVENTS = 3
UPSTREAM_EVENTS = 6

_INSERT_ACTIVATIONS = """
INSERT INTO activations (id, client_id, status, destination_name, destination, sandbox, name, storage,
                         segments, attributes, flow_id, flow_etag, created_at, updated_at, completed_at,
                         run_after, lease_epoch)
SELECT gen_random_uuid(), 'dev', 'succeeded', 'Adobe Campaign',
       '{"name": "Adobe Campaign", "connectionSpecId": "0b23e41a", "flowSpecId": "71471eba",
         "authSpecName": "S3", "targetMode": "S3"}'::jsonb,
       'prod', 'history',
       '{"type": "s3", "accessId": "AKIAIOSFODNN7EXAMPLE", "bucketName": "b", "path": "p"}'::jsonb,
       '[{"id": "72ddd79b-6b0a-4e97-a8d2-112ccd81bd02", "name": "Men over 50"}]'::jsonb,
       '["person.name.lastName"]'::jsonb,
       'flow-' || g, '"1"', t, t + interval '1 second', t + interval '1 second', t, 1
  FROM generate_series(1, %(n)s) AS g, LATERAL (SELECT now() - interval '30 days' + g * interval '1 second') AS x(t)
"""

_INSERT_CHILDREN = """
INSERT INTO activation_steps (activation_id, name, position, status, attempts, resource_id, started_at, finished_at)
SELECT a.id, s.name, s.position - 1, 'succeeded', 1, 'res-' || s.position, a.created_at, a.completed_at
  FROM activations a, unnest(%(steps)s::text[]) WITH ORDINALITY AS s(name, position)
 WHERE a.name = 'history';

INSERT INTO activation_events (activation_id, occurred_at, type, step, data)
SELECT a.id, a.created_at, e.type, e.step, e.data
  FROM activations a,
       LATERAL (
         SELECT 'status', NULL::text, jsonb_build_object('status', 'running') FROM generate_series(1, %(status)s)
         UNION ALL
         SELECT 'step', s, jsonb_build_object('status', 'succeeded', 'resourceId', 'res')
           FROM unnest(%(steps)s::text[]) s
         UNION ALL
         SELECT 'upstream', 'create_flow', jsonb_build_object('method', 'POST', 'path', '/flows', 'status', 201,
                'durationMs', 50.0, 'attempt', 1, 'requestId', gen_random_uuid())
           FROM generate_series(1, %(upstream)s)
       ) AS e(type, step, data)
 WHERE a.name = 'history';

INSERT INTO idempotency_keys (client_id, key, request_fingerprint, activation_id, response_status, created_at,
                              expires_at)
SELECT 'dev', 'history-' || a.id, 'fp', a.id, 202, a.created_at, a.completed_at + interval '24 hours'
  FROM activations a WHERE a.name = 'history';
"""


def bulk_insert(database_url: str, count: int) -> dict[str, Any]:
    """Insert ``count`` finished activations and everything that goes with them; then ANALYZE, as
    autovacuum would soon do on its own."""
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(_INSERT_ACTIVATIONS, {"n": count})
            for statement in _INSERT_CHILDREN.split(";\n"):
                if statement.strip():
                    conn.execute(
                        statement,
                        {"steps": list(STEP_NAMES), "status": STATUS_EVENTS, "upstream": UPSTREAM_EVENTS},
                    )
        conn.execute("ANALYZE")
        rows = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in ("activations", "activation_steps", "activation_events", "idempotency_keys")
        }
    return {"seconds": round(time.perf_counter() - started, 1), "rows": rows}


def _explain(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params).fetchall()
    return "\n".join(str(row[0]) for row in plan)


def explain_plans(database_url: str, sample_id: uuid.UUID) -> dict[str, str]:
    """The plans of the claim query (with 10 claimable activations, in a transaction rolled back so
    the running worker never sees them) and of the status queries."""
    claim = CLAIM_SQL
    plans: dict[str, str] = {}
    with psycopg.connect(database_url) as conn:
        conn.execute(
            """
            INSERT INTO activations (id, client_id, status, destination_name, sandbox, name, storage, segments,
                                     attributes)
            SELECT gen_random_uuid(), 'dev', 'pending', 'Adobe Campaign', 'prod', 'explain', '{}', '[]', '[]'
              FROM generate_series(1, 10)
            """
        )
        plans["claim"] = _explain(conn, claim, {"limit": 10, "owner": "bench-explain", "lease": 30.0, "versions": "1"})
        conn.rollback()
        plans["status"] = _explain(conn, "SELECT status FROM activations WHERE id = %(id)s", {"id": sample_id})
        plans["steps"] = _explain(
            conn,
            "SELECT * FROM activation_steps WHERE activation_id = %(id)s ORDER BY position",
            {"id": sample_id},
        )
        plans["events"] = _explain(
            conn, "SELECT * FROM activation_events WHERE activation_id = %(id)s ORDER BY id", {"id": sample_id}
        )
        conn.rollback()
        plans["indexes"] = "\n".join(
            str(row[0])
            for row in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY tablename, indexname"
            ).fetchall()
        )
    return plans


async def _time_queries(database_url: str, ids: list[uuid.UUID], rounds: int) -> dict[str, float]:
    """Median and p99 milliseconds of the gateway's own calls (the saga store's claim, the repository's reads)."""
    engine = create_engine(database_url, pool_size=2)
    statements = StatementPool(database_url, size=2)
    repo = ActivationRepository(engine, statements)
    store = SagaStore(statements)
    intake = ActivationIntake(statements)
    timings: dict[str, list[float]] = {"claim": [], "get_status": [], "get": [], "events": []}
    try:
        async with engine.connect() as conn:  # warm the pool and the statement caches
            await conn.execute(text("SELECT 1"))
        for i in range(rounds):
            ident = ids[i % len(ids)]
            calls: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
                # An empty queue: the claim must find that out from the index, not by scanning history.
                ("claim", partial(store.claim, owner="bench-probe", limit=10, lease_seconds=30)),
                # The status read that answers `Prefer: wait` (activation and steps, one statement).
                ("get_status", partial(intake.current, ident)),
                ("get", partial(repo.get, ident)),
                ("events", partial(repo.events, ident)),
            )
            for name, call in calls:
                started = time.perf_counter()
                await call()
                timings[name].append((time.perf_counter() - started) * 1000)
    finally:
        await statements.close()
        await engine.dispose()
    result: dict[str, float] = {}
    for name, values in timings.items():
        result[f"{name}_p50_ms"] = round(percentile(values, 50), 2)
        result[f"{name}_p99_ms"] = round(percentile(values, 99), 2)
    return result


def _http_get_ms(base_url: str, ids: list[uuid.UUID], rounds: int) -> float:
    samples: list[float] = []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for i in range(rounds):
            started = time.perf_counter()
            client.get(f"/activations/{ids[i % len(ids)]}").raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return round(percentile(samples, 50), 2)


def measure(database_url: str, base_url: str, rounds: int) -> dict[str, Any]:
    """Timings of the hot queries for activations the benchmark itself created (the same ids before
    and after the history is added, so only the table sizes differ)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM activations WHERE name <> 'history' LIMIT 500")]
        total = int(conn.execute("SELECT count(*) FROM activations").fetchone()[0])  # type: ignore[index]
    random.Random(7).shuffle(ids)
    timings = asyncio.run(_time_queries(database_url, ids, rounds))
    timings["http_get_p50_ms"] = _http_get_ms(base_url, ids, rounds)
    return {"activations": total, **timings}

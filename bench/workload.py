"""Driving the gateway over HTTP: activation bodies, submitting, waiting, an open-loop load, and
updates of live activations (contract §10)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from app.adapters.flowservice.transport import AiohttpTransport

from .harness import FLOW_PATH

TERMINAL = ("succeeded", "failed", "rolled_back", "rollback_failed")
MERGE_PATCH = "application/merge-patch+json"


def activation_body(batch: str, schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    """A realistic request: two segments and two attributes to Adobe Campaign over S3. ``name``
    tags the batch so the benchmark can count its activations in the database; ``schedule`` is
    each segment's (the gateway's default when None)."""
    segments: list[dict[str, Any]] = [{"id": str(uuid.uuid4()), "name": f"Segment {i}"} for i in range(2)]
    if schedule is not None:
        segments = [{**segment, "schedule": schedule} for segment in segments]
    return {
        "destination": "Adobe Campaign",
        "name": batch,
        "storage": {
            "type": "s3",
            "accessId": "AKIAIOSFODNN7EXAMPLE",
            "secretKey": "bench/secret/key/not/real/EXAMPLEKEY",
            "bucketName": "acme-aep-exports",
            "path": "campaign/bench",
        },
        "segments": segments,
        "attributes": ["person.name.lastName", "personalEmail.address"],
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1) if values else 0.0,
        "mean": round(statistics.fmean(values), 1) if values else 0.0,
    }


def _client(base_url: str, connections: int) -> httpx.AsyncClient:
    # The load generator shares the machine with what it measures: it uses the gateway's own
    # cheap transport (httpx on aiohttp), or its CPU would be counted against the gateway's.
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(120.0),
        transport=AiohttpTransport(max_connections=connections),
    )


async def _post(
    client: httpx.AsyncClient, batch: str, *, wait: int | None = None, body: dict[str, Any] | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": f"bench-{uuid.uuid4()}"}
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    response = await client.post("/activations", json=body or activation_body(batch), headers=headers)
    if response.status_code not in (200, 202):
        raise RuntimeError(f"POST /activations answered {response.status_code}: {response.text[:500]}")
    return response


async def single_latency(base_url: str, count: int, batch: str) -> list[float]:
    """POST with ``Prefer: wait`` one at a time: milliseconds from sending to a `succeeded` answer."""
    samples: list[float] = []
    async with _client(base_url, 2) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = await _post(client, batch, wait=30)
            elapsed = (time.perf_counter() - started) * 1000
            if response.json()["status"] != "succeeded":
                raise RuntimeError(f"activation ended {response.json()['status']}: {response.text[:500]}")
            samples.append(elapsed)
    return samples


async def submit_burst(
    base_url: str, count: int, batch: str, *, connections: int = 64, schedule: dict[str, Any] | None = None
) -> float:
    """Submit ``count`` activations as fast as the gateway accepts them; returns the seconds it took."""
    started = time.perf_counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def sender(client: httpx.AsyncClient) -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await _post(client, batch, body=activation_body(batch, schedule))

    async with _client(base_url, connections) as client:
        await asyncio.gather(*(sender(client) for _ in range(min(connections, count))))
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class BatchResult:
    count: int
    succeeded: int
    seconds: float  # first accepted → last terminal, by the database clock

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def wait_for_batch(database_url: str, batch: str, count: int, timeout: float) -> BatchResult:
    """Poll the database (not the gateway, so as not to load it) until the batch is terminal."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                """
                SELECT count(*) FILTER (WHERE status = ANY(%(terminal)s)),
                       count(*) FILTER (WHERE status = 'succeeded'),
                       extract(epoch FROM max(completed_at) - min(created_at))
                  FROM activations WHERE name = %(batch)s
                """,
                {"terminal": list(TERMINAL), "batch": batch},
            ).fetchone()
            assert row is not None
            done, succeeded, seconds = int(row[0]), int(row[1]), float(row[2] or 0.0)
            if done >= count:
                return BatchResult(count=count, succeeded=succeeded, seconds=seconds)
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch}: {done}/{count} terminal after {timeout}s")
            time.sleep(0.2)


async def open_loop(base_url: str, rate: float, seconds: float, batch: str) -> tuple[list[float], int]:
    """Offer ``rate`` POSTs per second on a fixed schedule, whatever the answers do (open loop).

    Latency counts from the scheduled send time, so a stalled server cannot hide its queueing
    (no coordinated omission). Returns the latencies in ms and the number of errors."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    async with _client(base_url, 1000) as client:
        start = time.perf_counter() + 0.05

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                await _post(client, batch)
            except (httpx.HTTPError, RuntimeError):
                errors += 1
                return
            latencies.append((time.perf_counter() - scheduled) * 1000)

        await asyncio.gather(*(one(i) for i in range(total)))
    return latencies, errors


# ---------------------------------------------------------------------------------------------- updates
@dataclass(slots=True)
class LiveActivation:
    """An activation the benchmark changes: its id and the segment list it last asked for."""

    id: str
    segments: list[dict[str, Any]]
    revision: int = 1


async def create_for_updates(base_url: str, count: int, batch: str, *, connections: int = 64) -> list[LiveActivation]:
    """Submit ``count`` activations at once (as :func:`submit_burst`) and keep what updates need;
    they are live once :func:`wait_for_batch` says so."""
    created: list[LiveActivation] = []

    async def sender(client: httpx.AsyncClient, share: int) -> None:
        for _ in range(share):
            body = activation_body(batch)
            answer = (await _post(client, batch, body=body)).json()
            created.append(LiveActivation(answer["id"], body["segments"], answer["revision"]))

    senders = min(connections, count)
    async with _client(base_url, connections) as client:
        await asyncio.gather(*(sender(client, count // senders + (i < count % senders)) for i in range(senders)))
    return created


def one_more_audience(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whole desired list with one audience added (a merge patch replaces lists whole)."""
    return [*segments, {"id": str(uuid.uuid4()), "name": f"Segment {len(segments)}"}]


async def _patch(
    client: httpx.AsyncClient, activation_id: str, body: dict[str, Any], *, wait: int | None = None
) -> httpx.Response:
    headers = {"Content-Type": MERGE_PATCH, "Idempotency-Key": f"bench-{uuid.uuid4()}"}
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    response = await client.patch(f"/activations/{activation_id}", content=json.dumps(body).encode(), headers=headers)
    if response.status_code not in (200, 202):
        raise RuntimeError(f"PATCH /activations/{activation_id} answered {response.status_code}: {response.text[:500]}")
    return response


async def update_latency(base_url: str, live: list[LiveActivation], count: int) -> list[float]:
    """``count`` updates one at a time, round robin over ``live``, each adding one audience, with
    ``Prefer: wait``: milliseconds from sending to the 200 that shows the update applied
    (``appliedRevision == revision``, one more than before)."""
    samples: list[float] = []
    async with _client(base_url, 2) as client:
        for i in range(count):
            target = live[i % len(live)]
            segments = one_more_audience(target.segments)
            started = time.perf_counter()
            response = await _patch(client, target.id, {"segments": segments}, wait=30)
            elapsed = (time.perf_counter() - started) * 1000
            body = response.json()
            if (
                response.status_code != 200
                or body["revision"] != target.revision + 1
                or body["appliedRevision"] != body["revision"]
                or len(body["segments"]) != len(segments)
            ):
                raise RuntimeError(
                    f"update of {target.id} not applied within Prefer: wait ({response.status_code}, revision"
                    f" {body.get('revision')}, applied {body.get('appliedRevision')}): {response.text[:500]}"
                )
            target.segments, target.revision = segments, body["revision"]
            samples.append(elapsed)
    return samples


async def update_burst(
    base_url: str, live: list[LiveActivation], count: int, *, connections: int = 64
) -> tuple[float, dict[str, int]]:
    """``count`` PATCHes (no ``Prefer: wait``) sent as fast as the gateway accepts them, as
    :func:`submit_burst` sends creates: update i changes ``live[i % len(live)]``, adding one
    audience to the list its previous update asked for. Returns the seconds it took and, per
    activation, the highest revision accepted (what it must reach)."""
    started = time.perf_counter()
    queue: asyncio.Queue[tuple[LiveActivation, list[dict[str, Any]]]] = asyncio.Queue()
    for i in range(count):
        target = live[i % len(live)]
        target.segments = one_more_audience(target.segments)
        queue.put_nowait((target, target.segments))
    accepted: dict[str, int] = {}

    async def sender(client: httpx.AsyncClient) -> None:
        while True:
            try:
                target, segments = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            revision = (await _patch(client, target.id, {"segments": segments})).json()["revision"]
            accepted[target.id] = max(accepted.get(target.id, 0), revision)

    async with _client(base_url, connections) as client:
        await asyncio.gather(*(sender(client) for _ in range(min(connections, count))))
    return time.perf_counter() - started, accepted


@dataclass(frozen=True, slots=True)
class UpdatesResult:
    count: int  # update operations
    succeeded: int
    seconds: float  # first update accepted → last one ended, by the database clock
    flow_ids: list[str]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def wait_for_updates(database_url: str, accepted: dict[str, int], timeout: float) -> UpdatesResult:
    """Poll the database until every activation's applied revision reached the last revision
    accepted for it (operations run in order, so its queue is then empty); a failed update ends
    the wait with an error."""
    ids, revisions = list(accepted), list(accepted.values())
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                """
                SELECT count(*) FILTER (WHERE coalesce(a.applied_revision, 0) >= w.revision),
                       (SELECT count(*) FROM activation_operations o
                         WHERE o.activation_id = ANY(%(ids)s::uuid[]) AND o.kind = 'update' AND o.status = 'failed')
                  FROM unnest(%(ids)s::uuid[], %(revisions)s::int[]) AS w(id, revision)
                  JOIN activations a ON a.id = w.id
                """,
                {"ids": ids, "revisions": revisions},
            ).fetchone()
            assert row is not None
            applied, failed = int(row[0]), int(row[1])
            if failed:
                raise RuntimeError(f"{failed} update operation(s) failed; see the gateway's logs")
            if applied >= len(ids):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"updates: {applied}/{len(ids)} activations applied after {timeout}s")
            time.sleep(0.2)
        row = conn.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'),
                   extract(epoch FROM max(completed_at) - min(created_at))
              FROM activation_operations WHERE activation_id = ANY(%(ids)s::uuid[]) AND kind = 'update'
            """,
            {"ids": ids},
        ).fetchone()
        assert row is not None
        flows = conn.execute("SELECT flow_id FROM activations WHERE id = ANY(%(ids)s::uuid[])", {"ids": ids})
        return UpdatesResult(
            count=int(row[0]),
            succeeded=int(row[1]),
            seconds=float(row[2] or 0.0),
            flow_ids=[r[0] for r in flows.fetchall()],
        )


def emulator_next_seq(emulator_url: str) -> int:
    """The ``seq`` the emulator's next request-history entry will get (read before a measurement,
    to read only what it caused afterwards)."""
    response = httpx.get(f"{emulator_url}/_emulator/requests", timeout=60)
    response.raise_for_status()
    items = response.json()["items"]
    return int(items[-1]["seq"]) + 1 if items else 0


def upstream_calls_since(emulator_url: str, since: int, flow_ids: list[str]) -> dict[str, int] | None:
    """Flow Service calls the emulator received from ``since`` on: all of them, and the PATCHes of
    the given flows. None when the history (bounded) already dropped some of them."""
    response = httpx.get(f"{emulator_url}/_emulator/requests", params={"since": since}, timeout=60)
    response.raise_for_status()
    entries = response.json()["items"]
    if entries and int(entries[0]["seq"]) > since:
        return None
    items = [e for e in entries if e["path"].startswith(FLOW_PATH)]
    flows = {f"{FLOW_PATH}/flows/{flow_id}" for flow_id in flow_ids}
    patches = [e for e in items if e["method"] == "PATCH" and e["path"] in flows and e.get("lateCommitOf") is None]
    return {"calls": len(items), "patches": len(patches)}

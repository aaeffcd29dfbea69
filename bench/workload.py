"""Driving the gateway over HTTP: activation bodies, submitting, waiting, and an open-loop load."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from app.adapters.flowservice.transport import AiohttpTransport

TERMINAL = ("succeeded", "failed", "rolled_back", "rollback_failed")


def activation_body(batch: str) -> dict[str, Any]:
    """A realistic request: two segments and two attributes to Adobe Campaign over S3. ``name``
    tags the batch so the benchmark can count its activations in the database."""
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
        "segments": [{"id": str(uuid.uuid4()), "name": f"Segment {i}"} for i in range(2)],
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


async def _post(client: httpx.AsyncClient, batch: str, *, wait: int | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": f"bench-{uuid.uuid4()}"}
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    response = await client.post("/activations", json=activation_body(batch), headers=headers)
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


async def submit_burst(base_url: str, count: int, batch: str, *, connections: int = 64) -> float:
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
            await _post(client, batch)

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

"""Mirroring Adobe's export runs of every live activation (contract §12).

A cycle reads each sandbox's runs that started since its watermark, in pages of 100, whatever the
flow (`property=metrics.durationSummary.startedAtUTC>…`): the calls grow with the runs that
started, not with the number of activations, and runs of flows that are not the gateway's are
skipped. Runs still unfinished are read again by id, 50 to a call (`property=id==a,b,…`), since a
window on the start does not show a status that changed later. The watermark stays an overlap
behind the newest start seen, so a run that Adobe lists a little late is still read (and, being
keyed by its id, recorded once).

One process at a time runs a cycle: the holder of the "runs-mirror" lease, whose epoch fences the
cycle's writes. An on-demand refresh (`GET /runs?refresh=true`) reads one activation's flow
(`property=flowId==…`) without the lease; its writes are as idempotent as the cycle's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from app.domain.paging import decode_keyset, encode_keyset
from app.domain.ports import FlowService, UpstreamError
from app.domain.runs import MirroredRun, RunTrigger, normalize_run

from .problems import ServiceProblem

if TYPE_CHECKING:
    from app.adapters.db.run_store import BackgroundLease, RunStore

log = structlog.get_logger(__name__)

RUNS = "runs"
LEASE_NAME = "runs-mirror"
RUNS_STARTED = "runs-started"  # its watermark: the runs started after it are read
# Adobe's largest page; and flow or run ids per `==` list (a query string stays short).
PAGE_LIMIT = "100"
IDS_PER_CALL = 50
# Runs Adobe lists a little after they started are still in the next window.
OVERLAP = timedelta(minutes=15)
# A sandbox mirrored for the first time: the runs of this far back.
FIRST_LOOKBACK = timedelta(days=7)


# A cycle's lease outlives a slow cycle (its writes stay fenced in), and so holds the cycle up that
# long when its process dies mid-cycle; once done it is held only until the next cycle is due.
DEFAULT_CYCLE_LEASE_SECONDS = 120.0


def cycle_lease(interval_seconds: float, minimum_seconds: float) -> float:
    return max(interval_seconds, minimum_seconds)


class RunObserver(Protocol):
    def run_finished(self, status: str, exported: int, skipped: int) -> None: ...

    def runs_delayed_found(self, count: int) -> None: ...

    def cycle_finished(self, cycle: str, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class MirrorReport:
    sandboxes: int
    runs_read: int
    runs_written: int


def chunks(values: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def start_ms(run: MirroredRun) -> int:
    return int(run.started_at.timestamp() * 1000)


class RunMirror:
    def __init__(
        self,
        store: RunStore,
        flows: FlowService,
        observer: RunObserver,
        *,
        owner: str,
        delay_threshold_seconds: float,
        lease_seconds: float = DEFAULT_CYCLE_LEASE_SECONDS,
    ) -> None:
        self._store = store
        self._lease_seconds = lease_seconds
        self._flows = flows
        self._observer = observer
        self._owner = owner
        self._delay_threshold = delay_threshold_seconds

    def _lease_for(self, interval_seconds: float) -> float:
        return cycle_lease(interval_seconds, self._lease_seconds)

    async def cycle(self, *, interval_seconds: float) -> MirrorReport | None:
        """One cycle over every sandbox with live activations; None when another process holds it."""
        lease = await self._store.take_lease(
            LEASE_NAME, owner=self._owner, seconds=cycle_lease(interval_seconds, self._lease_seconds)
        )
        if lease is None:
            return None
        started = time.monotonic()
        read = written = 0
        try:
            sandboxes = await self._store.live_sandboxes()
            for sandbox in sandboxes:
                sandbox_read, sandbox_written = await self._mirror_sandbox(sandbox, lease)
                read += sandbox_read
                written += sandbox_written
            delayed = await self._store.report_delayed_runs(self._delay_threshold, lease=lease)
            if delayed:
                self._observer.runs_delayed_found(delayed)
        finally:
            elapsed = time.monotonic() - started
            await self._store.schedule_next(lease, seconds=max(0.0, interval_seconds - elapsed))
        self._observer.cycle_finished("runs", elapsed)
        return MirrorReport(sandboxes=len(sandboxes), runs_read=read, runs_written=written)

    async def refresh(self, activation_id: uuid.UUID) -> int:
        """Mirror one activation's runs now (its flow's runs since the newest one mirrored, and its
        unfinished ones); returns how many runs were written."""
        state = await self._store.activation_run_state(activation_id)
        if state is None or state.flow_id is None:
            return 0
        params: list[tuple[str, str]] = [("property", f"flowId=={state.flow_id}"), ("limit", PAGE_LIMIT)]
        if state.newest_started_at is not None:
            after = int((state.newest_started_at - OVERLAP).timestamp() * 1000)
            params.append(("property", f"metrics.durationSummary.startedAtUTC>{after}"))
        docs = await self._flows.list_all(RUNS, sandbox=state.sandbox, params=params)
        docs += await self._by_id(state.sandbox, [i for i in state.unfinished if i not in {d.get("id") for d in docs}])
        return await self._record({state.flow_id: activation_id}, docs, lease=None)

    async def _mirror_sandbox(self, sandbox: str, lease: BackgroundLease) -> tuple[int, int]:
        flows = await self._store.live_flows(sandbox)
        if not flows:
            return 0, 0
        now_ms = int(time.time() * 1000)
        watermark = await self._store.watermark(RUNS_STARTED, sandbox)
        if watermark is None:
            watermark = now_ms - int(FIRST_LOOKBACK.total_seconds() * 1000)
        window = [
            ("property", f"metrics.durationSummary.startedAtUTC>{watermark}"),
            ("limit", PAGE_LIMIT),
        ]
        docs = await self._flows.list_all(RUNS, sandbox=sandbox, params=window)
        seen = {doc.get("id") for doc in docs}
        unfinished = [run_id for run_id in await self._store.unfinished_runs(sandbox) if run_id not in seen]
        docs += await self._by_id(sandbox, unfinished)
        written = await self._record(flows, docs, lease=lease)
        newest = max((ms for ms in map(_started_ms, docs) if ms is not None), default=None)
        if newest is not None:
            # Never past now: a run that starts later but reports an earlier start stays in view.
            mark = min(newest, now_ms) - int(OVERLAP.total_seconds() * 1000)
            if mark > watermark:
                await self._store.set_watermark(RUNS_STARTED, sandbox, mark, lease=lease)
        return len(docs), written

    async def _by_id(self, sandbox: str, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        for ids in chunks(run_ids, IDS_PER_CALL):
            params = [("property", f"id=={','.join(ids)}"), ("limit", PAGE_LIMIT)]
            docs += await self._flows.list_all(RUNS, sandbox=sandbox, params=params)
        return docs

    async def _record(
        self, flows: dict[str, uuid.UUID], docs: Iterable[dict[str, Any]], *, lease: BackgroundLease | None
    ) -> int:
        seen_at = datetime.now(UTC)
        runs: dict[str, tuple[uuid.UUID, MirroredRun]] = {}
        for doc in docs:
            activation_id = flows.get(str(doc.get("flowId")))
            if activation_id is None or not doc.get("id"):
                continue  # a flow that is not a live activation's
            run = normalize_run(doc, RunTrigger.SCHEDULED, seen_at=seen_at)
            runs[run.id] = (activation_id, run)
        if not runs:
            return 0
        recorded = await self._store.record_runs(list(runs.values()), lease=lease)
        if recorded.fenced_out:
            log.warning("run mirroring lost its lease; another process goes on")
        for finished in recorded.finished:
            records = finished["run"].get("records", {})
            self._observer.run_finished(finished["status"], records.get("exported", 0), records.get("skipped", 0))
        return recorded.written


def _started_ms(doc: dict[str, Any]) -> int | None:
    value = (doc.get("metrics") or {}).get("durationSummary", {}).get("startedAtUTC")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class RunQueries:
    """`GET /activations/{id}/runs`: the mirrored runs, newest first (with `refresh`, mirrored first)."""

    def __init__(self, store: RunStore, mirror: RunMirror) -> None:
        self._store = store
        self._mirror = mirror

    async def page(
        self,
        activation_id: uuid.UUID,
        *,
        limit: int,
        status: str | None,
        since: datetime | None,
        cursor: str | None,
        refresh: bool,
    ) -> tuple[list[dict[str, Any]], str | None]:
        try:
            before = decode_keyset(cursor) if cursor else None
        except ValueError:
            raise ServiceProblem(
                400, "invalid-cursor", "Invalid cursor", "the cursor was not issued by this service"
            ) from None
        if refresh:
            try:
                await self._mirror.refresh(activation_id)
            except UpstreamError:
                raise ServiceProblem(
                    503, "upstream-unavailable", "Adobe unavailable", "the runs could not be read from Adobe"
                ) from None
        rows = await self._store.list_runs(activation_id, limit=limit + 1, status=status, since=since, before=before)
        items = [run for _, _, run in rows[:limit]]
        next_cursor = encode_keyset(rows[limit - 1][0], rows[limit - 1][1]) if len(rows) > limit else None
        return items, next_cursor

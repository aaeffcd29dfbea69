"""Runs of destination flows (flow-service.md Part 3 §3.3): what Adobe's exports leave to read.

An enabled flow runs on its audiences' schedules, on the emulator's clock (:mod:`.clock`). The
audiences of one flow due at the same moment export in one run (one merge policy), with a count per
audience. Runs are made lazily, when runs or flows are read: each flow remembers up to when its
runs exist, so a read costs a look at each flow, not at each moment since the start.

Schedules, as the emulator reads them (Adobe documents no exact moments):

- ``triggerType: SCHEDULED`` runs at ``startTime`` (UTC); ``AFTER_SEGMENT_EVAL`` after the daily
  segment evaluation, taken as 02:00 UTC.
- ``ONCE`` runs once, on ``startDate``; ``DAILY`` every day from ``startDate`` to ``endDate``;
  ``WEEKLY`` every 7 days and ``MONTHLY`` every 30 days from ``startDate``; ``EVERY_N_HOURS`` every
  N hours from ``startDate`` at that time. A flow runs only for moments after it was created (and
  at most :data:`MAX_RUNS_PER_READ` of them per audience and read, after a long step forward).

A run is ``processing`` for :data:`RUN_MINUTES` emulated minutes, then a success (or what an admin
call scripted: a failure, or staying processing). Counts are derived from a hash of the flow, the
audience and the moment, so they are the same on every read; a flow with profile attributes skips
some records ("Records didn't match attribute filter"). Statuses are spelled as Adobe's documents
disagree: capitalised in lists (``Success``, the Dest spec's enum), lower case in ``GET /runs/{id}``
and in a flow's ``lastRunDetails`` (its examples).
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from .clock import EmulatorClock
from .errors import not_found
from .filters import next_href, paginate, parse_query
from .store import ResourceStore

JsonObject = dict[str, Any]

RUN_MINUTES: Final = 10
MAX_RUNS_PER_READ: Final = 50
AFTER_SEGMENT_EVAL_TIME: Final = "02:00"
SKIP_CODE: Final = "ACTIVATION_BATCH-0000-SKIP"
SKIP_MESSAGE: Final = "Records didn't match attribute filter"
FAILED_CODE: Final = "ACTIVATION_BATCH-0000-FAILED"
FAILED_MESSAGE: Final = "Job aborted."
OUTCOMES: Final = ("success", "failed", "processing")
RUN_SORT_FIELDS: Final = frozenset({"createdAt", "updatedAt", "id"})
DEFAULT_RUN_ORDER: Final = "-createdAt"  # newest first
_HOURS = {"EVERY_3_HOURS": 3, "EVERY_6_HOURS": 6, "EVERY_8_HOURS": 8, "EVERY_12_HOURS": 12}
_DAYS = {"DAILY": 1, "WEEKLY": 7, "MONTHLY": 30}
_MINUTE_MS: Final = 60_000
_DAY_MS: Final = 86_400_000


@dataclass
class Script:
    """What an admin call asked of a flow's next run(s)."""

    outcome: str
    skipped_records: int | None = None


@dataclass
class Run:
    id: str
    seq: int
    flow_id: str
    sandbox: str
    flow_spec: JsonObject
    started_ms: int
    audiences: list[str]
    attributes: bool  # the flow exports profile attributes: some records are skipped
    outcome: str = "success"
    skipped_records: int | None = None
    adhoc: bool = False

    def finished(self, now_ms: int) -> bool:
        return self.outcome != "processing" and now_ms >= self.completed_ms

    @property
    def completed_ms(self) -> int:
        return self.started_ms + RUN_MINUTES * _MINUTE_MS


@dataclass
class RunBook:
    clock: EmulatorClock
    store: ResourceStore
    _runs: dict[str, Run] = field(default_factory=dict)
    _by_flow: dict[str, list[Run]] = field(default_factory=dict)
    _until: dict[str, int] = field(default_factory=dict)  # flow id → its runs exist up to this moment
    _scripts: dict[str, deque[Script]] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # A finished run's document never changes again: rendered once (every page of GET /runs filters
    # the sandbox's whole list, so rendering each time made a page cost as much as all the runs).
    # Shared, never mutated: pages and bodies only read them.
    _finished_docs: dict[tuple[str, bool], JsonObject] = field(default_factory=dict)

    def reset(self) -> None:
        self._finished_docs.clear()
        self._runs.clear()
        self._by_flow.clear()
        self._until.clear()
        self._scripts.clear()

    # ------------------------------------------------------------------------------------------ making runs
    def catch_up(self, sandbox: str) -> None:
        """Make the runs every enabled flow of the sandbox has had by now."""
        now = self.clock.now_ms()
        for flow in self.store.docs("flows", sandbox):
            self._catch_up(flow, sandbox, now)

    def catch_up_flow(self, flow: JsonObject, sandbox: str) -> None:
        self._catch_up(flow, sandbox, self.clock.now_ms())

    def _catch_up(self, flow: JsonObject, sandbox: str, now: int) -> None:
        flow_id = flow["id"]
        since = self._until.get(flow_id)
        if since is None:
            since = self.clock.at_ms(float(flow.get("createdAt") or 0))
        self._until[flow_id] = now
        if flow.get("state") != "enabled" or now <= since:
            return
        due: dict[int, list[str]] = {}
        for selector in _segment_selectors(flow):
            value = selector.get("value") or {}
            for moment in moments(value.get("schedule") or {}, since, now):
                due.setdefault(moment, []).append(str(value.get("id")))
        for moment in sorted(due):
            self._add(flow, sandbox, moment, due[moment], adhoc=False)

    def start_adhoc(self, flow: JsonObject, sandbox: str, audiences: list[str]) -> Run:
        return self._add(flow, sandbox, self.clock.now_ms(), audiences, adhoc=True)

    def run_now(self, flow: JsonObject, sandbox: str, audiences: list[str] | None) -> Run:
        """An admin call's run, now, of these audiences (default: all of the flow's)."""
        chosen = audiences or [str((s.get("value") or {}).get("id")) for s in _segment_selectors(flow)]
        return self._add(flow, sandbox, self.clock.now_ms(), chosen, adhoc=False)

    def script(self, flow_id: str, outcome: str, *, times: int, skipped_records: int | None) -> None:
        queue = self._scripts.setdefault(flow_id, deque())
        queue.extend(Script(outcome, skipped_records) for _ in range(times))

    def _add(self, flow: JsonObject, sandbox: str, moment: int, audiences: list[str], *, adhoc: bool) -> Run:
        script = self._scripts.get(flow["id"])
        scripted = script.popleft() if script else Script("success")
        run = Run(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            flow_id=flow["id"],
            sandbox=sandbox,
            flow_spec=dict(flow.get("flowSpec") or {}),
            started_ms=moment,
            audiences=audiences,
            attributes=bool(_profile_selectors(flow)),
            outcome=scripted.outcome,
            skipped_records=scripted.skipped_records,
            adhoc=adhoc,
        )
        self._runs[run.id] = run
        self._by_flow.setdefault(run.flow_id, []).append(run)
        return run

    # ------------------------------------------------------------------------------------------ reading
    def runs(self, sandbox: str) -> list[Run]:
        return [run for run in self._runs.values() if run.sandbox == sandbox]

    def get(self, sandbox: str, run_id: str) -> Run | None:
        run = self._runs.get(run_id)
        return run if run is not None and run.sandbox == sandbox else None

    def running(self, flow_id: str, audience: str) -> Run | None:
        """The export of this audience of the flow still processing now, if any."""
        now = self.clock.now_ms()
        for run in self._by_flow.get(flow_id, []):
            if audience in run.audiences and not run.finished(now):
                return run
        return None

    def scheduled_run_going_on(self, flow_id: str) -> Run | None:
        """A scheduled export of the flow still processing now, if any."""
        now = self.clock.now_ms()
        return next((r for r in self._by_flow.get(flow_id, []) if not r.adhoc and not r.finished(now)), None)

    def last_run_details(self, flow_id: str) -> JsonObject | None:
        now = self.clock.now_ms()
        done = [run for run in self._by_flow.get(flow_id, []) if run.finished(now)]
        if not done:
            return None
        run = max(done, key=lambda r: (r.started_ms, r.seq))
        return {
            "id": run.id,
            "state": "success" if run.outcome == "success" else "failed",
            "startedAtUTC": run.started_ms,
            "completedAtUTC": run.completed_ms,
        }

    def list_body(self, sandbox: str, params: Sequence[tuple[str, str]]) -> JsonObject:
        """``GET /runs``: the filters and paging of every list, newest first by default."""
        self.catch_up(sandbox)
        query = parse_query(params, sortable=RUN_SORT_FIELDS, default_order=DEFAULT_RUN_ORDER)
        entries = [(run.seq, self.render(run, lower_case=False)) for run in self.runs(sandbox)]
        page = paginate(entries, query, sortable=RUN_SORT_FIELDS)
        if page.count is not None:
            return {"count": page.count}
        body: JsonObject = {"items": page.items}
        if page.next_token is not None:
            body["_links"] = {"next": {"href": next_href("runs", page.next_token)}}
        return body

    def get_body(self, sandbox: str, run_id: str) -> JsonObject:
        self.catch_up(sandbox)
        run = self.get(sandbox, run_id)
        if run is None:
            raise not_found("runs", run_id)
        return {"items": [self.render(run, lower_case=True)]}

    def render(self, run: Run, *, lower_case: bool) -> JsonObject:
        now = self.clock.now_ms()
        finished = run.finished(now)
        if not finished:
            return self._render(run, finished=False, lower_case=lower_case)
        key = (run.id, lower_case)
        doc = self._finished_docs.get(key)
        if doc is None:
            doc = self._finished_docs[key] = self._render(run, finished=True, lower_case=lower_case)
        return doc

    def _render(self, run: Run, *, finished: bool, lower_case: bool) -> JsonObject:
        status = "Processing" if not finished else ("Success" if run.outcome == "success" else "Failed")
        entities = []
        received = exported = skipped = 0
        for audience in run.audiences:
            audience_received, audience_skipped = _counts(run, audience)
            out = audience_received - audience_skipped if finished and run.outcome == "success" else 0
            received += audience_received if finished else 0
            skipped += audience_skipped if finished and run.outcome == "success" else 0
            exported += out
            entities.append({"id": f"segment:{audience}", "outputRecordCount": out})
        if finished and run.skipped_records is not None and run.outcome == "success":
            exported += skipped - run.skipped_records
            skipped = run.skipped_records
        records: JsonObject = {
            "inputRecordCount": received,
            "outputRecordCount": exported,
            "skippedRecordCount": skipped,
            "skippedInfo": [{"code": SKIP_CODE, "message": SKIP_MESSAGE, "count": skipped}] if skipped else [],
            "targetSummaries": [{"entitySummaries": entities}],
        }
        errors = [{"code": FAILED_CODE, "message": FAILED_MESSAGE}] if finished and run.outcome == "failed" else []
        duration: JsonObject = {"startedAtUTC": run.started_ms}
        if finished:
            duration["completedAtUTC"] = run.completed_ms
        return {
            "id": run.id,
            "flowId": run.flow_id,
            "flowSpec": run.flow_spec,
            "etag": f'"{run.id[:8]}-{int(finished)}"',
            "createdAt": run.started_ms,
            "updatedAt": run.completed_ms if finished else run.started_ms,
            "metrics": {
                "durationSummary": duration,
                "sizeSummary": {"outputBytes": exported * 120},
                "fileSummary": {"outputFileCount": len(run.audiences) if finished and exported else 0},
                "recordSummary": records,
                "statusSummary": {"status": status.lower() if lower_case else status, "errors": errors},
            },
            "activities": [],
        }


def moments(schedule: JsonObject, after_ms: int, until_ms: int) -> list[int]:
    """The scheduled moments of one audience in (after_ms, until_ms], at most MAX_RUNS_PER_READ (the latest)."""
    start = _date(schedule.get("startDate"))
    if start is None:
        return []
    end = _date(schedule.get("endDate"))
    at = schedule.get("startTime") if schedule.get("triggerType") == "SCHEDULED" else AFTER_SEGMENT_EVAL_TIME
    hours, minutes = (int(part) for part in str(at or AFTER_SEGMENT_EVAL_TIME).split(":")[:2])
    first = int(datetime(start.year, start.month, start.day, hours, minutes, tzinfo=UTC).timestamp() * 1000)
    frequency = schedule.get("frequency", "ONCE")
    if frequency == "ONCE":
        return [first] if after_ms < first <= until_ms else []
    step = _HOURS[frequency] * 3_600_000 if frequency in _HOURS else _DAYS.get(frequency, 1) * _DAY_MS
    last = until_ms
    if end is not None:
        last = min(last, int(datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp() * 1000) + _DAY_MS - 1)
    if last < first:
        return []
    k_from = 0 if after_ms < first else (after_ms - first) // step + 1
    k_to = (last - first) // step
    k_from = max(k_from, k_to - MAX_RUNS_PER_READ + 1)
    return [first + k * step for k in range(k_from, k_to + 1)]


def covers_today(schedule: JsonObject, today: date) -> bool:
    """The schedule has begun and not ended (Adobe: "only audiences whose schedule covers today")."""
    start, end = _date(schedule.get("startDate")), _date(schedule.get("endDate"))
    return start is not None and start <= today and (end is None or today <= end)


def _counts(run: Run, audience: str) -> tuple[int, int]:
    digest = hashlib.sha256(f"{run.flow_id}:{audience}:{run.started_ms}".encode()).digest()
    received = 50 + int.from_bytes(digest[:4], "big") % 950
    skipped = received * (digest[4] % 20) // 100 if run.attributes else 0
    return received, skipped


def _segment_selectors(flow: JsonObject) -> list[JsonObject]:
    return _selectors(flow, "segmentSelectors")


def _profile_selectors(flow: JsonObject) -> list[JsonObject]:
    return _selectors(flow, "profileSelectors")


def _selectors(flow: JsonObject, which: str) -> list[JsonObject]:
    transformations = flow.get("transformations") or []
    params = (transformations[0] or {}).get("params") or {} if transformations else {}
    selectors = (params.get(which) or {}).get("selectors") or []
    return [s for s in selectors if isinstance(s, dict)]


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def emulated_today(clock: EmulatorClock) -> date:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=clock.now_ms())).date()

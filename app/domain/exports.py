"""Export now (contract §12): the guardrails checked before anything is sent, and the one step of the
export operation, which starts Adobe's ad-hoc activation jobs (flow-service.md Part 3 §3.4).

Exactly once without an idempotency key upstream: Adobe runs one export per audience at a time and
refuses another with "Run already going on for audience … with run id …". An audience so refused
joins that run. A retry after an answer that never came (the job may have started) first waits
until a late commit can no longer land, then adopts the runs of the flow that started since its
first attempt and name those audiences, and sends only for the rest: whatever failed, one job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from .errors import StepFailed
from .ports import UpstreamStatusError
from .runs import SEGMENT_PREFIX
from .steps import SagaStep, StepContext, StepResult

# Adobe's guardrail: audiences per ad-hoc job.
MAX_AUDIENCES_PER_JOB = 80

_ALREADY_RUNNING = re.compile(
    r"Run already going on for audience (?P<segment>\S+) for order (?P<flow>\S+) with run id (?P<run>[^\s.,]+)"
)


@dataclass(frozen=True, slots=True)
class ExportRefusal:
    status: int
    slug: str
    title: str
    detail: str


def export_refusal(
    *,
    desired_state: str,
    state: str | None,
    segments: Sequence[Mapping[str, Any]],
    segment_ids: Sequence[str],
    today: date,
) -> ExportRefusal | None:
    """The first guardrail that exporting these audiences of an activation (its desired and its
    confirmed state, its audiences) now breaks; the activation being live is the operation
    queue's rule, checked before this."""
    if desired_state != "enabled" or state == "disabled":
        return ExportRefusal(
            409, "activation-paused", "Activation paused", "a paused activation exports nothing: resume it first"
        )
    on_activation = {segment["id"]: segment for segment in segments}
    missing = [segment_id for segment_id in segment_ids if segment_id not in on_activation]
    if missing:
        return ExportRefusal(
            422,
            "segment-not-on-activation",
            "Audience not on the activation",
            f"not audiences of this activation: {', '.join(missing[:10])}",
        )
    out_of_range = [s for s in segment_ids if not schedule_covers(on_activation[s].get("schedule") or {}, today)]
    if out_of_range:
        return ExportRefusal(
            422,
            "schedule-not-current",
            "Schedule does not cover today",
            f"Adobe exports an audience now only while its schedule covers today ({today.isoformat()}): "
            f"{', '.join(out_of_range[:10])}",
        )
    return None


def schedule_covers(schedule: Mapping[str, Any], today: date) -> bool:
    start, end = _date(schedule.get("startDate")), _date(schedule.get("endDate"))
    return (start is None or start <= today) and (end is None or today <= end)


def jobs(segment_ids: Sequence[str]) -> list[list[str]]:
    """The ad-hoc jobs for these audiences, at most MAX_AUDIENCES_PER_JOB each."""
    return [list(segment_ids[i : i + MAX_AUDIENCES_PER_JOB]) for i in range(0, len(segment_ids), MAX_AUDIENCES_PER_JOB)]


class StartExport(SagaStep):
    name = "start_export"

    async def forward(self, ctx: StepContext) -> StepResult:
        flow_id = ctx.activation.flow_id
        if flow_id is None:
            raise StepFailed("No dataflow", "the activation has no dataflow to export", type_="activation-not-live")
        segment_ids: list[str] = list(ctx.operation_params.get("segments") or [])
        runs: dict[str, str] = {}  # audience → the run that exports it
        joined: set[str] = set()
        if ctx.outcome_unknown:
            await self._wait_until_settled(ctx)
            runs.update(await self._runs_since_first_attempt(ctx, flow_id, segment_ids))
        for job in jobs(segment_ids):
            pending = [s for s in job if s not in runs]
            # Each refusal for a running export takes one audience out: the loop ends.
            for _ in range(len(pending) + 1):
                if not pending:
                    break
                try:
                    answer = await ctx.upstream.adhoc_run({flow_id: pending}, sandbox=ctx.sandbox)
                except UpstreamStatusError as exc:
                    running = _ALREADY_RUNNING.search(exc.message or "") if exc.status == 400 else None
                    if running is None or running["segment"] not in pending:
                        if exc.status == 400:
                            raise StepFailed(
                                "Export refused", f"Adobe refused the export: {exc.message}", type_="export-refused"
                            ) from None
                        raise
                    runs[running["segment"]] = running["run"]
                    joined.add(running["segment"])
                    pending.remove(running["segment"])
                    continue
                runs.update(_started_runs(answer, pending))
                break
        return StepResult(operation_result=_result(segment_ids, runs, joined))

    async def _wait_until_settled(self, ctx: StepContext) -> None:
        state = ctx.operation_steps.get(self.name)
        if state is not None:
            await ctx.wait_until_settled_since(state)

    async def _runs_since_first_attempt(
        self, ctx: StepContext, flow_id: str, segment_ids: Sequence[str]
    ) -> dict[str, str]:
        state = ctx.operation_steps.get(self.name)
        since = state.started_at if state is not None else None
        if since is None:
            return {}
        after = int(since.timestamp() * 1000) - 1000
        params = [
            ("property", f"flowId=={flow_id}"),
            ("property", f"metrics.durationSummary.startedAtUTC>{after}"),
            ("limit", "100"),
        ]
        adopted: dict[str, str] = {}
        wanted = set(segment_ids)
        for run in await ctx.upstream.list_all("runs", sandbox=ctx.sandbox, params=params):
            for audience in _run_audiences(run):
                if audience in wanted and audience not in adopted:
                    adopted[audience] = str(run.get("id"))
        return adopted


def _started_runs(answer: Mapping[str, Any], pending: Sequence[str]) -> dict[str, str]:
    started: dict[str, str] = {}
    for order in answer.get("order") or []:
        if not isinstance(order, Mapping):
            continue
        segment, status_url = order.get("segment"), order.get("statusURL")
        if isinstance(segment, str) and isinstance(status_url, str) and segment in pending:
            started[segment] = status_url.rstrip("/").rsplit("/", 1)[-1]
    unanswered = [s for s in pending if s not in started]
    if unanswered:
        raise StepFailed(
            "Export not confirmed",
            f"Adobe's answer named no run for {', '.join(unanswered[:10])}",
            type_="export-refused",
        )
    return started


def _run_audiences(run: Mapping[str, Any]) -> list[str]:
    records = (run.get("metrics") or {}).get("recordSummary") or {}
    audiences: list[str] = []
    for summary in [*(records.get("targetSummaries") or []), *(records.get("sourceSummaries") or [])]:
        for entity in (summary or {}).get("entitySummaries") or []:
            entity_id = (entity or {}).get("id")
            if isinstance(entity_id, str) and entity_id.startswith(SEGMENT_PREFIX):
                audiences.append(entity_id.removeprefix(SEGMENT_PREFIX))
    return audiences


def _result(segment_ids: Sequence[str], runs: Mapping[str, str], joined: set[str]) -> dict[str, Any]:
    """The operation's result: each run with the audiences it exports, and whether they joined it."""
    by_run: dict[str, list[str]] = {}
    for segment_id in segment_ids:
        by_run.setdefault(runs[segment_id], []).append(segment_id)
    return {
        "runs": [
            {"id": run_id, "segments": segments, "joined": all(s in joined for s in segments)}
            for run_id, segments in by_run.items()
        ],
        "startedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


EXPORT_STEPS: tuple[SagaStep, ...] = (StartExport(),)

"""Export runs as the gateway shows them (contract §12), from Adobe's run documents (flow-service.md
Part 3 §3.3 and Part 2 §4.7).

Adobe's documents disagree with each other: statuses come as `Success`, `success`, `Failed`,
`Processing`, `Waiting` (and a Sources document's `IN_PROGRESS`, `COMPLETED`...); counts sit under
`recordSummary` directly or under its `sourceSummaries`; per-audience counts under
`targetSummaries[].entitySummaries[]` with ids `segment:<id>`. Everything is read defensively and
normalised here, in one place: a status the gateway does not know is still processing (never a
success it cannot prove), a count that is missing is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    PROCESSING = "processing"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED)


class RunTrigger(StrEnum):
    SCHEDULED = "scheduled"
    ADHOC = "adhoc"


# Adobe's spellings, compared without case, spaces, dashes or underscores.
_STATUSES = {
    "success": RunStatus.SUCCEEDED,
    "succeeded": RunStatus.SUCCEEDED,
    "completed": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "failure": RunStatus.FAILED,
    "processing": RunStatus.PROCESSING,
    "inprogress": RunStatus.PROCESSING,
    "running": RunStatus.PROCESSING,
    "waiting": RunStatus.WAITING,
    "queued": RunStatus.WAITING,
    "scheduled": RunStatus.WAITING,
}

SEGMENT_PREFIX = "segment:"


def run_status(value: Any) -> RunStatus:
    """Adobe's status text, normalised; unknown (or partial: PARTIAL_SUCCESS) is still processing."""
    if not isinstance(value, str):
        return RunStatus.PROCESSING
    key = value.lower().replace("_", "").replace("-", "").replace(" ", "")
    return _STATUSES.get(key, RunStatus.PROCESSING)


@dataclass(frozen=True, slots=True)
class MirroredRun:
    """One run of an activation's flow: the columns it is kept and ordered by, and its view."""

    id: str
    flow_id: str
    status: RunStatus
    started_at: datetime
    completed_at: datetime | None
    view: dict[str, Any]


def normalize_run(doc: Mapping[str, Any], trigger: RunTrigger, *, seen_at: datetime) -> MirroredRun:
    """``seen_at`` stands in for a start time the run does not give (a run still waiting)."""
    metrics = _mapping(doc.get("metrics"))
    duration = _mapping(metrics.get("durationSummary"))
    records = _mapping(metrics.get("recordSummary"))
    sources = [_mapping(s) for s in _list(records.get("sourceSummaries"))]
    status_summary = _mapping(metrics.get("statusSummary"))
    status = run_status(status_summary.get("status", doc.get("status")))
    started_at = _from_epoch_ms(duration.get("startedAtUTC")) or _from_iso(doc.get("createdAt")) or seen_at
    completed_at = _from_epoch_ms(duration.get("completedAtUTC")) if status.finished else None
    received = _count(records, "inputRecordCount") or sum(_count(s, "inputRecordCount") for s in sources)
    skipped = _count(records, "skippedRecordCount") or sum(_count(s, "skippedRecordCount") for s in sources)
    failed_info = [_mapping(i) for i in _list(records.get("failedInfo"))]
    failed = _count(records, "failedRecordCount") or sum(_count(i, "count") for i in failed_info)
    audiences = _audiences([*_list(records.get("targetSummaries")), *sources])
    exported = _count(records, "outputRecordCount") or sum(a["exported"] for a in audiences)
    view: dict[str, Any] = {
        "id": str(doc.get("id")),
        "status": status.value,
        "trigger": trigger.value,
        "startedAt": _iso(started_at),
        "completedAt": _iso(completed_at),
        "records": {"received": received, "exported": exported, "skipped": skipped, "failed": failed},
        "skippedReasons": [
            {"code": _text(i.get("code")), "message": _text(i.get("message")), "count": _count(i, "count")}
            for i in (_mapping(i) for i in _list(records.get("skippedInfo")))
        ],
        "audiences": audiences,
        "files": _count(_mapping(metrics.get("fileSummary")), "outputFileCount"),
        "bytes": _count(_mapping(metrics.get("sizeSummary")), "outputBytes"),
        "errors": [
            {"code": _text(e.get("code")), "message": _text(e.get("message"))}
            for e in (_mapping(e) for e in [*_list(status_summary.get("errors")), *failed_info])
        ],
    }
    return MirroredRun(
        id=str(doc.get("id")),
        flow_id=str(doc.get("flowId")),
        status=status,
        started_at=started_at,
        completed_at=completed_at,
        view=view,
    )


def placeholder_run(run_id: str, started_at: str | None) -> dict[str, Any]:
    """A run an export started, as shown until Adobe lists it (mirroring then fills it in)."""
    return {
        "id": run_id,
        "status": RunStatus.PROCESSING.value,
        "trigger": RunTrigger.ADHOC.value,
        "startedAt": started_at,
        "completedAt": None,
        "records": {"received": 0, "exported": 0, "skipped": 0, "failed": 0},
        "skippedReasons": [],
        "audiences": [],
        "files": 0,
        "bytes": 0,
        "errors": [],
    }


def _audiences(summaries: Iterable[Any]) -> list[dict[str, Any]]:
    """Exported records per audience, summed over the summaries that name it (first-seen order)."""
    exported: dict[str, int] = {}
    for summary in summaries:
        for entity in _list(_mapping(summary).get("entitySummaries")):
            entity = _mapping(entity)
            entity_id = entity.get("id")
            if not isinstance(entity_id, str) or not entity_id.startswith(SEGMENT_PREFIX):
                continue
            audience = entity_id.removeprefix(SEGMENT_PREFIX)
            exported[audience] = exported.get(audience, 0) + _count(entity, "outputRecordCount")
    return [{"id": audience, "exported": count} for audience, count in exported.items()]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _count(source: Mapping[str, Any], key: str) -> int:
    value = source.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _from_epoch_ms(value: Any) -> datetime | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def _from_iso(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch_ms(value)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None

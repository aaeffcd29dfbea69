"""Adobe's run documents, as the gateway shows them (domain/runs.py): every status spelling, both
shapes of the record counts, per-audience counts, and what a sparse or odd document becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.domain.runs import RunStatus, RunTrigger, normalize_run, run_status

SEEN = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
START_MS = int(datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("spelling", "status"),
    [
        ("Success", RunStatus.SUCCEEDED),
        ("success", RunStatus.SUCCEEDED),
        ("COMPLETED", RunStatus.SUCCEEDED),
        ("Failed", RunStatus.FAILED),
        ("failed", RunStatus.FAILED),
        ("Processing", RunStatus.PROCESSING),
        ("IN_PROGRESS", RunStatus.PROCESSING),
        ("Waiting", RunStatus.WAITING),
        ("QUEUED", RunStatus.WAITING),
        ("PARTIAL_SUCCESS", RunStatus.PROCESSING),  # not a success the gateway can prove
        ("something new", RunStatus.PROCESSING),
        (None, RunStatus.PROCESSING),
        (3, RunStatus.PROCESSING),
    ],
)
def test_status_spellings(spelling: Any, status: RunStatus) -> None:
    assert run_status(spelling) == status


def adobe_run(**metrics: Any) -> dict[str, Any]:
    return {
        "id": "run-1",
        "flowId": "flow-1",
        "createdAt": START_MS,
        "metrics": {
            "durationSummary": {"startedAtUTC": START_MS, "completedAtUTC": START_MS + 600_000},
            "sizeSummary": {"outputBytes": 5120},
            "fileSummary": {"outputFileCount": 2},
            "statusSummary": {"status": "Success", "errors": []},
            **metrics,
        },
    }


def test_a_run_with_target_summaries() -> None:
    doc = adobe_run(
        recordSummary={
            "inputRecordCount": 120,
            "outputRecordCount": 100,
            "skippedRecordCount": 20,
            "skippedInfo": [{"code": "ACTIVATION_BATCH-0000-SKIP", "message": "Records didn't match", "count": 20}],
            "targetSummaries": [
                {
                    "entitySummaries": [
                        {"id": "segment:a", "outputRecordCount": 60},
                        {"id": "segment:b", "outputRecordCount": 40},
                    ]
                }
            ],
        }
    )
    run = normalize_run(doc, RunTrigger.SCHEDULED, seen_at=SEEN)
    assert run.status == RunStatus.SUCCEEDED
    assert run.started_at == datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert run.view == {
        "id": "run-1",
        "status": "succeeded",
        "trigger": "scheduled",
        "startedAt": "2026-12-03T12:00:00Z",
        "completedAt": "2026-12-03T12:10:00Z",
        "records": {"received": 120, "exported": 100, "skipped": 20, "failed": 0},
        "skippedReasons": [{"code": "ACTIVATION_BATCH-0000-SKIP", "message": "Records didn't match", "count": 20}],
        "audiences": [{"id": "a", "exported": 60}, {"id": "b", "exported": 40}],
        "files": 2,
        "bytes": 5120,
        "errors": [],
    }


def test_the_older_shape_with_source_summaries_and_a_failure() -> None:
    doc = adobe_run(
        recordSummary={
            "sourceSummaries": [
                {
                    "inputRecordCount": 10,
                    "skippedRecordCount": 1,
                    "entitySummaries": [{"id": "segment:a", "outputRecordCount": 4}],
                },
                {
                    "inputRecordCount": 5,
                    "entitySummaries": [{"id": "segment:a", "outputRecordCount": 3}, {"id": "other"}],
                },
            ],
            "failedInfo": [{"code": "X-1", "message": "bad row", "count": 2}],
        },
        statusSummary={
            "status": "failed",
            "errors": [{"code": "ACTIVATION_BATCH-0000-FAILED", "message": "Job aborted."}],
        },
    )
    run = normalize_run(doc, RunTrigger.ADHOC, seen_at=SEEN)
    assert run.status == RunStatus.FAILED
    assert run.view["trigger"] == "adhoc"
    assert run.view["records"] == {"received": 15, "exported": 7, "skipped": 1, "failed": 2}
    assert run.view["audiences"] == [{"id": "a", "exported": 7}]
    assert run.view["errors"] == [
        {"code": "ACTIVATION_BATCH-0000-FAILED", "message": "Job aborted."},
        {"code": "X-1", "message": "bad row"},
    ]


def test_a_sparse_processing_run() -> None:
    run = normalize_run(
        {"id": "r", "flowId": "f", "metrics": {"statusSummary": {"status": "Processing"}}},
        RunTrigger.SCHEDULED,
        seen_at=SEEN,
    )
    assert run.status == RunStatus.PROCESSING
    assert run.started_at == SEEN  # no start given: when it was first seen
    assert run.completed_at is None
    assert run.view["records"] == {"received": 0, "exported": 0, "skipped": 0, "failed": 0}
    assert run.view["completedAt"] is None


def test_odd_values_are_read_defensively() -> None:
    doc = {
        "id": "r",
        "flowId": "f",
        "metrics": {
            "recordSummary": {"inputRecordCount": "12", "skippedRecordCount": -3, "outputRecordCount": True},
            "statusSummary": "x",
        },
    }
    run = normalize_run(doc, RunTrigger.SCHEDULED, seen_at=SEEN)
    assert run.view["records"] == {"received": 0, "exported": 0, "skipped": 0, "failed": 0}
    assert run.status == RunStatus.PROCESSING

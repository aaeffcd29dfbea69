"""When a create may have left copies upstream, and until when one may still appear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.duplicates import outcome_was_unknown, settled_at
from app.domain.lifecycle import StepStatus
from app.domain.model import StepState

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def state(status: StepStatus, attempts: int, upstream_status: int | None = None, at: datetime = T0) -> StepState:
    error = {"upstreamStatus": upstream_status} if upstream_status is not None else None
    return StepState(name="create_flow", position=5, status=status, attempts=attempts, error=error, attempted_at=at)


@pytest.mark.parametrize(
    ("step", "unknown"),
    [
        (state(StepStatus.PENDING, 0), False),  # never sent
        (state(StepStatus.SUCCEEDED, 1), False),  # its only create was answered
        (state(StepStatus.COMPENSATED, 1), False),
        (state(StepStatus.FAILED, 1, 400), False),  # refused: nothing committed
        (state(StepStatus.SUCCEEDED, 2), True),  # a retry follows an attempt that did not succeed
        (state(StepStatus.RUNNING, 1), True),  # in flight when the run ended
        (state(StepStatus.FAILED, 1, 504), True),  # the backend may carry on
        (state(StepStatus.FAILED, 1, 429), True),
        (state(StepStatus.FAILED, 1), True),  # no answer at all
    ],
)
def test_outcome_was_unknown(step: StepState, unknown: bool) -> None:
    assert outcome_was_unknown(step) is unknown


def test_settled_at_is_the_latest_unknown_attempt_plus_the_window() -> None:
    window = timedelta(seconds=60)
    early = state(StepStatus.SUCCEEDED, 2, at=T0)
    late = state(StepStatus.SUCCEEDED, 3, at=T0 + timedelta(seconds=10))
    answered = state(StepStatus.SUCCEEDED, 1, at=T0 + timedelta(seconds=30))
    assert settled_at([early, late, answered], window) == T0 + timedelta(seconds=70)
    assert settled_at([answered], window) is None, "nothing can commit late: no wait"

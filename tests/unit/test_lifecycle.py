"""The activation lifecycle of contract §3: allowed transitions only."""

from __future__ import annotations

import pytest

from app.domain.lifecycle import (
    TERMINAL_STATUSES,
    ActivationStatus,
    InvalidTransition,
    can_transition,
    check_transition,
    sources_of,
)

S = ActivationStatus
ALLOWED = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.ROLLING_BACK),
    (S.PENDING, S.FAILED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.ROLLING_BACK),
    (S.FAILED, S.ROLLING_BACK),
    (S.SUCCEEDED, S.ROLLING_BACK),
    (S.ROLLING_BACK, S.ROLLED_BACK),
    (S.ROLLING_BACK, S.ROLLBACK_FAILED),
    (S.ROLLBACK_FAILED, S.ROLLING_BACK),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_exactly_the_documented_transitions_are_allowed(current: S, target: S) -> None:
    allowed = (current, target) in ALLOWED
    assert can_transition(current, target) is allowed
    if allowed:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(current, target)


def test_rolled_back_is_final_and_terminal_statuses_are_the_four() -> None:
    assert not any(can_transition(S.ROLLED_BACK, t) for t in S)
    assert {S.SUCCEEDED, S.FAILED, S.ROLLED_BACK, S.ROLLBACK_FAILED} == TERMINAL_STATUSES
    assert sources_of(S.ROLLING_BACK) == {S.PENDING, S.RUNNING, S.FAILED, S.SUCCEEDED, S.ROLLBACK_FAILED}

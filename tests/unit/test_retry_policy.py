"""The retry policy: which errors are retried, backoff bounds, Retry-After (seconds or HTTP date)."""

from __future__ import annotations

import email.utils
import time

import pytest
from tenacity import RetryCallState

from app.adapters.flowservice.errors import FlowServiceError, UpstreamUnavailable, parse_retry_after
from app.domain.retry import RetryPolicy, is_retryable


def error(status: int, retry_after: float | None = None) -> FlowServiceError:
    return FlowServiceError(
        status=status, code=None, message="x", request_id=None, method="POST", path="/flows", retry_after=retry_after
    )


def state_after(exc: BaseException, attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=RetryPolicy().retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_retryable(error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 422])
def test_other_client_errors_are_not(status: int) -> None:
    assert not is_retryable(error(status))


def test_network_errors_are_retried() -> None:
    assert is_retryable(UpstreamUnavailable(method="POST", path="/flows", reason="timeout"))
    assert not is_retryable(ValueError("a bug"))


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.2, max_delay=5.0)
    delays = [policy.delay(state_after(error(503), attempt)) for attempt in range(1, 30) for _ in range(5)]
    assert all(0 <= d <= 5.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 10, "jittered, not a fixed schedule"
    late = [policy.delay(state_after(error(503), 20)) for _ in range(50)]
    assert max(late) > 2.5, "grows towards the cap"


def test_retry_after_is_honoured_and_clamped() -> None:
    policy = RetryPolicy(retry_after_max=10.0)
    assert policy.delay(state_after(error(429, retry_after=3), 1)) == 3
    assert policy.delay(state_after(error(429, retry_after=3600), 1)) == 10.0


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    in_30s = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = parse_retry_after(in_30s)
    assert parsed is not None and 25 <= parsed <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(past) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None

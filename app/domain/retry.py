"""Retry policy for upstream calls: 429/5xx and network errors, capped and jittered exponential
backoff, Retry-After honoured (clamped); everything else fails at once."""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from .ports import UpstreamError


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 30.0
    retry_after_max: float = 60.0

    def delay(self, retry_state: RetryCallState) -> float:
        backoff = wait_random_exponential(multiplier=self.base_delay, max=self.max_delay)(retry_state)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # The server knows best when it can take us again, but never wait unboundedly.
            return min(max(float(retry_after), 0.0), self.retry_after_max)
        return float(backoff)

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self.delay,
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )

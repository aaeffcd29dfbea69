"""What the saga reports about its progress, for metrics. The domain only knows this protocol; the
Prometheus implementation lives in app/metrics.py and is wired in app/runtime.py."""

from __future__ import annotations

from typing import Protocol


class SagaObserver(Protocol):
    def step_finished(self, step: str, outcome: str, seconds: float) -> None:
        """A step left the saga's hands: ``outcome`` is succeeded, failed, compensated or
        compensation_failed; ``seconds`` covers all its attempts, backoff included."""

    def step_retried(self, step: str, reason: str) -> None:
        """An attempt of ``step`` failed with a retryable error (``reason``: upstream status or
        ``unavailable``); the retry policy decides whether another attempt follows."""

    def activation_finished(self, status: str, seconds: float) -> None:
        """An activation reached a terminal status, ``seconds`` after it was accepted."""

    def duplicate_removed(self, kind: str) -> None:
        """A copy of a created resource (``kind``: the Flow Service collection) that a late commit
        had left upstream was found and deleted."""

    def compensation_retried(self) -> None:
        """An automatic retry of a failed compensation started."""

    def run_crashed(self) -> None:
        """A run of an activation ended in an unexpected exception."""

    def operation_finished(self, kind: str, status: str, seconds: float) -> None:
        """An operation other than create (pause, resume, …) ended as ``status``, ``seconds`` after it started."""

    def workflow_unavailable(self, kind: str) -> None:
        """An operation's workflow version is not in this build: it was left for another process."""


class NullSagaObserver:
    """Observes nothing: the default when no metrics are wanted (e.g. in unit tests)."""

    def step_finished(self, step: str, outcome: str, seconds: float) -> None:
        pass

    def step_retried(self, step: str, reason: str) -> None:
        pass

    def activation_finished(self, status: str, seconds: float) -> None:
        pass

    def duplicate_removed(self, kind: str) -> None:
        pass

    def compensation_retried(self) -> None:
        pass

    def run_crashed(self) -> None:
        pass

    def operation_finished(self, kind: str, status: str, seconds: float) -> None:
        pass

    def workflow_unavailable(self, kind: str) -> None:
        pass

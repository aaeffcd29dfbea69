"""Runs one claimed activation: the forward steps as a dependency graph (independent branches run
concurrently), then, on failure or request, compensation in reverse order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from app.adapters.crypto import CredentialCipher
from app.adapters.db.repository import ActivationRepository
from app.adapters.flowservice import FlowServiceClient, call_context, call_events
from app.adapters.flowservice.errors import UpstreamError

from .catalog import DestinationCatalog
from .errors import StepFailed
from .lifecycle import ActivationStatus, StepStatus
from .model import Activation, Lease, LeaseLost
from .observer import NullSagaObserver, SagaObserver
from .retry import RetryPolicy
from .steps import SAGA_STEPS, SagaStep, StepContext
from .upstream import LeasedFlowService

log = structlog.get_logger(__name__)

PROBLEM_BASE = "urn:activation-gateway:problem:"


@dataclass(frozen=True, slots=True)
class StepFailure:
    step: str
    problem: dict[str, Any]


class SagaRunner:
    def __init__(
        self,
        repository: ActivationRepository,
        client: FlowServiceClient,
        catalog: DestinationCatalog,
        cipher: CredentialCipher,
        *,
        retry: RetryPolicy,
        auto_compensate: bool = True,
        steps: Sequence[SagaStep] = SAGA_STEPS,
        observer: SagaObserver | None = None,
    ) -> None:
        self._repo = repository
        self._client = client
        self._catalog = catalog
        self._cipher = cipher
        self._retry = retry
        self._auto_compensate = auto_compensate
        self._steps = tuple(steps)
        self._observer: SagaObserver = observer or NullSagaObserver()
        self._stopping = asyncio.Event()

    def stop_at_next_boundary(self) -> None:
        """Graceful shutdown: finish the steps in flight, start no new one."""
        self._stopping.set()

    async def run(self, lease: Lease) -> ActivationStatus:
        # The upstream calls of this run are buffered here and written with the next outcome the
        # saga records (one transaction per step instead of one more per call); the step's
        # start was recorded before any of them was sent. See adapters/flowservice/observe.py.
        token = call_events.set([])
        try:
            return await self._run(lease)
        finally:
            call_events.reset(token)

    async def _run(self, lease: Lease) -> ActivationStatus:
        activation = await self._repo.load(lease)
        status = activation.status
        if status == ActivationStatus.PENDING:
            target = ActivationStatus.ROLLING_BACK if activation.rollback_requested_at else ActivationStatus.RUNNING
            await self._repo.set_status(lease, status, target)
            status = target
        if status == ActivationStatus.RUNNING:
            status = await self._forward(lease, activation)
        if status == ActivationStatus.ROLLING_BACK and not self._stopping.is_set():
            status = await self._compensate(lease)
        if status.terminal:
            # From acceptance to now: what the caller waited, queueing and earlier runs included.
            waited = (datetime.now(UTC) - activation.created_at).total_seconds()
            self._observer.activation_finished(status.value, waited)
        return status

    # ------------------------------------------------------------------ forward
    async def _forward(self, lease: Lease, activation: Activation) -> ActivationStatus:
        # The activation stays in memory for the whole run, updated as steps finish: while we hold
        # the lease nobody else changes it, except for a rollback request, which every fenced write
        # reports back (update_step's result). No reload per round.
        while not self._stopping.is_set():
            if activation.rollback_requested_at is not None:
                await self._repo.set_status(
                    lease,
                    ActivationStatus.RUNNING,
                    ActivationStatus.ROLLING_BACK,
                    event={"reason": "requested"},
                    upstream_events=_take_events,
                )
                return ActivationStatus.ROLLING_BACK
            done = {name for name, s in activation.steps.items() if s.status == StepStatus.SUCCEEDED}
            ready = [s for s in self._steps if s.name not in done and all(d in done for d in s.depends_on)]
            if not ready:
                await self._repo.set_status(
                    lease, ActivationStatus.RUNNING, ActivationStatus.SUCCEEDED, upstream_events=_take_events
                )
                return ActivationStatus.SUCCEEDED
            try:
                async with asyncio.TaskGroup() as group:  # a LeaseLost in one branch cancels the other
                    tasks = [group.create_task(self._run_step(lease, activation, step)) for step in ready]
            except* LeaseLost as lost:
                # TaskGroup wraps errors in a group; the worker expects the plain LeaseLost.
                raise lost.exceptions[0] from None
            failures = [f for f in (t.result() for t in tasks) if f is not None]
            if failures:
                return await self._fail(lease, failures[0])
        return ActivationStatus.RUNNING

    async def _run_step(self, lease: Lease, activation: Activation, step: SagaStep) -> StepFailure | None:
        # Each step runs in a task of its own (TaskGroup copies the context), so this binding
        # labels every log line of this step and ends with the task.
        structlog.contextvars.bind_contextvars(step=step.name)
        started = time.monotonic()
        try:
            async for attempt in self._retry.retrying():
                with attempt:
                    number = await self._repo.start_step_attempt(lease, step.name, StepStatus.RUNNING)
                    activation.steps[step.name].attempts = number  # _fail reads it to decide on compensation
                    ctx = self._context(lease, activation, number)
                    token = call_context.set(
                        {
                            "activation_id": str(activation.id),
                            "step": step.name,
                            "attempt": number,
                            "epoch": lease.epoch,
                        }
                    )
                    try:
                        result = await step.forward(ctx)
                    except UpstreamError as exc:
                        if exc.retryable:
                            self._observer.step_retried(step.name, _retry_reason(exc))
                            await self._repo.add_event(
                                activation.id,
                                "retry",
                                step.name,
                                {"attempt": number, "error": str(exc)},
                                epoch=lease.epoch,
                                upstream_events=_take_events,
                            )
                        raise
                    finally:
                        call_context.reset(token)
        except StepFailed as exc:
            self._observer.step_finished(step.name, StepStatus.FAILED.value, time.monotonic() - started)
            return await self._record_failure(lease, step, _problem_from_domain(step.name, exc))
        except UpstreamError as exc:
            self._observer.step_finished(step.name, StepStatus.FAILED.value, time.monotonic() - started)
            return await self._record_failure(lease, step, _problem_from_upstream(step.name, exc))
        self._observer.step_finished(step.name, StepStatus.SUCCEEDED.value, time.monotonic() - started)
        finished_at = datetime.now(UTC)
        rollback_requested = await self._repo.update_step(
            lease,
            step.name,
            status=StepStatus.SUCCEEDED.value,
            resource_id=result.resource_id,
            finished_at=finished_at,
            error=None,
            activation_values=result.activation_values or None,
            event={"status": StepStatus.SUCCEEDED.value, "resourceId": result.resource_id},
            upstream_events=_take_events,
        )
        # Mirror the write in memory (the columns of activation_values are Activation fields).
        state = activation.steps[step.name]
        state.status, state.resource_id, state.finished_at, state.error = (
            StepStatus.SUCCEEDED,
            result.resource_id,
            finished_at,
            None,
        )
        for column, value in (result.activation_values or {}).items():
            setattr(activation, column, value)
        if rollback_requested and activation.rollback_requested_at is None:
            activation.rollback_requested_at = finished_at  # acted upon at the next round
        log.info("step succeeded", activation_id=str(activation.id), step=step.name, resource_id=result.resource_id)
        return None

    async def _record_failure(self, lease: Lease, step: SagaStep, problem: dict[str, Any]) -> StepFailure:
        await self._repo.update_step(
            lease,
            step.name,
            status=StepStatus.FAILED.value,
            finished_at=datetime.now(UTC),
            error=problem,
            event={"status": StepStatus.FAILED.value, "error": problem},
            upstream_events=_take_events,
        )
        log.warning("step failed", activation_id=str(lease.activation_id), step=step.name, error=problem["detail"])
        return StepFailure(step=step.name, problem=problem)

    async def _fail(self, lease: Lease, failure: StepFailure) -> ActivationStatus:
        activation = await self._repo.load(lease)
        # Compensate only if some request that creates a resource was ever sent: otherwise there
        # is nothing upstream to undo and the activation stays `failed` with its error.
        may_have_created = any(activation.steps[s.name].attempts for s in self._steps if s.kind is not None)
        if self._auto_compensate and may_have_created:
            await self._repo.set_status(
                lease,
                ActivationStatus.RUNNING,
                ActivationStatus.FAILED,
                ActivationStatus.ROLLING_BACK,
                error=failure.problem,
                event={"reason": "automatic compensation"},
                upstream_events=_take_events,
            )
            return ActivationStatus.ROLLING_BACK
        await self._repo.set_status(
            lease,
            ActivationStatus.RUNNING,
            ActivationStatus.FAILED,
            error=failure.problem,
            upstream_events=_take_events,
        )
        return ActivationStatus.FAILED

    # ------------------------------------------------------------------ compensation
    async def _compensate(self, lease: Lease) -> ActivationStatus:
        activation = await self._repo.load(lease)
        orphans: list[str] = []
        for step in reversed(self._steps):
            state = activation.steps[step.name]
            if step.kind is None or state.status in (StepStatus.COMPENSATED, StepStatus.SKIPPED):
                if state.status in (StepStatus.PENDING, StepStatus.RUNNING):
                    await self._repo.update_step(lease, step.name, status=StepStatus.SKIPPED.value)
                continue
            if state.attempts == 0:
                await self._repo.update_step(lease, step.name, status=StepStatus.SKIPPED.value)
                continue
            started = time.monotonic()
            with structlog.contextvars.bound_contextvars(step=step.name):
                leftover = await self._compensate_step(lease, activation, step)
            outcome = "compensation_failed" if leftover else StepStatus.COMPENSATED.value
            self._observer.step_finished(step.name, outcome, time.monotonic() - started)
            if leftover:
                orphans.append(leftover)
        if orphans:
            await self._repo.set_status(
                lease,
                ActivationStatus.ROLLING_BACK,
                ActivationStatus.ROLLBACK_FAILED,
                keep_error=True,
                event={"orphans": orphans},
                upstream_events=_take_events,
            )
            return ActivationStatus.ROLLBACK_FAILED
        await self._repo.set_status(
            lease,
            ActivationStatus.ROLLING_BACK,
            ActivationStatus.ROLLED_BACK,
            keep_error=True,
            upstream_events=_take_events,
        )
        return ActivationStatus.ROLLED_BACK

    async def _compensate_step(self, lease: Lease, activation: Activation, step: SagaStep) -> str | None:
        """Delete what the step created (or may have created); returns the id left behind, if any."""
        state = activation.steps[step.name]
        resource_id = state.resource_id
        try:
            async for attempt in self._retry.retrying():
                with attempt:
                    # `attempts` counts forward attempts; compensation attempts show in the events.
                    number = attempt.retry_state.attempt_number
                    await self._repo.update_step(
                        lease, step.name, status=StepStatus.COMPENSATING.value, upstream_events=_take_events
                    )
                    ctx = self._context(lease, activation, state.attempts + number)
                    token = call_context.set(
                        {
                            "activation_id": str(activation.id),
                            "step": step.name,
                            "attempt": number,
                            "epoch": lease.epoch,
                            "compensation": True,
                        }
                    )
                    try:
                        if resource_id is None:
                            # Its creation was in flight: Adobe may have the resource anyway.
                            resource_id = await step.find_created(ctx)
                        if resource_id is not None:
                            await step.compensate(ctx, resource_id)
                    finally:
                        call_context.reset(token)
        except UpstreamError as exc:
            problem = _problem_from_upstream(step.name, exc)
            await self._repo.update_step(
                lease,
                step.name,
                status=StepStatus.FAILED.value,
                resource_id=resource_id,
                error=problem,
                finished_at=datetime.now(UTC),
                event={"status": "compensation_failed", "error": problem},
                upstream_events=_take_events,
            )
            return resource_id or f"unknown {step.kind} of {step.name}"
        await self._repo.update_step(
            lease,
            step.name,
            status=StepStatus.COMPENSATED.value,
            resource_id=resource_id,
            finished_at=datetime.now(UTC),
            event={"status": StepStatus.COMPENSATED.value, "resourceId": resource_id},
            upstream_events=_take_events,
        )
        return None

    def _context(self, lease: Lease, activation: Activation, attempt: int) -> StepContext:
        return StepContext(
            activation=activation,
            upstream=LeasedFlowService(self._client, lease),
            catalog=self._catalog,
            cipher=self._cipher,
            attempt=attempt,
        )


def _take_events() -> list[dict[str, Any]]:
    """The upstream-call rows buffered so far (in the order the calls finished), emptied. Passed
    uncalled to the repository, which calls it once its transaction holds the activation row (see
    repository.EventSource). Nothing awaits in between, so no row is taken twice."""
    buffer = call_events.get()
    if not buffer:
        return []
    rows = buffer[:]
    buffer.clear()
    return rows


def _retry_reason(exc: UpstreamError) -> str:
    """A bounded metrics label: the upstream status, or 'unavailable' for network errors."""
    status = getattr(exc, "status", None)
    return str(status) if isinstance(status, int) else "unavailable"


def _problem_from_domain(step: str, exc: StepFailed) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + exc.type,
        "title": exc.title,
        "detail": exc.detail,
        "step": step,
        **exc.extra,
    }


def _problem_from_upstream(step: str, exc: UpstreamError) -> dict[str, Any]:
    upstream = exc.to_problem()
    status = upstream.get("upstreamStatus")
    return {
        "type": PROBLEM_BASE + "upstream-error",
        "title": "Adobe Flow Service call failed",
        "status": 502,
        "detail": f"step {step}: {upstream['upstreamCall']} failed"
        + (f" with {status} {upstream.get('upstreamCode') or ''}".rstrip() if status else "")
        + f": {upstream.get('upstreamMessage')}",
        "step": step,
        **upstream,
    }

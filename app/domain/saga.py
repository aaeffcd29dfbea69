"""Runs one claimed activation: the forward steps as a dependency graph (independent branches run
concurrently), then, on failure or request, compensation in reverse order."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from .catalog import DestinationCatalog
from .duplicates import Duplicate
from .errors import StepFailed
from .lifecycle import ActivationStatus, StepStatus, forward_complete
from .model import Activation, Lease, LeaseLost
from .observer import NullSagaObserver, SagaObserver
from .operations import OperationRunner
from .ports import Cipher, FlowService, SagaStore, StepWrite, UpstreamError
from .problems import PROBLEM_BASE, problem_from_domain, problem_from_upstream
from .retry import RetryPolicy
from .steps import SagaStep, StepContext, StepResult
from .upstream import LeasedFlowService, take_calls
from .workflows import WORKFLOWS, OperationKind, Workflow, Workflows

log = structlog.get_logger(__name__)


class WorkflowUnavailable(Exception):
    """The workflow version an operation was created with is not in this build (see workflows.py)."""


@dataclass(frozen=True, slots=True)
class StepFailure:
    step: str | None  # None: the run itself failed (see record_crash)
    problem: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CompensationRetries:
    """Failed compensations are retried in the background, with a long, capped, jittered backoff:
    an orphan upstream (perhaps holding a customer's secret) is worth more than the calls."""

    base_seconds: float = 60.0
    max_seconds: float = 6 * 3600.0

    def delay(self, rounds_so_far: int) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** min(rounds_so_far, 30))
        return random.uniform(ceiling / 2, ceiling)  # jitter: orphans of one outage spread out


class SagaRunner:
    def __init__(
        self,
        store: SagaStore,
        client: FlowService,
        catalog: DestinationCatalog,
        cipher: Cipher,
        *,
        retry: RetryPolicy,
        auto_compensate: bool = True,
        operations: OperationRunner,
        workflows: Workflows = WORKFLOWS,
        observer: SagaObserver | None = None,
        late_commit_window: timedelta = timedelta(seconds=60),
        crash_limit: int = 5,
        compensation_retries: CompensationRetries | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._catalog = catalog
        self._cipher = cipher
        self._retry = retry
        self._auto_compensate = auto_compensate
        self._workflows = workflows
        self._operations = operations
        self._observer: SagaObserver = observer or NullSagaObserver()
        self._stopping = asyncio.Event()
        self._late_commit_window = late_commit_window
        self._crash_limit = crash_limit
        self._compensation_retries = compensation_retries or CompensationRetries()

    def stop_at_next_boundary(self) -> None:
        """Graceful shutdown: finish the steps in flight, start no new one."""
        self._stopping.set()

    def definition(self, lease: Lease) -> Workflow:
        """The create workflow of the version the activation was accepted with (see workflows.py;
        the claim takes only activations whose version this build has)."""
        definition = self._workflows.get(OperationKind.CREATE, lease.workflow_version)
        if definition is None:
            raise WorkflowUnavailable(f"create workflow v{lease.workflow_version} is not in this build")
        return definition

    async def run(self, lease: Lease) -> ActivationStatus:
        # The upstream calls of this run are recorded on its lease and written with the next
        # outcome the saga records (one statement per step instead of one more per call); the
        # step's start was recorded before any of them was sent. See upstream.py.
        definition = self.definition(lease)
        first_steps = () if self._stopping.is_set() else definition.first_steps
        activation, started = await self._store.begin_run(lease, first_steps=first_steps)
        status = activation.status
        if status == ActivationStatus.RUNNING:
            status = await self._forward(lease, definition, activation, started)
        if status == ActivationStatus.SUCCEEDED and activation.queued_operations and not self._stopping.is_set():
            # Claimed for the next operation in the activation's queue (pause, resume, …).
            await self._operations.run_next(lease, activation)
            return status
        if status == ActivationStatus.ROLLBACK_FAILED and activation.compensation_retry_at is not None:
            # Claimed because its automatic retry is due (see CompensationRetries).
            self._observer.compensation_retried()
            status = await self._set_status(
                lease,
                ActivationStatus.ROLLBACK_FAILED,
                ActivationStatus.ROLLING_BACK,
                keep_error=True,
                event={"reason": "automatic retry", "round": activation.compensation_rounds},
            )
        if status == ActivationStatus.ROLLING_BACK and not self._stopping.is_set():
            status = await self._compensate(lease)
        if status.terminal:
            # From acceptance to now: what the caller waited, queueing and earlier runs included.
            waited = (datetime.now(UTC) - activation.created_at).total_seconds()
            self._observer.activation_finished(status.value, waited)
        return status

    async def _write(self, lease: Lease, step: str | None = None, **kwargs: Any) -> StepWrite:
        """A fenced step write carrying the upstream-call rows buffered so far. The run's writes
        are serialized by the lease's lock, so the rows reach the timeline in call order."""
        async with lease.writes:
            return await self._write_locked(lease, step, **kwargs)

    async def _write_locked(
        self,
        lease: Lease,
        step: str | None = None,
        *,
        event: dict[str, Any] | None = None,
        event_type: str = "step",
        notes: Sequence[dict[str, Any]] = (),
        **kwargs: Any,
    ) -> StepWrite:
        rows = take_calls(lease)
        if event is not None:
            rows.append({"type": event_type, "step": step, "data": event})
        rows.extend(notes)
        return await self._store.write_step(lease, step, events=rows, **kwargs)

    async def _set_status(
        self, lease: Lease, current: ActivationStatus, *path: ActivationStatus, **kwargs: Any
    ) -> ActivationStatus:
        """The status reached, which a requested rollback may have decided (see the store)."""
        async with lease.writes:
            return await self._store.set_status(lease, current, *path, events=take_calls(lease), **kwargs)

    # ------------------------------------------------------------------ forward
    async def _forward(
        self, lease: Lease, definition: Workflow, activation: Activation, started: dict[str, int]
    ) -> ActivationStatus:
        """The steps as a dependency graph: a step starts as soon as its dependencies have
        succeeded, recorded in the same statement as the last of them (one write per step
        boundary). The activation stays in memory for the whole run, updated as steps finish:
        while we hold the lease nobody else changes it, except for a rollback request, which
        every fenced write reports back."""
        run = _ForwardRun(lease=lease, definition=definition, activation=activation)
        self._mark_started(run, started)  # by begin_run, for a new activation
        refused = next((s for s in definition.steps if activation.steps[s.name].status == StepStatus.FAILED), None)
        if refused is not None:
            # An earlier run recorded a step failed for good and then lost its lease before ending
            # the run: the failure stands (it is never sent again), and the run ends as it would have.
            problem = activation.steps[refused.name].error or {
                "type": PROBLEM_BASE + "step-failed",
                "step": refused.name,
            }
            return await self._fail(lease, StepFailure(step=refused.name, problem=problem))
        if not started and activation.rollback_requested_at is None and not self._stopping.is_set():
            # A run that carries on an earlier one starts whatever is ready now.
            ready = self._ready(run, finished=None)
            if ready:
                async with lease.writes:
                    written = await self._write_locked(lease, start=ready)
                    run.observe(written, finished_at=None)
                    self._mark_started(run, written.started)
                    started = written.started
        if started:
            try:
                async with asyncio.TaskGroup() as group:  # a LeaseLost in one branch cancels the other
                    run.group = group
                    for name, attempt in started.items():
                        group.create_task(self._run_step(run, definition.step(name), attempt))
            except* LeaseLost as lost:
                # TaskGroup wraps errors in a group; the worker expects the plain LeaseLost.
                raise lost.exceptions[0] from None
        if run.completed:
            return ActivationStatus.SUCCEEDED  # recorded by the last step's write
        if run.failures:
            return await self._fail(lease, run.failures[0])
        if activation.rollback_requested_at is not None:
            return await self._set_status(
                lease,
                ActivationStatus.RUNNING,
                ActivationStatus.ROLLING_BACK,
                keep_error=True,
                event={"reason": "requested"},
            )
        if forward_complete(state.status for state in activation.steps.values()):
            # Every step succeeded but no write completed the run (a row of an earlier version,
            # which completed runs in a separate write): complete it now, by the same rule.
            return await self._set_status(lease, ActivationStatus.RUNNING, ActivationStatus.SUCCEEDED)
        return ActivationStatus.RUNNING  # stopping: the next claim carries on

    def _ready(self, run: _ForwardRun, finished: str | None) -> list[str]:
        """Steps that may start once ``finished`` has succeeded: every dependency succeeded, not yet
        started in this run. Nothing once the run must not start anything more (a step failed, a
        rollback was requested, the process is stopping)."""
        if run.failures or run.activation.rollback_requested_at is not None or self._stopping.is_set():
            return []
        states = run.activation.steps
        done = {name for name, state in states.items() if state.status == StepStatus.SUCCEEDED}
        if finished is not None:
            done.add(finished)
        return [
            step.name
            for step in run.definition.steps
            if step.name not in done and step.name not in run.started and all(d in done for d in step.depends_on)
        ]

    @staticmethod
    def _mark_started(run: _ForwardRun, started: dict[str, int]) -> None:
        """Mirror in memory the steps a write started, with their attempt numbers (read by _fail)
        and when (read by the duplicate sweep: taken after the write, so never earlier than the
        database's time of it)."""
        now = datetime.now(UTC)
        for name, attempt in started.items():
            run.started.add(name)
            state = run.activation.steps[name]
            state.status, state.attempts, state.attempted_at = StepStatus.RUNNING, attempt, now

    async def _run_step(self, run: _ForwardRun, step: SagaStep, attempt: int) -> None:
        # Each step runs in a task of its own (TaskGroup copies the context), so this binding
        # labels every log line of this step and ends with the task.
        structlog.contextvars.bind_contextvars(step=step.name)
        lease, activation = run.lease, run.activation
        started = time.monotonic()
        try:
            async for retry in self._retry.retrying():
                with retry:
                    if retry.retry_state.attempt_number > 1:  # the first start came with the last write
                        written = await self._write(lease, start=[step.name], start_unless_rollback=False)
                        self._mark_started(run, written.started)
                        attempt = written.started[step.name]
                    result = await self._attempt(run, step, attempt)
        except StepFailed as exc:
            self._observer.step_finished(step.name, StepStatus.FAILED.value, time.monotonic() - started)
            await self._record_failure(run, step, problem_from_domain(step.name, exc))
            return
        except UpstreamError as exc:
            self._observer.step_finished(step.name, StepStatus.FAILED.value, time.monotonic() - started)
            await self._record_failure(run, step, problem_from_upstream(step.name, exc))
            return
        self._observer.step_finished(step.name, StepStatus.SUCCEEDED.value, time.monotonic() - started)
        next_steps = await self._record_success(run, step, result)
        log.info("step succeeded", activation_id=str(activation.id), step=step.name, resource_id=result.resource_id)
        assert run.group is not None
        for name, next_attempt in next_steps.items():
            run.group.create_task(self._run_step(run, run.definition.step(name), next_attempt))

    async def _record_success(self, run: _ForwardRun, step: SagaStep, result: StepResult) -> dict[str, int]:
        """Record the step's success, starting in the same write the steps it made ready (and, for
        the last step, ending the run); returns the steps started, with their attempt numbers."""
        lease, activation = run.lease, run.activation
        finished_at = datetime.now(UTC)
        async with lease.writes:
            # Decided under the lock: of two branches finishing together, the second sees the first.
            ready = self._ready(run, finished=step.name)
            last = not run.failures and forward_complete(
                state.status for name, state in activation.steps.items() if name != step.name
            )
            written = await self._write_locked(
                lease,
                step.name,
                values={
                    "status": StepStatus.SUCCEEDED.value,
                    "resource_id": result.resource_id,
                    "finished_at": finished_at,
                    "error": None,
                },
                activation_values=result.activation_values,
                event={"status": StepStatus.SUCCEEDED.value, "resourceId": result.resource_id},
                notes=self._duplicates_found(result.duplicates),
                start=ready,
                complete=last and activation.rollback_requested_at is None,
            )
            # Mirror the write in memory (the columns of activation_values are Activation fields).
            state = activation.steps[step.name]
            state.status, state.resource_id, state.finished_at, state.error = (
                StepStatus.SUCCEEDED,
                result.resource_id,
                finished_at,
                None,
            )
            for column, value in result.activation_values.items():
                setattr(activation, column, value)
            run.observe(written, finished_at=finished_at)
            run.completed = written.completed
            self._mark_started(run, written.started)
            return written.started

    async def _attempt(self, run: _ForwardRun, step: SagaStep, attempt: int) -> StepResult:
        lease, activation = run.lease, run.activation
        try:
            return await step.forward(
                self._context(lease, activation, attempt, {"step": step.name, "attempt": attempt})
            )
        except UpstreamError as exc:
            if exc.retryable:
                self._observer.step_retried(step.name, _retry_reason(exc))
                await self._write(lease, step.name, event_type="retry", event={"attempt": attempt, "error": str(exc)})
            raise

    async def _record_failure(self, run: _ForwardRun, step: SagaStep, problem: dict[str, Any]) -> None:
        run.failures.append(StepFailure(step=step.name, problem=problem))  # starts nothing more
        await self._write(
            run.lease,
            step.name,
            values={"status": StepStatus.FAILED.value, "finished_at": datetime.now(UTC), "error": problem},
            event={"status": StepStatus.FAILED.value, "error": problem},
        )
        log.warning("step failed", activation_id=str(run.lease.activation_id), step=step.name, error=problem["detail"])

    async def _fail(self, lease: Lease, failure: StepFailure) -> ActivationStatus:
        activation = await self._store.load(lease)
        # Compensate only if some request that creates a resource was ever sent: otherwise there
        # is nothing upstream to undo and the activation stays `failed` with its error. A requested
        # rollback is always carried out, automatic compensation or not; one that arrives while
        # this write is on its way still wins (the store's rule).
        steps = self.definition(lease).steps
        may_have_created = any(activation.steps[s.name].attempts for s in steps if s.kind is not None)
        wanted = self._auto_compensate or activation.rollback_requested_at is not None
        if wanted and may_have_created:
            reason = "automatic compensation" if self._auto_compensate else "requested"
            return await self._set_status(
                lease,
                ActivationStatus.RUNNING,
                ActivationStatus.FAILED,
                ActivationStatus.ROLLING_BACK,
                error=failure.problem,
                event={"reason": reason},
            )
        # Pending only when a run crashed before it could start (see record_crash).
        return await self._set_status(lease, activation.status, ActivationStatus.FAILED, error=failure.problem)

    async def record_crash(self, lease: Lease, exc: BaseException) -> int:
        """A run ended in an unexpected exception (a bug, or an answer nobody foresaw). Counted;
        at the limit the activation ends instead of being claimed and re-sending its calls for
        ever: `failed` with an internal-error problem and compensated like any failure, or, when
        its compensation is what keeps crashing, `rollback_failed`. Returns the count so far."""
        self._observer.run_crashed()
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # a step's task group wraps what the step raised
        crashes, status = await self._store.record_crash(lease, type(exc).__name__)
        if crashes < self._crash_limit:
            return crashes
        rounds = (await self._store.load(lease)).compensation_rounds
        problem = {
            "type": PROBLEM_BASE + "internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": f"the activation's run failed {crashes} times with an unexpected error ({type(exc).__name__})",
        }
        log.error("activation ends after repeated crashes", activation_id=str(lease.activation_id), crashes=crashes)
        if status in (ActivationStatus.PENDING, ActivationStatus.RUNNING):
            await self._fail(lease, StepFailure(step=None, problem=problem))
        elif status == ActivationStatus.SUCCEEDED:
            # An operation of the live activation keeps crashing: it fails, the activation stays live.
            await self._operations.fail_current(lease, problem)
        elif status == ActivationStatus.ROLLING_BACK:
            await self._set_status(
                lease,
                ActivationStatus.ROLLING_BACK,
                ActivationStatus.ROLLBACK_FAILED,
                keep_error=True,
                event={"reason": "repeated crashes", "error": problem},
                retry_in=self._compensation_retries.delay(rounds),
            )
        return crashes

    # ------------------------------------------------------------------ compensation
    async def _compensate(self, lease: Lease) -> ActivationStatus:
        definition = self.definition(lease)
        activation = await self._store.load(lease)
        # A create that never answered may still commit: deleting before that would leave its copy.
        await self._context(lease, activation, attempt=0).wait_until_settled()
        orphans: list[str] = []
        for step in reversed(definition.steps):
            state = activation.steps[step.name]
            if step.kind is None or state.status in (StepStatus.COMPENSATED, StepStatus.SKIPPED):
                if state.status in (StepStatus.PENDING, StepStatus.RUNNING):
                    await self._write(lease, step.name, values={"status": StepStatus.SKIPPED.value})
                continue
            if state.attempts == 0:
                await self._write(lease, step.name, values={"status": StepStatus.SKIPPED.value})
                continue
            started = time.monotonic()
            with structlog.contextvars.bound_contextvars(step=step.name):
                leftover = await self._compensate_step(lease, activation, step)
            outcome = "compensation_failed" if leftover else StepStatus.COMPENSATED.value
            self._observer.step_finished(step.name, outcome, time.monotonic() - started)
            if leftover:
                orphans.append(leftover)
        if orphans:
            retry_in = self._compensation_retries.delay(activation.compensation_rounds)
            await self._set_status(
                lease,
                ActivationStatus.ROLLING_BACK,
                ActivationStatus.ROLLBACK_FAILED,
                keep_error=True,
                event={"orphans": orphans, "nextRetryInSeconds": round(retry_in)},
                retry_in=retry_in,
            )
            return ActivationStatus.ROLLBACK_FAILED
        return await self._set_status(
            lease, ActivationStatus.ROLLING_BACK, ActivationStatus.ROLLED_BACK, keep_error=True
        )

    async def _compensate_step(self, lease: Lease, activation: Activation, step: SagaStep) -> str | None:
        """Delete what the step created (or may have created), every copy of it included; returns
        the id left behind, if any."""
        state = activation.steps[step.name]
        resource_id = state.resource_id
        try:
            async for attempt in self._retry.retrying():
                with attempt:
                    # `attempts` counts forward attempts; compensation attempts show in the events.
                    number = attempt.retry_state.attempt_number
                    await self._write(lease, step.name, values={"status": StepStatus.COMPENSATING.value})
                    ctx = self._context(
                        lease,
                        activation,
                        state.attempts + number,
                        {"step": step.name, "attempt": number, "compensation": True},
                    )
                    undone = await step.compensate(ctx, resource_id)
        except UpstreamError as exc:
            problem = problem_from_upstream(step.name, exc)
            await self._write(
                lease,
                step.name,
                values={
                    "status": StepStatus.FAILED.value,
                    "resource_id": resource_id,
                    "error": problem,
                    "finished_at": datetime.now(UTC),
                },
                event={"status": "compensation_failed", "error": problem},
            )
            return resource_id or f"unknown {step.kind} of {step.name}"
        await self._write(
            lease,
            step.name,
            values={
                "status": StepStatus.COMPENSATED.value,
                "resource_id": undone.resource_id,
                "finished_at": datetime.now(UTC),
            },
            event={"status": StepStatus.COMPENSATED.value, "resourceId": undone.resource_id},
            notes=self._duplicates_found(undone.duplicates),
        )
        return None

    def _duplicates_found(self, duplicates: Sequence[Duplicate]) -> list[dict[str, Any]]:
        """Event rows (and metrics) for copies a late commit had left upstream, now deleted."""
        for duplicate in duplicates:
            self._observer.duplicate_removed(duplicate.kind)
            log.warning(
                "duplicate upstream resource deleted",
                step=duplicate.step,
                kind=duplicate.kind,
                resource_id=duplicate.resource_id,
            )
        return [{"type": "duplicate", "step": d.step, "data": d.event()} for d in duplicates]

    def _context(
        self, lease: Lease, activation: Activation, attempt: int, labels: dict[str, Any] | None = None
    ) -> StepContext:
        """What a step attempt works with; ``labels`` name its upstream calls (step, attempt)."""
        return StepContext(
            activation=activation,
            upstream=LeasedFlowService(self._client, lease, **(labels or {})),
            catalog=self._catalog,
            cipher=self._cipher,
            attempt=attempt,
            steps=self.definition(lease).steps,
            late_commit_window=self._late_commit_window,
        )


@dataclass(slots=True)
class _ForwardRun:
    """The state of one forward run, shared by its step tasks (their writes hold the lease's lock)."""

    lease: Lease
    definition: Workflow
    activation: Activation
    started: set[str] = field(default_factory=set)
    failures: list[StepFailure] = field(default_factory=list)
    group: asyncio.TaskGroup | None = None
    completed: bool = False  # the last step's write made the activation succeeded

    def observe(self, written: StepWrite, finished_at: datetime | None) -> None:
        if written.rollback_requested and self.activation.rollback_requested_at is None:
            # Acted upon once the steps in flight are done: nothing new starts meanwhile.
            self.activation.rollback_requested_at = finished_at or datetime.now(UTC)


def _retry_reason(exc: UpstreamError) -> str:
    """A bounded metrics label: the upstream status, or 'unavailable' for network errors."""
    status = getattr(exc, "status", None)
    return str(status) if isinstance(status, int) else "unavailable"

"""Runs the next operation in a live activation's queue (pause, resume; later update, export): its
workflow's steps one after the other, each recorded before its upstream call and after it, under
the activation's lease like the create saga. An operation that fails for good leaves the live
activation in place (contract §9): the operation is failed, sync says why, the flow keeps what it had.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from .catalog import DestinationCatalog
from .errors import StepFailed
from .lifecycle import StepStatus
from .model import Activation, Lease, Operation
from .observer import SagaObserver
from .ports import Cipher, FlowService, OperationStore, UpstreamError
from .problems import problem_from_domain, problem_from_upstream
from .retry import RetryPolicy
from .steps import StepContext
from .upstream import LeasedFlowService, take_calls
from .workflows import OperationKind, Workflows

log = structlog.get_logger(__name__)

# An operation whose workflow version this build lacks is looked at again this much later.
UNAVAILABLE_RETRY_SECONDS = 60.0


class OperationRunner:
    def __init__(
        self,
        store: OperationStore,
        client: FlowService,
        catalog: DestinationCatalog,
        cipher: Cipher,
        *,
        workflows: Workflows,
        retry: RetryPolicy,
        observer: SagaObserver,
        late_commit_window: timedelta,
    ) -> None:
        self._store = store
        self._client = client
        self._catalog = catalog
        self._cipher = cipher
        self._workflows = workflows
        self._retry = retry
        self._observer = observer
        self._late_commit_window = late_commit_window

    async def run_next(self, lease: Lease, activation: Activation) -> None:
        begun = await self._store.begin_operation(lease, runnable=self._workflows.operation_keys())
        if begun is None:
            return
        operation = begun.operation
        definition = self._workflows.get(OperationKind(operation.kind), operation.workflow_version)
        if definition is None:
            reason = f"{operation.kind} workflow v{operation.workflow_version} is not in this build"
            log.error(
                "operation left for a process that has its workflow", operation_id=str(operation.id), reason=reason
            )
            self._observer.workflow_unavailable(operation.kind)
            await self._store.defer_operation(lease, operation, delay_seconds=UNAVAILABLE_RETRY_SECONDS, reason=reason)
            return
        started = time.monotonic()
        remaining = [step for step in definition.steps if operation.steps[step.name].status != StepStatus.SUCCEEDED]
        # The attempt of the next step, started by the write that began the operation or ended the
        # step before it.
        next_attempt = begun.first_attempt
        result_values: dict[str, Any] = {}
        operation_result: dict[str, Any] | None = None
        for index, step in enumerate(remaining):
            state = operation.steps[step.name]
            following = remaining[index + 1].name if index + 1 < len(remaining) else None
            try:
                async for retry in self._retry.retrying():
                    with retry:
                        if next_attempt is None:
                            attempt = await self._store.start_operation_step(
                                lease, operation.id, step.name, events=take_calls(lease)
                            )
                        else:
                            attempt, next_attempt = next_attempt, None
                        state.status, state.attempts, state.attempted_at = (
                            StepStatus.RUNNING,
                            attempt,
                            datetime.now(UTC),
                        )
                        result = await step.forward(self._context(lease, activation, operation, step.name, attempt))
            except (StepFailed, UpstreamError) as exc:
                problem = (
                    problem_from_domain(step.name, exc)
                    if isinstance(exc, StepFailed)
                    else problem_from_upstream(step.name, exc)
                )
                await self._store.finish_operation_step(
                    lease, operation.id, step.name, succeeded=False, error=problem, events=take_calls(lease)
                )
                await self._store.finish_operation(lease, operation, error=problem, events=take_calls(lease))
                self._observer.operation_finished(operation.kind, "failed", time.monotonic() - started)
                log.warning("operation failed", operation_id=str(operation.id), kind=operation.kind, step=step.name)
                return
            state.status = StepStatus.SUCCEEDED
            for column, value in result.activation_values.items():
                setattr(activation, column, value)
            if following is None:  # the last step ends with the operation, in one write
                result_values, operation_result = result.activation_values, result.operation_result
                break
            next_attempt = await self._store.finish_operation_step(
                lease,
                operation.id,
                step.name,
                succeeded=True,
                activation_values=result.activation_values,
                events=take_calls(lease),
                start_next=following,
            )
        await self._store.finish_operation(
            lease,
            operation,
            error=None,
            events=take_calls(lease),
            last_step=remaining[-1].name if remaining else None,
            activation_values=result_values,
            result=operation_result,
        )
        self._observer.operation_finished(operation.kind, "succeeded", time.monotonic() - started)
        log.info("operation succeeded", operation_id=str(operation.id), kind=operation.kind)

    async def fail_current(self, lease: Lease, problem: dict[str, Any]) -> None:
        """End the operation in hand as failed (it kept crashing the run, see SagaRunner.record_crash)."""
        begun = await self._store.begin_operation(lease)
        if begun is not None:
            operation = begun.operation
            await self._store.finish_operation(lease, operation, error=problem, events=take_calls(lease))
            self._observer.operation_finished(operation.kind, "failed", 0.0)

    def _context(
        self, lease: Lease, activation: Activation, operation: Operation, step: str, attempt: int
    ) -> StepContext:
        labels = {"step": step, "attempt": attempt, "operation_id": str(operation.id)}
        return StepContext(
            activation=activation,
            upstream=LeasedFlowService(self._client, lease, **labels),
            catalog=self._catalog,
            cipher=self._cipher,
            attempt=attempt,
            late_commit_window=self._late_commit_window,
            operation_steps=operation.steps,
            operation_params=operation.params,
        )

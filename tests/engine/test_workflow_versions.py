"""Workflow versions (app/domain/workflows.py): an activation runs, and rolls back, with the create
workflow it was accepted with, whatever the build now holds; an operation of a version the build
lacks is left for a build that has it, and never runs with the wrong steps."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from app.domain.flow_state import FLOW_STATE_STEPS
from app.domain.lifecycle import ActivationStatus, OperationStatus, StepStatus
from app.domain.model import Lease, LeaseLost
from app.domain.operations import UNAVAILABLE_RETRY_SECONDS
from app.domain.ports import ResourceKind
from app.domain.saga import WorkflowUnavailable
from app.domain.steps import SAGA_STEPS, CreateFlow, SagaStep, StepContext, StepResult
from app.domain.workflows import OperationKind, Workflow, Workflows
from tests.engine.fakes import Deferral, Engine, definition_of, make_engine

ONE_OF_EACH = {"connections": 2, "sourceConnections": 1, "targetConnections": 1, "flows": 1}
NOTHING = {"connections": 0, "sourceConnections": 0, "targetConnections": 0, "flows": 0}
V1_STEPS = tuple(step.name for step in SAGA_STEPS)


class AuditFlow(SagaStep):
    """The step version 2 adds: reads the flow back once more, and says that it ran."""

    name = "audit_flow"
    depends_on = ("verify_flow",)

    def __init__(self) -> None:
        self.ran: list[uuid.UUID] = []

    async def forward(self, ctx: StepContext) -> StepResult:
        await ctx.upstream.get(ResourceKind.FLOWS, ctx.resource(CreateFlow), sandbox=ctx.sandbox)
        self.ran.append(ctx.activation.id)
        return StepResult()


def registries() -> tuple[Workflow, Workflow, AuditFlow, Workflows]:
    """Create v1 as shipped, v2 = v1 + audit_flow, and a registry (a newer build) with both."""
    v1 = definition_of(OperationKind.CREATE, 1)
    assert v1.steps == SAGA_STEPS
    audit = AuditFlow()
    v2 = Workflow(OperationKind.CREATE, 2, (*v1.steps, audit))
    flow_state = [definition_of(OperationKind.PAUSE), definition_of(OperationKind.RESUME)]
    return v1, v2, audit, Workflows([v1, v2, *flow_state])


async def live_activation(engine: Engine, workflow: Workflow | None = None) -> uuid.UUID:
    activation_id = engine.new_activation(workflow) if workflow else engine.new_activation()
    assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
    return activation_id


def test_an_activation_started_under_v1_finishes_and_rolls_back_with_v1_under_a_build_with_v2() -> None:
    async def scenario() -> None:
        v1, _, audit, new_registry = registries()
        old_build = make_engine()  # only v1
        activation_id = old_build.new_activation(v1)

        # The old build stops midway: its lease is lost as it records create_source_connection.
        def lose_lease(activation: uuid.UUID, step: str | None, values: Mapping[str, Any]) -> None:
            if step == "create_source_connection" and values.get("status") == "succeeded":
                old_build.store.take_over(activation)

        old_build.store.before_write.append(lose_lease)
        with pytest.raises(LeaseLost):
            await old_build.run(activation_id)
        old_build.store.before_write.clear()
        stopped = old_build.store.get(activation_id)
        assert stopped.status == ActivationStatus.RUNNING
        assert stopped.steps["create_source_connection"].status == StepStatus.RUNNING
        assert stopped.steps["verify_flow"].status == StepStatus.PENDING

        # The new build, which has v1 and v2, carries the activation on.
        new_build = old_build.with_workflows(new_registry)
        assert new_registry.current(OperationKind.CREATE).version == 2
        assert await new_build.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = new_build.store.get(activation_id)
        assert activation.workflow_version == 1
        assert tuple(activation.steps) == V1_STEPS
        assert {s.status for s in activation.steps.values()} == {StepStatus.SUCCEEDED}
        assert audit.ran == []
        assert new_build.store.unmatched_step_writes == []
        assert new_build.upstream.counts() == ONE_OF_EACH
        assert len(new_build.upstream.requests("POST", "/sourceConnections")) == 1  # found again by name
        assert activation.applied_revision == 1

        # And rolls it back with v1 too.
        assert new_build.store.request_rollback(activation_id) == (ActivationStatus.ROLLING_BACK, True)
        assert await new_build.run(activation_id) == ActivationStatus.ROLLED_BACK

        activation = new_build.store.get(activation_id)
        assert new_build.upstream.counts() == NOTHING
        assert activation.error is None
        assert new_build.store.unmatched_step_writes == []
        assert audit.ran == []

    asyncio.run(scenario())


def test_a_new_activation_under_v2_runs_the_extra_step_and_rolls_back_cleanly() -> None:
    async def scenario() -> None:
        _, v2, audit, registry = registries()
        engine = make_engine(workflows=registry)
        activation_id = engine.new_activation(v2)

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        assert activation.workflow_version == 2
        assert audit.ran == [activation_id]
        assert tuple(activation.steps) == (*V1_STEPS, "audit_flow")
        assert (activation.steps["audit_flow"].status, activation.steps["audit_flow"].attempts) == (
            StepStatus.SUCCEEDED,
            1,
        )
        # The run ends with the write of its last step, now audit_flow.
        events = engine.store.events(activation_id)
        ended = next(i for i, e in enumerate(events) if e.type == "status" and e.data["status"] == "succeeded")
        audited = next(i for i, e in enumerate(events) if e.type == "step" and e.step == "audit_flow")
        assert audited < ended
        assert [e.step for e in events if e.type == "upstream"][-1] == "audit_flow"

        assert engine.store.request_rollback(activation_id) == (ActivationStatus.ROLLING_BACK, True)
        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK
        assert engine.upstream.counts() == NOTHING
        assert engine.store.unmatched_step_writes == []

    asyncio.run(scenario())


def test_a_build_without_the_version_refuses_to_run_it() -> None:
    async def scenario() -> None:
        _, v2, audit, _ = registries()
        engine = make_engine()  # only v1
        activation_id = engine.new_activation(v2)
        lease = engine.store.lease(activation_id)

        with pytest.raises(WorkflowUnavailable):
            engine.runner.definition(lease)
        with pytest.raises(WorkflowUnavailable):
            await engine.runner.run(lease)

        activation = engine.store.get(activation_id)
        assert activation.status == ActivationStatus.PENDING
        assert {s.attempts for s in activation.steps.values()} == {0}
        assert engine.store.events(activation_id) == []
        assert engine.upstream.calls == []
        assert audit.ran == []
        # A store of that build never claims it in the first place.
        claimed = await engine.store.claim(owner="w", limit=10, lease_seconds=30)
        assert activation_id not in {c.activation_id for c in claimed}

    asyncio.run(scenario())


def test_definition_is_the_version_of_the_lease() -> None:
    v1, v2, _, registry = registries()
    engine = make_engine(workflows=registry)

    def lease(version: int) -> Lease:
        return Lease(uuid.uuid4(), 1, "w", valid_until=time.monotonic() + 60, workflow_version=version)

    assert engine.runner.definition(lease(1)) is v1
    assert engine.runner.definition(lease(2)) is v2
    with pytest.raises(WorkflowUnavailable, match="v3"):
        engine.runner.definition(lease(3))


def test_a_registry_refuses_a_version_twice_or_a_repeated_step() -> None:
    v1, _, _, _ = registries()
    with pytest.raises(ValueError, match="defined twice"):
        Workflows([v1, Workflow(OperationKind.CREATE, 1, v1.steps)])
    with pytest.raises(ValueError, match="repeats a step"):
        Workflows([Workflow(OperationKind.CREATE, 3, (*v1.steps, v1.steps[0]))])


def test_an_operation_of_an_unknown_version_is_deferred_and_never_runs() -> None:
    async def scenario() -> None:
        engine = make_engine()  # pause v1 only
        activation_id = await live_activation(engine)
        calls = len(engine.upstream.calls)
        pause_v2 = Workflow(OperationKind.PAUSE, 2, FLOW_STATE_STEPS["disabled"])
        operation_id = engine.store.enqueue_operation(activation_id, pause_v2)

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        assert engine.store.deferrals == [
            Deferral(operation_id, UNAVAILABLE_RETRY_SECONDS, "pause workflow v2 is not in this build")
        ]
        assert len(engine.upstream.calls) == calls  # no step ran
        operation = engine.store.operation(operation_id)
        assert {s.attempts for s in operation.steps.values()} == {0}
        assert operation.status != OperationStatus.SUCCEEDED
        activation = engine.store.get(activation_id)
        assert (activation.state, activation.applied_revision, activation.queued_operations) == ("enabled", 1, 1)
        assert engine.store.lease_owner(activation_id) is None

        # Looked at again later: still left alone, said once in the timeline.
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        assert len(engine.store.deferrals) == 2
        notes = [e for e in engine.store.events(activation_id) if e.type == "workflow_unavailable"]
        assert [e.data["operationId"] for e in notes] == [str(operation_id)]

        # A build that has pause v2 runs it.
        v1, _, _, _ = registries()
        newer = engine.with_workflows(Workflows([v1, pause_v2]))
        assert await newer.run(activation_id) == ActivationStatus.SUCCEEDED
        assert newer.store.operation(operation_id).status == OperationStatus.SUCCEEDED
        (flow,) = newer.upstream.of(ResourceKind.FLOWS)
        assert flow["state"] == "disabled"
        assert newer.store.get(activation_id).applied_revision == 2

    asyncio.run(scenario())

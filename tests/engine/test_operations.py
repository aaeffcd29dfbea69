"""Pause and resume of a live activation: operations in its queue, run by the OperationRunner under
the activation's lease (through SagaRunner.run, as a claim does)."""

from __future__ import annotations

import asyncio
import uuid

from app.domain.lifecycle import ActivationStatus, OperationStatus, StepStatus, sync_status
from app.domain.ports import ResourceKind
from app.domain.workflows import OperationKind, Workflow
from tests.engine.fakes import Engine, definition_of, make_engine

PAUSE = definition_of(OperationKind.PAUSE, 1)
RESUME = definition_of(OperationKind.RESUME, 1)


async def live_activation(engine: Engine) -> uuid.UUID:
    activation_id = engine.new_activation()
    assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
    return activation_id


def flow_state(engine: Engine) -> str:
    (flow,) = engine.upstream.of(ResourceKind.FLOWS)
    return str(flow["state"])


def enqueue(engine: Engine, activation_id: uuid.UUID, workflow: Workflow) -> uuid.UUID:
    return engine.store.enqueue_operation(activation_id, workflow)


def test_pause_then_resume_change_the_flow_state_and_confirm_each_revision() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        flow_id = engine.store.get(activation_id).flow_id

        pause = enqueue(engine, activation_id, PAUSE)
        activation = engine.store.get(activation_id)
        assert (activation.revision, activation.applied_revision, activation.desired_state) == (2, 1, "disabled")
        assert sync_status(activation.status, activation.revision, activation.applied_revision, None) == "applying"

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        operation = engine.store.operation(pause)
        assert flow_state(engine) == "disabled"
        assert operation.status == OperationStatus.SUCCEEDED
        assert operation.completed_at is not None
        assert {name: (s.status, s.attempts) for name, s in operation.steps.items()} == {
            "change_flow_state": (StepStatus.SUCCEEDED, 1),
            "verify_flow_state": (StepStatus.SUCCEEDED, 1),
        }
        assert (activation.status, activation.state, activation.applied_revision) == (
            ActivationStatus.SUCCEEDED,
            "disabled",
            2,
        )
        (flow,) = engine.upstream.of(ResourceKind.FLOWS)
        assert activation.flow_etag == flow["etag"]
        assert activation.queued_operations == 0
        assert activation.sync_error is None
        assert engine.store.lease_owner(activation_id) is None
        assert sync_status(activation.status, activation.revision, activation.applied_revision, None) == "in_sync"
        actions = engine.upstream.requests("POST", "/flows/{id}/action")
        assert [(c.path, c.context["step"], c.context["operation_id"]) for c in actions] == [
            (f"/flows/{flow_id}/action", "change_flow_state", str(pause))
        ]
        events = engine.store.events(activation_id)
        assert [e.data["status"] for e in events if e.type == "operation"] == ["running", "succeeded"]
        assert [e.step for e in events if e.type == "upstream"][-2:] == ["change_flow_state", "verify_flow_state"]

        resume = enqueue(engine, activation_id, RESUME)
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        assert flow_state(engine) == "enabled"
        assert engine.store.operation(resume).status == OperationStatus.SUCCEEDED
        assert (activation.state, activation.revision, activation.applied_revision) == ("enabled", 3, 3)
        assert engine.upstream.counts()["flows"] == 1

    asyncio.run(scenario())


def test_operations_run_one_per_claim_in_queue_order() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        pause = enqueue(engine, activation_id, PAUSE)
        resume = enqueue(engine, activation_id, RESUME)

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        assert flow_state(engine) == "disabled"
        assert engine.store.operation(resume).status == OperationStatus.PENDING
        activation = engine.store.get(activation_id)
        assert (activation.queued_operations, activation.applied_revision) == (1, 2)

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        assert flow_state(engine) == "enabled"
        assert engine.store.operation(pause).status == OperationStatus.SUCCEEDED
        assert engine.store.operation(resume).status == OperationStatus.SUCCEEDED
        activation = engine.store.get(activation_id)
        assert (activation.queued_operations, activation.applied_revision, activation.revision) == (0, 3, 3)

    asyncio.run(scenario())


def test_a_refused_flow_action_fails_the_operation_and_the_activation_stays_live() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        engine.upstream.fail_next("POST", "/flows/{id}/action", 400)
        pause = enqueue(engine, activation_id, PAUSE)

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        operation = engine.store.operation(pause)
        assert operation.status == OperationStatus.FAILED
        assert operation.error is not None
        assert (operation.error["step"], operation.error["upstreamStatus"]) == ("change_flow_state", 400)
        assert operation.steps["change_flow_state"].status == StepStatus.FAILED
        assert operation.steps["change_flow_state"].attempts == 1
        assert operation.steps["verify_flow_state"].attempts == 0
        assert activation.status == ActivationStatus.SUCCEEDED
        assert activation.sync_error == operation.error
        # The flow keeps what it had, and the desired state goes back to it.
        assert flow_state(engine) == "enabled"
        assert (activation.state, activation.desired_state) == ("enabled", "enabled")
        assert (activation.revision, activation.applied_revision, activation.queued_operations) == (2, 1, 0)
        assert (
            sync_status(activation.status, activation.revision, activation.applied_revision, activation.sync_error)
            == "failed"
        )
        assert engine.store.lease_owner(activation_id) is None

        # A later operation that succeeds clears the sync error.
        resume = enqueue(engine, activation_id, RESUME)
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        activation = engine.store.get(activation_id)
        assert engine.store.operation(resume).status == OperationStatus.SUCCEEDED
        assert (activation.sync_error, activation.applied_revision) == (None, 3)

    asyncio.run(scenario())


def test_a_retried_flow_action_reads_the_flow_first_and_does_not_repeat_what_landed() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        engine.upstream.commit_then_fail("POST", "/flows/{id}/action")
        pause = enqueue(engine, activation_id, PAUSE)

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        operation = engine.store.operation(pause)
        assert operation.status == OperationStatus.SUCCEEDED
        assert operation.steps["change_flow_state"].attempts == 2
        assert len(engine.upstream.requests("POST", "/flows/{id}/action")) == 1
        assert flow_state(engine) == "disabled"
        activation = engine.store.get(activation_id)
        (flow,) = engine.upstream.of(ResourceKind.FLOWS)
        assert (activation.state, activation.flow_etag, activation.applied_revision) == ("disabled", flow["etag"], 2)

    asyncio.run(scenario())


def test_a_retryable_error_on_the_flow_action_is_retried() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        engine.upstream.fail_next("POST", "/flows/{id}/action", 503, times=2)
        pause = enqueue(engine, activation_id, PAUSE)

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        operation = engine.store.operation(pause)
        assert operation.status == OperationStatus.SUCCEEDED
        assert operation.steps["change_flow_state"].attempts == 3
        assert [c.status for c in engine.upstream.requests("POST", "/flows/{id}/action")] == [503, 503, 200]
        assert flow_state(engine) == "disabled"

    asyncio.run(scenario())


def test_an_empty_queue_is_set_right_and_the_activation_let_go() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        calls = len(engine.upstream.calls)
        engine.store.force_queue_count(activation_id, 1)  # the count drifted: no operation waits

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        assert engine.store.get(activation_id).queued_operations == 0
        assert engine.store.lease_owner(activation_id) is None
        assert len(engine.upstream.calls) == calls

    asyncio.run(scenario())

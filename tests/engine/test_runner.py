"""The create saga and its compensation, run in process on the fakes: the happy path, retries,
permanent failures, rollback requests at awkward moments, lost and expired leases, late commits,
failed compensations and crash loops."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from app.domain.errors import StepFailed
from app.domain.lifecycle import ActivationStatus, StepStatus
from app.domain.model import LeaseLost
from app.domain.ports import ResourceKind
from app.domain.steps import (
    SAGA_STEPS,
    CreateSourceBaseConnection,
    ResolveDestination,
    SagaStep,
    StepContext,
    StepResult,
)
from app.domain.workflows import OperationKind, Workflow, Workflows
from flowservice_emulator.catalog import ADOBE_CAMPAIGN, PROFILE_STORE, UPS_TO_CAMPAIGN
from tests.engine.fakes import FAST_RETRY, S3_SECRET_KEY, Engine, StoredEvent, make_engine

CREATE_STEPS = [step.name for step in SAGA_STEPS if step.kind is not None]
ONE_OF_EACH = {"connections": 2, "sourceConnections": 1, "targetConnections": 1, "flows": 1}
NOTHING = {"connections": 0, "sourceConnections": 0, "targetConnections": 0, "flows": 0}


def status_path(events: list[StoredEvent]) -> list[tuple[str, str]]:
    return [(e.data["from"], e.data["status"]) for e in events if e.type == "status"]


def upstream_rows(events: list[StoredEvent], step: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == "upstream" and e.step == step]


async def live_activation(engine: Engine) -> uuid.UUID:
    activation_id = engine.new_activation()
    assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
    return activation_id


def test_create_runs_to_succeeded() -> None:
    async def scenario() -> None:
        engine = make_engine()
        attributes = ["person.name.firstName", "personalEmail.address"]
        activation_id = engine.new_activation(attributes=attributes, sandbox="dev")

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        upstream = engine.upstream
        assert upstream.counts() == ONE_OF_EACH
        assert activation.status == ActivationStatus.SUCCEEDED
        assert activation.credentials_ciphertext is None
        assert activation.applied_revision == 1
        assert activation.state == "enabled"
        assert activation.error is None
        assert activation.completed_at is not None
        assert engine.store.lease_owner(activation_id) is None
        assert {name: (s.status, s.attempts) for name, s in activation.steps.items()} == {
            step.name: (StepStatus.SUCCEEDED, 1) for step in SAGA_STEPS
        }
        assert activation.destination is not None
        assert activation.destination["connectionSpecId"] == ADOBE_CAMPAIGN
        assert activation.destination["flowSpecId"] == UPS_TO_CAMPAIGN

        # The resources are wired to each other as the steps recorded them.
        (flow,) = upstream.of(ResourceKind.FLOWS)
        assert flow["id"] == activation.flow_id == activation.resource("create_flow")
        assert flow["etag"] == activation.flow_etag
        assert flow["state"] == "enabled"
        assert flow["flowSpec"]["id"] == UPS_TO_CAMPAIGN
        assert flow["sourceConnectionIds"] == [activation.resource("create_source_connection")]
        assert flow["targetConnectionIds"] == [activation.resource("create_target_connection")]
        params = flow["transformations"][0]["params"]
        assert [s["value"]["id"] for s in params["segmentSelectors"]["selectors"]] == [
            s["id"] for s in activation.segments
        ]
        assert [s["value"]["path"] for s in params["profileSelectors"]["selectors"]] == attributes
        connections = {c["id"]: c for c in upstream.of(ResourceKind.CONNECTIONS)}
        target_base = connections[str(activation.resource("create_target_base_connection"))]
        assert target_base["auth"] == {
            "specName": "S3",
            "params": {"accessId": "AKIAIOSFODNN7EXAMPLE", "secretKey": S3_SECRET_KEY},
        }
        source_base = connections[str(activation.resource("create_source_base_connection"))]
        assert source_base["connectionSpec"]["id"] == PROFILE_STORE
        (target,) = upstream.of(ResourceKind.TARGET_CONNECTIONS)
        assert target["baseConnectionId"] == target_base["id"]
        assert target["params"]["bucketName"] == "acme-aep-exports"

        # Everything was made in the activation's sandbox.
        assert {r["sandboxName"] for kind in ResourceKind for r in upstream.of(kind)} == {"dev"}
        # Every call was guarded by the lease and labelled with the activation.
        assert upstream.unguarded == []
        assert {c.context["activation_id"] for c in upstream.calls} == {str(activation_id)}

        events = engine.store.events(activation_id)
        assert status_path(events) == [("pending", "running"), ("running", "succeeded")]
        for step in CREATE_STEPS:
            rows = upstream_rows(events, step)
            assert [(r["method"], r["status"], r["attempt"]) for r in rows] == [("POST", 201, 1)], step
        assert [r["path"] for r in upstream_rows(events, "resolve_destination")] == ["/connectionSpecs", "/flowSpecs"]
        assert [r["method"] for r in upstream_rows(events, "activate_segments")] == ["PATCH"]
        # A step's calls come before its outcome in the timeline.
        for step in (s.name for s in SAGA_STEPS):
            positions = [i for i, e in enumerate(events) if e.step == step]
            kinds = [events[i].type for i in positions]
            assert kinds[-1] == "step" and events[positions[-1]].data["status"] == "succeeded", step
            assert set(kinds[:-1]) == {"upstream"}, step

    asyncio.run(scenario())


def test_a_retryable_500_is_retried_and_leaves_one_resource() -> None:
    async def scenario() -> None:
        engine = make_engine()
        engine.upstream.fail_next("POST", "/targetConnections", 500)
        activation_id = engine.new_activation()

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == ONE_OF_EACH
        step = activation.steps["create_target_connection"]
        assert (step.status, step.attempts) == (StepStatus.SUCCEEDED, 2)
        (target,) = engine.upstream.of(ResourceKind.TARGET_CONNECTIONS)
        assert step.resource_id == target["id"]
        events = engine.store.events(activation_id)
        retries = [e for e in events if e.type == "retry"]
        assert [(e.step, e.data["attempt"]) for e in retries] == [("create_target_connection", 1)]
        # The retry looked for what the first attempt may have made before creating again.
        rows = upstream_rows(events, "create_target_connection")
        assert [(r["method"], r["path"], r["status"], r["attempt"]) for r in rows] == [
            ("POST", "/targetConnections", 500, 1),
            ("GET", "/targetConnections", 200, 2),
            ("POST", "/targetConnections", 201, 2),
        ]

    asyncio.run(scenario())


def test_a_500_after_the_create_committed_finds_the_resource_instead_of_a_second_create() -> None:
    async def scenario() -> None:
        engine = make_engine()
        engine.upstream.fail_next("POST", "/sourceConnections", 500, commit=True)
        activation_id = engine.new_activation()

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == ONE_OF_EACH
        (source,) = engine.upstream.of(ResourceKind.SOURCE_CONNECTIONS)
        assert activation.resource("create_source_connection") == source["id"]
        assert activation.steps["create_source_connection"].attempts == 2
        assert len(engine.upstream.requests("POST", "/sourceConnections")) == 1

    asyncio.run(scenario())


def test_a_400_fails_the_activation_and_compensation_deletes_everything() -> None:
    async def scenario() -> None:
        engine = make_engine()
        engine.upstream.fail_next("POST", "/flows", 400)
        activation_id = engine.new_activation()

        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == NOTHING
        assert activation.status == ActivationStatus.ROLLED_BACK
        assert activation.error is not None
        assert (activation.error["step"], activation.error["upstreamStatus"]) == ("create_flow", 400)
        assert activation.credentials_ciphertext is None
        assert activation.steps["create_flow"].attempts == 1  # a 400 is not retried
        statuses = {name: s.status for name, s in activation.steps.items()}
        assert statuses == {
            "resolve_destination": StepStatus.SUCCEEDED,
            "create_source_base_connection": StepStatus.COMPENSATED,
            "create_source_connection": StepStatus.COMPENSATED,
            "create_target_base_connection": StepStatus.COMPENSATED,
            "create_target_connection": StepStatus.COMPENSATED,
            "create_flow": StepStatus.COMPENSATED,
            "activate_segments": StepStatus.SKIPPED,
            "verify_flow": StepStatus.SKIPPED,
        }
        events = engine.store.events(activation_id)
        assert status_path(events) == [
            ("pending", "running"),
            ("running", "failed"),
            ("failed", "rolling_back"),
            ("rolling_back", "rolled_back"),
        ]
        assert not [e for e in events if e.type == "retry"]
        assert len(engine.upstream.requests("DELETE")) == 4  # the four resources made; the refused flow needs none

    asyncio.run(scenario())


def test_without_auto_compensation_a_failure_leaves_the_resources_and_erases_the_credentials() -> None:
    async def scenario() -> None:
        engine = make_engine(auto_compensate=False)
        engine.upstream.fail_next("POST", "/flows", 400)
        activation_id = engine.new_activation()

        assert await engine.run(activation_id) == ActivationStatus.FAILED

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == {**ONE_OF_EACH, "flows": 0}
        assert activation.credentials_ciphertext is None
        assert activation.error is not None and activation.error["upstreamStatus"] == 400
        assert engine.store.lease_owner(activation_id) is None
        assert not engine.upstream.requests("DELETE")

    asyncio.run(scenario())


def test_a_rollback_requested_while_a_step_is_in_flight_ends_rolled_back_with_nothing_upstream() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = engine.new_activation()
        answers: list[tuple[ActivationStatus, bool] | None] = []

        def request_rollback() -> None:
            answers.append(engine.store.request_rollback(activation_id))

        engine.upstream.on_request("POST", "/flows", request_rollback)

        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK

        assert answers == [(ActivationStatus.RUNNING, False)]  # marked: the worker acts on it
        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == NOTHING
        assert activation.error is None
        # The flow in flight was created, then deleted; nothing started after it.
        assert [c.status for c in engine.upstream.requests("POST", "/flows")] == [201]
        assert [c.status for c in engine.upstream.requests("DELETE", "/flows/{id}")] == [204]
        assert not engine.upstream.requests("PATCH")
        assert activation.steps["activate_segments"].status == StepStatus.SKIPPED
        assert activation.steps["verify_flow"].status == StepStatus.SKIPPED
        assert activation.steps["activate_segments"].attempts == 0
        assert all(activation.steps[step].status == StepStatus.COMPENSATED for step in CREATE_STEPS)
        events = engine.store.events(activation_id)
        assert status_path(events) == [
            ("pending", "running"),
            ("running", "rolling_back"),
            ("rolling_back", "rolled_back"),
        ]

    asyncio.run(scenario())


def test_a_rollback_requested_during_the_last_step_wins_over_success() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = engine.new_activation()

        def request_rollback() -> None:
            engine.store.request_rollback(activation_id)

        engine.upstream.on_request("GET", "/flows/{id}", request_rollback)  # verify_flow's read

        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK

        events = engine.store.events(activation_id)
        assert ("running", "succeeded") not in status_path(events)
        assert engine.store.get(activation_id).steps["verify_flow"].status == StepStatus.SUCCEEDED
        assert engine.upstream.counts() == NOTHING

    asyncio.run(scenario())


def test_a_rollback_requested_before_the_run_starts_makes_no_upstream_call() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = engine.new_activation()
        assert engine.store.request_rollback(activation_id) == (ActivationStatus.ROLLING_BACK, True)
        assert engine.store.get(activation_id).credentials_ciphertext is None

        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK

        assert engine.upstream.calls == []
        activation = engine.store.get(activation_id)
        assert {s.status for s in activation.steps.values()} == {StepStatus.SKIPPED}

    asyncio.run(scenario())


def test_a_lost_lease_stops_the_run_and_the_next_run_finishes_with_one_resource_of_each_kind() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = engine.new_activation()
        # The flow is created, but its answer never comes; meanwhile another worker took over.
        engine.upstream.commit_then_fail("POST", "/flows")
        engine.upstream.on_request("POST", "/flows", lambda: engine.store.take_over(activation_id))
        first = engine.store.lease(activation_id)

        with pytest.raises(LeaseLost):
            await engine.runner.run(first)

        activation = engine.store.get(activation_id)
        assert activation.status == ActivationStatus.RUNNING
        assert (activation.steps["create_flow"].status, activation.steps["create_flow"].attempts) == (
            StepStatus.RUNNING,
            1,
        )
        assert engine.upstream.counts() == ONE_OF_EACH  # the committed flow
        events = engine.store.events(activation_id)
        assert not [e for e in events if e.type == "retry"]  # the stale worker's write was refused
        assert not [e for e in events if e.step == "create_flow" and e.type != "step"]

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == ONE_OF_EACH
        (flow,) = engine.upstream.of(ResourceKind.FLOWS)
        assert activation.flow_id == flow["id"]
        assert activation.steps["create_flow"].attempts == 2
        assert len(engine.upstream.requests("POST", "/flows")) == 1  # found by name, not made again
        assert len(flow["transformations"][0]["params"]["segmentSelectors"]["selectors"]) == 2
        assert all(e.epoch != first.epoch for e in engine.store.events(activation_id) if e.step == "create_flow")

    asyncio.run(scenario())


def test_an_expired_lease_sends_nothing_more() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = engine.new_activation()
        lease = engine.store.lease(activation_id)
        sent_before_expiry: list[int] = []

        def expire() -> None:
            lease.valid_until = time.monotonic() - 1.0
            sent_before_expiry.append(len(engine.upstream.calls))

        engine.upstream.on_request("POST", "/sourceConnections", expire)

        with pytest.raises(LeaseLost):
            await engine.runner.run(lease)

        assert len(engine.upstream.calls) == sent_before_expiry[0]
        assert not engine.upstream.requests("POST", "/sourceConnections")
        assert engine.upstream.counts()["sourceConnections"] == 0

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        assert engine.upstream.counts() == ONE_OF_EACH

    asyncio.run(scenario())


def test_a_late_commit_is_found_and_deleted_before_the_run_ends() -> None:
    async def scenario() -> None:
        engine = make_engine()
        engine.upstream.commit_late("POST", "/targetConnections")
        activation_id = engine.new_activation()

        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == ONE_OF_EACH
        (target,) = engine.upstream.of(ResourceKind.TARGET_CONNECTIONS)
        assert activation.resource("create_target_connection") == target["id"]
        (flow,) = engine.upstream.of(ResourceKind.FLOWS)
        assert flow["targetConnectionIds"] == [target["id"]]
        duplicates = [e for e in engine.store.events(activation_id) if e.type == "duplicate"]
        assert [(e.step, e.data["kind"], e.data["action"]) for e in duplicates] == [
            ("create_target_connection", "targetConnections", "deleted")
        ]
        assert duplicates[0].data["resourceId"] != target["id"]

    asyncio.run(scenario())


def test_a_failed_compensation_is_retried_automatically_until_nothing_is_left() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        flow_id = engine.store.get(activation_id).flow_id
        engine.upstream.fail_next("DELETE", "/flows/{id}", 503, times=FAST_RETRY.max_attempts)
        assert engine.store.request_rollback(activation_id) == (ActivationStatus.ROLLING_BACK, True)

        assert await engine.run(activation_id) == ActivationStatus.ROLLBACK_FAILED

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == {**NOTHING, "flows": 1}
        assert activation.compensation_retry_at is not None
        assert activation.compensation_rounds == 1
        assert activation.steps["create_flow"].status == StepStatus.FAILED
        ended = [e for e in engine.store.events(activation_id) if e.type == "status"][-1]
        assert (ended.data["status"], ended.data["orphans"]) == ("rollback_failed", [flow_id])

        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK  # the retry, once due

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == NOTHING
        assert activation.compensation_retry_at is None
        assert activation.steps["create_flow"].status == StepStatus.COMPENSATED

    asyncio.run(scenario())


class Boom(SagaStep):
    """A step with a bug: it raises what no step should."""

    name = "boom"
    depends_on = (CreateSourceBaseConnection.name,)

    async def forward(self, ctx: StepContext) -> StepResult:
        raise RuntimeError("a bug")


def test_a_run_that_keeps_crashing_ends_failed_and_compensated_at_the_crash_limit() -> None:
    async def scenario() -> None:
        crashing = Workflow(OperationKind.CREATE, 1, (ResolveDestination(), CreateSourceBaseConnection(), Boom()))
        engine = make_engine(workflows=Workflows([crashing]), crash_limit=2)
        activation_id = engine.new_activation(crashing)

        counts = []
        for _ in range(2):
            lease = engine.store.lease(activation_id)
            with pytest.raises(BaseExceptionGroup) as crash:
                await engine.runner.run(lease)
            counts.append(await engine.runner.record_crash(lease, crash.value))

        assert counts == [1, 2]
        activation = engine.store.get(activation_id)
        assert activation.status == ActivationStatus.ROLLING_BACK
        assert activation.steps["boom"].attempts == 2
        crashes = [e.data for e in engine.store.events(activation_id) if e.type == "crash"]
        assert crashes == [{"error": "RuntimeError", "crashes": 1}, {"error": "RuntimeError", "crashes": 2}]

        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK

        activation = engine.store.get(activation_id)
        assert engine.upstream.counts() == NOTHING
        assert activation.error is not None and activation.error["status"] == 500
        assert activation.run_crashes == 0  # compensation starts with a fresh budget

    asyncio.run(scenario())


def test_a_step_failed_for_good_is_compensated_with_its_problem() -> None:
    class Refuse(SagaStep):
        name = "refuse"
        depends_on = (CreateSourceBaseConnection.name,)

        async def forward(self, ctx: StepContext) -> StepResult:
            raise StepFailed("Nope", "the destination refuses this", type_="refused")

    async def scenario() -> None:
        workflow = Workflow(OperationKind.CREATE, 1, (ResolveDestination(), CreateSourceBaseConnection(), Refuse()))
        engine = make_engine(workflows=Workflows([workflow]))
        activation_id = engine.new_activation(workflow)

        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK

        activation = engine.store.get(activation_id)
        assert activation.error is not None
        assert (activation.error["type"], activation.error["step"]) == (
            "urn:activation-gateway:problem:refused",
            "refuse",
        )
        assert engine.upstream.counts() == NOTHING
        assert activation.steps["refuse"].attempts == 1

    asyncio.run(scenario())


def test_a_step_refused_for_good_is_not_sent_again_after_the_run_lost_its_lease() -> None:
    async def scenario() -> None:
        engine = make_engine()
        engine.upstream.fail_next("POST", "/flows", 400)
        activation_id = engine.new_activation()
        load = engine.store.load

        async def load_then_lose_the_lease(lease: Any) -> Any:
            # The failure is recorded; the lease is lost before the run's status write.
            loaded = await load(lease)
            engine.store.take_over(activation_id)
            return loaded

        engine.store.load = load_then_lose_the_lease  # type: ignore[method-assign]
        with pytest.raises(LeaseLost):
            await engine.runner.run(engine.store.lease(activation_id))
        engine.store.load = load  # type: ignore[method-assign]
        assert engine.store.get(activation_id).steps["create_flow"].status == StepStatus.FAILED

        assert await engine.run(activation_id) == ActivationStatus.ROLLED_BACK

        assert [call.status for call in engine.upstream.requests("POST", "/flows")] == [400]
        assert engine.upstream.counts() == NOTHING
        assert engine.store.get(activation_id).error["upstreamStatus"] == 400  # type: ignore[index]

    asyncio.run(scenario())

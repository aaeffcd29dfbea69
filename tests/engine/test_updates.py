"""The update workflow (contract §10) in process, on the fakes: an update converges the flow on the
activation's desired lists with one PATCH under the read's etag; a flow already equal gets no
PATCH; a 412 is a fresh read and a recomputed patch; an answer that never came is converged on
the retry without a duplicate; an update that fails for good leaves the live activation in place;
two updates queued before the first runs send one PATCH (the second finds nothing to do)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from app.domain.flow_diff import DesiredFlow, differences
from app.domain.flow_update import desired_flow
from app.domain.lifecycle import ActivationStatus, OperationStatus
from app.domain.model import DesiredChange
from app.domain.ports import ResourceKind
from app.domain.workflows import OperationKind
from tests.engine.fakes import Engine, definition_of, make_engine

UPDATE = definition_of(OperationKind.UPDATE, 1)


def audience(name: str) -> dict[str, Any]:
    return {"id": name, "name": name, "exportMode": "DAILY_FULL_EXPORT", "schedule": {"frequency": "DAILY"}}


async def live_activation(engine: Engine) -> uuid.UUID:
    activation_id = engine.new_activation()
    assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
    return activation_id


def queue_update(
    engine: Engine, activation_id: uuid.UUID, segments: list[dict[str, Any]], attributes: list[str]
) -> uuid.UUID:
    activation = engine.store.get(activation_id)
    change = DesiredChange(activation.name, segments, attributes, activation.drift_policy)
    return engine.store.enqueue_operation(activation_id, UPDATE, change=change)


def flow_differences(engine: Engine, activation_id: uuid.UUID) -> list[dict[str, Any]]:
    (flow,) = engine.upstream.of(ResourceKind.FLOWS)
    wanted: DesiredFlow = desired_flow(engine.store.get(activation_id))
    return differences(flow, wanted)


def patches(engine: Engine) -> int:
    return len(engine.upstream.requests("PATCH", "/flows/{id}"))


def test_an_update_converges_with_one_patch_and_confirms_its_revision() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        before = patches(engine)
        update = queue_update(engine, activation_id, [audience("a"), audience("b")], ["person.gender"])
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        assert engine.store.operation(update).status == OperationStatus.SUCCEEDED
        activation = engine.store.get(activation_id)
        assert (activation.revision, activation.applied_revision) == (2, 2)
        assert flow_differences(engine, activation_id) == []
        assert patches(engine) == before + 1
        (flow,) = engine.upstream.of(ResourceKind.FLOWS)
        assert activation.flow_etag == flow["etag"]

    asyncio.run(scenario())


def test_a_412_is_read_again_and_recomputed() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        engine.upstream.fail_next("PATCH", "/flows/{id}", 412, times=2)
        update = queue_update(engine, activation_id, [audience("c")], [])
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        assert engine.store.operation(update).status == OperationStatus.SUCCEEDED
        assert flow_differences(engine, activation_id) == []
        assert len(engine.upstream.requests("GET", "/flows/{id}")) >= 3, "a fresh read after each 412"

    asyncio.run(scenario())


def test_an_unanswered_patch_that_committed_is_not_applied_twice() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        engine.upstream.commit_then_fail("PATCH", "/flows/{id}")
        update = queue_update(engine, activation_id, [audience("a"), audience("d")], ["person.gender"])
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        operation = engine.store.operation(update)
        assert operation.status == OperationStatus.SUCCEEDED
        assert operation.steps["apply_desired_state"].attempts == 2
        assert flow_differences(engine, activation_id) == []  # no duplicate: differences would list it

    asyncio.run(scenario())


def test_an_update_that_fails_for_good_leaves_the_live_activation_in_place() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        (flow_before,) = engine.upstream.of(ResourceKind.FLOWS)
        engine.upstream.fail_next("PATCH", "/flows/{id}", 400)
        update = queue_update(engine, activation_id, [audience("e")], [])
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        operation = engine.store.operation(update)
        assert operation.status == OperationStatus.FAILED and operation.error is not None
        activation = engine.store.get(activation_id)
        assert (activation.status, activation.revision, activation.applied_revision) == (
            ActivationStatus.SUCCEEDED,
            2,
            1,
        )
        assert activation.sync_error == operation.error
        assert engine.upstream.of(ResourceKind.FLOWS) == [flow_before]

    asyncio.run(scenario())


def test_updates_queued_together_send_one_patch() -> None:
    async def scenario() -> None:
        engine = make_engine()
        activation_id = await live_activation(engine)
        before = patches(engine)
        first = queue_update(engine, activation_id, [audience("a")], [])
        second = queue_update(engine, activation_id, [audience("a"), audience("b")], ["person.gender"])
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
        assert (
            engine.store.operation(first).status == engine.store.operation(second).status == OperationStatus.SUCCEEDED
        )
        activation = engine.store.get(activation_id)
        assert (activation.revision, activation.applied_revision) == (3, 3)
        assert flow_differences(engine, activation_id) == []
        assert patches(engine) == before + 1, "the first applied the latest lists; the second found nothing to do"

    asyncio.run(scenario())

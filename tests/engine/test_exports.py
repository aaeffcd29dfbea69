"""Export now (contract §12) in process, on the fakes: one ad-hoc job per 80 audiences, the run
named in the operation's result; an audience already being exported joins that run; an answer
that never came (committed or committing late) still makes one job, not two; the desired state and
its revision stay; a refusal fails the operation and leaves the activation live."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from app.domain.lifecycle import ActivationStatus, OperationStatus
from app.domain.workflows import OperationKind
from tests.engine.fakes import Engine, definition_of, make_engine

EXPORT = definition_of(OperationKind.EXPORT, 1)
ADHOC = "/data/core/activation/disflowprovider/adhocrun"


async def live_activation(engine: Engine, audiences: int = 2) -> uuid.UUID:
    activation_id = engine.new_activation()
    activation = engine.store.get(activation_id)
    activation.segments = [
        {"id": f"s{i}", "name": f"S{i}", "schedule": {"frequency": "DAILY"}} for i in range(audiences)
    ]
    assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
    return activation_id


def queue_export(engine: Engine, activation_id: uuid.UUID, segments: list[str]) -> uuid.UUID:
    return engine.store.enqueue_operation(activation_id, EXPORT, params={"segments": segments})


def jobs_sent(engine: Engine) -> list[Any]:
    return engine.upstream.requests("POST", ADHOC)


def started_runs(engine: Engine) -> set[str]:
    return {run["id"] for run in engine.upstream.runs}


async def exported(engine: Engine, activation_id: uuid.UUID, segments: list[str]) -> dict[str, Any]:
    export = queue_export(engine, activation_id, segments)
    assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
    operation = engine.store.operation(export)
    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert operation.result is not None
    return operation.result


def test_an_export_starts_one_job_and_names_its_run() -> None:
    asyncio.run(_an_export_starts_one_job_and_names_its_run())


async def _an_export_starts_one_job_and_names_its_run() -> None:
    engine = make_engine()
    activation_id = await live_activation(engine)
    before = engine.store.get(activation_id)
    revision, applied = before.revision, before.applied_revision
    result = await exported(engine, activation_id, ["s0", "s1"])
    assert len(jobs_sent(engine)) == 1
    (run,) = result["runs"]
    assert run["segments"] == ["s0", "s1"] and run["joined"] is False
    assert {run["id"]} == started_runs(engine)
    after = engine.store.get(activation_id)
    assert (after.revision, after.applied_revision) == (revision, applied)


def test_more_than_80_audiences_go_in_several_jobs() -> None:
    asyncio.run(_more_than_80_audiences_go_in_several_jobs())


async def _more_than_80_audiences_go_in_several_jobs() -> None:
    engine = make_engine()
    activation_id = await live_activation(engine, audiences=170)
    result = await exported(engine, activation_id, [f"s{i}" for i in range(170)])
    assert [len(r["segments"]) for r in result["runs"]] == [80, 80, 10]
    assert len(jobs_sent(engine)) == 3 and len(started_runs(engine)) == 3


def test_an_audience_already_being_exported_joins_that_run() -> None:
    asyncio.run(_an_audience_already_being_exported_joins_that_run())


async def _an_audience_already_being_exported_joins_that_run() -> None:
    engine = make_engine()
    activation_id = await live_activation(engine)
    flow_id = engine.store.get(activation_id).flow_id
    assert flow_id is not None
    engine.upstream.adhoc_jobs[(flow_id, "s0")] = "their-run"
    result = await exported(engine, activation_id, ["s0", "s1"])
    runs = {r["id"]: r for r in result["runs"]}
    assert runs["their-run"] == {"id": "their-run", "segments": ["s0"], "joined": True}
    (ours,) = [r for r in result["runs"] if r["id"] != "their-run"]
    assert ours["segments"] == ["s1"] and ours["joined"] is False
    assert len(jobs_sent(engine)) == 2  # refused once for s0, then s1 alone


def test_a_job_whose_answer_never_came_is_not_started_twice() -> None:
    asyncio.run(_a_job_whose_answer_never_came_is_not_started_twice())


async def _a_job_whose_answer_never_came_is_not_started_twice() -> None:
    engine = make_engine()
    activation_id = await live_activation(engine)
    engine.upstream.commit_then_fail("POST", ADHOC)
    result = await exported(engine, activation_id, ["s0", "s1"])
    assert len(started_runs(engine)) == 1
    assert [r["id"] for r in result["runs"]] == list(started_runs(engine))


def test_a_job_that_commits_late_is_not_started_twice() -> None:
    asyncio.run(_a_job_that_commits_late_is_not_started_twice())


async def _a_job_that_commits_late_is_not_started_twice() -> None:
    engine = make_engine()
    activation_id = await live_activation(engine)
    engine.upstream.commit_late("POST", ADHOC)
    result = await exported(engine, activation_id, ["s0"])
    assert len(started_runs(engine)) == 1  # the late one landed on a running export: refused
    assert [r["id"] for r in result["runs"]] == list(started_runs(engine))


def test_a_refusal_fails_the_operation_and_keeps_the_activation_live() -> None:
    asyncio.run(_a_refusal_fails_the_operation_and_keeps_the_activation_live())


async def _a_refusal_fails_the_operation_and_keeps_the_activation_live() -> None:
    engine = make_engine()
    activation_id = await live_activation(engine)
    engine.upstream.fail_next("POST", ADHOC, 400)
    export = queue_export(engine, activation_id, ["s0"])
    assert await engine.run(activation_id) == ActivationStatus.SUCCEEDED
    operation = engine.store.operation(export)
    assert operation.status == OperationStatus.FAILED
    assert operation.error is not None and operation.error["type"].endswith("export-refused")
    activation = engine.store.get(activation_id)
    assert activation.status == ActivationStatus.SUCCEEDED and activation.sync_error is None

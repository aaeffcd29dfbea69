"""Export runs and drift of an activation (contract §12, §13): the runs mirrored from Adobe, and a
reconcile of one activation now. HTTP only: the use cases are app/services/runs.py and drift.py."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from .dependencies import Client, Operations, Reconcile, Repository, Runs, Watcher
from .idempotency import parse_idempotency_key, parse_prefer_wait
from .operations import (
    IdempotencyKey,
    IfMatch,
    Prefer,
    activation_response,
    answer,
    load,
    mutation_doc,
    parse_id,
)
from .problems import problem_responses
from .schemas import ActivationOut, ExportRequest, RunList, RunOut

router = APIRouter(tags=["activations"])


@router.get(
    "/activations/{activation_id}/runs",
    operation_id="listActivationRuns",
    summary="The export runs of an activation's dataflow, newest first",
    description=(
        "Runs are mirrored from Adobe on a schedule (`RUNS_POLL_INTERVAL_SECONDS`); `refresh=true` reads the "
        "dataflow's runs from Adobe first. Adobe's statuses are normalised (`Success` → `succeeded`)."
    ),
    response_model=RunList,
    responses=problem_responses(400, 401, 404, 422, 503),
)
async def list_activation_runs(
    client: Client,
    repository: Repository,
    runs: Runs,
    activation_id: str,
    status: Annotated[
        Literal["processing", "waiting", "succeeded", "failed"] | None, Query(description="Only runs in this status.")
    ] = None,
    since: Annotated[datetime | None, Query(description="Only runs started at or after this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=300, description="`nextCursor` of the previous page.")] = None,
    refresh: Annotated[bool, Query(description="Read the runs from Adobe before answering.")] = False,
) -> RunList:
    activation = await load(repository, client, activation_id)
    items, next_cursor = await runs.page(
        activation.id, limit=limit, status=status, since=since, cursor=cursor, refresh=refresh
    )
    return RunList(items=[RunOut.model_validate(item) for item in items], nextCursor=next_cursor)


@router.post(
    "/activations/{activation_id}/reconcile",
    operation_id="reconcileActivation",
    summary="Compare the activation's dataflow with its desired state now",
    description=(
        "Reads the dataflow from Adobe and records in `sync` how it differs from the applied desired state "
        "(`drifted`, with `differences`); under `driftPolicy: enforce` an operation that restores it is queued. "
        "An activation whose latest revision is still being applied is not compared."
    ),
    response_model=ActivationOut,
    responses=problem_responses(401, 404, 503),
)
async def reconcile_activation(
    client: Client, repository: Repository, reconcile: Reconcile, activation_id: str
) -> Response:
    activation = await load(repository, client, activation_id)
    await reconcile.check(activation.id)
    checked = await load(repository, client, activation_id)
    return activation_response(checked, 200)


@router.post(
    "/activations/{activation_id}/exports",
    **mutation_doc(  # type: ignore[arg-type]
        "Export now",
        "Starts Adobe's ad-hoc export of these audiences (all of the activation's by default), as an operation: "
        "its `result` names the runs, which then appear in `GET /runs` (`trigger: adhoc`). Checked first, each "
        "with its own problem: the activation is live (`409 activation-not-live`) and enabled (`409 "
        "activation-paused`), every audience is on it (`422 segment-not-on-activation`), each audience's schedule "
        "covers today (`422 schedule-not-current`). More than 80 audiences go in several jobs; an audience whose "
        "export is already running joins that run. The desired state and its revision do not change.",
        "exportActivationNow",
    ),
)
async def export_activation_now(
    activation_id: str,
    client: Client,
    service: Operations,
    repository: Repository,
    watcher: Watcher,
    body: ExportRequest | None = None,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
    prefer: Prefer = None,
) -> Response:
    ident = parse_id(activation_id)
    key = parse_idempotency_key(idempotency_key)
    wait = parse_prefer_wait(prefer)
    request = body or ExportRequest()
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True).encode()
    outcome = await service.export(ident, client, request.segments, canonical=canonical, key=key, if_match=if_match)
    return await answer(outcome, ident, client, service=service, repository=repository, watcher=watcher, wait=wait)

"""Change a live activation in place (contract §10): `PATCH /activations/{id}`, a JSON merge patch
(RFC 7396) of the desired state whose lists are whole, and its dry run. HTTP only: the decisions
are the OperationService's."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from app.domain.model import DesiredChange

from .dependencies import Client, Operations, Repository, Watcher
from .idempotency import parse_idempotency_key, parse_prefer_wait
from .operations import (
    IdempotencyKey,
    IfMatch,
    Prefer,
    answer,
    load,
    mutation_doc,
    parse_id,
)
from .schemas import ActivationOut, ActivationPatch, DryRunOut
from .views import activation_view

router = APIRouter(tags=["activations"])

DEFAULT_DRIFT_POLICY = "report"
_MERGE_PATCH = {"schema": {"$ref": "#/components/schemas/ActivationPatch"}}
_DOC = mutation_doc(
    "Change a live activation",
    "A JSON merge patch (RFC 7396; `application/json` is accepted too) of `name`, `segments`, `attributes` and "
    "`driftPolicy`. `segments` and `attributes` are the whole desired lists: the update operation makes the "
    "dataflow hold exactly these, as Adobe has it at that moment, so audiences or attributes someone added in "
    "Adobe's UI are removed. `202` with the new revision; `200` and no new revision when nothing changes. "
    "`destination`, `storage` and `sandbox` are fixed (`422`). With `?dryRun=true`: `200` with the activation it "
    "would become and the calls that would write upstream; nothing is written, no `Idempotency-Key` needed.",
    "updateActivation",
)
_DOC["responses"][200] = {  # type: ignore[index]
    "model": ActivationOut | DryRunOut,
    "description": "Nothing changes; the operation ended within `Prefer: wait`; or, with `?dryRun=true`, the "
    "activation it would become and the plan.",
}
_DOC["openapi_extra"] = {
    "requestBody": {
        "required": True,
        "content": {"application/merge-patch+json": _MERGE_PATCH, "application/json": _MERGE_PATCH},
    }
}


def merge(body: ActivationPatch) -> Any:
    """The desired state the merge patch makes of the current one: a member present replaces the
    current value, `null` removes it (name: none; attributes: none; driftPolicy: the default)."""
    given = body.model_fields_set

    def apply(current: DesiredChange) -> DesiredChange:
        start_dates = {s["id"]: s.get("schedule", {}).get("startDate") for s in current.segments}
        segments = current.segments
        if "segments" in given and body.segments is not None:
            segments = [segment.normalized(start_dates.get(segment.id)) for segment in body.segments]
        return DesiredChange(
            name=body.name if "name" in given else current.name,
            segments=segments,
            attributes=(body.attributes or []) if "attributes" in given else current.attributes,
            drift_policy=(body.driftPolicy or DEFAULT_DRIFT_POLICY) if "driftPolicy" in given else current.drift_policy,
        )

    return apply


@router.patch("/activations/{activation_id}", **_DOC)  # type: ignore[arg-type]
async def update_activation(
    activation_id: str,
    body: ActivationPatch,
    client: Client,
    service: Operations,
    repository: Repository,
    watcher: Watcher,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
    prefer: Prefer = None,
    dry_run: Annotated[bool, Query(alias="dryRun", description="Plan only: write nothing.")] = False,
) -> Response:
    change = merge(body)
    if dry_run:
        activation = await load(repository, client, activation_id)
        would_be, plan = await service.plan_update(activation, change)
        answer_body = DryRunOut.model_validate({"activation": activation_view(would_be), "plan": plan})
        return JSONResponse(answer_body.model_dump(mode="json"), status_code=200)
    ident = parse_id(activation_id)
    key = parse_idempotency_key(idempotency_key)
    wait = parse_prefer_wait(prefer)
    canonical = json.dumps(body.model_dump(mode="json", exclude_unset=True), sort_keys=True).encode()
    outcome = await service.update(ident, client, change, canonical=canonical, key=key, if_match=if_match)
    return await answer(outcome, ident, client, service=service, repository=repository, watcher=watcher, wait=wait)

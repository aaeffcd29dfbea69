"""Operations of an activation (contract §9, §11): pause, resume, retire, the v1 rollback, and
reading the operation queue. HTTP only: the decisions are the OperationService's."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from app.domain.lifecycle import OperationStatus
from app.domain.model import Activation
from app.domain.workflows import OperationKind
from app.services.operations import etag_of

from .dependencies import Client, Operations, Repository, Watcher
from .idempotency import parse_idempotency_key, parse_prefer_wait
from .problems import ProblemError, problem_responses
from .schemas import ActivationOut, OperationList, OperationOut
from .views import activation_view, operation_view

if TYPE_CHECKING:
    from app.adapters.db.notifications import Notifications
    from app.adapters.db.repository import ActivationRepository
    from app.services.operations import MutationOutcome, OperationService

# Under the "activations" tag with the rest: generated clients keep their module paths (rollback was
# there in v1), and every use of an activation is in one place.
router = APIRouter(tags=["activations"])

POLL_HINT_SECONDS = "1"
_WAIT_POLL_SECONDS = 1.0


IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="Required: 1 to 255 visible ASCII characters.")
]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="The activation's ETag; stale: 412.")]
Prefer = Annotated[str | None, Header(alias="Prefer", description="`wait=N`, N ≤ 60 seconds.")]


def activation_response(
    activation: Activation, status_code: int, *, operation_id: uuid.UUID | None = None, replayed: bool = False
) -> Response:
    headers = {"ETag": etag_of(activation.revision)}
    headers["Location"] = (
        f"/activations/{activation.id}/operations/{operation_id}" if operation_id else f"/activations/{activation.id}"
    )
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if not activation.status.terminal or activation.queued_operations:
        headers["Retry-After"] = POLL_HINT_SECONDS
    return JSONResponse(activation_view(activation).model_dump(mode="json"), status_code=status_code, headers=headers)


def parse_id(value: str, what: str = "activation") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ProblemError(404, "not-found", "Not found", f"no {what} {value}") from None


async def load(repository: ActivationRepository, client: str, activation_id: str) -> Activation:
    activation = await repository.get(parse_id(activation_id), client_id=client)
    if activation is None:
        raise ProblemError(404, "not-found", "Not found", f"no activation {activation_id}")
    return activation


async def answer(
    outcome: MutationOutcome,
    activation_id: uuid.UUID,
    client: str,
    *,
    service: OperationService,
    repository: ActivationRepository,
    watcher: Notifications,
    wait: float | None,
) -> Response:
    """The activation after the mutation; with `Prefer: wait`, once its operation has ended (200)."""
    status_code = outcome.status_code
    if wait is not None and outcome.operation_id is not None and status_code == 202:
        # Only the operation is read while waiting; the activation once, for the answer.
        deadline = time.monotonic() + wait
        with watcher.watch(activation_id) as changed:
            while True:
                changed.clear()
                operation = await service.get_queued_operation(activation_id, outcome.operation_id)
                remaining = deadline - time.monotonic()
                ended = operation is not None and operation.status in (
                    OperationStatus.SUCCEEDED,
                    OperationStatus.FAILED,
                )
                if ended or remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(_WAIT_POLL_SECONDS, remaining))
        if ended:
            status_code = 200
    activation = await repository.get(activation_id, client_id=client)
    if activation is None:
        raise ProblemError(404, "not-found", "Not found", f"no activation {activation_id}")
    response = activation_response(
        activation, status_code, operation_id=outcome.operation_id, replayed=outcome.replayed
    )
    if wait is not None and status_code == 200 and outcome.status_code == 202:
        response.headers["Preference-Applied"] = f"wait={int(wait)}"
    return response


def mutation_doc(summary: str, description: str, operation_id: str) -> dict[str, object]:
    return {
        "operation_id": operation_id,
        "summary": summary,
        "description": description,
        "status_code": 202,
        "response_model": ActivationOut,
        "responses": {
            200: {
                "model": ActivationOut,
                "description": "Nothing new to do, or the operation ended within `Prefer: wait`.",
            },
            202: {"model": ActivationOut, "description": "Accepted; `Location` names the operation."},
            **problem_responses(400, 401, 404, 409, 412, 422, 503),
        },
    }


async def _change_state(
    kind: OperationKind,
    activation_id: str,
    client: str,
    key: str | None,
    if_match: str | None,
    prefer: str | None,
    service: OperationService,
    repository: ActivationRepository,
    watcher: Notifications,
) -> Response:
    ident = parse_id(activation_id)
    parsed_key = parse_idempotency_key(key)
    wait = parse_prefer_wait(prefer)
    outcome = await service.change_state(ident, client, kind, key=parsed_key, if_match=if_match)
    return await answer(outcome, ident, client, service=service, repository=repository, watcher=watcher, wait=wait)


@router.post(
    "/activations/{activation_id}/pause",
    **mutation_doc(  # type: ignore[arg-type]
        "Pause an activation",
        "Disables the dataflow (Adobe's flow action `disable`): it exports nothing until resumed. `200` when the "
        "activation is already paused (or a pause is on its way); `409 activation-not-live` unless it is live.",
        "pauseActivation",
    ),
)
async def pause_activation(
    activation_id: str,
    client: Client,
    service: Operations,
    repository: Repository,
    watcher: Watcher,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
    prefer: Prefer = None,
) -> Response:
    return await _change_state(
        OperationKind.PAUSE, activation_id, client, idempotency_key, if_match, prefer, service, repository, watcher
    )


@router.post(
    "/activations/{activation_id}/resume",
    **mutation_doc(  # type: ignore[arg-type]
        "Resume an activation",
        "Enables the dataflow again (Adobe's flow action `enable`). `200` when the activation is already enabled "
        "(or a resume is on its way); `409 activation-not-live` unless it is live.",
        "resumeActivation",
    ),
)
async def resume_activation(
    activation_id: str,
    client: Client,
    service: Operations,
    repository: Repository,
    watcher: Watcher,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
    prefer: Prefer = None,
) -> Response:
    return await _change_state(
        OperationKind.RESUME, activation_id, client, idempotency_key, if_match, prefer, service, repository, watcher
    )


@router.delete(
    "/activations/{activation_id}",
    **mutation_doc(  # type: ignore[arg-type]
        "Retire an activation",
        "Tears the activation down (contract §2/§4: `rolling_back` → `rolled_back`), whatever its status; "
        "operations still waiting in its queue are cancelled. `200` when it is already being torn down or gone.",
        "retireActivation",
    ),
)
async def retire_activation(
    activation_id: str,
    client: Client,
    service: Operations,
    repository: Repository,
    watcher: Watcher,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
    prefer: Prefer = None,
) -> Response:
    ident = parse_id(activation_id)
    key = parse_idempotency_key(idempotency_key)
    wait = parse_prefer_wait(prefer)
    outcome = await service.tear_down(ident, client, OperationKind.RETIRE, key=key, if_match=if_match)
    return await answer(outcome, ident, client, service=service, repository=repository, watcher=watcher, wait=wait)


@router.post(
    "/activations/{activation_id}/rollback",
    operation_id="rollbackActivation",
    summary="Roll an activation back",
    description=(
        "Deletes every upstream resource the activation created, in reverse order. A running "
        "activation stops at its next step boundary first. `202` when a rollback was started or "
        "requested; `200` with the current state when one is already under way or done. An "
        "`Idempotency-Key` is optional here (contract v1)."
    ),
    status_code=202,
    response_model=ActivationOut,
    responses={
        200: {"model": ActivationOut, "description": "Already rolling back or rolled back."},
        **problem_responses(401, 404, 412, 503),
    },
)
async def rollback_activation(
    activation_id: str,
    client: Client,
    service: Operations,
    repository: Repository,
    watcher: Watcher,
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> Response:
    ident = parse_id(activation_id)
    key = parse_idempotency_key(idempotency_key) if idempotency_key is not None else None
    outcome = await service.tear_down(ident, client, OperationKind.ROLLBACK, key=key, if_match=if_match)
    return await answer(outcome, ident, client, service=service, repository=repository, watcher=watcher, wait=None)


@router.get(
    "/activations/{activation_id}/operations",
    operation_id="listOperations",
    summary="The operations of an activation, newest first",
    response_model=OperationList,
    responses=problem_responses(400, 401, 404, 503),
)
async def list_operations(
    activation_id: str,
    client: Client,
    service: Operations,
    repository: Repository,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=40, description="`nextCursor` of the previous page.")] = None,
) -> OperationList:
    activation = await load(repository, client, activation_id)
    before: int | None = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()):
            raise ProblemError(400, "invalid-cursor", "Invalid cursor", "the cursor was not issued by this service")
        before = int(cursor)
    items, next_before = await service.list_operations(activation, limit=limit, before=before)
    return OperationList(
        items=[operation_view(op) for op in items], nextCursor=str(next_before) if next_before is not None else None
    )


@router.get(
    "/activations/{activation_id}/operations/{operation_id}",
    operation_id="getOperation",
    summary="One operation of an activation",
    response_model=OperationOut,
    responses=problem_responses(401, 404, 503),
)
async def get_operation(
    activation_id: str, operation_id: str, client: Client, service: Operations, repository: Repository
) -> OperationOut:
    activation = await load(repository, client, activation_id)
    operation = await service.get_operation(activation, parse_id(operation_id, "operation"))
    if operation is None:
        raise ProblemError(404, "not-found", "Not found", f"no operation {operation_id}")
    return operation_view(operation)

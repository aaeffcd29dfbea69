"""/activations: create (idempotent) and its dry run, read, list, events and rollback."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import SecretStr, ValidationError

from app.domain.lifecycle import ActivationStatus
from app.domain.model import Activation
from app.domain.paging import decode_cursor
from app.domain.plans import ACTIVATION_ID
from app.services.activations import CreateCommand
from app.services.operations import etag_of

from .dependencies import Activations, Client, Repository
from .idempotency import canonical_json, parse_idempotency_key, parse_prefer_wait
from .problems import FieldError, ProblemError, problem_responses, validation_problem
from .schemas import (
    TAGGED_UNIONS,
    ActivationList,
    ActivationOut,
    ActivationRequest,
    DryRunOut,
    EventList,
)
from .views import activation_view, event_view

if TYPE_CHECKING:
    from app.adapters.db.repository import ActivationRepository
    from app.services.activations import ActivationService

router = APIRouter(tags=["activations"])

MAX_BODY_BYTES = 64 * 1024
POLL_HINT_SECONDS = "1"


def _activation_response(activation: Activation, status_code: int, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"Location": f"/activations/{activation.id}", **(headers or {})}
    if not activation.status.terminal:
        all_headers["Retry-After"] = POLL_HINT_SECONDS
    body = activation_view(activation).model_dump(mode="json")
    return JSONResponse(body, status_code=status_code, headers=all_headers)


async def _read_json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ProblemError(
            415, "unsupported-media-type", "Unsupported media type", "the request body must be application/json"
        )
    declared = request.headers.get("content-length", "")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses. float() reads any number of
    # digits (int() stops at 4300). The HTTP server normally refuses a malformed Content-Length first.
    if declared.isascii() and declared.isdigit() and float(declared) > MAX_BODY_BYTES:
        raise ProblemError(413, "payload-too-large", "Payload too large", "the body is larger than 64 KiB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProblemError(413, "payload-too-large", "Payload too large", "the body is larger than 64 KiB")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks), object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProblemError(
            400, "malformed-json", "Malformed JSON", f"the body is not valid JSON ({type(exc).__name__})"
        ) from None
    except _StrictJsonError as exc:
        raise ProblemError(400, "malformed-json", "Malformed JSON", f"the body is not valid JSON ({exc})") from None
    except RecursionError:  # 64 KiB of "[" is enough to exhaust the parser's stack
        raise ProblemError(400, "malformed-json", "Malformed JSON", "the body is nested too deeply") from None


class _StrictJsonError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key means two parsers may disagree on the value (the last one wins here, the first
    # elsewhere): refuse it rather than validate one reading and fingerprint another.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _StrictJsonError("an object repeats a key")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise _StrictJsonError(f"{name} is not JSON")


@router.post(
    "/activations",
    operation_id="createActivation",
    summary="Create an activation",
    description=(
        "Accepts an activation and runs its saga in the background. Requires an `Idempotency-Key`: "
        "repeating a request with the same key and body returns the same activation with "
        "`Idempotent-Replayed: true` and never starts a second saga. With `Prefer: wait=N` (N ≤ 60) "
        "the response waits for a terminal status and is then `200`. A create that would exceed Adobe's "
        "dataflow limit of the sandbox (`DATAFLOW_LIMIT_PER_SANDBOX`) answers `409` "
        "`dataflow-limit-reached`: change an existing activation in place instead. With `?dryRun=true`: "
        "validated the same way (the destination catalog and the limit included), `200` with the activation "
        "it would become and the upstream calls that would write, in order, secrets masked (`***`) and ids "
        "not created yet as placeholders (`{activation_id}`, `{create_flow}`, …); nothing is written, no "
        "`Idempotency-Key` needed."
    ),
    status_code=202,
    response_model=ActivationOut,
    responses={
        200: {
            "description": "Terminal status reached within `Prefer: wait`; or the dry run's answer "
            "(`DryRunOut`, with `?dryRun=true`).",
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/ActivationOut"},
                            {"$ref": "#/components/schemas/DryRunOut"},
                        ]
                    }
                }
            },
        },
        202: {"model": ActivationOut, "description": "Accepted; poll the `Location`."},
        **problem_responses(400, 401, 409, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ActivationRequest"}}},
        }
    },
)
async def create_activation(
    request: Request,
    client: Client,
    service: Activations,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="1 to 255 visible ASCII characters; required (not for a dry run)."),
    ] = None,
    prefer: Annotated[str | None, Header(alias="Prefer", description="`wait=N`, N ≤ 60 seconds.")] = None,
    dry_run: Annotated[bool, Query(alias="dryRun", description="Plan only: write nothing.")] = False,
) -> Response:
    if dry_run:
        command = await _create_command(request, client, key="", service=service)
        would_be, plan = await service.plan(command)
        # The activation does not exist: its id is the placeholder the plan's resource names carry.
        view = activation_view(would_be).model_copy(update={"id": ACTIVATION_ID})
        answer_body = DryRunOut.model_validate({"activation": view, "plan": plan})
        return JSONResponse(answer_body.model_dump(mode="json"), status_code=200)
    key = parse_idempotency_key(idempotency_key)
    command = await _create_command(request, client, key=key, service=service)
    wait = parse_prefer_wait(prefer)
    answer = await service.create(dataclasses.replace(command, wait=wait))
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if answer.waited is not None:
        headers["Preference-Applied"] = f"wait={int(answer.waited)}"
    return _activation_response(answer.activation, answer.status_code, headers)


async def _create_command(request: Request, client: str, *, key: str, service: ActivationService) -> CreateCommand:
    """The body, validated by its own rules and then by those that depend on settings (422)."""
    document = await _read_json_body(request)
    try:
        body = ActivationRequest.model_validate(document)
    except ValidationError as exc:
        raise validation_problem(exc, tagged_unions=TAGGED_UNIONS) from None
    storage = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in body.storage.model_dump().items()
    }
    command = CreateCommand(
        client_id=client,
        key=key,
        canonical=canonical_json(document),
        destination=body.destination,
        sandbox=body.sandbox,
        name=body.name,
        storage=storage,
        segments=[segment.normalized() for segment in body.segments],
        attributes=list(body.attributes),
        drift_policy=body.driftPolicy,
        wait=None,
    )
    refused = service.check(command)
    if refused:
        raise ProblemError(
            422,
            "validation-error",
            "Invalid request",
            f"{len(refused)} field(s) failed validation",
            errors=[FieldError(path=path, message=message) for path, message in refused],
        )
    return command


async def _load(repository: ActivationRepository, client: str, activation_id: str) -> Activation:
    try:
        ident = uuid.UUID(activation_id)
    except ValueError:
        ident = None
    activation = await repository.get(ident, client_id=client) if ident else None
    if activation is None:
        raise ProblemError(404, "not-found", "Not found", f"no activation {activation_id}")
    return activation


@router.get(
    "/activations/{activation_id}",
    operation_id="getActivation",
    summary="Get an activation",
    response_model=ActivationOut,
    responses=problem_responses(401, 404, 503),
)
async def get_activation(client: Client, repository: Repository, activation_id: str) -> Response:
    activation = await _load(repository, client, activation_id)
    return _activation_response(activation, 200, {"ETag": etag_of(activation.revision)})


@router.get(
    "/activations",
    operation_id="listActivations",
    summary="List activations, newest first",
    response_model=ActivationList,
    responses=problem_responses(400, 401, 422, 503),
)
async def list_activations(
    client: Client,
    repository: Repository,
    status: Annotated[ActivationStatus | None, Query(description="Only activations in this status.")] = None,
    destination: Annotated[str | None, Query(max_length=256, description="Destination name, any case.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="`nextCursor` of the previous page.")] = None,
) -> ActivationList:
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except (ValueError, UnicodeDecodeError):
            raise ProblemError(
                400, "invalid-cursor", "Invalid cursor", "the cursor was not issued by this service"
            ) from None
    items, next_cursor = await repository.list_page(
        client_id=client, limit=limit, status=status, destination=destination, cursor=cursor
    )
    return ActivationList(items=[activation_view(a) for a in items], nextCursor=next_cursor)


@router.get(
    "/activations/{activation_id}/events",
    operation_id="listActivationEvents",
    summary="The timeline of an activation: state changes and every upstream call",
    response_model=EventList,
    responses=problem_responses(401, 404),
)
async def list_activation_events(client: Client, repository: Repository, activation_id: str) -> EventList:
    activation = await _load(repository, client, activation_id)
    rows = await repository.events(activation.id)
    return EventList(items=[event_view(row) for row in rows])

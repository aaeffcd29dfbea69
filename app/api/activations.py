"""/activations: create (idempotent), read, list, events and rollback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.domain.lifecycle import ActivationStatus
from app.domain.model import Activation, NewActivation
from app.domain.paging import decode_cursor
from app.domain.sftp_hosts import sftp_host_refusal
from app.domain.workflows import WORKFLOWS, OperationKind

from .auth import current_client
from .destinations import catalog_refusal
from .idempotency import canonical_json, parse_idempotency_key, parse_prefer_wait
from .problems import FieldError, ProblemError, problem_responses, validation_problem
from .schemas import (
    TAGGED_UNIONS,
    ActivationList,
    ActivationOut,
    ActivationRequest,
    EventList,
    S3Storage,
    SftpStorage,
)
from .views import activation_view, event_view

if TYPE_CHECKING:
    from app.runtime import Runtime

router = APIRouter(tags=["activations"])

MAX_BODY_BYTES = 64 * 1024
POLL_HINT_SECONDS = "1"
# A first request that said Prefer: wait decides its status within 60 s; past that it surely died.
_UNDECIDED_GRACE = timedelta(seconds=75)
# Behind the terminal notification, how often a `Prefer: wait` still reads the status.
_WAIT_POLL_SECONDS = 1.0

Client = Annotated[str, Depends(current_client)]
# New activations get the newest create workflow this build has (see domain/workflows.py).
CREATE_WORKFLOW = WORKFLOWS.current(OperationKind.CREATE)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


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


def _split_storage(request_body: ActivationRequest) -> tuple[dict[str, Any], dict[str, str]]:
    """Storage settings to keep in plain columns, and the secrets to keep only encrypted."""
    storage = request_body.storage
    if isinstance(storage, S3Storage):
        return (
            {"type": "s3", "accessId": storage.accessId, "bucketName": storage.bucketName, "path": storage.path},
            {"secretKey": storage.secretKey.get_secret_value()},
        )
    method = "password" if storage.password is not None else "sshKey"
    secret = storage.password if storage.password is not None else storage.sshKey
    assert secret is not None
    return (
        {
            "type": "sftp",
            "host": storage.host,
            "port": storage.port,
            "username": storage.username,
            "path": storage.path,
            "authMethod": method,
        },
        {method: secret.get_secret_value()},
    )


@router.post(
    "/activations",
    operation_id="createActivation",
    summary="Create an activation",
    description=(
        "Accepts an activation and runs its saga in the background. Requires an `Idempotency-Key`: "
        "repeating a request with the same key and body returns the same activation with "
        "`Idempotent-Replayed: true` and never starts a second saga. With `Prefer: wait=N` (N ≤ 60) "
        "the response waits for a terminal status and is then `200`."
    ),
    status_code=202,
    response_model=ActivationOut,
    responses={
        200: {"model": ActivationOut, "description": "Terminal status reached within `Prefer: wait`."},
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
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="1 to 255 visible ASCII characters; required."),
    ] = None,
    prefer: Annotated[str | None, Header(alias="Prefer", description="`wait=N`, N ≤ 60 seconds.")] = None,
) -> Response:
    runtime = _runtime(request)
    key = parse_idempotency_key(idempotency_key)
    document = await _read_json_body(request)
    try:
        body = ActivationRequest.model_validate(document)
    except ValidationError as exc:
        raise validation_problem(exc, tagged_unions=TAGGED_UNIONS) from None
    sandbox = body.sandbox or runtime.settings.adobe_sandbox
    # The rules that depend on settings, after those of the body alone.
    refused: list[FieldError] = []
    if sandbox not in runtime.settings.sandboxes:
        refused.append(FieldError(path="/sandbox", message="sandbox is not on the allow-list"))
    if isinstance(body.storage, SftpStorage):
        reason = sftp_host_refusal(body.storage.host, runtime.settings.sftp_host_allow_list)
        if reason is not None:
            refused.append(FieldError(path="/storage/host", message=reason))
    if refused:
        raise ProblemError(
            422, "validation-error", "Invalid request", f"{len(refused)} field(s) failed validation", errors=refused
        )
    wait = parse_prefer_wait(prefer)
    # Last: the one check that may call Adobe (the catalog, cached; bounded). A request refused on its
    # own never waits for it; an unreadable catalog accepts the request for the saga to resolve.
    unsupported = await catalog_refusal(runtime, body)
    canonical = canonical_json(document)
    if unsupported is not None:
        # A retry of a request accepted while the catalog could not be read is still its replay.
        earlier = await runtime.intake.existing(client, key)
        if earlier is not None:
            return await _replay(runtime, client, key, canonical, earlier)
        raise ProblemError(
            422, "validation-error", "Invalid request", "1 field(s) failed validation", errors=[unsupported]
        )
    storage, secrets = _split_storage(body)
    new = NewActivation(
        id=uuid.uuid4(),
        client_id=client,
        destination_name=body.destination,
        sandbox=sandbox,
        name=body.name,
        storage=storage,
        credentials_ciphertext=runtime.cipher.encrypt(secrets),
        segments=[segment.normalized() for segment in body.segments],
        attributes=list(body.attributes),
        step_names=CREATE_WORKFLOW.step_names,
        workflow_version=CREATE_WORKFLOW.version,
    )
    outcome = await runtime.intake.create_idempotent(
        new, key=key, fingerprint=runtime.cipher.fingerprint(canonical), response_status=None if wait else 202
    )
    if not outcome.created:
        return await _replay(runtime, client, key, canonical, outcome)
    runtime.metrics.activations_created.inc()
    if wait is None:
        return _activation_response(new.as_pending(outcome.key_created_at), 202)
    activation = await _wait_for_terminal(runtime, new.id, wait)
    status_code = 200 if activation.status.terminal else 202
    await runtime.intake.record_response_status(client, key, status_code)
    headers = {"Preference-Applied": f"wait={int(wait)}"} if status_code == 200 else {}
    return _activation_response(activation, status_code, headers)


async def _replay(runtime: Runtime, client: str, key: str, canonical: bytes, outcome: Any) -> Response:
    if not runtime.cipher.fingerprint_matches(canonical, outcome.request_fingerprint):
        raise ProblemError(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            "this Idempotency-Key was already used with a different request body",
        )
    status_code = outcome.response_status
    if status_code is None:
        if datetime.now(UTC) - outcome.key_created_at < _UNDECIDED_GRACE:
            raise ProblemError(
                409,
                "request-in-progress",
                "Request in progress",
                "a request with this Idempotency-Key is still being processed; retry later",
                headers={"Retry-After": POLL_HINT_SECONDS},
            )
        status_code = 202
    activation = await runtime.repository.get(outcome.activation_id, client_id=client)
    if activation is None:  # the key outlived its activation: never start a second saga
        raise ProblemError(
            409,
            "idempotency-key-orphaned",
            "Idempotency-Key already used",
            "this Idempotency-Key belongs to an activation that no longer exists",
        )
    return _activation_response(activation, status_code, {"Idempotent-Replayed": "true"})


async def _wait_for_terminal(runtime: Runtime, activation_id: uuid.UUID, wait: float) -> Activation:
    deadline = time.monotonic() + wait
    # Woken by the worker's NOTIFY on the terminal transition (milliseconds, where a 100 ms poll
    # added 50 ms on average); the status is still read every _WAIT_POLL_SECONDS in case a
    # notification was lost while the listener reconnected.
    with runtime.notifications.watch(activation_id) as changed:
        while True:
            changed.clear()
            activation = await runtime.intake.current(activation_id)
            if activation is None:
                raise LookupError(f"activation {activation_id} does not exist")
            remaining = deadline - time.monotonic()
            if activation.status.terminal or remaining <= 0:
                return activation
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(_WAIT_POLL_SECONDS, remaining))


async def _load(request: Request, client: str, activation_id: str) -> Activation:
    try:
        ident = uuid.UUID(activation_id)
    except ValueError:
        ident = None
    activation = await _runtime(request).repository.get(ident, client_id=client) if ident else None
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
async def get_activation(request: Request, client: Client, activation_id: str) -> Response:
    activation = await _load(request, client, activation_id)
    return _activation_response(activation, 200, {"ETag": f'"r{activation.revision}"'})


@router.get(
    "/activations",
    operation_id="listActivations",
    summary="List activations, newest first",
    response_model=ActivationList,
    responses=problem_responses(400, 401, 422, 503),
)
async def list_activations(
    request: Request,
    client: Client,
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
    items, next_cursor = await _runtime(request).repository.list_page(
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
async def list_activation_events(request: Request, client: Client, activation_id: str) -> EventList:
    activation = await _load(request, client, activation_id)
    rows = await _runtime(request).repository.events(activation.id)
    return EventList(items=[event_view(row) for row in rows])

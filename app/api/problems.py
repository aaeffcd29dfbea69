"""RFC 9457 problem details for every 4xx and 5xx (contract §7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.services.problems import ServiceProblem

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:activation-gateway:problem:"

log = structlog.get_logger(__name__)


class FieldError(BaseModel):
    path: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem. ``type`` is a stable URN that clients can switch on."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(type=PROBLEM_BASE + slug, title=title, status=status, detail=detail, errors=errors)
        self.headers = headers or {}


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def validation_problem(
    exc: ValidationError | RequestValidationError,
    *,
    prefix: str = "",
    tagged_unions: Mapping[str, frozenset[str]] | None = None,
) -> ProblemError:
    errors = [
        FieldError(path=_json_path(prefix, err, tagged_unions or {}), message=_message(err)) for err in exc.errors()
    ]
    return ProblemError(
        422,
        "validation-error",
        "Invalid request",
        f"{len(errors)} field(s) failed validation",
        errors=errors,
    )


def _json_path(prefix: str, err: Any, tagged_unions: Mapping[str, frozenset[str]]) -> str:
    """A JSON Pointer (RFC 6901) into the request document; "/" stands for the whole document."""
    loc: Sequence[Any] = err.get("loc", ())
    parts: list[str] = []
    tags: frozenset[str] = frozenset()
    for index, part in enumerate(loc):
        if index == 0 and part == "body":  # FastAPI's location marker, not part of the document
            continue
        # pydantic puts the tag of a discriminated union right after the field; it is not in the document.
        if part in tags:
            tags = frozenset()
            continue
        tags = tagged_unions.get(str(part), frozenset())
        parts.append(str(part))
    ctx = err.get("ctx") or {}
    if err.get("type") in ("union_tag_not_found", "union_tag_invalid") and ctx.get("discriminator"):
        parts.append(str(ctx["discriminator"]).strip("'\""))  # point at the tag field itself
    elif err.get("type") == "invalid_field" and ctx.get("pointer"):
        parts.extend(str(ctx["pointer"]).split("/"))  # a model-level rule naming one of its fields
    escaped = [part.replace("~", "~0").replace("/", "~1") for part in parts]
    return "/".join([prefix.rstrip("/"), *escaped]) if escaped else (prefix or "/")


def _message(err: Any) -> str:
    # Never echo the offending value: it might be a secret. pydantic's messages name the rule, not the
    # input, except for a few types rewritten here.
    kind = err.get("type")
    ctx = err.get("ctx") or {}
    if kind == "union_tag_invalid":
        return f"must be one of {ctx.get('expected_tags', 'the documented values')}"
    if kind == "union_tag_not_found":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition-failed", "Precondition failed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Invalid request"),
    500: ("internal-error", "Internal server error"),
    503: ("database-unavailable", "Service unavailable"),  # of 503s, the one not raised as a ProblemError
}
# How soon a caller may retry when the database did not answer (it usually comes back in seconds).
_DATABASE_RETRY_AFTER_SECONDS = "2"


def install_problem_handlers(app: FastAPI, *, database_unavailable: Sequence[type[Exception]] = ()) -> None:
    """``database_unavailable``: the exceptions that mean the database did not answer (503)."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        exc.problem.instance = request.url.path
        return problem_response(exc.problem, exc.headers)

    async def on_service_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceProblem)
        problem = Problem(
            type=PROBLEM_BASE + exc.slug,
            title=exc.title,
            status=exc.status,
            detail=exc.detail,
            instance=request.url.path,
            errors=[FieldError(path=path, message=message) for path, message in exc.errors] or None,
        )
        return problem_response(problem, exc.headers)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        problem = Problem(
            type=PROBLEM_BASE + slug, title=title, status=exc.status_code, detail=detail, instance=request.url.path
        )
        return problem_response(problem, dict(exc.headers or {}))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problem = validation_problem(exc, prefix="").problem
        problem.instance = request.url.path
        return problem_response(problem)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", path=request.url.path, error_type=type(exc).__name__)
        return _server_problem(request, 500, "the service failed to handle the request; it has been logged")

    async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # A handler of its own (not the catch-all): the answer is a clean 503 and the caller's
        # keep-alive connection stays open.
        log.warning("database unavailable", path=request.url.path, error_type=type(exc).__name__)
        detail = "the database did not answer; nothing was changed, retry shortly"
        return _server_problem(request, 503, detail, {"Retry-After": _DATABASE_RETRY_AFTER_SECONDS})

    for database_error in database_unavailable:
        app.add_exception_handler(database_error, on_database_unavailable)
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(ServiceProblem, on_service_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)


def _server_problem(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    slug, title = _STATUS_SLUGS[status]
    problem = Problem(type=PROBLEM_BASE + slug, title=title, status=status, detail=detail, instance=request.url.path)
    return problem_response(problem, headers)


# Declared on every operation so generated clients know the error shape.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": _STATUS_SLUGS.get(status, ("error", "Error"))[1],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }

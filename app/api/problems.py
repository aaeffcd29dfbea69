"""RFC 9457 problem details for every 4xx and 5xx (contract §7)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def validation_problem(exc: ValidationError | RequestValidationError, *, prefix: str = "") -> ProblemError:
    errors = [FieldError(path=_json_path(prefix, err.get("loc", ())), message=_message(err)) for err in exc.errors()]
    return ProblemError(
        422,
        "validation-error",
        "Invalid request",
        f"{len(errors)} field(s) failed validation",
        errors=errors,
    )


def _json_path(prefix: str, loc: tuple[Any, ...] | list[Any]) -> str:
    # pydantic adds the discriminator tag as a location element; it is not part of the document.
    parts = [str(p) for p in loc if p not in ("body",) and not (isinstance(p, str) and p in ("s3", "sftp"))]
    return "/".join([prefix.rstrip("/"), *parts]) if parts else (prefix or "/")


def _message(err: Any) -> str:
    # Never echo the offending value: it might be a secret.
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
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Invalid request"),
    500: ("internal-error", "Internal server error"),
}


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        exc.problem.instance = request.url.path
        return problem_response(exc.problem, exc.headers)

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
        problem = Problem(
            type=PROBLEM_BASE + "internal-error",
            title="Internal server error",
            status=500,
            detail="the service failed to handle the request; it has been logged",
            instance=request.url.path,
        )
        return problem_response(problem)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)


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

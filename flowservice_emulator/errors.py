"""Error bodies in the shapes Adobe returns them.

Three families exist (flow-service.md Part 2 §6.1):

* Flow Service errors (current format): ``type`` URI ``https://ns.adobe.com/aep/errors/FLOW-<code>-<status>``,
  ``title``, ``status``, ``report`` and the legacy ``errorMessage``/``errorDetails`` pair, which the Dest spec
  examples still show and older clients read. Only that pair (the reduced form of the Dest spec examples)
  answers a missing field, whose 422 has no catalog code (:func:`missing_field`).
* Adobe I/O gateway errors, produced before the request reaches Flow Service:
  ``{"error_code": "401013", "message": "..."}`` (``error_code`` as a string, as troubleshooting.md shows it).
* IMS OAuth errors: ``{"error": "invalid_client", "error_description": "..."}`` (RFC 6749 §5.2; Adobe
  documents no IMS error bodies, so the standard shape is the most plausible one).

Handlers raise :class:`ApiError`; the app's exception handler renders it with the request id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from typing import Any

JsonObject = dict[str, Any]

ERROR_TYPE_PREFIX = "https://ns.adobe.com/aep/errors/FLOW-"


class FlowCode(Enum):
    """Flow Service catalog codes (help/sources/errors/flow-service-errors.md) as (code, status, title).

    Every code is the catalog's, with the catalog's status: the ``type`` URI ``FLOW-<code>-<status>``
    names a pair the catalog lists (1439 is the one the catalog itself contradicts, see below). A case
    Adobe documents with a status that no catalog code has (a missing field: 422) carries no code at all
    (:func:`missing_field`).
    """

    NOT_ENTITLED = ("1100", 400, "Bad Request")
    INTERNAL_ERROR = ("1102", 500, "Internal Server Error")
    SERVICE_UNAVAILABLE = ("1103", 503, "Service Unavailable")
    GATEWAY_TIMEOUT = ("1104", 504, "Gateway Timeout")
    LIMIT_WITH_COUNT = ("1401", 400, "Bad Request")
    IF_MATCH_MISSING = ("1403", 400, "Bad Request")
    VERSION_MISMATCH = ("1404", 412, "Precondition Failed")
    BODY_EMPTY = ("1405", 400, "Bad Request")
    STATE_NOT_ALLOWED = ("1410", 400, "Bad Request")
    INVALID_SPEC = ("1413", 400, "Bad Request")
    SPEC_NOT_UPDATABLE = ("1414", 400, "Bad Request")
    AUTH_SPEC_NOT_FOUND = ("1415", 400, "Bad Request")
    BASE_CONNECTION_IN_USE = ("1418", 400, "Bad Request")
    BAD_ORDERBY = ("1432", 400, "Bad Request")
    BAD_PATCH_OP = ("1434", 400, "Bad Request")
    # The catalog's table lists 1439 as -400, but its labels.md example answers FLOW-1439-404 with a 404.
    NOT_FOUND = ("1439", 404, "Resource not found")
    BAD_FILTER_OPERATOR = ("1440", 400, "Bad Request")
    BAD_QUERY_PARAM = ("1454", 400, "Bad Request")
    # "Patch instruction validation failed (e.g. missing field)": the catalog's only code for a body that
    # fails validation, so a create body's invalid field (and a body that is not JSON) answers it too.
    PATCH_INVALID = ("1455", 400, "Bad Request")
    INVALID_FIELD = ("1455", 400, "Bad Request")  # an alias of PATCH_INVALID (same value), named for bodies
    ORG_NOT_ALLOWED = ("2000", 401, "Unauthorized")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def title(self) -> str:
        return self.value[2]


@dataclass
class ApiError(Exception):
    """An error response; ``body`` is complete except for the request id, filled in at render time."""

    status: int
    body: JsonObject
    headers: dict[str, str] = field(default_factory=dict)

    def render(self, request_id: str) -> JsonObject:
        body = dict(self.body)
        report = body.get("report")
        if isinstance(report, dict):
            body["report"] = {**report, "request-id": request_id}
        return body


def flow_error(
    code: FlowCode,
    message: str,
    *,
    report: JsonObject | None = None,
    extra: JsonObject | None = None,
    status: int | None = None,
    title: str | None = None,
) -> ApiError:
    """A Flow Service error in the current format; ``status`` overrides the catalog's (fault injection)."""
    http_status = status if status is not None else code.status
    body: JsonObject = {
        "type": f"{ERROR_TYPE_PREFIX}{code.code}-{http_status}",
        "title": title or code.title,
        "status": http_status,
        "report": {"detailed-message": message, **(report or {})},
        "errorMessage": message,
        "errorDetails": message,
    }
    body.update(extra or {})
    return ApiError(http_status, body)


def not_found(kind: str, resource_id: str) -> ApiError:
    message = f"The requested {kind} resource {resource_id} is not found. Verify the resource ID before trying again."
    return flow_error(FlowCode.NOT_FOUND, message, report={"id": resource_id, "type": kind})


def missing_field(message: str) -> ApiError:
    """A required field missing from a create body: 422, as the Dest spec documents it ("connectionSpec.version
    'version' is required", x-summary "Missing required field") for POST ``/connections``,
    ``/sourceConnections`` and ``/targetConnections``.

    Adobe documents neither a code nor a body for it, and no catalog code has the status 422 (1455, "e.g.
    missing field", is a 400): so the body is the reduced form of the Dest spec's error examples, the
    ``errorMessage``/``errorDetails`` pair, with no ``type`` that would claim a code.
    """
    return ApiError(422, {"errorMessage": message, "errorDetails": message})


def generic_error(status: int) -> ApiError:
    """The body for an injected fault of an arbitrary status."""
    if status == 429:
        # Adobe I/O gateway throttling shape; Flow Service documents no 429 at all (Part 2 §11).
        return gateway_error(429, "429050", "Too many requests")
    by_status = {500: FlowCode.INTERNAL_ERROR, 503: FlowCode.SERVICE_UNAVAILABLE, 504: FlowCode.GATEWAY_TIMEOUT}
    code = by_status.get(status, FlowCode.INTERNAL_ERROR if status >= 500 else FlowCode.NOT_ENTITLED)
    phrase = _phrase(status)
    return flow_error(code, f"{phrase}. Please retry the request.", status=status, title=phrase)


def gateway_error(status: int, error_code: str, message: str) -> ApiError:
    """An Adobe I/O gateway error (troubleshooting.md), returned before Flow Service is reached."""
    return ApiError(status, {"error_code": error_code, "message": message})


def content_type_error() -> ApiError:
    """Verbatim shape from help/landing/troubleshooting.md."""
    return ApiError(
        400,
        {
            "type": "/placeholder/type/uri",
            "status": 400,
            "title": "BadRequestError",
            "detail": "A valid content-type must be specified",
        },
    )


def ims_error(status: int, error: str, description: str) -> ApiError:
    return ApiError(status, {"error": error, "error_description": description})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"

"""Typed upstream errors carrying what Adobe said: status, error code, message, request id."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from .redact import scrub

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class UpstreamError(Exception):
    """Base class: anything that went wrong talking to Adobe."""

    retryable: bool = False
    retry_after: float | None = None

    def to_problem(self) -> dict[str, Any]:
        raise NotImplementedError


class FlowServiceError(UpstreamError):
    def __init__(
        self,
        *,
        status: int,
        code: str | None,
        message: str,
        request_id: str | None,
        method: str,
        path: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{method} {path} → {status} {code or ''} {message}".strip())
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.retryable = status in RETRYABLE_STATUSES

    def to_problem(self) -> dict[str, Any]:
        return {
            "upstreamStatus": self.status,
            "upstreamCode": self.code,
            "upstreamMessage": self.message,
            "upstreamRequestId": self.request_id,
            "upstreamCall": f"{self.method} {self.path}",
        }

    @classmethod
    def from_response(cls, response: httpx.Response, *, path: str, redact: Sequence[str] = ()) -> FlowServiceError:
        """``redact``: the credentials the request carried; Adobe's text is scrubbed of them."""
        code, message = _parse_error_body(response, redact)
        return cls(
            status=response.status_code,
            code=code,
            message=message,
            request_id=response.headers.get("x-request-id"),
            method=response.request.method,
            path=path,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )


class UpstreamUnavailable(UpstreamError):
    """The call's outcome is unknown: timeout, refused or dropped connection."""

    retryable = True

    def __init__(self, *, method: str, path: str, reason: str) -> None:
        super().__init__(f"{method} {path}: {reason}")
        self.method = method
        self.path = path
        self.reason = reason

    def to_problem(self) -> dict[str, Any]:
        return {"upstreamStatus": None, "upstreamMessage": self.reason, "upstreamCall": f"{self.method} {self.path}"}


def parse_retry_after(value: str | None) -> float | None:
    """RFC 9110 Retry-After: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _parse_error_body(response: httpx.Response, redact: Sequence[str] = ()) -> tuple[str | None, str]:
    """Adobe has several error shapes (flow-service.md §6.1); take the code and message from any.
    Both are scrubbed before they are cut, so a truncation cannot split a secret past the scrubber."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, (scrub(response.text, redact)[:200] or response.reason_phrase)
    if not isinstance(body, dict):
        return None, response.reason_phrase
    code: str | None = None
    type_uri = body.get("type")
    if isinstance(type_uri, str) and "/FLOW-" in type_uri:
        code = type_uri.rsplit("/FLOW-", 1)[1]
    elif body.get("error_code") is not None:
        code = str(body["error_code"])
    elif isinstance(body.get("code"), str):
        code = body["code"]
    elif isinstance(body.get("error"), str):  # IMS: {"error": "invalid_client", "error_description": …}
        code = body["error"]
    if code is not None:
        code = scrub(code, redact)[:100]
    report = body.get("report") if isinstance(body.get("report"), dict) else {}
    message = (
        (report or {}).get("detailed-message")
        or body.get("errorMessage")
        or body.get("message")
        or body.get("detail")
        or body.get("title")
        or body.get("error_description")
        or response.reason_phrase
    )
    return code, scrub(str(message), redact)[:500]

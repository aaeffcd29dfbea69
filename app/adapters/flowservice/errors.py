"""Typed upstream errors carrying what Adobe said: status, error code, message, request id.

Everything taken from Adobe's answer is untrusted text: it is cleaned (``clean_text``) so that it can
be stored and logged, withheld if the request carried credentials (``redact``), and only then cut.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Sequence
from datetime import UTC

import httpx

from app.domain.ports import RETRYABLE_STATUSES, UpstreamError, UpstreamStatusError, UpstreamUnavailable

from .redact import CREDENTIALS_WITHHELD, reveals

__all__ = [
    "RETRYABLE_STATUSES",
    "FlowServiceError",
    "UpstreamError",
    "UpstreamUnavailable",
    "clean_text",
    "parse_retry_after",
]

_ASCII_DIGITS = re.compile(r"[0-9]+")  # not \d or str.isdigit(): both take "¹" and "٣"
# C0 controls but tab and newline, and DEL: PostgreSQL's jsonb refuses NUL, the rest garbles logs.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")  # lone ones: a str holds a valid pair as one character
# What may be kept of a code or request id when the request carried credentials.
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
CODE_LENGTH, REQUEST_ID_LENGTH = 100, 100
MESSAGE_LENGTH, RAW_MESSAGE_LENGTH = 500, 200  # from a JSON error body; from any other body


class FlowServiceError(UpstreamStatusError):
    """An error status from Adobe (or IMS), read from its answer."""

    @classmethod
    def from_response(cls, response: httpx.Response, *, path: str, redact: Sequence[str] = ()) -> FlowServiceError:
        """``redact``: the credentials the request carried. If there are any, Adobe's message is
        withheld, and its code and request id are kept only if they are plain tokens revealing none."""
        code, message, message_length = _parse_error_body(response)
        request_id = _optional_text(response.headers.get("x-request-id"))
        if redact:
            # Adobe may quote any part of a credential in any encoding; no scrubber can prove it
            # found them all. Status, code and request id still say what happened.
            code, request_id = _plain_token(code, redact), _plain_token(request_id, redact)
            message = CREDENTIALS_WITHHELD
        return cls(
            status=response.status_code,
            code=None if code is None else code[:CODE_LENGTH],
            message=message[:message_length],
            request_id=None if request_id is None else request_id[:REQUEST_ID_LENGTH],
            method=response.request.method,
            path=path,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )


def parse_retry_after(value: str | None) -> float | None:
    """RFC 9110 Retry-After: delta-seconds or an HTTP date. Anything else is ignored (None), and the
    retry policy's own backoff applies."""
    if not value:
        return None
    value = value.strip()
    if _ASCII_DIGITS.fullmatch(value):
        return float(value)  # float, not int: int() refuses more than 4300 digits
    if not value.isascii():  # email.utils reads other scripts' digits: "١٩٩٤" is 1994 to it
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # the asctime form carries no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def clean_text(text: str) -> str:
    """Upstream text made safe to store and log: C0 controls (but tab and newline) and DEL removed,
    lone surrogates replaced by U+FFFD. PostgreSQL's jsonb refuses NUL and lone surrogates; an error
    that cannot be recorded would crash the saga and repeat the call at every claim."""
    return _SURROGATES.sub("\ufffd", _CONTROLS.sub("", text))


def _optional_text(text: str | None) -> str | None:
    cleaned = clean_text(text) if text else None
    return cleaned or None


def _plain_token(value: str | None, secrets: Sequence[str]) -> str | None:
    if value is None or not _PLAIN_TOKEN.fullmatch(value) or reveals(value, secrets):
        return None
    return value


def _parse_error_body(response: httpx.Response) -> tuple[str | None, str, int]:
    """Adobe has several error shapes (flow-service.md §6.1); take the code and message from any,
    cleaned, and the length the message is to be cut to. They are not cut here: the search for
    credentials must see them whole, so that a cut cannot hide a piece of one from it."""
    reason = clean_text(response.reason_phrase)
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, clean_text(response.text) or reason, RAW_MESSAGE_LENGTH
    if not isinstance(body, dict):
        return None, reason, MESSAGE_LENGTH
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
    report = body.get("report") if isinstance(body.get("report"), dict) else {}
    message = (
        (report or {}).get("detailed-message")
        or body.get("errorMessage")
        or body.get("message")
        or body.get("detail")
        or body.get("title")
        or body.get("error_description")
        or reason
    )
    return _optional_text(code), clean_text(str(message)) or reason, MESSAGE_LENGTH

"""Numbers in headers are ASCII digits only: Prefer: wait, Retry-After, Content-Length (defect 8)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from app.adapters.flowservice.errors import parse_retry_after
from app.api.activations import _read_json_body
from app.api.idempotency import parse_prefer_wait
from app.api.problems import ProblemError

# Characters that str.isdigit() accepts and ASCII does not have.
# Superscripts, Arabic-Indic, fullwidth, Bengali and N'Ko digits.
UNICODE_DIGITS = ["²", "¹", "٣", "\uff15", "\u09ed", "\u07c2"]


# ------------------------------------------------------------------------------ Prefer: wait
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("respond-async", None),
        ("wait=5", 5.0),
        ("WAIT = 7", 7.0),
        ('wait="12"', 12.0),
        ("respond-async, wait=3; foo=bar", 3.0),
        ("wait=600", 60.0),  # clamped
        ("wait=007", 7.0),
        ("wait=" + "9" * 5000, 60.0),  # no int() digit limit in the way
        ("wait=2, wait=" + "²", 2.0),  # only the first wait counts (RFC 7240 §2)
    ],
)
def test_prefer_wait_in_ascii_digits(header: str | None, expected: float | None) -> None:
    assert parse_prefer_wait(header) == expected


@pytest.mark.parametrize(
    "value", [*UNICODE_DIGITS, "1²", '"٣"', "", '""', '"', "1.5", "-1", "+1", "1e3", "soon", " ", "0x10"]
)
def test_prefer_wait_that_is_not_ascii_digits_is_refused(value: str) -> None:
    with pytest.raises(ProblemError) as raised:
        parse_prefer_wait(f"wait={value}")
    assert raised.value.problem.status == 400
    assert raised.value.problem.type.endswith(":invalid-prefer")


def test_prefer_without_a_value_is_refused() -> None:
    with pytest.raises(ProblemError):
        parse_prefer_wait("respond-async, wait")


@given(st.text(max_size=30))
def test_prefer_wait_never_fails_otherwise(value: str) -> None:
    try:
        result = parse_prefer_wait(value)
    except ProblemError as exc:
        assert exc.problem.status == 400
    else:
        assert result is None or 0.0 <= result <= 60.0


# ------------------------------------------------------------------------------ Retry-After
@pytest.mark.parametrize("value", [*UNICODE_DIGITS, "1²", "-1", "1.5", "soon", "Sun, 06 Nov ١٩٩٤ 08:49:37 GMT"])
def test_retry_after_that_is_neither_digits_nor_a_date_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("9" * 5000) == float("9" * 5000)  # the retry policy clamps it
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(soon) or 0) <= 31
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0  # past: retry now
    # asctime has no zone: read as GMT, not as the local time of the process.
    asctime = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(time.time() + 60))
    assert 55 <= (parse_retry_after(asctime) or 0) <= 61


@given(st.text(max_size=40))
def test_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value)
    assert result is None or result >= 0.0


# ------------------------------------------------------------------------------ Content-Length
def _request(content_length: bytes, body: bytes) -> Request:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/activations",
        "headers": [(b"content-type", b"application/json"), (b"content-length", content_length)],
    }
    return Request(scope, receive)


@pytest.mark.parametrize("declared", ["²".encode("latin-1"), "٣".encode(), b"12x", b""])
def test_a_content_length_that_is_not_ascii_digits_does_not_decide(declared: bytes) -> None:
    # The HTTP server refuses these before the app sees them; were one to get through, the body's
    # real size decides, and nothing raises ValueError (a 500).
    assert asyncio.run(_read_json_body(_request(declared, b'{"a": 1}'))) == {"a": 1}


@pytest.mark.parametrize("declared", [b"65537", b"9" * 5000])
def test_a_declared_length_over_the_limit_is_refused_before_reading(declared: bytes) -> None:
    with pytest.raises(ProblemError) as raised:
        asyncio.run(_read_json_body(_request(declared, json.dumps({"a": 1}).encode())))
    assert raised.value.problem.status == 413

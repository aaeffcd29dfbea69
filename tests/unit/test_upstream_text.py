"""Adobe's error texts: cleaned so they can be stored (part of defect 4), and withheld so
that no credential in any form or piece gets through (defect 5)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adapters.flowservice.errors import FlowServiceError, clean_text
from app.adapters.flowservice.redact import (
    CREDENTIALS_WITHHELD,
    PIECE,
    reveals,
    sensitive_values,
)

PASSWORD = "p/w%9Zq&x!"
FLOWS = "https://platform.adobe.io/data/foundation/flowservice/flows"


def response(
    status: int = 400, *, body: object = None, text: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("POST", FLOWS)
    if text is not None:
        return httpx.Response(status, text=text, request=request, headers=headers)
    # json.dumps escapes NUL and lone surrogates, as a server's JSON would carry them.
    return httpx.Response(
        status, content=json.dumps(body).encode(), request=request, headers={**(headers or {}), "content-type": "json"}
    )


# ------------------------------------------------------------------------------ clean_text
def test_clean_text_removes_controls_and_replaces_lone_surrogates() -> None:
    assert clean_text("poison\x00text \ud800 end") == "poisontext \ufffd end"
    assert clean_text("a\tb\nc\rd\x1be\x7ff") == "a\tb\ncdef"
    assert clean_text("pair 😀 kept") == "pair 😀 kept"


@given(st.text())
def test_clean_text_is_storable_and_stable(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")  # no lone surrogate left: strict UTF-8 (and so jsonb) takes it
    assert "\x00" not in cleaned
    assert all(ch in "\t\n" or not (ord(ch) < 0x20 or ord(ch) == 0x7F) for ch in cleaned)
    assert clean_text(cleaned) == cleaned


def test_every_upstream_text_is_cleaned() -> None:
    poisoned = response(body={"code": "FLOW\x00-1", "message": "bad\x00 \udfff"}, headers={"x-request-id": "req\x01-1"})
    error = FlowServiceError.from_response(poisoned, path="/flows")
    assert (error.code, error.message, error.request_id) == ("FLOW-1", "bad \ufffd", "req-1")
    raw = FlowServiceError.from_response(response(502, text="<html>\x00gateway</html>"), path="/flows")
    assert raw.message == "<html>gateway</html>"
    empty = FlowServiceError.from_response(response(503, body={"message": "\x00\x01"}), path="/flows")
    assert empty.message == "Service Unavailable", "nothing left: the reason phrase stands in"


def test_texts_are_cut_after_cleaning() -> None:
    error = FlowServiceError.from_response(
        response(body={"code": "c" * 300, "message": "\x00" * 50 + "m" * 600}), path="/f"
    )
    assert error.code == "c" * 100 and error.message == "m" * 500


# ------------------------------------------------------------------------------ withholding
def forms(secret: str) -> list[str]:
    return [
        secret,
        secret[1 : 1 + PIECE] if len(secret) > PIECE else secret,  # a piece, or all of a short one
        secret[-PIECE:],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(json.dumps(secret)[1:-1].replace("/", "\\/"), safe=""),
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"user:{secret}".encode()).decode(),  # as in a Basic authorization
        base64.urlsafe_b64encode(f"xy{secret}".encode()).decode().rstrip("="),
    ]


@pytest.mark.parametrize("form", forms(PASSWORD))
def test_every_form_and_piece_is_found(form: str) -> None:
    assert reveals(f"Invalid auth params: {form} rejected", [PASSWORD])


@given(
    secret=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    before=st.text(max_size=10),
    after=st.text(max_size=10),
    choice=st.integers(min_value=0, max_value=9),
)
def test_any_secret_is_found_in_any_form(secret: str, before: str, after: str, choice: int) -> None:
    form = forms(secret)[choice]
    assert reveals(before + form + after, [secret])


def test_ordinary_text_reveals_nothing() -> None:
    assert not reveals("Connection spec not found for the flow", [PASSWORD, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYS3cr3tXYZ"])
    assert not reveals("anything", [])


def test_a_request_with_credentials_keeps_only_status_code_and_request_id() -> None:
    secrets = sensitive_values({"auth": {"params": {"password": PASSWORD, "host": "sftp.example.com"}}})
    echoed = response(
        body={"type": "https://ns.adobe.com/aep/errors/FLOW-2103-400", "report": {"detailed-message": "nothing"}},
        headers={"x-request-id": "4d9e2a1c-0b7f-4a55-9f3e-3c1f0b2a8d77"},
    )
    error = FlowServiceError.from_response(echoed, path="/connections", redact=secrets)
    assert error.message == CREDENTIALS_WITHHELD, "even a message that quotes nothing: none can be proven clean"
    assert (error.code, error.request_id, error.status) == ("2103-400", "4d9e2a1c-0b7f-4a55-9f3e-3c1f0b2a8d77", 400)


@pytest.mark.parametrize(
    "code", [PASSWORD[1:9], base64.b64encode(PASSWORD.encode()).decode().rstrip("="), "a b", "x" * 65, "é"]
)
def test_a_code_that_is_not_a_plain_token_revealing_nothing_is_dropped(code: str) -> None:
    error = FlowServiceError.from_response(
        response(body={"code": code, "message": PASSWORD}, headers={"x-request-id": PASSWORD}),
        path="/connections",
        redact=sensitive_values({"password": PASSWORD}),
    )
    assert error.code is None and error.request_id is None
    assert PASSWORD[:PIECE] not in str(error)


def test_a_short_password_counts_whole() -> None:
    secrets = sensitive_values({"password": "pw1"})
    assert secrets == ("pw1",)
    assert FlowServiceError.from_response(response(body={"code": "xpw1x"}), path="/c", redact=secrets).code is None
    kept = FlowServiceError.from_response(response(body={"code": "invalid_params"}), path="/c", redact=secrets)
    assert kept.code == "invalid_params"


def test_a_request_without_credentials_keeps_adobes_message() -> None:
    error = FlowServiceError.from_response(response(body={"message": "Flow spec not found"}), path="/flows")
    assert error.message == "Flow spec not found"

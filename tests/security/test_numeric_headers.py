"""Numbers read from headers are ASCII digits only (defect 8).

Python's ``str.isdigit()`` also accepts superscripts and other scripts' digits, which ``float()``
then refuses (``"²"``) or reads (``"٣"``): a caller's ``Prefer: wait`` answered 500, and an Adobe
``Retry-After`` of that kind would have crashed a saga. Now the caller gets a 400 problem and nothing
is written; Adobe's odd header is ignored and the retry policy's own backoff applies."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_terminal
from tests.security.support import add_fault, assert_problem, flow_service_calls, row_counts
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

# Header values as bytes on the wire: Starlette reads them as ISO-8859-1, so b"\xb2" is "²", and
# UTF-8 "٣" arrives as two Latin-1 characters.
NOT_ASCII_DIGITS: dict[str, bytes] = {
    "superscript-two": "wait=²".encode("latin-1"),
    "superscript-in-quotes": 'wait="²"'.encode("latin-1"),
    "arabic-indic-three": "wait=٣".encode(),
    "fullwidth-five": "wait=\uff15".encode(),
    "letters": b"wait=soon",
    "fraction": b"wait=1.5",
    "negative": b"wait=-1",
    "empty": b"wait=",
    "no-value": b"wait",
    "among-others": b"respond-async, wait=\xb9",
}


def _post(gateway: GatewayProcess, prefer: bytes) -> httpx.Response:
    with gateway.client() as client:
        headers = {b"Idempotency-Key": new_key().encode(), b"Prefer": prefer}
        return client.post("/activations", json=s3_request(), headers=headers)


@pytest.mark.parametrize("prefer", list(NOT_ASCII_DIGITS.values()), ids=list(NOT_ASCII_DIGITS))
def test_prefer_wait_that_is_not_ascii_digits_is_a_400_and_writes_nothing(
    prefer: bytes, gateway: GatewayProcess, emulator: EmulatorServer, db: psycopg.Connection[Any]
) -> None:
    body = assert_problem(_post(gateway, prefer), 400, "invalid-prefer")
    assert "wait" in body["detail"]
    assert set(row_counts(db).values()) == {0}, row_counts(db)
    assert flow_service_calls(emulator) == []


def test_prefer_wait_in_ascii_digits_is_still_honoured(gateway: GatewayProcess) -> None:
    # 200 when the saga ends within the second, else 202; either way the preference was understood.
    response = _post(gateway, b'respond-async, wait="1"')
    assert response.status_code in (200, 202), response.text
    assert response.json()["id"]


def test_a_retry_after_that_is_not_ascii_digits_is_ignored(
    gateway: GatewayProcess, emulator: EmulatorServer, db: psycopg.Connection[Any]
) -> None:
    # "¹" passes str.isdigit(), and float("¹") raises: the saga used to crash on this 429 and only a
    # later claim of the activation sent the create again, with no retry recorded.
    add_fault(emulator, method="POST", path="/flows", status=429, retryAfter="¹", times=1)
    with gateway.client() as client:
        accepted = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        assert accepted.status_code == 202, accepted.text
        final = wait_terminal(client, accepted.json()["id"])
    assert final["status"] == "succeeded", final
    posts = [c for c in flow_service_calls(emulator) if c["method"] == "POST" and c["path"].endswith("/flows")]
    assert [c["status"] for c in posts] == [429, 201], posts
    sent = posts[0]["responseHeaders"]["retry-after"]
    assert sent and not (sent.isascii() and sent.isdigit()), f"the emulator sent Retry-After: {sent!r}"
    events = db.execute(
        "SELECT type, data FROM activation_events WHERE activation_id = %s AND step = 'create_flow' ORDER BY id",
        (final["id"],),
    ).fetchall()
    retries = [data for kind, data in events if kind == "retry"]
    assert len(retries) == 1 and "429" in retries[0]["error"], events
    assert {kind for kind, _ in events} <= {"step", "upstream", "retry"}, f"the run did not end normally: {events}"

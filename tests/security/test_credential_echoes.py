"""Adobe's error texts that quote credentials in part or encoded (defect 5).

A scrubber that looks for whole secrets misses a 10-character SFTP password quoted as an 8-character
piece, percent-encoded, JSON-escaped with ``\\/`` or in base64. For a request that carries credentials
the gateway keeps only Adobe's status, a plain error code and the request id; these tests send such
echoes through the retry path (500) and the failure path (400) and look for every form of each
secret, and every 8-character piece of them, in the API responses, the debug log and the database."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_terminal
from tests.security.support import add_fault, dump_database, flow_service_calls
from tests.support.gateway import GatewayProcess
from tests.support.payloads import S3_SECRET_KEY, new_key, s3_request, sftp_password_request

StartGateway = Callable[..., GatewayProcess]
# Short, as SFTP passwords are, with characters that every encoding changes.
SHORT_PASSWORD = "p/w%9Zq&x!"
PIECE = 8


def forms(secret: str) -> dict[str, str]:
    """The ways an error text may quote a secret."""
    return {
        "plain": secret,
        "piece": secret[1 : 1 + PIECE],
        "json-escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),  # as Java's serialisers write "/"
        "base64": base64.b64encode(secret.encode()).decode(),
        "url-encoded": urllib.parse.quote(secret, safe=""),
        "form-encoded": urllib.parse.quote_plus(secret),
    }


def pieces(text: str) -> Iterator[str]:
    if len(text) <= PIECE:
        yield text
    for start in range(len(text) - PIECE + 1):
        yield text[start : start + PIECE]


def echo(*quoted: str) -> str:
    return "Invalid auth params: " + "; ".join(quoted) + " for connection spec"


def add_echoes(emulator: EmulatorServer, secret: str) -> None:
    """On the first POST /connections that carries ``secret``: a 500 (retried), then a 400 (final)."""
    quoted = forms(secret)
    add_fault(
        emulator,
        method="POST",
        path="/connections",
        bodyContains=secret,
        status=500,
        times=1,
        body={"message": echo(quoted["url-encoded"], quoted["json-escaped"], f"password={quoted['form-encoded']}")},
    )
    add_fault(
        emulator,
        method="POST",
        path="/connections",
        bodyContains=secret,
        status=400,
        times=1,
        # Adobe's code is taken from the body too: here it is a piece of the secret.
        body={"error_code": quoted["piece"], "message": echo(quoted["base64"], quoted["piece"])},
    )


def test_no_form_or_piece_of_a_credential_survives_adobes_error_texts(
    start_gateway: StartGateway, emulator: EmulatorServer, isolated_database: str
) -> None:
    gateway = start_gateway()
    requests = {"sftp": (sftp_password_request(), SHORT_PASSWORD), "s3": (s3_request(), S3_SECRET_KEY)}
    requests["sftp"][0]["storage"]["password"] = SHORT_PASSWORD
    responses: list[str] = []
    finals: dict[str, dict[str, Any]] = {}
    with gateway.client() as client:
        for label, (body, secret) in requests.items():
            add_echoes(emulator, secret)
            accepted = client.post("/activations", json=body, headers={"Idempotency-Key": new_key()})
            assert accepted.status_code == 202, accepted.text
            finals[label] = wait_terminal(client, accepted.json()["id"])
            for path in (f"/activations/{finals[label]['id']}", f"/activations/{finals[label]['id']}/events"):
                response = client.get(path)
                assert response.status_code == 200, response.text
                responses.append(response.text)
        listed = client.get("/activations")
        assert listed.status_code == 200
        responses.append(listed.text)

    for final in finals.values():
        assert final["status"] in ("failed", "rolled_back"), final
        error = final["error"]
        assert error["upstreamStatus"] == 400 and error["upstreamCall"] == "POST /connections", error
        assert "withheld" in error["upstreamMessage"], error
        assert error["upstreamCode"] is None, "a code holding a piece of the secret is dropped"
        assert error["upstreamRequestId"], "the request id still lets the operator ask Adobe"
    # The echoes really happened, with the secrets in them: their absence below means something.
    calls = flow_service_calls(emulator)
    answered = [c["status"] for c in calls if c["method"] == "POST" and c["path"].endswith("/connections")]
    assert answered.count(500) == 2 and answered.count(400) == 2, answered
    for secret in (SHORT_PASSWORD, S3_SECRET_KEY):
        carried = httpx.post(f"{emulator.url}/_emulator/requests/containing", json={"value": secret})
        assert carried.status_code == 200 and carried.json()["seqs"], "the secret was sent to Adobe"

    logs = gateway.logs()
    assert '"level": "debug"' in logs, "the leak check needs debug-level logs"
    places = {"responses": "\n".join(responses), "log": logs, "database": dump_database(isolated_database)}
    for secret in (SHORT_PASSWORD, S3_SECRET_KEY):
        for form, text in forms(secret).items():
            for piece in pieces(text):
                for where, content in places.items():
                    assert piece not in content, f"{piece!r} ({form} of a secret) found in the {where}"

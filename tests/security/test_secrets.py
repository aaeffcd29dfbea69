"""Secrets at rest and in flight (acceptance 2 and 3):

- storage credentials are stored only encrypted, and only until the target base connection exists
  or the activation leaves the forward path;
- after successful and failed runs (including Adobe error bodies that quote the credentials), no
  secret appears in any table, any debug-level log line, or any API response;
- SECRETS_KEY can be rotated while an activation is between accepting and using its credentials.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet, InvalidToken

from flowservice_emulator import EmulatorServer
from tests.conftest import ADOBE_CLIENT_SECRET, SECRETS_KEY, wait_for, wait_terminal
from tests.security.support import add_fault, add_latency, dump_database, flow_service_calls
from tests.support.gateway import GatewayProcess
from tests.support.payloads import (
    S3_SECRET_KEY,
    SFTP_PASSWORD,
    new_key,
    s3_request,
    sftp_password_request,
    sftp_ssh_request,
    ssh_private_key_b64,
)

StartGateway = Callable[..., GatewayProcess]
ACCESS_ID = "AKIAIOSFODNN7EXAMPLE"


def activation_row(database_url: str, activation_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(
            "SELECT status, storage::text, credentials_ciphertext FROM activations WHERE id = %s", (activation_id,)
        )
        row = cursor.fetchone()
    assert row is not None
    return {"status": row[0], "storage": row[1], "ciphertext": row[2]}


def post(client: httpx.Client, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    response = client.post("/activations", json=body, headers={"Idempotency-Key": key or new_key()})
    assert response.status_code == 202, response.text
    return response


# --------------------------------------------------------------------------- erasure
def test_credentials_are_encrypted_and_erased_once_the_target_base_connection_exists(
    start_gateway: StartGateway, emulator: EmulatorServer, isolated_database: str
) -> None:
    gateway = start_gateway()
    # Hold every POST /connections for a while: a window in which the credentials must still be there.
    add_latency(emulator, method="POST", path="/connections", fixedMs=1500, randomMs=0)
    with gateway.client() as client:
        activation_id = post(client, s3_request()).json()["id"]
        during = wait_for(
            lambda: activation_row(isolated_database, activation_id),
            lambda row: row["status"] == "running",
        )
        assert during["ciphertext"] is not None, "needed until the target base connection exists"
        assert S3_SECRET_KEY not in during["ciphertext"] and S3_SECRET_KEY not in during["storage"]
        assert json.loads(Fernet(SECRETS_KEY.encode()).decrypt(during["ciphertext"].encode())) == {
            "secretKey": S3_SECRET_KEY
        }
        final = wait_terminal(client, activation_id)
    assert final["status"] == "succeeded", final
    assert activation_row(isolated_database, activation_id)["ciphertext"] is None


@pytest.mark.parametrize("ending", ["failed", "rolled_back"])
def test_credentials_are_erased_when_the_activation_leaves_the_forward_path(
    start_gateway: StartGateway, emulator: EmulatorServer, isolated_database: str, ending: str
) -> None:
    # The accept-time catalog check gives up on a slow catalog at once; the saga still waits for it.
    gateway = start_gateway(DESTINATION_CHECK_TIMEOUT_SECONDS="0.2")
    with gateway.client() as client:
        if ending == "failed":  # an unknown destination fails before any credential is used
            # Refused at once while the catalog can be read: make this gateway's first read fail, so
            # that the request is accepted and its saga finds the destination unknown.
            add_fault(emulator, method="GET", path="/connectionSpecs", status=503, times=1)
            activation_id = post(client, s3_request(destination="No Such Destination")).json()["id"]
        else:  # a rollback requested before the target base connection was made
            add_latency(emulator, method="GET", path="/connectionSpecs", fixedMs=1500, randomMs=0)
            activation_id = post(client, sftp_password_request()).json()["id"]
            assert client.post(f"/activations/{activation_id}/rollback").status_code in (200, 202)
        final = wait_terminal(client, activation_id)
    assert final["status"] == ending, final
    assert activation_row(isolated_database, activation_id)["ciphertext"] is None
    # The emulator masks secrets in its history; it says which requests carried one, by seq.
    carried = httpx.post(f"{emulator.url}/_emulator/requests/containing", json={"value": SFTP_PASSWORD}).json()
    assert carried["seqs"] == [], "the credentials never left the gateway"


# --------------------------------------------------------------------------- no leaks
def _echo(text: str) -> dict[str, Any]:
    """An Adobe Flow Service error body (flow-service.md §6.1) whose message quotes ``text``."""
    return {
        "type": "https://ns.adobe.com/aep/errors/FLOW-2103-400",
        "title": "Bad Request",
        "status": 400,
        "report": {"detailed-message": f"Invalid auth params {text} for connection spec"},
    }


def test_no_secret_in_database_logs_or_responses_after_success_and_failure(
    start_gateway: StartGateway, emulator: EmulatorServer, isolated_database: str
) -> None:
    ssh_key = ssh_private_key_b64()
    ssh_pem_line = base64.b64decode(ssh_key).decode().splitlines()[2]  # a line of the key material
    secrets = {
        "S3 secret key": S3_SECRET_KEY,
        "SFTP password": SFTP_PASSWORD,
        "SSH key": ssh_key,
        "SSH key material": ssh_pem_line,
        "Adobe client secret": ADOBE_CLIENT_SECRET,
    }
    gateway = start_gateway()
    responses: list[str] = []
    outcomes: dict[str, dict[str, Any]] = {}

    def run(label: str, body: dict[str, Any]) -> None:
        with gateway.client() as client:
            accepted = post(client, body)
            responses.append(accepted.text)
            final = wait_terminal(client, accepted.json()["id"])
            outcomes[label] = final
            for path in (f"/activations/{final['id']}", f"/activations/{final['id']}/events", "/activations"):
                response = client.get(path)
                assert response.status_code == 200
                responses.append(response.text)

    # 1-3: successes with each kind of credential; the SFTP one first meets a retryable 500 whose
    # body quotes the password, so Adobe's text goes through the retry path too.
    run("s3", s3_request())
    add_fault(
        emulator,
        method="POST",
        path="/connections",
        bodyContains=SFTP_PASSWORD,
        status=500,
        body=_echo(f"password={SFTP_PASSWORD}"),
        times=1,
    )
    run("sftp-password", sftp_password_request())
    run("sftp-ssh", sftp_ssh_request(ssh_key))
    # 4: Adobe rejects the target base connection, quoting the whole auth block (cut short, as its
    # messages sometimes are): the failure and the compensation record Adobe's error.
    quoted = json.dumps({"accessId": ACCESS_ID, "secretKey": S3_SECRET_KEY})[:-12]
    add_fault(
        emulator,
        method="POST",
        path="/connections",
        bodyContains=S3_SECRET_KEY,
        status=400,
        body=_echo(quoted),
        times=1,
    )
    run("s3-rejected", s3_request())
    # 5: the SSH key quoted in an error, as the PEM text it decodes to.
    add_fault(
        emulator,
        method="POST",
        path="/connections",
        bodyContains=ssh_key[:40],
        status=422,
        body=_echo(base64.b64decode(ssh_key).decode()),
        times=1,
    )
    run("ssh-rejected", sftp_ssh_request(ssh_key))
    # 6: IMS refuses a token with a message that quotes the client secret.
    httpx.post(f"{emulator.url}/_emulator/tokens/expire").raise_for_status()
    add_fault(
        emulator,
        method="POST",
        path="/ims/token/v3",
        status=400,
        times=1,
        body={"error": "invalid_client", "error_description": f"client_secret {ADOBE_CLIENT_SECRET} is invalid"},
    )
    run("ims-rejected", s3_request())

    assert outcomes["s3"]["status"] == outcomes["sftp-password"]["status"] == "succeeded"
    assert outcomes["sftp-ssh"]["status"] == "succeeded"
    for label in ("s3-rejected", "ssh-rejected", "ims-rejected"):
        assert outcomes[label]["status"] in ("failed", "rolled_back"), outcomes[label]
        assert outcomes[label]["error"]["upstreamStatus"] in (400, 422), outcomes[label]["error"]
    # Adobe's error did reach the gateway, its message withheld (the requests carried credentials) and
    # its code kept: the test exercised the error path.
    for label in ("s3-rejected", "ssh-rejected", "ims-rejected"):
        assert "withheld" in outcomes[label]["error"]["upstreamMessage"], outcomes[label]["error"]
    assert outcomes["ims-rejected"]["error"]["upstreamCode"] == "invalid_client"
    # ...and the secrets really were sent to Adobe, so their absence below means something.
    for secret in (S3_SECRET_KEY, SFTP_PASSWORD, ssh_key):
        assert httpx.post(f"{emulator.url}/_emulator/requests/containing", json={"value": secret}).json()["seqs"]

    logs = gateway.logs()
    assert '"level": "debug"' in logs, "the leak check needs debug-level logs"
    everything = {"database": dump_database(isolated_database), "logs": logs, "responses": "\n".join(responses)}
    for where, text in everything.items():
        for name, secret in secrets.items():
            assert secret not in text, f"{name} found in {where}"
            assert secret[:16] not in text, f"a fragment of the {name} found in {where}"
    assert ACCESS_ID not in everything["responses"], "accessId must be masked in responses"


# --------------------------------------------------------------------------- rotation
def test_secrets_key_rotation_mid_saga(
    start_gateway: StartGateway, emulator: EmulatorServer, isolated_database: str
) -> None:
    old_key, new_key_ = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    # (The accept-time catalog check gives up on the slow catalog at once; the saga waits for it.)
    first = start_gateway(SECRETS_KEY=old_key, DESTINATION_CHECK_TIMEOUT_SECONDS="0.2")
    # resolve_destination waits on the catalog: the activation is accepted and claimed, its
    # credentials encrypted with the old key, but not yet used.
    latency = add_latency(emulator, method="GET", path="/connectionSpecs", fixedMs=3000, randomMs=0)
    body = s3_request()
    idempotency_key = f"rotation-{uuid.uuid4()}"
    with first.client() as client:
        activation_id = post(client, body, idempotency_key).json()["id"]
        wait_for(lambda: activation_row(isolated_database, activation_id), lambda row: row["status"] == "running")
    first.kill()
    httpx.delete(f"{emulator.url}/_emulator/latency/{latency}").raise_for_status()
    ciphertext = activation_row(isolated_database, activation_id)["ciphertext"]
    assert ciphertext is not None
    with pytest.raises(InvalidToken):  # the new key alone could not read it: rotation must keep the old one
        Fernet(new_key_.encode()).decrypt(ciphertext.encode())

    second = start_gateway(SECRETS_KEY=f"{new_key_},{old_key}")
    with second.client() as client:
        final = wait_terminal(client, activation_id, timeout=60)
        assert final["status"] == "succeeded", final
        # Request fingerprints made with the old key still match: the replay is recognised.
        replay = client.post("/activations", json=body, headers={"Idempotency-Key": idempotency_key})
        assert replay.headers.get("idempotent-replayed") == "true" and replay.json()["id"] == activation_id
    target_base = [
        call
        for call in flow_service_calls(emulator)
        if call["method"] == "POST"
        and call["path"].endswith("/connections")
        and (call.get("body") or {}).get("auth") is not None
    ]
    assert [call["body"]["auth"]["params"]["secretKey"] for call in target_base] == ["***"]
    sent = httpx.post(f"{emulator.url}/_emulator/requests/containing", json={"value": S3_SECRET_KEY}).json()["seqs"]
    assert sent == [call["seq"] for call in target_base]
    assert activation_row(isolated_database, activation_id)["ciphertext"] is None
    # New work is encrypted with the new key.
    with second.client() as client:
        started = time.monotonic()
        add_latency(emulator, method="POST", path="/connections", fixedMs=1500, randomMs=0)
        other = post(client, sftp_password_request()).json()["id"]
        row = wait_for(lambda: activation_row(isolated_database, other), lambda r: r["status"] == "running")
        assert row["ciphertext"] is not None and time.monotonic() - started < 10
        Fernet(new_key_.encode()).decrypt(row["ciphertext"].encode())

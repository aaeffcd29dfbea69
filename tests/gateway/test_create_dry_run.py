"""The dry run of a create (contract §10), end to end over real HTTP against the emulator, on real
PostgreSQL: `POST /activations?dryRun=true` writes nothing (no activation, no key, nothing upstream
that writes), and its plan is exactly what the create that follows sends, once the placeholders are
the real ids; it refuses what the create refuses, with the same problems; no secret comes back."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import psycopg
import pytest

from flowservice_emulator import EmulatorServer
from tests.gateway.test_activation_e2e import BASE, activate, emulator_state, flow_service_requests
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request, sftp_password_request, sftp_ssh_request

MASK = "***"
PROFILE_STORE_SPEC = "8a9c3494-9708-43d7-ae3f-cda01e5030e1"
BODIES = pytest.mark.parametrize(
    "make_body", [s3_request, sftp_password_request, sftp_ssh_request], ids=["s3", "sftp-password", "sftp-ssh-key"]
)


def dry_run(client: httpx.Client, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/activations", json=body, params={"dryRun": "true"}, headers=headers or {})


def write_entries(emulator: EmulatorServer, seen: int) -> list[dict[str, Any]]:
    """The writes the emulator took after its first ``seen`` Flow Service requests. A request refused
    with 401 (the token of before the emulator's reset) is sent again after a token refresh: only
    the one answered counts."""
    return [
        e
        for e in flow_service_requests(emulator)[seen:]
        if e["method"] not in ("GET", "HEAD") and e.get("lateCommitOf") is None and e["status"] != 401
    ]


def writes_since(emulator: EmulatorServer, seen: int) -> list[dict[str, Any]]:
    """Those writes as planned calls."""
    return [
        {"method": e["method"], "path": e["path"].removeprefix(BASE), "body": e["body"]}
        for e in write_entries(emulator, seen)
    ]


def requests_containing(emulator: EmulatorServer, value: str) -> set[int]:
    """The emulator's requests whose raw body held ``value`` (its history masks secrets)."""
    response = httpx.post(f"{emulator.url}/_emulator/requests/containing", json={"value": value})
    response.raise_for_status()
    return set(response.json()["seqs"])


def filled_in(value: Any, ids: dict[str, str]) -> Any:
    """The plan with its placeholders (`{activation_id}`, `{create_flow}`, …) replaced by real ids."""
    if isinstance(value, str):
        return re.sub(r"\{([a-z_]+)\}", lambda m: ids.get(m[1], m[0]), value)
    if isinstance(value, list):
        return [filled_in(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: filled_in(item, ids) for key, item in value.items()}
    return value


def canonical(call: dict[str, Any]) -> str:
    return json.dumps(call, sort_keys=True)


def table_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("activations", "activation_steps", "activation_events", "idempotency_keys")
        }


# ---------------------------------------------------------------------------------------------- the plan
@BODIES
def test_a_dry_run_writes_nothing_and_plans_exactly_what_the_create_sends(
    gateway: GatewayProcess, emulator: EmulatorServer, database_url: str, make_body: Any
) -> None:
    body = make_body()
    client = gateway.client()
    resources_before = emulator_state(emulator)["resources"]
    seen = len(flow_service_requests(emulator))
    key = new_key()

    dry = dry_run(client, body, headers={"Idempotency-Key": key})  # a key is not needed, and not kept

    assert dry.status_code == 200, dry.text
    assert "location" not in dry.headers
    answer = dry.json()
    would_be = answer["activation"]
    assert would_be["id"] == "{activation_id}"
    assert (would_be["status"], would_be["revision"], would_be["flow"]) == ("pending", 1, None)
    assert [(s["status"], s["resourceId"]) for s in would_be["steps"]] == [("pending", None)] * 8
    assert would_be["destination"]["connectionSpecId"] == "0b23e41a-cb4a-4321-a78f-3b654f5d7d97"
    assert [s["id"] for s in would_be["segments"]] == [s["id"] for s in body["segments"]]
    plan = answer["plan"]
    assert [(c["method"], c["path"]) for c in plan] == [
        ("POST", "/connections"),
        ("POST", "/sourceConnections"),
        ("POST", "/connections"),
        ("POST", "/targetConnections"),
        ("POST", "/flows"),
        ("PATCH", "/flows/{create_flow}"),
    ]
    assert plan[1]["body"]["baseConnectionId"] == "{create_source_base_connection}"
    assert plan[4]["body"]["targetConnectionIds"] == ["{create_target_connection}"]
    secret = next(body["storage"][f] for f in ("secretKey", "password", "sshKey") if f in body["storage"])
    assert MASK in plan[2]["body"]["auth"]["params"].values() and secret not in dry.text

    # Nothing written: no activation, step, event or key; nothing upstream but reads.
    assert client.get("/activations").json()["items"] == []
    assert table_counts(database_url) == dict.fromkeys(
        ("activations", "activation_steps", "activation_events", "idempotency_keys"), 0
    )
    assert emulator_state(emulator)["resources"] == resources_before
    assert writes_since(emulator, seen) == []

    # The create that follows (under the same key: the dry run kept none) sends exactly the plan.
    seen = len(flow_service_requests(emulator))
    accepted, final = activate(gateway, body, key=key)
    assert "idempotent-replayed" not in accepted.headers
    assert final["status"] == "succeeded", final
    ids = {step["name"]: step["resourceId"] for step in final["steps"] if step["resourceId"]}
    expected = filled_in(plan, {**ids, "activation_id": final["id"]})
    sent = writes_since(emulator, seen)  # the emulator's history masks secrets with the same ***
    assert sorted(map(canonical, sent)) == sorted(map(canonical, expected))
    # Where the plan shows ***, the real secret went.
    with_auth = [e["seq"] for e in write_entries(emulator, seen) if "auth" in (e["body"] or {})]
    assert len(with_auth) == 1 and with_auth[0] in requests_containing(emulator, secret)
    # In the plan's order, as far as the saga orders them: its source and target branches run
    # concurrently, each in order, and the flow and its PATCH come after both.
    for branch in ("source", "target"):
        planned = [c for c in expected if branch_of(c) == branch]
        assert [c for c in sent if branch_of(c) == branch] == planned
    assert sent[-2:] == expected[-2:]


def branch_of(call: dict[str, Any]) -> str | None:
    """The saga branch of a create: the Profile store's connections are the source's."""
    if call["path"] in ("/sourceConnections", "/targetConnections"):
        return call["path"][1:7]
    if call["path"] == "/connections":
        return "source" if call["body"]["connectionSpec"]["id"] == PROFILE_STORE_SPEC else "target"
    return None


def test_the_plan_follows_the_sandbox_and_the_destination(gateway: GatewayProcess) -> None:
    body = sftp_password_request(destination="oracle ELOQUA", sandbox="dev", attributes=[])
    answer = dry_run(gateway.client(), body)
    assert answer.status_code == 200, answer.text
    would_be, plan = answer.json()["activation"], answer.json()["plan"]
    assert (would_be["sandbox"], would_be["destination"]["name"]) == ("dev", "Oracle Eloqua")
    target_base = plan[2]["body"]
    assert target_base["connectionSpec"]["id"] == "c1e44b6b-e7c8-404b-9031-58f0ef760604"
    assert target_base["auth"] == {
        "specName": "SFTP with Password",
        "params": {
            "domain": "sftp.example.com",
            "host": "sftp.example.com",
            "port": 2222,
            "username": "campaign",
            "password": MASK,
        },
    }
    assert plan[3]["body"]["params"] == {"mode": "FTP", "remotePath": "/exports/spring", "format": "CSV"}
    # Only audiences to add: no attribute, so no profile selector.
    assert [op["value"]["type"] for op in plan[-1]["body"]] == ["PLATFORM_SEGMENT"] * 2


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "body",
    [
        s3_request(destination="Carrier Pigeon Marketing"),  # not in the catalog
        s3_request(destination="Oracle Eloqua"),  # SFTP only
        s3_request(sandbox="staging"),  # not on the allow-list
        s3_request(storage={"type": "sftp", "host": "127.0.0.1", "username": "u", "password": "p", "path": "/"}),
        {**s3_request(), "segments": []},  # the body's own rules
        {**s3_request(), "unknown": True},
        s3_request(storage={"type": "s3", "accessId": "AKIAIOSFODNN7EXAMPLE"}),
    ],
    ids=["unknown-destination", "unsupported-storage", "sandbox", "sftp-host", "no-segments", "unknown-field", "s3"],
)
def test_a_dry_run_refuses_what_the_create_refuses_with_the_same_problem(
    gateway: GatewayProcess, emulator: EmulatorServer, body: dict[str, Any]
) -> None:
    client = gateway.client()
    seen = len(flow_service_requests(emulator))
    dry = dry_run(client, body)
    real = client.post("/activations", json=body, headers={"Idempotency-Key": new_key()})
    assert dry.status_code == 422, dry.text
    assert dry.headers["content-type"].startswith("application/problem+json")
    assert dry.json() == real.json()
    assert dry.json()["type"] == "urn:activation-gateway:problem:validation-error"
    assert client.get("/activations").json()["items"] == []
    assert writes_since(emulator, seen) == []


def test_a_dry_run_refuses_bad_json_and_media_types_as_the_create_does(gateway: GatewayProcess) -> None:
    client = gateway.client()
    for content, content_type, status in (
        (b'{"destination": ', "application/json", 400),
        (b'{"a": 1, "a": 2}', "application/json", 400),
        (b"destination=x", "application/x-www-form-urlencoded", 415),
    ):
        response = client.post(
            "/activations", content=content, params={"dryRun": "true"}, headers={"Content-Type": content_type}
        )
        assert response.status_code == status, response.text
    assert client.get("/activations").json()["items"] == []


def test_without_dry_run_the_key_is_still_required(gateway: GatewayProcess) -> None:
    client = gateway.client()
    for params in ({}, {"dryRun": "false"}):
        response = client.post("/activations", json=s3_request(), params=params)
        assert response.status_code == 400, response.text
        assert response.json()["type"].endswith("idempotency-key-missing")
    assert client.post("/activations", json=s3_request(), params={"dryRun": "maybe"}).status_code == 422


# ---------------------------------------------------------------------------------------------- secrets
def encodings(secret: str) -> set[str]:
    """The forms a secret could leak in: as is, JSON-escaped, URL-encoded, base64 (and, for the
    base64 SSH key, decoded, and each line of the decoded key)."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode(),
    }
    try:
        decoded = base64.b64decode(secret, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return forms
    forms |= {decoded, json.dumps(decoded)[1:-1]}
    forms |= {line for line in decoded.splitlines() if len(line) > 16 and "PRIVATE KEY" not in line}
    return forms


@BODIES
def test_no_secret_comes_back_in_any_encoding(gateway: GatewayProcess, make_body: Any) -> None:
    body = make_body()
    storage = body["storage"]
    secrets = [storage[f] for f in ("secretKey", "password", "sshKey") if f in storage]
    assert secrets
    answer = dry_run(gateway.client(), body)
    assert answer.status_code == 200, answer.text
    raw = answer.text + json.dumps(dict(answer.headers))
    for secret in secrets:
        for form in encodings(secret):
            assert form not in raw, f"a form of the secret is in the answer: {form[:8]}…"
    params = answer.json()["plan"][2]["body"]["auth"]["params"]
    assert [name for name, value in params.items() if value == MASK] == [
        f for f in ("secretKey", "password", "sshKey") if f in storage
    ]
    if "sshKey" in storage:  # unique to this test: not in the gateway's log either
        assert all(form not in gateway.logs() for form in encodings(storage["sshKey"]))

"""Webhook subscriptions (contract §14) over real HTTP: the secret shown once and kept only
encrypted, each client's own subscriptions, changes and rotation, and every refused receiver URL
answered with a problem that changes nothing. (Deliveries are not built yet.)"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.security.test_callers import as_client, create_api_key
from tests.support.gateway import GatewayProcess

StartGateway = Callable[..., GatewayProcess]
RECEIVER = "http://127.0.0.1:9/hooks/gateway"  # allowed below by WEBHOOK_ALLOWED_HOSTS; nothing listens
PROBLEM = "urn:activation-gateway:problem:"


@pytest.fixture
def allowing(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway(WEBHOOK_ALLOWED_HOSTS="127.0.0.1", WEBHOOK_SECRET_OVERLAP_SECONDS="3600")


def subscribe(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/webhooks", json={"url": RECEIVER, "events": ["activation.*", "run.failed"], **body})


def rows(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute("SELECT * FROM webhook_subscriptions")
        names = [c.name for c in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_a_subscription_shows_its_secret_once_and_keeps_it_encrypted(
    allowing: GatewayProcess, isolated_database: str
) -> None:
    client = allowing.client()
    created = subscribe(client, description="campaign tooling")
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/webhooks/{body['id']}"
    assert created.headers["cache-control"] == "no-store"
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert body["events"] == ["activation.*", "run.failed"] and body["enabled"] is True
    assert body["description"] == "campaign tooling" and body["previousSecretExpiresAt"] is None

    read = client.get(f"/webhooks/{body['id']}")
    assert read.status_code == 200 and "secret" not in read.json()
    assert {k: v for k, v in body.items() if k != "secret"} == read.json()
    assert [s["id"] for s in client.get("/webhooks").json()["items"]] == [body["id"]]

    (row,) = rows(isolated_database)
    stored = repr(row)
    encoded = base64.b64encode(secret.encode()).decode()
    assert secret not in stored and secret.removeprefix("whsec_") not in stored and encoded not in stored
    assert secret not in allowing.logs() and secret.removeprefix("whsec_") not in allowing.logs()


def test_changing_rotating_and_deleting(allowing: GatewayProcess) -> None:
    client = allowing.client()
    created = subscribe(client, description="to drop").json()
    changed = client.patch(
        f"/webhooks/{created['id']}", json={"events": ["run.*"], "description": None, "enabled": False}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["run.*"] and changed.json()["description"] is None
    assert changed.json()["enabled"] is False and changed.json()["url"] == RECEIVER

    refused = client.patch(f"/webhooks/{created['id']}", json={"url": "ftp://hooks.example.com/"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "/url"
    assert client.get(f"/webhooks/{created['id']}").json() == changed.json(), "a refused change changes nothing"

    before = datetime.now(UTC)
    rotated = client.post(f"/webhooks/{created['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != created["secret"]
    overlap_ends = datetime.fromisoformat(rotated.json()["previousSecretExpiresAt"])
    assert before + timedelta(seconds=3590) < overlap_ends < before + timedelta(seconds=3630)
    assert client.get(f"/webhooks/{created['id']}").json()["previousSecretExpiresAt"] is not None

    assert client.delete(f"/webhooks/{created['id']}").status_code == 204
    assert client.get(f"/webhooks/{created['id']}").status_code == 404
    assert client.delete(f"/webhooks/{created['id']}").status_code == 404
    assert client.post(f"/webhooks/{uuid.uuid4()}/rotate-secret").status_code == 404
    assert client.get("/webhooks/not-an-id").status_code == 404


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example.com/", "https"),
        ("ftp://hooks.example.com/", "https"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://[::1]:8443/hooks", "loopback"),
        ("https://[::ffff:127.0.0.1]/hooks", "loopback"),
        ("https://localhost/hooks", "loopback name"),
        ("https://10.1.2.3/hooks", "private"),
        ("https://192.168.0.10/hooks", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://metadata/computeMetadata", "single-label"),
        ("https://hooks.internal/", "private-use name"),
        ("https://user:secret@hooks.example.com/", "user or password"),
        ("https:///no-host", "no host"),
        ("https://hooks.example.com/a b", "spaces"),
    ],
)
def test_an_unacceptable_receiver_is_refused_and_nothing_is_written(
    gateway: GatewayProcess, database_url: str, url: str, says: str
) -> None:
    with gateway.client() as client:
        response = client.post("/webhooks", json={"url": url, "events": ["activation.succeeded"]})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"] == PROBLEM + "validation-error"
        assert [e["path"] for e in problem["errors"]] == ["/url"] and says in problem["errors"][0]["message"]
        assert client.get("/webhooks").json()["items"] == []
    assert rows(database_url) == []


@pytest.mark.parametrize(
    ("events", "path"),
    [
        ([], "/events"),
        (["activation.started"], "/events/0"),
        (["run.*", "nope.*"], "/events/1"),
        (["run.failed", "run.failed"], "/events"),
    ],
)
def test_unknown_or_repeated_event_types_are_refused(
    allowing: GatewayProcess, isolated_database: str, events: list[str], path: str
) -> None:
    with allowing.client() as client:
        response = client.post("/webhooks", json={"url": RECEIVER, "events": events})
    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["errors"]] == [path]
    assert rows(isolated_database) == []


def test_each_client_sees_and_changes_only_its_own(start_gateway: StartGateway) -> None:
    keys = {name: create_api_key(name) for name in ("alice", "bob")}
    gateway = start_gateway(
        DEV_MODE="false", API_KEYS=",".join(entry for _, entry in keys.values()), WEBHOOK_ALLOWED_HOSTS="127.0.0.1"
    )
    with as_client(gateway, keys["alice"][0]) as alice, as_client(gateway, keys["bob"][0]) as bob:
        mine = subscribe(alice).json()
        assert bob.get("/webhooks").json()["items"] == []
        for response in (
            bob.get(f"/webhooks/{mine['id']}"),
            bob.patch(f"/webhooks/{mine['id']}", json={"enabled": False}),
            bob.patch(f"/webhooks/{mine['id']}", json={"url": "http://hooks.example.com/"}),
            bob.post(f"/webhooks/{mine['id']}/rotate-secret"),
            bob.delete(f"/webhooks/{mine['id']}"),
        ):
            assert response.status_code == 404, response.text
        after = alice.get(f"/webhooks/{mine['id']}").json()
        assert after["enabled"] is True and after["previousSecretExpiresAt"] is None
        assert gateway.client().get("/webhooks").status_code == 401

"""Idempotency keys on POST /activations (contract §1)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_terminal
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request


def count(db: psycopg.Connection, table: str) -> int:  # type: ignore[type-arg]
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_same_key_same_body_replays_without_a_second_saga(
    gateway: GatewayProcess,
    emulator: EmulatorServer,
    db: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    body = s3_request()
    key = new_key()
    with gateway.client() as client:
        first = client.post("/activations", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 202
        assert "idempotent-replayed" not in first.headers
        # Same document, other key order and whitespace.
        reordered = json.dumps(dict(reversed(list(body.items()))), indent=3)
        second = client.post(
            "/activations", content=reordered, headers={"Idempotency-Key": key, "Content-Type": "application/json"}
        )
        assert second.status_code == 202
        assert second.headers["idempotent-replayed"] == "true"
        assert second.json()["id"] == first.json()["id"]
        final = wait_terminal(client, first.json()["id"])
        third = client.post("/activations", json=body, headers={"Idempotency-Key": f'"{key}"'})
        assert third.status_code == 202, "a quoted key is the same key"
        assert third.json()["id"] == first.json()["id"]
        assert third.json()["status"] == final["status"] == "succeeded"
    assert count(db, "activations") == 1
    # Kept at least 24 h after the activation ended, counted from its end.
    row = db.execute(
        "SELECT k.expires_at - a.completed_at FROM idempotency_keys k JOIN activations a ON a.id = k.activation_id"
    ).fetchone()
    assert row is not None and row[0].total_seconds() >= 24 * 3600


def test_same_key_other_body_is_422(gateway: GatewayProcess, db: psycopg.Connection) -> None:  # type: ignore[type-arg]
    key = new_key()
    with gateway.client() as client:
        assert client.post("/activations", json=s3_request(), headers={"Idempotency-Key": key}).status_code == 202
        other = client.post("/activations", json=s3_request(name="Other"), headers={"Idempotency-Key": key})
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("idempotency-key-reused")
    assert count(db, "activations") == 1


@pytest.mark.parametrize(
    "header",
    [None, "", "a" * 256, "caf\u00e9", "two words", '"unterminated'],
    ids=["missing", "empty", "long", "non-ascii", "space", "bad-quote"],
)
def test_missing_or_malformed_key_is_400(
    gateway: GatewayProcess,
    db: psycopg.Connection,
    header: str | None,  # type: ignore[type-arg]
) -> None:
    headers = {} if header is None else {"Idempotency-Key": header.encode("utf-8")}
    with gateway.client() as client:
        response = client.post("/activations", json=s3_request(), headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].startswith("urn:activation-gateway:problem:idempotency-key")
    assert count(db, "activations") == 0


def test_concurrent_posts_with_one_key_make_one_activation(
    gateway: GatewayProcess,
    emulator: EmulatorServer,
    db: psycopg.Connection,  # type: ignore[type-arg]
) -> None:
    body = s3_request()
    key = new_key()

    def post(_: int) -> httpx.Response:
        with gateway.client() as client:
            return client.post("/activations", json=body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(post, range(100)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 99
    assert count(db, "activations") == 1

"""Idempotency keys are reaped once past retention, and never while their activation is unfinished."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from app.adapters.db.engine import create_engine
from app.adapters.db.repository import ActivationRepository
from app.adapters.db.statements import StatementPool
from flowservice_emulator import EmulatorServer
from tests.conftest import truncate_all, wait_terminal
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clean(database_url: str) -> Iterator[None]:
    truncate_all(database_url)
    yield
    truncate_all(database_url)


def add(conn: psycopg.Connection, status: str, key: str, expires: str | None) -> None:  # type: ignore[type-arg]
    activation_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO activations (id, client_id, status, destination_name, sandbox, storage, segments, attributes)"
        " VALUES (%s, 'dev', %s, 'Adobe Campaign', 'prod', '{}', '[]', '[]')",
        (activation_id, status),
    )
    conn.execute(
        "INSERT INTO idempotency_keys (client_id, key, request_fingerprint, activation_id, response_status, expires_at)"
        f" VALUES ('dev', %s, 'f', %s, 202, {expires or 'NULL'})",
        (key, activation_id),
    )


@pytest.mark.anyio
async def test_reaper_deletes_only_expired_keys_of_finished_activations(database_url: str, clean: None) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        add(conn, "succeeded", "old-finished", "now() - interval '1 hour'")
        add(conn, "rolled_back", "recent-finished", "now() + interval '23 hours'")
        add(conn, "running", "unfinished", None)
    engine = create_engine(database_url, pool_size=1)
    try:
        removed = await ActivationRepository(engine, StatementPool(database_url, size=1)).reap_idempotency_keys()
    finally:
        await engine.dispose()
    with psycopg.connect(database_url) as conn:
        left = {row[0] for row in conn.execute("SELECT key FROM idempotency_keys").fetchall()}
    assert removed == 1
    assert left == {"recent-finished", "unfinished"}


@pytest.mark.parametrize("destination", ["Adobe Campaign", "Carrier Pigeon Marketing"], ids=["succeeded", "failed"])
def test_idempotency_key_retention_hours_is_honoured(
    start_gateway: Callable[..., GatewayProcess], isolated_database: str, emulator: EmulatorServer, destination: str
) -> None:
    """IDEMPOTENCY_KEY_RETENTION_HOURS, not a hard-coded 24 h, from the moment the activation ends."""
    gateway = start_gateway(IDEMPOTENCY_KEY_RETENTION_HOURS="72")
    if destination != "Adobe Campaign":
        # An unknown name is refused at once while the catalog can be read: fail this gateway's first
        # read, so that the request is accepted and its saga fails it.
        fault = {"method": "GET", "path": "/connectionSpecs", "status": 503, "times": 1}
        httpx.post(f"{emulator.url}/_emulator/faults", json=fault).raise_for_status()
    with gateway.client() as client:
        response = client.post(
            "/activations", json=s3_request(destination=destination), headers={"Idempotency-Key": new_key()}
        )
        final = wait_terminal(client, response.json()["id"])
    assert final["status"] == ("succeeded" if destination == "Adobe Campaign" else "failed"), final
    with psycopg.connect(isolated_database) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM k.expires_at - a.completed_at) / 3600"
            "  FROM idempotency_keys k JOIN activations a ON a.id = k.activation_id WHERE a.id = %s",
            (final["id"],),
        ).fetchone()
    assert row is not None and row[0] is not None
    assert abs(float(row[0]) - 72) < 0.01, f"the key is kept {float(row[0]):.2f} h after the activation ended"

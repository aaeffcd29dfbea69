"""Database blips: PostgreSQL drops every connection (pg_terminate_backend, as a failover or a
restart does). The statement pools replace dead connections before use and run again a statement
whose session ended under it; over HTTP, the next requests succeed and the worker claims again at
once. And a restart: while the database is down requests fail fast; once it answers, everything
works again within a couple of seconds."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
import structlog

from app.adapters.db import migrate
from app.adapters.db.statements import StatementPool
from flowservice_emulator import EmulatorServer
from tests.conftest import gateway_env, wait_terminal
from tests.ops.test_health import PrivatePostgres
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

# The claim loop must run again within this long of the database answering.
CLAIMS_RESUME_WITHIN_SECONDS = 2.0


def post_activation(client: httpx.Client) -> httpx.Response:
    return client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})


def post_on_new_client(gateway: GatewayProcess) -> httpx.Response:
    with gateway.client() as client:
        return post_activation(client)


def warm_up(gateway: GatewayProcess, client: httpx.Client) -> None:
    # Concurrent activations grow both statement pools (and the engine's) past one connection,
    # so that each pool holds several connections for the database to drop.
    with ThreadPoolExecutor(max_workers=4) as executor:
        accepted = list(executor.map(lambda _: post_on_new_client(gateway), range(4)))
    for response in accepted:
        assert response.status_code == 202, response.text
        assert wait_terminal(client, response.json()["id"])["status"] == "succeeded"


def terminate_other_backends(database_url: str, *, wait: bool = False) -> int:
    """Disconnect every session on the database but this one, as PostgreSQL does on a blip; with
    ``wait``, return once they are gone (their FATAL sent)."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
            (5000 if wait else 0,),
        ).fetchall()
    return len(rows)


def seconds_until_claimed(client: httpx.Client, activation_id: str, since: float, timeout: float = 15.0) -> float:
    """Seconds from ``since`` until the activation leaves ``pending`` (a worker claimed it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/activations/{activation_id}")
        assert response.status_code == 200, response.text
        if response.json()["status"] != "pending":
            return time.monotonic() - since
        time.sleep(0.05)
    raise AssertionError(f"activation {activation_id} still pending after {timeout}s")


def test_dead_idle_connections_are_replaced_at_hand_out(isolated_database: str) -> None:
    async def scenario() -> None:
        pool = StatementPool(isolated_database, size=3, name="test")
        try:
            # Three statements at once: the pool holds three connections.
            await asyncio.gather(*(pool.execute("SELECT pg_sleep(0.1)", {}) for _ in range(3)))
            assert terminate_other_backends(isolated_database, wait=True) == 3
            with structlog.testing.capture_logs() as logs:
                for _ in range(4):
                    assert await pool.fetchone("SELECT 1 AS one", {}) == {"one": 1}
            # Found dead before use: no statement failed and had to run again.
            assert [entry["event"] for entry in logs if "running it again" in entry["event"]] == []
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_statement_whose_session_is_terminated_under_it_runs_again(isolated_database: str) -> None:
    async def scenario() -> None:
        pool = StatementPool(isolated_database, size=1, name="test")
        try:
            first = await pool.fetchone("SELECT pg_backend_pid() AS pid", {})
            assert first is not None
            statement = asyncio.create_task(pool.fetchone("SELECT pg_backend_pid() AS pid, pg_sleep(1)", {}))
            await asyncio.sleep(0.3)  # the statement is running (its connection was there already)
            await asyncio.to_thread(terminate_other_backends, isolated_database)
            # FATAL 57P01: the statement was rolled back, so it ran again, on a new connection.
            again = await statement
            assert again is not None and again["pid"] != first["pid"]
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_pools_recover_after_postgres_drops_every_connection(
    start_gateway: Callable[..., GatewayProcess], isolated_database: str
) -> None:
    gateway = start_gateway()
    with gateway.client() as client:
        warm_up(gateway, client)
        # Twice: the pools' replacements must be live connections too, not more dead ones.
        for blip in range(2):
            terminated_at = time.monotonic()
            assert terminate_other_backends(isolated_database) > 0
            accepted = []
            for attempt in range(5):  # on the same keep-alive client
                response = post_activation(client)
                assert response.status_code == 202, f"blip {blip}, POST {attempt}: {response.text}"
                accepted.append(response.json()["id"])
            read = client.get(f"/activations/{accepted[0]}")
            assert read.status_code == 200, read.text

            claimed_after = seconds_until_claimed(client, accepted[0], since=terminated_at)
            assert claimed_after < CLAIMS_RESUME_WITHIN_SECONDS, f"blip {blip}: claimed after {claimed_after:.1f}s"
            for activation_id in accepted:
                assert wait_terminal(client, activation_id)["status"] == "succeeded"


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's basetemp, which concurrent sessions rotate (see tests/conftest.py).
    root = Path(tempfile.mkdtemp(prefix="ag-blip-pg-"))
    server = PrivatePostgres(root)
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_after_a_restart_requests_and_claims_resume_within_seconds(
    private_postgres: PrivatePostgres, emulator: EmulatorServer, tmp_path: Path
) -> None:
    database_url = private_postgres.create_database()
    migrate.upgrade(database_url)
    gateway = GatewayProcess(gateway_env(database_url, emulator), log_path=tmp_path / "gateway.log")
    with gateway, gateway.client() as client:
        warm_up(gateway, client)

        private_postgres.stop()  # a fast shutdown: every session gets FATAL 57P01
        down_at = time.monotonic()
        # Down: a request fails within the pool's timeout (5 s); it does not hang for 30 s.
        # It is a 503 problem with Retry-After, on a keep-alive connection that stays usable.
        with httpx.Client(base_url=gateway.url, timeout=10.0) as other:
            down = post_activation(other)
            assert down.status_code == 503, down.text
            assert down.json()["type"] == "urn:activation-gateway:problem:database-unavailable"
            assert down.headers["retry-after"] == "2"
            assert down.headers.get("connection") != "close", "the caller's keep-alive connection is kept"
        # Long enough for psycopg_pool's doubling reconnect delays (1, 2, 4 s ...) to matter.
        time.sleep(max(0.0, 8.0 - (time.monotonic() - down_at)))

        private_postgres.start()
        up_at = time.monotonic()
        accepted = []
        for attempt in range(5):
            response = post_activation(client)
            assert response.status_code == 202, f"POST {attempt}: {response.text}"
            accepted.append(response.json()["id"])
        assert client.get(f"/activations/{accepted[0]}").status_code == 200
        claimed_after = seconds_until_claimed(client, accepted[0], since=up_at)
        assert claimed_after < CLAIMS_RESUME_WITHIN_SECONDS, f"claimed {claimed_after:.1f}s after the restart"
        for activation_id in accepted:
            assert wait_terminal(client, activation_id)["status"] == "succeeded"

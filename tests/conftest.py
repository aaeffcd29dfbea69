"""Shared fixtures: a real PostgreSQL database migrated by Alembic, the Flow Service emulator over
real HTTP, and the gateway as a real subprocess."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from app.adapters.db import migrate
from flowservice_emulator import EmulatorConfig, EmulatorServer
from tests.support.database import fresh_database, server_dsn, stop_embedded_servers
from tests.support.gateway import GatewayProcess

# Test processes never compete for the built-in emulator's fixed default port (8081), nor with a
# `serve` running on the machine: a default run started by a test takes any free port.
os.environ.setdefault("EMULATOR_PORT", "0")

ADOBE_CLIENT_ID = "gateway-test-client"
# Distinctive so that leak tests can grep for it.
ADOBE_CLIENT_SECRET = "adobe-client-secret-Zq8vW3xK"
ADOBE_ORG_ID = "A1B2C3D4E5F6A7B8C9D0E1F2@AdobeOrg"
TERMINAL = {"succeeded", "failed", "rolled_back", "rollback_failed"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    # Not under pytest's basetemp: concurrent pytest sessions rotate (delete) each other's old ones.
    root = Path(tempfile.mkdtemp(prefix="ag-test-pg-"))
    try:
        yield server_dsn(root)
    finally:
        stop_embedded_servers()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_server: str) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def truncate_all(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE activations, activation_steps, activation_events, idempotency_keys, cycle_watermarks CASCADE"
        )


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(EmulatorConfig(client_id=ADOBE_CLIENT_ID, client_secret=ADOBE_CLIENT_SECRET))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Iterator[EmulatorServer]:
    httpx.post(f"{emulator_server.url}/_emulator/reset").raise_for_status()
    yield emulator_server


def gateway_env(database_url: str, emulator: EmulatorServer, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "FLOW_SERVICE_URL": emulator.flow_service_url,
        "IMS_TOKEN_URL": emulator.ims_token_url,
        "ADOBE_CLIENT_ID": ADOBE_CLIENT_ID,
        "ADOBE_CLIENT_SECRET": ADOBE_CLIENT_SECRET,
        "ADOBE_ORG_ID": ADOBE_ORG_ID,
        "DEV_MODE": "true",
        "SECRETS_KEY": SECRETS_KEY,
        "ALLOWED_SANDBOXES": "prod,dev",
        "AUTO_MIGRATE": "false",
        "RETRY_BASE_DELAY_SECONDS": "0.05",
        "RETRY_MAX_DELAY_SECONDS": "0.5",
        "RETRY_AFTER_MAX_SECONDS": "2",
        "LEASE_SECONDS": "4",
        # Creates that were retried wait this long before the duplicate sweeps (the emulator's
        # commit_then_fail commits at once; the late-commit tests set their own window).
        "LATE_COMMIT_WINDOW_SECONDS": "0.5",
        "WORKER_POLL_INTERVAL_SECONDS": "0.2",
        "UPSTREAM_TIMEOUT_SECONDS": "3",
        "LOG_LEVEL": "DEBUG",
        # Several processes share the test server (max_connections 100 by default).
        "DATABASE_POOL_SIZE": "4",
        # Many tests create far more than Adobe's 100 dataflows in one sandbox; test_dataflow_limit.py
        # sets its own limit.
        "DATAFLOW_LIMIT_PER_SANDBOX": "0",
        # The background cycles (run mirroring, reconcile) call Adobe on their own schedule: a shared
        # gateway runs them once at its start and not again (the lease is kept across tests), so that
        # they never add calls to another test's emulator history. Their tests start their own.
        "RUNS_POLL_INTERVAL_SECONDS": "86400",
        "RECONCILE_INTERVAL_SECONDS": "86400",
    }
    env.update(overrides)
    return env


SECRETS_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def gateway_process(
    database_url: str, emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    process = GatewayProcess(gateway_env(database_url, emulator_server), log_path=log_path)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def gateway(gateway_process: GatewayProcess, emulator: EmulatorServer, database_url: str) -> GatewayProcess:
    """The shared gateway, with an empty database and a reset emulator."""
    truncate_all(database_url)
    return gateway_process


T = TypeVar("T")


def wait_for(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"condition not reached in {timeout}s; last state: {last}")


def wait_terminal(client: httpx.Client, activation_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_for(
        lambda: client.get(f"/activations/{activation_id}").json(),
        lambda body: body.get("status") in TERMINAL,
        timeout,
    )


def root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def isolated_database(pg_server: str) -> Iterator[str]:
    """A database of its own, for tests that run their own gateway processes."""
    with fresh_database(pg_server, prefix="ag_iso") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
def start_gateway(
    isolated_database: str, emulator: EmulatorServer, tmp_path: Path
) -> Iterator[Callable[..., GatewayProcess]]:
    """Start private gateway processes on the isolated database; all are stopped at the end."""
    started: list[GatewayProcess] = []

    def start(wait: bool = True, args: list[str] | None = None, **env: str) -> GatewayProcess:
        process = GatewayProcess(
            gateway_env(isolated_database, emulator, **env),
            log_path=tmp_path / f"gateway-{len(started)}.log",
            args=args,
        )
        started.append(process)
        return process.start(wait=wait)

    yield start
    for process in started:
        process.kill()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The in-process engine tests (tests/engine: fakes of the ports, a few seconds in all) run
    first, so that a broken runner fails the run before the end-to-end ring starts its processes."""
    engine = Path(__file__).parent / "engine"
    items.sort(key=lambda item: 0 if engine in Path(str(item.path)).parents else 1)

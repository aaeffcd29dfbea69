"""Failed compensations are retried in the background (found on the way by the adversarial review):
`rollback_failed` used to stay so until someone called rollback again. Now the gateway retries with
a long, capped, jittered backoff (COMPENSATION_RETRY_BASE_SECONDS doubling up to
COMPENSATION_RETRY_MAX_SECONDS), with events and a metric, until it succeeds or an operator stops it
(`activation-gateway stop-compensation-retries ID`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import resources_of
from tests.gateway.test_faults import add_fault
from tests.support.gateway import ROOT, GatewayProcess
from tests.support.payloads import new_key, s3_request

RETRIES = {"COMPENSATION_RETRY_BASE_SECONDS": "1", "COMPENSATION_RETRY_MAX_SECONDS": "2"}


def succeeded_activation(client: httpx.Client) -> str:
    response = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
    final = wait_terminal(client, response.json()["id"])
    assert final["status"] == "succeeded", final
    return str(final["id"])


def rollback_failed(client: httpx.Client, activation_id: str) -> dict[str, Any]:
    assert client.post(f"/activations/{activation_id}/rollback").status_code == 202
    return wait_for(
        lambda: client.get(f"/activations/{activation_id}").json(),
        lambda body: body["status"] == "rollback_failed",
        timeout=60,
    )


def stop_retries(gateway: GatewayProcess, activation_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "stop-compensation-retries", activation_id],
        cwd=ROOT,
        env={**os.environ, **gateway.env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_failed_compensation_is_retried_until_it_succeeds(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    gateway = start_gateway(**RETRIES)
    with gateway.client() as client:
        activation_id = succeeded_activation(client)
        # Exactly one round's worth of attempts (RETRY_MAX_ATTEMPTS, 6) fails; the next round succeeds.
        add_fault(emulator, {"method": "DELETE", "path": "/targetConnections/*", "status": 503, "times": 6})
        failed = rollback_failed(client, activation_id)
        assert resources_of(emulator, activation_id)["targetConnections"], "the orphan is still there"
        final = wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda body: body["status"] == "rolled_back",
            timeout=60,
        )
        events = client.get(f"/activations/{activation_id}/events").json()["items"]
        metrics = client.get("/metrics").text
    assert failed["status"] == "rollback_failed" and final["status"] == "rolled_back"
    assert all(v == [] for v in resources_of(emulator, activation_id).values())
    statuses = [e["data"] for e in events if e["type"] == "status"]
    ended = next(s for s in statuses if s["status"] == "rollback_failed")
    assert 0 <= ended["nextRetryInSeconds"] <= 2
    retried = next(s for s in statuses if s["status"] == "rolling_back" and s.get("reason") == "automatic retry")
    assert retried["round"] == 1
    assert "gateway_compensation_retries_total 1.0" in metrics


def test_an_operator_stops_the_retries(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, isolated_database: str
) -> None:
    # The first retry is due in 10 to 20 s: the operator stops it before.
    gateway = start_gateway(COMPENSATION_RETRY_BASE_SECONDS="20")
    add_fault(emulator, {"method": "DELETE", "path": "/targetConnections/*", "status": 503, "times": 10_000})
    with gateway.client() as client:
        activation_id = succeeded_activation(client)
        rollback_failed(client, activation_id)
        with psycopg.connect(isolated_database) as conn:
            scheduled = conn.execute(
                "SELECT compensation_retry_at > now() FROM activations WHERE id = %s", (activation_id,)
            ).fetchone()
        assert scheduled == (True,), "a retry was scheduled"
        stop = stop_retries(gateway, activation_id)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        again = stop_retries(gateway, activation_id)
        assert again.returncode == 1 and "nothing changed" in again.stderr
        body = client.get(f"/activations/{activation_id}").json()
        events = client.get(f"/activations/{activation_id}/events").json()["items"]
    assert body["status"] == "rollback_failed"
    assert any(e["type"] == "compensation_retries_stopped" for e in events)
    with psycopg.connect(isolated_database) as conn:
        row = conn.execute("SELECT compensation_retry_at FROM activations WHERE id = %s", (activation_id,)).fetchone()
    assert row == (None,)

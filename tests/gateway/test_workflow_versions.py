"""An activation or an operation whose workflow version this build does not have is left for a
process that has it, and said loudly: a readiness warning, a metric, an event. It is never run with
the wrong steps and never crash-loops (workflows.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psycopg

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

QUICK = {"WORKER_POLL_INTERVAL_SECONDS": "0.2", "SHUTDOWN_DELAY_SECONDS": "0"}


def unrunnable_gauge(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("gateway_unrunnable_operations "):
            return float(line.split()[1])
    raise AssertionError("gateway_unrunnable_operations is not exported")


def version_check(client: httpx.Client) -> list[dict[str, object]]:
    checks: list[dict[str, object]] = client.get("/health/ready").json()["checks"].get("workflows:versions", [])
    return checks


def flow_calls(emulator: EmulatorServer) -> int:
    items = httpx.get(f"{emulator.url}/_emulator/requests").json()["items"]
    return sum(1 for item in items if "/flowservice/" in item["path"])


def test_an_activation_of_an_unknown_create_version_waits_for_a_build_that_has_it(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, isolated_database: str
) -> None:
    intake = start_gateway(WORKER_ENABLED="false", **QUICK)
    with intake.client() as client:
        activation_id = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()}).json()[
            "id"
        ]
    with psycopg.connect(isolated_database, autocommit=True) as db:
        db.execute("UPDATE activations SET workflow_version = 99 WHERE id = %s", (activation_id,))
    intake.stop()
    httpx.post(f"{emulator.url}/_emulator/reset").raise_for_status()

    worker = start_gateway(**QUICK)
    with worker.client() as client:
        time.sleep(2.0)  # ten claim cycles
        body = client.get(f"/activations/{activation_id}").json()
        assert body["status"] == "pending" and all(s["attempts"] == 0 for s in body["steps"])
        assert flow_calls(emulator) == 0  # not one step ran with another version's steps
        check = version_check(client)
        assert check and check[0]["status"] == "warn" and check[0]["observedValue"] == 1, check
        assert client.get("/health/ready").status_code == 200  # a warning: the process serves the rest
        assert unrunnable_gauge(client) == 1
        # A build that has the version (here: the version restored) takes it and finishes it.
        with psycopg.connect(isolated_database, autocommit=True) as db:
            db.execute("UPDATE activations SET workflow_version = 1 WHERE id = %s", (activation_id,))
        assert wait_terminal(client, activation_id, timeout=30)["status"] == "succeeded"
        assert version_check(client) == []
        assert unrunnable_gauge(client) == 0


def test_an_operation_of_an_unknown_version_is_left_and_reported_once(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, isolated_database: str
) -> None:
    first = start_gateway(**QUICK)
    with first.client() as client:
        created = client.post(
            "/activations", json=s3_request(), headers={"Idempotency-Key": new_key(), "Prefer": "wait=30"}
        ).json()
        assert created["status"] == "succeeded", created
    first.stop()
    activation_id = created["id"]

    intake = start_gateway(WORKER_ENABLED="false", **QUICK)
    with intake.client() as client:
        paused = client.post(f"/activations/{activation_id}/pause", headers={"Idempotency-Key": new_key()})
        assert paused.status_code == 202, paused.text
        operation_id = paused.headers["Location"].rsplit("/", 1)[1]
    with psycopg.connect(isolated_database, autocommit=True) as db:
        db.execute("UPDATE activation_operations SET workflow_version = 99 WHERE id = %s", (operation_id,))
    intake.stop()

    worker = start_gateway(**QUICK)
    with worker.client() as client:
        events = wait_for(
            lambda: {"items": client.get(f"/activations/{activation_id}/events").json()["items"]},
            lambda body: any(e["type"] == "workflow_unavailable" for e in body["items"]),
            timeout=20,
        )["items"]
        reported = [e for e in events if e["type"] == "workflow_unavailable"]
        assert len(reported) == 1 and reported[0]["data"]["operationId"] == operation_id
        operation = client.get(f"/activations/{activation_id}/operations/{operation_id}").json()
        assert operation["status"] == "running" or operation["status"] == "pending"
        assert all(step["attempts"] == 0 for step in operation["steps"])
        assert client.get(f"/activations/{activation_id}").json()["state"] == "enabled"
        assert version_check(client)[0]["observedValue"] == 1
        assert 'gateway_workflow_unavailable_total{kind="pause"}' in client.get("/metrics").text
        # Restored, and due again: it runs.
        with psycopg.connect(isolated_database, autocommit=True) as db:
            db.execute("UPDATE activation_operations SET workflow_version = 1 WHERE id = %s", (operation_id,))
            db.execute("UPDATE activations SET run_after = now() WHERE id = %s", (activation_id,))
        done = wait_for(
            lambda: client.get(f"/activations/{activation_id}/operations/{operation_id}").json(),
            lambda body: body["status"] in ("succeeded", "failed"),
            timeout=30,
        )
        assert done["status"] == "succeeded", done["error"]
        assert client.get(f"/activations/{activation_id}").json()["state"] == "disabled"

"""A requested rollback always wins (defects 3 and 7 of the adversarial review), however it
interleaves with the worker: a request whose write lands just after the last step's write, and a
request made while a step runs that then fails with automatic compensation off."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import resources_of
from tests.gateway.test_crash_points import step_of
from tests.gateway.test_faults import add_fault
from tests.security.support import add_latency
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

# The saga store's step writes start with this CTE; lease renewals with this assignment; the write
# that ends a run (COMPLETE_RUN) locks the row first to decide whether it completes.
STEP_WRITE = "%fence AS%"
RUN_COMPLETION = "%AS completes%FOR UPDATE%"
RENEWAL = "%lease_expires_at = CASE%"


def lock_waiters(database_url: str, *, like: str = "%", not_like: tuple[str, ...] = ()) -> int:
    """Backends of this database waiting for a lock (the activation row's, in these tests) while
    running a statement whose text is ``like`` and none of ``not_like``."""
    exclusions = "".join(" AND query NOT LIKE %s" for _ in not_like)
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            f" AND wait_event_type = 'Lock' AND query LIKE %s{exclusions}",
            (like, *not_like),
        ).fetchone()
    assert row is not None
    return int(row[0])


def post(client: httpx.Client) -> str:
    response = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_a_rollback_whose_write_lands_just_after_the_last_steps_write_still_wins(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, isolated_database: str
) -> None:
    """Forced interleaving: the test holds the activation's row lock while the last step's write
    queues on it, then lets the rollback request read the activation (still running) and queue
    behind that write. The write commits `succeeded` first; the request must then still act."""
    # The lease outlasts the held row lock: renewals queue behind it too, and an expired lease could
    # be claimed anew the moment the lock is free, ahead of the queued write (which would then lose
    # its fence and never complete): not the interleaving this test forces.
    gateway = start_gateway(LEASE_SECONDS="30")
    add_latency(emulator, method="GET", path="/flows/*", fixedMs=1500)  # verify_flow's read
    with gateway.client() as client:
        activation_id = post(client)
        wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda body: step_of(body, "verify_flow")["status"] == "running",
        )
        answer: dict[str, Any] = {}
        with psycopg.connect(isolated_database) as blocker:  # a transaction, until the block ends
            blocker.execute("SELECT 1 FROM activations WHERE id = %s FOR UPDATE", (activation_id,))
            # The last step's write (verify_flow's success, which ends the run) queues first...
            wait_for(lambda: {"n": lock_waiters(isolated_database, like=RUN_COMPLETION)}, lambda r: r["n"] >= 1)

            def request_rollback() -> None:
                with gateway.client() as other:
                    answer["response"] = other.post(f"/activations/{activation_id}/rollback")

            requester = threading.Thread(target=request_rollback)
            requester.start()
            # ...then the rollback request, which read the activation as running, behind it.
            wait_for(
                lambda: {"n": lock_waiters(isolated_database, not_like=(STEP_WRITE, RENEWAL))},
                lambda r: r["n"] >= 1,
            )
        requester.join(timeout=30)
        assert answer["response"].status_code == 202, answer["response"].text
        final = wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda body: body["status"] in ("rolled_back", "rollback_failed", "failed"),
            timeout=30,
        )
        statuses = [
            e["data"]["status"]
            for e in client.get(f"/activations/{activation_id}/events").json()["items"]
            if e["type"] == "status"
        ]
    assert final["status"] == "rolled_back", final
    assert statuses[-3:] == ["succeeded", "rolling_back", "rolled_back"], statuses
    assert all(v == [] for v in resources_of(emulator, activation_id).values())


def test_a_rollback_requested_during_a_step_that_then_fails_wins_without_auto_compensation(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    gateway = start_gateway(AUTO_COMPENSATE="false")
    add_latency(emulator, method="POST", path="/flows", fixedMs=1500)
    add_fault(emulator, {"method": "POST", "path": "/flows", "status": 400, "times": 1})
    with gateway.client() as client:
        activation_id = post(client)
        wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda body: step_of(body, "create_flow")["status"] == "running",
        )
        assert client.post(f"/activations/{activation_id}/rollback").status_code == 202
        final = wait_terminal(client, activation_id, timeout=60)
    assert final["status"] == "rolled_back", final
    assert final["error"]["step"] == "create_flow", "the failure is still reported"
    assert all(v == [] for v in resources_of(emulator, activation_id).values())


def test_without_auto_compensation_a_failure_nobody_asked_to_undo_stays_failed(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    gateway = start_gateway(AUTO_COMPENSATE="false")
    add_fault(emulator, {"method": "POST", "path": "/flows", "status": 400, "times": 1})
    with gateway.client() as client:
        final = wait_terminal(client, post(client), timeout=60)
    assert final["status"] == "failed", final
    assert len(resources_of(emulator, final["id"])["targetConnections"]) == 1, "left for the caller to decide"

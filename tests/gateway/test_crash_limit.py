"""An activation whose run keeps crashing ends (defect 4 of the adversarial review): an answer no
code foresaw (here a `201` without an id) used to crash the run, which was claimed again every few
seconds without limit and re-sent its create each time. Now the crashes are counted, and at
RUN_CRASH_LIMIT the activation ends `failed` with an internal-error problem, compensated like any
failure: a bounded number of upstream calls, never an endless series."""

from __future__ import annotations

from collections.abc import Callable

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_terminal
from tests.gateway.test_activation_e2e import flow_service_requests, resources_of
from tests.gateway.test_faults import add_fault
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

LIMIT = 3


def test_a_run_that_keeps_crashing_ends_failed_and_compensated(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    gateway = start_gateway(RUN_CRASH_LIMIT=str(LIMIT))
    # A malformed success, every time: the client finds no id in it.
    add_fault(emulator, {"method": "POST", "path": "/sourceConnections", "status": 201, "body": {}, "times": 1000})
    with gateway.client() as client:
        response = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        final = wait_terminal(client, response.json()["id"], timeout=60)
        events = client.get(f"/activations/{final['id']}/events").json()["items"]
        metrics = client.get("/metrics").text
    assert final["status"] == "rolled_back", final
    assert final["error"]["type"].endswith("internal-error"), final["error"]
    assert final["error"]["status"] == 500
    crashes = [e for e in events if e["type"] == "crash"]
    assert [e["data"]["crashes"] for e in crashes] == list(range(1, LIMIT + 1)), crashes
    assert all(e["data"]["error"] == "KeyError" for e in crashes), crashes
    posts = [
        e for e in flow_service_requests(emulator) if e["method"] == "POST" and e["path"].endswith("/sourceConnections")
    ]
    assert len(posts) == LIMIT, "one create per run, and no run after the limit"
    assert all(v == [] for v in resources_of(emulator, final["id"]).values())
    assert "gateway_run_crashes_total 3.0" in metrics

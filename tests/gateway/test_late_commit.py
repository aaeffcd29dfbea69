"""Late commits (defect 1 of the adversarial review): Adobe commits a create after the gateway gave
up on it (a client timeout, a 504 whose backend carried on, a dropped connection), after the retry's
name lookup found nothing and created a second copy. A `succeeded` activation still holds exactly
one resource of each kind upstream, and a `rolled_back` one none: the sweeps wait out the
late-commit window, find every copy by name, and delete the extra ones (event and metric)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import (
    assert_flow_lists,
    assert_one_of_each,
    flow_service_requests,
    resources_of,
)
from tests.gateway.test_faults import STEP_FAULTS, add_fault
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

# The gateway gives up after 1 s; Adobe commits 2 s after the request arrived; the sweeps wait 3 s
# after each create whose answer never came.
LATE = {"UPSTREAM_TIMEOUT_SECONDS": "1", "LATE_COMMIT_WINDOW_SECONDS": "3"}
FAILURES = {
    "timeout": {"failure": "timeout", "holdMs": 1500},
    "504": {"failure": "error", "status": 504},
    "drop": {"failure": "drop"},
}
CREATE_STEPS = [step for step in STEP_FAULTS if step != "activate_segments"]
KIND_OF = {
    "create_source_base_connection": "connections",
    "create_source_connection": "sourceConnections",
    "create_target_base_connection": "connections",
    "create_target_connection": "targetConnections",
    "create_flow": "flows",
}


def late_commit(emulator: EmulatorServer, step: str, failure: str) -> str:
    rule = {**STEP_FAULTS[step], "mode": "late_commit", "commitAfterMs": 2000, "times": 1, **FAILURES[failure]}
    return add_fault(emulator, rule)


def fault_state(emulator: EmulatorServer, fault_id: str) -> dict[str, Any]:
    items = httpx.get(f"{emulator.url}/_emulator/faults").json()["items"]
    return dict(next(f for f in items if f["id"] == fault_id))


def wait_committed(emulator: EmulatorServer, fault_id: str, count: int = 1) -> None:
    """Until Adobe has committed the held-back creates (the checks then see every copy there is)."""
    wait_for(lambda: fault_state(emulator, fault_id), lambda f: f["committed"] >= count, timeout=15)


def events_of(client: httpx.Client, activation_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/activations/{activation_id}/events").json()["items"]
    return items


def duplicates_metric(client: httpx.Client, kind: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'gateway_upstream_duplicates_removed_total{{kind="{kind}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/activations", json=body, headers={"Idempotency-Key": new_key()})
    assert response.status_code == 202, response.text
    return wait_terminal(client, response.json()["id"], timeout=60)


@pytest.mark.parametrize(
    ("step", "failure"),
    [(step, "timeout") for step in CREATE_STEPS] + [("create_target_base_connection", f) for f in ("504", "drop")],
)
def test_a_late_commit_leaves_exactly_one_resource_of_each_kind(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, step: str, failure: str
) -> None:
    gateway = start_gateway(**LATE)
    fault = late_commit(emulator, step, failure)
    body = s3_request()
    with gateway.client() as client:
        final = run(client, body)
        assert final["status"] == "succeeded", final
        wait_committed(emulator, fault)
        found = assert_one_of_each(emulator, final["id"])
        assert_flow_lists(found["flows"][0], body)
        recorded = {s["name"]: s["resourceId"] for s in final["steps"]}
        kept = {r["id"] for r in found[KIND_OF[step]]}
        assert recorded[step] in kept, "the recorded resource is the one kept"
        duplicates = [e for e in events_of(client, final["id"]) if e["type"] == "duplicate"]
        assert [(e["step"], e["data"]["kind"]) for e in duplicates] == [(step, KIND_OF[step])], duplicates
        assert duplicates[0]["data"]["resourceId"] != recorded[step]
        assert duplicates_metric(client, KIND_OF[step]) >= 1


def test_without_faults_no_lookup_by_name_is_made(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    """A create answered on its first attempt made exactly what it recorded: the sweeps list
    nothing on the fault-free path (which the benchmark measures)."""
    with gateway.client() as client:
        final = run(client, s3_request())
    assert final["status"] == "succeeded", final
    lookups = [e for e in flow_service_requests(emulator) if "name%3D%3D" in e["query"]]
    assert lookups == []


def test_compensation_deletes_every_copy_even_one_committed_late(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    # The base connection that holds the customer's secret commits late, then the flow is refused
    # for good: compensation must delete both copies of the base connection, not only the recorded one.
    gateway = start_gateway(**LATE)
    fault = late_commit(emulator, "create_target_base_connection", "timeout")
    add_fault(emulator, {"method": "POST", "path": "/flows", "status": 400, "times": 1})
    with gateway.client() as client:
        final = run(client, s3_request())
        assert final["status"] == "rolled_back", final
        assert final["error"]["step"] == "create_flow"
        wait_committed(emulator, fault)
        assert all(v == [] for v in resources_of(emulator, final["id"]).values()), resources_of(emulator, final["id"])
        duplicates = [e for e in events_of(client, final["id"]) if e["type"] == "duplicate"]
        assert [e["step"] for e in duplicates] == ["create_target_base_connection"], duplicates


def test_a_rollback_requested_before_a_late_commit_lands_leaves_nothing(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    # The base connection holding the customer's secret commits 2.5 s late; its retry's copy is
    # recorded; the caller asks for a rollback meanwhile. Deleting what is recorded at once would
    # leave the late copy behind for good.
    gateway = start_gateway(**LATE)
    rule = {**STEP_FAULTS["create_target_base_connection"], "mode": "late_commit", "commitAfterMs": 2500}
    fault = add_fault(emulator, {**rule, "times": 1, **FAILURES["504"]})
    with gateway.client() as client:
        activation_id = run_in_background(client)
        wait_for(lambda: fault_state(emulator, fault), lambda f: f["fired"] >= 1)
        assert client.post(f"/activations/{activation_id}/rollback").status_code == 202
        final = wait_terminal(client, activation_id, timeout=60)
    assert final["status"] == "rolled_back", final
    wait_committed(emulator, fault)
    assert all(v == [] for v in resources_of(emulator, activation_id).values()), resources_of(emulator, activation_id)


def run_in_background(client: httpx.Client) -> str:
    response = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])

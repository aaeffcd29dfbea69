"""Rollback and compensation (contract §2-§4): reverse-order deletes, idempotent rollback calls,
rollback in mid-flight, failing deletes, the events timeline, Prefer: wait, list filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import activate, flow_service_requests, resources_of
from tests.gateway.test_faults import STEP_FAULTS, add_fault
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

BASE = "/data/foundation/flowservice"
# Creation order; compensation deletes in exactly the reverse order.
CREATES = [
    ("create_source_base_connection", "connections"),
    ("create_source_connection", "sourceConnections"),
    ("create_target_base_connection", "connections"),
    ("create_target_connection", "targetConnections"),
    ("create_flow", "flows"),
]
REVERSE_ORDER = [
    "create_flow",
    "create_target_connection",
    "create_target_base_connection",
    "create_source_connection",
    "create_source_base_connection",
]


def deletes(emulator: EmulatorServer) -> list[tuple[str, int | None]]:
    return [
        (e["path"].removeprefix(BASE), e["status"]) for e in flow_service_requests(emulator) if e["method"] == "DELETE"
    ]


def nothing_left(emulator: EmulatorServer, activation_id: str) -> bool:
    return all(v == [] for v in resources_of(emulator, activation_id).values())


def rollback(client: httpx.Client, activation_id: str) -> httpx.Response:
    return client.post(f"/activations/{activation_id}/rollback")


def expected_deletes(final: dict[str, Any], upto: list[str]) -> list[str]:
    ids = {s["name"]: s["resourceId"] for s in final["steps"]}
    kinds = dict(CREATES)
    return [f"/{kinds[name]}/{ids[name]}" for name in REVERSE_ORDER if name in upto]


# Steps 2..8 of the saga, each failed by a non-retryable 4xx on its upstream call. (Step 1,
# resolve_destination, creates nothing: a failure there leaves the activation `failed`.)
FAILING_CALLS = {**STEP_FAULTS, "verify_flow": {"method": "GET", "path": "/flows/*"}}


@pytest.mark.parametrize("failing", list(FAILING_CALLS))
def test_failure_at_step_k_compensates_exactly_the_steps_before_it(
    gateway: GatewayProcess, emulator: EmulatorServer, failing: str
) -> None:
    add_fault(emulator, {**FAILING_CALLS[failing], "status": 400, "times": 1})
    _, final = activate(gateway, s3_request())
    assert final["status"] == "rolled_back", final
    assert final["error"]["step"] == failing, "the original error is kept"
    created_before = [s["name"] for s in final["steps"] if s["resourceId"] and s["name"] != failing]
    assert [path for path, _ in deletes(emulator)] == expected_deletes(final, created_before)
    assert all(status == 202 for _, status in deletes(emulator))
    assert nothing_left(emulator, final["id"])
    statuses = {s["name"]: s["status"] for s in final["steps"]}
    assert all(statuses[name] == "compensated" for name in created_before)


def test_rollback_of_a_succeeded_activation_twice_deletes_once(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    _, final = activate(gateway, s3_request())
    assert final["status"] == "succeeded"
    with gateway.client() as client:
        first = rollback(client, final["id"])
        assert first.status_code == 202
        done = wait_terminal(client, final["id"])
        assert done["status"] == "rolled_back"
        second = rollback(client, final["id"])
        assert second.status_code == 200
        assert second.json()["status"] == "rolled_back"
    assert [p for p, _ in deletes(emulator)] == expected_deletes(final, REVERSE_ORDER)
    assert nothing_left(emulator, final["id"])


def test_rollback_while_the_saga_is_mid_flight_leaves_nothing(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    httpx.post(f"{emulator.url}/_emulator/latency", json={"fixedMs": 300}).raise_for_status()
    with gateway.client() as client:
        activation_id = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()}).json()[
            "id"
        ]
        wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda b: any(s["status"] == "running" and s["name"].startswith("create_") for s in b["steps"]),
        )
        assert rollback(client, activation_id).status_code == 202
        final = wait_terminal(client, activation_id, timeout=60)
    assert final["status"] == "rolled_back", final
    assert nothing_left(emulator, activation_id)
    assert any(s["status"] in ("skipped", "pending") for s in final["steps"]), "forward progress stopped"


def test_deletes_that_keep_failing_end_rollback_failed_then_a_retry_cleans_up(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    _, final = activate(gateway, s3_request())
    fault = add_fault(emulator, {"method": "DELETE", "path": "/targetConnections/*", "status": 503, "times": 1000})
    with gateway.client() as client:
        rollback(client, final["id"])
        failed = wait_terminal(client, final["id"], timeout=60)
        assert failed["status"] == "rollback_failed", failed
        orphan = next(s for s in failed["steps"] if s["name"] == "create_target_connection")
        assert orphan["status"] == "failed" and orphan["resourceId"], "the orphan's id stays listed"
        # The target base connection cannot go while its target connection exists (1418).
        assert len(resources_of(emulator, final["id"])["targetConnections"]) == 1
        httpx.delete(f"{emulator.url}/_emulator/faults/{fault}").raise_for_status()
        assert rollback(client, final["id"]).status_code == 202
        done = wait_terminal(client, final["id"], timeout=60)
    assert done["status"] == "rolled_back", done
    assert nothing_left(emulator, final["id"])


def test_events_list_every_upstream_call_in_order(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    add_fault(emulator, {"method": "POST", "path": "/flows", "status": 500, "times": 1})
    _, final = activate(gateway, s3_request())
    with gateway.client() as client:
        events = client.get(f"/activations/{final['id']}/events").json()["items"]
    upstream = [e for e in events if e["type"] == "upstream"]
    seen = [(e["data"]["method"], e["data"]["path"], e["data"]["status"]) for e in upstream]
    # Only this activation ran: everything the emulator saw is its timeline, in the same order.
    recorded = [(e["method"], e["path"].removeprefix(BASE), e["status"]) for e in flow_service_requests(emulator)]
    assert seen == recorded
    assert ("POST", "/flows", 500) in seen and ("POST", "/flows", 201) in seen
    assert all(isinstance(e["data"]["durationMs"], float | int) and e["data"]["requestId"] for e in upstream)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses == ["pending", "running", "succeeded"]


def test_prefer_wait_returns_200_when_terminal_in_time_and_202_otherwise(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    with gateway.client() as client:
        quick = client.post(
            "/activations", json=s3_request(), headers={"Idempotency-Key": new_key(), "Prefer": "wait=10"}
        )
        assert quick.status_code == 200, quick.text
        assert quick.json()["status"] == "succeeded"
        assert quick.headers["preference-applied"] == "wait=10"
        httpx.post(f"{emulator.url}/_emulator/latency", json={"fixedMs": 1500}).raise_for_status()
        key = new_key()
        slow = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": key, "Prefer": "wait=1"})
        assert slow.status_code == 202
        assert slow.json()["status"] in ("pending", "running")
        assert "retry-after" in slow.headers


def test_list_filters_and_cursor_pagination_stable_under_inserts(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    # A gateway of its own, reading the catalog on every request (nothing cached), so that one
    # request can be accepted while the catalog is unreadable and fail in its saga: a known
    # destination is refused at once otherwise.
    gateway = start_gateway(SPEC_CACHE_TTL_SECONDS="0")
    with gateway.client() as client:
        ids = [
            client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()}).json()["id"]
            for _ in range(5)
        ]
        for activation_id in ids:  # no saga reads the catalog any more: the next read is the check's
            wait_terminal(client, activation_id)
        fault = {"method": "GET", "path": "/connectionSpecs", "status": 503, "times": 1}
        httpx.post(f"{emulator.url}/_emulator/faults", json=fault).raise_for_status()
        unknown = client.post(
            "/activations", json=s3_request(destination="Nowhere"), headers={"Idempotency-Key": new_key()}
        ).json()["id"]
        wait_terminal(client, unknown)
        page1 = client.get("/activations", params={"limit": 2}).json()
        assert [a["id"] for a in page1["items"]] == [unknown, ids[4]], "newest first"
        client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})  # insert meanwhile
        page2 = client.get("/activations", params={"limit": 2, "cursor": page1["nextCursor"]}).json()
        page3 = client.get("/activations", params={"limit": 2, "cursor": page2["nextCursor"]}).json()
        assert [a["id"] for a in page2["items"] + page3["items"]] == [ids[3], ids[2], ids[1], ids[0]]
        assert page3["nextCursor"] is None
        failed = client.get("/activations", params={"status": "failed"}).json()["items"]
        assert [a["id"] for a in failed] == [unknown]
        by_destination = client.get("/activations", params={"destination": "adobe campaign", "limit": 100}).json()
        assert unknown not in {a["id"] for a in by_destination["items"]}
        assert set(ids) <= {a["id"] for a in by_destination["items"]}
        assert client.get("/activations", params={"cursor": "garbage!"}).status_code == 400
        assert client.get("/activations", params={"limit": 101}).status_code == 422


def test_a_rollback_requested_during_the_last_step_wins_over_success(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    """The last step's write would also end the run (one statement); a rollback requested while
    that step is in flight must still win: the activation never reports `succeeded`."""
    httpx.post(f"{emulator.url}/_emulator/latency", json={"path": f"{BASE}/flows/*", "fixedMs": 800}).raise_for_status()
    with gateway.client() as client:
        activation_id = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()}).json()[
            "id"
        ]
        wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda b: any(s["name"] == "verify_flow" and s["status"] == "running" for s in b["steps"]),
        )
        assert rollback(client, activation_id).status_code == 202
        final = wait_terminal(client, activation_id, timeout=60)
        events = client.get(f"/activations/{activation_id}/events").json()["items"]
    assert final["status"] == "rolled_back", final
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert "succeeded" not in statuses, statuses
    assert statuses[-2:] == ["rolling_back", "rolled_back"], statuses
    assert nothing_left(emulator, activation_id)

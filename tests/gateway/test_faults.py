"""Exactly once under faults: the emulator commits a resource but the gateway never hears back
(a 500, a timeout, a dropped connection). The retry finds the resource by name instead of creating
it again, and the PATCH re-reads the flow instead of adding selectors twice."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.gateway.test_activation_e2e import (
    activate,
    assert_flow_lists,
    assert_one_of_each,
    flow_service_requests,
    resources_of,
)
from tests.support.gateway import GatewayProcess
from tests.support.payloads import s3_request

PROFILE_SPEC = "8a9c3494-9708-43d7-ae3f-cda01e5030e1"
CAMPAIGN_SPEC = "0b23e41a-cb4a-4321-a78f-3b654f5d7d97"

# step → the emulator fault rule that matches only that step's upstream write
STEP_FAULTS: dict[str, dict[str, Any]] = {
    "create_source_base_connection": {"method": "POST", "path": "/connections", "bodyContains": PROFILE_SPEC},
    "create_source_connection": {"method": "POST", "path": "/sourceConnections"},
    "create_target_base_connection": {"method": "POST", "path": "/connections", "bodyContains": CAMPAIGN_SPEC},
    "create_target_connection": {"method": "POST", "path": "/targetConnections"},
    "create_flow": {"method": "POST", "path": "/flows"},
    "activate_segments": {"method": "PATCH", "path": "/flows/*"},
}
FAILURES = {
    "500": {"failure": "error", "status": 500},
    "timeout": {"failure": "timeout", "holdMs": 5000},  # longer than the gateway's 3 s upstream timeout
    "drop": {"failure": "drop"},
}


def add_fault(emulator: EmulatorServer, rule: dict[str, Any]) -> str:
    response = httpx.post(f"{emulator.url}/_emulator/faults", json=rule)
    response.raise_for_status()
    return str(response.json()["id"])


def fault_fired(emulator: EmulatorServer, fault_id: str) -> int:
    items = httpx.get(f"{emulator.url}/_emulator/faults").json()["items"]
    return int(next(f["fired"] for f in items if f["id"] == fault_id))


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("step", list(STEP_FAULTS))
def test_commit_then_fail_yields_exactly_one_resource(
    gateway: GatewayProcess, emulator: EmulatorServer, step: str, failure: str
) -> None:
    fault = add_fault(emulator, {**STEP_FAULTS[step], "mode": "commit_then_fail", "times": 1, **FAILURES[failure]})
    body = s3_request()
    _, final = activate(gateway, body)

    assert final["status"] == "succeeded", final
    assert fault_fired(emulator, fault) == 1, "the fault really hit the step"
    attempts = {s["name"]: s["attempts"] for s in final["steps"]}
    assert attempts[step] == 2, attempts
    found = assert_one_of_each(emulator, final["id"])
    assert_flow_lists(found["flows"][0], body)
    if step != "activate_segments":
        # The retry looked the resource up by name before (not) creating it again.
        lookups = [e for e in flow_service_requests(emulator) if e["method"] == "GET" and "name%3D%3D" in e["query"]]
        assert lookups, "a lookup by name preceded the retry"


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_transient_errors_are_retried(gateway: GatewayProcess, emulator: EmulatorServer, status: int) -> None:
    add_fault(
        emulator,
        {
            "method": "POST",
            "path": "/flows",
            "mode": "error",
            "status": status,
            "times": 2,
            "retryAfter": 1 if status == 429 else None,
        },
    )
    _, final = activate(gateway, s3_request())
    assert final["status"] == "succeeded", final
    flow_step = next(s for s in final["steps"] if s["name"] == "create_flow")
    assert flow_step["attempts"] == 3
    assert_one_of_each(emulator, final["id"])


def test_retry_after_is_honoured(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    add_fault(emulator, {"method": "POST", "path": "/sourceConnections", "status": 429, "retryAfter": 2, "times": 1})
    _, final = activate(gateway, s3_request())
    assert final["status"] == "succeeded"
    posts = [
        e for e in flow_service_requests(emulator) if e["method"] == "POST" and e["path"].endswith("/sourceConnections")
    ]
    assert [p["status"] for p in posts] == [429, 201]
    gap = posts[1]["time"] - posts[0]["time"]
    assert gap >= 1.9, f"the retry waited {gap:.2f}s, Retry-After said 2s"


def test_client_errors_are_not_retried_and_fail_the_activation(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    add_fault(emulator, {"method": "POST", "path": "/targetConnections", "status": 400, "times": 1})
    _, final = activate(gateway, s3_request())
    step = next(s for s in final["steps"] if s["name"] == "create_target_connection")
    assert step["attempts"] == 1
    assert final["error"]["step"] == "create_target_connection"
    assert final["error"]["upstreamStatus"] == 400
    # Automatic compensation removed what had been created.
    assert final["status"] == "rolled_back", final
    assert all(v == [] for v in resources_of(emulator, final["id"]).values())


def test_retry_budget_exhausted_fails_with_adobes_error(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    add_fault(emulator, {"method": "POST", "path": "/flows", "status": 503, "times": 50})
    _, final = activate(gateway, s3_request())
    assert final["error"]["step"] == "create_flow"
    assert final["error"]["upstreamStatus"] == 503
    assert final["error"]["upstreamCode"], "Adobe's error code is kept"
    step = next(s for s in final["steps"] if s["name"] == "create_flow")
    assert step["attempts"] == 6  # RETRY_MAX_ATTEMPTS default


def test_expired_token_is_refreshed_once(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    _, first = activate(gateway, s3_request())
    assert first["status"] == "succeeded"
    since = max(e["seq"] for e in httpx.get(f"{emulator.url}/_emulator/requests").json()["items"])
    httpx.post(f"{emulator.url}/_emulator/tokens/expire").raise_for_status()
    _, second = activate(gateway, s3_request())
    assert second["status"] == "succeeded"
    later = [e for e in httpx.get(f"{emulator.url}/_emulator/requests").json()["items"] if e["seq"] > since]
    rejected = [e for e in later if e["status"] == 401]
    # Calls in flight on both branches may each meet the expired token once.
    assert 1 <= len(rejected) <= 2, rejected
    token_requests = [e for e in later if e["path"] == "/ims/token/v3"]
    assert len(token_requests) == 1, "one refresh, shared by the concurrent branches"

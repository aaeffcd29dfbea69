"""The admin API: latency, injected errors, commit-then-fail, token expiry, state and history."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from .conftest import BASE, Api, campaign_s3_body, profile_base_body


def _fault(api: Api, **rule: Any) -> str:
    response = api.http.post("/_emulator/faults", json=rule)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _count(api: Api, kind: str = "connections") -> int:
    return int(api.http.get("/_emulator/state").json()["counts"][kind].get("prod", 0))


def test_latency_is_applied_to_matching_routes_only(api: Api) -> None:
    rule = api.http.post("/_emulator/latency", json={"method": "GET", "path": "/connections", "fixedMs": 300})
    assert rule.status_code == 201
    started = time.perf_counter()
    assert api.get("/connections").status_code == 200
    slow = time.perf_counter() - started
    started = time.perf_counter()
    assert api.get("/flows").status_code == 200
    fast = time.perf_counter() - started
    assert slow >= 0.3 > fast
    api.http.delete("/_emulator/latency")
    started = time.perf_counter()
    api.get("/connections")
    assert time.perf_counter() - started < 0.3


def test_latency_applies_to_ims(api: Api) -> None:
    api.http.post("/_emulator/latency", json={"path": "/ims/*", "fixedMs": 200, "randomMs": 50})
    started = time.perf_counter()
    api.http.post("/ims/token/v3", data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"})
    assert 0.2 <= time.perf_counter() - started < 2


def test_error_fault_n_times_then_success_without_touching_state(api: Api) -> None:
    fault_id = _fault(api, method="POST", path="/connections", status=503, times=2)
    for _ in range(2):
        response = api.post("/connections", profile_base_body())
        assert response.status_code == 503
        assert response.json()["type"] == "https://ns.adobe.com/aep/errors/FLOW-1103-503"
    assert _count(api) == 0
    assert api.post("/connections", profile_base_body()).status_code == 201
    assert _count(api) == 1
    listed = api.http.get("/_emulator/faults").json()["items"]
    assert listed[0]["id"] == fault_id and listed[0]["remaining"] == 0 and listed[0]["fired"] == 2
    history = api.http.get("/_emulator/requests").json()["items"]
    assert [
        entry["fault"] for entry in history if entry["method"] == "POST" and entry["path"].endswith("/connections")
    ] == [fault_id, fault_id, None]


def test_429_carries_retry_after(api: Api) -> None:
    _fault(api, path="/flows", status=429, retryAfter=7)
    response = api.get("/flows")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error_code"] == "429050"


def test_500_and_502_and_custom_bodies(api: Api) -> None:
    _fault(api, path="/flows", status=500)
    _fault(api, path="/flows", status=502, body={"oops": True})
    first, second = api.get("/flows"), api.get("/flows")
    assert (first.status_code, second.status_code) == (500, 502)
    assert first.json()["type"].endswith("FLOW-1102-500")
    assert second.json() == {"oops": True}
    assert api.get("/flows").status_code == 200


def test_body_contains_targets_one_of_two_similar_calls(api: Api) -> None:
    _fault(api, method="POST", path="/connections", bodyContains="0b23e41a", status=500)
    assert api.post("/connections", profile_base_body()).status_code == 201
    assert api.post("/connections", campaign_s3_body()).status_code == 500


def _rate_outcomes(api: Api) -> list[int]:
    api.http.delete("/_emulator/faults")
    _fault(api, path="/flowSpecs", status=500, rate=0.5, seed=42)
    return [api.get("/flowSpecs").status_code for _ in range(20)]


def test_rate_with_seed_is_deterministic(api: Api) -> None:
    first, second = _rate_outcomes(api), _rate_outcomes(api)
    assert first == second
    assert 500 in first and 200 in first


@pytest.mark.parametrize("failure", ["error", "timeout", "drop"])
def test_commit_then_fail_leaves_exactly_one_resource(api: Api, failure: str) -> None:
    _fault(api, method="POST", path="/connections", mode="commit_then_fail", failure=failure, status=502, holdMs=1500)
    if failure == "error":
        assert api.post("/connections", profile_base_body()).status_code == 502
    elif failure == "timeout":
        with pytest.raises(httpx.ReadTimeout):
            api.http.post(BASE + "/connections", json=profile_base_body(), headers=api.headers(), timeout=0.5)
    else:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            api.post("/connections", profile_base_body())
    assert _count(api) == 1
    # The retry the client would make after looking the name up finds the committed resource.
    found = api.get("/connections", {"property": "name==Profile store"}).json()["items"]
    assert len(found) == 1


def test_commit_then_fail_timeout_answers_500_after_the_hold(api: Api) -> None:
    _fault(api, method="POST", path="/connections", mode="commit_then_fail", failure="timeout", holdMs=300)
    started = time.perf_counter()
    response = api.post("/connections", profile_base_body())
    assert response.status_code == 500
    assert time.perf_counter() - started >= 0.3
    assert _count(api) == 1


def test_fault_rules_can_be_deleted_one_by_one(api: Api) -> None:
    keep = _fault(api, path="/flows", status=500, times=5)
    drop = _fault(api, path="/connections", status=500, times=5)
    assert api.http.delete(f"/_emulator/faults/{drop}").status_code == 204
    assert [rule["id"] for rule in api.http.get("/_emulator/faults").json()["items"]] == [keep]
    assert api.http.delete("/_emulator/faults/nope").status_code == 404
    assert api.get("/connections").status_code == 200


def test_invalid_fault_rules_are_refused(api: Api) -> None:
    assert api.http.post("/_emulator/faults", json={"status": 200}).status_code == 422
    assert api.http.post("/_emulator/faults", json={"mode": "error", "failure": "drop"}).status_code == 422
    assert api.http.post("/_emulator/faults", json={"rate": 2}).status_code == 422


def test_state_and_history_shapes(api: Api) -> None:
    created = api.create("connections", campaign_s3_body())
    state = api.http.get("/_emulator/state").json()
    assert state["counts"]["connections"] == {"prod": 1}
    stored = state["resources"]["connections"]["prod"][0]
    assert stored["id"] == created["id"] and stored["auth"]["params"]["secretKey"] == "***"
    entry = state["requests"][-1]
    assert entry["method"] == "POST" and entry["path"] == f"{BASE}/connections"
    assert entry["headers"]["authorization"] == "Bearer ***"
    assert entry["body"]["name"] == "Campaign S3"
    assert entry["status"] == 201 and entry["responseBody"] == created
    assert entry["sandbox"] == "prod" and entry["fault"] is None
    assert set(entry) == {
        "seq",
        "time",
        "method",
        "path",
        "query",
        "headers",
        "body",
        "status",
        "responseHeaders",
        "responseBody",
        "fault",
        "sandbox",
    }
    since = api.http.get("/_emulator/requests", params={"since": entry["seq"]}).json()["items"]
    assert [item["seq"] for item in since] == [entry["seq"]]
    api.delete(f"/connections/{created['id']}")
    assert api.http.get("/_emulator/state").json()["counts"]["connections"] == {}


def test_reset_clears_everything(api: Api) -> None:
    api.create("connections", profile_base_body())
    _fault(api, path="/flows", status=500)
    api.http.post("/_emulator/latency", json={"fixedMs": 1})
    assert api.http.post("/_emulator/reset").status_code == 204
    state = api.http.get("/_emulator/state").json()
    assert state["counts"]["connections"] == {} and state["requests"] == []
    assert api.http.get("/_emulator/faults").json()["items"] == []
    assert api.http.get("/_emulator/latency").json()["items"] == []
    assert api.get("/flows").status_code == 401  # tokens are gone too

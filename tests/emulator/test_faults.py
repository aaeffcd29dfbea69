"""The admin API: latency, injected errors, commit-then-fail, late commits, token expiry, state and history."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import BASE, Api, campaign_s3_body, create_chain, profile_base_body


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


@pytest.mark.parametrize(
    "rule",
    [
        {"status": 200},  # a success needs a body
        {"status": 201, "body": {}, "mode": "commit_then_fail"},
        {"status": 204, "body": {}},  # a 204 has no body to send
        {"status": 302, "body": {}},
        {"status": 600},
        {"mode": "error", "failure": "drop"},
        {"mode": "error", "failure": "timeout"},
        {"rate": 2},
        {"commitAfterMs": 100},  # only for late_commit
        {"mode": "late_commit", "commitAfterMs": -1},
        {"retryAfter": -1},
        {"retryAfter": ""},
        {"retryAfter": "1\r\nX-Injected: yes"},
        {"retryAfter": "1\u0000"},
    ],
)
def test_invalid_fault_rules_are_refused(api: Api, rule: dict[str, Any]) -> None:
    assert api.http.post("/_emulator/faults", json=rule).status_code == 422


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
    assert entry["receivedAt"] <= entry["time"], "a request arrives before it is answered"
    assert set(entry) == {
        "seq",
        "time",
        "receivedAt",
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
        "lateCommitOf",
    }
    assert entry["lateCommitOf"] is None
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


# --------------------------------------------------------------------------- late commits
def _rule(api: Api, rule_id: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = api.http.get("/_emulator/faults").json()["items"]
    return next(rule for rule in rules if rule["id"] == rule_id)


def _history(api: Api) -> list[dict[str, Any]]:
    return list(api.http.get("/_emulator/requests").json()["items"])


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _no_late_commit_pending(api: Api) -> bool:
    return api.http.get("/_emulator/lateCommits").json()["items"] == []


def _post_failing(api: Api, failure: str, body: dict[str, Any]) -> int | None:
    """POST /connections as a client that gives up as the gateway does; the status it saw, if any."""
    if failure == "error":
        return api.post("/connections", body).status_code
    if failure == "timeout":
        with pytest.raises(httpx.ReadTimeout):
            api.http.post(BASE + "/connections", json=body, headers=api.headers(), timeout=0.3)
        return None
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post("/connections", body)
    return None


@pytest.mark.parametrize("failure", ["error", "timeout", "drop"])
def test_late_commit_fails_the_caller_and_creates_the_resource_later_exactly_once(api: Api, failure: str) -> None:
    fault_id = _fault(
        api, method="POST", path="/connections", mode="late_commit", failure=failure, status=504, commitAfterMs=1000
    )
    started = time.monotonic()
    assert _post_failing(api, failure, profile_base_body()) == (504 if failure == "error" else None)
    assert _count(api) == 0, "nothing is applied when the request arrives"
    [pending] = api.http.get("/_emulator/lateCommits").json()["items"]
    assert pending["fault"] == fault_id and pending["method"] == "POST"

    _wait_until(lambda: _count(api) == 1)
    assert time.monotonic() - started >= 1.0
    time.sleep(0.3)
    assert _count(api) == 1, "applied exactly once"
    assert _no_late_commit_pending(api)
    rule = _rule(api, fault_id)
    assert (rule["mode"], rule["commitAfterMs"], rule["fired"], rule["committed"]) == ("late_commit", 1000, 1, 1)

    original, late = [e for e in _history(api) if e["method"] == "POST" and e["path"] == f"{BASE}/connections"]
    assert pending["lateCommitOf"] == original["seq"]
    assert original["lateCommitOf"] is None and original["fault"] == fault_id
    assert original["status"] == {"error": 504, "timeout": 500, "drop": None}[failure]
    assert late["lateCommitOf"] == original["seq"] and late["status"] == 201
    assert late["headers"]["x-request-id"] == original["headers"]["x-request-id"]
    assert late["responseBody"]["id"] == api.get("/connections").json()["items"][0]["id"]


def test_late_commit_timeout_answers_500_after_the_hold(api: Api) -> None:
    _fault(api, method="POST", path="/connections", mode="late_commit", failure="timeout", holdMs=300, commitAfterMs=0)
    started = time.monotonic()
    response = api.post("/connections", profile_base_body())
    assert response.status_code == 500
    assert response.json()["type"].endswith("FLOW-1102-500")
    assert time.monotonic() - started >= 0.3
    _wait_until(lambda: _count(api) == 1)  # commitAfterMs 0: applied at once, while the caller was held


def test_late_commit_still_applies_a_create_that_fails_validation_the_same_way(api: Api) -> None:
    """The late application goes through the normal request path: an invalid body is refused then too."""
    fault_id = _fault(api, method="POST", path="/connections", mode="late_commit", status=504, commitAfterMs=200)
    assert api.post("/connections", {"name": "no spec"}).status_code == 504
    _wait_until(lambda: _rule(api, fault_id)["committed"] == 1)
    late = _history(api)[-1]
    assert late["lateCommitOf"] is not None and late["status"] == 422
    assert _count(api) == 0


def _flow(api: Api, flow_id: str) -> dict[str, Any]:
    return dict(api.get(f"/flows/{flow_id}").json()["items"][0])


@pytest.mark.parametrize("stale", [False, True])
def test_late_commit_patch_evaluates_if_match_when_it_is_applied(api: Api, stale: bool) -> None:
    chain = create_chain(api)
    fault_id = _fault(api, method="PATCH", path="/flows/*", mode="late_commit", status=504, commitAfterMs=600)
    late_patch = [{"op": "replace", "path": "/name", "value": "late name"}]
    assert api.patch(f"/flows/{chain.flow}", late_patch, chain.flow_etag).status_code == 504
    assert _flow(api, chain.flow)["name"] == "flow"
    if stale:  # someone else patches first: the held-back patch's etag is stale by the time it is applied
        other = api.patch(
            f"/flows/{chain.flow}", [{"op": "replace", "path": "/name", "value": "other"}], chain.flow_etag
        )
        assert other.status_code == 200
    _wait_until(lambda: _rule(api, fault_id)["committed"] == 1)
    late = _history(api)[-1]
    assert late["lateCommitOf"] is not None and late["method"] == "PATCH"
    flow = _flow(api, chain.flow)
    if stale:
        assert late["status"] == 412
        assert flow["name"] == "other" and flow["etag"] == other.json()["etag"]
    else:
        assert late["status"] == 200
        assert flow["name"] == "late name" and flow["etag"] == late["responseBody"]["etag"] != chain.flow_etag


def test_reset_cancels_pending_late_commits(api: Api) -> None:
    _fault(api, method="POST", path="/connections", mode="late_commit", status=504, commitAfterMs=500)
    assert api.post("/connections", profile_base_body()).status_code == 504
    assert not _no_late_commit_pending(api)
    assert api.http.post("/_emulator/reset").status_code == 204
    totals = api.http.get("/_emulator/lateCommits").json()
    assert totals == {"items": [], "scheduled": 0, "applied": 0, "cancelled": 0}
    time.sleep(0.8)
    # Not applied, not even tried: a try would be in the (emptied) history, answered 401 for lack of a token.
    state = api.http.get("/_emulator/state").json()
    assert state["counts"]["connections"] == {} and state["requests"] == []


def test_removing_fault_rules_leaves_pending_late_commits_and_they_can_be_cancelled(api: Api) -> None:
    _fault(api, method="POST", path="/connections", mode="late_commit", status=504, commitAfterMs=400, times=2)
    assert api.post("/connections", profile_base_body("first")).status_code == 504
    assert api.http.delete("/_emulator/faults").status_code == 204
    _wait_until(lambda: _count(api) == 1)  # the backend already had the request

    _fault(api, method="POST", path="/connections", mode="late_commit", status=504, commitAfterMs=400)
    assert api.post("/connections", profile_base_body("second")).status_code == 504
    cancelled = api.http.delete("/_emulator/lateCommits")
    assert cancelled.status_code == 200 and cancelled.json() == {"cancelled": 1}
    time.sleep(0.6)
    assert _count(api) == 1
    totals = api.http.get("/_emulator/lateCommits").json()
    assert totals == {"items": [], "scheduled": 2, "applied": 1, "cancelled": 1}
    creates = [e for e in _history(api) if e["method"] == "POST" and e["path"] == f"{BASE}/connections"]
    assert [e["lateCommitOf"] is not None for e in creates] == [False, True, False]


# --------------------------------------------------------------------------- any status, any body, any header
def test_error_fault_may_answer_a_malformed_success(api: Api) -> None:
    _fault(api, method="POST", path="/connections", status=201, body={})
    _fault(api, method="GET", path="/flows", status=200, body=["not", "a", "page"])
    created = api.post("/connections", profile_base_body())
    assert (created.status_code, created.json()) == (201, {})
    assert _count(api) == 0, "an error fault applies nothing, whatever its status"
    listed = api.get("/flows")
    assert (listed.status_code, listed.json()) == (200, ["not", "a", "page"])
    assert api.get("/flows").json()["items"] == []  # the rule fired once


@pytest.mark.parametrize("value", ["¹", "Wed, 21 Oct 2015 07:28:00 GMT", "-1", "1.5", "soon"])
def test_retry_after_text_is_sent_verbatim(api: Api, value: str) -> None:
    _fault(api, path="/flows", status=429, retryAfter=value)
    response = api.get("/flows")
    assert response.status_code == 429
    assert dict(response.headers.raw)[b"retry-after"] == value.encode("utf-8")
    assert _rule_retry_after(api) == value
    assert _history(api)[-1]["responseHeaders"]["retry-after"] == value, "the history shows what was sent"


def _rule_retry_after(api: Api) -> Any:
    return api.http.get("/_emulator/faults").json()["items"][0]["retryAfter"]


def test_fault_bodies_with_nul_and_lone_surrogates_are_sent_as_json_escapes(api: Api) -> None:
    hostile = {"title": "nul \u0000 and a lone surrogate \ud800", "report": {"bad": "\udfff"}}
    # httpx's json= would refuse to encode a lone surrogate: send the rule as ASCII JSON ourselves.
    rule = {"method": "POST", "path": "/connections", "status": 400, "body": hostile}
    added = api.http.post("/_emulator/faults", content=json.dumps(rule), headers={"content-type": "application/json"})
    assert added.status_code == 201, added.text
    request_body = json.dumps({**profile_base_body(), "name": "caller's own \ud800"})
    response = api.http.post(BASE + "/connections", content=request_body, headers=api.headers())
    assert response.status_code == 400
    assert b"\\u0000" in response.content and b"\\ud800" in response.content and b"\\udfff" in response.content
    answered = json.loads(response.content)
    assert answered["title"] == hostile["title"] and answered["report"]["bad"] == "\udfff"
    assert answered["report"]["request-id"]  # the emulator still adds its request id to a report object

    entry = _history(api)[-1]  # the history renders them too, instead of failing on the encoding
    assert entry["responseBody"]["title"] == hostile["title"] and entry["body"]["name"] == "caller's own \ud800"
    assert api.http.get("/_emulator/state").status_code == 200
    assert _rule(api, added.json()["id"])["body"] == hostile


# --------------------------------------------------------------------------- no secret in the admin API
def test_admin_api_masks_secrets_and_the_oracle_finds_them(api: Api) -> None:
    first, second, in_query = "first-Secret-Zq81", "second-Secret-Wp27", "query-Secret-Xc45"
    body = campaign_s3_body()
    body["auth"]["params"]["secretKey"] = first
    created = api.create("connections", body)
    patch = [{"op": "replace", "path": "/auth/params/secretKey", "value": second}]
    assert api.patch(f"/connections/{created['id']}", patch, created["etag"]).status_code == 200
    assert api.get("/connections", {"property": f"auth.params.secretKey=={in_query}"}).status_code == 200

    state, requests = api.http.get("/_emulator/state"), api.http.get("/_emulator/requests")
    for text in (state.text, requests.text):
        for secret in (first, second, in_query):
            assert secret not in text
    create_entry, patch_entry, list_entry = requests.json()["items"][-3:]
    assert create_entry["body"]["auth"]["params"] == {"accessId": "AKIAEXAMPLE", "secretKey": "***"}
    assert patch_entry["body"] == [{"op": "replace", "path": "/auth/params/secretKey", "value": "***"}]
    assert "auth.params.secretKey%3D%3D%2A%2A%2A" in list_entry["query"]

    def containing(value: str) -> list[int]:
        response = api.http.post("/_emulator/requests/containing", json={"value": value})
        assert response.status_code == 200, response.text
        return list(response.json()["seqs"])

    assert containing(first) == [create_entry["seq"]]
    assert containing(second) == [patch_entry["seq"]]
    assert containing(first[:-1]) == [], "whole values only: a prefix would let a secret be read char by char"
    assert containing(in_query) == [], "bodies only"
    assert api.http.post("/_emulator/requests/containing", json={"value": ""}).status_code == 422

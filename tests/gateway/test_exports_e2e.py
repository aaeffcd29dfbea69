"""Export now (contract §12) end to end, over real HTTP against the emulator's ad-hoc activation
service (flow-service.md Part 3 §3.4): the operation names its runs, which then appear in `/runs`;
an audience whose export is running joins that run; each guardrail has its own problem and changes
nothing; whatever fails on the way (commit-then-fail, late commit), one job starts, not two."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import ADOBE_CLIENT_ID, ADOBE_CLIENT_SECRET, ADOBE_ORG_ID, wait_for
from tests.gateway.test_activation_e2e import activate, emulator_state
from tests.gateway.test_operations_e2e import (
    WAIT,
    change_state,
    get_activation,
    operation_id,
    operations,
    wait_operation,
)
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

ADHOC = "/data/core/activation/disflowprovider/adhocrun"
HOUR = 3600


# ---------------------------------------------------------------------------------------------- helpers
def audience(number: int, **schedule: str) -> dict[str, Any]:
    """A daily audience scheduled 12 hours from now: stepping the emulator's clock by an hour (Adobe
    exports an audience ad hoc only an hour after its first activation) starts no scheduled run."""
    at = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
    return {
        "id": f"audience-{number}-{new_key()}",
        "name": f"Audience {number}",
        "schedule": {"frequency": "DAILY", "triggerType": "SCHEDULED", "startTime": at, **schedule},
    }


def live_for_export(gateway: GatewayProcess, emulator: EmulatorServer, count: int = 2) -> dict[str, Any]:
    _, final = activate(gateway, s3_request(segments=[audience(i) for i in range(count)]))
    assert final["status"] == "succeeded", final
    step_clock(emulator, HOUR + 1)
    return final


def step_clock(emulator: EmulatorServer, seconds: float) -> None:
    httpx.post(f"{emulator.url}/_emulator/clock", json={"advanceSeconds": seconds}).raise_for_status()


def export(
    client: httpx.Client,
    activation_id: str,
    segments: list[str] | None = None,
    *,
    key: str | None = None,
    wait: int | None = WAIT,
) -> httpx.Response:
    headers = {"Idempotency-Key": key or new_key()}
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    body = {} if segments is None else {"segments": segments}
    return client.post(f"/activations/{activation_id}/exports", json=body, headers=headers)


def finished_export(client: httpx.Client, response: httpx.Response, activation_id: str) -> dict[str, Any]:
    assert response.status_code in (200, 202), response.text
    operation = wait_operation(client, activation_id, operation_id(response, activation_id), timeout=40)
    assert operation["kind"] == "export"
    return operation


def adhoc_calls(emulator: EmulatorServer) -> list[dict[str, Any]]:
    """The ad-hoc activation calls Adobe received (and the late commits it applied), in order."""
    return [e for e in emulator_state(emulator)["requests"] if e["path"] == ADHOC]


def upstream_runs(emulator: EmulatorServer, flow_id: str) -> list[dict[str, Any]]:
    return [r for r in emulator_runs(emulator) if r["flowId"] == flow_id]


def emulator_runs(emulator: EmulatorServer) -> list[dict[str, Any]]:
    """The runs as Adobe has them, read from Flow Service as the gateway would."""
    token = httpx.post(
        emulator.ims_token_url,
        data={"grant_type": "client_credentials", "client_id": ADOBE_CLIENT_ID, "client_secret": ADOBE_CLIENT_SECRET},
    ).json()["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "x-api-key": ADOBE_CLIENT_ID,
        "x-gw-ims-org-id": ADOBE_ORG_ID,
        "x-sandbox-name": "prod",
    }
    response = httpx.get(f"{emulator.flow_service_url}/runs", params={"limit": "100"}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def runs_of(client: httpx.Client, activation_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/activations/{activation_id}/runs", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def problem_type(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["type"]).rsplit(":", 1)[-1]


# ---------------------------------------------------------------------------------------------- succeeds
def test_export_now_names_its_run_which_then_appears_in_runs(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live_for_export(gateway, emulator)
    ids = [s["id"] for s in start["segments"]]
    operation = finished_export(client, export(client, start["id"]), start["id"])
    assert operation["status"] == "succeeded", operation
    assert operation["params"] == {"segments": ids}
    (named,) = operation["result"]["runs"]
    assert named["segments"] == ids and named["joined"] is False
    (upstream,) = upstream_runs(emulator, start["flow"]["id"])
    assert upstream["id"] == named["id"]
    (mirrored,) = runs_of(client, start["id"])
    assert mirrored["id"] == named["id"] and mirrored["trigger"] == "adhoc" and mirrored["status"] == "processing"
    # the run finishes upstream; a refresh mirrors its counts as Adobe reports them
    step_clock(emulator, HOUR)
    (done,) = runs_of(client, start["id"], refresh="true")
    upstream_done = next(r for r in emulator_runs(emulator) if r["id"] == named["id"])
    records = upstream_done["metrics"]["recordSummary"]
    assert done["status"] == "succeeded" and done["trigger"] == "adhoc"
    assert done["records"]["exported"] == records["outputRecordCount"] > 0
    assert {a["id"]: a["exported"] for a in done["audiences"]} == {
        e["id"].removeprefix("segment:"): e["outputRecordCount"]
        for e in records["targetSummaries"][0]["entitySummaries"]
    }
    assert get_activation(client, start["id"])["lastRun"]["id"] == named["id"]
    # the desired state did not change: an export is not a revision
    assert get_activation(client, start["id"])["revision"] == start["revision"]


def test_an_audience_whose_export_is_running_joins_that_run(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live_for_export(gateway, emulator, count=3)
    ids = [s["id"] for s in start["segments"]]
    first = finished_export(client, export(client, start["id"], ids[:1]), start["id"])
    assert first["status"] == "succeeded", first
    (running,) = first["result"]["runs"]
    second = finished_export(client, export(client, start["id"], ids[:2]), start["id"])
    assert second["status"] == "succeeded", second
    by_run = {r["id"]: r for r in second["result"]["runs"]}
    assert by_run[running["id"]] == {"id": running["id"], "segments": ids[:1], "joined": True}
    (started,) = [r for r in by_run.values() if r["id"] != running["id"]]
    assert started["segments"] == ids[1:2] and started["joined"] is False
    assert len(upstream_runs(emulator, start["flow"]["id"])) == 2
    assert {r["id"] for r in runs_of(client, start["id"])} == set(by_run)


def test_more_than_80_audiences_go_in_several_jobs(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live_for_export(gateway, emulator, count=85)
    operation = finished_export(client, export(client, start["id"]), start["id"])
    assert operation["status"] == "succeeded", operation
    calls = adhoc_calls(emulator)
    sent = [len(next(iter(e["body"]["activationInfo"].values()))) for e in calls]
    assert sent == [80, 5]
    assert sorted(len(r["segments"]) for r in operation["result"]["runs"]) == [5, 80]


def test_the_same_key_is_the_same_export(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live_for_export(gateway, emulator)
    key = new_key()
    first = export(client, start["id"], key=key)
    again = export(client, start["id"], key=key)
    assert operation_id(first, start["id"]) == operation_id(again, start["id"])
    finished_export(client, again, start["id"])
    assert len(adhoc_calls(emulator)) == 1
    other_body = export(client, start["id"], [start["segments"][0]["id"]], key=key)
    assert other_body.status_code == 422 and problem_type(other_body) == "idempotency-key-reused"


# ---------------------------------------------------------------------------------------------- refused
def test_each_guardrail_has_its_own_problem_and_changes_nothing(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    client = gateway.client()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    _, final = activate(gateway, s3_request(segments=[audience(0), audience(1, startDate=tomorrow)]))
    start = final
    ids = [s["id"] for s in start["segments"]]
    before = operations(client, start["id"], limit=100)["items"]

    not_on = export(client, start["id"], [ids[0], "not-one-of-ours"])
    assert not_on.status_code == 422 and problem_type(not_on) == "segment-not-on-activation", not_on.text
    not_current = export(client, start["id"], [ids[1]])
    assert not_current.status_code == 422 and problem_type(not_current) == "schedule-not-current", not_current.text
    too_many = export(client, start["id"], [f"s{i}" for i in range(251)])
    assert too_many.status_code == 422, too_many.text
    assert change_state(client, start["id"], "pause")["status"] == "succeeded"
    paused = export(client, start["id"], ids[:1])
    assert paused.status_code == 409 and problem_type(paused) == "activation-paused", paused.text
    assert change_state(client, start["id"], "resume")["status"] == "succeeded"
    resumed = len(operations(client, start["id"], limit=100)["items"])
    assert resumed == len(before) + 2  # the pause and the resume, no export among them

    rolled_back = activate(gateway, s3_request(segments=[audience(0)]))[1]
    response = client.post(f"/activations/{rolled_back['id']}/rollback", headers={"Idempotency-Key": new_key()})
    assert response.status_code in (200, 202), response.text
    wait_for(lambda: get_activation(client, rolled_back["id"]), lambda a: a["status"] == "rolled_back")
    not_live = export(client, rolled_back["id"])
    assert not_live.status_code == 409 and problem_type(not_live) == "activation-not-live", not_live.text
    assert adhoc_calls(emulator) == []


def test_a_refusal_by_adobe_fails_the_operation_with_adobes_words(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    """Adobe exports an audience ad hoc only an hour after its first activation: right after the
    create, Adobe refuses, and the operation fails with its reason; nothing is retried."""
    client = gateway.client()
    _, start = activate(gateway, s3_request(segments=[audience(0)]))
    operation = finished_export(client, export(client, start["id"]), start["id"])
    assert operation["status"] == "failed", operation
    assert operation["error"]["type"].endswith(":export-refused")
    assert "less than an hour ago" in operation["error"]["detail"]
    assert len(adhoc_calls(emulator)) == 1
    activation = get_activation(client, start["id"])
    assert activation["status"] == "succeeded" and activation["state"] == "enabled"


# ---------------------------------------------------------------------------------------------- faults
@pytest.mark.parametrize("failure", ["error", "drop"])
def test_commit_then_fail_starts_one_job(gateway: GatewayProcess, emulator: EmulatorServer, failure: str) -> None:
    client = gateway.client()
    start = live_for_export(gateway, emulator)
    rule = {"method": "POST", "path": "*/adhocrun", "mode": "commit_then_fail", "failure": failure, "times": 1}
    httpx.post(f"{emulator.url}/_emulator/faults", json=rule).raise_for_status()
    operation = finished_export(client, export(client, start["id"]), start["id"])
    assert operation["status"] == "succeeded", operation
    (upstream,) = upstream_runs(emulator, start["flow"]["id"])
    assert [r["id"] for r in operation["result"]["runs"]] == [upstream["id"]]
    assert len(adhoc_calls(emulator)) >= 1


def test_a_late_commit_of_the_adhoc_call_starts_one_job(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    """The first call answers 503 and commits 0.3 s later, after the gateway gave up on it: the retry
    waits until that commit can no longer land, then adopts the run it started."""
    client = gateway.client()
    start = live_for_export(gateway, emulator)
    rule = {
        "method": "POST",
        "path": "*/adhocrun",
        "mode": "late_commit",
        "status": 503,
        "commitAfterMs": 300,
        "times": 1,
    }
    httpx.post(f"{emulator.url}/_emulator/faults", json=rule).raise_for_status()
    operation = finished_export(client, export(client, start["id"]), start["id"])
    assert operation["status"] == "succeeded", operation
    wait_for(lambda: httpx.get(f"{emulator.url}/_emulator/lateCommits").json(), lambda b: not b["items"], 5)
    (upstream,) = upstream_runs(emulator, start["flow"]["id"])
    assert [r["id"] for r in operation["result"]["runs"]] == [upstream["id"]]
    assert get_activation(client, start["id"])["status"] == "succeeded"

"""The ad-hoc activation service ("export now", flow-service.md Part 3 §3.4): one run per flow with an
order per audience; every guardrail refuses with its text and starts nothing; faults apply to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.emulator.conftest import Api
from tests.emulator.test_flow_changes import SEGMENTS, create_chain, flow_of
from tests.emulator.test_runs import clock, runs

ADHOC = "/data/core/activation/disflowprovider/adhocrun"
V2 = "application/vnd.adobe.adhoc.activation+json; version=2"
HOUR = 3600


def scheduled_far_from_now(http: httpx.Client, audience_id: str, **schedule: str) -> dict[str, Any]:
    """An audience whose scheduled export is 12 emulated hours away: stepping an hour starts none."""
    now = datetime.fromtimestamp(clock(http)["nowMs"] / 1000, UTC)
    at = (now + timedelta(hours=12)).strftime("%H:%M")
    return {
        "type": "PLATFORM_SEGMENT",
        "value": {
            "id": audience_id,
            "name": f"Audience {audience_id}",
            "filenameTemplate": "%DESTINATION_NAME%_%SEGMENT_ID%",
            "exportMode": "DAILY_FULL_EXPORT",
            "schedule": {
                "frequency": "DAILY",
                "triggerType": "SCHEDULED",
                "startDate": "2026-01-01",
                "startTime": at,
                **schedule,
            },
        },
    }


def flow_with(api: Api, http: httpx.Client, *audiences: dict[str, Any]) -> str:
    chain = create_chain(api)
    ops = [{"op": "add", "path": f"{SEGMENTS}/-", "value": a} for a in audiences]
    assert api.patch(f"/flows/{chain.flow}", ops, chain.flow_etag).status_code == 200
    return chain.flow


def export_now(api: Api, info: Any, accept: str = V2) -> httpx.Response:
    return api.http.post(ADHOC, json={"activationInfo": info}, headers=api.headers(Accept=accept))


def message(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["message"])


def test_export_now_starts_one_run_per_flow_with_an_order_per_audience(api: Api, http: httpx.Client) -> None:
    flow_id = flow_with(api, http, scheduled_far_from_now(http, "s1"), scheduled_far_from_now(http, "s2"))
    clock(http, advanceSeconds=HOUR + 1)
    response = export_now(api, {flow_id: ["s1", "s2"]})
    assert response.status_code == 200, response.text
    orders = response.json()["order"]
    assert [(o["segment"], o["order"]) for o in orders] == [("s1", flow_id), ("s2", flow_id)]
    run_ids = {o["statusURL"].rsplit("/", 1)[-1] for o in orders}
    assert len(run_ids) == 1
    (run_id,) = run_ids
    run = api.get(f"/runs/{run_id}").json()["items"][0]
    assert run["flowId"] == flow_id and run["metrics"]["statusSummary"]["status"] == "processing"
    entities = run["metrics"]["recordSummary"]["targetSummaries"][0]["entitySummaries"]
    assert [e["id"] for e in entities] == ["segment:s1", "segment:s2"]
    assert [r["id"] for r in runs(api, f"flowId=={flow_id}")] == [run_id]
    clock(http, advanceSeconds=HOUR)
    assert flow_of(api, flow_id)["lastRunDetails"]["id"] == run_id


def test_each_guardrail_refuses_with_its_text_and_starts_nothing(api: Api, http: httpx.Client) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    flow_id = flow_with(
        api,
        http,
        scheduled_far_from_now(http, "s1"),
        scheduled_far_from_now(http, "s2"),
        scheduled_far_from_now(http, "ended", endDate=yesterday),
    )
    other = flow_with(api, http, scheduled_far_from_now(http, "t1"))

    too_new = export_now(api, {flow_id: ["s1"]})
    assert too_new.status_code == 400 and "less than an hour ago" in message(too_new)
    clock(http, advanceSeconds=HOUR + 1)

    old_version = export_now(api, {flow_id: ["s1"]}, accept="application/json")
    assert old_version.status_code == 400 and "exportIds" in message(old_version)
    too_many = export_now(api, {flow_id: [f"x{i}" for i in range(81)]})
    assert too_many.status_code == 400 and "At most 80 segments" in message(too_many)
    unknown = export_now(api, {"8d3f3a8e-0000-4000-8000-000000000000": ["s1"]})
    assert unknown.status_code == 404
    not_on_flow = export_now(api, {flow_id: ["s1", "elsewhere"]})
    assert not_on_flow.status_code == 400
    assert message(not_on_flow) == "Segments elsewhere are not part of this dataflow or out of schedule range!"
    ended = export_now(api, {flow_id: ["ended"]})
    assert message(ended) == "Segments Audience ended are not part of this dataflow or out of schedule range!"
    # one refused flow refuses the whole request: the other flow's audience does not start either
    mixed = export_now(api, {other: ["t1"], flow_id: ["elsewhere"]})
    assert mixed.status_code == 400
    assert runs(api, f"flowId=={flow_id},{other}") == []

    started = export_now(api, {flow_id: ["s1"]})
    assert started.status_code == 200, started.text
    run_id = started.json()["order"][0]["statusURL"].rsplit("/", 1)[-1]
    again = export_now(api, {flow_id: ["s1"]})
    assert again.status_code == 400
    assert message(again) == f"Run already going on for audience s1 for order {flow_id} with run id {run_id}"

    assert http.post(f"/_emulator/flows/{other}/runs", json={}).status_code == 201  # a scheduled run, now
    scheduled = export_now(api, {other: ["t1"]})
    assert scheduled.status_code == 400 and "Run already going on for audience t1" in message(scheduled)

    assert api.post(f"/flows/{flow_id}/action?op=disable", None).status_code == 200
    disabled = export_now(api, {flow_id: ["s2"]})
    assert disabled.status_code == 400 and message(disabled) == f"Dataflow {flow_id} is not enabled"
    assert len(runs(api, f"flowId=={flow_id},{other}")) == 2


def test_a_scheduled_export_of_the_flow_refuses_the_others_audiences(api: Api, http: httpx.Client) -> None:
    flow_id = flow_with(api, http, scheduled_far_from_now(http, "s1"), scheduled_far_from_now(http, "s2"))
    clock(http, advanceSeconds=HOUR + 1)
    made = http.post(f"/_emulator/flows/{flow_id}/runs", json={"audiences": ["s1"]}).json()
    refused = export_now(api, {flow_id: ["s2"]})
    assert refused.status_code == 400
    assert message(refused) == f"Scheduled run going on for order {flow_id} with run id {made['id']}"
    clock(http, advanceSeconds=HOUR)
    assert export_now(api, {flow_id: ["s2"]}).status_code == 200


def test_bodies_it_cannot_read_are_refused(api: Api, http: httpx.Client) -> None:
    flow_id = flow_with(api, http, scheduled_far_from_now(http, "s1"))
    for info in (None, {}, [flow_id], {flow_id: []}, {flow_id: "s1"}, {flow_id: [1]}):
        response = export_now(api, info)
        assert response.status_code == 400 and "activationInfo" in message(response), (info, response.text)
    unauthenticated = http.post(ADHOC, json={"activationInfo": {flow_id: ["s1"]}}, headers={"Accept": V2})
    assert unauthenticated.status_code == 403


def test_faults_and_late_commits_apply_to_it(api: Api, http: httpx.Client) -> None:
    flow_id = flow_with(api, http, scheduled_far_from_now(http, "s1"))
    clock(http, advanceSeconds=HOUR + 1)
    rule = {"method": "POST", "path": "*/adhocrun", "mode": "commit_then_fail", "status": 502, "times": 1}
    assert http.post("/_emulator/faults", json=rule).status_code == 201
    failed = export_now(api, {flow_id: ["s1"]})
    assert failed.status_code == 502
    (started,) = runs(api, f"flowId=={flow_id}")  # the job started all the same
    refused = export_now(api, {flow_id: ["s1"]})
    assert message(refused).endswith(f"with run id {started['id']}")
    history = [e for e in http.get("/_emulator/requests").json()["items"] if e["path"] == ADHOC]
    assert [e["status"] for e in history] == [502, 400] and history[0]["sandbox"] == "prod"

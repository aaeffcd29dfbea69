"""Runs of destination flows on the emulator's clock (flow-service.md Part 3 §3.3): scheduled runs
appear as the clock moves, one per flow and moment with counts per audience; scripted failures and
runs that stay processing; lists filtered by flow and window, newest first; lastRunDetails."""

from __future__ import annotations

from typing import Any

import httpx

from tests.emulator.conftest import Api
from tests.emulator.test_flow_changes import PROFILES, attribute, with_audiences

DAY = 86400


def clock(http: httpx.Client, **change: Any) -> dict[str, Any]:
    response = http.post("/_emulator/clock", json=change)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def runs(api: Api, *filters: str) -> list[dict[str, Any]]:
    params = [("property", f) for f in filters]
    response = api.http.get("/data/foundation/flowservice/runs", params=params, headers=api.headers())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_day_on_makes_one_run_per_flow_with_counts_per_audience(api: Api, http: httpx.Client) -> None:
    flow_id, _ = with_audiences(api, 2)
    assert runs(api, f"flowId=={flow_id}") == []
    clock(http, advanceSeconds=DAY)
    found = runs(api, f"flowId=={flow_id}")
    assert len(found) == 1
    run = found[0]
    # it ran at 02:00 (after the segment evaluation): done unless that was under ten minutes ago
    assert run["metrics"]["statusSummary"]["status"] in ("Processing", "Success")
    clock(http, advanceSeconds=3600)
    (done,) = runs(api, f"flowId=={flow_id}")
    assert done["id"] == run["id"] and done["metrics"]["statusSummary"]["status"] == "Success"
    entities = done["metrics"]["recordSummary"]["targetSummaries"][0]["entitySummaries"]
    assert {e["id"] for e in entities} == {"segment:a0", "segment:a1"}
    assert sum(e["outputRecordCount"] for e in entities) == done["metrics"]["recordSummary"]["outputRecordCount"] > 0
    one = api.get(f"/runs/{run['id']}").json()["items"][0]
    assert one["metrics"]["statusSummary"]["status"] == "success"  # lower case here, as Adobe's examples
    flow = api.get(f"/flows/{flow_id}").json()["items"][0]
    assert flow["lastRunDetails"]["id"] == run["id"] and flow["lastRunDetails"]["state"] == "success"


def test_scripted_failure_skips_and_disabled_flows(api: Api, http: httpx.Client) -> None:
    flow_id, flow = with_audiences(api, 1)
    assert (
        api.patch(
            f"/flows/{flow_id}",
            [{"op": "add", "path": f"{PROFILES}/-", "value": attribute("person.name")}],
            flow["etag"],
        ).status_code
        == 200
    )
    assert http.post(f"/_emulator/flows/{flow_id}/runs/next", json={"outcome": "failed"}).status_code == 204
    clock(http, advanceSeconds=DAY + 3600)
    (failed,) = runs(api, f"flowId=={flow_id}")
    assert failed["metrics"]["statusSummary"]["status"] == "Failed"
    assert failed["metrics"]["statusSummary"]["errors"][0]["code"] == "ACTIVATION_BATCH-0000-FAILED"
    made = http.post(f"/_emulator/flows/{flow_id}/runs", json={}).json()
    clock(http, advanceSeconds=3600)
    ok = next(r for r in runs(api, f"flowId=={flow_id}") if r["id"] == made["id"])
    records = ok["metrics"]["recordSummary"]
    assert records["inputRecordCount"] == records["outputRecordCount"] + records["skippedRecordCount"]
    assert api.post(f"/flows/{flow_id}/action?op=disable", None).status_code == 200
    before = len(runs(api, f"flowId=={flow_id}"))
    clock(http, advanceSeconds=3 * DAY)
    assert len(runs(api, f"flowId=={flow_id}")) == before


def test_window_filters_and_newest_first(api: Api, http: httpx.Client) -> None:
    flow_id, _ = with_audiences(api, 1)
    clock(http, advanceSeconds=3 * DAY)
    found = runs(api, f"flowId=={flow_id}")
    assert len(found) == 3
    starts = [r["metrics"]["durationSummary"]["startedAtUTC"] for r in found]
    assert starts == sorted(starts, reverse=True)
    after = runs(api, f"flowId=={flow_id}", f"metrics.durationSummary.startedAtUTC>{starts[1]}")
    assert [r["id"] for r in after] == [found[0]["id"]]

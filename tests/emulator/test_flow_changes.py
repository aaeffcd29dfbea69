"""Changing a flow in place, as Adobe does it (flow-service.md Part 1.3, Part 3 §3.1): selector
operations applied in order as RFC 6902 says, Adobe's own selector fields kept or moved as they
should be, `lastOperation` after every update and flow action, PATCH bodies shaped as the documents
say, and the admin call that edits a flow out of band as a person in Adobe's UI would."""

from __future__ import annotations

from typing import Any

import httpx

from flowservice_emulator.catalog import ADOBE_CAMPAIGN
from tests.emulator.conftest import Api, campaign_s3_body, create_chain, flow_error_code, spec_ref

SEGMENTS = "/transformations/0/params/segmentSelectors/selectors"


def audience(audience_id: str, frequency: str = "DAILY") -> dict[str, Any]:
    return {
        "type": "PLATFORM_SEGMENT",
        "value": {
            "id": audience_id,
            "name": audience_id,
            "filenameTemplate": "%DESTINATION_NAME%_%SEGMENT_ID%",
            "exportMode": "DAILY_FULL_EXPORT",
            "schedule": {"frequency": frequency, "triggerType": "AFTER_SEGMENT_EVAL", "startDate": "2026-01-01"},
        },
    }


def flow_of(api: Api, flow_id: str) -> dict[str, Any]:
    response = api.get(f"/flows/{flow_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["items"][0])


def audience_ids(flow: dict[str, Any]) -> list[str]:
    return [s["value"]["id"] for s in flow["transformations"][0]["params"]["segmentSelectors"]["selectors"]]


def with_audiences(api: Api, count: int) -> tuple[str, dict[str, Any]]:
    chain = create_chain(api)
    ops = [{"op": "add", "path": f"{SEGMENTS}/-", "value": audience(f"a{i}")} for i in range(count)]
    assert api.patch(f"/flows/{chain.flow}", ops, chain.flow_etag).status_code == 200
    return chain.flow, flow_of(api, chain.flow)


def remove(index: int) -> dict[str, Any]:
    return {"op": "remove", "path": f"{SEGMENTS}/{index}", "value": {"type": "PLATFORM_SEGMENT", "value": {}}}


def test_removes_apply_in_order_as_rfc_6902_says(api: Api) -> None:
    flow_id, flow = with_audiences(api, 5)
    # Descending: exactly indexes 3 and 1 go.
    assert api.patch(f"/flows/{flow_id}", [remove(3), remove(1)], flow["etag"]).status_code == 200
    flow = flow_of(api, flow_id)
    assert audience_ids(flow) == ["a0", "a2", "a4"]
    # Adobe's example order (0 then 1) removes the first and the third under RFC 6902.
    assert api.patch(f"/flows/{flow_id}", [remove(0), remove(1)], flow["etag"]).status_code == 200
    assert audience_ids(flow_of(api, flow_id)) == ["a2"]


def test_a_whole_selector_replace_keeps_create_time_and_moves_update_time(api: Api) -> None:
    flow_id, flow = with_audiences(api, 2)
    stored = flow["transformations"][0]["params"]["segmentSelectors"]["selectors"][1]
    changed = audience("a1", "WEEKLY")
    changed["value"] |= {"createTime": stored["value"]["createTime"], "updateTime": "1"}
    ops = [{"op": "replace", "path": f"{SEGMENTS}/1", "value": changed}]
    assert api.patch(f"/flows/{flow_id}", ops, flow["etag"]).status_code == 200
    after = flow_of(api, flow_id)
    value = after["transformations"][0]["params"]["segmentSelectors"]["selectors"][1]["value"]
    assert value["schedule"]["frequency"] == "WEEKLY"
    assert value["createTime"] == stored["value"]["createTime"]
    assert value["updateTime"] != "1", "the server sets updateTime when the selector changed"
    assert after["lastOperation"]["operation"] == "update"
    assert after["lastOperation"]["ops"] == [{"op": "replace", "path": f"{SEGMENTS}/1", "value": changed}]


def test_flow_actions_show_in_last_operation(api: Api) -> None:
    chain = create_chain(api)
    assert api.post(f"/flows/{chain.flow}/action?op=disable", None).status_code == 200
    flow = flow_of(api, chain.flow)
    assert (flow["state"], flow["lastOperation"]["operation"]) == ("disabled", "disable")


def test_a_flow_patch_body_must_be_an_array(api: Api) -> None:
    chain = create_chain(api)
    bare = {"op": "add", "path": f"{SEGMENTS}/-", "value": audience("a0")}
    response = api.patch(f"/flows/{chain.flow}", bare, chain.flow_etag)
    assert flow_error_code(response) == "1455-400", response.text
    assert audience_ids(flow_of(api, chain.flow)) == []


def test_a_base_connection_patch_may_be_one_instruction(api: Api) -> None:
    created = api.create("connections", campaign_s3_body())
    current = api.get(f"/connections/{created['id']}").json()["items"][0]
    params = {"accessId": "new", "secretKey": "also-new"}
    bare = {"op": "replace", "path": "/auth/params", "value": params}
    response = api.patch(f"/connections/{created['id']}", bare, current["etag"])
    assert response.status_code == 200, response.text


def test_a_target_connection_needs_no_format(api: Api) -> None:
    base = api.create("connections", campaign_s3_body())["id"]
    body = {
        "name": "t",
        "baseConnectionId": base,
        "connectionSpec": spec_ref(ADOBE_CAMPAIGN),
        "data": {"format": "json", "schema": {"id": "1.0", "version": "1.0"}},
        "params": {"mode": "S3", "bucketName": "b", "path": "p"},
    }
    response = api.post("/targetConnections", body)
    assert response.status_code == 201, response.text


def test_missing_and_invalid_fields_use_catalog_codes(api: Api) -> None:
    missing = api.post("/connections", {"connectionSpec": spec_ref(ADOBE_CAMPAIGN)})
    assert flow_error_code(missing) == "1455-422", missing.text
    invalid = api.post("/connections", {"name": "x", "connectionSpec": "not an object"})
    assert flow_error_code(invalid) == "1455-400", invalid.text


def test_an_out_of_band_edit_is_a_persons_and_moves_the_etag(api: Api) -> None:
    flow_id, flow = with_audiences(api, 2)
    edit = {"patch": [remove(0), {"op": "add", "path": f"{SEGMENTS}/-", "value": audience("theirs")}]}
    response = api.http.post(f"/_emulator/flows/{flow_id}/edit", json=edit)
    assert response.status_code == 200, response.text
    after = flow_of(api, flow_id)
    assert audience_ids(after) == ["a1", "theirs"]
    assert after["etag"] != flow["etag"]
    assert after["updatedBy"].endswith("@example.com") and not after["updatedBy"].endswith("techacct.adobe.com")
    assert after["lastOperation"]["operation"] == "update"
    # The gateway's old etag is stale now.
    stale = api.patch(f"/flows/{flow_id}", [remove(0)], flow["etag"])
    assert stale.status_code == 412
    # An edit Adobe would refuse is refused the same way.
    bad = api.http.post(
        f"/_emulator/flows/{flow_id}/edit", json={"patch": [{"op": "move", "path": "/x", "from": "/y"}]}
    )
    assert flow_error_code(bad) == "1434-400"
    assert httpx.codes.is_error(api.http.post("/_emulator/flows/nope/edit", json=edit).status_code)


def test_flow_counts_per_sandbox(api: Api) -> None:
    create_chain(api)
    create_chain(api)
    counts = api.http.get("/_emulator/state").json()["counts"]
    assert counts["flows"]["prod"] == 2

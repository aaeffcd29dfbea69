"""Changing a flow in place, as Adobe does it (flow-service.md Part 1.3, Part 3 §3.1): selector
operations applied in order as RFC 6902 says, Adobe's own selector fields kept or moved as they
should be, `lastOperation` after every update and flow action, PATCH bodies shaped as the documents
say, catalog error codes, and the admin call that edits a flow out of band as a person in Adobe's UI
would."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from flowservice_emulator.catalog import ADOBE_CAMPAIGN
from flowservice_emulator.ui_edits import DEFAULT_FILENAME_TEMPLATE, UI_CLIENT_ID, UI_PERSON
from tests.emulator.conftest import Api, campaign_s3_body, create_chain, flow_error_code, spec_ref

SEGMENTS = "/transformations/0/params/segmentSelectors/selectors"
PROFILES = "/transformations/0/params/profileSelectors/selectors"


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


def attribute(path: str) -> dict[str, Any]:
    return {"type": "JSON_PATH", "value": {"path": path, "operator": "EXISTS"}}


def flow_of(api: Api, flow_id: str) -> dict[str, Any]:
    response = api.get(f"/flows/{flow_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["items"][0])


def selectors(flow: dict[str, Any], kind: str = "segmentSelectors") -> list[dict[str, Any]]:
    return list(flow["transformations"][0]["params"][kind]["selectors"])


def audience_ids(flow: dict[str, Any]) -> list[str]:
    return [s["value"]["id"] for s in selectors(flow)]


def attribute_paths(flow: dict[str, Any]) -> list[str]:
    return [s["value"]["path"] for s in selectors(flow, "profileSelectors")]


def with_audiences(api: Api, count: int, attributes: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    chain = create_chain(api)
    ops = [{"op": "add", "path": f"{SEGMENTS}/-", "value": audience(f"a{i}")} for i in range(count)]
    ops += [{"op": "add", "path": f"{PROFILES}/-", "value": attribute(path)} for path in attributes]
    assert api.patch(f"/flows/{chain.flow}", ops, chain.flow_etag).status_code == 200
    return chain.flow, flow_of(api, chain.flow)


def remove(index: int) -> dict[str, Any]:
    return {"op": "remove", "path": f"{SEGMENTS}/{index}", "value": {"type": "PLATFORM_SEGMENT", "value": {}}}


def without_times(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ("createTime", "updateTime")}


# --------------------------------------------------------------------------- RFC 6902 order


def test_removes_in_descending_order_remove_exactly_those_indexes(api: Api) -> None:
    flow_id, flow = with_audiences(api, 5)
    assert api.patch(f"/flows/{flow_id}", [remove(3), remove(1)], flow["etag"]).status_code == 200
    assert audience_ids(flow_of(api, flow_id)) == ["a0", "a2", "a4"]


def test_removing_0_then_1_removes_the_first_and_the_third(api: Api) -> None:
    """Adobe's example order: each remove applies to the document the previous one left (RFC 6902 §3)."""
    flow_id, flow = with_audiences(api, 3)
    assert api.patch(f"/flows/{flow_id}", [remove(0), remove(1)], flow["etag"]).status_code == 200
    assert audience_ids(flow_of(api, flow_id)) == ["a1"]


def test_an_add_then_a_remove_in_one_patch_see_each_others_result(api: Api) -> None:
    flow_id, flow = with_audiences(api, 2)
    ops = [{"op": "add", "path": f"{SEGMENTS}/0", "value": audience("first")}, remove(1)]
    assert api.patch(f"/flows/{flow_id}", ops, flow["etag"]).status_code == 200
    assert audience_ids(flow_of(api, flow_id)) == ["first", "a1"]


def test_a_failing_operation_applies_none_of_the_patch(api: Api) -> None:
    flow_id, flow = with_audiences(api, 2)
    response = api.patch(f"/flows/{flow_id}", [remove(0), remove(5)], flow["etag"])
    assert flow_error_code(response) == "1455-400", response.text
    after = flow_of(api, flow_id)
    assert audience_ids(after) == ["a0", "a1"]
    assert after["etag"] == flow["etag"]


# --------------------------------------------------------------------------- selector server fields


def test_a_whole_selector_replace_keeps_what_is_sent_and_the_servers_create_time(api: Api) -> None:
    flow_id, flow = with_audiences(api, 2)
    stored = selectors(flow)
    time.sleep(1.1)  # the times are epoch seconds: let one pass so that a moved updateTime shows
    changed = audience("a1", "WEEKLY")
    changed["value"] |= {"description": "weekly now", "createTime": "1", "updateTime": "1"}
    unchanged = {"type": "PLATFORM_SEGMENT", "value": {**stored[0]["value"], "updateTime": "1"}}
    ops = [
        {"op": "replace", "path": f"{SEGMENTS}/0", "value": unchanged},
        {"op": "replace", "path": f"{SEGMENTS}/1", "value": changed},
    ]
    assert api.patch(f"/flows/{flow_id}", ops, flow["etag"]).status_code == 200
    after = selectors(flow_of(api, flow_id))
    # What was sent is kept, whole; createTime stays the server's, whatever the client sent.
    assert without_times(after[1]["value"]) == without_times(changed["value"])
    assert after[1]["value"]["createTime"] == stored[1]["value"]["createTime"]
    assert int(after[1]["value"]["updateTime"]) > int(stored[1]["value"]["updateTime"])
    # A replace that changes nothing moves nothing.
    assert after[0]["value"] == stored[0]["value"]


def test_an_untouched_selector_keeps_its_times_when_another_changes(api: Api) -> None:
    flow_id, flow = with_audiences(api, 2)
    stored = selectors(flow)
    time.sleep(1.1)
    ops = [{"op": "replace", "path": f"{SEGMENTS}/1/value/schedule/frequency", "value": "WEEKLY"}]
    assert api.patch(f"/flows/{flow_id}", ops, flow["etag"]).status_code == 200
    after = selectors(flow_of(api, flow_id))
    assert after[0]["value"] == stored[0]["value"]
    assert after[1]["value"]["createTime"] == stored[1]["value"]["createTime"]
    assert int(after[1]["value"]["updateTime"]) > int(stored[1]["value"]["updateTime"])


# --------------------------------------------------------------------------- lastOperation


def test_last_operation_shows_every_update_and_flow_action(api: Api) -> None:
    chain = create_chain(api)
    flow = flow_of(api, chain.flow)
    assert (flow["lastOperation"]["operation"], flow["lastOperation"]["ops"]) == ("create", [])
    etags = [flow["etag"]]

    sent = [
        {"op": "ADD", "path": f"{SEGMENTS}/-", "value": audience("a0")},
        {"op": "replace", "path": "/name", "value": "renamed"},
    ]
    assert api.patch(f"/flows/{chain.flow}", sent, flow["etag"]).status_code == 200
    flow = flow_of(api, chain.flow)
    applied = [{**sent[0], "op": "add"}, sent[1]]  # op matched case-insensitively, shown as applied
    assert (flow["lastOperation"]["operation"], flow["lastOperation"]["ops"]) == ("update", applied)
    assert flow["lastOperation"]["status"]["value"] == "completed"
    assert flow["lastOperation"]["updated"] == flow["updatedAt"]
    etags.append(flow["etag"])

    for op, state in (("disable", "disabled"), ("ENABLE", "enabled")):
        assert api.post(f"/flows/{chain.flow}/action?op={op}", None).status_code == 200
        flow = flow_of(api, chain.flow)
        assert (flow["state"], flow["lastOperation"]["operation"]) == (state, op.lower())
        assert flow["lastOperation"]["ops"] == []
        etags.append(flow["etag"])

    assert api.patch(f"/flows/{chain.flow}", [remove(0)], flow["etag"]).status_code == 200
    flow = flow_of(api, chain.flow)
    assert flow["lastOperation"]["operation"] == "update"
    assert flow["lastOperation"]["ops"] == [{"op": "remove", "path": f"{SEGMENTS}/0"}]
    etags.append(flow["etag"])
    assert len(set(etags)) == len(etags), "every update and every action moves the etag"


def test_a_refused_patch_leaves_last_operation_alone(api: Api) -> None:
    flow_id, flow = with_audiences(api, 1)
    response = api.patch(f"/flows/{flow_id}", [{"op": "move", "path": "/x", "from": "/y"}], flow["etag"])
    assert flow_error_code(response) == "1434-400"
    assert flow_of(api, flow_id)["lastOperation"] == flow["lastOperation"]


# --------------------------------------------------------------------------- PATCH body shape


@pytest.mark.parametrize("kind", ["flows", "sourceConnections", "targetConnections"])
def test_a_patch_body_must_be_an_array(api: Api, kind: str) -> None:
    """flow-service.yaml and destinations.yaml both give these PATCH bodies as arrays of instructions."""
    chain = create_chain(api)
    resource_id = {"flows": chain.flow, "sourceConnections": chain.source, "targetConnections": chain.target}[kind]
    before = api.get(f"/{kind}/{resource_id}").json()["items"][0]
    bare = {"op": "replace", "path": "/name", "value": "renamed"}
    response = api.patch(f"/{kind}/{resource_id}", bare, before["etag"])
    assert response.status_code == 400
    assert flow_error_code(response) == "1455-400", response.text
    assert "array" in response.json()["errorMessage"]
    assert api.get(f"/{kind}/{resource_id}").json()["items"][0] == before
    assert api.patch(f"/{kind}/{resource_id}", [bare], before["etag"]).status_code == 200


@pytest.mark.parametrize("body", [[], {}, "replace", 42, [42]])
def test_a_patch_body_must_hold_instructions(api: Api, body: Any) -> None:
    chain = create_chain(api)
    assert flow_error_code(api.patch(f"/flows/{chain.flow}", body, chain.flow_etag)) == "1455-400"


@pytest.mark.parametrize("wrap", [False, True])
def test_a_base_connection_patch_is_one_instruction_or_an_array(api: Api, wrap: bool) -> None:
    """Both documents' schemas give a base connection's PATCH body as one instruction object; the Dest
    spec's examples and Adobe's guides send an array of them. Both are accepted."""
    created = api.create("connections", campaign_s3_body())
    instruction = {"op": "replace", "path": "/auth/params", "value": {"accessId": "new", "secretKey": "also-new"}}
    response = api.patch(f"/connections/{created['id']}", [instruction] if wrap else instruction, created["etag"])
    assert response.status_code == 200, response.text
    assert api.get(f"/connections/{created['id']}").json()["items"][0]["auth"]["params"]["accessId"] == "new"


# --------------------------------------------------------------------------- validation and error codes


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
    stored = api.get(f"/targetConnections/{response.json()['id']}").json()["items"][0]
    assert stored["params"] == body["params"]
    # The location stays required: removing the bucket is refused.
    patch = [{"op": "remove", "path": "/params/bucketName", "value": "b"}]
    assert flow_error_code(api.patch(f"/targetConnections/{stored['id']}", patch, stored["etag"])) == "1455-400"


def test_a_missing_field_is_the_documented_422_without_a_code(api: Api) -> None:
    """The Dest spec documents a 422 for a missing connectionSpec.version; no catalog code has 422."""
    for body in ({"name": "x", "connectionSpec": {"id": ADOBE_CAMPAIGN}}, {"connectionSpec": spec_ref(ADOBE_CAMPAIGN)}):
        response = api.post("/connections", body)
        assert response.status_code == 422, response.text
        error = response.json()
        assert set(error) == {"errorMessage", "errorDetails"}
        assert error["errorMessage"] == error["errorDetails"] and "is missing" in error["errorMessage"]


def test_invalid_fields_are_1455(api: Api) -> None:
    invalid = api.post("/connections", {"name": "x", "connectionSpec": "not an object"})
    assert flow_error_code(invalid) == "1455-400", invalid.text
    assert invalid.json()["status"] == 400
    not_json = api.http.post(
        "/data/foundation/flowservice/connections",
        content=b"{not json",
        headers=api.headers(**{"Content-Type": "application/json"}),
    )
    assert flow_error_code(not_json) == "1455-400"
    not_object = api.post("/connections", ["a", "list"])
    assert flow_error_code(not_object) == "1455-400"


def test_a_patch_that_removes_a_required_field_is_1455_400(api: Api) -> None:
    chain = create_chain(api)
    response = api.patch(f"/flows/{chain.flow}", [{"op": "remove", "path": "/name", "value": ""}], chain.flow_etag)
    assert flow_error_code(response) == "1455-400", response.text
    assert "name" in response.json()["errorMessage"]


def test_every_flow_service_error_names_a_catalog_code_with_its_status(api: Api) -> None:
    chain = create_chain(api)
    responses = [
        api.post("/connections", {"name": "x", "connectionSpec": "nope"}),
        api.patch(f"/flows/{chain.flow}", {"op": "replace", "path": "/name", "value": "n"}, chain.flow_etag),
        api.patch(f"/flows/{chain.flow}", [{"op": "copy", "path": "/a", "from": "/b"}], chain.flow_etag),
        api.patch(f"/flows/{chain.flow}", [{"op": "replace", "path": "/name", "value": "n"}], None),
        api.get("/flows/no-such-flow"),
    ]
    for response in responses:
        code, status = flow_error_code(response).split("-")
        assert int(status) == response.status_code == response.json()["status"]
        assert code not in ("1406", "1407"), "invented codes are gone"


# --------------------------------------------------------------------------- out-of-band edits (admin)


def edit(api: Api, flow_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.http.post(f"/_emulator/flows/{flow_id}/edit", json=body)


def test_an_out_of_band_edit_is_one_patch_by_a_person(api: Api) -> None:
    flow_id, flow = with_audiences(api, 3, attributes=("person.name", "person.email"))
    body = {
        "removeSegments": ["a0"],
        "changeSegments": [{"id": "a2", "set": {"schedule.frequency": "WEEKLY", "description": "theirs"}}],
        "addSegments": [{"id": "theirs"}, {"id": "monthly", "schedule": {"frequency": "MONTHLY"}}],
        "removeAttributes": ["person.name"],
        "addAttributes": ["person.phone"],
    }
    response = edit(api, flow_id, body)
    assert response.status_code == 200, response.text
    after = flow_of(api, flow_id)
    assert response.json() == after
    assert audience_ids(after) == ["a1", "a2", "theirs", "monthly"]
    assert attribute_paths(after) == ["person.email", "person.phone"]
    changed = selectors(after)[1]["value"]
    assert (changed["schedule"]["frequency"], changed["description"]) == ("WEEKLY", "theirs")
    assert changed["schedule"]["startDate"] == "2026-01-01", "a change keeps the rest of the selector"
    assert changed["createTime"] == selectors(flow)[2]["value"]["createTime"]
    added = selectors(after)[2]["value"]
    assert (added["exportMode"], added["filenameTemplate"]) == ("DAILY_FULL_EXPORT", DEFAULT_FILENAME_TEMPLATE)
    assert added["schedule"]["frequency"] == "DAILY" and added["createTime"].isdigit()  # enriched like any PATCH
    assert selectors(after)[3]["value"]["schedule"] == {"frequency": "MONTHLY"}
    assert selectors(after, "profileSelectors")[1]["value"]["mapping"]["source"] == "person.phone"
    # A person's, through Adobe's UI; the etag moved, and the UI's PATCH shows in lastOperation.
    assert (after["updatedBy"], after["updatedClient"]) == (UI_PERSON, UI_CLIENT_ID)
    assert after["updatedBy"].endswith("@AdobeID") and after["createdBy"].endswith("@techacct.adobe.com")
    assert after["etag"] != flow["etag"] and after["updatedAt"] >= flow["updatedAt"]
    ops = after["lastOperation"]["ops"]
    assert after["lastOperation"]["operation"] == "update"
    assert [(op["op"], op["path"]) for op in ops] == [
        ("replace", f"{SEGMENTS}/2"),
        ("remove", f"{SEGMENTS}/0"),
        ("add", f"{SEGMENTS}/-"),
        ("add", f"{SEGMENTS}/-"),
        ("remove", f"{PROFILES}/0"),
        ("add", f"{PROFILES}/-"),
    ]
    # The gateway's etag is stale now.
    assert api.patch(f"/flows/{flow_id}", [remove(0)], flow["etag"]).status_code == 412


def test_an_edit_removing_several_audiences_removes_exactly_those(api: Api) -> None:
    flow_id, _ = with_audiences(api, 5)
    assert edit(api, flow_id, {"removeSegments": ["a1", "a3"]}).status_code == 200
    after = flow_of(api, flow_id)
    assert audience_ids(after) == ["a0", "a2", "a4"]
    assert [op["path"] for op in after["lastOperation"]["ops"]] == [f"{SEGMENTS}/3", f"{SEGMENTS}/1"]


def test_an_edit_can_rename_and_change_the_state(api: Api) -> None:
    flow_id, _ = with_audiences(api, 1)
    response = edit(api, flow_id, {"name": "their name", "state": "disabled", "person": "someone@AdobeID"})
    assert response.status_code == 200, response.text
    after = flow_of(api, flow_id)
    assert (after["name"], after["state"], after["updatedBy"]) == ("their name", "disabled", "someone@AdobeID")
    assert after["lastOperation"]["operation"] == "disable", "the UI saves, then toggles the flow"
    # The state it already has: nothing to do, nothing moves.
    assert edit(api, flow_id, {"state": "disabled"}).status_code == 200
    assert flow_of(api, flow_id)["etag"] == after["etag"]
    assert edit(api, flow_id, {"state": "enabled"}).status_code == 200
    enabled = flow_of(api, flow_id)
    assert (enabled["state"], enabled["lastOperation"]["operation"]) == ("enabled", "enable")
    assert enabled["etag"] != after["etag"]


def test_an_edit_may_be_a_raw_json_patch(api: Api) -> None:
    flow_id, _ = with_audiences(api, 2)
    body = {"patch": [remove(0), {"op": "add", "path": f"{SEGMENTS}/-", "value": audience("theirs")}]}
    assert edit(api, flow_id, body).status_code == 200
    assert audience_ids(flow_of(api, flow_id)) == ["a1", "theirs"]


def test_an_edit_in_another_sandbox(api: Api) -> None:
    dev = api.in_sandbox("dev")
    flow_id, _ = with_audiences(dev, 1)
    assert edit(api, flow_id, {"removeSegments": ["a0"]}).status_code == 404  # not in prod
    assert edit(api, flow_id, {"sandbox": "dev", "removeSegments": ["a0"]}).status_code == 200
    assert audience_ids(flow_of(dev, flow_id)) == []


def test_an_edit_adds_the_selector_lists_a_flow_lacks(api: Api) -> None:
    chain = create_chain(api)
    ops = [{"op": "replace", "path": "/transformations/0/params", "value": {}}]
    assert api.patch(f"/flows/{chain.flow}", ops, chain.flow_etag).status_code == 200
    assert edit(api, chain.flow, {"addSegments": [{"id": "x"}], "addAttributes": ["person.name"]}).status_code == 200
    after = flow_of(api, chain.flow)
    assert (audience_ids(after), attribute_paths(after)) == (["x"], ["person.name"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"removeSegments": ["nope"]}, 409),
        ({"changeSegments": [{"id": "nope", "set": {"name": "x"}}]}, 409),
        ({"addSegments": [{"id": "a0"}]}, 409),
        ({"addSegments": [{"id": "new"}, {"id": "new"}]}, 409),
        ({"removeSegments": ["a0"], "changeSegments": [{"id": "a0", "set": {"name": "x"}}]}, 409),
        ({"changeSegments": [{"id": "a0", "set": {"id": "other"}}]}, 409),
        ({"removeAttributes": ["person.nope"]}, 409),
        ({"addAttributes": ["person.name"]}, 409),
        ({}, 422),
        ({"sandbox": "prod"}, 422),
        ({"addSegments": [{"name": "no id"}]}, 422),
        ({"state": "paused"}, 422),
        ({"colour": "red"}, 422),
    ],
)
def test_an_edit_the_ui_would_not_offer_is_refused(api: Api, body: dict[str, Any], status: int) -> None:
    flow_id, flow = with_audiences(api, 1, attributes=("person.name",))
    response = edit(api, flow_id, body)
    assert response.status_code == status, response.text
    assert flow_of(api, flow_id) == flow


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"changeSegments": [{"id": "a0", "set": {"exportMode": "HOURLY"}}]}, "1455-400"),
        ({"addSegments": [{"id": "x", "filenameTemplate": "no-macros.csv"}]}, "1455-400"),
        ({"patch": [{"op": "move", "path": "/x", "from": "/y"}]}, "1434-400"),
    ],
)
def test_an_edit_flow_service_refuses_answers_its_error(api: Api, body: dict[str, Any], code: str) -> None:
    flow_id, flow = with_audiences(api, 1)
    assert flow_error_code(edit(api, flow_id, body)) == code
    assert flow_of(api, flow_id) == flow


def test_an_edit_of_a_flow_that_does_not_exist_is_1439(api: Api) -> None:
    response = edit(api, "no-such-flow", {"removeSegments": ["a0"]})
    assert response.status_code == 404
    assert flow_error_code(response) == "1439-404"


# --------------------------------------------------------------------------- counts (admin)


def test_flow_counts_per_sandbox(api: Api) -> None:
    create_chain(api)
    doomed = create_chain(api)
    create_chain(api.in_sandbox("dev"))
    assert api.http.get("/_emulator/state").json()["counts"]["flows"] == {"prod": 2, "dev": 1}
    assert api.delete(f"/flows/{doomed.flow}").status_code == 202
    counts = api.http.get("/_emulator/state").json()["counts"]
    assert counts["flows"] == {"prod": 1, "dev": 1}
    assert counts["targetConnections"] == {"prod": 2, "dev": 1}, "deleting a flow leaves its connections"
    assert "staging" not in counts["flows"], "a sandbox without flows is absent"

"""Change a live activation in place (contract §10), end to end over real HTTP against the emulator,
on real PostgreSQL: add, remove, change and reorder audiences and attributes; each update reaches
`appliedRevision == revision` with the flow holding exactly the desired state; nothing-to-do
answers 200; immutable fields, guardrails and `If-Match`; dry runs plan and write nothing; and 20
concurrent PATCHes end on the last accepted revision."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import ADOBE_CLIENT_ID, ADOBE_CLIENT_SECRET, ADOBE_ORG_ID, wait_for
from tests.emulator.conftest import Api, issue_token
from tests.gateway.test_activation_e2e import flow_service_requests
from tests.gateway.test_operations_e2e import (
    WAIT,
    assert_problem,
    get_activation,
    live,
    operation_id,
    upstream_flow,
    wait_operation,
)
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, segments

MERGE_PATCH = "application/merge-patch+json"


def patch(
    client: httpx.Client,
    activation_id: str,
    body: dict[str, Any],
    *,
    wait: int | None = WAIT,
    if_match: str | None = None,
    key: str | None = "",
    dry_run: bool = False,
) -> httpx.Response:
    headers = {"Content-Type": MERGE_PATCH}
    if key is not None:
        headers["Idempotency-Key"] = key or new_key()
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    if if_match is not None:
        headers["If-Match"] = if_match
    params = {"dryRun": "true"} if dry_run else {}
    return client.patch(f"/activations/{activation_id}", json=body, headers=headers, params=params)


def flow_selectors(emulator: EmulatorServer, flow_id: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The flow's audiences by id (their values) and its attribute paths, as Adobe has them."""
    params = upstream_flow(emulator, flow_id)["transformations"][0]["params"]
    audiences = [s["value"] for s in params["segmentSelectors"]["selectors"]]
    paths = [s["value"]["path"] for s in params["profileSelectors"]["selectors"]]
    by_id = {a["id"]: a for a in audiences}
    assert len(by_id) == len(audiences), f"duplicate audience on the flow: {audiences}"
    assert len(set(paths)) == len(paths), f"duplicate attribute on the flow: {paths}"
    return by_id, paths


def assert_flow_is(emulator: EmulatorServer, activation: dict[str, Any]) -> None:
    """The flow holds exactly the activation's audiences (each with the fields the gateway owns)
    and attributes: nothing missing, nothing extra."""
    audiences, paths = flow_selectors(emulator, activation["flow"]["id"])
    assert set(audiences) == {s["id"] for s in activation["segments"]}
    for wanted in activation["segments"]:
        stored = audiences[wanted["id"]]
        assert {k: stored.get(k) for k in wanted} == wanted
    assert sorted(paths) == sorted(activation["attributes"])


def applied(client: httpx.Client, response: httpx.Response, activation_id: str) -> dict[str, Any]:
    """The activation once the update this response queued has ended, and that it succeeded."""
    assert response.status_code in (200, 202), response.text
    operation = wait_operation(client, activation_id, operation_id(response, activation_id))
    assert operation["status"] == "succeeded", operation
    assert operation["kind"] == "update"
    activation = get_activation(client, activation_id)
    assert activation["appliedRevision"] == activation["revision"], activation
    assert activation["sync"]["status"] == "in_sync", activation["sync"]
    return activation


def patches_sent(emulator: EmulatorServer, flow_id: str) -> list[Any]:
    return [
        e.get("body")
        for e in flow_service_requests(emulator)
        if e["method"] == "PATCH" and e["path"].endswith(f"/flows/{flow_id}") and e["lateCommitOf"] is None
    ]


# ---------------------------------------------------------------------------------------------- changes
def test_add_remove_change_and_reorder_converge(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live(gateway)
    ident = start["id"]
    created = {a["id"]: a["createTime"] for a in flow_selectors(emulator, start["flow"]["id"])[0].values()}
    three = [*start["segments"], *segments(1)]

    # add an audience and an attribute
    added = applied(
        client, patch(client, ident, {"segments": three, "attributes": [*start["attributes"], "person.gender"]}), ident
    )
    assert added["revision"] == 2 and len(added["segments"]) == 3
    assert_flow_is(emulator, added)
    kept = flow_selectors(emulator, start["flow"]["id"])[0]
    assert {i: kept[i]["createTime"] for i in created} == created  # the audiences kept are Adobe's same ones

    # remove two audiences and an attribute
    removed = applied(client, patch(client, ident, {"segments": three[2:], "attributes": ["person.gender"]}), ident)
    assert [s["id"] for s in removed["segments"]] == [three[2]["id"]]
    assert_flow_is(emulator, removed)

    # change an audience's schedule and export mode
    changed_segment = {
        **three[2],
        "exportMode": "FIRST_FULL_THEN_INCREMENTAL",
        "schedule": {"frequency": "EVERY_6_HOURS", "triggerType": "SCHEDULED", "startTime": "06:00"},
    }
    changed = applied(client, patch(client, ident, {"segments": [changed_segment, *three[:1]]}), ident)
    assert changed["segments"][0]["exportMode"] == "FIRST_FULL_THEN_INCREMENTAL"
    assert_flow_is(emulator, changed)

    # reorder: a new revision, confirmed without sending Adobe anything (order means nothing upstream)
    before = len(patches_sent(emulator, start["flow"]["id"]))
    reordered = applied(client, patch(client, ident, {"segments": list(reversed(changed["segments"]))}), ident)
    assert [s["id"] for s in reordered["segments"]] == [s["id"] for s in reversed(changed["segments"])]
    assert reordered["revision"] == changed["revision"] + 1
    assert len(patches_sent(emulator, start["flow"]["id"])) == before
    assert_flow_is(emulator, reordered)


def test_a_patch_that_changes_nothing_answers_200(gateway: GatewayProcess) -> None:
    client = gateway.client()
    start = live(gateway)
    response = patch(client, start["id"], {"segments": start["segments"], "attributes": start["attributes"]})
    assert response.status_code == 200, response.text
    assert response.json()["revision"] == start["revision"]
    assert response.headers["location"] == f"/activations/{start['id']}"


def test_the_name_and_drift_policy_change_and_null_removes(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live(gateway)
    renamed = applied(
        client, patch(client, start["id"], {"name": "Autumn newsletter", "driftPolicy": "enforce"}), start["id"]
    )
    assert renamed["name"] == "Autumn newsletter" and renamed["driftPolicy"] == "enforce"
    assert upstream_flow(emulator, start["flow"]["id"])["name"].startswith("Autumn newsletter - dataflow")
    cleared = applied(client, patch(client, start["id"], {"attributes": None, "driftPolicy": None}), start["id"])
    assert cleared["attributes"] == [] and cleared["driftPolicy"] == "report"
    assert_flow_is(emulator, cleared)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"storage": {"type": "s3"}}, "/storage"),
        ({"destination": "Eloqua"}, "/destination"),
        ({"sandbox": "dev"}, "/sandbox"),
        ({"segments": None}, "/segments"),
        ({"segments": []}, "/segments"),
        ({"segments": segments(251)}, "/segments"),
        ({"attributes": [f"person.a{i}" for i in range(51)]}, "/attributes"),
        ({"segments": segments(1) * 2}, "/segments/1/id"),
        ({"colour": "red"}, "/colour"),
    ],
)
def test_bad_patches_are_refused_and_change_nothing(
    gateway: GatewayProcess, emulator: EmulatorServer, body: dict[str, Any], pointer: str
) -> None:
    client = gateway.client()
    start = live(gateway)
    problem = assert_problem(patch(client, start["id"], body), 422, "validation-error")
    assert any(e["path"].startswith(pointer) for e in problem["errors"]), problem
    assert get_activation(client, start["id"])["revision"] == start["revision"]
    assert patches_sent(emulator, start["flow"]["id"]) == patches_sent(emulator, start["flow"]["id"])[:1]


def test_if_match_and_keys(gateway: GatewayProcess) -> None:
    client = gateway.client()
    start = live(gateway)
    ident = start["id"]
    body = {"segments": segments(3)}
    assert_problem(patch(client, ident, body, if_match='"r7"'), 412, "precondition-failed")
    assert_problem(patch(client, ident, body, key=None), 400, "idempotency-key-missing")
    key = new_key()
    first = patch(client, ident, body, if_match='"r1"', key=key, wait=None)
    assert first.status_code == 202, first.text
    again = patch(client, ident, body, if_match='"r1"', key=key, wait=None)
    assert again.status_code == 202 and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert_problem(patch(client, ident, {"segments": segments(1)}, key=key), 422, "idempotency-key-reused")


def test_an_activation_that_is_not_live_is_not_updated(gateway: GatewayProcess) -> None:
    client = gateway.client()
    start = live(gateway)
    retired = client.delete(
        f"/activations/{start['id']}", headers={"Idempotency-Key": new_key(), "Prefer": f"wait={WAIT}"}
    )
    assert retired.status_code in (200, 202), retired.text
    assert_problem(patch(client, start["id"], {"segments": segments(3)}), 409, "activation-not-live")


# ---------------------------------------------------------------------------------------------- dry run
def test_a_dry_run_plans_exactly_what_the_update_then_sends(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live(gateway)
    desired = {"segments": [*start["segments"][1:], *segments(1)], "attributes": ["person.gender"]}
    flow_before = upstream_flow(emulator, start["flow"]["id"])
    dry = patch(client, start["id"], desired, dry_run=True, key=None, wait=None)
    assert dry.status_code == 200, dry.text
    planned = dry.json()
    assert planned["activation"]["revision"] == start["revision"] + 1
    assert [s["id"] for s in planned["activation"]["segments"]] == [s["id"] for s in desired["segments"]]
    assert len(planned["plan"]) == 1 and planned["plan"][0]["method"] == "PATCH"
    # nothing written: neither the activation nor the flow
    assert get_activation(client, start["id"])["revision"] == start["revision"]
    assert upstream_flow(emulator, start["flow"]["id"])["etag"] == flow_before["etag"]
    sent_before = patches_sent(emulator, start["flow"]["id"])

    applied(client, patch(client, start["id"], desired), start["id"])
    sent = patches_sent(emulator, start["flow"]["id"])[len(sent_before) :]
    assert sent == [planned["plan"][0]["body"]]


# ---------------------------------------------------------------------------------------------- concurrency
def test_concurrent_patches_end_on_the_last_accepted_revision(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    client = gateway.client()
    start = live(gateway)
    ident = start["id"]
    pool = segments(8)
    bodies = [{"segments": pool[i % 8 : i % 8 + 1 + i % 3] or pool[:1]} for i in range(20)]

    def send(body: dict[str, Any], if_match: str | None) -> httpx.Response:
        return patch(gateway.client(), ident, body, wait=None, if_match=if_match)

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as executor:
        futures = [executor.submit(send, body, '"r1"' if i % 2 else None) for i, body in enumerate(bodies)]
        answers = [f.result() for f in futures]
    assert {a.status_code for a in answers} <= {200, 202, 412}, [a.text for a in answers]
    assert any(a.status_code == 202 for a in answers)
    for answer in answers:
        if answer.status_code == 412:
            assert answer.headers["content-type"].startswith("application/problem+json")
    accepted = max(a.json()["revision"] for a in answers if a.status_code == 202)
    final = wait_for_applied(client, ident, accepted)
    assert final["revision"] == accepted
    assert_flow_is(emulator, final)


def wait_for_applied(client: httpx.Client, ident: str, revision: int) -> dict[str, Any]:
    return wait_for(lambda: get_activation(client, ident), lambda a: a["appliedRevision"] == revision, 60)


# ---------------------------------------------------------------------------------------------- out of band
def test_an_update_after_a_persons_edit_in_adobe_converges(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    """Someone edits the flow in Adobe's UI (here: Flow Service itself, as the UI does): adds an
    audience of their own, removes one of ours, changes another's schedule, adds an attribute. The
    next update makes the flow hold exactly the activation's desired state again."""
    client = gateway.client()
    start = live(gateway)
    flow_id = start["flow"]["id"]
    person = person_in_adobe_ui(emulator)
    flow = person.get(f"/flows/{flow_id}").json()["items"][0]
    theirs = {"type": "PLATFORM_SEGMENT", "value": {**segments(1)[0], "exportMode": "DAILY_FULL_EXPORT"}}
    theirs["value"]["schedule"] = {"frequency": "DAILY", "triggerType": "AFTER_SEGMENT_EVAL", "startDate": "2026-12-03"}
    theirs["value"]["filenameTemplate"] = start["segments"][0]["filenameTemplate"]
    edit = [
        {"op": "replace", "path": f"{SEGMENTS}/1/value/schedule/frequency", "value": "WEEKLY"},
        {"op": "remove", "path": f"{SEGMENTS}/0", "value": {"type": "PLATFORM_SEGMENT", "value": {}}},
        {"op": "add", "path": f"{SEGMENTS}/-", "value": theirs},
        {"op": "add", "path": f"{PROFILES}/-", "value": {"type": "JSON_PATH", "value": {"path": "person.gender"}}},
    ]
    edited = person.patch(f"/flows/{flow_id}", edit, flow["etag"])
    assert edited.status_code == 200, edited.text

    desired = {"segments": [*start["segments"], *segments(1)]}
    after = applied(client, patch(client, start["id"], desired), start["id"])
    assert_flow_is(emulator, after)
    audiences, _ = flow_selectors(emulator, flow_id)
    assert theirs["value"]["id"] not in audiences, "an audience added out of band is removed"


SEGMENTS = "/transformations/0/params/segmentSelectors/selectors"
PROFILES = "/transformations/0/params/profileSelectors/selectors"


def person_in_adobe_ui(emulator: EmulatorServer) -> Api:
    """A Flow Service caller of the same organisation (Adobe's UI calls the same API)."""
    http = httpx.Client(base_url=emulator.url, timeout=10)
    token = issue_token(http, ADOBE_CLIENT_ID, ADOBE_CLIENT_SECRET)
    return Api(http, token, client_id=ADOBE_CLIENT_ID, extra={"x-gw-ims-org-id": ADOBE_ORG_ID})


def test_an_update_converges_after_the_emulators_ui_edit(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    """The same through the emulator's stand-in for Adobe's UI: audiences and attributes removed,
    added and changed by a person; an update of the name alone restores the lists too, since it
    makes the flow hold the whole desired state."""
    client = gateway.client()
    start = live(gateway)
    kept, dropped = start["segments"]
    edit = {
        "removeSegments": [dropped["id"]],
        "addSegments": [{"id": "their-audience", "name": "Theirs"}],
        "changeSegments": [{"id": kept["id"], "set": {"schedule.frequency": "WEEKLY"}}],
        "removeAttributes": [start["attributes"][0]],
        "addAttributes": ["person.gender"],
    }
    response = httpx.post(f"{emulator.url}/_emulator/flows/{start['flow']['id']}/edit", json=edit)
    assert response.status_code == 200, response.text
    after = applied(client, patch(client, start["id"], {"name": "Spring newsletter, edited"}), start["id"])
    assert_flow_is(emulator, after)
    assert "their-audience" not in flow_selectors(emulator, start["flow"]["id"])[0]

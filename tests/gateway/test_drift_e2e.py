"""Drift (contract §13), end to end over real HTTP against the emulator on real PostgreSQL: every kind
of out-of-band edit (as a person saves it in Adobe's UI) is reported in `sync`; under `enforce` it is
repaired and the flow ends equal to the desired state; a deleted flow is reported and never
recreated; the reconcile cycle finds drift on its own; and the reconcile reads flows in batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for
from tests.gateway.test_activation_e2e import activate, flow_service_requests, refused
from tests.gateway.test_operations_e2e import events, get_activation, live, operations, upstream_flow, wait_operation
from tests.gateway.test_updates_e2e import applied, assert_flow_is, patch, person_in_adobe_ui
from tests.support.gateway import GatewayProcess
from tests.support.payloads import s3_request


def edit_in_adobe(emulator: EmulatorServer, flow_id: str, edit: dict[str, Any]) -> None:
    response = httpx.post(f"{emulator.url}/_emulator/flows/{flow_id}/edit", json=edit)
    assert response.status_code == 200, response.text


def reconcile(client: httpx.Client, activation_id: str) -> dict[str, Any]:
    response = client.post(f"/activations/{activation_id}/reconcile")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def difference_kinds(activation: dict[str, Any]) -> list[str]:
    return [d["kind"] for d in activation["sync"]["differences"]]


EDITS: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    ("audience added", lambda a: {"addSegments": [{"id": "their-audience", "name": "Theirs"}]}, "audience-surplus"),
    ("audience removed", lambda a: {"removeSegments": [a["segments"][0]["id"]]}, "audience-missing"),
    (
        "audience changed",
        lambda a: {"changeSegments": [{"id": a["segments"][0]["id"], "set": {"schedule.frequency": "WEEKLY"}}]},
        "audience-changed",
    ),
    ("attribute added", lambda a: {"addAttributes": ["person.gender"]}, "attribute-surplus"),
    ("attribute removed", lambda a: {"removeAttributes": [a["attributes"][0]]}, "attribute-missing"),
    ("renamed", lambda a: {"name": "Renamed in the UI"}, "name-changed"),
    ("disabled", lambda a: {"state": "disabled"}, "state-changed"),
]


@pytest.mark.parametrize(("edit", "kind"), [(e, k) for _, e, k in EDITS], ids=[name for name, _, _ in EDITS])
def test_each_out_of_band_edit_is_reported(
    gateway: GatewayProcess, emulator: EmulatorServer, edit: Callable[[dict[str, Any]], dict[str, Any]], kind: str
) -> None:
    client = gateway.client()
    start = live(gateway)
    in_sync = reconcile(client, start["id"])
    assert in_sync["sync"]["status"] == "in_sync" and in_sync["sync"]["differences"] == []
    flow_before = upstream_flow(emulator, start["flow"]["id"])

    edit_in_adobe(emulator, start["flow"]["id"], edit(start))
    edited_flow = upstream_flow(emulator, start["flow"]["id"])
    drifted = reconcile(client, start["id"])

    assert drifted["sync"]["status"] == "drifted", drifted["sync"]
    assert difference_kinds(drifted) == [kind]
    # report (the default) repairs nothing: no operation, the flow as the person left it
    assert [o["kind"] for o in operations(client, start["id"])["items"]] == ["create"]
    assert upstream_flow(emulator, start["flow"]["id"])["etag"] == edited_flow["etag"] != flow_before["etag"]
    drift_events = [e for e in events(client, start["id"]) if e["type"] == "drift"]
    assert len(drift_events) == 1 and drift_events[0]["data"]["differences"] == drifted["sync"]["differences"]

    # a second check of the same drift records no second event
    reconcile(client, start["id"])
    assert len([e for e in events(client, start["id"]) if e["type"] == "drift"]) == 1


def test_enforce_restores_the_desired_state(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live(gateway)
    enforcing = applied(client, patch(client, start["id"], {"driftPolicy": "enforce"}), start["id"])
    assert enforcing["driftPolicy"] == "enforce"
    kept, dropped = start["segments"]
    edit_in_adobe(
        emulator,
        start["flow"]["id"],
        {
            "removeSegments": [dropped["id"]],
            "addSegments": [{"id": "their-audience"}],
            "changeSegments": [{"id": kept["id"], "set": {"schedule.frequency": "WEEKLY"}}],
            "addAttributes": ["person.gender"],
        },
    )

    found = reconcile(client, start["id"])
    assert set(difference_kinds(found)) == {
        "audience-missing",
        "audience-surplus",
        "audience-changed",
        "attribute-surplus",
    }
    repair = operations(client, start["id"])["items"][0]
    assert repair["kind"] == "update" and repair["revision"] == enforcing["revision"]  # the desired state stays
    assert wait_operation(client, start["id"], repair["id"])["status"] == "succeeded"

    repaired = get_activation(client, start["id"])
    assert repaired["sync"]["status"] == "in_sync" and repaired["sync"]["differences"] == []
    assert repaired["revision"] == repaired["appliedRevision"] == enforcing["revision"]
    assert_flow_is(emulator, repaired)
    assert reconcile(client, start["id"])["sync"]["status"] == "in_sync"
    # the drift was reported once; the repair operation's own events say how it was resolved
    assert [e["type"] for e in events(client, start["id"]) if e["type"].startswith("drift")] == ["drift"]


def test_an_activation_created_enforcing_is_repaired_without_a_change(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    # Contract §9: driftPolicy is settable on create as well as by PATCH.
    _, start = activate(gateway, s3_request(driftPolicy="enforce"))
    assert start["status"] == "succeeded" and start["driftPolicy"] == "enforce" and start["revision"] == 1
    client = gateway.client()
    edit_in_adobe(emulator, start["flow"]["id"], {"addSegments": [{"id": "their-audience"}]})

    assert difference_kinds(reconcile(client, start["id"])) == ["audience-surplus"]
    repair, *earlier = operations(client, start["id"])["items"]  # newest first
    assert repair["kind"] == "update" and repair["revision"] == 1
    assert [o["kind"] for o in earlier] == ["create"]
    assert wait_operation(client, start["id"], repair["id"])["status"] == "succeeded"
    repaired = get_activation(client, start["id"])
    assert repaired["sync"]["status"] == "in_sync" and repaired["appliedRevision"] == 1
    assert_flow_is(emulator, repaired)


def test_a_create_with_an_unknown_drift_policy_is_refused(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    error = refused(gateway, s3_request(driftPolicy="sometimes"))
    assert error["path"] == "/driftPolicy" and "enforce" in error["message"], error
    assert flow_service_requests(emulator) == [] or all(
        c["method"] == "GET" for c in flow_service_requests(emulator)
    ), "nothing written upstream"


def test_enforce_enables_a_flow_disabled_in_adobe(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live(gateway)
    applied(client, patch(client, start["id"], {"driftPolicy": "enforce"}), start["id"])
    edit_in_adobe(emulator, start["flow"]["id"], {"state": "disabled"})

    assert difference_kinds(reconcile(client, start["id"])) == ["state-changed"]
    repair = operations(client, start["id"])["items"][0]
    assert repair["kind"] == "resume"
    assert wait_operation(client, start["id"], repair["id"])["status"] == "succeeded"
    assert upstream_flow(emulator, start["flow"]["id"])["state"] == "enabled"
    after = get_activation(client, start["id"])
    assert after["state"] == "enabled" and after["sync"]["status"] == "in_sync"


def test_a_deleted_flow_is_reported_and_never_recreated(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    client = gateway.client()
    start = live(gateway)
    applied(client, patch(client, start["id"], {"driftPolicy": "enforce"}), start["id"])
    person = person_in_adobe_ui(emulator)
    assert person.delete(f"/flows/{start['flow']['id']}").status_code in (200, 202, 204)
    creates_before = [
        e for e in flow_service_requests(emulator) if e["method"] == "POST" and e["path"].endswith("/flows")
    ]

    found = reconcile(client, start["id"])
    assert found["sync"]["status"] == "drifted"
    assert difference_kinds(found) == ["flow-deleted"]
    assert next(o["kind"] for o in operations(client, start["id"])["items"]) == "update"  # the enforce PATCH
    assert found["status"] == "succeeded"
    creates_after = [
        e for e in flow_service_requests(emulator) if e["method"] == "POST" and e["path"].endswith("/flows")
    ]
    assert creates_after == creates_before


def test_an_activation_being_changed_is_not_compared(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    """While a newer revision is on its way the flow legitimately differs: nothing is recorded."""
    client = gateway.client()
    start = live(gateway)
    httpx.post(
        f"{emulator.url}/_emulator/latency",
        json={"method": "PATCH", "path": f"*/flows/{start['flow']['id']}", "fixedMs": 1500},
    ).raise_for_status()
    response = patch(client, start["id"], {"name": "Renamed by the caller"}, wait=None)
    assert response.status_code == 202
    during = reconcile(client, start["id"])
    assert during["sync"]["status"] == "applying" and during["sync"]["differences"] == []
    httpx.delete(f"{emulator.url}/_emulator/latency").raise_for_status()


def test_the_reconcile_cycle_finds_drift_on_its_own(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    # the first full sweep may run while only some of the activations are live: sweep often enough
    # that one sees all three
    gateway = start_gateway(
        RECONCILE_INTERVAL_SECONDS="0.5", RECONCILE_FULL_SWEEP_SECONDS="2", RUNS_POLL_INTERVAL_SECONDS="3600"
    )
    client = gateway.client()
    activations = [live(gateway) for _ in range(3)]
    edit_in_adobe(emulator, activations[1]["flow"]["id"], {"name": "Renamed in the UI"})

    drifted = wait_for(
        lambda: get_activation(client, activations[1]["id"]), lambda a: a["sync"]["status"] == "drifted", timeout=20
    )
    assert difference_kinds(drifted) == ["name-changed"]
    for other in (activations[0], activations[2]):
        checked = get_activation(client, other["id"])
        assert checked["sync"]["status"] == "in_sync"
    # the cycle reads the flows in batches: a full sweep lists them by id, several to a call; the
    # cycles after it list only the flows changed since (how the rename was found)
    ids = {a["flow"]["id"] for a in activations}

    def listed() -> list[str]:
        return [
            dict(parse_qsl(e["query"]))["property"]
            for e in flow_service_requests(emulator)
            if e["method"] == "GET" and e["path"].endswith("/flows") and "property" in dict(parse_qsl(e["query"]))
        ]

    def swept_together_and_read_changes(properties: list[str]) -> bool:
        together = any(
            p.startswith("id==") and len(set(p.removeprefix("id==").split(",")) & ids) >= 2 for p in properties
        )
        return together and any(p.startswith("updatedAt>") for p in properties)

    wait_for(listed, swept_together_and_read_changes, timeout=10)

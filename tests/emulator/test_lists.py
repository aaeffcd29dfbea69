"""List semantics: property filters, orderby, limit, count, continuation tokens."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from flowservice_emulator.catalog import ADOBE_CAMPAIGN, PROFILE_STORE
from flowservice_emulator.config import EmulatorConfig

from .conftest import Api, campaign_s3_body, create_chain, flow_error_code, issue_token, profile_base_body

# How the gateway counts a sandbox's destination dataflows (flow-service.md Part 2 §2.3, §4.6).
DESTINATION_FLOWS = "inheritedAttributes.properties.isDestinationFlow==true"


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


def test_paging_150_connections_with_next_links(api: Api) -> None:
    created = {api.create("connections", profile_base_body(f"conn-{i:03}"))["id"] for i in range(150)}
    seen: list[str] = []
    path: str | None = "/connections?limit=100"
    pages = 0
    while path is not None:
        body = api.get(path).json()
        assert len(body["items"]) <= 100
        seen += [item["id"] for item in body["items"]]
        path = body.get("_links", {}).get("next", {}).get("href")  # relative to the Flow Service base path
        pages += 1
    assert pages == 2
    assert len(seen) == len(set(seen)) == 150
    assert set(seen) == created


def test_paging_survives_concurrent_changes(api: Api) -> None:
    ids = [api.create("connections", profile_base_body(f"c{i}"))["id"] for i in range(5)]
    first = api.get("/connections", {"limit": 2, "orderby": "createdAt"}).json()
    api.delete(f"/connections/{ids[0]}")  # already returned
    api.create("connections", profile_base_body("late"))  # sorts after everything else
    rest = []
    href = first["_links"]["next"]["href"]
    while href:
        body = api.get(href).json()
        rest += [item["name"] for item in body["items"]]
        href = body.get("_links", {}).get("next", {}).get("href")
    assert [item["name"] for item in first["items"]] + rest == ["c0", "c1", "c2", "c3", "c4", "late"]


def test_default_order_is_most_recently_updated_first(api: Api) -> None:
    for name in ("a", "b", "c"):
        api.create("connections", profile_base_body(name))
    assert _names(api.get("/connections")) == ["c", "b", "a"]


def test_orderby(api: Api) -> None:
    for name in ("b", "c", "a"):
        api.create("connections", profile_base_body(name))
    assert _names(api.get("/connections", {"orderby": "name"})) == ["a", "b", "c"]
    assert _names(api.get("/connections", {"orderby": "-name"})) == ["c", "b", "a"]
    assert _names(api.get("/connections", {"orderby": "+createdAt"})) == ["b", "c", "a"]
    assert flow_error_code(api.get("/connections", {"orderby": "colour"})) == "1432-400"


def test_filters_name_id_spec_or_and(api: Api) -> None:
    a = api.create("connections", profile_base_body("alpha"))["id"]
    b = api.create("connections", profile_base_body("beta"))["id"]
    api.create("connections", campaign_s3_body("gamma"))
    assert _names(api.get("/connections", {"property": "name==beta"})) == ["beta"]
    assert set(_names(api.get("/connections", {"property": f"id=={a},{b}"}))) == {"alpha", "beta"}
    assert _names(api.get("/connections", {"property": f"connectionSpec.id=={ADOBE_CAMPAIGN}"})) == ["gamma"]
    both = api.get(
        "/connections", [("property", f"connectionSpec.id=={PROFILE_STORE}"), ("property", "name==alpha,gamma")]
    )
    assert _names(both) == ["alpha"]
    assert _names(api.get("/connections", {"property": "name!=alpha", "orderby": "name"})) == ["beta", "gamma"]
    assert _names(api.get("/connections", {"property": "name==nobody"})) == []


def test_array_filters_on_flows(api: Api) -> None:
    chain = create_chain(api)
    by_source = api.get("/flows", {"property": f"sourceConnectionIds[]=={chain.source}"}).json()["items"]
    assert [flow["id"] for flow in by_source] == [chain.flow]
    by_inherited = api.get(
        "/flows", {"property": f"inheritedAttributes.targetConnections[].connectionSpec.id=={ADOBE_CAMPAIGN}"}
    ).json()["items"]
    assert [flow["id"] for flow in by_inherited] == [chain.flow]
    destination_only = api.get("/flows", {"property": "inheritedAttributes.properties.isDestinationFlow==true"})
    assert len(destination_only.json()["items"]) == 1
    assert api.get("/flows", {"property": "sourceConnectionIds[]==other"}).json()["items"] == []


def test_comparison_filters(api: Api) -> None:
    api.create("connections", profile_base_body("old"))
    cutoff = api.get("/connections").json()["items"][0]["createdAt"]
    assert _names(api.get("/connections", {"property": f"createdAt>={cutoff}"})) == ["old"]
    assert _names(api.get("/connections", {"property": f"createdAt>{cutoff}"})) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "101"}, "1454-400"),
        ({"limit": "0"}, "1454-400"),
        ({"limit": "ten"}, "1454-400"),
        ({"limit": "5", "count": "true"}, "1401-400"),
        ({"property": "name~alpha"}, "1440-400"),
        ({"continuationToken": "garbage!"}, "1454-400"),
    ],
)
def test_bad_list_parameters(api: Api, params: dict[str, str], code: str) -> None:
    response = api.get("/connections", params)
    assert response.status_code == 400
    assert flow_error_code(response) == code


def test_count(api: Api) -> None:
    for i in range(3):
        api.create("connections", profile_base_body(f"n{i}"))
    assert api.get("/connections", {"count": "true"}).json() == {"count": 3}
    assert api.get("/connections", {"count": "true", "property": "name==n1"}).json() == {"count": 1}


def _all_pages(api: Api, params: dict[str, str]) -> tuple[list[str], int]:
    """Every id of a listing, following ``_links.next.href`` alone, and the number of pages."""
    body = api.get("/flows", params).json()
    ids, pages = [item["id"] for item in body["items"]], 1
    while "_links" in body:
        body = api.get(body["_links"]["next"]["href"]).json()
        ids += [item["id"] for item in body["items"]]
        pages += 1
    return ids, pages


def test_a_sandboxs_destination_flows_are_counted_and_paged(api: Api) -> None:
    chain = create_chain(api)
    first = api.get(f"/flows/{chain.flow}").json()["items"][0]
    template = {k: first[k] for k in ("flowSpec", "sourceConnectionIds", "targetConnectionIds", "transformations")}
    created = {chain.flow} | {api.create("flows", {**template, "name": f"flow-{i:03}"})["id"] for i in range(104)}
    create_chain(api.in_sandbox("dev"))  # another sandbox's flows are not this one's
    assert api.get("/flows", {"property": DESTINATION_FLOWS, "count": "true"}).json() == {"count": 105}
    ids, pages = _all_pages(api, {"property": DESTINATION_FLOWS, "limit": "100"})
    assert pages == 2
    assert len(ids) == len(set(ids)) == 105 and set(ids) == created
    assert api.in_sandbox("dev").get("/flows", {"property": DESTINATION_FLOWS, "count": "true"}).json() == {"count": 1}


def test_the_destination_flow_filter_leaves_other_flows_out(tmp_path: Path) -> None:
    state = tmp_path / "emulator-state.json"
    with EmulatorServer(EmulatorConfig(state_file=state)) as server, httpx.Client(base_url=server.url) as http:
        api = Api(http, issue_token(http))
        destination = create_chain(api).flow
        ingestion_spec = api.get("/flowSpecs", {"property": "name==CloudStorageToAEP"}).json()["items"][0]["id"]
    # A source (ingestion) dataflow: the emulator's API cannot create one, so it is written into the state
    # file, as a copy of the destination flow with the flow spec and the inherited property of a source flow.
    document = json.loads(state.read_text(encoding="utf-8"))
    ingestion = copy.deepcopy(document["resources"]["flows"]["prod"][0])
    ingestion |= {"id": str(uuid.uuid4()), "name": "ingestion", "flowSpec": {"id": ingestion_spec, "version": "1.0"}}
    ingestion["inheritedAttributes"]["properties"]["isDestinationFlow"] = False
    document["resources"]["flows"]["prod"].append(ingestion)
    state.write_text(json.dumps(document), encoding="utf-8")
    with EmulatorServer(EmulatorConfig(state_file=state)) as server, httpx.Client(base_url=server.url) as http:
        api = Api(http, issue_token(http))
        assert {flow["id"] for flow in api.get("/flows").json()["items"]} == {destination, ingestion["id"]}
        assert _all_pages(api, {"property": DESTINATION_FLOWS, "limit": "1"}) == ([destination], 1)
        assert api.get("/flows", {"property": DESTINATION_FLOWS, "count": "true"}).json() == {"count": 1}
        others = api.get("/flows", {"property": "inheritedAttributes.properties.isDestinationFlow==false"})
        assert [flow["id"] for flow in others.json()["items"]] == [ingestion["id"]]

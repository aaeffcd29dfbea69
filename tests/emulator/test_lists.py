"""List semantics: property filters, orderby, limit, count, continuation tokens."""

from __future__ import annotations

from typing import Any

import pytest

from flowservice_emulator.catalog import ADOBE_CAMPAIGN, PROFILE_STORE

from .conftest import Api, campaign_s3_body, create_chain, flow_error_code, profile_base_body


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

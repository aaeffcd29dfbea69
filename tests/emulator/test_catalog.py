"""GET /connectionSpecs and /flowSpecs: the catalog the gateway looks specs up in."""

from __future__ import annotations

from typing import Any

import pytest

from flowservice_emulator.catalog import (
    ADOBE_CAMPAIGN,
    AMAZON_S3,
    ORACLE_ELOQUA,
    ORACLE_RESPONSYS,
    PROFILE_STORE,
    SALESFORCE_MARKETING_CLOUD,
    UPS_TO_CAMPAIGN,
    UPS_TO_RESPONSYS,
    UPS_TO_SFMC,
)

from .conftest import Api

EMAIL_DESTINATIONS = [ADOBE_CAMPAIGN, ORACLE_ELOQUA, ORACLE_RESPONSYS, SALESFORCE_MARKETING_CLOUD]


def _one(api: Api, path: str) -> dict[str, Any]:
    response = api.get(path)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert len(items) == 1
    return dict(items[0])


def test_catalog_is_large_enough_for_lookup_by_name(api: Api) -> None:
    specs = api.get("/connectionSpecs").json()["items"]
    assert len(specs) >= 25
    assert len({spec["id"] for spec in specs}) == len(specs)
    assert {PROFILE_STORE, *EMAIL_DESTINATIONS} <= {spec["id"] for spec in specs}


def test_filter_by_name_and_by_id(api: Api) -> None:
    by_name = api.get("/connectionSpecs", {"property": "name==Adobe Campaign"}).json()["items"]
    assert [spec["id"] for spec in by_name] == [ADOBE_CAMPAIGN]
    either = api.get("/connectionSpecs", {"property": f"id=={ORACLE_ELOQUA},{ORACLE_RESPONSYS}"}).json()["items"]
    assert {spec["id"] for spec in either} == {ORACLE_ELOQUA, ORACLE_RESPONSYS}
    both = api.get(
        "/connectionSpecs",
        [("property", "attributes.category==emailMarketing"), ("property", "attributes.isDestination==true")],
    ).json()["items"]
    assert {spec["id"] for spec in both} >= set(EMAIL_DESTINATIONS)
    assert all(spec["attributes"]["category"] == "emailMarketing" for spec in both)


def test_specs_page_like_other_lists(api: Api) -> None:
    first = api.get("/connectionSpecs", {"limit": 10}).json()
    assert len(first["items"]) == 10
    second = api.get("/connectionSpecs" + first["_links"]["next"]["href"].removeprefix("/connectionSpecs")).json()
    assert not {s["id"] for s in first["items"]} & {s["id"] for s in second["items"]}


def test_campaign_auth_and_target_specs(api: Api) -> None:
    spec = _one(api, f"/connectionSpecs/{ADOBE_CAMPAIGN}")
    assert spec["attributes"]["isDestination"] is True
    assert spec["attributes"]["category"] == "emailMarketing"
    auth = {item["name"]: item["spec"] for item in spec["authSpec"]}
    assert set(auth) == {"S3", "SFTP with Password", "SFTP with SSH Key", "Azure Blob"}
    assert auth["S3"]["required"] == ["accessId", "secretKey"]
    assert auth["SFTP with Password"]["required"] == ["domain", "username", "password"]
    assert auth["SFTP with Password"]["properties"]["port"]["type"] == "integer"
    assert set(auth["SFTP with SSH Key"]["properties"]) == {"domain", "host", "port", "username", "sshKey"}
    assert auth["Azure Blob"]["required"] == ["connectionString"]
    target = spec["targetSpec"]["spec"]
    assert target["properties"]["mode"]["enum"] == ["S3", "FTP", "AZURE_BLOB"]
    assert target["properties"]["format"]["enum"] == ["CSV"]


@pytest.mark.parametrize("spec_id", [ORACLE_ELOQUA, ORACLE_RESPONSYS, SALESFORCE_MARKETING_CLOUD])
def test_other_email_destinations_are_sftp_only(api: Api, spec_id: str) -> None:
    spec = _one(api, f"/connectionSpecs/{spec_id}")
    assert [item["name"] for item in spec["authSpec"]] == ["SFTP with Password", "SFTP with SSH Key"]
    assert spec["targetSpec"]["spec"]["properties"]["mode"]["enum"] == ["FTP"]


def test_profile_store_is_a_source(api: Api) -> None:
    spec = _one(api, f"/connectionSpecs/{PROFILE_STORE}")
    assert spec["attributes"]["isSource"] is True
    assert spec["authSpec"] == []


@pytest.mark.parametrize(
    ("flow_spec", "target"),
    [
        (UPS_TO_CAMPAIGN, ADOBE_CAMPAIGN),
        (UPS_TO_CAMPAIGN, ORACLE_ELOQUA),
        (UPS_TO_RESPONSYS, ORACLE_RESPONSYS),
        (UPS_TO_SFMC, SALESFORCE_MARKETING_CLOUD),
    ],
)
def test_flow_specs_link_profile_store_to_email_destinations(api: Api, flow_spec: str, target: str) -> None:
    spec = _one(api, f"/flowSpecs/{flow_spec}")
    assert spec["sourceConnectionSpecIds"] == [PROFILE_STORE]
    assert target in spec["targetConnectionSpecIds"]


def test_flow_spec_lookup_by_target_uses_array_filters(api: Api) -> None:
    found = api.get("/flowSpecs", {"property": f"targetConnectionSpecIds[]=={AMAZON_S3}"}).json()["items"]
    assert {spec["name"] for spec in found} == {"upsToAmazonS3", "datasetExportToAmazonS3"}
    assert _one(api, "/flowSpecs?property=name==upsToCampaign")["id"] == UPS_TO_CAMPAIGN


def test_unknown_spec_is_404(api: Api) -> None:
    response = api.get("/connectionSpecs/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["type"].endswith("FLOW-1439-404")

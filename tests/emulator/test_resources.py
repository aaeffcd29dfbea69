"""Connections, source and target connections and flows: shapes, validation, etags, deletion."""

from __future__ import annotations

from typing import Any

import pytest

from flowservice_emulator.catalog import ADOBE_CAMPAIGN, ORACLE_ELOQUA, PROFILE_STORE, UPS_TO_CAMPAIGN, UPS_TO_RESPONSYS

from .conftest import (
    Api,
    campaign_s3_body,
    create_chain,
    flow_error_code,
    profile_base_body,
    spec_ref,
)

METADATA = {
    "id",
    "createdAt",
    "updatedAt",
    "createdBy",
    "updatedBy",
    "createdClient",
    "updatedClient",
    "sandboxId",
    "sandboxName",
    "imsOrgId",
    "state",
    "version",
    "etag",
}


def _get(api: Api, kind: str, resource_id: str) -> dict[str, Any]:
    response = api.get(f"/{kind}/{resource_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["items"][0])


def test_create_returns_201_id_quoted_etag_and_location(api: Api) -> None:
    response = api.post("/connections", profile_base_body())
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "etag"}
    assert body["etag"].startswith('"') and body["etag"].endswith('"')
    assert response.headers["location"].endswith(f"/connections/{body['id']}")


def test_get_wraps_the_object_in_items_with_metadata(api: Api) -> None:
    created = api.create("connections", profile_base_body())
    obj = _get(api, "connections", created["id"])
    assert set(obj) >= METADATA
    assert isinstance(obj["createdAt"], int) and obj["createdAt"] > 10**12  # epoch milliseconds
    assert obj["version"] == obj["etag"] == created["etag"]
    assert obj["state"] == "enabled"
    assert obj["sandboxName"] == "prod"
    assert obj["createdClient"] == api.client_id


def test_server_adds_inherited_attributes_and_type_info(api: Api) -> None:
    chain = create_chain(api)
    source = _get(api, "sourceConnections", chain.source)
    assert source["typeInfo"] == {"type": "ProfileFragments", "id": "ups"}
    assert source["inheritedAttributes"]["baseConnection"] == {
        "id": chain.source_base,
        "connectionSpec": spec_ref(PROFILE_STORE),
    }
    target = _get(api, "targetConnections", chain.target)
    assert target["inheritedAttributes"]["baseConnection"]["id"] == chain.destination_base
    flow = _get(api, "flows", chain.flow)
    inherited = flow["inheritedAttributes"]
    assert inherited["properties"] == {"isDestinationFlow": True}
    assert inherited["sourceConnections"][0]["baseConnection"]["id"] == chain.source_base
    assert inherited["targetConnections"][0]["connectionSpec"] == spec_ref(ADOBE_CAMPAIGN)


def test_secrets_are_masked_on_get_list_and_state(api: Api) -> None:
    sftp = {
        "name": "sftp",
        "connectionSpec": spec_ref(ORACLE_ELOQUA),
        "auth": {
            "specName": "SFTP with SSH Key",
            "params": {"domain": "sftp.example.com", "username": "u", "sshKey": "LS0tLS1CRUdJTi1LRVk="},
        },
    }
    ids = [api.create("connections", campaign_s3_body())["id"], api.create("connections", sftp)["id"]]
    s3 = _get(api, "connections", ids[0])["auth"]["params"]
    assert s3["secretKey"] == "***" and s3["accessId"] == "AKIAEXAMPLE"
    assert "authorizedDate" in s3
    listed = str(api.get("/connections").json()) + str(api.http.get("/_emulator/state").json()["resources"])
    assert "shh" not in listed and "LS0tLS1CRUdJTi1LRVk=" not in listed
    assert _get(api, "connections", ids[1])["auth"]["params"]["sshKey"] == "***"


def test_unknown_spec_id_is_1413(api: Api) -> None:
    body = {"name": "x", "connectionSpec": spec_ref("00000000-1111-2222-3333-444444444444")}
    response = api.post("/connections", body)
    assert response.status_code == 400
    assert flow_error_code(response) == "1413-400"
    assert response.json()["message"] == "Please provide a valid spec id"


def test_missing_spec_version_is_422(api: Api) -> None:
    response = api.post("/connections", {"name": "x", "connectionSpec": {"id": PROFILE_STORE}})
    assert response.status_code == 422


def test_missing_name_is_422(api: Api) -> None:
    assert api.post("/connections", {"connectionSpec": spec_ref(PROFILE_STORE)}).status_code == 422


def test_empty_body_is_1405(api: Api) -> None:
    response = api.http.post(
        "/data/foundation/flowservice/connections",
        content=b"",
        headers=api.headers(**{"Content-Type": "application/json"}),
    )
    assert flow_error_code(response) == "1405-400"


def test_wrong_auth_spec_name_is_1415(api: Api) -> None:
    body = campaign_s3_body()
    body["connectionSpec"] = spec_ref(ORACLE_ELOQUA)  # Eloqua has no S3 auth spec
    response = api.post("/connections", body)
    assert response.status_code == 400
    assert flow_error_code(response) == "1415-400"


@pytest.mark.parametrize(
    ("spec_name", "params", "missing"),
    [
        ("S3", {"accessId": "a"}, "secretKey"),
        ("SFTP with Password", {"domain": "d", "username": "u"}, "password"),
        ("SFTP with SSH Key", {"domain": "d", "sshKey": "k"}, "username"),
        ("Azure Blob", {}, "connectionString"),
    ],
)
def test_required_auth_params(api: Api, spec_name: str, params: dict[str, str], missing: str) -> None:
    body = {"name": "x", "connectionSpec": spec_ref(ADOBE_CAMPAIGN), "auth": {"specName": spec_name, "params": params}}
    response = api.post("/connections", body)
    assert response.status_code == 400
    assert missing in response.json()["errorMessage"]


def test_auth_param_types_are_checked(api: Api) -> None:
    body = {
        "name": "x",
        "connectionSpec": spec_ref(ADOBE_CAMPAIGN),
        "auth": {
            "specName": "SFTP with Password",
            "params": {"domain": "d", "username": "u", "password": "p", "port": "22"},
        },
    }
    assert api.post("/connections", body).status_code == 400
    body["auth"]["params"]["port"] = 22
    assert api.post("/connections", body).status_code == 201


def _target(base: str, spec_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "t",
        "baseConnectionId": base,
        "connectionSpec": spec_ref(spec_id),
        "data": {"format": "json", "schema": {"id": "1.0", "version": "1.0"}},
        "params": params,
    }


@pytest.mark.parametrize(
    ("params", "ok"),
    [
        ({"mode": "S3", "bucketName": "b", "path": "p", "format": "CSV"}, True),
        ({"mode": "S3", "path": "p", "format": "CSV"}, False),
        ({"mode": "FTP", "remotePath": "/in", "format": "CSV"}, True),
        ({"mode": "FTP", "format": "CSV"}, False),
        ({"mode": "AZURE_BLOB", "container": "c", "path": "p", "format": "CSV"}, True),
        ({"mode": "AZURE_BLOB", "container": "c", "format": "CSV"}, False),
        ({"mode": "GCS", "bucketName": "b", "path": "p", "format": "CSV"}, False),
        ({"mode": "S3", "bucketName": "b", "path": "p", "format": "JSON"}, False),
    ],
)
def test_target_params_per_mode(api: Api, params: dict[str, Any], ok: bool) -> None:
    base = api.create("connections", campaign_s3_body())["id"]
    response = api.post("/targetConnections", _target(base, ADOBE_CAMPAIGN, params))
    assert response.status_code == (201 if ok else 400), response.text


def test_eloqua_only_accepts_ftp_mode(api: Api) -> None:
    sftp = {
        "name": "e",
        "connectionSpec": spec_ref(ORACLE_ELOQUA),
        "auth": {"specName": "SFTP with Password", "params": {"domain": "d", "username": "u", "password": "p"}},
    }
    base = api.create("connections", sftp)["id"]
    s3 = {"mode": "S3", "bucketName": "b", "path": "p", "format": "CSV"}
    assert api.post("/targetConnections", _target(base, ORACLE_ELOQUA, s3)).status_code == 400
    ftp = {"mode": "FTP", "remotePath": "/in", "format": "CSV"}
    assert api.post("/targetConnections", _target(base, ORACLE_ELOQUA, ftp)).status_code == 201


def test_target_base_connection_must_exist_and_match(api: Api) -> None:
    ftp = {"mode": "FTP", "remotePath": "/in", "format": "CSV"}
    missing = api.post("/targetConnections", _target("no-such-id", ADOBE_CAMPAIGN, ftp))
    assert missing.status_code == 400
    profile_base = api.create("connections", profile_base_body())["id"]
    mismatch = api.post("/targetConnections", _target(profile_base, ADOBE_CAMPAIGN, ftp))
    assert mismatch.status_code == 400
    assert "connection spec" in mismatch.json()["errorMessage"]


def test_source_base_connection_must_have_the_same_spec(api: Api) -> None:
    destination_base = api.create("connections", campaign_s3_body())["id"]
    body = {
        "name": "s",
        "baseConnectionId": destination_base,
        "connectionSpec": spec_ref(PROFILE_STORE),
        "data": {"format": "CSV", "schema": None},
        "params": {},
    }
    assert api.post("/sourceConnections", body).status_code == 400


def test_flow_connections_must_fit_the_flow_spec(api: Api) -> None:
    chain = create_chain(api)
    body = {
        "name": "f",
        "flowSpec": spec_ref(UPS_TO_RESPONSYS),
        "sourceConnectionIds": [chain.source],
        "targetConnectionIds": [chain.target],
        "transformations": [],
    }
    response = api.post("/flows", body)
    assert response.status_code == 400
    assert "flow spec" in response.json()["errorMessage"]
    body["flowSpec"] = spec_ref(UPS_TO_CAMPAIGN)
    body["targetConnectionIds"] = ["missing-target"]
    assert api.post("/flows", body).status_code == 400
    body["targetConnectionIds"] = [chain.source]  # a source connection is not a target connection
    assert api.post("/flows", body).status_code == 400
    body["targetConnectionIds"] = [chain.target]
    body["flowSpec"] = spec_ref("71471eba-0000-0000-0000-000000000000")
    assert flow_error_code(api.post("/flows", body)) == "1413-400"


def test_state_is_not_allowed_when_creating_a_flow(api: Api) -> None:
    chain = create_chain(api)
    body = {
        "name": "f",
        "flowSpec": spec_ref(UPS_TO_CAMPAIGN),
        "sourceConnectionIds": [chain.source],
        "targetConnectionIds": [chain.target],
        "transformations": [],
        "state": "enabled",
    }
    assert flow_error_code(api.post("/flows", body)) == "1410-400"


def test_patch_requires_if_match(api: Api) -> None:
    chain = create_chain(api)
    response = api.patch(f"/flows/{chain.flow}", [{"op": "replace", "path": "/name", "value": "n"}], None)
    assert response.status_code == 400
    assert flow_error_code(response) == "1403-400"


@pytest.mark.parametrize("transform", [lambda etag: etag.strip('"'), lambda etag: '"0000-stale"'])
def test_stale_or_unquoted_etag_is_412(api: Api, transform: Any) -> None:
    chain = create_chain(api)
    sent = transform(chain.flow_etag)
    response = api.patch(f"/flows/{chain.flow}", [{"op": "replace", "path": "/name", "value": "n"}], sent)
    assert response.status_code == 412
    body = response.json()
    assert flow_error_code(response) == "1404-412"
    assert body["errorMessage"] == (
        f"Supplied version=[{sent}] does not match the current version on entity=[{chain.flow_etag}]"
    )
    assert body["errorDetails"] == body["errorMessage"]


def test_patch_returns_a_new_etag_and_the_old_one_goes_stale(api: Api) -> None:
    chain = create_chain(api)
    first = api.patch(f"/flows/{chain.flow}", [{"op": "REPLACE", "path": "/name", "value": "renamed"}], chain.flow_etag)
    assert first.status_code == 200
    assert set(first.json()) == {"id", "etag"}
    assert first.json()["etag"] != chain.flow_etag
    assert _get(api, "flows", chain.flow)["name"] == "renamed"
    again = api.patch(f"/flows/{chain.flow}", [{"op": "replace", "path": "/name", "value": "x"}], chain.flow_etag)
    assert again.status_code == 412


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ([{"op": "move", "from": "/name", "path": "/description", "value": "x"}], "1434-400"),
        ([{"op": "test", "path": "/name", "value": "flow"}], "1434-400"),
        ([{"op": "replace", "path": "/name"}], "1455-400"),
        ([{"op": "replace", "path": "/id", "value": "x"}], "1455-400"),
        ([{"op": "replace", "path": "/transformations/7/name", "value": "x"}], "1455-400"),
    ],
)
def test_invalid_patches(api: Api, ops: list[dict[str, Any]], code: str) -> None:
    chain = create_chain(api)
    assert flow_error_code(api.patch(f"/flows/{chain.flow}", ops, chain.flow_etag)) == code


def test_connection_spec_cannot_be_patched(api: Api) -> None:
    created = api.create("connections", campaign_s3_body())
    ops = [{"op": "replace", "path": "/connectionSpec", "value": spec_ref(ORACLE_ELOQUA)}]
    assert flow_error_code(api.patch(f"/connections/{created['id']}", ops, created["etag"])) == "1414-400"


def test_patching_credentials_revalidates_and_accepts_trailing_slash(api: Api) -> None:
    created = api.create("connections", campaign_s3_body())
    bad = [{"op": "replace", "path": "/auth/params", "value": {"accessId": "only"}}]
    assert flow_error_code(api.patch(f"/connections/{created['id']}", bad, created["etag"])) == "1455-400"
    good = {"op": "replace", "path": "/auth/params", "value": {"accessId": "new", "secretKey": "new-secret"}}
    response = api.patch(f"/connections/{created['id']}/", good, created["etag"])  # single object, Sources form
    assert response.status_code == 200, response.text
    assert _get(api, "connections", created["id"])["auth"]["params"]["accessId"] == "new"


def _selector(**overrides: Any) -> dict[str, Any]:
    value = {
        "id": "seg-1",
        "name": "Audience",
        "filenameTemplate": "%DESTINATION_NAME%_%SEGMENT_ID%",
        "exportMode": "DAILY_FULL_EXPORT",
        "schedule": {"frequency": "DAILY", "triggerType": "SCHEDULED", "startDate": "2026-01-01", "startTime": "23:00"},
    }
    schedule = overrides.pop("schedule", {})
    value["schedule"].update(schedule)
    value.update(overrides)
    return {
        "op": "add",
        "path": "/transformations/0/params/segmentSelectors/selectors/-",
        "value": {"type": "PLATFORM_SEGMENT", "value": value},
    }


@pytest.mark.parametrize(
    ("overrides", "ok"),
    [
        ({}, True),
        ({"schedule": {"frequency": "WEEKLY"}}, True),
        ({"schedule": {"frequency": "MONTHLY"}}, True),
        (
            {
                "exportMode": "FIRST_FULL_THEN_INCREMENTAL",
                "schedule": {"frequency": "EVERY_3_HOURS", "triggerType": None},
            },
            True,
        ),
        ({"exportMode": "FIRST_FULL_THEN_INCREMENTAL", "schedule": {"frequency": "ONCE", "triggerType": None}}, False),
        ({"exportMode": "DAILY_FULL_EXPORT", "schedule": {"frequency": "EVERY_6_HOURS"}}, False),
        ({"exportMode": "HOURLY"}, False),
        ({"schedule": {"triggerType": "AFTER_SEGMENT_EVAL"}}, False),  # startTime is still set
        ({"schedule": {"triggerType": "AFTER_SEGMENT_EVAL", "startTime": None}}, True),
        ({"schedule": {"startTime": None}}, False),  # SCHEDULED without startTime
        ({"schedule": {"startTime": "25:00"}}, False),
        ({"schedule": {"startDate": "2026-13-01"}}, False),
        ({"schedule": {"frequency": "ONCE", "endDate": "2026-02-01"}}, False),
        ({"filenameTemplate": "%SEGMENT_ID%.csv"}, False),
        ({"filenameTemplate": None, "fileNameTemplate": "%DESTINATION_NAME%-%SEGMENT_ID%"}, True),
    ],
)
def test_selector_rules(api: Api, overrides: dict[str, Any], ok: bool) -> None:
    chain = create_chain(api)
    op = _selector(**overrides)
    value = op["value"]["value"]
    value["schedule"] = {k: v for k, v in value["schedule"].items() if v is not None}
    op["value"]["value"] = {k: v for k, v in value.items() if v is not None}
    response = api.patch(f"/flows/{chain.flow}", [op], chain.flow_etag)
    if ok:
        assert response.status_code == 200, response.text
    else:
        assert flow_error_code(response) == "1455-400", response.text


def test_selector_server_fields(api: Api) -> None:
    chain = create_chain(api)
    profile = {
        "op": "add",
        "path": "/transformations/0/params/profileSelectors/selectors/-",
        "value": {"type": "JSON_PATH", "value": {"path": "person.lastName"}},
    }
    assert api.patch(f"/flows/{chain.flow}", [_selector(), profile], chain.flow_etag).status_code == 200
    params = _get(api, "flows", chain.flow)["transformations"][0]["params"]
    segment = params["segmentSelectors"]["selectors"][0]["value"]
    assert segment["createTime"].isdigit() and segment["updateTime"].isdigit()
    profile_value = params["profileSelectors"]["selectors"][0]["value"]
    assert profile_value["operator"] == "EXISTS"
    assert profile_value["mapping"]["sourceType"] == "text/x.schema-path"


def test_delete_is_202_then_404(api: Api) -> None:
    chain = create_chain(api)
    response = api.delete(f"/flows/{chain.flow}")
    assert response.status_code == 202
    assert response.content == b""
    gone = api.get(f"/flows/{chain.flow}")
    assert gone.status_code == 404
    body = gone.json()
    assert body["type"] == "https://ns.adobe.com/aep/errors/FLOW-1439-404"
    assert body["report"]["request-id"] == gone.headers["x-request-id"]
    assert api.delete(f"/flows/{chain.flow}").status_code == 404


def test_base_connection_used_by_a_flow_cannot_be_deleted(api: Api) -> None:
    chain = create_chain(api)
    for base in (chain.destination_base, chain.source_base):
        response = api.delete(f"/connections/{base}")
        assert response.status_code == 400
        assert flow_error_code(response) == "1418-400"
    assert api.delete(f"/flows/{chain.flow}").status_code == 202
    assert api.delete(f"/connections/{chain.destination_base}/").status_code == 202  # trailing-slash form too
    assert api.get(f"/connections/{chain.destination_base}").status_code == 404


def test_sandboxes_are_isolated(api: Api) -> None:
    created = api.create("connections", profile_base_body())
    dev = api.in_sandbox("dev")
    assert dev.get(f"/connections/{created['id']}").status_code == 404
    assert dev.get("/connections").json()["items"] == []
    dev.create("connections", profile_base_body("dev one"))
    default = api.in_sandbox(None)  # no x-sandbox-name header: prod
    assert [c["name"] for c in default.get("/connections").json()["items"]] == ["Profile store"]
    counts = api.http.get("/_emulator/state").json()["counts"]["connections"]
    assert counts == {"prod": 1, "dev": 1}


def test_flow_actions_change_state_and_etag(api: Api) -> None:
    chain = create_chain(api)
    response = api.http.post(
        f"/data/foundation/flowservice/flows/{chain.flow}/action", params={"op": "disable"}, headers=api.headers()
    )
    assert response.status_code == 200
    assert response.json()["etag"] != chain.flow_etag
    assert _get(api, "flows", chain.flow)["state"] == "disabled"


def test_runs_list_is_available(api: Api) -> None:
    response = api.get("/runs", {"property": "flowId==abc"})
    assert response.status_code == 200
    assert response.json() == {"items": []}

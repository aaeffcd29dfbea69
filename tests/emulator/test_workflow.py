"""The email-marketing activation of flow-service.md Part 2 §8.1, checked against Adobe's documents."""

from __future__ import annotations

from typing import Any

import pytest

from flowservice_emulator.catalog import ADOBE_CAMPAIGN, ORACLE_ELOQUA, PROFILE_STORE
from tests.support.adobe_contract import adobe_documents, assert_exchanges_valid  # noqa: F401 - a fixture

from .conftest import Api, spec_ref

S3 = (
    {"specName": "S3", "params": {"accessId": "AKIAEXAMPLE", "secretKey": "secret"}},
    {"mode": "S3", "bucketName": "acme-exports", "path": "audiences", "format": "CSV", "includeFileManifest": True},
)
SFTP_PASSWORD = (
    {
        "specName": "SFTP with Password",
        "params": {"domain": "sftp.example.com", "port": 22, "username": "acme", "password": "pw"},
    },
    {"mode": "FTP", "remotePath": "/incoming", "format": "CSV"},
)
SFTP_SSH_KEY = (
    {
        "specName": "SFTP with SSH Key",
        "params": {"domain": "sftp.example.com", "username": "acme", "sshKey": "LS0tLS1CRUdJTg=="},
    },
    {"mode": "FTP", "remotePath": "/incoming", "format": "CSV"},
)


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@pytest.mark.usefixtures("adobe_documents")  # the exchanges are checked against Adobe's documents at the end
@pytest.mark.parametrize(
    ("destination", "auth", "target_params"),
    [
        ("Adobe Campaign", *S3),
        ("Adobe Campaign", *SFTP_PASSWORD),
        ("Oracle Eloqua", *SFTP_SSH_KEY),
    ],
    ids=["campaign-s3", "campaign-sftp-password", "eloqua-sftp-ssh-key"],
)
def test_email_marketing_activation(
    api: Api, destination: str, auth: dict[str, Any], target_params: dict[str, Any]
) -> None:
    # 1. Pick the destination's connection spec by name.
    specs = _ok(api.get("/connectionSpecs", {"property": f"name=={destination}"}), 200)["items"]
    destination_spec = specs[0]["id"]
    assert destination_spec in (ADOBE_CAMPAIGN, ORACLE_ELOQUA)
    # 2. Profile-store base connection, 3. source connection.
    source_base = _ok(
        api.post(
            "/connections", {"name": "Profile store", "description": "ups", "connectionSpec": spec_ref(PROFILE_STORE)}
        ),
        201,
    )["id"]
    source = _ok(
        api.post(
            "/sourceConnections",
            {
                "name": "Profile source",
                "description": "ups",
                "baseConnectionId": source_base,
                "data": {"format": "CSV", "schema": None},
                "params": {},
                "connectionSpec": spec_ref(PROFILE_STORE),
            },
        ),
        201,
    )["id"]
    # 4. Destination base connection, 5. target connection.
    destination_base = _ok(
        api.post(
            "/connections",
            {
                "name": f"{destination} account",
                "description": "dest",
                "auth": auth,
                "connectionSpec": spec_ref(destination_spec),
            },
        ),
        201,
    )["id"]
    target = _ok(
        api.post(
            "/targetConnections",
            {
                "name": f"{destination} target",
                "description": "dest",
                "baseConnectionId": destination_base,
                "data": {"format": "json", "schema": {"id": "1.0", "version": "1.0"}},
                "params": target_params,
                "connectionSpec": spec_ref(destination_spec),
            },
        ),
        201,
    )["id"]
    # 6. The flow, with the flow spec whose source and target specs match.
    flow_specs = _ok(api.get("/flowSpecs", {"property": f"targetConnectionSpecIds[]=={destination_spec}"}), 200)
    flow_spec = next(spec for spec in flow_specs["items"] if PROFILE_STORE in spec["sourceConnectionSpecIds"])
    assert flow_spec["name"].startswith("upsTo")
    created = _ok(
        api.post(
            "/flows",
            {
                "name": f"Activate to {destination}",
                "description": "audiences",
                "flowSpec": spec_ref(flow_spec["id"]),
                "sourceConnectionIds": [source],
                "targetConnectionIds": [target],
                "transformations": [
                    {
                        "name": "GeneralTransform",
                        "params": {"segmentSelectors": {"selectors": []}, "profileSelectors": {"selectors": []}},
                    }
                ],
            },
        ),
        201,
    )
    # 7. Activate audiences and attributes.
    patch = [
        {
            "op": "add",
            "path": "/transformations/0/params/segmentSelectors/selectors/-",
            "value": {
                "type": "PLATFORM_SEGMENT",
                "value": {
                    "id": "5d9f7fa1-0c47-4c2b-b3a6-6ce36a7d1d80",
                    "name": "Loyal customers",
                    "description": "",
                    "filenameTemplate": "%DESTINATION_NAME%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%",
                    "exportMode": "DAILY_FULL_EXPORT",
                    "schedule": {
                        "frequency": "ONCE",
                        "triggerType": "SCHEDULED",
                        "startDate": "2026-07-22",
                        "startTime": "23:00",
                    },
                },
            },
        },
        {
            "op": "add",
            "path": "/transformations/0/params/profileSelectors/selectors/-",
            "value": {"type": "JSON_PATH", "value": {"path": "person.lastName"}},
        },
        {
            "op": "add",
            "path": "/transformations/0/params/profileSelectors/selectors/-",
            "value": {"type": "JSON_PATH", "value": {"path": "personalEmail.address", "operator": "EXISTS"}},
        },
    ]
    patched = _ok(api.patch(f"/flows/{created['id']}", patch, created["etag"]), 200)
    assert patched["etag"] != created["etag"]
    # 8. Check the flow.
    flow = _ok(api.get(f"/flows/{created['id']}"), 200)["items"][0]
    params = flow["transformations"][0]["params"]
    assert [s["value"]["id"] for s in params["segmentSelectors"]["selectors"]] == [
        "5d9f7fa1-0c47-4c2b-b3a6-6ce36a7d1d80"
    ]
    assert [s["value"]["path"] for s in params["profileSelectors"]["selectors"]] == [
        "person.lastName",
        "personalEmail.address",
    ]
    assert flow["etag"] == patched["etag"]
    # Every call above, as recorded by the emulator, must satisfy Adobe's published contract.
    for kind, resource_id in [
        ("connections", source_base),
        ("sourceConnections", source),
        ("connections", destination_base),
        ("targetConnections", target),
    ]:
        _ok(api.get(f"/{kind}/{resource_id}"), 200)
    history = api.http.get("/_emulator/requests").json()["items"]
    assert len(history) == 14  # IMS token, the 7 steps, GET flowSpecs, GET flow, 4 GETs by id
    assert_exchanges_valid(history)

"""The whole saga, end to end: the gateway subprocess against the emulator over real HTTP, on real
PostgreSQL. Every upstream exchange is validated against Adobe's OpenAPI documents."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import ADOBE_CLIENT_ID, ADOBE_ORG_ID, wait_terminal
from tests.support.adobe_contract import adobe_documents, validate_exchange  # noqa: F401 - a fixture
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request, sftp_password_request, sftp_ssh_request

KINDS = ("connections", "sourceConnections", "targetConnections", "flows")
BASE = "/data/foundation/flowservice"


def emulator_state(emulator: EmulatorServer) -> dict[str, Any]:
    response = httpx.get(f"{emulator.url}/_emulator/state")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def resources_of(
    emulator: EmulatorServer, activation_id: str, sandbox: str = "prod"
) -> dict[str, list[dict[str, Any]]]:
    resources = emulator_state(emulator)["resources"]
    return {
        kind: [r for r in resources.get(kind, {}).get(sandbox, []) if activation_id in str(r.get("name", ""))]
        for kind in KINDS
    }


def flow_service_requests(emulator: EmulatorServer) -> list[dict[str, Any]]:
    history = emulator_state(emulator)["requests"]
    return [entry for entry in history if entry["path"].startswith(BASE)]


def activate(
    gateway: GatewayProcess, body: dict[str, Any], key: str | None = None
) -> tuple[httpx.Response, dict[str, Any]]:
    with gateway.client() as client:
        response = client.post("/activations", json=body, headers={"Idempotency-Key": key or new_key()})
        assert response.status_code == 202, response.text
        final = wait_terminal(client, response.json()["id"])
    return response, final


def assert_one_of_each(emulator: EmulatorServer, activation_id: str) -> dict[str, list[dict[str, Any]]]:
    found = resources_of(emulator, activation_id)
    # Two base connections (Profile store and destination), one of everything else.
    assert len(found["connections"]) == 2, found["connections"]
    assert len(found["sourceConnections"]) == 1
    assert len(found["targetConnections"]) == 1
    assert len(found["flows"]) == 1
    return found


def assert_flow_lists(flow: dict[str, Any], body: dict[str, Any]) -> None:
    params = flow["transformations"][0]["params"]
    segment_ids = [s["value"]["id"] for s in params["segmentSelectors"]["selectors"]]
    paths = [s["value"]["path"] for s in params["profileSelectors"]["selectors"]]
    assert sorted(segment_ids) == sorted(s["id"] for s in body["segments"])
    assert sorted(paths) == sorted(body["attributes"])


@pytest.mark.parametrize(
    "make_body", [s3_request, sftp_password_request, sftp_ssh_request], ids=["s3", "sftp-password", "sftp-ssh-key"]
)
def test_activation_succeeds_with_exactly_one_resource_of_each_kind(
    gateway: GatewayProcess, emulator: EmulatorServer, make_body: Any
) -> None:
    body = make_body()
    accepted, final = activate(gateway, body)

    assert accepted.headers["location"] == f"/activations/{final['id']}"
    assert final["status"] == "succeeded", final
    assert [s["status"] for s in final["steps"]] == ["succeeded"] * 8
    assert final["destination"]["connectionSpecId"] == "0b23e41a-cb4a-4321-a78f-3b654f5d7d97"
    found = assert_one_of_each(emulator, final["id"])
    assert_flow_lists(found["flows"][0], body)
    assert final["flow"]["id"] == found["flows"][0]["id"]
    step_resources = {s["name"]: s["resourceId"] for s in final["steps"]}
    assert step_resources["create_flow"] == found["flows"][0]["id"]
    assert step_resources["create_target_connection"] == found["targetConnections"][0]["id"]
    # No secret comes back, and the access id is masked.
    text = accepted.text + str(final)
    for secret in ("secretKey", "password", "sshKey"):
        value = body["storage"].get(secret)
        assert value is None or value not in text
    if body["storage"]["type"] == "s3":
        assert final["storage"]["accessId"] == "AKIA…MPLE"


@pytest.mark.usefixtures("adobe_documents")
def test_every_upstream_request_follows_adobe_rules(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    _, final = activate(gateway, s3_request())
    assert final["status"] == "succeeded"
    requests = flow_service_requests(emulator)
    # 5 creates, the PATCH and the verifying GET at least (the spec catalog may already be cached).
    assert len(requests) >= 7
    problems = {f"{e['method']} {e['path']}": validate_exchange(e) for e in requests}
    assert {k: v for k, v in problems.items() if v} == {}
    request_ids = [e["headers"].get("x-request-id") for e in requests]
    assert all(request_ids) and len(set(request_ids)) == len(request_ids), "each call has its own x-request-id"
    for entry in requests:
        headers = entry["headers"]
        assert headers["x-api-key"] == ADOBE_CLIENT_ID
        assert headers["x-gw-ims-org-id"] == ADOBE_ORG_ID
        assert headers["x-sandbox-name"] == "prod"
        assert headers["authorization"].startswith("Bearer ")
        if entry["body"] is not None:
            assert headers["content-type"] == "application/json"
    create_flow = next(e for e in requests if e["method"] == "POST" and e["path"].endswith("/flows"))
    patch = next(e for e in requests if e["method"] == "PATCH")
    etag = create_flow["responseBody"]["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert patch["headers"]["if-match"] == etag, "If-Match carries the etag exactly as received, quotes included"
    assert patch["path"].endswith(f"/flows/{final['flow']['id']}")


def test_destination_lookup_is_case_insensitive(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    _, final = activate(gateway, s3_request(destination="  aDoBe cAMPAIGN "))
    assert final["status"] == "succeeded", final
    assert final["destination"]["name"] == "Adobe Campaign"
    assert_one_of_each(emulator, final["id"])


def refused(gateway: GatewayProcess, body: dict[str, Any]) -> dict[str, Any]:
    """The one field error of a 422 (the catalog check of contract §15)."""
    with gateway.client() as client:
        response = client.post("/activations", json=body, headers={"Idempotency-Key": new_key()})
        listed = client.get("/activations").json()["items"]
    assert response.status_code == 422, response.text
    assert listed == [], "nothing was accepted"
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


def test_unknown_destination_fails_clearly_and_creates_nothing(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    # Refused before it is accepted (the saga's own refusal, while the catalog cannot be read at
    # accept time, is in test_destinations.py).
    error = refused(gateway, s3_request(destination="Carrier Pigeon Marketing"))
    assert error["path"] == "/destination"
    assert "Adobe Campaign" in error["message"], "the valid names are listed"
    creates = [e for e in flow_service_requests(emulator) if e["method"] != "GET"]
    assert creates == []


def test_destination_without_the_storage_kind_fails(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    # Oracle Eloqua accepts SFTP only.
    error = refused(gateway, s3_request(destination="Oracle Eloqua"))
    assert error["path"] == "/storage/type" and "sftp" in error["message"]
    assert [e for e in flow_service_requests(emulator) if e["method"] != "GET"] == []


def test_sftp_to_eloqua_uses_its_own_flow_spec(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    _, final = activate(gateway, sftp_password_request(destination="Oracle Eloqua"))
    assert final["status"] == "succeeded", final
    assert final["destination"]["connectionSpecId"] == "c1e44b6b-e7c8-404b-9031-58f0ef760604"
    assert_one_of_each(emulator, final["id"])


def test_sandbox_is_sent_and_isolated(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    _, final = activate(gateway, s3_request(sandbox="dev"))
    assert final["status"] == "succeeded", final
    assert all(len(v) == 0 for v in resources_of(emulator, final["id"], "prod").values())
    assert len(resources_of(emulator, final["id"], "dev")["flows"]) == 1
    assert {e["headers"]["x-sandbox-name"] for e in flow_service_requests(emulator)} == {"dev"}

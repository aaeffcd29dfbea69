"""Adobe I/O gateway header rules and the IMS token endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from flowservice_emulator import EmulatorConfig, EmulatorServer

from .conftest import BASE, ORG, Api, issue_token, profile_base_body


def test_missing_token_is_401_oauth_token_not_valid(api: Api) -> None:
    headers = api.headers()
    del headers["Authorization"]
    response = api.http.get(BASE + "/connections", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error_code": "401013", "message": "Oauth token is not valid"}


def test_unknown_token_is_401(api: Api) -> None:
    response = api.get("/connections", Authorization="Bearer not-a-token")
    assert response.status_code == 401
    assert response.json()["error_code"] == "401013"


def test_expired_tokens_are_refused(api: Api) -> None:
    assert api.get("/connections").status_code == 200
    assert api.http.post("/_emulator/tokens/expire").json() == {"expired": 1}
    response = api.get("/connections")
    assert response.status_code == 401
    assert response.json() == {"error_code": "401013", "message": "Oauth token is not valid"}
    # A new token works again: that is how a client recovers.
    assert Api(api.http, issue_token(api.http)).get("/connections").status_code == 200


def test_api_key_must_match_the_token_client(api: Api) -> None:
    response = api.get("/connections", **{"x-api-key": "someone-else"})
    assert response.status_code == 403
    assert response.json() == {"error_code": "403003", "message": "Api Key is invalid"}


def test_missing_api_key_is_403000(api: Api) -> None:
    headers = api.headers()
    del headers["x-api-key"]
    response = api.http.get(BASE + "/connections", headers=headers)
    assert response.status_code == 403
    assert response.json()["error_code"] == "403000"


def test_missing_org_header_is_400003(api: Api) -> None:
    headers = api.headers()
    del headers["x-gw-ims-org-id"]
    response = api.http.get(BASE + "/connections", headers=headers)
    assert response.status_code == 400
    assert response.json()["error_code"] == "400003"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_bodies_must_be_application_json(api: Api, content_type: str | None) -> None:
    headers = api.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = api.http.post(BASE + "/connections", content=b'{"name": "x"}', headers=headers)
    assert response.status_code == 400
    assert response.json() == {
        "type": "/placeholder/type/uri",
        "status": 400,
        "title": "BadRequestError",
        "detail": "A valid content-type must be specified",
    }


def test_json_content_type_with_charset_is_accepted(api: Api) -> None:
    import json

    response = api.http.post(
        BASE + "/connections",
        content=json.dumps(profile_base_body()).encode(),
        headers=api.headers(**{"Content-Type": "application/json; charset=utf-8"}),
    )
    assert response.status_code == 201


def test_every_response_carries_a_request_id(api: Api) -> None:
    echoed = api.get("/connections", **{"x-request-id": "req-123"})
    assert echoed.headers["x-request-id"] == "req-123"
    headers = api.headers()
    del headers["x-request-id"]
    generated = api.http.get(BASE + "/nope", headers=headers)
    assert generated.status_code == 404
    assert generated.headers["x-request-id"]
    assert generated.json()["report"]["request-id"] == generated.headers["x-request-id"]


def test_ims_token_shape_and_default_lifetime(http: httpx.Client) -> None:
    response = http.post(
        "/ims/token/v3",
        data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b", "scope": "openid"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"client_id": "a", "client_secret": "b"}, "invalid_request"),
        ({"grant_type": "password", "client_id": "a", "client_secret": "b"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_secret": "b"}, "invalid_request"),
    ],
)
def test_ims_rejects_malformed_requests(http: httpx.Client, form: dict[str, str], error: str) -> None:
    response = http.post("/ims/token/v3", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_ims_history_never_records_the_client_secret(api: Api) -> None:
    entry = api.http.get("/_emulator/requests").json()["items"][0]
    assert entry["path"] == "/ims/token/v3"
    assert "client_secret" not in entry["body"]
    assert "s3cr3t" not in str(entry)


@pytest.fixture(scope="module")
def strict_server() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(client_id="fixed-id", client_secret="fixed-secret", token_lifetime_seconds=1, org_id=ORG)
    with EmulatorServer(config) as running:
        yield running


def test_fixed_credentials_refuse_other_clients(strict_server: EmulatorServer) -> None:
    with httpx.Client(base_url=strict_server.url) as http:
        wrong_secret = http.post(
            "/ims/token/v3",
            data={
                "grant_type": "client_credentials",
                "client_id": "fixed-id",
                "client_secret": "guess",
                "scope": "openid",
            },
        )
        assert wrong_secret.status_code == 401
        assert wrong_secret.json()["error"] == "invalid_client"
        wrong_id = http.post(
            "/ims/token/v3",
            data={
                "grant_type": "client_credentials",
                "client_id": "other",
                "client_secret": "fixed-secret",
                "scope": "openid",
            },
        )
        assert wrong_id.status_code == 401
        right = http.post(
            "/ims/token/v3",
            data={
                "grant_type": "client_credentials",
                "client_id": "fixed-id",
                "client_secret": "fixed-secret",
                "scope": "openid",
            },
        )
        assert right.status_code == 200


def test_configured_token_lifetime_is_enforced(strict_server: EmulatorServer) -> None:
    with httpx.Client(base_url=strict_server.url) as http:
        token = issue_token(http, "fixed-id", "fixed-secret")
        api = Api(http, token, client_id="fixed-id")
        assert (
            http.post(
                "/ims/token/v3",
                data={"grant_type": "client_credentials", "client_id": "fixed-id", "client_secret": "fixed-secret"},
            ).json()["expires_in"]
            == 1
        )
        assert api.get("/flows").status_code == 200
        time.sleep(1.1)
        assert api.get("/flows").status_code == 401


def test_configured_org_refuses_other_orgs(strict_server: EmulatorServer) -> None:
    with httpx.Client(base_url=strict_server.url) as http:
        api = Api(http, issue_token(http, "fixed-id", "fixed-secret"), client_id="fixed-id")
        response = api.get("/flows", **{"x-gw-ims-org-id": "OTHER@AdobeOrg"})
        assert response.status_code == 401
        assert response.json()["type"].endswith("FLOW-2000-401")

"""One emulator per test session, reset before every test; helpers to call it like the gateway does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from flowservice_emulator.catalog import ADOBE_CAMPAIGN, PROFILE_STORE, UPS_TO_CAMPAIGN

BASE = "/data/foundation/flowservice"
ORG = "0123456789ABCDEF01234567@AdobeOrg"
CLIENT_ID = "gateway-client"


@pytest.fixture(scope="session")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as running:
        yield running


@pytest.fixture
def http(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/_emulator/reset").raise_for_status()
        yield client


def issue_token(http: httpx.Client, client_id: str = CLIENT_ID, secret: str = "s3cr3t") -> str:
    response = http.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": "openid,AdobeID",
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@dataclass
class Api:
    """A Flow Service caller that sends every header Adobe requires (flow-service.md Part 1.2)."""

    http: httpx.Client
    token: str
    sandbox: str | None = "prod"
    client_id: str = CLIENT_ID
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self, **overrides: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "x-api-key": self.client_id,
            "x-gw-ims-org-id": ORG,
            "x-request-id": str(uuid.uuid4()),
            **self.extra,
        }
        if self.sandbox is not None:
            headers["x-sandbox-name"] = self.sandbox
        headers.update(overrides)
        return headers

    def get(self, path: str, params: Any = None, **headers: str) -> httpx.Response:
        return self.http.get(BASE + path, params=params, headers=self.headers(**headers))

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(BASE + path, json=body, headers=self.headers(**headers))

    def patch(self, path: str, body: Any, etag: str | None, **headers: str) -> httpx.Response:
        extra = {"If-Match": etag} if etag is not None else {}
        return self.http.patch(BASE + path, json=body, headers=self.headers(**extra, **headers))

    def delete(self, path: str, **headers: str) -> httpx.Response:
        return self.http.delete(BASE + path, headers=self.headers(**headers))

    def create(self, kind: str, body: Any) -> dict[str, Any]:
        response = self.post(f"/{kind}", body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def in_sandbox(self, sandbox: str) -> Api:
        return Api(self.http, self.token, sandbox, self.client_id)


@pytest.fixture
def api(http: httpx.Client) -> Api:
    return Api(http, issue_token(http))


def spec_ref(spec_id: str) -> dict[str, str]:
    return {"id": spec_id, "version": "1.0"}


def profile_base_body(name: str = "Profile store") -> dict[str, Any]:
    return {"name": name, "description": "Profile store base connection", "connectionSpec": spec_ref(PROFILE_STORE)}


def profile_source_body(base_connection_id: str, name: str = "source") -> dict[str, Any]:
    return {
        "name": name,
        "baseConnectionId": base_connection_id,
        "connectionSpec": spec_ref(PROFILE_STORE),
        "data": {"format": "CSV", "schema": None},
        "params": {},
    }


def campaign_s3_body(name: str = "Campaign S3") -> dict[str, Any]:
    return {
        "name": name,
        "auth": {"specName": "S3", "params": {"accessId": "AKIAEXAMPLE", "secretKey": "shh"}},
        "connectionSpec": spec_ref(ADOBE_CAMPAIGN),
    }


@dataclass
class Chain:
    source_base: str
    source: str
    destination_base: str
    target: str
    flow: str
    flow_etag: str


def create_chain(api: Api) -> Chain:
    """Profile store → Adobe Campaign (S3) flow, the minimal chain of §8.1 steps 2-6."""
    source_base = api.create("connections", profile_base_body())["id"]
    source = api.create("sourceConnections", profile_source_body(source_base))["id"]
    destination_base = api.create("connections", campaign_s3_body())["id"]
    target = api.create(
        "targetConnections",
        {
            "name": "target",
            "baseConnectionId": destination_base,
            "connectionSpec": spec_ref(ADOBE_CAMPAIGN),
            "data": {"format": "json", "schema": {"id": "1.0", "version": "1.0"}},
            "params": {"mode": "S3", "bucketName": "acme-exports", "path": "audiences", "format": "CSV"},
        },
    )["id"]
    flow = api.create(
        "flows",
        {
            "name": "flow",
            "flowSpec": spec_ref(UPS_TO_CAMPAIGN),
            "sourceConnectionIds": [source],
            "targetConnectionIds": [target],
            "transformations": [
                {
                    "name": "GeneralTransform",
                    "params": {"segmentSelectors": {"selectors": []}, "profileSelectors": {"selectors": []}},
                }
            ],
        },
    )
    return Chain(source_base, source, destination_base, target, flow["id"], flow["etag"])


def flow_error_code(response: httpx.Response) -> str:
    """``1404-412`` from ``https://ns.adobe.com/aep/errors/FLOW-1404-412``."""
    return str(response.json()["type"]).rsplit("FLOW-", 1)[-1]

"""The Flow Service client and its aiohttp transport against the real emulator, in process: the
caller's guard runs right before every request leaves the process (after a wait for a pooled
connection too), and lookups by name page through every match."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.adapters.flowservice import FlowServiceClient, ResourceKind, TokenProvider
from app.adapters.flowservice.client import build_http_client, build_transport, upstream_timeout
from app.domain.catalog import DestinationCatalog
from app.domain.model import Lease, LeaseLost
from app.domain.upstream import LeasedFlowService
from app.settings import DEFAULT_ADOBE_SCOPES
from flowservice_emulator import EmulatorServer
from flowservice_emulator.catalog import PROFILE_STORE
from tests.conftest import ADOBE_CLIENT_ID, ADOBE_CLIENT_SECRET, ADOBE_ORG_ID

BASE = "/data/foundation/flowservice"
SANDBOX = "prod"


class Expired(Exception):
    """What the guard raises: the client and the transport must let it through unchanged."""


@asynccontextmanager
async def flow_service(emulator: EmulatorServer, *, pool: int) -> AsyncIterator[FlowServiceClient]:
    """The client as runtime.py wires it: IMS and Flow Service share one pool of ``pool`` connections."""
    transport = build_transport(max_connections=pool)
    timeout = upstream_timeout(connect_timeout=5, timeout=10)
    http = build_http_client(transport, timeout=timeout, user_agent="transport-guard-test")
    tokens = TokenProvider(
        http,
        token_url=emulator.ims_token_url,
        client_id=ADOBE_CLIENT_ID,
        client_secret=SecretStr(ADOBE_CLIENT_SECRET),
        scopes=DEFAULT_ADOBE_SCOPES,
    )
    client = FlowServiceClient(
        transport,
        tokens,
        base_url=emulator.flow_service_url,
        org_id=ADOBE_ORG_ID,
        timeout=timeout,
        user_agent="transport-guard-test",
    )
    await tokens.get()  # before the test takes the pool's connections
    try:
        yield client
    finally:
        await http.aclose()  # closes the shared transport


def connection_body(name: str) -> dict[str, Any]:
    return {"name": name, "description": "test", "connectionSpec": {"id": PROFILE_STORE, "version": "1.0"}}


def posts_to_connections(emulator: EmulatorServer) -> list[dict[str, Any]]:
    items = httpx.get(f"{emulator.url}/_emulator/requests").json()["items"]
    return [e for e in items if e["method"] == "POST" and e["path"] == f"{BASE}/connections"]


def expires_after(seconds: float, error: Exception) -> Callable[[], None]:
    deadline = time.monotonic() + seconds

    def guard() -> None:
        if time.monotonic() >= deadline:
            raise error

    return guard


def test_a_request_queued_for_the_only_connection_is_not_sent_once_its_guard_fails(emulator: EmulatorServer) -> None:
    slow = {"method": "GET", "path": "/connections", "fixedMs": 1500}
    httpx.post(f"{emulator.url}/_emulator/latency", json=slow).raise_for_status()
    expired = Expired("lease expired while waiting for a connection")

    async def scenario() -> BaseException:
        async with flow_service(emulator, pool=1) as client:
            holder = asyncio.create_task(client.list_all("connections", sandbox=SANDBOX))
            await asyncio.sleep(0.3)  # the slow GET holds the only connection
            # Still valid when the client checks it, expired by the time the connection is free.
            guard = expires_after(0.5, expired)
            with pytest.raises(Expired) as caught:
                await client.create(ResourceKind.CONNECTIONS, connection_body("queued"), sandbox=SANDBOX, guard=guard)
            await holder
            return caught.value

    assert asyncio.run(scenario()) is expired
    assert posts_to_connections(emulator) == [], "the queued request never reached the emulator"


@pytest.mark.parametrize("warm", [False, True], ids=["new-connection", "pooled-connection"])
def test_the_transport_checks_the_guard_again_once_it_has_a_connection(emulator: EmulatorServer, warm: bool) -> None:
    expired = Expired("lease expired while connecting")
    calls = 0

    def second_call_fails() -> None:
        # The client's own check passes; the transport's, once it holds a connection, fails.
        nonlocal calls
        calls += 1
        if calls >= 2:
            raise expired

    async def scenario() -> BaseException:
        async with flow_service(emulator, pool=4) as client:
            if warm:
                await client.list_all("connections", sandbox=SANDBOX)
            with pytest.raises(Expired) as caught:
                await client.create(
                    ResourceKind.CONNECTIONS, connection_body("late"), sandbox=SANDBOX, guard=second_call_fails
                )
            return caught.value

    assert asyncio.run(scenario()) is expired
    assert calls == 2
    assert posts_to_connections(emulator) == []


def test_find_all_by_name_pages_through_every_match(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.url, timeout=10) as http:
        form = {"grant_type": "client_credentials", "client_id": ADOBE_CLIENT_ID, "client_secret": ADOBE_CLIENT_SECRET}
        token = http.post("/ims/token/v3", data={**form, "scope": DEFAULT_ADOBE_SCOPES}).json()["access_token"]
        headers = {
            "Authorization": f"Bearer {token}",
            "x-api-key": ADOBE_CLIENT_ID,
            "x-gw-ims-org-id": ADOBE_ORG_ID,
            "x-sandbox-name": SANDBOX,
        }

        def create(name: str) -> str:
            response = http.post(f"{BASE}/connections", json=connection_body(name), headers=headers)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        duplicates = {create("duplicate [ag:1]") for _ in range(150)}
        create("duplicate [ag:1] (other)")
        create("other [ag:2]")

    async def scenario() -> list[dict[str, Any]]:
        async with flow_service(emulator, pool=4) as client:
            return await client.find_all_by_name(ResourceKind.CONNECTIONS, "duplicate [ag:1]", sandbox=SANDBOX)

    found = asyncio.run(scenario())
    assert len(found) == 150
    assert {item["id"] for item in found} == duplicates


def test_the_catalog_lists_specs_under_the_lease(emulator: EmulatorServer) -> None:
    def leased(client: FlowServiceClient, valid_for: float) -> LeasedFlowService:
        lease = Lease(activation_id=uuid.uuid4(), epoch=1, owner="test", valid_until=time.monotonic() + valid_for)
        return LeasedFlowService(client, lease)

    def spec_requests() -> list[str]:
        items = httpx.get(f"{emulator.url}/_emulator/requests").json()["items"]
        return [e["path"] for e in items if e["path"].endswith("Specs")]

    async def scenario() -> str:
        async with flow_service(emulator, pool=4) as client:
            catalog = DestinationCatalog(ttl_seconds=60)
            with pytest.raises(LeaseLost):
                await catalog.resolve(
                    leased(client, 0), destination="Adobe Campaign", storage_kind="s3", sandbox=SANDBOX
                )
            assert spec_requests() == [], "an expired lease lists nothing"
            resolved = await catalog.resolve(
                leased(client, 60), destination="Adobe Campaign", storage_kind="s3", sandbox=SANDBOX
            )
            return resolved.name

    assert asyncio.run(scenario()) == "Adobe Campaign"
    assert spec_requests(), "a valid lease lists the specs"

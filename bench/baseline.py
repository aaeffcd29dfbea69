"""The baseline: the eight tutorial calls made one after the other by a plain httpx script, with no
gateway, against the same emulator (connect-activate-batch-destinations: list the connection specs,
create the two base connections, the source and target connections and the flow, PATCH the
selectors in, GET the flow to check). No retries, no records: the least any caller must do."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from app.api.schemas import Segment

from .harness import CLIENT_ID, CLIENT_SECRET, FLOW_PATH, ORG_ID
from .workload import activation_body

PROFILE_STORE_SPEC = {"id": "8a9c3494-9708-43d7-ae3f-cda01e5030e1", "version": "1.0"}


def _token(client: httpx.Client, emulator_url: str) -> str:
    response = client.post(
        f"{emulator_url}/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "openid,AdobeID",
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _flow_spec_for(client: httpx.Client, connection_spec_id: str) -> dict[str, str]:
    # A script hard-codes the flow spec id from the docs; looked up once here, outside the timing.
    items = client.get("/flowSpecs").raise_for_status().json()["items"]
    for spec in items:
        if connection_spec_id in (spec.get("targetConnectionSpecIds") or []) and PROFILE_STORE_SPEC["id"] in (
            spec.get("sourceConnectionSpecIds") or []
        ):
            return {"id": spec["id"], "version": spec.get("version") or "1.0"}
    raise RuntimeError("no flow spec for the destination")


def one_activation(client: httpx.Client, flow_spec: dict[str, str] | None) -> dict[str, str]:
    tag = uuid.uuid4().hex
    # 1. the destination's connection spec
    specs = client.get("/connectionSpecs").raise_for_status().json()["items"]
    spec = next(s for s in specs if s.get("name") == "Adobe Campaign")
    target_spec = {"id": spec["id"], "version": spec.get("version") or "1.0"}
    flow_spec = flow_spec or _flow_spec_for(client, spec["id"])
    # 2. source base connection, 3. source connection
    source_base = (
        client.post("/connections", json={"name": f"bench source base {tag}", "connectionSpec": PROFILE_STORE_SPEC})
        .raise_for_status()
        .json()["id"]
    )
    source = (
        client.post(
            "/sourceConnections",
            json={
                "name": f"bench source {tag}",
                "baseConnectionId": source_base,
                "connectionSpec": PROFILE_STORE_SPEC,
                "data": {"format": "CSV", "schema": None},
                "params": {},
            },
        )
        .raise_for_status()
        .json()["id"]
    )
    # 4. target base connection, 5. target connection
    target_base = (
        client.post(
            "/connections",
            json={
                "name": f"bench target base {tag}",
                "auth": {"specName": "S3", "params": {"accessId": "AKIAIOSFODNN7EXAMPLE", "secretKey": "not-real"}},
                "connectionSpec": target_spec,
            },
        )
        .raise_for_status()
        .json()["id"]
    )
    target = (
        client.post(
            "/targetConnections",
            json={
                "name": f"bench target {tag}",
                "baseConnectionId": target_base,
                "connectionSpec": target_spec,
                "data": {"format": "json", "schema": {"id": "1.0", "version": "1.0"}},
                "params": {"mode": "S3", "bucketName": "acme-aep-exports", "path": "campaign/bench", "format": "CSV"},
            },
        )
        .raise_for_status()
        .json()["id"]
    )
    # 6. the flow
    created = (
        client.post(
            "/flows",
            json={
                "name": f"bench flow {tag}",
                "flowSpec": flow_spec,
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
        .raise_for_status()
        .json()
    )
    flow_id = created["id"]
    # 7. activate: PATCH the selectors in with If-Match
    operations: list[dict[str, Any]] = [
        {
            "op": "add",
            "path": "/transformations/0/params/segmentSelectors/selectors/-",
            # The selector exactly as the gateway sends it (defaults filled in by the same schema).
            "value": {"type": "PLATFORM_SEGMENT", "value": Segment.model_validate(segment).normalized()},
        }
        for segment in activation_body("baseline")["segments"]
    ] + [
        {
            "op": "add",
            "path": "/transformations/0/params/profileSelectors/selectors/-",
            "value": {"type": "JSON_PATH", "value": {"path": path, "operator": "EXISTS"}},
        }
        for path in ("person.name.lastName", "personalEmail.address")
    ]
    client.patch(f"/flows/{flow_id}", json=operations, headers={"If-Match": created["etag"]}).raise_for_status()
    # 8. verify
    flow = client.get(f"/flows/{flow_id}").raise_for_status().json()["items"][0]
    if len(flow["transformations"][0]["params"]["segmentSelectors"]["selectors"]) != 2:
        raise RuntimeError("baseline: the flow lacks its segments")
    return flow_spec


def run_baseline(emulator_url: str, count: int) -> list[float]:
    """``count`` activations one after the other; returns each one's duration in ms."""
    with httpx.Client(timeout=30.0) as client:
        token = _token(client, emulator_url)
        client.base_url = httpx.URL(emulator_url + FLOW_PATH)
        client.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "x-api-key": CLIENT_ID,
                "x-gw-ims-org-id": ORG_ID,
                "x-sandbox-name": "prod",
                "Accept": "application/json",
            }
        )
        flow_spec = one_activation(client, None)  # warm-up: connection, flow spec
        samples: list[float] = []
        for _ in range(count):
            started = time.perf_counter()
            one_activation(client, flow_spec)
            samples.append((time.perf_counter() - started) * 1000)
    return samples

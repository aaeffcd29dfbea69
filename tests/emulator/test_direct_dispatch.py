"""The direct dispatch (``flowservice_emulator.dispatch``) answers exactly as FastAPI's routing does.

One scenario of valid and invalid calls runs against an app with the direct dispatch and one without; ids,
etags, tokens and clocks are made deterministic, so both transcripts (every ASGI message sent back, then the
request history and the state) must be identical.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from flowservice_emulator import create_app
from flowservice_emulator import dispatch as dispatch_module
from flowservice_emulator.catalog import ADOBE_CAMPAIGN, PROFILE_STORE, UPS_TO_CAMPAIGN

from .conftest import BASE, ORG, campaign_s3_body, profile_base_body, profile_source_body, spec_ref

Message = dict[str, Any]
Call = Callable[..., Awaitable[list[Message]]]
CLIENT = "dispatch-client"


def _asgi_caller(app: Any) -> Call:
    async def call(
        method: str,
        path: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        query: str = "",
    ) -> list[Message]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers or []],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8081),
        }
        delivered = False
        sent: list[Message] = []

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(0.05)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(dict(message))

        await app(scope, receive, send)
        return sent

    return call


def _json(messages: list[Message]) -> Any:
    return json.loads(b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body"))


def _auth(token: str, **extra: str) -> list[tuple[str, str]]:
    headers = [
        ("authorization", f"Bearer {token}"),
        ("x-api-key", CLIENT),
        ("x-gw-ims-org-id", ORG),
        ("x-sandbox-name", "prod"),
    ]
    return headers + list(extra.items())


def _json_headers(token: str, **extra: str) -> list[tuple[str, str]]:
    return [*_auth(token, **extra), ("content-type", "application/json")]


async def _scenario(call: Call) -> list[Any]:
    transcript: list[Any] = []

    async def record(method: str, path: str, **kwargs: Any) -> list[Message]:
        messages = await call(method, path, **kwargs)
        transcript.append((method, path, kwargs.get("query", ""), messages))
        return messages

    form = f"grant_type=client_credentials&client_id={CLIENT}&client_secret=s&scope=openid".encode()
    token_response = await record(
        "POST",
        "/ims/token/v3",
        headers=[("content-type", "application/x-www-form-urlencoded")],
        body=form,
    )
    token = _json(token_response)["access_token"]

    def post(kind: str, body: Any, **extra: str) -> Awaitable[list[Message]]:
        return record("POST", f"{BASE}/{kind}", headers=_json_headers(token, **extra), body=json.dumps(body).encode())

    # Gateway header rules, including upper-case and repeated names (the last x-api-key wins).
    await record("GET", f"{BASE}/connections", headers=_auth(token)[1:])
    await record("GET", f"{BASE}/connections", headers=[("Authorization", "Bearer nope"), ("x-api-key", CLIENT)])
    await record("GET", f"{BASE}/connections", headers=[*_auth(token), ("X-API-KEY", "someone-else")])
    await record("GET", f"{BASE}/connections", headers=[("x-api-key", "x"), *_auth(token)])
    await record("GET", f"{BASE}/connections", headers=[*_auth(token)[:3], ("x-sandbox-name", " dev ")])
    await record("GET", f"{BASE}/connections", headers=[h for h in _auth(token) if h[0] != "x-gw-ims-org-id"])

    # Creates: valid, then the body rules.
    source_base = _json(await post("connections", profile_base_body()))["id"]
    destination_base = _json(await post("connections", campaign_s3_body(), **{"x-request-id": "fixed-id"}))["id"]
    await record("POST", f"{BASE}/connections", headers=_auth(token), body=b"{}")
    await record("POST", f"{BASE}/connections", headers=_json_headers(token), body=b"  ")
    await record("POST", f"{BASE}/connections", headers=_json_headers(token), body=b"{nope")
    await post("connections", ["not", "an", "object"])
    await post("connections", {"name": "x", "connectionSpec": {"id": PROFILE_STORE}})
    await post("connections", {"name": "x", "auth": {"specName": "S3"}, "connectionSpec": spec_ref(ADOBE_CAMPAIGN)})
    source = _json(await post("sourceConnections", profile_source_body(source_base)))["id"]
    target_body = {
        "name": "target",
        "baseConnectionId": destination_base,
        "connectionSpec": spec_ref(ADOBE_CAMPAIGN),
        "data": {"format": "json", "schema": {"id": "1.0", "version": "1.0"}},
        "params": {"mode": "S3", "bucketName": "acme", "path": "audiences", "format": "CSV"},
    }
    await post("targetConnections", {**target_body, "params": {"mode": "S3"}})
    target = _json(await post("targetConnections", target_body))["id"]
    flow_body = {
        "name": "flow",
        "flowSpec": spec_ref(UPS_TO_CAMPAIGN),
        "sourceConnectionIds": [source],
        "targetConnectionIds": [target],
        "transformations": [
            {"name": "GeneralTransform", "params": {"segmentSelectors": {"selectors": []}, "profileSelectors": {}}}
        ],
    }
    await post("flows", {**flow_body, "state": "enabled"})
    created = _json(await post("flows", flow_body))
    flow, etag = created["id"], created["etag"]

    # Reads, lists and the catalog.
    for path in (
        f"/flows/{flow}",
        f"/connections/{destination_base}",
        "/flows/missing",
        f"/sourceConnections/{source}",
    ):
        await record("GET", BASE + path, headers=_auth(token))
    for query in ("", "limit=1", "limit=1&count=true", "orderby=-name", "orderby=colour", "property=name==flow"):
        await record("GET", f"{BASE}/flows", headers=_auth(token), query=query)
    page = _json(await record("GET", f"{BASE}/connections", headers=_auth(token), query="limit=1"))
    continuation = page["_links"]["next"]["href"].partition("?")[2]
    await record("GET", f"{BASE}/connections", headers=_auth(token), query=continuation)
    await record("GET", f"{BASE}/connectionSpecs/{ADOBE_CAMPAIGN}", headers=_auth(token))
    await record("GET", f"{BASE}/flowSpecs", headers=_auth(token), query="property=name==upsToCampaign")
    await record("GET", f"{BASE}/flowSpecs/nope", headers=_auth(token))
    await record("GET", f"{BASE}/runs", headers=_auth(token), query=f"property=flowId=={flow}")

    # PATCH: preconditions, instruction rules, a real change, the trailing-slash route.
    selector = {
        "type": "PLATFORM_SEGMENT",
        "value": {
            "id": "seg-1",
            "name": "Segment",
            "exportMode": "DAILY_FULL_EXPORT",
            "schedule": {"frequency": "ONCE", "startDate": "2030-01-01", "triggerType": "AFTER_SEGMENT_EVAL"},
        },
    }
    add = [{"op": "ADD", "path": "/transformations/0/params/segmentSelectors/selectors/-", "value": selector}]
    patch_body = json.dumps(add).encode()
    await record("PATCH", f"{BASE}/flows/{flow}", headers=_json_headers(token), body=patch_body)
    await record(
        "PATCH", f"{BASE}/flows/{flow}", headers=_json_headers(token, **{"if-match": '"stale"'}), body=patch_body
    )
    for bad in ([], [{"op": "move", "path": "/name"}], [{"op": "add", "path": "/id", "value": 1}]):
        body = json.dumps(bad).encode()
        await record("PATCH", f"{BASE}/flows/{flow}", headers=_json_headers(token, **{"if-match": etag}), body=body)
    await record("PATCH", f"{BASE}/flows/{flow}", headers=_json_headers(token, **{"if-match": etag}), body=patch_body)
    rename = json.dumps({"op": "replace", "path": "/name", "value": "renamed"}).encode()
    connection = _json(await record("GET", f"{BASE}/connections/{source_base}", headers=_auth(token)))["items"][0]
    await record(
        "PATCH",
        f"{BASE}/connections/{source_base}/",
        headers=_json_headers(token, **{"if-match": connection["etag"]}),
        body=rename,
    )
    await record("GET", f"{BASE}/flows/{flow}", headers=_auth(token))

    # Flow actions, deletes, HEAD, unknown routes and methods.
    await record("POST", f"{BASE}/flows/{flow}/action", headers=_auth(token), query="op=disable")
    await record("POST", f"{BASE}/flows/{flow}/action", headers=_auth(token), query="op=pause")
    await record("DELETE", f"{BASE}/connections/{destination_base}", headers=_auth(token))
    await record("HEAD", f"{BASE}/flows/{flow}", headers=_auth(token))
    await record("GET", f"{BASE}/nothing/here", headers=_auth(token))
    await record("PUT", f"{BASE}/flows/{flow}", headers=_auth(token))
    await record("GET", f"{BASE}/flows/{flow}/", headers=_auth(token))
    await record("DELETE", f"{BASE}/flows/{flow}/", headers=_auth(token))

    # Faults and latency, through the admin API.
    admin = [("content-type", "application/json")]
    rules: list[tuple[str, dict[str, Any]]] = [
        ("latency", {"path": "/flows*", "fixedMs": 1}),
        ("faults", {"method": "POST", "path": "/connections", "status": 503, "retryAfter": 2}),
        ("faults", {"path": "/connections", "mode": "commit_then_fail", "status": 500, "bodyContains": "late"}),
        ("faults", {"path": "/flows", "mode": "commit_then_fail", "failure": "drop", "times": 1}),
        ("faults", {"path": "/sourceConnections", "mode": "commit_then_fail", "failure": "timeout", "holdMs": 5}),
    ]
    for kind, rule in rules:
        await record("POST", f"/_emulator/{kind}", headers=admin, body=json.dumps(rule).encode())
    await post("connections", profile_base_body("early"))
    await post("connections", profile_base_body("late"))
    await post("flows", flow_body)
    await post("sourceConnections", {"name": "held", "connectionSpec": spec_ref(PROFILE_STORE)})
    await record("GET", f"{BASE}/flows", headers=_auth(token))

    transcript.append(_json(await call("GET", "/_emulator/requests")))
    transcript.append(_json(await call("GET", "/_emulator/state")))
    return transcript


def _deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(counter)))
    monkeypatch.setattr("secrets.token_hex", lambda n=32: f"{next(counter):0{2 * n}x}")
    monkeypatch.setattr("secrets.token_urlsafe", lambda n=32: f"token{next(counter)}")
    monkeypatch.setattr("time.time", lambda: 1_800_000_000.0)


def _transcript(monkeypatch: pytest.MonkeyPatch, *, direct_dispatch: bool) -> tuple[list[Any], int]:
    answered = 0
    original = dispatch_module.DirectRoutes.dispatch

    def counting(self: Any, *args: Any) -> Any:
        nonlocal answered
        response = original(self, *args)
        answered += response is not None
        return response

    with monkeypatch.context() as patches:
        _deterministic(patches)
        patches.setattr(dispatch_module.DirectRoutes, "dispatch", counting)
        app = create_app(direct_dispatch=direct_dispatch)
        return asyncio.run(_scenario(_asgi_caller(app))), answered


def test_direct_dispatch_answers_like_fastapi(monkeypatch: pytest.MonkeyPatch) -> None:
    routed, none = _transcript(monkeypatch, direct_dispatch=False)
    direct, answered = _transcript(monkeypatch, direct_dispatch=True)
    assert none == 0 and answered > 50  # the direct run really bypassed the framework
    # The header rules: of repeated headers the last one wins, whatever the case of its name.
    assert [exchange[3][0]["status"] for exchange in direct[1:7]] == [401, 401, 403, 200, 200, 400]
    assert len(direct) == len(routed)
    for got, expected in zip(direct, routed, strict=True):
        assert got == expected

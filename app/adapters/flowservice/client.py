"""The Flow Service client: one pooled httpx.AsyncClient, Adobe's headers on every call, typed errors.

It makes single calls; retry policy and idempotency belong to the saga (domain), which knows
whether repeating a call is safe.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from app.domain.ports import CallLog, Created, Guard, QueryParams, ResourceKind, UpstreamCall

from .errors import FlowServiceError, UpstreamUnavailable
from .ims import TokenProvider
from .observe import CallObserver
from .redact import sensitive_values
from .transport import BEFORE_SEND, AiohttpTransport

ADHOC_PATH = "/data/core/activation/disflowprovider/adhocrun"
ADHOC_ACCEPT = "application/vnd.adobe.adhoc.activation+json; version=2"


def default_adhoc_url(flow_service_url: str) -> str:
    """The ad-hoc activation service on the Flow Service's host (Adobe serves both on platform.adobe.io)."""
    parts = httpx.URL(flow_service_url)
    return str(parts.copy_with(path=ADHOC_PATH, query=None))


class FlowServiceClient:
    """Calls go straight to the transport (the connection pool it shares with the IMS client):
    httpx.AsyncClient's cookie jar, auth and redirect machinery cost a third of each call's CPU,
    and these calls need none of it. Requests and responses are still httpx's.

    Every method takes an optional ``guard``: it is called before each request of the call is sent
    (a 401's resend too, after a token refresh that may take long) and, by AiohttpTransport, again
    once the request has a connection (after any wait for the pool), before a byte is written."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        tokens: TokenProvider,
        *,
        base_url: str,
        org_id: str,
        timeout: httpx.Timeout,
        user_agent: str,
        observer: CallObserver | None = None,
        adhoc_url: str | None = None,
    ) -> None:
        self._transport = transport
        self._tokens = tokens
        self._base_url = base_url.rstrip("/")
        self._adhoc_url = adhoc_url or default_adhoc_url(base_url)
        self._org_id = org_id
        self._extensions = {"timeout": timeout.as_dict()}
        self._user_agent = user_agent
        self._observer = observer

    # --- catalog -----------------------------------------------------------------------------
    async def list_all(
        self,
        collection: str,
        *,
        sandbox: str,
        params: QueryParams | None = None,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following ``_links.next`` / continuation tokens. ``params``
        as pairs may repeat a name (``property`` twice: both filters apply)."""
        items: list[dict[str, Any]] = []
        first = list(params.items()) if isinstance(params, Mapping) else list(params or ())
        query = first
        path = f"/{collection}"
        for _ in range(1000):  # a hard stop in case the upstream keeps handing out tokens
            body = await self._call("GET", path, sandbox=sandbox, endpoint=path, params=query, guard=guard, log=log)
            items.extend(body.get("items", []))
            token = _continuation_token(body)
            if not token:
                return items
            query = [*first, ("continuationToken", token)]
        return items

    async def count(self, collection: str, *, sandbox: str, params: QueryParams | None = None) -> int:
        """``count=true`` answers ``{"count": N}`` alone (with ``limit`` it is an error, 1401-400)."""
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params or ())
        query = [(name, value) for name, value in pairs if name != "limit"] + [("count", "true")]
        path = f"/{collection}"
        body = await self._call("GET", path, sandbox=sandbox, endpoint=path, params=query)
        value = body.get("count")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            # An answer to read again later, like one that cannot be parsed.
            raise UpstreamUnavailable(method="GET", path=path, reason="count=true answered no count")
        return value

    # --- resources -----------------------------------------------------------------------------
    async def create(
        self,
        kind: ResourceKind,
        body: dict[str, Any],
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> Created:
        path = f"/{kind.value}"
        data = await self._call("POST", path, sandbox=sandbox, endpoint=path, json=body, guard=guard, log=log)
        return Created(id=str(data["id"]), etag=data.get("etag"))

    async def get(
        self,
        kind: ResourceKind,
        resource_id: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> dict[str, Any]:
        data = await self._call(
            "GET",
            f"/{kind.value}/{resource_id}",
            sandbox=sandbox,
            endpoint=f"/{kind.value}/{{id}}",
            guard=guard,
            log=log,
        )
        items = data.get("items") or []
        if not items:
            raise FlowServiceError(
                status=404,
                code=None,
                message="empty items",
                request_id=None,
                method="GET",
                path=f"/{kind.value}/{resource_id}",
            )
        item: dict[str, Any] = items[0]
        return item

    async def find_by_name(
        self, kind: ResourceKind, name: str, *, sandbox: str, guard: Guard | None = None, log: CallLog | None = None
    ) -> dict[str, Any] | None:
        """The resource an earlier, unanswered create may have made (names are unique per activation)."""
        matches = await self.find_all_by_name(kind, name, sandbox=sandbox, guard=guard, log=log)
        return matches[0] if matches else None

    async def find_all_by_name(
        self, kind: ResourceKind, name: str, *, sandbox: str, guard: Guard | None = None, log: CallLog | None = None
    ) -> list[dict[str, Any]]:
        """Every resource of ``kind`` named ``name``, through all pages: also the duplicates a create
        that committed late may have left behind. The filter only narrows the listing (a comma in its
        value means "or"), so equality is checked here."""
        params = {"property": f"name=={name}", "limit": "100"}
        items = await self.list_all(kind.value, sandbox=sandbox, params=params, guard=guard, log=log)
        return [item for item in items if item.get("name") == name]

    async def patch(
        self,
        kind: ResourceKind,
        resource_id: str,
        operations: list[dict[str, Any]],
        *,
        etag: str,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> str | None:
        """JSON Patch guarded by the etag, sent exactly as received (with its quotes).

        Returns the new etag, or None when the upstream answered 202 without a body.
        """
        data = await self._call(
            "PATCH",
            f"/{kind.value}/{resource_id}",
            sandbox=sandbox,
            endpoint=f"/{kind.value}/{{id}}",
            json=operations,
            headers={"If-Match": etag},
            guard=guard,
            log=log,
        )
        etag_value = data.get("etag")
        return str(etag_value) if etag_value else None

    async def delete(
        self,
        kind: ResourceKind,
        resource_id: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> bool:
        """Delete; False when it was already gone (404 counts as done)."""
        try:
            await self._call(
                "DELETE",
                f"/{kind.value}/{resource_id}",
                sandbox=sandbox,
                endpoint=f"/{kind.value}/{{id}}",
                guard=guard,
                log=log,
            )
        except FlowServiceError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def flow_action(
        self, flow_id: str, op: str, *, sandbox: str, guard: Guard | None = None, log: CallLog | None = None
    ) -> str | None:
        """Enable or disable a flow (``op``: enable or disable; Adobe takes no body and no
        If-Match). Returns the new etag, if the answer carried one."""
        data = await self._call(
            "POST",
            f"/flows/{flow_id}/action",
            sandbox=sandbox,
            endpoint="/flows/{id}/action",
            params={"op": op},
            guard=guard,
            log=log,
        )
        etag_value = data.get("etag")
        return str(etag_value) if etag_value else None

    # --- export now ----------------------------------------------------------------------------------
    async def adhoc_run(
        self,
        activation_info: Mapping[str, list[str]],
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> dict[str, Any]:
        """Adobe's ad-hoc activation (flow-service.md Part 3 §3.4), version 2 of its API: without the
        versioned Accept header the older version applies and demands `exportIds`."""
        return await self._call(
            "POST",
            ADHOC_PATH,
            sandbox=sandbox,
            endpoint=ADHOC_PATH,
            json={"activationInfo": dict(activation_info)},
            headers={"Accept": ADHOC_ACCEPT},
            guard=guard,
            log=log,
            url=self._adhoc_url,
        )

    # --- plumbing ----------------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        *,
        sandbox: str,
        endpoint: str,
        params: QueryParams | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        guard: Guard | None = None,
        log: CallLog | None = None,
        url: str | None = None,
    ) -> dict[str, Any]:
        """One logical call (to ``url`` instead of the Flow Service's ``path`` when given); a 401
        triggers exactly one token refresh and one retry."""
        for refreshed in (False, True):
            token = await self._tokens.get()
            request_id = str(uuid.uuid4())
            all_headers = {
                "Authorization": f"Bearer {token}",
                "x-api-key": self._tokens.client_id,
                "x-gw-ims-org-id": self._org_id,
                "x-sandbox-name": sandbox,
                "x-request-id": request_id,
                "Accept": "application/json",
                "User-Agent": self._user_agent,
                **(headers or {}),
            }
            if json is not None:
                all_headers["Content-Type"] = "application/json"
            started = time.perf_counter()
            try:
                request = httpx.Request(
                    method,
                    url or self._base_url + path,
                    params=list(params.items()) if isinstance(params, Mapping) else list(params or ()),
                    json=json,
                    headers=all_headers,
                    extensions=self._extensions,  # copied by httpx: ours to add to
                )
                if guard is not None:
                    # Checked here, after the token (a refresh may have taken long), and again by the
                    # transport once it has a connection (the pool may make us wait).
                    request.extensions[BEFORE_SEND] = guard
                    guard()
                response = await self._transport.handle_async_request(request)
                await response.aread()
            except httpx.TransportError as exc:
                await self._observe(log, method, path, endpoint, None, started, request_id, None, type(exc).__name__)
                raise UpstreamUnavailable(method=method, path=path, reason=_describe(exc)) from None
            adobe_request_id = response.headers.get("x-request-id")
            await self._observe(
                log, method, path, endpoint, response.status_code, started, request_id, adobe_request_id, None
            )
            if response.status_code == 401 and not refreshed:
                await self._tokens.invalidate(token)
                continue
            if response.status_code >= 400:
                raise FlowServiceError.from_response(response, path=path, redact=sensitive_values(json))
            if not response.content:
                return {}
            try:
                body: dict[str, Any] = response.json()
            except ValueError:
                raise UpstreamUnavailable(method=method, path=path, reason="unparseable response body") from None
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    async def _observe(
        self,
        log: CallLog | None,
        method: str,
        path: str,
        endpoint: str,
        status: int | None,
        started: float,
        request_id: str,
        adobe_request_id: str | None,
        error: str | None,
    ) -> None:
        call = UpstreamCall(
            method=method,
            path=path,
            endpoint=endpoint,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            request_id=request_id,
            adobe_request_id=adobe_request_id,
            error=error,
            context=log.labels if log is not None else {},
        )
        if self._observer is not None:
            await self._observer(call)
        if log is not None:
            log.record(call)


def _continuation_token(body: dict[str, Any]) -> str | None:
    href = ((body.get("_links") or {}).get("next") or {}).get("href")
    if not href:
        return None
    token = httpx.URL(href).params.get("continuationToken")
    return str(token) if token else None


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    return f"connection error ({type(exc).__name__})"


def build_transport(*, max_connections: int, verify: bool | ssl.SSLContext = True) -> httpx.AsyncBaseTransport:
    """The one connection pool the process uses for Adobe; sized to the worker's concurrency.
    httpx's API on aiohttp's wire: half the CPU per call (see transport.py)."""
    return AiohttpTransport(max_connections=max_connections, verify=verify)


def upstream_timeout(*, connect_timeout: float, timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=connect_timeout)


def build_http_client(
    transport: httpx.AsyncBaseTransport, *, timeout: httpx.Timeout, user_agent: str = "activation-gateway"
) -> httpx.AsyncClient:
    """An httpx client on the shared pool, for the calls off the hot path (IMS tokens)."""
    return httpx.AsyncClient(
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        # Names the process: Adobe support (or a test) can tell which worker made a call.
        headers={"User-Agent": user_agent},
    )

"""Correlation ids and HTTP metrics, as a plain ASGI middleware (no per-request task overhead)."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes and scrapes arrive every few seconds: log them only at DEBUG.
_QUIET_PREFIXES = ("/health/", "/metrics")

log = structlog.get_logger("activation_gateway.http")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _REQUEST_ID.match(supplied) else str(uuid.uuid4())
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            path = scope.get("path", "")
            # The access log line (uvicorn's own is off): logged here, it carries the request id.
            (log.debug if path.startswith(_QUIET_PREFIXES) else log.info)(
                "request",
                method=scope["method"],
                path=path,
                status=status_holder["status"],
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
            runtime = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
            if runtime is not None:
                route = _route_template(scope)
                runtime.metrics.http_requests.labels(scope["method"], route, str(status_holder["status"])).inc()
                runtime.metrics.http_latency.labels(scope["method"], route).observe(elapsed)


def _route_template(scope: Scope) -> str:
    """The route's path template (bounded label cardinality), or 'unmatched'.

    Read after the call: the router records the matched route in the (shared) scope. Matching the
    app's routes here instead breaks with FastAPI's included routers, which match as one unit.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"

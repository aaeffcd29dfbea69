"""ASGI middleware around the IMS and Flow Service routes: request ids, latency, fault injection and the
request history. The admin API (``/_emulator``) bypasses it entirely.

It is a raw ASGI middleware rather than a ``BaseHTTPMiddleware`` because the "drop" fault must be able to
start a response and then abandon it, which makes uvicorn close the connection mid-body. The Flow Service
routes are answered by :class:`~flowservice_emulator.dispatch.DirectRoutes` when it is given; any other
request goes down the FastAPI stack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .config import ADHOC_BASE_PATH, ADMIN_PATH, BASE_PATH, DEFAULT_SANDBOX
from .dispatch import CapturedResponse, DirectRoutes
from .errors import ApiError, generic_error
from .faults import FaultRule
from .state import EmulatorState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"

logger = logging.getLogger(__name__)


class EmulatorMiddleware:
    def __init__(self, app: ASGIApp, state: EmulatorState, routes: DirectRoutes | None = None) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PATH):
            await self.app(scope, receive, send)
            return
        received = time.monotonic()
        received_at = time.time()  # for the history: when the caller's request arrived
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        request_id = _header(headers, REQUEST_ID_HEADER) or str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        body = await _read_body(receive)
        method, path = scope["method"], scope["path"]

        delay = self.state.plan.delay_seconds(method, path)
        if delay > 0:
            await asyncio.sleep(delay)

        fault = self.state.plan.fault_for(method, path, body)
        if fault is None:
            response = await self._call_app(scope, body, request_id)
        elif fault.mode == "commit_then_fail":  # the change is made, the caller learns nothing of it
            committed = await self._call_app(scope, body, request_id)
            response = committed if fault.failure == "drop" else _fault_response(fault, request_id)
        else:  # error, late_commit: nothing is applied now
            response = _fault_response(fault, request_id)
        response.headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))

        dropped = fault is not None and fault.failure == "drop"
        seq = self._record(scope, headers, body, None if dropped else response, fault, received_at=received_at)
        if fault is not None and fault.mode == "late_commit":
            self._schedule_late_commit(fault, scope, headers, body, request_id, seq, received)

        if fault is not None and fault.failure == "timeout":
            await _sleep_unless_disconnected(receive, fault.hold_ms / 1000)
        if dropped:
            await _send_truncated(send, response)
        else:
            await _send(send, response)

    def _schedule_late_commit(
        self,
        fault: FaultRule,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        request_id: str,
        seq: int,
        received: float,
    ) -> None:
        """Apply the request ``commitAfterMs`` after it arrived, through the same path as any request, whatever
        became of the caller's connection by then; the outcome is recorded as its own history entry."""
        # Our own copy: the server is done with the original scope once the caller is answered.
        late_scope: Scope = {**scope, "state": dict(scope.get("state", {}))}

        async def apply() -> None:
            response = await self._call_app_or_500(late_scope, body, request_id)
            response.headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
            fault.committed += 1
            self._record(late_scope, headers, body, response, fault, late_commit_of=seq)

        self.state.late_commits.schedule(
            seq=seq,
            fault=fault.id,
            method=scope["method"],
            path=scope["path"],
            delay=max(0.0, received + fault.commit_after_ms / 1000 - time.monotonic()),
            apply=apply,
        )

    async def _call_app_or_500(self, scope: Scope, body: bytes, request_id: str) -> CapturedResponse:
        """``_call_app`` for a background task: no server is there to turn an exception into a 500."""
        try:
            return await self._call_app(scope, body, request_id)
        except Exception:
            logger.exception("late commit of %s %s failed", scope["method"], scope["path"])
            return _json_response(500, generic_error(500).render(request_id))

    async def _call_app(self, scope: Scope, body: bytes, request_id: str) -> CapturedResponse:
        if self.routes is not None:
            direct = self.routes.dispatch(scope, body, request_id)
            if direct is not None:
                return direct
        captured = CapturedResponse()
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured.status = message["status"]
                captured.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured.body += message.get("body", b"")

        await self.app(scope, replay, capture)
        return captured

    def _record(
        self,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        response: CapturedResponse | None,
        fault: FaultRule | None,
        late_commit_of: int | None = None,
        received_at: float | None = None,
    ) -> int:
        path: str = scope["path"]
        sandbox = None
        if path.startswith((BASE_PATH, ADHOC_BASE_PATH)):
            sandbox = (_header(headers, b"x-sandbox-name") or "").strip() or DEFAULT_SANDBOX
        return self.state.history.record(
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            status=response.status if response else None,
            response_headers=response.headers if response else [],
            response_body=response.body if response else None,
            fault=fault.id if fault else None,
            sandbox=sandbox,
            late_commit_of=late_commit_of,
            received_at=received_at,
        )


def _fault_response(fault: FaultRule, request_id: str) -> CapturedResponse:
    # A "timeout" answers what a client sees when Adobe's gateway gives up on a hung backend.
    status = 500 if fault.failure == "timeout" else fault.status
    payload: Any
    if isinstance(fault.body, dict):
        payload = ApiError(status, fault.body).render(request_id)
    elif fault.body is not None:
        payload = fault.body  # a list or a scalar: a nonsense answer, sent as it is
    else:
        payload = generic_error(status).render(request_id)
    response = _json_response(status, payload)
    if fault.retry_after is not None:
        response.headers.append((b"retry-after", _header_value(fault.retry_after)))
    return response


def _json_response(status: int, payload: Any) -> CapturedResponse:
    # json.dumps escapes every non-ASCII character: lone surrogates and NULs given in a rule's body are
    # sent as \ud800 and \u0000 instead of failing to encode.
    body = json.dumps(payload).encode("ascii")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return CapturedResponse(status, headers, body)


def _header_value(value: int | str) -> bytes:
    """A header value verbatim: a string's UTF-8 bytes (``"¹"`` is sent as 0xC2 0xB9), an integer's digits."""
    return str(value).encode("utf-8")


async def _read_body(receive: Receive) -> bytes:
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(chunks)


async def _send(send: Send, response: CapturedResponse) -> None:
    await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
    await send({"type": "http.response.body", "body": response.body})


async def _send_truncated(send: Send, response: CapturedResponse) -> None:
    """Announce the full Content-Length, send half the body, then return: uvicorn closes the connection
    ("ASGI callable returned without completing response") and the client sees a protocol error."""
    body = response.body or b"{}"
    headers = [(k, v) for k, v in response.headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body) + 64).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


async def _sleep_unless_disconnected(receive: Receive, seconds: float) -> None:
    """Hold the response, but stop early if the client goes away (so shutdown is not delayed)."""
    waiter = asyncio.ensure_future(receive())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None

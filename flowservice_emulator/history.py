"""The request history exposed at ``/_emulator/requests``: what each caller sent and received.

Secrets are scrubbed on the way in: the bearer token, and IMS ``client_secret`` in the form or the query.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .config import IMS_TOKEN_PATH

JsonObject = dict[str, Any]


@dataclass(eq=False, slots=True)
class _Exchange:
    """One request as it was sent and answered. Kept raw and turned into its JSON entry the first time the
    history is read: parsing and decoding every exchange as it happens cost more than many handlers do, and
    the entry depends on nothing but what is kept here."""

    seq: int
    time: float
    method: str
    path: str
    query: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    status: int | None
    response_headers: tuple[tuple[bytes, bytes], ...]
    response_body: bytes | None
    fault: str | None
    sandbox: str | None
    _entry: JsonObject | None = field(default=None, repr=False)

    def entry(self) -> JsonObject:
        if self._entry is None:
            self._entry = self._render()
        return self._entry

    def _render(self) -> JsonObject:
        request_headers = _headers(self.headers)
        if "authorization" in request_headers:
            request_headers["authorization"] = "Bearer ***"
        is_ims = self.path == IMS_TOKEN_PATH
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": _scrub_query(self.query) if is_ims else self.query,
            "headers": request_headers,
            "body": _parse_body(self.body, request_headers.get("content-type", ""), scrub_secret=is_ims),
            "status": self.status,
            "responseHeaders": _headers(self.response_headers),
            "responseBody": _parse_json(self.response_body),
            "fault": self.fault,
            "sandbox": self.sandbox,
        }


class RequestHistory:
    def __init__(self, limit: int) -> None:
        self._entries: deque[_Exchange] = deque(maxlen=limit)
        self._seq = itertools.count()

    def record(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        status: int | None,
        response_headers: list[tuple[bytes, bytes]],
        response_body: bytes | None,
        fault: str | None,
        sandbox: str | None,
    ) -> None:
        exchange = _Exchange(
            seq=next(self._seq),
            time=time.time(),
            method=method,
            path=path,
            query=query,
            headers=tuple(headers),
            body=body,
            status=status,
            response_headers=tuple(response_headers),
            response_body=response_body,
            fault=fault,
            sandbox=sandbox,
        )
        self._entries.append(exchange)

    def entries(self, since: int = 0) -> list[JsonObject]:
        return [exchange.entry() for exchange in self._entries if exchange.seq >= since]

    def clear(self) -> None:
        self._entries.clear()
        self._seq = itertools.count()


def _headers(raw: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _parse_body(body: bytes, content_type: str, *, scrub_secret: bool) -> Any:
    if not body:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if scrub_secret:
            form.pop("client_secret", None)
        return form
    parsed = _parse_json(body)
    return parsed if parsed is not None else body.decode("utf-8", "replace")


def _parse_json(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _scrub_query(query: str) -> str:
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "client_secret"])

"""The request history exposed at ``/_emulator/requests``: what each caller sent and received.

Secrets never leave it: the bearer token is masked, IMS ``client_secret`` dropped from the form and the
query, and every other secret (auth params, tokens) masked in request bodies, response bodies and queries
(:func:`~flowservice_emulator.masking.mask_document`). The raw bodies stay inside, so that a test can still
ask which requests carried a value it already knows (:meth:`RequestHistory.containing`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .config import IMS_TOKEN_PATH
from .masking import mask_document, mask_query

JsonObject = dict[str, Any]


@dataclass(eq=False, slots=True)
class _Exchange:
    """One request as it was sent and answered. Kept raw and turned into its JSON entry the first time the
    history is read: parsing and decoding every exchange as it happens cost more than many handlers do, and
    the entry depends on nothing but what is kept here."""

    seq: int
    time: float
    received_at: float
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
    late_commit_of: int | None
    _entry: JsonObject | None = field(default=None, repr=False)

    def entry(self, secret: frozenset[str]) -> JsonObject:
        if self._entry is None:
            self._entry = self._render(secret)
        return self._entry

    def _render(self, secret: frozenset[str]) -> JsonObject:
        request_headers = _headers(self.headers)
        if "authorization" in request_headers:
            request_headers["authorization"] = "Bearer ***"
        is_ims = self.path == IMS_TOKEN_PATH
        query = _scrub_query(self.query) if is_ims else self.query
        body = _parse_body(self.body, request_headers.get("content-type", ""), scrub_secret=is_ims)
        return {
            "seq": self.seq,
            "time": self.time,
            "receivedAt": self.received_at,
            "method": self.method,
            "path": self.path,
            "query": mask_query(query, secret),
            "headers": request_headers,
            "body": mask_document(body, secret),
            "status": self.status,
            "responseHeaders": _headers(self.response_headers),
            "responseBody": mask_document(_parse_json(self.response_body), secret),
            "fault": self.fault,
            "sandbox": self.sandbox,
            "lateCommitOf": self.late_commit_of,
        }

    def carries(self, value: str) -> bool:
        """Whether ``value`` is, whole, one of the strings of the raw request body (see ``containing``)."""
        if not self.body:
            return False
        content_type = _headers(self.headers).get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)
            return any(value == item for pair in form for item in pair)
        parsed = _parse_json(self.body)
        if parsed is None:
            return self.body.decode("utf-8", "replace") == value
        return any(value == text for text in _strings(parsed))


class RequestHistory:
    """``secret_names`` gives the keys whose values are masked in the entries (read at rendering time)."""

    def __init__(self, limit: int, secret_names: Callable[[], frozenset[str]] = frozenset) -> None:
        self._entries: deque[_Exchange] = deque(maxlen=limit)
        self._seq = itertools.count()
        self._secret_names = secret_names

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
        late_commit_of: int | None = None,
        received_at: float | None = None,
    ) -> int:
        """Keep one exchange; returns its ``seq``. ``received_at``: when the request arrived (wall
        clock), before any latency or fault; ``time`` is when it was answered."""
        now = time.time()
        exchange = _Exchange(
            seq=next(self._seq),
            time=now,
            received_at=now if received_at is None else received_at,
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
            late_commit_of=late_commit_of,
        )
        self._entries.append(exchange)
        return exchange.seq

    def entries(self, since: int = 0) -> list[JsonObject]:
        secret = self._secret_names()
        return [exchange.entry(secret) for exchange in self._entries if exchange.seq >= since]

    def containing(self, value: str) -> list[int]:
        """The ``seq`` of every kept request whose raw body holds ``value`` as a whole string: a JSON string
        (at any depth) or a form field name or value, or the whole body when it is neither.

        A test proves with it that a credential reached "Adobe" although the entries mask it. Whole strings
        only: a substring match would let anyone read a secret one character at a time (``"secretKey":"a``,
        ``"secretKey":"b``, ...), where this only confirms a value the caller already knows."""
        return [exchange.seq for exchange in self._entries if exchange.carries(value)]

    def clear(self) -> None:
        self._entries.clear()
        self._seq = itertools.count()


def _headers(raw: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), _header_text(value)
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _header_text(value: bytes) -> str:
    """A header value as httpx reads it: UTF-8 when it decodes (a fault's ``retryAfter: "¹"`` is sent so),
    else Latin-1, which decodes anything."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


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


def _strings(value: Any) -> Iterator[str]:
    """Every string of a parsed JSON document: values and keys, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


def _parse_json(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _scrub_query(query: str) -> str:
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "client_secret"])

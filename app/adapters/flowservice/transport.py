"""httpx's client API on aiohttp's wire: the transport under the Flow Service client.

Why: per call, httpx's own transport (httpcore's pure-Python HTTP/1.1 and its pool bookkeeping)
cost about twice the CPU of aiohttp's C-accelerated one (bench/ and docs/performance.md), and
seven calls per activation made it the largest cost after the database. The client code, its
timeouts and its exceptions stay httpx's: this module maps aiohttp's errors onto httpx's, so that
callers (retries, error messages) cannot tell the difference. Responses here are small JSON
documents, read whole before they are returned.

A request may carry a guard (extension ``before_send``): it is called once the request holds a
connection, taken from the pool or newly made, right before it is written, so that a caller paused
while waiting for the pool (or connecting) sends nothing once it may no longer send. What the guard
raises comes out unchanged (only aiohttp's and timeout errors are mapped; aiohttp itself would take
an OSError for a network failure, so a guard raises neither).
"""

from __future__ import annotations

import ssl
from types import SimpleNamespace

import aiohttp
import httpx

# The request extension holding the caller's guard (a callable that raises when it may no longer send).
BEFORE_SEND = "before_send"

# Most specific first: the first match names the failure.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS verification
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientOSError, httpx.NetworkError),
    (TimeoutError, httpx.TimeoutException),
    (aiohttp.ClientError, httpx.TransportError),
)


async def _before_send(session: aiohttp.ClientSession, context: SimpleNamespace, params: object) -> None:
    # aiohttp awaits this with the connection in hand and before writing the request; an exception
    # here aborts the request and propagates as is. The connector frees the pool slot but neither
    # closes the connection nor pools it again: it stays open until the server's keep-alive timeout
    # closes it, a cost paid only when a guard fails (a lost lease), never on the hot path.
    guard = context.trace_request_ctx
    if guard is not None:
        guard()


def _tracing() -> aiohttp.TraceConfig:
    # aiohttp's public seam into the connector. It costs about 10 µs of CPU a request (aiohttp then
    # records every request event), well under 1 % of an activation's.
    config = aiohttp.TraceConfig()
    config.on_connection_reuseconn.append(_before_send)  # from the pool, after any wait for it
    config.on_connection_create_end.append(_before_send)  # newly made (DNS, TCP, TLS done)
    return config


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, verify: bool | ssl.SSLContext = True) -> None:
        self._ssl = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trace_configs=[_tracing()]
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            async with self._client().request(
                request.method,
                str(request.url),
                headers=request.headers,
                data=request.content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),  # waiting for a pooled connection, then connecting
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                trace_request_ctx=request.extensions.get(BEFORE_SEND),
            ) as response:
                content = await response.read()
        except Exception as exc:
            for source, target in _ERRORS:
                if isinstance(exc, source):
                    raise target(f"{type(exc).__name__}: {exc}", request=request) from exc
            raise
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

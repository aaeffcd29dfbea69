"""httpx's client API on aiohttp's wire: the transport under the Flow Service client.

Why: per call, httpx's own transport (httpcore's pure-Python HTTP/1.1 and its pool bookkeeping)
cost about twice the CPU of aiohttp's C-accelerated one (bench/ and README "Performance"), and
seven calls per activation made it the largest cost after the database. The client code, its
timeouts and its exceptions stay httpx's: this module maps aiohttp's errors onto httpx's, so that
callers (retries, error messages) cannot tell the difference. Responses here are small JSON
documents, read whole before they are returned.
"""

from __future__ import annotations

import ssl

import aiohttp
import httpx

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


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, verify: bool | ssl.SSLContext = True) -> None:
        self._ssl = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
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

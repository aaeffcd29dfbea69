"""The HTTP transport of the Flow Service client: several small connection pools instead of one big one."""

from __future__ import annotations

import itertools
import math
import ssl

import httpx

# httpcore's pool re-examines every connection it holds on each request it queues and each response
# it closes (expiry with a readability probe of the socket, then, per idle connection, a count of
# all idle ones), so its CPU per request grows with the square of its size: with one pool of 64
# connections that bookkeeping was 15% of the gateway's CPU. Pools of at most this many stay cheap.
CONNECTIONS_PER_SHARD = 8


class ShardedPoolTransport(httpx.AsyncBaseTransport):
    """Round-robin over ``ceil(max_connections / CONNECTIONS_PER_SHARD)`` keep-alive pools that
    together hold ``max_connections``: same capacity and reuse, a fraction of the bookkeeping."""

    def __init__(self, *, max_connections: int, verify: bool | ssl.SSLContext = True) -> None:
        shards = max(1, math.ceil(max_connections / CONNECTIONS_PER_SHARD))
        per_shard = max(1, math.ceil(max_connections / shards))
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self._pools = [httpx.AsyncHTTPTransport(verify=verify, limits=limits) for _ in range(shards)]
        self._next = itertools.cycle(self._pools)

    @property
    def shards(self) -> int:
        return len(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

"""The Flow Service client as the saga sees it: every request it sends proves the lease is still
ours right before it leaves the process (the client checks it before each send, a 401's resend
included, and the transport again once it has a connection), so a worker that was paused past its
lease, wherever it was paused, makes no upstream call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.adapters.flowservice import Created, FlowServiceClient, ResourceKind

from .model import Lease


class LeasedFlowService:
    def __init__(self, client: FlowServiceClient, lease: Lease) -> None:
        self.client = client
        # Bound once: the guard is a plain call on the hot path; it reads the deadline the heartbeat moves.
        self._guard = lease.ensure

    async def list_all(
        self, collection: str, *, sandbox: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return await self.client.list_all(collection, sandbox=sandbox, params=params, guard=self._guard)

    async def create(self, kind: ResourceKind, body: dict[str, Any], *, sandbox: str) -> Created:
        return await self.client.create(kind, body, sandbox=sandbox, guard=self._guard)

    async def get(self, kind: ResourceKind, resource_id: str, *, sandbox: str) -> dict[str, Any]:
        return await self.client.get(kind, resource_id, sandbox=sandbox, guard=self._guard)

    async def find_by_name(self, kind: ResourceKind, name: str, *, sandbox: str) -> dict[str, Any] | None:
        return await self.client.find_by_name(kind, name, sandbox=sandbox, guard=self._guard)

    async def find_all_by_name(self, kind: ResourceKind, name: str, *, sandbox: str) -> list[dict[str, Any]]:
        return await self.client.find_all_by_name(kind, name, sandbox=sandbox, guard=self._guard)

    async def patch(
        self, kind: ResourceKind, resource_id: str, operations: list[dict[str, Any]], *, etag: str, sandbox: str
    ) -> str | None:
        return await self.client.patch(kind, resource_id, operations, etag=etag, sandbox=sandbox, guard=self._guard)

    async def delete(self, kind: ResourceKind, resource_id: str, *, sandbox: str) -> bool:
        return await self.client.delete(kind, resource_id, sandbox=sandbox, guard=self._guard)

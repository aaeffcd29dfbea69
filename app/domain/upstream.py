"""The Flow Service client as the saga sees it: every call first proves the lease is still ours,
so a worker that was paused past its lease makes no upstream call."""

from __future__ import annotations

from typing import Any

from app.adapters.flowservice import Created, FlowServiceClient, ResourceKind

from .model import Lease


class LeasedFlowService:
    def __init__(self, client: FlowServiceClient, lease: Lease) -> None:
        self.client = client
        self._lease = lease

    async def create(self, kind: ResourceKind, body: dict[str, Any], *, sandbox: str) -> Created:
        self._lease.ensure()
        return await self.client.create(kind, body, sandbox=sandbox)

    async def get(self, kind: ResourceKind, resource_id: str, *, sandbox: str) -> dict[str, Any]:
        self._lease.ensure()
        return await self.client.get(kind, resource_id, sandbox=sandbox)

    async def find_by_name(self, kind: ResourceKind, name: str, *, sandbox: str) -> dict[str, Any] | None:
        self._lease.ensure()
        return await self.client.find_by_name(kind, name, sandbox=sandbox)

    async def patch(
        self, kind: ResourceKind, resource_id: str, operations: list[dict[str, Any]], *, etag: str, sandbox: str
    ) -> str | None:
        self._lease.ensure()
        return await self.client.patch(kind, resource_id, operations, etag=etag, sandbox=sandbox)

    async def delete(self, kind: ResourceKind, resource_id: str, *, sandbox: str) -> bool:
        self._lease.ensure()
        return await self.client.delete(kind, resource_id, sandbox=sandbox)

"""The Flow Service as a run sees it. Every request it sends proves the lease is still ours right
before it leaves the process (the client checks it before each send, a 401's resend included, and
the transport again once it has a connection), so a worker that was paused past its lease, wherever
it was paused, makes no upstream call. And it is the run's call log: each call becomes an event row
on the lease, which the run's next fenced write takes (one statement per step, not one per call)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Lease
from .ports import Created, FlowService, QueryParams, ResourceKind, UpstreamCall


class LeasedFlowService:
    def __init__(self, client: FlowService, lease: Lease, **labels: Any) -> None:
        self.client = client
        self._lease = lease
        # Bound once: the guard is a plain call on the hot path; it reads the deadline the heartbeat moves.
        self._guard = lease.ensure
        self._labels: dict[str, Any] = {"activation_id": str(lease.activation_id), "epoch": lease.epoch, **labels}

    # ------------------------------------------------------------------ the call log (CallLog)
    @property
    def labels(self) -> Mapping[str, Any]:
        return self._labels

    def record(self, call: UpstreamCall) -> None:
        self._lease.calls.append(
            {
                "type": "upstream",
                "step": self._labels.get("step"),
                "data": {
                    "method": call.method,
                    "path": call.path,
                    "status": call.status,
                    "durationMs": call.duration_ms,
                    "attempt": self._labels.get("attempt"),
                    "requestId": call.request_id,
                    "adobeRequestId": call.adobe_request_id,
                    "error": call.error,
                },
            }
        )

    # ------------------------------------------------------------------ the calls
    async def list_all(
        self, collection: str, *, sandbox: str, params: QueryParams | None = None
    ) -> list[dict[str, Any]]:
        return await self.client.list_all(collection, sandbox=sandbox, params=params, guard=self._guard, log=self)

    async def create(self, kind: ResourceKind, body: dict[str, Any], *, sandbox: str) -> Created:
        return await self.client.create(kind, body, sandbox=sandbox, guard=self._guard, log=self)

    async def get(self, kind: ResourceKind, resource_id: str, *, sandbox: str) -> dict[str, Any]:
        return await self.client.get(kind, resource_id, sandbox=sandbox, guard=self._guard, log=self)

    async def find_by_name(self, kind: ResourceKind, name: str, *, sandbox: str) -> dict[str, Any] | None:
        matches = await self.find_all_by_name(kind, name, sandbox=sandbox)
        return matches[0] if matches else None

    async def find_all_by_name(self, kind: ResourceKind, name: str, *, sandbox: str) -> list[dict[str, Any]]:
        return await self.client.find_all_by_name(kind, name, sandbox=sandbox, guard=self._guard, log=self)

    async def patch(
        self, kind: ResourceKind, resource_id: str, operations: list[dict[str, Any]], *, etag: str, sandbox: str
    ) -> str | None:
        return await self.client.patch(
            kind, resource_id, operations, etag=etag, sandbox=sandbox, guard=self._guard, log=self
        )

    async def delete(self, kind: ResourceKind, resource_id: str, *, sandbox: str) -> bool:
        return await self.client.delete(kind, resource_id, sandbox=sandbox, guard=self._guard, log=self)

    async def flow_action(self, flow_id: str, op: str, *, sandbox: str) -> str | None:
        return await self.client.flow_action(flow_id, op, sandbox=sandbox, guard=self._guard, log=self)

    async def adhoc_run(self, activation_info: Mapping[str, list[str]], *, sandbox: str) -> dict[str, Any]:
        return await self.client.adhoc_run(activation_info, sandbox=sandbox, guard=self._guard, log=self)


def take_calls(lease: Lease) -> list[dict[str, Any]]:
    """The call rows recorded so far (in the order the calls finished), emptied. Taken under the
    lease's write lock, just before the write that carries them: writes reach the database in the
    order they took their rows, so the timeline keeps call order."""
    if not lease.calls:
        return []
    rows = lease.calls[:]
    lease.calls.clear()
    return rows

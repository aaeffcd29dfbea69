"""Destination resolution: name → connection spec, auth spec, target mode and flow spec.

The catalog hardly ever changes, so both spec lists are cached for SPEC_CACHE_TTL_SECONDS and
fetched once for any number of concurrent activations.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import StepFailed

PROFILE_STORE_SPEC_ID = "8a9c3494-9708-43d7-ae3f-cda01e5030e1"
SPEC_VERSION = "1.0"

# Which auth spec and target mode each storage kind uses on an email-marketing destination (flow-service.md §7.3-7.4).
AUTH_SPEC_BY_STORAGE = {"s3": "S3", "sftp_password": "SFTP with Password", "sftp_ssh": "SFTP with SSH Key"}
TARGET_MODE_BY_STORAGE = {"s3": "S3", "sftp": "FTP"}


@dataclass(frozen=True, slots=True)
class ResolvedDestination:
    name: str
    connection_spec_id: str
    connection_spec_version: str
    flow_spec_id: str
    flow_spec_version: str
    auth_spec_name: str
    target_mode: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "connectionSpecId": self.connection_spec_id,
            "connectionSpecVersion": self.connection_spec_version,
            "flowSpecId": self.flow_spec_id,
            "flowSpecVersion": self.flow_spec_version,
            "authSpecName": self.auth_spec_name,
            "targetMode": self.target_mode,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolvedDestination:
        return cls(
            name=data["name"],
            connection_spec_id=data["connectionSpecId"],
            connection_spec_version=data.get("connectionSpecVersion", SPEC_VERSION),
            flow_spec_id=data["flowSpecId"],
            flow_spec_version=data.get("flowSpecVersion", SPEC_VERSION),
            auth_spec_name=data["authSpecName"],
            target_mode=data["targetMode"],
        )


class SpecSource(Protocol):
    """Where the specs are listed from: the saga passes its LeasedFlowService, so that these requests
    are guarded by the lease like every other (a FlowServiceClient fits too, unguarded)."""

    async def list_all(self, collection: str, *, sandbox: str) -> list[dict[str, Any]]: ...


class _Cached:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.value: list[dict[str, Any]] | None = None
        self.fetched_at = 0.0
        self.lock = asyncio.Lock()

    def fresh(self) -> list[dict[str, Any]] | None:
        if self.value is not None and time.monotonic() - self.fetched_at < self.ttl:
            return self.value
        return None


class DestinationCatalog:
    def __init__(self, ttl_seconds: float) -> None:
        self._connection_specs = _Cached(ttl_seconds)
        self._flow_specs = _Cached(ttl_seconds)
        self.fetches = 0

    async def resolve(
        self, client: SpecSource, *, destination: str, storage_kind: str, sandbox: str
    ) -> ResolvedDestination:
        connection_specs = await self._get(self._connection_specs, client, "connectionSpecs", sandbox)
        wanted = destination.strip().casefold()
        matches = [spec for spec in connection_specs if str(spec.get("name", "")).casefold() == wanted]
        if not matches:
            raise StepFailed(
                "Unknown destination",
                f"no destination named {destination!r} in the Flow Service connection-spec catalog",
                type_="unknown-destination",
            )
        spec = matches[0]
        auth_name = AUTH_SPEC_BY_STORAGE[storage_kind]
        auth_names = [a.get("name") for a in spec.get("authSpec") or []]
        if auth_name not in auth_names:
            raise StepFailed(
                "Storage not supported by destination",
                f"destination {spec['name']!r} does not accept {auth_name!r} credentials "
                f"(it accepts: {', '.join(str(n) for n in auth_names) or 'none'})",
                type_="unsupported-storage",
            )
        mode = TARGET_MODE_BY_STORAGE[storage_kind.split("_")[0]]
        modes = _target_modes(spec)
        if modes and mode not in modes:
            raise StepFailed(
                "Storage not supported by destination",
                f"destination {spec['name']!r} has no {mode!r} target mode (it has: {', '.join(modes)})",
                type_="unsupported-storage",
            )
        flow_specs = await self._get(self._flow_specs, client, "flowSpecs", sandbox)
        flow = next(
            (
                f
                for f in flow_specs
                if PROFILE_STORE_SPEC_ID in (f.get("sourceConnectionSpecIds") or [])
                and spec["id"] in (f.get("targetConnectionSpecIds") or [])
            ),
            None,
        )
        if flow is None:
            raise StepFailed(
                "No flow spec for destination",
                f"no flow spec links the Profile store to destination {spec['name']!r}",
                type_="unknown-destination",
            )
        return ResolvedDestination(
            name=str(spec["name"]),
            connection_spec_id=str(spec["id"]),
            connection_spec_version=str(spec.get("version") or SPEC_VERSION),
            flow_spec_id=str(flow["id"]),
            flow_spec_version=str(flow.get("version") or SPEC_VERSION),
            auth_spec_name=auth_name,
            target_mode=mode,
        )

    async def _get(self, cache: _Cached, client: SpecSource, collection: str, sandbox: str) -> list[dict[str, Any]]:
        value = cache.fresh()
        if value is not None:
            return value
        # One fetch for any number of concurrent resolutions. It runs under the guard of the run that
        # holds the lock: if that run's lease is lost, the fetch fails and the next waiter fetches.
        async with cache.lock:
            value = cache.fresh()
            if value is None:
                value = await client.list_all(collection, sandbox=sandbox)
                self.fetches += 1
                cache.value, cache.fetched_at = value, time.monotonic()
            return value


def _target_modes(spec: dict[str, Any]) -> list[str]:
    target = spec.get("targetSpec") or {}
    mode = ((target.get("spec") or {}).get("properties") or {}).get("mode") or {}
    return [str(m) for m in mode.get("enum") or []]

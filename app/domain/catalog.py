"""Destination resolution: name → connection spec, auth spec, target mode and flow spec.

The catalog hardly ever changes, so both spec lists are cached for SPEC_CACHE_TTL_SECONDS and
fetched once for any number of concurrent activations and requests.

Two readers share the cache: the saga's first step (:meth:`DestinationCatalog.resolve`) and the API,
which lists the destinations (:meth:`DestinationCatalog.destinations`) and refuses a request the
catalog cannot take before accepting it (:class:`DestinationCheck`). Both apply the same rules, so a
destination listed with a storage type is one the saga resolves with it, and no other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

from .errors import StepFailed

log = structlog.get_logger(__name__)

PROFILE_STORE_SPEC_ID = "8a9c3494-9708-43d7-ae3f-cda01e5030e1"
SPEC_VERSION = "1.0"

# What the gateway activates to: the four email-marketing destinations (flow-service.md §7.1), by
# connection spec id. Other destinations of the catalog may take the same credentials (the legacy
# SFTP one takes "SFTP with SSH Key", and shares Eloqua's flow spec) but are not what this is for.
EMAIL_MARKETING_SPEC_IDS = frozenset(
    {
        "0b23e41a-cb4a-4321-a78f-3b654f5d7d97",  # Adobe Campaign
        "c1e44b6b-e7c8-404b-9031-58f0ef760604",  # Oracle Eloqua
        "a5e28ddf-e265-426e-83a1-9d03a3a6822b",  # Oracle Responsys
        "f599a5b3-60a7-4951-950a-cc4115c7ea27",  # Salesforce Marketing Cloud
    }
)

# Which auth spec and target mode each storage kind uses on an email-marketing destination (flow-service.md §7.3-7.4).
AUTH_SPEC_BY_STORAGE = {"s3": "S3", "sftp_password": "SFTP with Password", "sftp_ssh": "SFTP with SSH Key"}
TARGET_MODE_BY_STORAGE = {"s3": "S3", "sftp": "FTP"}
# The request's words for the storage kinds: `storage.type`, and the SFTP credential it carries.
SFTP_AUTH_BY_KIND = {"sftp_password": "password", "sftp_ssh": "sshKey"}


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


@dataclass(frozen=True, slots=True)
class Destination:
    """A destination the gateway can activate to, and the storage it takes, in the request's words."""

    name: str
    connection_spec_id: str
    flow_spec_id: str
    storage: tuple[str, ...]  # "s3", "sftp"
    sftp_auth: tuple[str, ...]  # "password", "sshKey"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the catalog cannot take a request: which part of it, and the valid choices."""

    field: Literal["destination", "storage", "sftpAuth"]
    message: str


def check_choice(
    destinations: Sequence[Destination], *, destination: str, storage_type: str, sftp_auth: str | None
) -> Refusal | None:
    """The first part of a request that the listed destinations cannot take, if any."""
    wanted = destination.strip().casefold()
    found = next((d for d in destinations if d.name.casefold() == wanted), None)
    if found is None:
        names = ", ".join(d.name for d in destinations) or "none"
        return Refusal("destination", f"is not a destination the gateway can activate to; valid choices: {names}")
    if storage_type not in found.storage:
        return Refusal(
            "storage", f"{found.name} does not accept {storage_type} storage; it accepts: {', '.join(found.storage)}"
        )
    if storage_type == "sftp" and sftp_auth not in found.sftp_auth:
        return Refusal(
            "sftpAuth",
            f"{found.name} does not accept SFTP {sftp_auth} authentication; it accepts: {', '.join(found.sftp_auth)}",
        )
    return None


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
        # destinations() of the cached spec lists (held, compared by identity): computed once per fetch.
        self._derived: tuple[list[dict[str, Any]], list[dict[str, Any]], list[Destination]] | None = None

    async def resolve(
        self, client: SpecSource, *, destination: str, storage_kind: str, sandbox: str
    ) -> ResolvedDestination:
        connection_specs = await self._get(self._connection_specs, client, "connectionSpecs", sandbox)
        spec = _named(_supported(connection_specs), destination)
        if spec is None:
            # The API refuses unknown names before accepting them whenever it can read the catalog;
            # this is the request it accepted while it could not, so say what would have worked.
            names = ", ".join(d.name for d in await self.destinations(client, sandbox=sandbox)) or "none"
            raise StepFailed(
                "Unknown destination",
                f"no destination named {destination!r} in the Flow Service connection-spec catalog"
                f" (valid choices: {names})",
                type_="unknown-destination",
            )
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
        flow = _profile_flow(flow_specs, str(spec["id"]))
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

    async def destinations(self, client: SpecSource, *, sandbox: str) -> list[Destination]:
        """Every destination that :meth:`resolve` resolves with at least one storage kind, by name."""
        connection_specs = await self._get(self._connection_specs, client, "connectionSpecs", sandbox)
        flow_specs = await self._get(self._flow_specs, client, "flowSpecs", sandbox)
        return self._derive(connection_specs, flow_specs)

    def cached_destinations(self) -> list[Destination] | None:
        """destinations() without any upstream call, when both spec lists are cached and fresh."""
        connection_specs, flow_specs = self._connection_specs.fresh(), self._flow_specs.fresh()
        if connection_specs is None or flow_specs is None:
            return None
        return self._derive(connection_specs, flow_specs)

    def _derive(self, connection_specs: list[dict[str, Any]], flow_specs: list[dict[str, Any]]) -> list[Destination]:
        derived = self._derived
        if derived is not None and derived[0] is connection_specs and derived[1] is flow_specs:
            return derived[2]
        seen: set[str] = set()
        found: list[Destination] = []
        for spec in _supported(connection_specs):
            name = str(spec.get("name", ""))
            if name.casefold() in seen:  # resolve() takes the first spec of a name: never this one
                continue
            seen.add(name.casefold())
            kinds = _supported_kinds(spec)
            flow = _profile_flow(flow_specs, str(spec.get("id")))
            if not kinds or flow is None:
                continue
            found.append(
                Destination(
                    name=name,
                    connection_spec_id=str(spec["id"]),
                    flow_spec_id=str(flow["id"]),
                    storage=tuple(dict.fromkeys(kind.split("_")[0] for kind in kinds)),
                    sftp_auth=tuple(SFTP_AUTH_BY_KIND[kind] for kind in kinds if kind in SFTP_AUTH_BY_KIND),
                )
            )
        destinations = sorted(found, key=lambda d: d.name.casefold())
        self._derived = (connection_specs, flow_specs, destinations)
        return destinations

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


class CatalogUnavailable(Exception):
    """The catalog could not be read in time (Adobe down, slow, or refusing us)."""


class DestinationCheck:
    """The API's use of the catalog: list the destinations, and screen a request before it is accepted.

    A request must not wait on Adobe for long: each read is bounded by ``timeout`` seconds. The read
    itself goes on (shielded, one at a time) after a caller stopped waiting, so that a slow Adobe still
    fills the cache for the requests that follow."""

    def __init__(self, catalog: DestinationCatalog, client: SpecSource, *, sandbox: str, timeout: float) -> None:
        self._catalog = catalog
        self._client = client
        # The connection specs are the same in every sandbox (the saga's cache already assumes so):
        # reading them in the configured one never sends a caller's sandbox upstream unchecked.
        self._sandbox = sandbox
        self._timeout = timeout
        self._reading: asyncio.Task[list[Destination]] | None = None

    async def listing(self) -> list[Destination]:
        """The destinations, or CatalogUnavailable."""
        cached = self._catalog.cached_destinations()
        if cached is not None:  # the usual case: no task, no wait (this runs on every POST /activations)
            return cached
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._catalog.destinations(self._client, sandbox=self._sandbox))
            self._reading.add_done_callback(_consume_error)
        try:
            return await asyncio.wait_for(asyncio.shield(self._reading), self._timeout)
        except TimeoutError:
            raise CatalogUnavailable(f"no answer within {self._timeout:g} s") from None
        except Exception as exc:  # any failure to read is the same to the caller: the catalog is unknown
            raise CatalogUnavailable(type(exc).__name__) from exc

    async def refusal(self, *, destination: str, storage_type: str, sftp_auth: str | None) -> Refusal | None:
        """Why the catalog cannot take this request; None when it can, or when the catalog cannot be
        read: then the request is accepted and the saga resolves the destination, as it always did."""
        try:
            destinations = await self.listing()
        except CatalogUnavailable as exc:
            log.warning("destination catalog unreadable: accepting unchecked", reason=str(exc))
            return None
        return check_choice(destinations, destination=destination, storage_type=storage_type, sftp_auth=sftp_auth)

    async def resolution(
        self, *, destination: str, storage_type: str, sftp_auth: str | None
    ) -> ResolvedDestination | Refusal:
        """What the saga's first step would resolve this request to, or why the catalog cannot take
        it (the dry run of a create plans with it). Unlike :meth:`refusal` there is no accepting
        unchecked: CatalogUnavailable when the catalog cannot be read in time."""
        destinations = await self.listing()  # bounded by the timeout; both spec lists are cached after it
        refused = check_choice(destinations, destination=destination, storage_type=storage_type, sftp_auth=sftp_auth)
        if refused is not None:
            return refused
        kind = storage_type if sftp_auth is None else _KIND_BY_SFTP_AUTH[sftp_auth]
        return await self._catalog.resolve(
            self._client, destination=destination, storage_kind=kind, sandbox=self._sandbox
        )


_KIND_BY_SFTP_AUTH = {auth: kind for kind, auth in SFTP_AUTH_BY_KIND.items()}


def _consume_error(task: asyncio.Task[list[Destination]]) -> None:
    # A read that nobody awaits any more (its callers timed out) must not log "exception never retrieved".
    if not task.cancelled():
        task.exception()


def _supported(connection_specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [spec for spec in connection_specs if spec.get("id") in EMAIL_MARKETING_SPEC_IDS]


def _named(connection_specs: list[dict[str, Any]], destination: str) -> dict[str, Any] | None:
    wanted = destination.strip().casefold()
    return next((spec for spec in connection_specs if str(spec.get("name", "")).casefold() == wanted), None)


def _supported_kinds(spec: dict[str, Any]) -> list[str]:
    """The storage kinds :meth:`DestinationCatalog.resolve` accepts for this connection spec."""
    auth_names = {a.get("name") for a in spec.get("authSpec") or []}
    modes = _target_modes(spec)
    return [
        kind
        for kind, auth_name in AUTH_SPEC_BY_STORAGE.items()
        if auth_name in auth_names and (not modes or TARGET_MODE_BY_STORAGE[kind.split("_")[0]] in modes)
    ]


def _profile_flow(flow_specs: list[dict[str, Any]], connection_spec_id: str) -> dict[str, Any] | None:
    return next(
        (
            f
            for f in flow_specs
            if PROFILE_STORE_SPEC_ID in (f.get("sourceConnectionSpecIds") or [])
            and connection_spec_id in (f.get("targetConnectionSpecIds") or [])
        ),
        None,
    )


def _target_modes(spec: dict[str, Any]) -> list[str]:
    target = spec.get("targetSpec") or {}
    mode = ((target.get("spec") or {}).get("properties") or {}).get("mode") or {}
    return [str(m) for m in mode.get("enum") or []]

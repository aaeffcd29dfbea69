"""The eight saga steps of contract §2. Each step is one small class with its forward call and its
compensation side by side; the order and dependencies of the saga are the list at the bottom.
A new step is one class; a change to the list is a new version of the create workflow beside this
one (workflows.py), so that activations already under way keep the steps they started with."""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from .catalog import PROFILE_STORE_SPEC_ID, SPEC_VERSION, DestinationCatalog, ResolvedDestination
from .duplicates import Duplicate, outcome_was_unknown, settled_at
from .errors import StepFailed
from .model import Activation, StepState
from .ports import Cipher, ResourceKind, UpstreamStatusError
from .upstream import LeasedFlowService

SEGMENT_SELECTORS = "/transformations/0/params/segmentSelectors/selectors"
PROFILE_SELECTORS = "/transformations/0/params/profileSelectors/selectors"
# Re-reading the etag and patching again after a 412 is safe (we only add what is missing).
_MAX_ETAG_REFRESHES = 3


@dataclass(slots=True)
class StepContext:
    activation: Activation
    upstream: LeasedFlowService
    catalog: DestinationCatalog
    cipher: Cipher
    attempt: int  # 1-based, counted in the database across restarts
    # The saga's steps (the duplicate sweeps visit every create) and how long an unanswered
    # create may still commit upstream (see duplicates.py).
    steps: Sequence[SagaStep] = ()
    late_commit_window: timedelta = timedelta(0)
    # The steps of the operation being run, when it is not the create (whose are activation.steps),
    # and what it was queued with (an export: its audiences).
    operation_steps: dict[str, StepState] = field(default_factory=dict)
    operation_params: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome_unknown(self) -> bool:
        """An earlier attempt may have reached Adobe: look before creating again."""
        return self.attempt > 1

    @property
    def sandbox(self) -> str:
        return self.activation.sandbox

    @property
    def destination(self) -> ResolvedDestination:
        if self.activation.destination is None:
            raise StepFailed("Destination not resolved", "the destination has not been resolved yet")
        return ResolvedDestination.from_json(self.activation.destination)

    async def wait_until_settled(self) -> None:
        """Until no create of this activation can commit late any more (see duplicates.py)."""
        creates = [self.activation.steps[step.name] for step in self.steps if isinstance(step, CreateResourceStep)]
        deadline = settled_at(creates, self.late_commit_window)
        if deadline is not None:
            await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()))

    async def wait_until_settled_since(self, *states: StepState) -> None:
        """Until no call of these steps' attempts whose answer never came can still commit late."""
        deadline = settled_at(states, self.late_commit_window)
        if deadline is not None:
            await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()))

    def resource(self, step: type[SagaStep]) -> str:
        resource_id = self.activation.resource(step.name)
        if resource_id is None:
            raise StepFailed("Missing resource", f"step {step.name} has no upstream resource id")
        return resource_id


@dataclass(slots=True)
class StepResult:
    resource_id: str | None = None
    # Columns of the activation to update together with the step (e.g. flow_id, flow_etag).
    activation_values: dict[str, Any] = field(default_factory=dict)
    # Copies of created resources that a late commit left behind, found and deleted by this step.
    duplicates: list[Duplicate] = field(default_factory=list)
    # What the operation's last step produced for the caller (an export: the runs it started).
    operation_result: dict[str, Any] | None = None


@dataclass(slots=True)
class Compensation:
    """What undoing a step deleted: its resource (recorded, or found by name) and any copies."""

    resource_id: str | None = None
    duplicates: list[Duplicate] = field(default_factory=list)


class SagaStep(ABC):
    name: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()
    # The upstream collection this step creates in, if any: it is what compensation deletes.
    kind: ClassVar[ResourceKind | None] = None

    @abstractmethod
    async def forward(self, ctx: StepContext) -> StepResult: ...

    async def compensate(self, ctx: StepContext, recorded: str | None) -> Compensation:
        """Undo what the step did upstream; a step that creates nothing has nothing to undo."""
        return Compensation(resource_id=recorded)


class CreateResourceStep(SagaStep):
    """POST a resource at most once: its name is derived from the activation and the step, and any
    retry looks it up by that name before creating it again (Flow Service has no idempotency key)."""

    kind: ClassVar[ResourceKind]
    label: ClassVar[str]

    @abstractmethod
    def body(self, ctx: StepContext, name: str) -> dict[str, Any]: ...

    def result(self, resource_id: str, etag: str | None) -> StepResult:
        return StepResult(resource_id=resource_id)

    def resource_name(self, ctx: StepContext) -> str:
        return resource_name(ctx.activation, self.label)

    async def forward(self, ctx: StepContext) -> StepResult:
        name = self.resource_name(ctx)
        if ctx.outcome_unknown:
            existing = await ctx.upstream.find_by_name(self.kind, name, sandbox=ctx.sandbox)
            if existing is not None:
                return self.result(str(existing["id"]), existing.get("etag"))
        created = await ctx.upstream.create(self.kind, self.body(ctx, name), sandbox=ctx.sandbox)
        return self.result(created.id, created.etag)

    async def copies(self, ctx: StepContext) -> list[str]:
        """Every resource upstream named for this step of this activation, oldest lookup order."""
        found = await ctx.upstream.find_all_by_name(self.kind, self.resource_name(ctx), sandbox=ctx.sandbox)
        return [str(item["id"]) for item in found]

    def may_have_copies(self, ctx: StepContext) -> bool:
        """Whether more than one create of this step may have reached Adobe. Every attempt is
        recorded (attempts + 1) before its request leaves, and a worker past its lease sends
        nothing, so a step whose only attempt was answered made exactly what it recorded: the
        fault-free path costs no listing."""
        return outcome_was_unknown(ctx.activation.steps[self.name])

    async def compensate(self, ctx: StepContext, recorded: str | None) -> Compensation:
        """Delete the recorded resource and every other copy named for this step: a creation whose
        answer never came, or came late, may have made one or more (404 counts as deleted)."""
        if not self.may_have_copies(ctx):
            if recorded is not None:
                await ctx.upstream.delete(self.kind, recorded, sandbox=ctx.sandbox)
            return Compensation(resource_id=recorded)
        copies = await self.copies(ctx)
        ids = list(dict.fromkeys([recorded, *copies] if recorded else copies))
        for resource_id in ids:
            await ctx.upstream.delete(self.kind, resource_id, sandbox=ctx.sandbox)
        kept = ids[0] if ids else None
        return Compensation(resource_id=kept, duplicates=[self.duplicate(i) for i in ids[1:]])

    async def remove_duplicates(self, ctx: StepContext) -> list[Duplicate]:
        """Delete every copy but the recorded resource (the forward path's sweep)."""
        recorded = ctx.activation.resource(self.name)
        duplicates = [self.duplicate(i) for i in await self.copies(ctx) if i != recorded]
        for duplicate in duplicates:
            await ctx.upstream.delete(self.kind, duplicate.resource_id, sandbox=ctx.sandbox)
        return duplicates

    def duplicate(self, resource_id: str) -> Duplicate:
        return Duplicate(step=self.name, kind=self.kind.value, resource_id=resource_id)


def resource_name(activation: Activation, label: str) -> str:
    return named_resource(activation.name, activation.id, label)


def named_resource(name: str | None, activation_id: uuid.UUID, label: str) -> str:
    # Commas would split a `property=name==…` filter into alternatives, so the label drops them.
    prefix = (name or "Activation Gateway").replace(",", " ").strip()
    return f"{prefix} - {label} [ag:{activation_id}]"


def _description(ctx: StepContext) -> str:
    return f"Created by Activation Gateway for activation {ctx.activation.id}"


# --------------------------------------------------------------------------------------- the steps
class ResolveDestination(SagaStep):
    name = "resolve_destination"

    async def forward(self, ctx: StepContext) -> StepResult:
        storage = ctx.activation.storage
        kind = "s3" if storage["type"] == "s3" else f"sftp_{'ssh' if storage['authMethod'] == 'sshKey' else 'password'}"
        resolved = await ctx.catalog.resolve(
            ctx.upstream, destination=ctx.activation.destination_name, storage_kind=kind, sandbox=ctx.sandbox
        )
        return StepResult(activation_values={"destination": resolved.to_json()})


class CreateSourceBaseConnection(CreateResourceStep):
    name = "create_source_base_connection"
    depends_on = ("resolve_destination",)
    kind = ResourceKind.CONNECTIONS
    label = "Profile store base connection"

    def body(self, ctx: StepContext, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "description": _description(ctx),
            "connectionSpec": {"id": PROFILE_STORE_SPEC_ID, "version": SPEC_VERSION},
        }


class CreateSourceConnection(CreateResourceStep):
    name = "create_source_connection"
    depends_on = ("create_source_base_connection",)
    kind = ResourceKind.SOURCE_CONNECTIONS
    label = "Profile store source connection"

    def body(self, ctx: StepContext, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "description": _description(ctx),
            "baseConnectionId": ctx.resource(CreateSourceBaseConnection),
            "connectionSpec": {"id": PROFILE_STORE_SPEC_ID, "version": SPEC_VERSION},
            "data": {"format": "CSV", "schema": None},
            "params": {},
        }


class CreateTargetBaseConnection(CreateResourceStep):
    name = "create_target_base_connection"
    depends_on = ("resolve_destination",)
    kind = ResourceKind.CONNECTIONS
    label = "destination base connection"

    def body(self, ctx: StepContext, name: str) -> dict[str, Any]:
        destination = ctx.destination
        return {
            "name": name,
            "description": _description(ctx),
            "auth": {"specName": destination.auth_spec_name, "params": self._auth_params(ctx)},
            "connectionSpec": {"id": destination.connection_spec_id, "version": destination.connection_spec_version},
        }

    def _auth_params(self, ctx: StepContext) -> dict[str, Any]:
        if ctx.activation.credentials_ciphertext is None:
            raise StepFailed("Credentials gone", "the stored credentials were already erased")
        secrets = ctx.cipher.decrypt(ctx.activation.credentials_ciphertext)
        storage = ctx.activation.storage
        if storage["type"] == "s3":
            return {"accessId": storage["accessId"], "secretKey": secrets["secretKey"]}
        params: dict[str, Any] = {
            "domain": storage["host"],
            "host": storage["host"],
            "port": storage["port"],
            "username": storage["username"],
        }
        secret_field = storage["authMethod"]  # "password" or "sshKey"
        params[secret_field] = secrets[secret_field]
        return params

    def result(self, resource_id: str, etag: str | None) -> StepResult:
        # Credentials are needed for this step only: erase them as soon as the connection exists.
        return StepResult(resource_id=resource_id, activation_values={"credentials_ciphertext": None})


class CreateTargetConnection(CreateResourceStep):
    name = "create_target_connection"
    depends_on = ("create_target_base_connection",)
    kind = ResourceKind.TARGET_CONNECTIONS
    label = "destination target connection"

    def body(self, ctx: StepContext, name: str) -> dict[str, Any]:
        destination = ctx.destination
        storage = ctx.activation.storage
        params: dict[str, Any]
        if storage["type"] == "s3":
            params = {"mode": destination.target_mode, "bucketName": storage["bucketName"], "path": storage["path"]}
        else:
            params = {"mode": destination.target_mode, "remotePath": storage["path"]}
        params["format"] = "CSV"
        return {
            "name": name,
            "description": _description(ctx),
            "baseConnectionId": ctx.resource(CreateTargetBaseConnection),
            "connectionSpec": {"id": destination.connection_spec_id, "version": destination.connection_spec_version},
            "data": {"format": "json", "schema": {"id": "1.0", "version": "1.0"}},
            "params": params,
        }


class CreateFlow(CreateResourceStep):
    name = "create_flow"
    depends_on = ("create_source_connection", "create_target_connection")
    kind = ResourceKind.FLOWS
    label = "dataflow"

    def body(self, ctx: StepContext, name: str) -> dict[str, Any]:
        destination = ctx.destination
        return {
            "name": name,
            "description": _description(ctx),
            "flowSpec": {"id": destination.flow_spec_id, "version": destination.flow_spec_version},
            "sourceConnectionIds": [ctx.resource(CreateSourceConnection)],
            "targetConnectionIds": [ctx.resource(CreateTargetConnection)],
            "transformations": [
                {
                    "name": "GeneralTransform",
                    "params": {
                        "segmentSelectors": {"selectors": []},
                        "profileSelectors": {"selectors": []},
                    },
                }
            ],
        }

    def result(self, resource_id: str, etag: str | None) -> StepResult:
        return StepResult(resource_id=resource_id, activation_values={"flow_id": resource_id, "flow_etag": etag})


class ActivateSegments(SagaStep):
    """PATCH the segment and profile selectors in. The PATCH is not idempotent: on any retry, read
    the flow first and add only what is missing; on 412 re-read the etag."""

    name = "activate_segments"
    depends_on = ("create_flow",)

    async def forward(self, ctx: StepContext) -> StepResult:
        flow_id = ctx.resource(CreateFlow)
        etag = ctx.activation.flow_etag
        flow: dict[str, Any] | None = None
        if ctx.outcome_unknown or not etag:
            flow = await ctx.upstream.get(ResourceKind.FLOWS, flow_id, sandbox=ctx.sandbox)
        for _ in range(_MAX_ETAG_REFRESHES):
            if flow is not None:
                etag = str(flow["etag"])
            operations = missing_selector_operations(ctx.activation, flow)
            if not operations:
                return StepResult(activation_values={"flow_etag": etag})
            assert etag is not None
            try:
                new_etag = await ctx.upstream.patch(
                    ResourceKind.FLOWS, flow_id, operations, etag=etag, sandbox=ctx.sandbox
                )
            except UpstreamStatusError as exc:
                if exc.status != 412:
                    raise
                flow = await ctx.upstream.get(ResourceKind.FLOWS, flow_id, sandbox=ctx.sandbox)
                continue
            if new_etag is None:  # 202 without a body: the tutorial's variant
                new_etag = str((await ctx.upstream.get(ResourceKind.FLOWS, flow_id, sandbox=ctx.sandbox))["etag"])
            return StepResult(activation_values={"flow_etag": new_etag})
        raise StepFailed("Flow keeps changing", "the flow's etag changed on every attempt to activate segments")


class VerifyFlow(SagaStep):
    """Read the flow back and require every selector; and, as the forward path's last word, make
    sure each create left exactly one resource (see duplicates.py)."""

    name = "verify_flow"
    depends_on = ("activate_segments",)

    async def forward(self, ctx: StepContext) -> StepResult:
        flow = await ctx.upstream.get(ResourceKind.FLOWS, ctx.resource(CreateFlow), sandbox=ctx.sandbox)
        missing = missing_selector_operations(ctx.activation, flow)
        if missing:
            absent = [op["value"]["value"].get("id") or op["value"]["value"].get("path") for op in missing]
            raise StepFailed(
                "Flow verification failed",
                f"the flow lacks {len(absent)} requested selector(s): {', '.join(map(str, absent))}",
                type_="verification-failed",
            )
        await ctx.wait_until_settled()
        duplicates: list[Duplicate] = []
        # Dependents first: a copy of a connection may be in use by a copy made after it (1418).
        for step in reversed(ctx.steps):
            if isinstance(step, CreateResourceStep) and step.may_have_copies(ctx):
                duplicates.extend(await step.remove_duplicates(ctx))
        # The create is confirmed upstream: its desired state is applied, and the flow's state known.
        confirmed = {
            "flow_etag": flow.get("etag"),
            "applied_revision": ctx.activation.revision,
            "state": flow.get("state") or "enabled",
        }
        return StepResult(activation_values=confirmed, duplicates=duplicates)


def missing_selector_operations(activation: Activation, flow: dict[str, Any] | None) -> list[dict[str, Any]]:
    """JSON Patch ops adding every requested segment and attribute not yet on the flow."""
    present_segments: set[str] = set()
    present_paths: set[str] = set()
    if flow is not None:
        transformations = flow.get("transformations") or [{}]
        params = (transformations[0] or {}).get("params") or {}
        for selector in (params.get("segmentSelectors") or {}).get("selectors") or []:
            present_segments.add(str((selector.get("value") or {}).get("id")))
        for selector in (params.get("profileSelectors") or {}).get("selectors") or []:
            present_paths.add(str((selector.get("value") or {}).get("path")))
    operations: list[dict[str, Any]] = []
    for segment in activation.segments:
        if segment["id"] not in present_segments:
            operations.append(
                {"op": "add", "path": f"{SEGMENT_SELECTORS}/-", "value": {"type": "PLATFORM_SEGMENT", "value": segment}}
            )
    for path in activation.attributes:
        if path not in present_paths:
            operations.append(
                {
                    "op": "add",
                    "path": f"{PROFILE_SELECTORS}/-",
                    "value": {"type": "JSON_PATH", "value": {"path": path, "operator": "EXISTS"}},
                }
            )
    return operations


SAGA_STEPS: tuple[SagaStep, ...] = (
    ResolveDestination(),
    CreateSourceBaseConnection(),
    CreateSourceConnection(),
    CreateTargetBaseConnection(),
    CreateTargetConnection(),
    CreateFlow(),
    ActivateSegments(),
    VerifyFlow(),
)
STEP_NAMES: tuple[str, ...] = tuple(step.name for step in SAGA_STEPS)

"""The use cases of creating and reading activations (contract §1, §3): the request's rules that
depend on settings and on Adobe's catalog, Adobe's dataflow limit per sandbox, the split of secrets
from plain settings and their encryption, the idempotent insert and the replay policy of its key,
`Prefer: wait`, and the dry run of a create (§10). The API hands in a validated request and renders
what comes back; it knows none of this."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.domain.catalog import CatalogUnavailable, Refusal
from app.domain.model import Activation, NewActivation
from app.domain.plans import MASK, plan_create
from app.domain.ports import Cipher
from app.domain.sftp_hosts import HostAllowList, sftp_host_refusal
from app.domain.workflows import Workflow

from .dataflows import DataflowLimit
from .problems import ServiceProblem, invalid

if TYPE_CHECKING:
    from app.adapters.db.intake import ActivationIntake, IdempotentInsert
    from app.adapters.db.notifications import Notifications
    from app.adapters.db.repository import ActivationRepository
    from app.domain.catalog import DestinationCheck

# A first request that said Prefer: wait decides its status within 60 s; past that it surely died.
_UNDECIDED_GRACE = timedelta(seconds=75)
# Behind the terminal notification, how often a `Prefer: wait` still reads the status.
_WAIT_POLL_SECONDS = 1.0
POLL_HINT_SECONDS = "1"
# How soon a dry run may be asked again when Adobe's catalog could not be read in time (as GET /destinations).
_CATALOG_RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True, slots=True)
class CreateCommand:
    """A create request that passed the body's own validation. ``storage`` holds the storage
    object as sent, secrets included (``password`` or ``sshKey``, or ``secretKey``)."""

    client_id: str
    key: str  # the Idempotency-Key; "" for a dry run, which needs none
    canonical: bytes  # the canonical JSON of the body: what the key's fingerprint is taken of
    destination: str
    sandbox: str | None
    name: str | None
    storage: dict[str, Any]
    segments: list[dict[str, Any]]
    attributes: list[str]
    drift_policy: str
    wait: float | None


@dataclass(frozen=True, slots=True)
class Answer:
    """What to answer: the activation, the status, and whether this was a replay or a wait."""

    activation: Activation
    status_code: int
    replayed: bool = False
    waited: float | None = None


def split_storage(storage: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Storage settings to keep in plain columns, and the secrets to keep only encrypted."""
    if storage["type"] == "s3":
        plain = {key: storage[key] for key in ("accessId", "bucketName", "path")}
        return {"type": "s3", **plain}, {"secretKey": storage["secretKey"]}
    method = "password" if storage.get("password") is not None else "sshKey"
    return (
        {
            "type": "sftp",
            "host": storage["host"],
            "port": storage["port"],
            "username": storage["username"],
            "path": storage["path"],
            "authMethod": method,
        },
        {method: storage[method]},
    )


def storage_kind(storage: dict[str, Any]) -> tuple[str, str | None]:
    """The storage type and SFTP credential kind the catalog is asked about."""
    if storage["type"] == "s3":
        return "s3", None
    return "sftp", "password" if storage.get("password") is not None else "sshKey"


def _refusal_pointer(refusal: Refusal, sftp_auth: str | None) -> tuple[str, str]:
    """The catalog's refusal as a field error of the request."""
    path = {"destination": "/destination", "storage": "/storage/type"}.get(refusal.field, f"/storage/{sftp_auth}")
    return path, refusal.message


class ActivationService:
    def __init__(
        self,
        intake: ActivationIntake,
        repository: ActivationRepository,
        destinations: DestinationCheck,
        notifications: Notifications,
        cipher: Cipher,
        *,
        create_workflow: Workflow,
        dataflows: DataflowLimit,
        default_sandbox: str,
        sandboxes: Collection[str],
        sftp_hosts: HostAllowList,
        on_created: Callable[[], None] = lambda: None,
    ) -> None:
        self._intake = intake
        self._repository = repository
        self._destinations = destinations
        self._notifications = notifications
        self._cipher = cipher
        self._create = create_workflow
        self._dataflows = dataflows
        self._default_sandbox = default_sandbox
        self._sandboxes = frozenset(sandboxes)
        self._sftp_hosts = sftp_hosts
        self._on_created = on_created

    # ------------------------------------------------------------------ create
    def check(self, command: CreateCommand) -> list[tuple[str, str]]:
        """The rules that depend on settings, after those of the body alone: (path, message) each."""
        refused: list[tuple[str, str]] = []
        if self._sandbox(command) not in self._sandboxes:
            refused.append(("/sandbox", "sandbox is not on the allow-list"))
        if command.storage["type"] == "sftp":
            reason = sftp_host_refusal(command.storage["host"], self._sftp_hosts)
            if reason is not None:
                refused.append(("/storage/host", reason))
        return refused

    async def catalog_refusal(self, command: CreateCommand) -> tuple[str, str] | None:
        """The early catalog check: a (path, message) when the catalog could be read in time and
        does not take this destination or storage; None when it does, or could not be read."""
        storage_type, sftp_auth = storage_kind(command.storage)
        refusal = await self._destinations.refusal(
            destination=command.destination, storage_type=storage_type, sftp_auth=sftp_auth
        )
        return None if refusal is None else _refusal_pointer(refusal, sftp_auth)

    async def create(self, command: CreateCommand) -> Answer:
        """Accept the activation under its key (or answer the key's first answer again)."""
        unsupported = await self.catalog_refusal(command)
        if unsupported is not None:
            return await self._refused(command, invalid([unsupported]))
        sandbox = self._sandbox(command)
        over_limit = await self._dataflows.reserve(sandbox)
        if over_limit is not None:
            return await self._refused(command, over_limit)
        storage, secrets = split_storage(command.storage)
        new = self._new_activation(command, storage, self._cipher.encrypt(secrets))
        try:
            outcome = await self._intake.create_idempotent(
                new,
                key=command.key,
                fingerprint=self._cipher.fingerprint(command.canonical),
                response_status=None if command.wait else 202,
            )
        except BaseException:
            self._dataflows.release(sandbox)
            raise
        if not outcome.created:
            self._dataflows.release(sandbox)
            return await self._replay(command, outcome)
        self._on_created()
        if command.wait is None:
            return Answer(new.as_pending(outcome.key_created_at), 202)
        activation = await self.wait_for_terminal(new.id, command.wait)
        status_code = 200 if activation.status.terminal else 202
        await self._intake.record_response_status(command.client_id, command.key, status_code)
        return Answer(activation, status_code, waited=command.wait if status_code == 200 else None)

    async def plan(self, command: CreateCommand) -> tuple[Activation, list[dict[str, Any]]]:
        """The dry run of a create (contract §10): validated as a create is (the catalog and the
        dataflow limit included), the activation it would become and the calls that would write
        upstream. Nothing is written anywhere; upstream, only the catalog and the count are read."""
        storage_type, sftp_auth = storage_kind(command.storage)
        try:
            found = await self._destinations.resolution(
                destination=command.destination, storage_type=storage_type, sftp_auth=sftp_auth
            )
        except CatalogUnavailable:
            # A create would be accepted unchecked now; a plan cannot be made without the catalog.
            raise ServiceProblem(
                503,
                "catalog-unavailable",
                "Catalog unavailable",
                "Adobe's destination catalog could not be read in time to plan the create; retry shortly",
                headers={"Retry-After": _CATALOG_RETRY_AFTER_SECONDS},
            ) from None
        if isinstance(found, Refusal):
            raise invalid([_refusal_pointer(found, sftp_auth)])
        over_limit = await self._dataflows.refusal(self._sandbox(command))
        if over_limit is not None:
            raise over_limit
        storage, _ = split_storage(command.storage)  # the secrets are left out: the plan masks them
        accepted = self._new_activation(command, storage, MASK).as_pending(datetime.now(UTC))
        activation = dataclasses.replace(accepted, destination=found.to_json())
        return activation, plan_create(activation, found, self._create.steps)

    def _sandbox(self, command: CreateCommand) -> str:
        return command.sandbox or self._default_sandbox

    def _new_activation(self, command: CreateCommand, storage: dict[str, Any], credentials: str) -> NewActivation:
        return NewActivation(
            id=uuid.uuid4(),
            client_id=command.client_id,
            destination_name=command.destination,
            sandbox=self._sandbox(command),
            name=command.name,
            storage=storage,
            credentials_ciphertext=credentials,
            segments=command.segments,
            attributes=command.attributes,
            drift_policy=command.drift_policy,
            step_names=self._create.step_names,
            workflow_version=self._create.version,
        )

    async def _refused(self, command: CreateCommand, problem: ServiceProblem) -> Answer:
        # A retry of a request accepted earlier (while the catalog could not be read, or below the
        # dataflow limit) is still its replay.
        earlier = await self._intake.existing(command.client_id, command.key)
        if earlier is not None:
            return await self._replay(command, earlier)
        raise problem

    async def _replay(self, command: CreateCommand, outcome: IdempotentInsert) -> Answer:
        if not self._cipher.fingerprint_matches(command.canonical, outcome.request_fingerprint):
            raise ServiceProblem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was already used with a different request body",
            )
        status_code = outcome.response_status
        if status_code is None:
            if datetime.now(UTC) - outcome.key_created_at < _UNDECIDED_GRACE:
                raise ServiceProblem(
                    409,
                    "request-in-progress",
                    "Request in progress",
                    "a request with this Idempotency-Key is still being processed; retry later",
                    headers={"Retry-After": POLL_HINT_SECONDS},
                )
            status_code = 202
        activation = await self._repository.get(outcome.activation_id, client_id=command.client_id)
        if activation is None:  # the key outlived its activation: never start a second saga
            raise ServiceProblem(
                409,
                "idempotency-key-orphaned",
                "Idempotency-Key already used",
                "this Idempotency-Key belongs to an activation that no longer exists",
            )
        return Answer(activation, status_code, replayed=True)

    async def wait_for_terminal(self, activation_id: uuid.UUID, wait: float) -> Activation:
        deadline = time.monotonic() + wait
        # Woken by the worker's NOTIFY on the terminal transition (milliseconds, where a 100 ms poll
        # added 50 ms on average); the status is still read every _WAIT_POLL_SECONDS in case a
        # notification was lost while the listener reconnected.
        with self._notifications.watch(activation_id) as changed:
            while True:
                changed.clear()
                activation = await self._intake.current(activation_id)
                if activation is None:
                    raise LookupError(f"activation {activation_id} does not exist")
                remaining = deadline - time.monotonic()
                if activation.status.terminal or remaining <= 0:
                    return activation
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(_WAIT_POLL_SECONDS, remaining))

    # ------------------------------------------------------------------ reads
    async def get(self, activation_id: uuid.UUID, client_id: str) -> Activation | None:
        return await self._repository.get(activation_id, client_id=client_id)

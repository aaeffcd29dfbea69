"""What the domain needs from the world, as protocols and plain data. The adapters implement these
(app/adapters/…); the domain never imports them (an import-linter contract keeps it so, see
pyproject.toml). Only the composition root (app/runtime.py) puts the two together."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from .lifecycle import ActivationStatus
from .model import Activation, Lease, Operation

# Raises when the caller may no longer send (the run's lease expired): checked right before each
# request leaves the process; what it raises comes out of the call unchanged.
Guard = Callable[[], None]


# A list call's query: a mapping, or pairs when a name repeats (Adobe ANDs repeated `property` filters).
QueryParams = Mapping[str, str] | Sequence[tuple[str, str]]


class ResourceKind(StrEnum):
    CONNECTIONS = "connections"
    SOURCE_CONNECTIONS = "sourceConnections"
    TARGET_CONNECTIONS = "targetConnections"
    FLOWS = "flows"


@dataclass(frozen=True, slots=True)
class Created:
    id: str
    etag: str | None


# ---------------------------------------------------------------------------- upstream errors
class UpstreamError(Exception):
    """Anything that went wrong talking to Adobe."""

    retryable: bool = False
    retry_after: float | None = None

    def to_problem(self) -> dict[str, Any]:
        raise NotImplementedError


RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class UpstreamStatusError(UpstreamError):
    """Adobe answered with an error status; its texts are already cleaned by the adapter."""

    def __init__(
        self,
        *,
        status: int,
        code: str | None,
        message: str,
        request_id: str | None,
        method: str,
        path: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{method} {path} → {status} {code or ''} {message}".strip())
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.retryable = status in RETRYABLE_STATUSES

    def to_problem(self) -> dict[str, Any]:
        return {
            "upstreamStatus": self.status,
            "upstreamCode": self.code,
            "upstreamMessage": self.message,
            "upstreamRequestId": self.request_id,
            "upstreamCall": f"{self.method} {self.path}",
        }


class UpstreamUnavailable(UpstreamError):
    """The call's outcome is unknown: timeout, refused or dropped connection."""

    retryable = True

    def __init__(self, *, method: str, path: str, reason: str) -> None:
        super().__init__(f"{method} {path}: {reason}")
        self.method = method
        self.path = path
        self.reason = reason

    def to_problem(self) -> dict[str, Any]:
        return {"upstreamStatus": None, "upstreamMessage": self.reason, "upstreamCall": f"{self.method} {self.path}"}


# ---------------------------------------------------------------------------- upstream calls
@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """What one upstream call looked like, for events, metrics and logs."""

    method: str
    path: str
    endpoint: str  # the path template, e.g. /flows/{id}: a bounded label for metrics
    status: int | None
    duration_ms: float
    request_id: str
    adobe_request_id: str | None
    error: str | None
    context: Mapping[str, Any] = field(default_factory=dict)


class CallLog(Protocol):
    """Where an operation's calls are recorded: the client labels each call with ``labels`` and
    hands it to ``record`` once it has an answer (or none)."""

    @property
    def labels(self) -> Mapping[str, Any]: ...

    def record(self, call: UpstreamCall) -> None: ...


class FlowService(Protocol):
    """Adobe's Flow Service as the steps use it (app/adapters/flowservice/client.py). Every call
    runs ``guard`` right before each request leaves, and reports itself to ``log``."""

    async def list_all(
        self,
        collection: str,
        *,
        sandbox: str,
        params: QueryParams | None = None,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> list[dict[str, Any]]: ...

    async def count(self, collection: str, *, sandbox: str, params: QueryParams | None = None) -> int:
        """How many items a list endpoint holds (``count=true``: one call, whatever the number)."""
        ...

    async def create(
        self,
        kind: ResourceKind,
        body: dict[str, Any],
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> Created: ...

    async def get(
        self,
        kind: ResourceKind,
        resource_id: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> dict[str, Any]: ...

    async def find_all_by_name(
        self,
        kind: ResourceKind,
        name: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> list[dict[str, Any]]: ...

    async def patch(
        self,
        kind: ResourceKind,
        resource_id: str,
        operations: list[dict[str, Any]],
        *,
        etag: str,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> str | None: ...

    async def delete(
        self,
        kind: ResourceKind,
        resource_id: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> bool: ...

    async def flow_action(
        self,
        flow_id: str,
        op: str,
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> str | None: ...

    async def adhoc_run(
        self,
        activation_info: Mapping[str, list[str]],
        *,
        sandbox: str,
        guard: Guard | None = None,
        log: CallLog | None = None,
    ) -> dict[str, Any]:
        """Export now: Adobe's ad-hoc activation of audiences of dataflows (`{flow id: [audience ids]}`)."""
        ...


class Cipher(Protocol):
    """Encrypts credentials at rest and fingerprints request bodies (app/adapters/crypto.py)."""

    def encrypt(self, secrets: dict[str, Any]) -> str: ...

    def decrypt(self, token: str) -> dict[str, Any]: ...

    def fingerprint(self, canonical: bytes) -> str: ...

    def fingerprint_matches(self, canonical: bytes, stored: str) -> bool: ...


# ---------------------------------------------------------------------------- the run's store
EventRows = Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ClaimedLease:
    activation_id: uuid.UUID
    epoch: int
    workflow_version: int = 1


@dataclass(frozen=True, slots=True)
class StepWrite:
    """What a fenced step write reports back."""

    rollback_requested: bool
    # The steps this write started, with their attempt numbers.
    started: dict[str, int]
    # The write ended the run: the activation is succeeded (see SagaStore.write_step's ``complete``).
    completed: bool = False


class SagaStore(Protocol):
    """Claims, leases and the fenced writes of a run (app/adapters/db/saga_store.py). Every write
    matches only the current lease epoch: a run that lost its lease writes nothing (LeaseLost)."""

    async def claim(self, *, owner: str, limit: int, lease_seconds: float) -> list[ClaimedLease]: ...

    async def renew(self, lease: Lease, lease_seconds: float) -> bool: ...

    async def release(self, lease: Lease, *, delay_seconds: float = 0.0) -> None: ...

    async def begin_run(self, lease: Lease, *, first_steps: Sequence[str]) -> tuple[Activation, dict[str, int]]: ...

    async def load(self, lease: Lease) -> Activation: ...

    async def write_step(
        self,
        lease: Lease,
        step: str | None = None,
        *,
        values: Mapping[str, Any] | None = None,
        activation_values: Mapping[str, Any] | None = None,
        events: EventRows = (),
        start: Sequence[str] = (),
        start_unless_rollback: bool = True,
        complete: bool = False,
    ) -> StepWrite: ...

    async def set_status(
        self,
        lease: Lease,
        current: ActivationStatus,
        *path: ActivationStatus,
        error: dict[str, Any] | None = None,
        keep_error: bool = False,
        event: dict[str, Any] | None = None,
        events: EventRows = (),
        retry_in: float | None = None,
    ) -> ActivationStatus: ...

    async def record_crash(self, lease: Lease, error: str) -> tuple[int, ActivationStatus]: ...


class WorkSignal(Protocol):
    """Wakes the worker when work may be waiting (LISTEN/NOTIFY in app/adapters/db/notifications.py):
    ``on_signal`` is called for each signal, and once on every (re)connection."""

    async def listen(self, on_signal: Callable[[], None]) -> None: ...


class Housekeeping(Protocol):
    async def reap_idempotency_keys(self) -> int: ...


@dataclass(frozen=True, slots=True)
class BegunOperation:
    operation: Operation
    # The attempt of its first unfinished step, started by the write that began it (None: not started).
    first_attempt: int | None


class OperationStore(Protocol):
    """The fenced reads and writes of an activation's operation queue (app/adapters/db/operation_store.py)."""

    async def begin_operation(self, lease: Lease, *, runnable: Collection[str] = ()) -> BegunOperation | None:
        """The oldest unfinished operation of the leased activation, made running; None when the
        queue is empty (the queue count is then set right). When its "kind:version" is in
        ``runnable``, the attempt of its first unfinished step starts in the same write."""
        ...

    async def start_operation_step(self, lease: Lease, operation_id: uuid.UUID, step: str, *, events: EventRows) -> int:
        """Record an attempt of ``step`` before its upstream call; returns its attempt number."""
        ...

    async def finish_operation_step(
        self,
        lease: Lease,
        operation_id: uuid.UUID,
        step: str,
        *,
        succeeded: bool,
        error: dict[str, Any] | None = None,
        activation_values: Mapping[str, Any] | None = None,
        events: EventRows = (),
        start_next: str | None = None,
    ) -> int | None:
        """Record ``step``'s outcome; when it succeeded, also start the attempt of ``start_next``
        (the step that follows) in the same write and return its attempt number."""
        ...

    async def finish_operation(
        self,
        lease: Lease,
        operation: Operation,
        *,
        error: dict[str, Any] | None,
        events: EventRows = (),
        last_step: str | None = None,
        activation_values: Mapping[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """End ``operation`` (succeeded without ``error``, failed with it), take it off the queue,
        and record on the activation what it confirmed (applied revision) or why it failed (sync).
        A success may end its ``last_step`` in the same write, with the values that step confirmed."""
        ...

    async def defer_operation(self, lease: Lease, operation: Operation, *, delay_seconds: float, reason: str) -> None:
        """Leave ``operation`` for a process that can run it (its workflow version is unknown here)."""
        ...

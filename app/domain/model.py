"""Plain data the saga works on, loaded from and saved to the repository."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .lifecycle import ActivationStatus, OperationStatus, StepStatus


class LeaseLost(Exception):
    """This worker no longer owns the activation: it must stop without touching anything."""


@dataclass(slots=True)
class Lease:
    activation_id: uuid.UUID
    epoch: int
    owner: str
    # Local monotonic deadline: past it we assume another worker may own the activation, and make
    # no upstream call even before the database tells us so (a paused process must not act).
    valid_until: float
    # The create workflow version of the activation (see workflows.py).
    workflow_version: int = 1
    # The two branches of a run write concurrently; their writes (and the upstream-call events each
    # one carries) must reach the database in the order they were taken.
    writes: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)
    # The event rows of the run's upstream calls, recorded by its LeasedFlowService (upstream.py)
    # and taken by its next fenced write.
    calls: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)

    def ensure(self) -> None:
        if time.monotonic() >= self.valid_until:
            raise LeaseLost(f"lease on {self.activation_id} (epoch {self.epoch}) expired")


@dataclass(slots=True)
class StepState:
    name: str
    position: int
    status: StepStatus
    attempts: int = 0
    resource_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, Any] | None = None
    attempted_at: datetime | None = None  # when the latest attempt started


@dataclass(slots=True)
class Activation:
    id: uuid.UUID
    client_id: str
    status: ActivationStatus
    destination_name: str
    destination: dict[str, Any] | None
    sandbox: str
    name: str | None
    storage: dict[str, Any]
    credentials_ciphertext: str | None
    segments: list[dict[str, Any]]
    attributes: list[str]
    flow_id: str | None
    flow_etag: str | None
    error: dict[str, Any] | None
    rollback_requested_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    steps: dict[str, StepState] = field(default_factory=dict)
    run_crashes: int = 0
    compensation_rounds: int = 0
    compensation_retry_at: datetime | None = None
    # Contract §9 (see lifecycle.sync_status for how `sync` is read from these).
    workflow_version: int = 1
    revision: int = 1
    applied_revision: int | None = None
    state: str | None = None
    desired_state: str = "enabled"
    drift_policy: str = "report"
    sync_error: dict[str, Any] | None = None
    sync_checked_at: datetime | None = None
    sync_differences: list[dict[str, Any]] = field(default_factory=list)
    last_run: dict[str, Any] | None = None
    queued_operations: int = 0

    def resource(self, step: str) -> str | None:
        state = self.steps.get(step)
        return state.resource_id if state else None


@dataclass(slots=True)
class Operation:
    """One change of an activation (contract §9), run by the operation runner (operations.py)."""

    id: uuid.UUID
    activation_id: uuid.UUID
    kind: str
    workflow_version: int
    status: OperationStatus
    revision: int
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    steps: dict[str, StepState] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NewActivation:
    id: uuid.UUID
    client_id: str
    destination_name: str
    sandbox: str
    name: str | None
    storage: dict[str, Any]
    credentials_ciphertext: str
    segments: list[dict[str, Any]]
    attributes: list[str]
    step_names: Sequence[str]
    workflow_version: int = 1
    drift_policy: str = "report"

    def as_pending(self, created_at: datetime) -> Activation:
        """The activation exactly as create_idempotent stored it (created_at is the transaction's
        now(), the same as the key's): the 202 answer needs no read back (two queries less)."""
        return Activation(
            id=self.id,
            client_id=self.client_id,
            status=ActivationStatus.PENDING,
            destination_name=self.destination_name,
            destination=None,
            sandbox=self.sandbox,
            name=self.name,
            storage=self.storage,
            credentials_ciphertext=self.credentials_ciphertext,
            segments=self.segments,
            attributes=self.attributes,
            flow_id=None,
            flow_etag=None,
            error=None,
            rollback_requested_at=None,
            created_at=created_at,
            updated_at=created_at,
            completed_at=None,
            workflow_version=self.workflow_version,
            drift_policy=self.drift_policy,
            steps={
                name: StepState(name=name, position=i, status=StepStatus.PENDING)
                for i, name in enumerate(self.step_names)
            },
        )


@dataclass(frozen=True, slots=True)
class DesiredChange:
    """An activation's desired state after a change (contract §10): the whole lists, not increments."""

    name: str | None
    segments: list[dict[str, Any]]
    attributes: list[str]
    drift_policy: str

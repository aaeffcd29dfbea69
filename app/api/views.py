"""Domain objects → response bodies. Secrets never get here; accessId is masked here."""

from __future__ import annotations

from typing import Any

from app.domain.lifecycle import sync_status
from app.domain.model import Activation, Operation, StepState

from .schemas import (
    ActivationOut,
    DestinationOut,
    EventOut,
    FlowOut,
    OperationOut,
    RunOut,
    StepOut,
    StorageOut,
    SyncOut,
)


def mask(value: str) -> str:
    if len(value) < 12:
        return "…"
    return f"{value[:4]}…{value[-4:]}"


def activation_view(activation: Activation) -> ActivationOut:
    resolved = activation.destination or {}
    storage = dict(activation.storage)
    if storage.get("accessId"):
        storage["accessId"] = mask(storage["accessId"])
    return ActivationOut(
        id=str(activation.id),
        status=activation.status.value,
        destination=DestinationOut(
            name=resolved.get("name", activation.destination_name),
            connectionSpecId=resolved.get("connectionSpecId"),
            flowSpecId=resolved.get("flowSpecId"),
        ),
        sandbox=activation.sandbox,
        name=activation.name,
        storage=StorageOut(**storage),
        segments=activation.segments,
        attributes=activation.attributes,
        steps=_steps(activation.steps),
        flow=FlowOut(id=activation.flow_id, etag=activation.flow_etag) if activation.flow_id else None,
        error=activation.error,
        createdAt=activation.created_at,
        updatedAt=activation.updated_at,
        completedAt=activation.completed_at,
        revision=activation.revision,
        appliedRevision=activation.applied_revision,
        state=activation.state if activation.state in ("enabled", "disabled") else None,
        sync=SyncOut(
            status=sync_status(
                activation.status,
                activation.revision,
                activation.applied_revision,
                activation.sync_error,
                activation.sync_differences,
            ),
            checkedAt=activation.sync_checked_at,
            differences=activation.sync_differences,
            error=activation.sync_error,
        ),
        driftPolicy=activation.drift_policy,
        lastRun=RunOut.model_validate(activation.last_run) if activation.last_run else None,
    )


def operation_view(operation: Operation) -> OperationOut:
    return OperationOut(
        id=str(operation.id),
        kind=operation.kind,
        status=operation.status.value,
        revision=operation.revision,
        workflowVersion=operation.workflow_version,
        steps=_steps(operation.steps),
        error=operation.error,
        createdAt=operation.created_at,
        startedAt=operation.started_at,
        completedAt=operation.completed_at,
        params=operation.params,
        result=operation.result,
    )


def _steps(steps: dict[str, StepState]) -> list[StepOut]:
    return [
        StepOut(
            name=s.name,
            status=s.status.value,
            attempts=s.attempts,
            resourceId=s.resource_id,
            startedAt=s.started_at,
            finishedAt=s.finished_at,
            error=s.error,
        )
        for s in sorted(steps.values(), key=lambda s: s.position)
    ]


def event_view(row: Any) -> EventOut:
    """``row``: an activation_events row (id, occurred_at, type, step, data)."""
    return EventOut(id=row.id, occurredAt=row.occurred_at, type=row.type, step=row.step, data=row.data)

"""An activation and its steps read in one statement, and the row turned into the domain's
Activation: shared by the saga store and the API's hot paths."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.domain.lifecycle import ActivationStatus, StepStatus
from app.domain.model import Activation, StepState

# The steps of activation `a`, in order, as one JSON array (one round trip for the whole read).
STEP_ROWS = """
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'name', name, 'position', position, 'status', status, 'attempts', attempts,
               'resource_id', resource_id, 'started_at', started_at, 'finished_at', finished_at,
               'error', error, 'attempted_at', attempted_at) ORDER BY position), '[]'::jsonb)
      FROM activation_steps WHERE activation_id = a.id
"""

LOAD_ACTIVATION = f"""
SELECT a.*, a.status AS current_status, ({STEP_ROWS}) AS step_rows
  FROM activations a WHERE a.id = %(id)s
"""


# The API's reads: one activation of one client (on psycopg straight, as every `Prefer: wait`
# ends with it), and a page of a client's activations, newest first, in one statement whatever
# the page size (SQLAlchemy's named parameters).
LOAD_CLIENT_ACTIVATION = f"""
SELECT a.*, a.status AS current_status, ({STEP_ROWS}) AS step_rows
  FROM activations a
 WHERE a.id = %(id)s AND (CAST(%(client_id)s AS text) IS NULL OR a.client_id = %(client_id)s)
"""

LIST_CLIENT_ACTIVATIONS = f"""
SELECT a.*, a.status AS current_status, ({STEP_ROWS}) AS step_rows
  FROM activations a
 WHERE a.client_id = :client_id
   AND (CAST(:status AS text) IS NULL OR a.status = :status)
   AND (CAST(:destination AS text) IS NULL OR lower(a.destination_name) = lower(:destination))
   AND (CAST(:before_created AS timestamptz) IS NULL
        OR (a.created_at, a.id) < (CAST(:before_created AS timestamptz), CAST(:before_id AS uuid)))
 ORDER BY a.created_at DESC, a.id DESC
 LIMIT :limit
"""


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def step_from_json(s: Mapping[str, Any]) -> StepState:
    """One step of a ``step_rows`` JSON array (an activation's steps, or an operation's, which
    create nothing and so carry no resource_id)."""
    return StepState(
        name=s["name"],
        position=s["position"],
        status=StepStatus(s["status"]),
        attempts=s["attempts"],
        resource_id=s.get("resource_id"),
        started_at=_timestamp(s["started_at"]),
        finished_at=_timestamp(s["finished_at"]),
        error=s["error"],
        attempted_at=_timestamp(s.get("attempted_at")),
    )


def activation_from_row(row: Mapping[str, Any]) -> Activation:
    return Activation(
        id=row["id"],
        client_id=row["client_id"],
        status=ActivationStatus(row["current_status"]),
        destination_name=row["destination_name"],
        destination=row["destination"],
        sandbox=row["sandbox"],
        name=row["name"],
        storage=row["storage"],
        credentials_ciphertext=row["credentials_ciphertext"],
        segments=row["segments"],
        attributes=row["attributes"],
        flow_id=row["flow_id"],
        flow_etag=row["flow_etag"],
        error=row["error"],
        rollback_requested_at=row["rollback_requested_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        run_crashes=row["run_crashes"],
        compensation_rounds=row["compensation_rounds"],
        compensation_retry_at=row["compensation_retry_at"],
        workflow_version=row["workflow_version"],
        revision=row["revision"],
        applied_revision=row["applied_revision"],
        state=row["state"],
        desired_state=row["desired_state"],
        drift_policy=row["drift_policy"],
        sync_error=row["sync_error"],
        sync_checked_at=row["sync_checked_at"],
        sync_differences=row["sync_differences"] or [],
        last_run=row["last_run"],
        queued_operations=row["queued_operations"],
        steps={s["name"]: step_from_json(s) for s in row["step_rows"]},
    )

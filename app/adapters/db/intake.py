"""Accepting an activation: the activation, its steps, its first event and its idempotency key,
inserted by one SQL statement (one round trip, its own transaction) that also wakes the workers;
and, for `Prefer: wait`, the answer's read and the key's recorded status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg.types.json import Jsonb

from app.domain.model import Activation, NewActivation

from .snapshot import LOAD_ACTIVATION, activation_from_row
from .statements import StatementPool

# Sent with the id of each new (or newly runnable) activation: workers LISTEN to claim at once.
NOTIFY_CHANNEL = "activation_ready"

# The key goes in first: a concurrent insert of the same key waits on its primary key and then
# inserts nothing (no check-then-insert race), and every other insert follows from the key's row.
# Each part is a data-modifying CTE of the one statement, so all or nothing commits. The key's
# foreign key to the activation is deferred (checked at the end of the statement).
_INSERT = f"""
WITH new_key AS (
    INSERT INTO idempotency_keys (client_id, key, request_fingerprint, activation_id, response_status)
    VALUES (%(client_id)s, %(key)s, %(fingerprint)s, %(id)s, %(response_status)s)
    ON CONFLICT (client_id, key) DO NOTHING
    RETURNING created_at
), new_activation AS (
    INSERT INTO activations (id, client_id, status, destination_name, sandbox, name, storage,
                             credentials_ciphertext, segments, attributes, workflow_version, drift_policy)
    SELECT %(id)s, %(client_id)s, 'pending', %(destination_name)s, %(sandbox)s, %(name)s, %(storage)s,
           %(credentials)s, %(segments)s, %(attributes)s, %(workflow_version)s, %(drift_policy)s
      FROM new_key
    RETURNING id
), new_steps AS (
    INSERT INTO activation_steps (activation_id, name, position, status)
    SELECT new_activation.id, step.name, step.position - 1, 'pending'
      FROM new_activation, unnest(%(steps)s::text[]) WITH ORDINALITY AS step(name, position)
), first_event AS (
    INSERT INTO activation_events (activation_id, type, step, data)
    SELECT id, 'status', NULL, '{{"status": "pending"}}'::jsonb FROM new_activation
), notified AS (
    SELECT pg_notify('{NOTIFY_CHANNEL}', id::text) FROM new_activation
)
SELECT created_at, (SELECT count(*) FROM notified) AS notified FROM new_key
"""

_RESPONSE_STATUS = """
UPDATE idempotency_keys SET response_status = %(status)s
 WHERE client_id = %(client_id)s AND key = %(key)s AND response_status IS NULL
"""

# Creates accepted in a sandbox whose dataflow does not exist upstream yet: with the sandbox's
# destination flows, what Adobe's dataflow limit is counted from (services/activations.py).
_CREATES_WITHOUT_FLOW = """
SELECT count(*) AS creates FROM activations
 WHERE sandbox = %(sandbox)s AND status IN ('pending', 'running') AND flow_id IS NULL
"""

_EXISTING_KEY = """
SELECT activation_id, request_fingerprint, response_status, created_at
  FROM idempotency_keys WHERE client_id = %(client_id)s AND key = %(key)s
"""


@dataclass(frozen=True, slots=True)
class IdempotentInsert:
    """Outcome of inserting an activation under an idempotency key."""

    created: bool
    activation_id: uuid.UUID
    request_fingerprint: str
    response_status: int | None
    key_created_at: datetime


class ActivationIntake:
    def __init__(self, statements: StatementPool) -> None:
        self._db = statements

    async def create_idempotent(
        self, new: NewActivation, *, key: str, fingerprint: str, response_status: int | None
    ) -> IdempotentInsert:
        """Insert the activation under its key, or report the activation the key already names."""
        params = {
            "client_id": new.client_id,
            "key": key,
            "fingerprint": fingerprint,
            "id": new.id,
            "response_status": response_status,
            "destination_name": new.destination_name,
            "sandbox": new.sandbox,
            "name": new.name,
            "storage": Jsonb(new.storage),
            "credentials": new.credentials_ciphertext,
            "segments": Jsonb(new.segments),
            "attributes": Jsonb(new.attributes),
            "steps": list(new.step_names),
            "workflow_version": new.workflow_version,
            "drift_policy": new.drift_policy,
        }
        for _ in range(3):
            inserted = await self._db.fetchone(_INSERT, params)
            if inserted is not None:
                return IdempotentInsert(
                    created=True,
                    activation_id=new.id,
                    request_fingerprint=fingerprint,
                    response_status=response_status,
                    key_created_at=inserted["created_at"],
                )
            existing = await self.existing(new.client_id, key)
            if existing is not None:
                return existing
            # The key was reaped between the two statements (it had expired): insert again.
        raise RuntimeError(f"idempotency key {key!r} keeps vanishing")

    async def existing(self, client_id: str, key: str) -> IdempotentInsert | None:
        """What an earlier request with this key created, if any."""
        row = await self._db.fetchone(_EXISTING_KEY, {"client_id": client_id, "key": key})
        if row is None:
            return None
        return IdempotentInsert(
            created=False,
            activation_id=row["activation_id"],
            request_fingerprint=row["request_fingerprint"],
            response_status=row["response_status"],
            key_created_at=row["created_at"],
        )

    async def record_response_status(self, client_id: str, key: str, status: int) -> None:
        """The answer a `Prefer: wait` request gave: replays of its key give the same."""
        await self._db.execute(_RESPONSE_STATUS, {"client_id": client_id, "key": key, "status": status})

    async def creates_without_flow(self, sandbox: str) -> int:
        """Activations of ``sandbox`` under way whose dataflow is not created yet."""
        row = await self._db.fetchone(_CREATES_WITHOUT_FLOW, {"sandbox": sandbox})
        return int(row["creates"]) if row is not None else 0

    async def current(self, activation_id: uuid.UUID) -> Activation | None:
        """The activation with its steps, in one round trip (the `Prefer: wait` answer)."""
        row = await self._db.fetchone(LOAD_ACTIVATION, {"id": activation_id})
        return activation_from_row(row) if row is not None else None

"""Table definitions. The schema itself is owned by Alembic (``migrations/``); a test checks that
these definitions and the migrations agree."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

# What the claim query looks at (ix_activations_claimable): unfinished work (lifecycle.ACTIVE_STATUSES,
# which a test holds this text to), failed compensations whose automatic retry is scheduled, and live
# activations with an operation in their queue. Word for word the predicate of the index.
CLAIMABLE = (
    "status IN ('pending', 'running', 'rolling_back') "
    "OR (status = 'rollback_failed' AND compensation_retry_at IS NOT NULL) "
    "OR (status = 'succeeded' AND queued_operations > 0)"
)

activations = Table(
    "activations",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("client_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("destination_name", Text, nullable=False),
    # Filled by resolve_destination: {"name", "connectionSpecId", "flowSpecId", "authSpecName", "targetMode"}.
    Column("destination", JSONB, nullable=True),
    Column("sandbox", Text, nullable=False),
    Column("name", Text, nullable=True),
    # Storage settings without secrets; the secrets live only in credentials_ciphertext.
    Column("storage", JSONB, nullable=False),
    Column("credentials_ciphertext", Text, nullable=True),
    Column("segments", JSONB, nullable=False),
    Column("attributes", JSONB, nullable=False),
    Column("flow_id", Text, nullable=True),
    Column("flow_etag", Text, nullable=True),
    Column("error", JSONB, nullable=True),
    Column("rollback_requested_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    # The table is also the work queue: see domain/worker.py.
    Column("run_after", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("lease_owner", Text, nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("lease_epoch", BigInteger, nullable=False, server_default=text("0")),
    # Runs that ended in an unexpected exception (see SagaRunner.record_crash).
    Column("run_crashes", Integer, nullable=False, server_default=text("0")),
    # Automatic retries of a failed compensation: when the next is due (NULL: none), and how many ran.
    Column("compensation_retry_at", DateTime(timezone=True), nullable=True),
    Column("compensation_rounds", Integer, nullable=False, server_default=text("0")),
    # The version of the create workflow the activation was accepted with (domain/workflows.py).
    Column("workflow_version", Integer, nullable=False, server_default=text("1")),
    # Contract §9: the desired state's revision, the one last confirmed upstream, the flow's state as
    # last confirmed and as wanted, the drift policy, and the last sync failure and check.
    Column("revision", Integer, nullable=False, server_default=text("1")),
    Column("applied_revision", Integer, nullable=True),
    Column("state", Text, nullable=True),
    Column("desired_state", Text, nullable=False, server_default=text("'enabled'")),
    Column("drift_policy", Text, nullable=False, server_default=text("'report'")),
    Column("sync_error", JSONB, nullable=True),
    Column("sync_checked_at", DateTime(timezone=True), nullable=True),
    # Operations waiting in the activation's queue (activation_operations with status pending).
    Column("queued_operations", Integer, nullable=False, server_default=text("0")),
    # Contract §12, §13: the newest export run (as GET /runs shows it), and what the last reconcile
    # found different from the applied desired state (NULL: nothing).
    Column("last_run", JSONB, nullable=True),
    Column("sync_differences", JSONB, nullable=True),
    Index("ix_activations_claimable", "run_after", postgresql_where=text(CLAIMABLE)),
    Index("ix_activations_client_created", "client_id", text("created_at DESC"), text("id DESC")),
    Index("ix_activations_flow_id", "flow_id", postgresql_where=text("flow_id IS NOT NULL")),
)

activation_steps = Table(
    "activation_steps",
    metadata,
    Column("activation_id", UUID(as_uuid=True), ForeignKey("activations.id", ondelete="CASCADE")),
    Column("name", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("resource_id", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("error", JSONB, nullable=True),
    # When the latest attempt started (started_at keeps the first): the late-commit window counts from it.
    Column("attempted_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("activation_id", "name"),
)

activation_events = Table(
    "activation_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "activation_id",
        UUID(as_uuid=True),
        ForeignKey("activations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("type", Text, nullable=False),
    Column("step", Text, nullable=True),
    Column("data", JSONB, nullable=False),
    Index("ix_activation_events_activation", "activation_id", "id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("client_id", Text, nullable=False),
    Column("key", Text, nullable=False),
    # HMAC of the canonical request body: equal bodies compare equal, secrets cannot be guessed from it.
    Column("request_fingerprint", Text, nullable=False),
    # Deferred: the key is inserted first, so that a duplicate key wins the race before any activation row.
    Column(
        "activation_id",
        UUID(as_uuid=True),
        ForeignKey("activations.id", ondelete="CASCADE", deferrable=True, initially="DEFERRED"),
        nullable=False,
    ),
    # NULL while the first request is still deciding its answer (Prefer: wait).
    Column("response_status", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("client_id", "key"),
    Index("ix_idempotency_keys_expires", "expires_at"),
)


# Contract §9: every change of a live activation is an operation, run one at a time in `seq` order.
# The create operation is the activation's own saga (its steps are activation_steps); rollback and
# retire are its compensation; the other kinds run their own steps (operation_steps).
activation_operations = Table(
    "activation_operations",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("activation_id", UUID(as_uuid=True), ForeignKey("activations.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, Identity(always=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    # What a succeeded operation produced for its caller (an export: the runs it started or joined).
    Column("result", JSONB, nullable=True),
    Index("ix_activation_operations_queue", "activation_id", "seq"),
)

operation_steps = Table(
    "operation_steps",
    metadata,
    Column("operation_id", UUID(as_uuid=True), ForeignKey("activation_operations.id", ondelete="CASCADE")),
    Column("name", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("attempted_at", DateTime(timezone=True), nullable=True),
    Column("error", JSONB, nullable=True),
    PrimaryKeyConstraint("operation_id", "name"),
)

operation_keys = Table(
    "operation_keys",
    metadata,
    Column("client_id", Text, nullable=False),
    Column("activation_id", UUID(as_uuid=True), ForeignKey("activations.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("request_fingerprint", Text, nullable=False),
    Column("operation_id", UUID(as_uuid=True), nullable=True),
    Column("response_status", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("client_id", "activation_id", "key"),
    Index("ix_operation_keys_expires", "expires_at"),
)


# Contract §12: the runs of every live activation's flow, mirrored from Adobe (keyed by Adobe's run
# id, so mirroring twice writes nothing new); `run` is the run as the API shows it.
activation_runs = Table(
    "activation_runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("activation_id", UUID(as_uuid=True), ForeignKey("activations.id", ondelete="CASCADE"), nullable=False),
    Column("flow_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("run", JSONB, nullable=False),
    # A run processing past the delay threshold is reported once.
    Column("delay_reported", Boolean, nullable=False, server_default=text("false")),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("ix_activation_runs_activation_started", "activation_id", text("started_at DESC"), text("id DESC")),
    Index("ix_activation_runs_unfinished", "started_at", postgresql_where=text("status IN ('processing', 'waiting')")),
)

# Where each sandbox's background cycles go on from (epoch ms, Adobe's unit): the runs started
# after, the flows changed after, the last full sweep of the reconcile.
cycle_watermarks = Table(
    "cycle_watermarks",
    metadata,
    Column("cycle", Text, primary_key=True),
    Column("sandbox", Text, primary_key=True),
    Column("after_ms", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

# One process at a time runs each background cycle (run mirroring, reconcile): the holder of the
# lease named after it, until it expires; `epoch` fences the writes of a holder that lost it.
background_leases = Table(
    "background_leases",
    metadata,
    Column("name", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


# Contract §14: a client's webhook subscriptions. The signing secret is kept only encrypted (the
# credentials' cipher); after a rotation the previous one signs too until previous_secret_until.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("client_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("events", JSONB, nullable=False),
    Column("description", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("secret_ciphertext", Text, nullable=False),
    Column("previous_secret_ciphertext", Text, nullable=True),
    Column("previous_secret_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("ix_webhook_subscriptions_client", "client_id", "created_at"),
)

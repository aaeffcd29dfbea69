"""Activations that live: the create workflow's definition version, revisions, the flow's state,
sync, drift policy, and a queue of operations per activation (pause, resume, rollback, retire),
with their steps and their idempotency keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

_OLD_CLAIMABLE = (
    "status IN ('pending', 'running', 'rolling_back') "
    "OR (status = 'rollback_failed' AND compensation_retry_at IS NOT NULL)"
)
# A live activation is claimable while an operation waits in its queue.
_NEW_CLAIMABLE = (
    "status IN ('pending', 'running', 'rolling_back') "
    "OR (status = 'rollback_failed' AND compensation_retry_at IS NOT NULL) "
    "OR (status = 'succeeded' AND queued_operations > 0)"
)


# The credential-erasure rule, in one place (app/domain/lifecycle.py names the same statuses, and a
# test holds the two together): credentials exist only while the forward run may still need them.
# Whatever statement moves an activation off the forward path (completion, failure, rollback,
# retire) erases them in the same write, without having to say so.
ERASE_CREDENTIALS_FUNCTION = """
CREATE FUNCTION erase_credentials_off_the_forward_path() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status NOT IN ('pending', 'running') THEN
        NEW.credentials_ciphertext := NULL;
    END IF;
    RETURN NEW;
END
$$
"""
ERASE_CREDENTIALS_TRIGGER = """
CREATE TRIGGER erase_credentials_off_the_forward_path
BEFORE INSERT OR UPDATE OF status, credentials_ciphertext ON activations
FOR EACH ROW WHEN (NEW.credentials_ciphertext IS NOT NULL AND NEW.status NOT IN ('pending', 'running'))
EXECUTE FUNCTION erase_credentials_off_the_forward_path()
"""


def upgrade() -> None:
    op.execute(ERASE_CREDENTIALS_FUNCTION)
    op.execute(ERASE_CREDENTIALS_TRIGGER)
    # Every activation so far was created by version 1 of the create workflow.
    op.add_column(
        "activations", sa.Column("workflow_version", sa.Integer(), nullable=False, server_default=sa.text("1"))
    )
    op.add_column("activations", sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("1")))
    op.add_column("activations", sa.Column("applied_revision", sa.Integer(), nullable=True))
    op.add_column("activations", sa.Column("state", sa.Text(), nullable=True))
    op.add_column(
        "activations", sa.Column("desired_state", sa.Text(), nullable=False, server_default=sa.text("'enabled'"))
    )
    op.add_column(
        "activations", sa.Column("drift_policy", sa.Text(), nullable=False, server_default=sa.text("'report'"))
    )
    op.add_column("activations", sa.Column("sync_error", JSONB(), nullable=True))
    op.add_column("activations", sa.Column("sync_checked_at", TZ, nullable=True))
    op.add_column(
        "activations", sa.Column("queued_operations", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    # What earlier versions knew of a live activation: its flow was created enabled and verified.
    op.execute(
        "UPDATE activations SET applied_revision = 1, state = 'enabled', sync_checked_at = completed_at"
        " WHERE status = 'succeeded'"
    )
    op.drop_index("ix_activations_claimable", table_name="activations")
    op.create_index("ix_activations_claimable", "activations", ["run_after"], postgresql_where=sa.text(_NEW_CLAIMABLE))

    op.create_table(
        "activation_operations",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "activation_id",
            UUID(as_uuid=True),
            sa.ForeignKey("activations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("params", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("error", JSONB(), nullable=True),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("completed_at", TZ, nullable=True),
    )
    op.create_index("ix_activation_operations_queue", "activation_operations", ["activation_id", "seq"])

    op.create_table(
        "operation_steps",
        sa.Column(
            "operation_id",
            UUID(as_uuid=True),
            sa.ForeignKey("activation_operations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("attempted_at", TZ, nullable=True),
        sa.Column("error", JSONB(), nullable=True),
        sa.PrimaryKeyConstraint("operation_id", "name"),
    )

    # Idempotency keys of mutations are scoped per client and per activation (contract §9).
    op.create_table(
        "operation_keys",
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column(
            "activation_id",
            UUID(as_uuid=True),
            sa.ForeignKey("activations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_fingerprint", sa.Text(), nullable=False),
        # NULL when the request changed nothing (200): its replay answers with the activation.
        sa.Column("operation_id", UUID(as_uuid=True), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("client_id", "activation_id", "key"),
    )
    op.create_index("ix_operation_keys_expires", "operation_keys", ["expires_at"])


def downgrade() -> None:
    op.execute("DROP TRIGGER erase_credentials_off_the_forward_path ON activations")
    op.execute("DROP FUNCTION erase_credentials_off_the_forward_path()")
    op.drop_table("operation_keys")
    op.drop_table("operation_steps")
    op.drop_table("activation_operations")
    op.drop_index("ix_activations_claimable", table_name="activations")
    op.create_index("ix_activations_claimable", "activations", ["run_after"], postgresql_where=sa.text(_OLD_CLAIMABLE))
    for column in (
        "queued_operations",
        "sync_checked_at",
        "sync_error",
        "drift_policy",
        "desired_state",
        "state",
        "applied_revision",
        "revision",
        "workflow_version",
    ):
        op.drop_column("activations", column)

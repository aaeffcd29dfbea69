"""Activations, their steps and events, and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "activations",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("destination_name", sa.Text(), nullable=False),
        sa.Column("destination", postgresql.JSONB(), nullable=True),
        sa.Column("sandbox", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("storage", postgresql.JSONB(), nullable=False),
        sa.Column("credentials_ciphertext", sa.Text(), nullable=True),
        sa.Column("segments", postgresql.JSONB(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(), nullable=False),
        sa.Column("flow_id", sa.Text(), nullable=True),
        sa.Column("flow_etag", sa.Text(), nullable=True),
        sa.Column("error", postgresql.JSONB(), nullable=True),
        sa.Column("rollback_requested_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("completed_at", TZ, nullable=True),
        sa.Column("run_after", TZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", TZ, nullable=True),
        sa.Column("lease_epoch", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'rolling_back', 'rolled_back', 'rollback_failed')",
            name="ck_activations_status",
        ),
    )
    # The claim query scans only unfinished work, so its cost does not grow with history.
    op.create_index(
        "ix_activations_claimable",
        "activations",
        ["run_after"],
        postgresql_where=sa.text("status IN ('pending', 'running', 'rolling_back')"),
    )
    op.create_index(
        "ix_activations_client_created",
        "activations",
        ["client_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )

    op.create_table(
        "activation_steps",
        sa.Column(
            "activation_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("activations.id", ondelete="CASCADE"),
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("resource_id", sa.Text(), nullable=True),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("error", postgresql.JSONB(), nullable=True),
        sa.PrimaryKeyConstraint("activation_id", "name"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'compensating', 'compensated', 'skipped')",
            name="ck_activation_steps_status",
        ),
    )

    op.create_table(
        "activation_events",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column(
            "activation_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("activations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("occurred_at", TZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("step", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(), nullable=False),
    )
    op.create_index("ix_activation_events_activation", "activation_events", ["activation_id", "id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_fingerprint", sa.Text(), nullable=False),
        sa.Column(
            "activation_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("activations.id", ondelete="CASCADE", deferrable=True, initially="DEFERRED"),
            nullable=False,
        ),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("client_id", "key"),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("activation_events")
    op.drop_table("activation_steps")
    op.drop_table("activations")

"""Export runs, drift and export now (contract §12, §13): the runs mirrored from Adobe, the newest
one on the activation, the differences a reconcile found, an operation's result (the runs an export
started), where each sandbox's background cycles go on from, and the leases that let one process at a
time run a background cycle.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("activations", sa.Column("last_run", JSONB(), nullable=True))
    op.add_column("activations", sa.Column("sync_differences", JSONB(), nullable=True))
    op.create_index(
        "ix_activations_flow_id", "activations", ["flow_id"], postgresql_where=sa.text("flow_id IS NOT NULL")
    )
    op.add_column("activation_operations", sa.Column("result", JSONB(), nullable=True))
    op.create_table(
        "activation_runs",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "activation_id", UUID(as_uuid=True), sa.ForeignKey("activations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("flow_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("completed_at", TZ, nullable=True),
        sa.Column("run", JSONB(), nullable=False),
        sa.Column("delay_reported", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("first_seen_at", TZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.text("now()")),
    )
    op.create_index(
        "ix_activation_runs_activation_started",
        "activation_runs",
        ["activation_id", sa.text("started_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_activation_runs_unfinished",
        "activation_runs",
        ["started_at"],
        postgresql_where=sa.text("status IN ('processing', 'waiting')"),
    )
    op.create_table(
        "cycle_watermarks",
        sa.Column("cycle", sa.Text(), primary_key=True),
        sa.Column("sandbox", sa.Text(), primary_key=True),
        sa.Column("after_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.text("now()")),
    )
    op.create_table(
        "background_leases",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("background_leases")
    op.drop_table("cycle_watermarks")
    op.drop_index("ix_activation_runs_unfinished", table_name="activation_runs")
    op.drop_index("ix_activation_runs_activation_started", table_name="activation_runs")
    op.drop_table("activation_runs")
    op.drop_column("activation_operations", "result")
    op.drop_index("ix_activations_flow_id", table_name="activations")
    op.drop_column("activations", "sync_differences")
    op.drop_column("activations", "last_run")

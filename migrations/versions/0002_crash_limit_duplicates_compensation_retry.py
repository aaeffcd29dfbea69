"""Run-crash counting, the time of each step's latest attempt (for the late-commit window), and
automatic retries of failed compensations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

_OLD_CLAIMABLE = "status IN ('pending', 'running', 'rolling_back')"
# A rollback_failed activation is claimable again while an automatic compensation retry is scheduled.
_NEW_CLAIMABLE = (
    "status IN ('pending', 'running', 'rolling_back') "
    "OR (status = 'rollback_failed' AND compensation_retry_at IS NOT NULL)"
)


def upgrade() -> None:
    # Runs that ended in an unexpected exception; at the limit the activation fails instead of looping.
    op.add_column("activations", sa.Column("run_crashes", sa.Integer(), nullable=False, server_default=sa.text("0")))
    # When the next automatic compensation retry of a rollback_failed activation is due (NULL: none).
    op.add_column("activations", sa.Column("compensation_retry_at", TZ, nullable=True))
    op.add_column(
        "activations", sa.Column("compensation_rounds", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    # When the latest attempt of the step started: a create whose answer never came may still
    # commit upstream for a while after it (the late-commit window).
    op.add_column("activation_steps", sa.Column("attempted_at", TZ, nullable=True))
    op.drop_index("ix_activations_claimable", table_name="activations")
    op.create_index("ix_activations_claimable", "activations", ["run_after"], postgresql_where=sa.text(_NEW_CLAIMABLE))


def downgrade() -> None:
    op.drop_index("ix_activations_claimable", table_name="activations")
    op.create_index("ix_activations_claimable", "activations", ["run_after"], postgresql_where=sa.text(_OLD_CLAIMABLE))
    op.drop_column("activation_steps", "attempted_at")
    op.drop_column("activations", "compensation_rounds")
    op.drop_column("activations", "compensation_retry_at")
    op.drop_column("activations", "run_crashes")

"""Detection settings per customer, drift runs, and the outbox that tells reports about events.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from runtime.outbox_migrations import create_outbox, drop_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "drift"


def upgrade() -> None:
    # One row per customer that changed the defaults (windows, effect floors, q value).
    op.create_table(
        "drift_configs",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False),
        sa.Column(
            "update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="drift_configs_pkey"),
        schema=SCHEMA,
    )

    op.create_table(
        "drift_runs",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        # What asked for the run: an upload's outbox event, a schedule, or a person.
        sa.Column("trigger", sa.Text(), nullable=False),
        # The caller's Idempotency-Key, or the id of the event that triggered the run.
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("creator", sa.Text(), nullable=False),
        # The current window ends on this decision date.
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("cells_tested", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("events_created", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("events_updated", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", postgresql.JSONB(), nullable=True),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finish_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "run_id", name="drift_runs_pkey"),
        schema=SCHEMA,
    )
    op.create_index(
        "drift_runs_request_id_key",
        "drift_runs",
        ["customer_id", "request_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )

    create_outbox(SCHEMA)


def downgrade() -> None:
    drop_outbox(SCHEMA)
    op.drop_table("drift_runs", schema=SCHEMA)
    op.drop_table("drift_configs", schema=SCHEMA)

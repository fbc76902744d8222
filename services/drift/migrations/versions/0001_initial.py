"""Detection settings per customer, drift runs, and the outbox that tells reports about events.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

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

    op.create_table(
        "outbox",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        # W3C traceparent/tracestate of the producing span, so the relay's call links to it.
        sa.Column("trace_context", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("attempts", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_time",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("published_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "event_id", name="outbox_pkey"),
        schema=SCHEMA,
    )
    # customer_id leads this index too (see ARCHITECTURE.md); the relay's global scan for due
    # rows stays cheap because the index holds unpublished rows only.
    op.create_index(
        "outbox_pending_idx",
        "outbox",
        ["customer_id", "next_attempt_time"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_time IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("drift_runs", schema=SCHEMA)
    op.drop_table("drift_configs", schema=SCHEMA)

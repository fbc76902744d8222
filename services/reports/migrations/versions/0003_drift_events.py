"""Drift events as reports last heard of them, the changes recorded (the inbox notifications
read), and the batches drift handed over.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"


def upgrade() -> None:
    op.create_table(
        "drift_events",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        # The event's `update_time` in drift: a state no newer than this one changes nothing.
        sa.Column("version", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.Column("code_group", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("dollars_at_stake_cents", sa.BigInteger(), nullable=False),
        # The serialized upstream.drift.v1.DriftEvent, as notifications render it.
        sa.Column("event", sa.LargeBinary(), nullable=False),
        sa.Column(
            "first_recorded_time",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("customer_id", "event_id", name="drift_events_pkey"),
        schema=SCHEMA,
    )

    # One row per version of an event: a redelivered state finds its row and records nothing.
    op.create_table(
        "drift_event_changes",
        sa.Column("change_id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("version", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        # The severity rose against the version recorded before.
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column(
            "record_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "event_id", "version", name="drift_event_changes_pkey"
        ),
        sa.CheckConstraint(
            "change IN ('DRIFT_EVENT_OPENED', 'DRIFT_EVENT_UPDATED', 'DRIFT_EVENT_CLOSED')",
            name="drift_event_changes_change_check",
        ),
        schema=SCHEMA,
    )

    # A batch id seen here was recorded already; a repeated batch returns these counts.
    op.create_table(
        "drift_event_batches",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("events_recorded", sa.BigInteger(), nullable=False),
        sa.Column("deliveries_queued", sa.BigInteger(), nullable=False),
        sa.Column(
            "record_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("customer_id", "batch_id", name="drift_event_batches_pkey"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("drift_event_batches", schema=SCHEMA)
    op.drop_table("drift_event_changes", schema=SCHEMA)
    op.drop_table("drift_events", schema=SCHEMA)

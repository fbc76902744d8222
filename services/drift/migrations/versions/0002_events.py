"""Drift events (one per drift episode) and what a run needs to be queued and resumed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "drift"


def upgrade() -> None:
    for name in ("cells_skipped", "events_closed"):
        op.add_column(
            "drift_runs",
            sa.Column(name, sa.BigInteger(), server_default="0", nullable=False),
            schema=SCHEMA,
        )
    for name in ("baseline_start", "baseline_end", "current_start", "current_end"):
        op.add_column("drift_runs", sa.Column(name, sa.Date(), nullable=True), schema=SCHEMA)
    # A worker holds a run until this time; a run whose worker died is picked up again.
    op.add_column(
        "drift_runs",
        sa.Column("lease_expire_time", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )

    op.create_table(
        "drift_events",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.Column("code_group", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("triage_note", sa.Text(), server_default="", nullable=False),
        sa.Column("triaged_by", sa.Text(), server_default="", nullable=False),
        sa.Column("triage_time", sa.DateTime(timezone=True), nullable=True),
        # True while runs keep finding the drift; the episode ends when one no longer does.
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("baseline_start", sa.Date(), nullable=False),
        sa.Column("baseline_end", sa.Date(), nullable=False),
        sa.Column("current_start", sa.Date(), nullable=False),
        sa.Column("current_end", sa.Date(), nullable=False),
        sa.Column("evidence", postgresql.JSONB(), nullable=False),
        sa.Column("dollars_at_stake_cents", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column(
            "first_detected_time",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "last_seen_time",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_run", sa.Text(), nullable=False),
        sa.Column("last_run", sa.Text(), nullable=False),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        # Bumped on every change; the etag clients send back (AIP-154).
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "event_id", name="drift_events_pkey"),
        schema=SCHEMA,
    )
    # One open episode per customer, payer, code group and metric: concurrent runs upsert it.
    op.create_index(
        "drift_events_open_episode_key",
        "drift_events",
        ["customer_id", "payer", "code_group", "metric"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("active"),
    )
    op.create_index(
        "drift_events_recent_idx",
        "drift_events",
        ["customer_id", "last_seen_time"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("drift_events", schema=SCHEMA)
    op.drop_column("drift_runs", "lease_expire_time", schema=SCHEMA)
    for name in ("current_end", "current_start", "baseline_end", "baseline_start"):
        op.drop_column("drift_runs", name, schema=SCHEMA)
    for name in ("events_closed", "cells_skipped"):
        op.drop_column("drift_runs", name, schema=SCHEMA)

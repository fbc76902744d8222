"""Webhook subscriptions, and an inbox of consumed event ids (dropped unused by 0002).

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

SCHEMA = "reports"


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("webhook_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        # Empty means every event type.
        sa.Column("event_types", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        # Kept readable, not hashed: every delivery is signed with it (Standard Webhooks).
        sa.Column("signing_secret", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("customer_id", "webhook_id", name="webhooks_pkey"),
        schema=SCHEMA,
    )

    # An event id seen here was handled already; a redelivered event is skipped.
    op.create_table(
        "inbox",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "received_time",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("customer_id", "event_id", name="inbox_pkey"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_table("webhooks", schema=SCHEMA)

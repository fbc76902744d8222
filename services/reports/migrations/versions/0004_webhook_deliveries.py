"""Webhook deliveries, each try at sending one, and why a webhook was disabled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"


def upgrade() -> None:
    # Set when the server disabled the webhook (410 Gone, or a delivery's attempts exhausted).
    op.add_column("webhooks", sa.Column("disabled_reason", sa.Text(), nullable=True), schema=SCHEMA)

    op.create_table(
        "webhook_deliveries",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("webhook_id", sa.Text(), nullable=False),
        sa.Column("delivery_id", sa.Text(), nullable=False),
        # Sent as `webhook-id`: the same for every attempt, so receivers drop duplicates.
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        # The drift event change delivered (drift_event_changes.change_id); NULL for a test.
        sa.Column("change_id", sa.BigInteger(), nullable=True),
        # The exact body signed and sent, the same for every attempt.
        sa.Column("body", sa.LargeBinary(), nullable=False),
        # W3C traceparent/tracestate of the call that queued it: attempts continue its trace.
        sa.Column("trace_context", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempt_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=True),
        # The claim that holds the row: only its worker may record the attempt's outcome;
        # a worker that died lets go of it when the lease ends.
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("lease_expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_response_code", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("complete_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(
            "customer_id", "webhook_id", "delivery_id", name="webhook_deliveries_pkey"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "webhook_id"],
            [f"{SCHEMA}.webhooks.customer_id", f"{SCHEMA}.webhooks.webhook_id"],
            name="webhook_deliveries_webhook_fkey",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "state IN ('PENDING', 'RETRYING', 'SUCCEEDED', 'FAILED')",
            name="webhook_deliveries_state_check",
        ),
        # A retried batch of drift events finds its deliveries and queues none twice.
        sa.UniqueConstraint(
            "customer_id", "webhook_id", "change_id", name="webhook_deliveries_change_key"
        ),
        schema=SCHEMA,
    )
    # customer_id leads this index too (see ARCHITECTURE.md); the workers' global scan for due
    # rows stays cheap because the index holds undelivered rows only.
    op.create_index(
        "webhook_deliveries_due_idx",
        "webhook_deliveries",
        ["customer_id", "next_attempt_time"],
        schema=SCHEMA,
        postgresql_where=sa.text("state IN ('PENDING', 'RETRYING')"),
    )
    op.create_index(
        "webhook_deliveries_list_idx",
        "webhook_deliveries",
        ["customer_id", "webhook_id", "create_time", "delivery_id"],
        schema=SCHEMA,
    )

    op.create_table(
        "webhook_delivery_attempts",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("webhook_id", sa.Text(), nullable=False),
        sa.Column("delivery_id", sa.Text(), nullable=False),
        sa.Column("attempt_number", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        # NULL when no answer arrived (refused address, connection error, timeout).
        sa.Column("response_code", sa.BigInteger(), nullable=True),
        sa.Column("latency_seconds", sa.Float(), nullable=False),
        # The first kilobyte of the answer's body.
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id",
            "webhook_id",
            "delivery_id",
            "attempt_number",
            name="webhook_delivery_attempts_pkey",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "webhook_id", "delivery_id"],
            [
                f"{SCHEMA}.webhook_deliveries.customer_id",
                f"{SCHEMA}.webhook_deliveries.webhook_id",
                f"{SCHEMA}.webhook_deliveries.delivery_id",
            ],
            name="webhook_delivery_attempts_delivery_fkey",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("webhook_delivery_attempts", schema=SCHEMA)
    op.drop_table("webhook_deliveries", schema=SCHEMA)
    op.drop_column("webhooks", "disabled_reason", schema=SCHEMA)

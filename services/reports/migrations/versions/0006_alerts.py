"""Alert policies and the alerts they send.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"


def upgrade() -> None:
    # A customer without a row has the defaults, which alert no one.
    op.create_table(
        "alert_policies",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("email_recipients", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("slack_webhook_url", sa.Text(), nullable=True),
        sa.Column("minimum_severity", sa.Text(), nullable=False),
        sa.Column("suppression_window_seconds", sa.BigInteger(), nullable=False),
        sa.Column("delivery_mode", sa.Text(), nullable=False),
        sa.Column("digest_hour", sa.BigInteger(), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column(
            "update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("customer_id", name="alert_policies_pkey"),
        sa.CheckConstraint(
            "minimum_severity IN ('LOW', 'MEDIUM', 'HIGH')",
            name="alert_policies_minimum_severity_check",
        ),
        sa.CheckConstraint(
            "suppression_window_seconds BETWEEN 0 AND 90 * 86400",
            name="alert_policies_suppression_window_check",
        ),
        sa.CheckConstraint(
            "delivery_mode IN ('IMMEDIATE', 'DAILY_DIGEST')",
            name="alert_policies_delivery_mode_check",
        ),
        sa.CheckConstraint("digest_hour BETWEEN 0 AND 23", name="alert_policies_digest_hour_check"),
        schema=SCHEMA,
    )

    op.create_table(
        "alerts",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        # Email addresses, as the policy named them when the alert was queued.
        sa.Column("recipients", postgresql.ARRAY(sa.Text()), nullable=False),
        # SLACK: where to post, as the policy named it when the alert was queued.
        sa.Column("slack_webhook_url", sa.Text(), nullable=True),
        # The drift event change alerted (drift_event_changes.change_id), for DRIFT_EVENT.
        sa.Column("change_id", sa.BigInteger(), nullable=True),
        # DIGEST: when it goes out; changes recorded before then join it.
        sa.Column("digest_time", sa.DateTime(timezone=True), nullable=True),
        # WEBHOOK_DISABLED: which webhook, and why.
        sa.Column("webhook_id", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), nullable=True),
        # The subject line of the last attempt's message.
        sa.Column("subject", sa.Text(), server_default="", nullable=False),
        # W3C traceparent/tracestate of the call that queued it: attempts continue its trace.
        sa.Column("trace_context", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempt_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=True),
        # The claim that holds the row, as for webhook deliveries.
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("lease_expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_response_code", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("complete_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "alert_id", name="alerts_pkey"),
        sa.CheckConstraint(
            "kind IN ('DRIFT_EVENT', 'DIGEST', 'WEBHOOK_DISABLED', 'REPORT_READY')",
            name="alerts_kind_check",
        ),
        sa.CheckConstraint("channel IN ('EMAIL', 'SLACK')", name="alerts_channel_check"),
        sa.CheckConstraint(
            "state IN ('PENDING', 'SENT', 'RETRYING', 'FAILED')", name="alerts_state_check"
        ),
        # A retried batch of drift events queues no alert twice.
        sa.UniqueConstraint("customer_id", "change_id", "channel", name="alerts_change_key"),
        # One digest per channel and send time, which the day's changes join.
        sa.UniqueConstraint("customer_id", "channel", "digest_time", name="alerts_digest_key"),
        schema=SCHEMA,
    )
    op.create_index(
        "alerts_due_idx",
        "alerts",
        ["customer_id", "next_attempt_time"],
        schema=SCHEMA,
        postgresql_where=sa.text("state IN ('PENDING', 'RETRYING')"),
    )
    op.create_index(
        "alerts_list_idx", "alerts", ["customer_id", "create_time", "alert_id"], schema=SCHEMA
    )

    # The drift event changes an alert tells of, each as it was when recorded.
    op.create_table(
        "alert_items",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        # 1 LOW, 2 MEDIUM, 3 HIGH: a digest lists the most severe first.
        sa.Column("severity_rank", sa.BigInteger(), nullable=False),
        sa.Column("dollars_at_stake_cents", sa.BigInteger(), nullable=False),
        # The serialized upstream.drift.v1.DriftEvent of the change.
        sa.Column("event", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "alert_id", "change_id", name="alert_items_pkey"),
        sa.ForeignKeyConstraint(
            ["customer_id", "alert_id"],
            [f"{SCHEMA}.alerts.customer_id", f"{SCHEMA}.alerts.alert_id"],
            name="alert_items_alert_fkey",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )

    op.create_table(
        "alert_attempts",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("attempt_number", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        # SMTP reply code or HTTP status; NULL when no answer came.
        sa.Column("response_code", sa.BigInteger(), nullable=True),
        sa.Column("latency_seconds", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "alert_id", "attempt_number", name="alert_attempts_pkey"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "alert_id"],
            [f"{SCHEMA}.alerts.customer_id", f"{SCHEMA}.alerts.alert_id"],
            name="alert_attempts_alert_fkey",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )

    # The last alert of each payer × code group × metric: within the policy's window, only a
    # higher severity is alerted again.
    op.create_table(
        "alert_suppressions",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.Column("code_group", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("severity_rank", sa.BigInteger(), nullable=False),
        sa.Column("alert_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "payer", "code_group", "metric", name="alert_suppressions_pkey"
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("alert_suppressions", schema=SCHEMA)
    op.drop_table("alert_attempts", schema=SCHEMA)
    op.drop_table("alert_items", schema=SCHEMA)
    op.drop_table("alerts", schema=SCHEMA)
    op.drop_table("alert_policies", schema=SCHEMA)

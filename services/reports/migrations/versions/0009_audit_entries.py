"""The audit log: webhooks, report schedules and the alert policy, recorded by the
database in the transaction of each change. Secrets are named, never copied.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from runtime.audit_migrations import (
    audit_table,
    create_audit_log,
    drop_audit_log,
    drop_audit_table,
)

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"
AUDITED = ("webhooks", "report_schedules", "alert_policies")


def upgrade() -> None:
    create_audit_log(SCHEMA)
    audit_table(
        SCHEMA,
        "webhooks",
        "webhooks",
        "webhook_id",
        hidden=("signing_secret", "previous_signing_secret"),
        ignored=("update_time",),
    )
    audit_table(
        SCHEMA,
        "report_schedules",
        "reportSchedules",
        "schedule_id",
        # The template is stored as its proto's bytes: named when it changes.
        hidden=("report_template",),
        # What each run of the schedule moves on.
        ignored=("update_time", "next_run_time", "last_run_time", "last_report_id"),
    )
    audit_table(
        SCHEMA,
        "alert_policies",
        "alertPolicy",
        hidden=("slack_webhook_url",),
        ignored=("update_time",),
    )


def downgrade() -> None:
    for table in reversed(AUDITED):
        drop_audit_table(SCHEMA, table)
    drop_audit_log(SCHEMA)

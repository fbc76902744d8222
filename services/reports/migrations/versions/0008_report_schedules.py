"""Report schedules: a cron expression in a time zone and the report each run creates.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"


def upgrade() -> None:
    op.create_table(
        "report_schedules",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("schedule_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        # The ReportTemplate (serialized) each run creates a report from.
        sa.Column("report_template", sa.LargeBinary(), nullable=False),
        sa.Column(
            "email_recipients", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        # The next time a run is due; NULL while paused. Every replica's scheduler claims
        # due schedules (`FOR UPDATE SKIP LOCKED`), and a run's report is unique on
        # (schedule, scheduled time), so a run is made once.
        sa.Column("next_run_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_report_id", sa.Text(), nullable=True),
        # Subject that last created or changed the schedule: its reports' creator.
        sa.Column("creator", sa.Text(), nullable=False),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("customer_id", "schedule_id", name="report_schedules_pkey"),
        schema=SCHEMA,
    )
    # customer_id leads (see ARCHITECTURE.md); the schedulers' scan for due runs stays cheap
    # because the index holds running schedules only.
    op.create_index(
        "report_schedules_due_idx",
        "report_schedules",
        ["customer_id", "next_run_time"],
        schema=SCHEMA,
        postgresql_where=sa.text("NOT paused"),
    )
    op.create_index(
        "report_schedules_list_idx",
        "report_schedules",
        ["customer_id", "create_time", "schedule_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("report_schedules", schema=SCHEMA)

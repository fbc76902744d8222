"""Reports: what each asks for, its build state and lease, and its content in chunks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("report_id", sa.Text(), nullable=False),
        # ReportKind and ReportFormat names of the contract.
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        # The period, resolved from `lookback_days` when the report was created.
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("payers", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        # The ReportParameters as asked (serialized), shown back as they were given.
        sa.Column("parameters", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        # google.rpc.Status code and message of a FAILED report.
        sa.Column("error_code", sa.BigInteger(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("sha256", sa.Text(), nullable=True),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("creator", sa.Text(), nullable=False),
        # Idempotency key of CreateReport; NULL for scheduled reports.
        sa.Column("request_id", sa.Text(), nullable=True),
        # The schedule and its run time that created the report: one report per run.
        sa.Column("schedule_id", sa.Text(), nullable=True),
        sa.Column("scheduled_time", sa.DateTime(timezone=True), nullable=True),
        # Builds so far; the content's chunks are those of the build that succeeded, so a
        # build that died (or lost its lease and runs on) never mixes into another's file.
        sa.Column("build_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("built_by", sa.BigInteger(), nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("lease_expire_time", sa.DateTime(timezone=True), nullable=True),
        # A build that failed for a passing reason (a service unreachable) waits until then.
        sa.Column("next_build_time", sa.DateTime(timezone=True), nullable=True),
        # W3C traceparent/tracestate of the call that asked for it: the build continues it.
        sa.Column("trace_context", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finish_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "report_id", name="reports_pkey"),
        sa.CheckConstraint(
            "state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')", name="reports_state_check"
        ),
        sa.CheckConstraint("end_date >= start_date", name="reports_period_check"),
        sa.UniqueConstraint("customer_id", "request_id", name="reports_request_key"),
        sa.UniqueConstraint(
            "customer_id", "schedule_id", "scheduled_time", name="reports_schedule_run_key"
        ),
        schema=SCHEMA,
    )
    # customer_id leads (see ARCHITECTURE.md); the workers' scan for reports to build stays
    # cheap because the index holds unfinished reports only.
    op.create_index(
        "reports_unfinished_idx",
        "reports",
        ["customer_id", "next_build_time"],
        schema=SCHEMA,
        postgresql_where=sa.text("state IN ('PENDING', 'RUNNING')"),
    )
    op.create_index(
        "reports_list_idx", "reports", ["customer_id", "create_time", "report_id"], schema=SCHEMA
    )
    op.create_index(
        "reports_expire_idx",
        "reports",
        ["customer_id", "expire_time"],
        schema=SCHEMA,
        postgresql_where=sa.text("expire_time IS NOT NULL"),
    )

    op.create_table(
        "report_chunks",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("report_id", sa.Text(), nullable=False),
        sa.Column("build", sa.BigInteger(), nullable=False),
        sa.Column("chunk_number", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "report_id", "build", "chunk_number", name="report_chunks_pkey"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "report_id"],
            [f"{SCHEMA}.reports.customer_id", f"{SCHEMA}.reports.report_id"],
            name="report_chunks_report_fkey",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )
    # PDFs and exports are compressed already or read once: storing them uncompressed saves
    # the CPU of compressing every chunk.
    op.execute(f"ALTER TABLE {SCHEMA}.report_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("report_chunks", schema=SCHEMA)
    op.drop_table("reports", schema=SCHEMA)

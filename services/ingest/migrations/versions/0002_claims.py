"""Claims, rejected rows, payers and their mappings, daily statistics, and the audit log.

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

SCHEMA = "ingest"


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=None if nullable else sa.func.now(),
        nullable=nullable,
    )


def upgrade() -> None:
    # One row per claim: a claim id is unique per payer (by its normalised raw name), and a
    # newer adjudication of the same claim updates the row.
    op.create_table(
        "claims",
        sa.Column("customer_id", sa.Text(), nullable=False),
        # Stable id in resource names: a digest of (payer key, claim id).
        sa.Column("claim_uid", sa.Text(), nullable=False),
        sa.Column("claim_id", sa.Text(), nullable=False),
        sa.Column("payer_key", sa.Text(), nullable=False),
        sa.Column("payer_uid", sa.Text(), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.Column("payer_raw_name", sa.Text(), nullable=False),
        sa.Column("payer_raw_id", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("denied", sa.Boolean(), nullable=False),
        sa.Column("partially_denied", sa.Boolean(), nullable=False),
        sa.Column("procedure_codes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("code_group", sa.Text(), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=True),
        sa.Column("submitted_date", sa.Date(), nullable=True),
        sa.Column("decision_date", sa.Date(), nullable=True),
        # Whole days from submission (else service) to decision; NULL while pending.
        sa.Column("decision_days", sa.BigInteger(), nullable=True),
        sa.Column("billed_cents", sa.BigInteger(), nullable=False),
        sa.Column("allowed_cents", sa.BigInteger(), nullable=True),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("patient_responsibility_cents", sa.BigInteger(), nullable=False),
        sa.Column("adjustments", postgresql.JSONB(), nullable=False),
        sa.Column("denial_codes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("payer_claim_control_number", sa.Text(), nullable=False),
        sa.Column("upload_id", sa.Text(), nullable=False),
        sa.Column("source_line", sa.BigInteger(), nullable=False),
        _time("update_time"),
        sa.PrimaryKeyConstraint("customer_id", "claim_uid", name="claims_pkey"),
        schema=SCHEMA,
    )
    op.create_index(
        "claims_decision_date_idx", "claims", ["customer_id", "decision_date"], schema=SCHEMA
    )
    op.create_index(
        "claims_payer_idx", "claims", ["customer_id", "payer", "decision_date"], schema=SCHEMA
    )
    op.create_index("claims_upload_idx", "claims", ["customer_id", "upload_id"], schema=SCHEMA)
    # Reversals find the claim they cancel by the payer's claim control number.
    op.create_index(
        "claims_control_number_idx",
        "claims",
        ["customer_id", "payer_key", "payer_claim_control_number"],
        schema=SCHEMA,
        postgresql_where=sa.text("payer_claim_control_number <> ''"),
    )

    op.create_table(
        "upload_rejections",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("upload_id", sa.Text(), nullable=False),
        # Order of the rejection within its upload (several can share a line).
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("line_number", sa.BigInteger(), nullable=False),
        sa.Column("segment_number", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("column_name", sa.Text(), server_default="", nullable=False),
        sa.Column("raw_value", sa.Text(), server_default="", nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "upload_id", "seq", name="upload_rejections_pkey"),
        schema=SCHEMA,
    )

    # Payers as seen in files, keyed by (normalised raw name, raw id).
    op.create_table(
        "payers",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("payer_uid", sa.Text(), nullable=False),
        sa.Column("name_key", sa.Text(), nullable=False),
        sa.Column("raw_name", sa.Text(), nullable=False),
        sa.Column("raw_id", sa.Text(), server_default="", nullable=False),
        sa.Column("canonical_payer", sa.Text(), nullable=False),
        sa.Column("mapping_id", sa.Text(), nullable=True),
        sa.Column("claim_count", sa.BigInteger(), server_default="0", nullable=False),
        _time("first_seen_time"),
        _time("last_seen_time"),
        sa.PrimaryKeyConstraint("customer_id", "payer_uid", name="payers_pkey"),
        schema=SCHEMA,
    )

    op.create_table(
        "payer_mappings",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("mapping_id", sa.Text(), nullable=False),
        # Normalised raw name (upper case, single spaces); '' matches any name.
        sa.Column("name_key", sa.Text(), server_default="", nullable=False),
        sa.Column("raw_payer_name", sa.Text(), server_default="", nullable=False),
        sa.Column("raw_payer_id", sa.Text(), server_default="", nullable=False),
        sa.Column("canonical_payer", sa.Text(), nullable=False),
        _time("create_time"),
        _time("update_time"),
        sa.PrimaryKeyConstraint("customer_id", "mapping_id", name="payer_mappings_pkey"),
        sa.UniqueConstraint(
            "customer_id", "name_key", "raw_payer_id", name="payer_mappings_raw_key"
        ),
        schema=SCHEMA,
    )

    # What drift reads: one row per customer × canonical payer × code group × decision day.
    op.create_table(
        "daily_stats",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.Column("code_group", sa.Text(), nullable=False),
        sa.Column("decision_date", sa.Date(), nullable=False),
        sa.Column("decided_claims", sa.BigInteger(), nullable=False),
        sa.Column("denied_claims", sa.BigInteger(), nullable=False),
        sa.Column("partially_denied_claims", sa.BigInteger(), nullable=False),
        # {"<days>": claims}: exact integer days to decision.
        sa.Column("decision_days", postgresql.JSONB(), nullable=False),
        sa.Column("billed_cents", sa.BigInteger(), nullable=False),
        sa.Column("allowed_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("denied_billed_cents", sa.BigInteger(), nullable=False),
        # {"CO-50": claims}: denial reasons of denied and partially denied claims.
        sa.Column("carc_counts", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "payer", "code_group", "decision_date", name="daily_stats_pkey"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "daily_stats_date_idx", "daily_stats", ["customer_id", "decision_date"], schema=SCHEMA
    )

    # Who removed which upload, and what it held: deletions are not silent.
    op.create_table(
        "audit_log",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(), server_default="{}", nullable=False),
        _time("create_time"),
        sa.PrimaryKeyConstraint("customer_id", "entry_id", name="audit_log_pkey"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "audit_log",
        "daily_stats",
        "payer_mappings",
        "payers",
        "upload_rejections",
        "claims",
    ):
        op.drop_table(table, schema=SCHEMA)

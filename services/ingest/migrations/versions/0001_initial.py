"""Uploads and the outbox that tells drift about them.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from runtime.outbox_migrations import create_outbox, drop_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("upload_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), server_default="0", nullable=False),
        # Known once the whole body has streamed in.
        sa.Column("sha256", sa.Text(), nullable=True),
        # The caller's Idempotency-Key.
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("creator", sa.Text(), nullable=False),
        sa.Column("rows_read", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_accepted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_updated", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_decision_date", sa.Date(), nullable=True),
        sa.Column("last_decision_date", sa.Date(), nullable=True),
        sa.Column("payers", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("warnings", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("error", postgresql.JSONB(), nullable=True),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finish_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "upload_id", name="uploads_pkey"),
        schema=SCHEMA,
    )
    # The same Idempotency-Key or the same file content never makes a second upload.
    op.create_index(
        "uploads_request_id_key",
        "uploads",
        ["customer_id", "request_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )
    op.create_index(
        "uploads_sha256_key",
        "uploads",
        ["customer_id", "sha256"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("state <> 'FAILED'"),
    )

    create_outbox(SCHEMA)


def downgrade() -> None:
    drop_outbox(SCHEMA)
    op.drop_table("uploads", schema=SCHEMA)

"""Payer summaries kept between reads: computed once per state of the customer's data
(ingest's data etag) and detection settings, not on every read.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "drift"


def upgrade() -> None:
    op.create_table(
        "payer_summary_sets",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("data_etag", sa.Text(), nullable=False),
        sa.Column("config_etag", sa.Text(), nullable=False),
        sa.Column("as_of", sa.Date()),
        sa.Column("compute_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
        schema=SCHEMA,
    )
    op.create_table(
        "payer_summaries",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.Column("current_claims", sa.BigInteger(), nullable=False),
        sa.Column("current_denial_rate", sa.Float(), nullable=False),
        sa.Column("current_denied_billed_cents", sa.BigInteger(), nullable=False),
        # The `PayerSummary` message without its open event count, which is read live.
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "payer"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("payer_summaries", schema=SCHEMA)
    op.drop_table("payer_summary_sets", schema=SCHEMA)

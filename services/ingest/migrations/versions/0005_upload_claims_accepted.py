"""Uploads count the distinct claims their accepted rows formed (CSV rows of one claim are
combined into it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column(
        "uploads",
        sa.Column("claims_accepted", sa.BigInteger(), server_default="0", nullable=False),
        schema=SCHEMA,
    )
    # Uploads stored so far took each accepted row as a claim of its own.
    op.execute(f"UPDATE {SCHEMA}.uploads SET claims_accepted = rows_accepted")


def downgrade() -> None:
    op.drop_column("uploads", "claims_accepted", schema=SCHEMA)

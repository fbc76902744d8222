"""The trace context of the call that asked for a run, so the run continues its trace.

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

SCHEMA = "drift"


def upgrade() -> None:
    # Nullable, no default: a catalog change only, whatever the table's size.
    op.add_column(
        "drift_runs", sa.Column("trace_context", postgresql.JSONB, nullable=True), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("drift_runs", "trace_context", schema=SCHEMA)

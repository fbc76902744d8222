"""An open event says when runs stopped making its comparison (`untested_since`, the as-of
day of the first run since it was last found that could not: too few decided claims in its
cell's windows, or none), so that an event nobody can confirm any more is told from one the
latest run found. Nullable, without a default: a change of the catalog only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE drift.drift_events ADD COLUMN untested_since date")


def downgrade() -> None:
    op.execute("ALTER TABLE drift.drift_events DROP COLUMN untested_since")

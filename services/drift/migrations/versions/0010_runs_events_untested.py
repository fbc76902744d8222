"""A run counts the open events it could not compare (`events_untested`: too few decided
claims of their cells in its windows, or none). Nullable, without a default: a change of the
catalog only; runs before it read as 0.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE drift.drift_runs ADD COLUMN events_untested bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE drift.drift_runs DROP COLUMN events_untested")

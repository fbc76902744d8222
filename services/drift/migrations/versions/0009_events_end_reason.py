"""An ended event says why it ended (`end_reason`): a run no longer found its drift
(`NO_LONGER_FOUND`), or none of its payer's claims are left (`CLAIMS_REMOVED`). Nullable,
without a default: a change of the catalog only; an event ended before reads as
`NO_LONGER_FOUND`, the only way one ended then.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE drift.drift_events ADD COLUMN end_reason text")


def downgrade() -> None:
    op.execute("ALTER TABLE drift.drift_events DROP COLUMN end_reason")

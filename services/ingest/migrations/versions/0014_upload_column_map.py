"""An upload keeps the column map it was read with (`Upload.column_map`), so that how a file's
headers were named stays known with it. Uploads stored before have none (read as empty).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, without a default: a change of the catalog only, no rewrite of the table.
    op.execute("ALTER TABLE ingest.uploads ADD COLUMN column_map jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest.uploads DROP COLUMN column_map")

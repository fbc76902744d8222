"""A payer keeps the name ingest's payer directory gave it (`directory_payer`, the national
payer its raw name names, e.g. "Aetna" for "AETNA INC"), so that a re-resolution of the
customer's payers falls back to it once no mapping applies. Payers stored before have none
and keep their names until mapped.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, without a default: a change of the catalog only, no rewrite of the table.
    op.execute("ALTER TABLE ingest.payers ADD COLUMN directory_payer text")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest.payers DROP COLUMN directory_payer")

"""Narrow month entries stored uncompressed, as the months' other packed arrays are (0003):
they compress by about 40 % with pglz, and every read of a month paid for decompressing them
(PostgreSQL's CPU a drift run's read 0.39 → 0.36 s). A month written from now on is stored so;
one written before stays compressed until its month is packed again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("narrow_histogram", "narrow_carc")


def _storage(kind: str) -> str:
    return "ALTER TABLE ingest.daily_stat_months " + ", ".join(
        f"ALTER COLUMN {column} SET STORAGE {kind}" for column in COLUMNS
    )


def upgrade() -> None:
    op.execute(_storage("EXTERNAL"))


def downgrade() -> None:
    op.execute(_storage("EXTENDED"))

"""Packed months' histogram and CARC entries in six bytes where they fit.

A month's entries can be stored as 6-byte entries (`narrow_histogram`, `narrow_carc`: the day
index in the month in the top byte of an int4 whose low three bytes hold the value, then the
claims in an int2; big-endian) beside the 12-byte triplets of `histogram` and `carc`, which
keep the rest (claims past an int2). A release before this one reads only the triplets: while
one of its pods runs, ingest is told not to write narrow entries (`NARROW_MONTH_ENTRIES`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"


def upgrade() -> None:
    for column in ("narrow_histogram", "narrow_carc"):
        # A constant default: PostgreSQL adds the columns without rewriting the table, and a
        # month the previous release writes has no narrow entries.
        op.add_column(
            "daily_stat_months",
            sa.Column(
                column, postgresql.BYTEA(), server_default=sa.text("''::bytea"), nullable=False
            ),
            schema=SCHEMA,
        )


def downgrade() -> None:
    # Entries kept narrow go back among the triplets before their columns go.
    op.execute(_WIDEN_ENTRIES)
    for column in ("narrow_carc", "narrow_histogram"):
        op.drop_column("daily_stat_months", column, schema=SCHEMA)


def _int4(column: str, offset: str) -> str:
    """The big-endian int4 at byte `offset` of `column`."""
    return f"('x' || encode(substring({column} from {offset} + 1 for 4), 'hex'))::bit(32)::int"


def _widened(wide: str, narrow: str) -> str:
    """A month's triplets and 6-byte entries as triplets, in day, then value order (the
    order every month is written in)."""
    day_value = _int4(narrow, "i * 6")
    claims = f"(get_byte({narrow}, i * 6 + 4) << 8 | get_byte({narrow}, i * 6 + 5))"
    return f"""(
    SELECT coalesce(string_agg(int4send(d) || int4send(v) || int4send(n), ''::bytea
                               ORDER BY d, v), ''::bytea)
    FROM (SELECT {_int4(wide, "i * 12")} AS d, {_int4(wide, "i * 12 + 4")} AS v,
                 {_int4(wide, "i * 12 + 8")} AS n
          FROM generate_series(0, length({wide}) / 12 - 1) i
          UNION ALL
          SELECT {day_value} >> 24, {day_value} & 16777215, {claims} - ({claims} >> 15 << 16)
          FROM generate_series(0, length({narrow}) / 6 - 1) i) e)"""


_WIDEN_ENTRIES = f"""
UPDATE ingest.daily_stat_months
SET histogram = {_widened("histogram", "narrow_histogram")},
    carc = {_widened("carc", "narrow_carc")}
WHERE narrow_histogram <> ''::bytea OR narrow_carc <> ''::bytea
"""

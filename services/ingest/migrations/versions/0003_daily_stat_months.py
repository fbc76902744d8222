"""The daily statistics packed by month, as drift reads them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"

# The months of the statistics already stored, packed as services/ingest/daily_statistics.py packs
# them when statistics change (that module's MONTHS_FROM_DAILY_STATS, as it was here).
_PACK_EVERY_MONTH = """
WITH days AS (
    SELECT s.*, m.month,
           (row_number() OVER (PARTITION BY s.customer_id, s.payer, s.code_group, m.month
                               ORDER BY s.decision_date) - 1)::int AS i
    FROM ingest.daily_stats s,
         LATERAL (SELECT date_trunc('month', s.decision_date)::date AS month) m
), cells AS (
    SELECT customer_id, payer, code_group, month,
           string_agg(int4send(decision_date - DATE '1970-01-01'), ''::bytea ORDER BY i) AS days,
           string_agg(int8send(decided_claims) || int8send(denied_claims)
                      || int8send(partially_denied_claims) || int8send(billed_cents)
                      || int8send(allowed_cents) || int8send(paid_cents)
                      || int8send(denied_billed_cents), ''::bytea ORDER BY i) AS amounts
    FROM days GROUP BY customer_id, payer, code_group, month
), histograms AS (
    SELECT customer_id, payer, code_group, month,
           string_agg(int4send(i) || int4send(e.key::int) || int4send(e.value::int), ''::bytea
                      ORDER BY i) AS histogram
    FROM days, jsonb_each_text(decision_days) AS e GROUP BY customer_id, payer, code_group, month
), codes AS (
    SELECT customer_id, payer, code_group, month, i, e.key AS code, e.value::int AS claims,
           (dense_rank() OVER (PARTITION BY customer_id, payer, code_group, month
                               ORDER BY e.key) - 1)::int AS code_i
    FROM days, jsonb_each_text(carc_counts) AS e
), carcs AS (
    SELECT customer_id, payer, code_group, month, array_agg(DISTINCT code ORDER BY code) AS codes,
           string_agg(int4send(i) || int4send(code_i) || int4send(claims), ''::bytea
                      ORDER BY i) AS carc
    FROM codes GROUP BY customer_id, payer, code_group, month
)
INSERT INTO ingest.daily_stat_months
    (customer_id, payer, code_group, month, days, amounts, histogram, carc_codes, carc)
SELECT customer_id, payer, code_group, month, c.days, c.amounts,
       coalesce(h.histogram, ''::bytea), coalesce(k.codes, '{}'), coalesce(k.carc, ''::bytea)
FROM cells c
LEFT JOIN histograms h USING (customer_id, payer, code_group, month)
LEFT JOIN carcs k USING (customer_id, payer, code_group, month)
"""


def upgrade() -> None:
    # Per customer × canonical payer × code group × month: the month's days of
    # ingest.daily_stats as big-endian packed arrays (see services/ingest/daily_statistics.py).
    op.create_table(
        "daily_stat_months",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.Column("code_group", sa.Text(), nullable=False),
        # The first day of the month.
        sa.Column("month", sa.Date(), nullable=False),
        # int4 day numbers since 1970-01-01, ascending.
        sa.Column("days", postgresql.BYTEA(), nullable=False),
        # int8 × 7 per day: decided, denied, partially denied claims; billed, allowed, paid
        # and denied billed cents.
        sa.Column("amounts", postgresql.BYTEA(), nullable=False),
        # int4 triplets: day index within the month, days to decision, claims.
        sa.Column("histogram", postgresql.BYTEA(), nullable=False),
        sa.Column("carc_codes", postgresql.ARRAY(sa.Text()), nullable=False),
        # int4 triplets: day index within the month, index into carc_codes, claims.
        sa.Column("carc", postgresql.BYTEA(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "payer", "code_group", "month", name="daily_stat_months_pkey"
        ),
        schema=SCHEMA,
    )
    # Packed integers compress little and are read whole: stored uncompressed, writing and
    # reading them costs no compression work.
    op.execute(
        "ALTER TABLE ingest.daily_stat_months "
        + ", ".join(
            f"ALTER COLUMN {column} SET STORAGE EXTERNAL"
            for column in ("days", "amounts", "histogram", "carc")
        )
    )
    op.execute(_PACK_EVERY_MONTH)


def downgrade() -> None:
    op.drop_table("daily_stat_months", schema=SCHEMA)

"""The patients' share in the daily statistics and their packed months, and the counts of the
claims still pending.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"

# The patients' share of the stored claims, counted as services/ingest/daily_statistics.py
# counts it (on the decision day of claims not reversed), in one pass over the claims.
_COUNT_PATIENT_SHARE = """
UPDATE ingest.daily_stats s SET patient_responsibility_cents = c.patient
FROM (SELECT customer_id, payer, code_group, decision_date,
             sum(patient_responsibility_cents) AS patient
      FROM ingest.claims
      WHERE status <> 'REVERSED' AND decision_date IS NOT NULL
        AND patient_responsibility_cents <> 0
      GROUP BY customer_id, payer, code_group, decision_date) c
WHERE s.customer_id = c.customer_id AND s.payer = c.payer AND s.code_group = c.code_group
  AND s.decision_date = c.decision_date
"""

# Each month's days are its days in ingest.daily_stats, in date order: the share is packed
# alongside them. A month whose patients owe nothing keeps the default, read as zeros.
_PACK_PATIENT_SHARE = """
UPDATE ingest.daily_stat_months m SET patient_responsibility = p.packed
FROM (SELECT customer_id, payer, code_group, date_trunc('month', decision_date)::date AS month,
             string_agg(int8send(patient_responsibility_cents), ''::bytea
                        ORDER BY decision_date) AS packed
      FROM ingest.daily_stats
      GROUP BY customer_id, payer, code_group, date_trunc('month', decision_date)
      HAVING bool_or(patient_responsibility_cents <> 0)) p
WHERE m.customer_id = p.customer_id AND m.payer = p.payer AND m.code_group = p.code_group
  AND m.month = p.month
"""

# The stored claims still pending, by the day they started, as
# services/ingest/claim_statistics.py's `pending_started` says.
_COUNT_PENDING = """
INSERT INTO ingest.pending_stats (customer_id, payer, code_group, start_date, pending_claims)
SELECT customer_id, payer, code_group, coalesce(submitted_date, service_date), count(*)
FROM ingest.claims
WHERE status = 'PENDING' AND coalesce(submitted_date, service_date) IS NOT NULL
GROUP BY customer_id, payer, code_group, coalesce(submitted_date, service_date)
"""


def upgrade() -> None:
    # Constant defaults: PostgreSQL adds the columns without rewriting the tables.
    op.add_column(
        "daily_stats",
        sa.Column(
            "patient_responsibility_cents", sa.BigInteger(), server_default="0", nullable=False
        ),
        schema=SCHEMA,
    )
    # int8 per day of `days`: the patients' share in cents; empty means none on any day.
    op.add_column(
        "daily_stat_months",
        sa.Column(
            "patient_responsibility",
            postgresql.BYTEA(),
            server_default=sa.text("''::bytea"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.execute(
        "ALTER TABLE ingest.daily_stat_months "
        "ALTER COLUMN patient_responsibility SET STORAGE EXTERNAL"
    )
    op.execute(_COUNT_PATIENT_SHARE)
    op.execute(_PACK_PATIENT_SHARE)
    # Per customer × canonical payer × code group × day claims started: how many are still
    # pending. Kept in step with every write of the claims, as the daily statistics are,
    # rather than counted from the claims at each read: a read then costs a row per start
    # day, whatever the number of claims, and no index is built on the claims table.
    op.create_table(
        "pending_stats",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("payer", sa.Text(), nullable=False),
        sa.Column("code_group", sa.Text(), nullable=False),
        # Submission date, else service date.
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("pending_claims", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "payer", "code_group", "start_date", name="pending_stats_pkey"
        ),
        schema=SCHEMA,
    )
    op.execute(_COUNT_PENDING)


def downgrade() -> None:
    op.drop_table("pending_stats", schema=SCHEMA)
    op.drop_column("daily_stat_months", "patient_responsibility", schema=SCHEMA)
    op.drop_column("daily_stats", "patient_responsibility_cents", schema=SCHEMA)

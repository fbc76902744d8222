"""An index in the order claims are listed by default (newest decision first, pending claims
last, `coalesce(decision_date, '0001-01-01')` then claim uid): a page of claims reads its
rows from the index instead of sorting every claim of the customer.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"
INDEX = "claims_decision_order_idx"


def upgrade() -> None:
    # Built without blocking uploads, so outside the transaction.
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "claims",
            [
                "customer_id",
                sa.text("coalesce(decision_date, '0001-01-01'::date)"),
                "claim_uid",
            ],
            schema=SCHEMA,
            if_not_exists=True,
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, "claims", schema=SCHEMA, if_exists=True, postgresql_concurrently=True)

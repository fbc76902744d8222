"""One index for the claims' decision dates: the listing order's (migration 0010) serves the
reads of a range of decision dates as well (`store.DECISION_DAY`), so the plain
`(customer_id, decision_date)` index goes, and an upload writes one index fewer.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"
INDEX = "claims_decision_date_idx"


def upgrade() -> None:
    # Without blocking uploads, so outside the transaction.
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, "claims", schema=SCHEMA, if_exists=True, postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "claims",
            ["customer_id", "decision_date"],
            schema=SCHEMA,
            if_not_exists=True,
            postgresql_concurrently=True,
        )

"""The index of claims by decision date alone goes: since 0010 claims are read by decision
order (`claims_decision_order_idx`) and by payer and decision date, so no query of the
release before this one or of this one reads it, and every upload stops keeping it up.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

from runtime.schemas import squawk_ignore

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"
INDEX = "claims_decision_date_idx"


def upgrade() -> None:
    # Dropped without blocking uploads, so outside the transaction.
    with op.get_context().autocommit_block():
        squawk_ignore(
            "ban-drop-index",
            "No query of the release before (0010) or of this one reads it: a release "
            "rolled back to 0010's keeps working, and its downgrade builds it again.",
        )
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

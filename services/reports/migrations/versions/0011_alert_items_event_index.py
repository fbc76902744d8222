"""An index of the alert items by drift event: an event that ends is alerted only if an
alert told of it before (`alert_when_ended`), and without it each such look read every item
of the customer's alerts. `customer_id` leads, as in every index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"
INDEX = "alert_items_event_idx"


def upgrade() -> None:
    # Built without blocking the alerts queued meanwhile, so outside the transaction.
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "alert_items",
            ["customer_id", "event_id"],
            schema=SCHEMA,
            if_not_exists=True,
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            INDEX, "alert_items", schema=SCHEMA, if_exists=True, postgresql_concurrently=True
        )

"""Webhook secret rotation and manual redelivery.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"


def upgrade() -> None:
    # The secret a rotation replaced: every send signs with it too until it expires, so
    # receivers can switch secrets without missing a delivery.
    op.add_column(
        "webhooks", sa.Column("previous_signing_secret", sa.Text(), nullable=True), schema=SCHEMA
    )
    op.add_column(
        "webhooks",
        sa.Column("previous_secret_expire_time", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    # Manual redeliveries asked for; an attempt made after one is not retried.
    op.add_column(
        "webhook_deliveries",
        sa.Column("redelivery_count", sa.BigInteger(), server_default="0", nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "redelivery_count", schema=SCHEMA)
    op.drop_column("webhooks", "previous_secret_expire_time", schema=SCHEMA)
    op.drop_column("webhooks", "previous_signing_secret", schema=SCHEMA)

"""Drop the inbox nothing wrote to: recording drift events idempotently keys its inbox by
event id and version, which this table cannot hold.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "reports"


def upgrade() -> None:
    # No released code reads or writes the table, so dropping it breaks no running client.
    op.execute(f"-- squawk-ignore ban-drop-table\nDROP TABLE {SCHEMA}.inbox")


def downgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "received_time",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("customer_id", "event_id", name="inbox_pkey"),
        schema=SCHEMA,
    )

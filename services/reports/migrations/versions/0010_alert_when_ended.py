"""An alert policy may also alert when an alerted drift event ends (`alert_when_ended`).
A constant default: a change of the catalog only, and the previous release's writes, which
do not name the column, keep its default (off, what a policy did before).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "alert_policies",
        sa.Column("alert_when_ended", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema="reports",
    )


def downgrade() -> None:
    op.drop_column("alert_policies", "alert_when_ended", schema="reports")

"""An index of the runs not finished (PENDING or RUNNING): the run workers look for the next
one to take, and count those waiting, every few seconds, and without it each look read every
run the customers ever asked for; it holds only the few unfinished ones. `customer_id` leads,
as in every index (a table distributed by customer keeps its indexes by customer).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "drift"
INDEX = "drift_runs_unfinished_idx"


def upgrade() -> None:
    # Built without blocking the runs asked for meanwhile, so outside the transaction.
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "drift_runs",
            ["customer_id", "create_time"],
            schema=SCHEMA,
            if_not_exists=True,
            postgresql_concurrently=True,
            postgresql_where=sa.text("state IN ('PENDING', 'RUNNING')"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            INDEX, "drift_runs", schema=SCHEMA, if_exists=True, postgresql_concurrently=True
        )

"""Outbox leases, so the relay publishes without holding a transaction, and parking of
events that keep failing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from runtime.outbox_migrations import add_leases_and_parking, remove_leases_and_parking

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"


def upgrade() -> None:
    add_leases_and_parking(SCHEMA)


def downgrade() -> None:
    remove_leases_and_parking(SCHEMA)

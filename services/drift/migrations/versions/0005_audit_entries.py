"""The audit log: detection settings and the triage of drift events, recorded by the
database in the transaction of each change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from runtime.audit_migrations import (
    audit_table,
    create_audit_log,
    drop_audit_log,
    drop_audit_table,
)

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "drift"


def upgrade() -> None:
    create_audit_log(SCHEMA)
    audit_table(
        SCHEMA,
        "drift_configs",
        "driftConfig",
        ignored=("update_time", "updated_by", "etag"),
    )
    # Triage (a person's state and note), not what each detection run refreshes.
    audit_table(
        SCHEMA,
        "drift_events",
        "driftEvents",
        "event_id",
        events="UPDATE OF state, triage_note",
        tracked=("state", "triage_note"),
    )


def downgrade() -> None:
    drop_audit_table(SCHEMA, "drift_events")
    drop_audit_table(SCHEMA, "drift_configs")
    drop_audit_log(SCHEMA)

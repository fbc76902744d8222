"""The audit log: every upload created or deleted and every payer mapping change, recorded
by the database in the transaction of the change. The entries of `audit_log` (deleted
uploads) move over; the table stays for the release before this one, which still writes it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

from runtime.audit_migrations import (
    audit_table,
    create_audit_log,
    drop_audit_log,
    drop_audit_table,
)

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "ingest"


def upgrade() -> None:
    create_audit_log(SCHEMA)
    # An upload is created and deleted by people; its progress is the service's bookkeeping.
    audit_table(SCHEMA, "uploads", "uploads", "upload_id", events="INSERT OR DELETE")
    audit_table(
        SCHEMA,
        "payer_mappings",
        "payerMappings",
        "mapping_id",
        ignored=("name_key", "update_time"),
    )
    op.execute(
        "INSERT INTO ingest.audit_entries (customer_id, entry_id, create_time, actor,"
        " actor_role, request_id, action, resource, changed_fields, before, after)"
        " SELECT customer_id, entry_id, create_time, actor, '', '', 'DELETE', resource,"
        " ARRAY(SELECT jsonb_object_keys(details) ORDER BY 1), details, NULL"
        " FROM ingest.audit_log"
    )


def downgrade() -> None:
    drop_audit_table(SCHEMA, "payer_mappings")
    drop_audit_table(SCHEMA, "uploads")
    drop_audit_log(SCHEMA)

"""The outbox table's history, one function per step, called by the Alembic revisions of
every service that has an outbox (ingest, drift), so their tables stay the same.

A step that has run somewhere must keep meaning what it meant: a change to the table is a
new step here, called from a new revision in each service.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from runtime.schemas import squawk_ignore

TABLE = "outbox"
DUE_INDEX = "outbox_due_idx"


def create_outbox(schema: str) -> None:
    """Step 1: the event rows a producer commits with its data, and the relay's retry state."""
    op.create_table(
        TABLE,
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        # W3C traceparent/tracestate of the producing span, so the relay's call links to it.
        sa.Column("trace_context", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column(
            "create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("attempts", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_time",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("published_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "event_id", name="outbox_pkey"),
        schema=schema,
    )
    # customer_id leads this index too (see ARCHITECTURE.md); the relay's global scan for due
    # rows stays cheap because the index holds unpublished rows only.
    op.create_index(
        "outbox_pending_idx",
        TABLE,
        ["customer_id", "next_attempt_time"],
        schema=schema,
        postgresql_where=sa.text("published_time IS NULL"),
    )


def drop_outbox(schema: str) -> None:
    op.drop_table(TABLE, schema=schema)


def add_leases_and_parking(schema: str) -> None:
    """Step 2: a relay leases the rows it publishes (and holds no transaction meanwhile); an
    event that keeps failing is parked for an operator, who can replay it."""
    for column in (
        # The claim that holds the row: only its relay may record the row's outcome.
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        # host:pid of that relay, for operators.
        sa.Column("lease_owner", sa.Text(), nullable=True),
        # Until then no other relay takes the row; a relay that died lets go of it then.
        sa.Column("lease_expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_time", sa.DateTime(timezone=True), nullable=True),
        # Set when the relay gave up on the event; an operator's replay clears it.
        sa.Column("parked_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replay_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_replay_time", sa.DateTime(timezone=True), nullable=True),
    ):
        op.add_column(TABLE, column, schema=schema, if_not_exists=True)
    # Built without blocking the producers' inserts, so outside the transaction. A build that
    # failed part way leaves an invalid index behind: dropped and built again on the next run.
    with op.get_context().autocommit_block():
        squawk_ignore(
            "ban-drop-index",
            "the index is built again at once, with parked rows left out; the relay's scan "
            "reads it, and no guarantee rests on it (not unique)",
        )
        op.drop_index(DUE_INDEX, TABLE, schema=schema, if_exists=True, postgresql_concurrently=True)
        # Parked rows stay out of the relay's scan, however many pile up.
        op.create_index(
            DUE_INDEX,
            TABLE,
            ["customer_id", "next_attempt_time"],
            schema=schema,
            if_not_exists=True,
            postgresql_concurrently=True,
            postgresql_where=sa.text("published_time IS NULL AND parked_time IS NULL"),
        )


def remove_leases_and_parking(schema: str) -> None:
    with op.get_context().autocommit_block():
        op.drop_index(DUE_INDEX, TABLE, schema=schema, if_exists=True, postgresql_concurrently=True)
    for name in (
        "last_replay_time",
        "replay_count",
        "parked_time",
        "last_attempt_time",
        "lease_expire_time",
        "lease_owner",
        "lease_token",
    ):
        op.drop_column(TABLE, name, schema=schema, if_exists=True)

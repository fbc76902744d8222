"""Each service's audit log: who changed what of a customer's resources and settings, when,
and in which request. Read by admins (`ListAuditEntries`), purged by retention.

The entries are written by the database, in the transaction of each change
(runtime/audit_migrations.py). Who made it reaches the database as transaction-local
settings (`upstream.actor`, `upstream.actor_role`, `upstream.request_id`) that
`runtime.db.create_engine` sets when a transaction of a call begins; a service's own work
(no caller) is recorded as `service:<name>`.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from google.protobuf import json_format, struct_pb2
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime import auth, errors
from runtime.db import for_reads
from runtime.filtering import FilterField, parse_filter
from runtime.messages import timestamp_message
from runtime.pagination import after_position
from runtime.standard_methods import list_resources
from upstream.audit.v1 import audit_pb2

ACTIONS = ("CREATE", "UPDATE", "DELETE")
ENTRY_NAME = "customers/{customer}/auditLogs/{audit_log}/entries/{entry}"


@functools.cache
def entries_table(schema: str) -> sa.Table:
    """`<schema>.audit_entries` (made by runtime/audit_migrations.py)."""
    return sa.Table(
        "audit_entries",
        sa.MetaData(schema=schema),
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("entry_id", sa.Uuid, primary_key=True),
        sa.Column("create_time", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.Text),
        sa.Column("actor_role", sa.Text),
        sa.Column("request_id", sa.Text),
        sa.Column("action", sa.Text),
        sa.Column("resource", sa.Text),
        sa.Column("changed_fields", postgresql.ARRAY(sa.Text)),
        sa.Column("before", postgresql.JSONB),
        sa.Column("after", postgresql.JSONB),
    )


def _filters(table: sa.Table) -> dict[str, FilterField]:
    c = table.c
    return {
        "actor": FilterField(c.actor),
        "actor_role": FilterField(c.actor_role),
        "action": FilterField(c.action, "enum", {a: a for a in ACTIONS}),
        "resource": FilterField(c.resource),
        "request_id": FilterField(c.request_id),
        "create_time": FilterField(c.create_time, "timestamp"),
        "changed_fields": FilterField(c.changed_fields, "text_array"),
    }


class AuditLog:
    """The audit log in `schema` (the service's own), read through `engine`."""

    def __init__(self, engine: AsyncEngine, schema: str) -> None:
        self._engine = engine
        self._reads = for_reads(engine)
        self.schema = schema
        self._table = entries_table(schema)
        self._filters = _filters(self._table)

    async def list_entries(
        self, customer: str, filter_text: str, limit: int, after: Sequence[Any] | None
    ) -> list[Row]:
        """Up to `limit` entries matching `filter_text`, newest first, after `after`."""
        t = self._table
        query = (
            sa.select(t)
            .where(t.c.customer_id == customer, parse_filter(filter_text, self._filters))
            .order_by(t.c.create_time.desc(), t.c.entry_id.desc())
            .limit(limit)
        )
        if after is not None:
            position = (dt.datetime.fromisoformat(after[0]), uuid.UUID(after[1]))
            query = query.where(
                after_position((t.c.create_time, t.c.entry_id), position, descending=True)
            )
        async with self._reads.connect() as connection:
            return list((await connection.execute(query)).all())

    async def customers_with_entries_before(self, time: dt.datetime) -> list[str]:
        t = self._table
        async with self._reads.connect() as connection:
            found = await connection.execute(
                sa.select(t.c.customer_id).distinct().where(t.c.create_time < time)
            )
            return list(found.scalars())

    async def purge(self, customer: str, older_than: dt.datetime, batch: int) -> int:
        """Delete up to `batch` of the customer's entries older than `older_than` (through
        the one function that may), and record that it did; how many went."""
        async with self._engine.begin() as connection:
            purged = await connection.execute(
                sa.text(
                    f"SELECT {self.schema}.purge_audit_entries(:customer, :older_than, :batch)"
                ),
                {"customer": customer, "older_than": older_than, "batch": batch},
            )
            count = int(purged.scalar() or 0)
            if count:
                await record_purge(
                    connection,
                    self.schema,
                    customer,
                    f"customers/{customer}/auditLogs/{self.schema}",
                    {"entries_removed": count, "older_than": older_than.isoformat()},
                )
            return count

    async def serve_list(
        self, request: audit_pb2.ListAuditEntriesRequest
    ) -> audit_pb2.ListAuditEntriesResponse:
        """`ListAuditEntries` of this service's log: admins only."""
        identity = auth.require_identity()
        if not identity.can_write:
            raise errors.permission_denied("the audit log is for admins", role=identity.role.value)
        return await list_resources(
            request,
            audit_pb2.ListAuditEntriesResponse,
            "entries",
            self.list_entries,
            lambda last: [last.create_time.isoformat(), str(last.entry_id)],
            functools.partial(entry_message, self.schema),
            parent=f"customers/{{customer}}/auditLogs/{self.schema}",
        )


async def record_purge(
    connection: AsyncConnection, schema: str, customer: str, resource: str, what: dict[str, Any]
) -> None:
    """An audit entry for a purge, in the purge's own transaction: the service deleted
    `resource` (a collection), `what` saying which rows and why."""
    await connection.execute(
        sa.insert(entries_table(schema)).values(
            customer_id=customer,
            entry_id=sa.func.gen_random_uuid(),
            create_time=sa.func.now(),
            actor=f"service:{schema}",
            actor_role="service",
            request_id="",
            action="DELETE",
            resource=resource,
            changed_fields=[],
            before=what,
            after=None,
        )
    )


async def record_purges(
    connection: AsyncConnection,
    schema: str,
    customers: Sequence[str],
    collection: str,
    why: str,
) -> None:
    """An audit entry per customer for a purge across customers that removed one row of
    `collection` per item of `customers` (the deleted rows' customer ids)."""
    for customer, count in sorted(collections.Counter(customers).items()):
        await record_purge(
            connection,
            schema,
            customer,
            f"customers/{customer}/{collection}",
            {"removed": count, "why": why},
        )


def entry_message(schema: str, row: Row) -> audit_pb2.AuditEntry:
    return audit_pb2.AuditEntry(
        name=ENTRY_NAME.format(customer=row.customer_id, audit_log=schema, entry=row.entry_id),
        create_time=timestamp_message(row.create_time),
        actor=row.actor,
        actor_role=row.actor_role,
        request_id=row.request_id,
        action=audit_pb2.AuditEntry.Action.Value(row.action),
        resource=row.resource,
        changed_fields=list(row.changed_fields),
        before=_struct(row.before),
        after=_struct(row.after),
    )


def _struct(values: dict[str, Any] | None) -> struct_pb2.Struct | None:
    if values is None:
        return None
    return json_format.ParseDict(values, struct_pb2.Struct())


class AuditMethods:
    """`ListAuditEntries` of a service (mixed into its servicer, before the generated base);
    `serve_audit` gives it the service's log."""

    _audit_log: AuditLog

    def serve_audit(self, log: AuditLog) -> None:
        self._audit_log = log

    async def ListAuditEntries(  # noqa: N802 (the RPC's name)
        self, request: audit_pb2.ListAuditEntriesRequest, context: Any
    ) -> audit_pb2.ListAuditEntriesResponse:
        return await self._audit_log.serve_list(request)

"""Claims as Apache Arrow record batches, for `StreamClaims` with the `ARROW` encoding.

PostgreSQL's binary COPY is read straight into Arrow columns by the ADBC PostgreSQL driver
(C++, no row in Python): an export of a million claims costs ingest about what `psql \\copy`
costs PostgreSQL. The adjustments (a JSONB list on each claim) are turned into parallel
arrays by PostgreSQL and joined here into one list<struct> column.

The driver is synchronous: each call runs in a worker thread, so the service's event loop
keeps serving while a batch is read. Values reach the query as quoted literals (COPY takes
no bind parameters); each query reads up to CLAIMS_PER_QUERY claims in keyset order, so no
transaction stays open for the length of a slow reader's download.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import adbc_driver_postgresql
import adbc_driver_postgresql.dbapi
import pyarrow as pa
from psycopg import sql
from sqlalchemy import make_url

from runtime import schemas
from services.ingest.claim_writes import DECISION_DAY_SQL
from services.ingest.store import claims

CLAIMS_PER_QUERY = 200_000
# Batches from the driver are cut to about this much Arrow data per stream message, well
# under gRPC's 4 MiB message limit.
MESSAGE_BYTES = 1024 * 1024
BATCH_HINT_BYTES = 4 * MESSAGE_BYTES

ADJUSTMENT = pa.struct(
    [
        ("group_code", pa.string()),
        ("reason_code", pa.string()),
        ("amount_cents", pa.int64()),
        ("line_number", pa.int32()),
    ]
)
# The columns of the contract (ingest_service.proto, `StreamClaimsResponse`), in order.
SCHEMA = pa.schema(
    [
        ("claim_uid", pa.string()),
        ("claim_id", pa.string()),
        ("payer", pa.string()),
        ("payer_raw_name", pa.string()),
        ("payer_raw_id", pa.string()),
        ("status", pa.string()),
        ("denied", pa.bool_()),
        ("partially_denied", pa.bool_()),
        ("procedure_codes", pa.list_(pa.string())),
        ("code_group", pa.string()),
        ("service_date", pa.date32()),
        ("submitted_date", pa.date32()),
        ("decision_date", pa.date32()),
        ("billed_cents", pa.int64()),
        ("allowed_cents", pa.int64()),
        ("paid_cents", pa.int64()),
        ("patient_responsibility_cents", pa.int64()),
        ("adjustments", pa.list_(ADJUSTMENT)),
        ("payer_claim_control_number", pa.string()),
        ("upload_id", pa.string()),
        ("update_time", pa.timestamp("us", tz="UTC")),
    ]
)
_PLAIN_COLUMNS = [name for name in SCHEMA.names if name != "adjustments"]
_ADJUSTMENT_ARRAYS = {
    # struct field: (query column, the JSONB value as SQL)
    "group_code": ("adjustment_group_codes", "a->>'group'"),
    "reason_code": ("adjustment_reason_codes", "a->>'reason'"),
    # Left out where 0 (`copy_lines._adjustments_json`).
    "amount_cents": ("adjustment_cents", "coalesce((a->>'cents')::bigint, 0)"),
    "line_number": ("adjustment_lines", "coalesce((a->>'line')::int, 0)"),
}

_QUERY = sql.SQL(
    """
    SELECT {columns}, {adjustment_columns}
    FROM {table} AS c
    LEFT JOIN LATERAL (
        SELECT {adjustment_arrays}
        FROM jsonb_array_elements(c.adjustments) WITH ORDINALITY AS e(a, n)
    ) AS adjustments ON true
    WHERE {where}
    ORDER BY {day}, c.claim_uid
    LIMIT {limit}
    """
)


def query(
    customer: str,
    payer: str | None,
    start: dt.date,
    end: dt.date,
    after: tuple[dt.date, str] | None,
) -> str:
    """The SQL of one keyset query, values quoted as literals."""
    # One payer's claims are read by the (customer, payer, decision date) index, all of them
    # in the decision order's (`store.DECISION_DAY`).
    day = sql.SQL("c.decision_date" if payer is not None else DECISION_DAY_SQL)
    conditions = [
        sql.SQL("c.customer_id = {}").format(sql.Literal(customer)),
        sql.SQL("{} BETWEEN {} AND {}").format(day, sql.Literal(start), sql.Literal(end)),
        sql.SQL("c.decision_date IS NOT NULL"),
    ]
    if payer is not None:
        conditions.append(sql.SQL("c.payer = {}").format(sql.Literal(payer)))
    if after is not None:
        conditions.append(
            sql.SQL("({}, c.claim_uid) > ({}, {})").format(
                day, sql.Literal(after[0]), sql.Literal(after[1])
            )
        )
    statement = _QUERY.format(
        columns=sql.SQL(", ").join(sql.SQL("c.") + sql.Identifier(name) for name in _PLAIN_COLUMNS),
        adjustment_columns=sql.SQL(", ").join(
            sql.Identifier(column) for column, _ in _ADJUSTMENT_ARRAYS.values()
        ),
        table=sql.Identifier(*claims.fullname.split(".")),
        adjustment_arrays=sql.SQL(", ").join(
            sql.SQL("array_agg({} ORDER BY n) AS {}").format(sql.SQL(value), sql.Identifier(column))
            for column, value in _ADJUSTMENT_ARRAYS.values()
        ),
        where=sql.SQL(" AND ").join(conditions),
        day=day,
        limit=sql.Literal(CLAIMS_PER_QUERY),
    )
    return statement.as_string()


def contract_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch of the query's columns in the contract's schema: the parallel adjustment
    arrays joined into one list<struct>; a claim without adjustments has an empty list."""
    arrays = [batch.column(name) for name, _ in _ADJUSTMENT_ARRAYS.values()]
    # array_agg over no adjustments is NULL, and a null list spans no values: taken with the
    # offsets alone it is an empty list, so every claim has a list.
    offsets = arrays[0].offsets
    values = pa.StructArray.from_arrays(
        [array.flatten() for array in arrays], fields=list(ADJUSTMENT)
    )
    adjustments = pa.ListArray.from_arrays(offsets, values, type=pa.list_(ADJUSTMENT))
    columns = [
        adjustments if name == "adjustments" else batch.column(name).cast(field.type)
        for name, field in zip(SCHEMA.names, SCHEMA, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def message_slices(batch: pa.RecordBatch) -> Iterator[bytes]:
    """`batch` as Arrow IPC streams (schema and one batch each) of about MESSAGE_BYTES."""
    if not batch.num_rows:
        return
    rows = max(1, batch.num_rows * MESSAGE_BYTES // max(batch.nbytes, 1))
    for first in range(0, batch.num_rows, rows):
        sink = pa.BufferOutputStream()
        piece = batch.slice(first, rows)
        with pa.ipc.new_stream(sink, piece.schema) as writer:
            writer.write_batch(piece)
        yield sink.getvalue().to_pybytes()


def _next_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    # StopIteration cannot cross into the awaiting coroutine: the end is None.
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


class ArrowClaims:
    """Opens one ADBC connection per stream, as the service's own role."""

    def __init__(self, database_url: str, application_name: str) -> None:
        # Arrow's own allocator (mimalloc) keeps freed pages for reuse: ~90 MB more resident
        # memory after a large export for no gain in speed. The C library's gives them back.
        pa.set_memory_pool(pa.system_memory_pool())
        url = make_url(schemas.libpq_url(database_url))
        self._uri = url.update_query_dict({"application_name": application_name}).render_as_string(
            hide_password=False
        )

    def _connect(self) -> Any:
        return adbc_driver_postgresql.dbapi.connect(self._uri, autocommit=True)

    async def stream(
        self, customer: str, payer_names: Sequence[str], start: dt.date, end: dt.date
    ) -> AsyncIterator[bytes]:
        """The claims decided from `start` to `end` by decision date then claim uid (payer
        by payer, names ascending, when `payer_names` are given), as IPC messages."""
        payer_order: list[str | None] = [*sorted(set(payer_names))] if payer_names else [None]
        connection = await asyncio.to_thread(self._connect)
        try:
            for payer in payer_order:
                after: tuple[dt.date, str] | None = None
                while True:
                    read = 0
                    batches = self._batches(connection, customer, payer, start, end, after)
                    async for batch in batches:
                        read += batch.num_rows
                        after = (
                            batch.column("decision_date")[-1].as_py(),
                            batch.column("claim_uid")[-1].as_py(),
                        )
                        for message in message_slices(contract_batch(batch)):
                            yield message
                    if read < CLAIMS_PER_QUERY:
                        break
        finally:
            await asyncio.to_thread(connection.close)

    async def _batches(
        self,
        connection: Any,
        customer: str,
        payer: str | None,
        start: dt.date,
        end: dt.date,
        after: tuple[dt.date, str] | None,
    ) -> AsyncIterator[pa.RecordBatch]:
        cursor = connection.cursor()
        cursor.adbc_statement.set_options(
            **{
                adbc_driver_postgresql.StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(
                    BATCH_HINT_BYTES
                )
            }
        )
        text = query(customer, payer, start, end, after)
        finished = False
        try:
            await asyncio.to_thread(cursor.execute, text)
            reader = cursor.fetch_record_batch()
            while (batch := await asyncio.to_thread(_next_batch, reader)) is not None:
                yield batch
            finished = True
        finally:
            if not finished:
                # A stream stopped midway (its reader gone) stops PostgreSQL's query too.
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(cursor.adbc_cancel)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(cursor.close)

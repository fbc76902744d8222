"""Ingest's tables (schema `ingest`) and the queries the service runs on them: reads and
small writes in SQLAlchemy Core; what writes claims is in `claim_writes`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.audit import record_purge
from runtime.db import BlockingReads, for_reads, kept_row, row_by_key
from runtime.filtering import FilterField, parse_filter
from runtime.notified_cache import NotifiedCache
from runtime.ordering import Order, SortKey, date_key, fetch_page, kept_page
from runtime.pagination import after_position
from services.ingest.claim_writes import (
    CHANGES_CHANNEL,
    UploadWriter,
    data_changed,
    delete_upload_claims,
    lock_customer,
    purge_claims,
    remap_payers,
)
from services.ingest.months import MONTHS_PER_BATCH, Series, SeriesOfMonths

metadata = sa.MetaData(schema="ingest")

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("upload_id", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("format", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text),
    sa.Column("request_id", sa.Text),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_accepted", sa.BigInteger, nullable=False),
    sa.Column("claims_accepted", sa.BigInteger, nullable=False),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False),
    sa.Column("rows_updated", sa.BigInteger, nullable=False),
    sa.Column("first_decision_date", sa.Date),
    sa.Column("last_decision_date", sa.Date),
    sa.Column("payers", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("warnings", postgresql.JSONB, nullable=False),
    sa.Column("error", postgresql.JSONB),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finish_time", sa.DateTime(timezone=True)),
    # The upload's `column_map`; NULL for one without (or stored before 0014).
    sa.Column("column_map", postgresql.JSONB),
)
# An upload being read writes its progress at least this often (see intake); one not heard
# from for PROGRESS_STALE is taken as dead, and its row is deleted after PROGRESS_KEPT.
PROGRESS_EVERY_SECONDS = 1.0
PROGRESS_STALE = dt.timedelta(seconds=60)
PROGRESS_KEPT = dt.timedelta(days=1)
upload_progress = sa.Table(
    "upload_progress",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("upload_id", sa.Text, primary_key=True),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)
# Moved on by every transaction that changes a customer's claims (`lock_customer`).
data_versions = sa.Table(
    "data_versions",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)
upload_rejections = sa.Table(
    "upload_rejections",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("upload_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("line_number", sa.BigInteger),
    sa.Column("segment_number", sa.BigInteger),
    sa.Column("column_name", sa.Text),
    sa.Column("raw_value", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("code", sa.Text),
)
claims = sa.Table(
    "claims",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("claim_uid", sa.Text, primary_key=True),
    sa.Column("claim_id", sa.Text),
    sa.Column("payer_key", sa.Text),
    sa.Column("payer_uid", sa.Text),
    sa.Column("payer", sa.Text),
    sa.Column("payer_raw_name", sa.Text),
    sa.Column("payer_raw_id", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("denied", sa.Boolean),
    sa.Column("partially_denied", sa.Boolean),
    sa.Column("procedure_codes", postgresql.ARRAY(sa.Text)),
    sa.Column("code_group", sa.Text),
    sa.Column("service_date", sa.Date),
    sa.Column("submitted_date", sa.Date),
    sa.Column("decision_date", sa.Date),
    sa.Column("decision_days", sa.BigInteger),
    sa.Column("billed_cents", sa.BigInteger),
    sa.Column("allowed_cents", sa.BigInteger),
    sa.Column("paid_cents", sa.BigInteger),
    sa.Column("patient_responsibility_cents", sa.BigInteger),
    sa.Column("adjustments", postgresql.JSONB),
    sa.Column("denial_codes", postgresql.ARRAY(sa.Text)),
    sa.Column("payer_claim_control_number", sa.Text),
    sa.Column("upload_id", sa.Text),
    sa.Column("source_line", sa.BigInteger),
    sa.Column("update_time", sa.DateTime(timezone=True)),
)
# A claim's place in the decision order: its decision date, a pending claim's the lowest.
# The listing and every read of a range of decision dates go by it, so that one index
# (`claims_decision_order_idx`) serves them all; beside `decision_date IS NOT NULL` a range
# of it is a range of decision dates.
DECISION_DAY = date_key(claims.c.decision_date).expression
payers = sa.Table(
    "payers",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("payer_uid", sa.Text, primary_key=True),
    sa.Column("name_key", sa.Text),
    sa.Column("raw_name", sa.Text),
    sa.Column("raw_id", sa.Text),
    sa.Column("canonical_payer", sa.Text),
    sa.Column("mapping_id", sa.Text),
    sa.Column("directory_payer", sa.Text),
    sa.Column("claim_count", sa.BigInteger),
    sa.Column("first_seen_time", sa.DateTime(timezone=True)),
    sa.Column("last_seen_time", sa.DateTime(timezone=True)),
)
payer_mappings = sa.Table(
    "payer_mappings",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("mapping_id", sa.Text, primary_key=True),
    sa.Column("name_key", sa.Text),
    sa.Column("raw_payer_name", sa.Text),
    sa.Column("raw_payer_id", sa.Text),
    sa.Column("canonical_payer", sa.Text),
    sa.Column("create_time", sa.DateTime(timezone=True)),
    sa.Column("update_time", sa.DateTime(timezone=True)),
)
daily_stats = sa.Table(
    "daily_stats",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("payer", sa.Text, primary_key=True),
    sa.Column("code_group", sa.Text, primary_key=True),
    sa.Column("decision_date", sa.Date, primary_key=True),
    sa.Column("decided_claims", sa.BigInteger),
    sa.Column("denied_claims", sa.BigInteger),
    sa.Column("partially_denied_claims", sa.BigInteger),
    sa.Column("decision_days", postgresql.JSONB),
    sa.Column("billed_cents", sa.BigInteger),
    sa.Column("allowed_cents", sa.BigInteger),
    sa.Column("paid_cents", sa.BigInteger),
    sa.Column("denied_billed_cents", sa.BigInteger),
    sa.Column("carc_counts", postgresql.JSONB),
    sa.Column("patient_responsibility_cents", sa.BigInteger),
)

# Claims one query of `stream_claims` reads: large enough that a query's fixed cost is small
# beside its rows, small enough that each query is short and memory stays flat.
CLAIMS_PER_QUERY = 5000
UPLOAD_STATES = ("PROCESSING", "SUCCEEDED", "FAILED")
CLAIM_STATUSES = ("PAID", "PARTIAL", "DENIED", "PENDING", "REVERSED")
UPLOAD_FILTERS = {
    "state": FilterField(uploads.c.state, "enum", {s: s for s in UPLOAD_STATES}),
    "format": FilterField(uploads.c.format, "enum", {"CSV": "CSV", "X12_835": "X12_835"}),
    "create_time": FilterField(uploads.c.create_time, "timestamp"),
    "file_name": FilterField(uploads.c.file_name),
    "payers": FilterField(uploads.c.payers, "text_array"),
}
REJECTION_FILTERS = {
    "code": FilterField(upload_rejections.c.code),
    "column": FilterField(upload_rejections.c.column_name),
}
CLAIM_FILTERS = {
    "payer": FilterField(claims.c.payer),
    "status": FilterField(claims.c.status, "enum", {s: s for s in CLAIM_STATUSES}),
    "denied": FilterField(claims.c.denied, "bool"),
    "code_group": FilterField(claims.c.code_group),
    "procedure_codes": FilterField(claims.c.procedure_codes, "text_array"),
    "decision_date": FilterField(claims.c.decision_date, "date", indexed_as=DECISION_DAY),
    "claim_id": FilterField(claims.c.claim_id),
    "upload_id": FilterField(claims.c.upload_id),
}
PAYER_FILTERS = {
    "mapped": FilterField(
        sa.or_(payers.c.mapping_id.is_not(None), payers.c.directory_payer.is_not(None)), "bool"
    ),
    "canonical_payer": FilterField(payers.c.canonical_payer),
    "raw_payer_name": FilterField(payers.c.raw_name),
    "raw_payer_id": FilterField(payers.c.raw_id),
    "last_seen_time": FilterField(payers.c.last_seen_time, "timestamp"),
}


def _data_state() -> sa.Select[Any]:
    customer = sa.bindparam("customer", type_=sa.Text)
    version = (
        sa.select(data_versions.c.version, data_versions.c.update_time)
        .where(data_versions.c.customer_id == customer)
        .subquery()
    )
    latest = (
        sa.select(sa.func.max(uploads.c.last_decision_date))
        .where(uploads.c.customer_id == customer, uploads.c.state == "SUCCEEDED")
        .scalar_subquery()
    )
    return sa.select(
        sa.func.coalesce(version.c.version, 0).label("version"),
        version.c.update_time,
        latest.label("latest_decision_date"),
    ).select_from(sa.select(sa.literal(1).label("one")).subquery().outerjoin(version, sa.true()))


# Built once: read on every payer summaries page (drift asks before it reads them), and a
# statement built per call costs more than the query.
_DATA_STATE = _data_state()
_UPLOAD_BY_ID = row_by_key(uploads, "customer_id", "upload_id")


class IngestStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        narrow_month_entries: bool = True,
        compact_adjustments: bool = True,
        series_reads: BlockingReads | None = None,
    ) -> None:
        """`narrow_month_entries`: whether the months it packs keep narrow entries
        (services/ingest/daily_statistics.py; off while a release that reads only triplets
        may run); `compact_adjustments`: whether claims' adjustments are stored without their
        zero fields (services/ingest/copy_lines.py; off while a release that reads only all
        four may run). `series_reads`: the connections daily statistic series are read on (a
        store without them reads none)."""
        self._engine = engine
        self._series_reads = series_reads
        self._reads = for_reads(engine)
        self._narrow = narrow_month_entries
        self._compact = compact_adjustments
        # What reads of stored uploads and of the data state keep while a `ChangeListener`
        # follows their channel (services.ingest.server); without one, every read goes to
        # the database. Every transaction that changes them takes `lock_customer`, which
        # notifies; the writer forgets at once after its commit (`_changed`).
        self.upload_reads: NotifiedCache[Any] = NotifiedCache("ingest_uploads", CHANGES_CHANNEL)
        self.data_state_reads: NotifiedCache[Row] = NotifiedCache(
            "ingest_data_state", CHANGES_CHANNEL
        )

    def _changed(self, customer: str) -> None:
        self.upload_reads.forget(customer)
        self.data_state_reads.forget(customer)

    # --- uploads ---------------------------------------------------------------------------

    @asynccontextmanager
    async def upload_transaction(
        self, customer: str, upload_id: str, *, merge_every: int
    ) -> AsyncIterator[UploadWriter]:
        """One transaction for a whole upload: committed when the block ends normally,
        rolled back (with its staged rows) on any error or cancellation."""
        async with self._engine.connect() as connection, connection.begin():
            writer = await UploadWriter.open(
                connection,
                customer=customer,
                upload_id=upload_id,
                merge_every=merge_every,
                narrow=self._narrow,
                compact=self._compact,
            )
            try:
                yield writer
            except BaseException as error:
                # An open COPY must be aborted before the transaction can roll back.
                with contextlib.suppress(Exception):
                    await writer.end_copy(error)
                raise
        self._changed(customer)

    async def get_upload(self, customer: str, upload_id: str) -> Row | None:
        """The stored upload, kept between reads (`upload_reads`)."""
        row: Row | None = await kept_row(
            self.upload_reads, self._reads, _UPLOAD_BY_ID, customer, "upload_id", upload_id
        )
        return row

    async def data_state(self, customer: str) -> Row:
        """The customer's data `version` (0 before any change) and its `update_time`, and
        the `latest_decision_date` of its successful uploads, in one statement; kept between
        reads (`data_state_reads`)."""

        async def read() -> Row:
            async with self._reads.connect() as connection:
                return (await connection.execute(_DATA_STATE, {"customer": customer})).one()

        return await self.data_state_reads.get(customer, None, read)

    # --- uploads being read ---------------------------------------------------------------
    # Each in its own short transaction, beside the upload's long one: what a client
    # following the upload reads while nothing of it is committed yet.

    async def start_progress(
        self, customer: str, upload_id: str, file_name: str, creator: str
    ) -> bool:
        """Record that the upload is being read; False when the id is taken, by a stored
        upload or one being read."""
        async with self._engine.begin() as connection:
            # Progress left by a process that died mid-upload is dropped after a while.
            await connection.execute(
                sa.delete(upload_progress).where(
                    upload_progress.c.update_time < sa.func.now() - PROGRESS_KEPT
                )
            )
            taken = await connection.execute(
                sa.select(uploads.c.upload_id).where(
                    uploads.c.customer_id == customer, uploads.c.upload_id == upload_id
                )
            )
            if taken.first() is not None:
                return False
            inserted = await connection.execute(
                postgresql.insert(upload_progress)
                .values(
                    customer_id=customer,
                    upload_id=upload_id,
                    file_name=file_name,
                    creator=creator,
                    size_bytes=0,
                    rows_read=0,
                    create_time=sa.func.now(),
                    update_time=sa.func.now(),
                )
                .on_conflict_do_nothing()
                .returning(upload_progress.c.upload_id)
            )
            return inserted.first() is not None

    async def record_progress(
        self, customer: str, upload_id: str, size_bytes: int, rows_read: int
    ) -> None:
        async with self._reads.connect() as connection:
            await connection.execute(
                sa.update(upload_progress)
                .where(
                    upload_progress.c.customer_id == customer,
                    upload_progress.c.upload_id == upload_id,
                )
                .values(size_bytes=size_bytes, rows_read=rows_read, update_time=sa.func.now())
            )

    async def end_progress(self, customer: str, upload_id: str) -> None:
        async with self._reads.connect() as connection:
            await connection.execute(
                sa.delete(upload_progress).where(
                    upload_progress.c.customer_id == customer,
                    upload_progress.c.upload_id == upload_id,
                )
            )

    async def get_progress(self, customer: str, upload_id: str) -> Row | None:
        """The upload being read, if it has been heard from within PROGRESS_STALE."""
        async with self._reads.connect() as connection:
            found = await connection.execute(
                sa.select(upload_progress).where(
                    upload_progress.c.customer_id == customer,
                    upload_progress.c.upload_id == upload_id,
                    upload_progress.c.update_time > sa.func.now() - PROGRESS_STALE,
                )
            )
            return found.first()

    async def find_upload_by_request(self, customer: str, request_id: str) -> Row | None:
        async with self._reads.connect() as connection:
            result = await connection.execute(
                sa.select(uploads).where(
                    uploads.c.customer_id == customer, uploads.c.request_id == request_id
                )
            )
            return result.first()

    async def list_uploads(
        self,
        customer: str,
        filter_text: str,
        order: Order[SortKey],
        limit: int,
        after: Sequence[Any] | None,
    ) -> list[Row]:
        """One page of the customer's stored uploads, kept between reads (`upload_reads`)."""
        return await kept_page(
            self.upload_reads,
            self._reads,
            uploads,
            UPLOAD_FILTERS,
            uploads.c.upload_id,
            customer,
            filter_text,
            order,
            limit,
            after,
        )

    async def delete_upload(self, customer: str, upload_id: str) -> bool:
        """Remove an upload, the claims it last set and its rejections, and take those claims
        out of the statistics and payer counts (the audit log records who did it)."""
        async with self._engine.connect() as connection, connection.begin():
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            async with raw.cursor() as cursor:
                await lock_customer(cursor, customer)
                await cursor.execute(
                    "SELECT 1 FROM ingest.uploads WHERE customer_id = %s AND upload_id = %s",
                    (customer, upload_id),
                )
                if await cursor.fetchone() is None:
                    return False
                removed = await delete_upload_claims(
                    cursor, customer, upload_id, narrow=self._narrow
                )
                await cursor.execute(
                    "DELETE FROM ingest.uploads WHERE customer_id = %s AND upload_id = %s",
                    (customer, upload_id),
                )
                if removed:
                    await data_changed(cursor, customer, f"upload-deleted:{upload_id}")
        self._changed(customer)
        return True

    async def customers_with_claims_before(self, before: dt.date) -> list[str]:
        """Customers whose uploads hold claims decided (or, undecided, made) before
        `before`, read from the small uploads table."""
        u = uploads
        async with self._reads.connect() as connection:
            found = await connection.execute(
                sa.select(u.c.customer_id)
                .group_by(u.c.customer_id)
                .having(
                    sa.func.min(
                        sa.func.coalesce(u.c.first_decision_date, sa.cast(u.c.create_time, sa.Date))
                    )
                    < before
                )
            )
            return list(found.scalars())

    async def purge_claims(self, customer: str, before: dt.date, limit: int, earlier: int) -> int:
        """One batch of retention: up to `limit` claims decided before `before` removed, the
        statistics kept whole, and the purge recorded in the audit log; how many went. The
        pass's last batch for the customer (fewer than `limit`) asks for a detection run if
        the pass removed any (`earlier` of them before this batch): the findings of claims no
        longer kept must not stand, and one run follows however many batches there were."""
        async with self._engine.connect() as connection, connection.begin():
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            async with raw.cursor() as cursor:
                await lock_customer(cursor, customer)
                removed = await purge_claims(cursor, customer, before, limit, narrow=self._narrow)
                if removed < limit and removed + earlier:
                    await data_changed(cursor, customer, f"retention:{before.isoformat()}")
            if removed:
                await record_purge(
                    connection,
                    "ingest",
                    customer,
                    f"customers/{customer}/claims",
                    {"claims_removed": removed, "decided_before": before.isoformat()},
                )
        self._changed(customer)
        return removed

    async def list_rejections(
        self,
        customer: str,
        upload_id: str,
        filter_text: str,
        limit: int,
        after: Sequence[Any] | None,
    ) -> list[Row]:
        query = (
            sa.select(upload_rejections)
            .where(
                upload_rejections.c.customer_id == customer,
                upload_rejections.c.upload_id == upload_id,
                parse_filter(filter_text, REJECTION_FILTERS),
            )
            .order_by(upload_rejections.c.seq)
            .limit(limit)
        )
        if after is not None:
            query = query.where(upload_rejections.c.seq > int(after[0]))
        async with self._reads.connect() as connection:
            return list((await connection.execute(query)).all())

    # --- claims -----------------------------------------------------------------------------

    async def get_claim(self, customer: str, claim_uid: str) -> Row | None:
        async with self._reads.connect() as connection:
            result = await connection.execute(
                sa.select(claims).where(
                    claims.c.customer_id == customer, claims.c.claim_uid == claim_uid
                )
            )
            return result.first()

    async def list_claims(
        self,
        customer: str,
        filter_text: str,
        order: Order[SortKey],
        limit: int,
        after: Sequence[Any] | None,
    ) -> list[Row]:
        query = sa.select(claims).where(
            claims.c.customer_id == customer, parse_filter(filter_text, CLAIM_FILTERS)
        )
        return await fetch_page(self._reads, query, order, claims.c.claim_uid, limit, after)

    async def stream_claims(
        self, customer: str, payer_names: Sequence[str], start: dt.date, end: dt.date
    ) -> AsyncIterator[list[Row]]:
        """The claims decided from `start` to `end`, by decision date then claim uid (payer by
        payer, names ascending, when `payer_names` are given), in batches of at most
        CLAIMS_PER_QUERY. Each batch is its own short keyset query; the next one runs in
        PostgreSQL while the caller works on this one."""
        payer_order: list[str | None] = [*sorted(set(payer_names))] if payer_names else [None]
        async with self._engine.connect() as connection:
            for payer in payer_order:
                # One payer's claims are read by the (customer, payer, decision date) index,
                # all of them in the decision order's.
                day = DECISION_DAY if payer is None else claims.c.decision_date
                query = (
                    sa.select(claims)
                    .where(
                        claims.c.customer_id == customer,
                        day.between(start, end),
                        claims.c.decision_date.is_not(None),
                    )
                    .order_by(day, claims.c.claim_uid)
                    .limit(CLAIMS_PER_QUERY)
                )
                if payer is not None:
                    query = query.where(claims.c.payer == payer)

                async def batch(after: Row | None, query: Any = query, day: Any = day) -> list[Row]:
                    if after is not None:
                        query = query.where(
                            after_position(
                                (day, claims.c.claim_uid),
                                (after.decision_date, after.claim_uid),
                                descending=False,
                            )
                        )
                    return list((await connection.execute(query)).all())

                rows = await batch(None)
                while rows:
                    following = (
                        asyncio.ensure_future(batch(rows[-1]))
                        if len(rows) == CLAIMS_PER_QUERY
                        else None
                    )
                    try:
                        yield rows
                        rows = await following if following is not None else []
                    finally:
                        if following is not None and not following.done():
                            following.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await following

    # --- payers and mappings ----------------------------------------------------------------

    async def list_payers(
        self,
        customer: str,
        filter_text: str,
        order: Order[SortKey],
        limit: int,
        after: Sequence[Any] | None,
    ) -> list[Row]:
        query = sa.select(payers).where(
            payers.c.customer_id == customer, parse_filter(filter_text, PAYER_FILTERS)
        )
        return await fetch_page(self._reads, query, order, payers.c.payer_uid, limit, after)

    async def get_mapping(self, customer: str, mapping_id: str) -> Row | None:
        async with self._reads.connect() as connection:
            result = await connection.execute(
                sa.select(payer_mappings).where(
                    payer_mappings.c.customer_id == customer,
                    payer_mappings.c.mapping_id == mapping_id,
                )
            )
            return result.first()

    async def list_mappings(
        self, customer: str, filter_text: str, limit: int, after: Sequence[Any] | None
    ) -> list[Row]:
        query = (
            sa.select(payer_mappings)
            .where(
                payer_mappings.c.customer_id == customer,
                parse_filter(filter_text, MAPPING_FILTERS),
            )
            .order_by(payer_mappings.c.mapping_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(payer_mappings.c.mapping_id > after[0])
        async with self._reads.connect() as connection:
            return list((await connection.execute(query)).all())

    async def change_mapping(
        self,
        customer: str,
        change: MappingChange,
    ) -> Row | None:
        """Create, update or delete a mapping, then re-point the customer's payers, claims
        and statistics to what the mappings now say, in one transaction. Returns the
        mapping's row (None after a delete); raises MappingConflictError on a duplicate or a
        stale etag, LookupError when it does not exist."""
        async with self._engine.connect() as connection, connection.begin():
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            async with raw.cursor() as cursor:
                # Uploads run under the same lock, so they never see half a remap.
                await lock_customer(cursor, customer)
                row = await change.apply(connection, customer)
                if await remap_payers(cursor, customer, narrow=self._narrow):
                    await data_changed(cursor, customer, f"payer-mapping:{change.mapping_id}")
        self._changed(customer)
        return row

    # --- daily statistics -------------------------------------------------------------------

    async def stream_daily_stats(
        self, customer: str, payer_names: Sequence[str], start: dt.date, end: dt.date
    ) -> AsyncIterator[Row]:
        query = (
            sa.select(daily_stats)
            .where(
                daily_stats.c.customer_id == customer,
                daily_stats.c.decision_date.between(start, end),
            )
            .order_by(daily_stats.c.payer, daily_stats.c.code_group, daily_stats.c.decision_date)
        )
        if payer_names:
            query = query.where(daily_stats.c.payer.in_(list(payer_names)))
        async with self._engine.connect() as connection:
            result = await connection.stream(query.execution_options(yield_per=2000))
            async for row in result:
                yield row

    async def stream_daily_stat_series(
        self,
        customer: str,
        payer_names: Sequence[str],
        start: dt.date,
        end: dt.date,
        spans: np.ndarray | None = None,
    ) -> AsyncIterator[Series]:
        """Each payer × code group with days in the range or claims pending, as arrays (see
        `DailyStatSeries`), joined from its packed months, entries summed over `spans` if
        given (services/ingest/months.py)."""
        if self._series_reads is None:
            raise RuntimeError("this IngestStore was made without series_reads")
        series = SeriesOfMonths(start, end, spans)
        parameters = series_parameters(customer, payer_names, start, end)
        async for rows in self._series_reads.batches(SERIES_QUERY, parameters, MONTHS_PER_BATCH):
            for one in series.add(rows):
                yield one
        for one in series.finish():
            yield one


def series_parameters(
    customer: str, payer_names: Sequence[str], start: dt.date, end: dt.date
) -> dict[str, Any]:
    """The parameters of `SERIES_QUERY`: every payer when `payer_names` is empty."""
    return {
        "customer": customer,
        "start": start,
        "end": end,
        "every_payer": not payer_names,
        "payers": list(payer_names),
    }


# The packed months of every payer × code group that has days in the range or claims pending,
# in order, and after a cell's months (a NULL month sorts last) a row of its pending claims,
# their start days and counts packed as the months are: one ordering, the database's, for both.
# The cells come in the primary key's order, so that only each cell's few rows are sorted
# (by month) and the first rows leave PostgreSQL at once: sorting all the months' wide rows
# (toasted arrays) took about a tenth of a second at 20,000 months before anything was sent.
SERIES_QUERY = """
SELECT c.payer, c.code_group, m.days, m.amounts, m.patient_responsibility, m.histogram,
       m.carc_codes, m.carc, m.narrow_histogram, m.narrow_carc, m.pending_started,
       m.pending_claims
FROM (
    SELECT payer, code_group
    FROM ingest.daily_stat_months
    WHERE customer_id = %(customer)s
      AND month BETWEEN date_trunc('month', %(start)s::date)::date AND %(end)s
      AND (%(every_payer)s OR payer = ANY(%(payers)s))
    UNION
    SELECT payer, code_group
    FROM ingest.pending_stats
    WHERE customer_id = %(customer)s AND (%(every_payer)s OR payer = ANY(%(payers)s))
    ORDER BY payer, code_group
) c
CROSS JOIN LATERAL (
    SELECT month, days, amounts, patient_responsibility, histogram, carc_codes, carc,
           narrow_histogram, narrow_carc, NULL::bytea AS pending_started,
           NULL::bytea AS pending_claims
    FROM ingest.daily_stat_months
    WHERE customer_id = %(customer)s AND payer = c.payer AND code_group = c.code_group
      AND month BETWEEN date_trunc('month', %(start)s::date)::date AND %(end)s
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           string_agg(int4send(start_date - DATE '1970-01-01'), ''::bytea ORDER BY start_date),
           string_agg(int8send(pending_claims), ''::bytea ORDER BY start_date)
    FROM ingest.pending_stats
    WHERE customer_id = %(customer)s AND payer = c.payer AND code_group = c.code_group
    HAVING count(*) > 0
) m
ORDER BY c.payer, c.code_group, m.month
"""


MAPPING_FILTERS = {
    "canonical_payer": FilterField(payer_mappings.c.canonical_payer),
    "raw_payer_name": FilterField(payer_mappings.c.raw_payer_name),
    "raw_payer_id": FilterField(payer_mappings.c.raw_payer_id),
}


class MappingConflictError(Exception):
    """The mapping exists already, or changed since the caller read it."""


class MappingChange:
    """One change to the payer mappings, applied inside `change_mapping`'s transaction."""

    def __init__(
        self,
        mapping_id: str,
        *,
        create: dict[str, str] | None = None,
        canonical_payer: str | None = None,
        delete: bool = False,
        etag: str = "",
    ) -> None:
        self.mapping_id = mapping_id
        self.create = create
        self.canonical_payer = canonical_payer
        self.delete = delete
        self.etag = etag

    async def apply(self, connection: Any, customer: str) -> Row | None:
        key = (payer_mappings.c.customer_id == customer) & (
            payer_mappings.c.mapping_id == self.mapping_id
        )
        if self.create is not None:
            inserted = await connection.execute(
                postgresql.insert(payer_mappings)
                .values(customer_id=customer, mapping_id=self.mapping_id, **self.create)
                .on_conflict_do_nothing()
                .returning(payer_mappings)
            )
            row = inserted.first()
            if row is None:
                raise MappingConflictError("a mapping for this raw payer name and id exists")
            return row
        current = (
            await connection.execute(sa.select(payer_mappings).where(key).with_for_update())
        ).first()
        if current is None:
            raise LookupError(self.mapping_id)
        if self.etag and self.etag != mapping_etag(current):
            raise MappingConflictError("the mapping changed since it was read")
        if self.delete:
            await connection.execute(sa.delete(payer_mappings).where(key))
            return None
        updated = await connection.execute(
            sa.update(payer_mappings)
            .where(key)
            .values(canonical_payer=self.canonical_payer, update_time=sa.func.now())
            .returning(payer_mappings)
        )
        return updated.one()


def mapping_etag(row: Row) -> str:
    return format(int(row.update_time.timestamp() * 1_000_000), "x")

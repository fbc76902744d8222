"""Reports' own rows: the reports asked for, their build leases, and their content in chunks.

A report's content is written as numbered chunks of one build (`build`); the report names
the build that succeeded (`built_by`). A build that dies, or loses its lease and runs on,
writes only chunks of its own number, which are never read and are deleted when another
build finishes: a download never sees half a file or two files mixed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime.audit import record_purges
from runtime.db import for_reads
from runtime.filtering import FilterField, parse_filter
from runtime.pagination import after_position
from services.reports.alert_store import queue_report_ready_email
from services.reports.store import metadata, queue_deliveries

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("report_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("format", sa.Text, nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("payers", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("parameters", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("error_code", sa.BigInteger),
    sa.Column("error_message", sa.Text),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("content_type", sa.Text),
    sa.Column("sha256", sa.Text),
    sa.Column("file_name", sa.Text),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text),
    sa.Column("schedule_id", sa.Text),
    sa.Column("scheduled_time", sa.DateTime(timezone=True)),
    sa.Column("build_count", sa.BigInteger, nullable=False),
    sa.Column("built_by", sa.BigInteger),
    sa.Column("lease_token", sa.Uuid),
    sa.Column("lease_expire_time", sa.DateTime(timezone=True)),
    sa.Column("next_build_time", sa.DateTime(timezone=True)),
    sa.Column("trace_context", postgresql.JSONB, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("start_time", sa.DateTime(timezone=True)),
    sa.Column("finish_time", sa.DateTime(timezone=True)),
    sa.Column("expire_time", sa.DateTime(timezone=True)),
)

report_chunks = sa.Table(
    "report_chunks",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("report_id", sa.Text, primary_key=True),
    sa.Column("build", sa.BigInteger, primary_key=True),
    sa.Column("chunk_number", sa.BigInteger, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

report_schedules = sa.Table(
    "report_schedules",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("schedule_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("cron", sa.Text, nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    sa.Column("report_template", sa.LargeBinary, nullable=False),
    sa.Column("email_recipients", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("next_run_time", sa.DateTime(timezone=True)),
    sa.Column("last_run_time", sa.DateTime(timezone=True)),
    sa.Column("last_report_id", sa.Text),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)

# Report states, as the Report.State names of the contract.
PENDING, RUNNING, SUCCEEDED, FAILED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED"
KINDS = ("DRIFT_SUMMARY", "PAYER_SCORECARD", "CLAIMS_EXPORT", "EVENTS_EXPORT")
FORMATS = ("PDF", "CSV", "JSON")
REPORT_READY = "REPORT_READY"

REPORT_FILTERS = {
    "kind": FilterField(reports.c.kind, "enum", {k: k for k in KINDS}),
    "format": FilterField(reports.c.format, "enum", {f: f for f in FORMATS}),
    "state": FilterField(
        reports.c.state, "enum", {s: s for s in (PENDING, RUNNING, SUCCEEDED, FAILED)}
    ),
    "schedule": FilterField(reports.c.schedule_id),
    "create_time": FilterField(reports.c.create_time, "timestamp"),
}


def _seconds(value: float) -> Any:
    return sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.literal(value, sa.Float))


def _key(customer: str, report_id: str) -> tuple[Any, Any]:
    return (reports.c.customer_id == customer, reports.c.report_id == report_id)


class ReportStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = for_reads(engine)

    async def create_report(
        self,
        customer: str,
        report_id: str,
        *,
        kind: str,
        format: str,
        start_date: dt.date,
        end_date: dt.date,
        payers: Sequence[str],
        parameters: bytes,
        creator: str,
        request_id: str | None,
        trace_context: Mapping[str, str],
    ) -> Row:
        """A new PENDING report; with a `request_id` used before, the report it created."""
        async with self._engine.begin() as connection:
            created = await connection.execute(
                postgresql.insert(reports)
                .values(
                    customer_id=customer,
                    report_id=report_id,
                    kind=kind,
                    format=format,
                    start_date=start_date,
                    end_date=end_date,
                    payers=list(payers),
                    parameters=parameters,
                    state=PENDING,
                    creator=creator,
                    request_id=request_id,
                    trace_context=dict(trace_context),
                )
                .on_conflict_do_nothing(index_elements=["customer_id", "request_id"])
                .returning(reports)
            )
            row = created.first()
            if row is not None:
                return row
            return (
                await connection.execute(
                    sa.select(reports).where(
                        reports.c.customer_id == customer, reports.c.request_id == request_id
                    )
                )
            ).one()

    async def get_report(self, customer: str, report_id: str) -> Row | None:
        async with self._reads.connect() as connection:
            found = await connection.execute(sa.select(reports).where(*_key(customer, report_id)))
            return found.first()

    async def list_reports(
        self, customer: str, filter_text: str, page_size: int, after: list[Any] | None
    ) -> list[Row]:
        query = (
            sa.select(reports)
            .where(reports.c.customer_id == customer)
            .order_by(reports.c.create_time.desc(), reports.c.report_id.desc())
            .limit(page_size)
        )
        condition = parse_filter(filter_text, REPORT_FILTERS)
        if condition is not None:
            query = query.where(condition)
        if after is not None:
            query = query.where(
                after_position(
                    (reports.c.create_time, reports.c.report_id),
                    (dt.datetime.fromisoformat(after[0]), after[1]),
                    descending=True,
                )
            )
        async with self._reads.connect() as connection:
            return list((await connection.execute(query)).all())

    async def delete_report(self, customer: str, report_id: str) -> bool:
        """Delete a report and its content; a build in progress finds its lease gone."""
        async with self._engine.begin() as connection:
            deleted = await connection.execute(
                sa.delete(reports).where(*_key(customer, report_id)).returning(reports.c.report_id)
            )
            return deleted.first() is not None

    async def claim_report(self, lease_token: uuid.UUID, lease_seconds: float) -> Row | None:
        """The oldest report waiting to be built (or whose builder's lease ended), now
        RUNNING under `lease_token`; None when there is none."""
        r = reports
        waiting = (
            sa.select(r.c.customer_id, r.c.report_id)
            .where(
                sa.or_(
                    sa.and_(
                        r.c.state == PENDING,
                        sa.or_(r.c.next_build_time.is_(None), r.c.next_build_time <= sa.func.now()),
                    ),
                    sa.and_(r.c.state == RUNNING, r.c.lease_expire_time <= sa.func.now()),
                )
            )
            .order_by(r.c.create_time)
            .limit(1)
            .with_for_update(skip_locked=True)
            .cte("waiting")
        )
        async with self._engine.begin() as connection:
            claimed = await connection.execute(
                sa.update(r)
                .where(
                    r.c.customer_id == waiting.c.customer_id,
                    r.c.report_id == waiting.c.report_id,
                )
                .values(
                    state=RUNNING,
                    build_count=r.c.build_count + 1,
                    lease_token=lease_token,
                    lease_expire_time=sa.func.now() + _seconds(lease_seconds),
                    next_build_time=None,
                    start_time=sa.func.coalesce(r.c.start_time, sa.func.now()),
                )
                .returning(r)
            )
            return claimed.first()

    async def renew_lease(
        self, customer: str, report_id: str, lease_token: uuid.UUID, lease_seconds: float
    ) -> bool:
        """Extend a build's lease; False when the build lost it (or the report is gone)."""
        async with self._engine.begin() as connection:
            renewed = await connection.execute(
                sa.update(reports)
                .where(*_key(customer, report_id), reports.c.lease_token == lease_token)
                .values(lease_expire_time=sa.func.now() + _seconds(lease_seconds))
                .returning(reports.c.report_id)
            )
            return renewed.first() is not None

    async def write_chunk(
        self, customer: str, report_id: str, build: int, chunk_number: int, data: bytes
    ) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                postgresql.insert(report_chunks)
                .values(
                    customer_id=customer,
                    report_id=report_id,
                    build=build,
                    chunk_number=chunk_number,
                    data=data,
                )
                .on_conflict_do_update(
                    index_elements=["customer_id", "report_id", "build", "chunk_number"],
                    set_={"data": data},
                )
            )

    async def succeed(
        self,
        claimed: Row,
        *,
        size_bytes: int,
        sha256: str,
        content_type: str,
        file_name: str,
        keep_days: float,
        ready_body: Callable[[Row], bytes],
        max_attempts: int,
        report_name: str = "",
    ) -> Row | None:
        """Mark a build's report SUCCEEDED with its content, drop every other build's
        chunks and queue REPORT_READY to subscribed webhooks, all at once; None when the
        build no longer holds the report."""
        r = reports
        async with self._engine.begin() as connection:
            finished = await connection.execute(
                sa.update(r)
                .where(
                    *_key(claimed.customer_id, claimed.report_id),
                    r.c.lease_token == claimed.lease_token,
                    r.c.state == RUNNING,
                )
                .values(
                    state=SUCCEEDED,
                    size_bytes=size_bytes,
                    sha256=sha256,
                    content_type=content_type,
                    file_name=file_name,
                    built_by=claimed.build_count,
                    lease_token=None,
                    lease_expire_time=None,
                    finish_time=sa.func.now(),
                    expire_time=sa.func.now() + sa.func.make_interval(0, 0, 0, keep_days),
                )
                .returning(r)
            )
            row = finished.first()
            if row is None:
                return None
            await connection.execute(
                sa.delete(report_chunks).where(
                    report_chunks.c.customer_id == claimed.customer_id,
                    report_chunks.c.report_id == claimed.report_id,
                    report_chunks.c.build != claimed.build_count,
                )
            )
            await queue_deliveries(
                connection,
                claimed.customer_id,
                REPORT_READY,
                ready_body(row),
                max_attempts,
                claimed.trace_context or {},
            )
            if row.schedule_id is not None:
                await _email_schedule_recipients(connection, row, report_name, max_attempts)
            return row

    async def fail(
        self,
        claimed: Row,
        *,
        code: int,
        message: str,
        keep_days: float,
        retry_in_seconds: float | None = None,
    ) -> bool:
        """End a build that failed: FAILED with `message`, or, with `retry_in_seconds`, back
        to PENDING until then. Its chunks are dropped. False when the build no longer holds
        the report."""
        r = reports
        if retry_in_seconds is None:
            values: dict[str, Any] = {
                "state": FAILED,
                "error_code": code,
                "error_message": message,
                "finish_time": sa.func.now(),
                "expire_time": sa.func.now() + sa.func.make_interval(0, 0, 0, keep_days),
            }
        else:
            values = {
                "state": PENDING,
                "error_message": message,
                "next_build_time": sa.func.now() + _seconds(retry_in_seconds),
            }
        async with self._engine.begin() as connection:
            ended = await connection.execute(
                sa.update(r)
                .where(
                    *_key(claimed.customer_id, claimed.report_id),
                    r.c.lease_token == claimed.lease_token,
                    r.c.state == RUNNING,
                )
                .values(lease_token=None, lease_expire_time=None, **values)
                .returning(r.c.report_id)
            )
            if ended.first() is None:
                return False
            await connection.execute(
                sa.delete(report_chunks).where(
                    report_chunks.c.customer_id == claimed.customer_id,
                    report_chunks.c.report_id == claimed.report_id,
                    report_chunks.c.build == claimed.build_count,
                )
            )
            return True

    async def content(self, row: Row) -> AsyncIterator[bytes]:
        """A SUCCEEDED report's content, one chunk in memory at a time. Stops early if the
        report is deleted (expired) while it is read."""
        number = 0
        while True:
            async with self._reads.connect() as connection:
                found = await connection.execute(
                    sa.select(report_chunks.c.data).where(
                        report_chunks.c.customer_id == row.customer_id,
                        report_chunks.c.report_id == row.report_id,
                        report_chunks.c.build == row.built_by,
                        report_chunks.c.chunk_number == number,
                    )
                )
                data = found.scalar()
            if data is None:
                return
            yield data
            number += 1

    async def delete_expired(self, limit: int) -> int:
        """Delete up to `limit` reports past their `expire_time`, content included."""
        r = reports
        expired = (
            sa.select(r.c.customer_id, r.c.report_id)
            .where(r.c.expire_time <= sa.func.now())
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("expired")
        )
        async with self._engine.begin() as connection:
            deleted = await connection.execute(
                sa.delete(r)
                .where(
                    r.c.customer_id == expired.c.customer_id,
                    r.c.report_id == expired.c.report_id,
                )
                .returning(r.c.customer_id)
            )
            removed = list(deleted.scalars())
            await record_purges(connection, "reports", removed, "reports", "past their expiry")
            return len(removed)

    async def next_build_due_in(self) -> float | None:
        """Seconds until the next report waiting to be built is due; None if none waits."""
        r = reports
        async with self._reads.connect() as connection:
            found = await connection.execute(
                sa.select(
                    sa.func.min(
                        sa.func.extract(
                            "epoch",
                            sa.case(
                                (
                                    r.c.state == PENDING,
                                    sa.func.coalesce(r.c.next_build_time, sa.func.now()),
                                ),
                                else_=r.c.lease_expire_time,
                            )
                            - sa.func.now(),
                        )
                    )
                ).where(r.c.state.in_((PENDING, RUNNING)))
            )
            seconds = found.scalar()
            return None if seconds is None else max(float(seconds), 0.0)


async def _email_schedule_recipients(
    connection: AsyncConnection, row: Row, report_name: str, max_attempts: int
) -> None:
    """Queue the email telling a scheduled report's recipients that it is ready."""
    s = report_schedules
    schedule = (
        await connection.execute(
            sa.select(s.c.display_name, s.c.email_recipients).where(
                s.c.customer_id == row.customer_id, s.c.schedule_id == row.schedule_id
            )
        )
    ).first()
    if schedule is None or not schedule.email_recipients:
        return
    await queue_report_ready_email(
        connection,
        row.customer_id,
        schedule.email_recipients,
        detail={
            "report": report_name,
            "schedule_display_name": schedule.display_name,
            "file_name": row.file_name,
            "size_bytes": row.size_bytes,
            "period": f"{row.start_date.isoformat()} to {row.end_date.isoformat()}",
            "expire_date": row.expire_time.date().isoformat(),
        },
        max_attempts=max_attempts,
    )

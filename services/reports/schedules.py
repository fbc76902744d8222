"""Report schedules: when each runs (a cron expression read on the wall clock of an IANA time
zone), their rows, and the scheduler every reports replica runs.

A run is claimed once: the scheduler locks due schedules (`FOR UPDATE SKIP LOCKED`), and
the report a run creates is unique on (schedule, scheduled time), so two replicas never run
it twice. The next run is the first time after *now*: after downtime, the missed runs are
made once, not once per missed tick.

Cron times are wall-clock times. On the day clocks go forward, a time that does not exist
(02:30 in New York) runs when the clock has gone past it (03:30 daylight time); on the day
they go back, a time that happens twice (01:30) runs once, the first time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import zoneinfo
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from croniter import croniter
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import errors
from runtime.db import for_reads
from runtime.filtering import FilterField, parse_filter
from runtime.ordering import Order, fetch_page, text_key
from services.reports.alert_policy import email_problem
from services.reports.report_store import PENDING, report_schedules, reports
from upstream.reports.v1 import resources_pb2

logger = logging.getLogger("upstream.reports.schedules")

BY_DISPLAY_NAME = Order("display_name", text_key(report_schedules.c.display_name), False)
SCHEDULE_FILTERS = {
    "paused": FilterField(report_schedules.c.paused, "bool"),
}

POLL_SECONDS = 30.0
# Due schedules one claim runs; the rest wait for the next claim, a moment later.
CLAIM_BATCH = 50


report_schedule_runs_total = Counter(
    "report_schedule_runs_total",
    "Runs of report schedules: `created` made the report, `duplicate` found it made already.",
    ("outcome",),
)
report_scheduler_failures_total = Counter(
    "report_scheduler_failures_total",
    "Passes of the scheduler over due schedules that failed (retried at the next poll).",
)


def cron_problem(cron: str) -> str | None:
    """Why `cron` is not a 5-field cron expression that runs at most once an hour."""
    fields = cron.split()
    if len(fields) != 5 or not croniter.is_valid(cron):
        return (
            "must be a 5-field cron expression (minute hour day-of-month month day-of-week), "
            "e.g. `0 7 * * MON`"
        )
    if not fields[0].isdigit() or not 0 <= int(fields[0]) <= 59:
        return "must name one minute of the hour (e.g. `0` or `30`): a schedule runs at most hourly"
    return None


def time_zone_of(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA time zone `name` (empty: UTC); None when there is no such zone."""
    if not name:
        return zoneinfo.ZoneInfo("UTC")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def next_run(cron: str, zone: zoneinfo.ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first time after `after` (aware) that `cron` matches on `zone`'s wall clock."""
    local = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    times = croniter(cron, local)
    while True:
        wall = times.get_next(dt.datetime)
        # fold=0: a time that happens twice is its first; one that does not exist is read
        # with the offset before the change, which puts it past the gap.
        moment = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
        if moment > after:
            return moment


def _seconds(value: float) -> Any:
    return sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.literal(value, sa.Float))


def _key(customer: str, schedule_id: str) -> tuple[Any, Any]:
    return (
        report_schedules.c.customer_id == customer,
        report_schedules.c.schedule_id == schedule_id,
    )


# The period of a scheduled report: its template's parameters resolved on the day of the run.
Resolve = Callable[[resources_pb2.ReportParameters, dt.date], tuple[dt.date, dt.date]]


class ScheduleStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = for_reads(engine)

    async def create(self, customer: str, values: Mapping[str, Any]) -> Row:
        async with self._engine.begin() as connection:
            created = await connection.execute(
                sa.insert(report_schedules)
                .values(
                    customer_id=customer,
                    schedule_id="rs_" + secrets.token_hex(8),
                    **values,
                )
                .returning(report_schedules)
            )
            return created.one()

    async def get(self, customer: str, schedule_id: str) -> Row | None:
        async with self._reads.connect() as connection:
            found = await connection.execute(
                sa.select(report_schedules).where(*_key(customer, schedule_id))
            )
            return found.first()

    async def list(
        self, customer: str, filter_text: str, page_size: int, after: list[Any] | None
    ) -> list[Row]:
        """By display name, as the contract says."""
        s = report_schedules
        query = sa.select(s).where(
            s.c.customer_id == customer, parse_filter(filter_text, SCHEDULE_FILTERS)
        )
        return await fetch_page(
            self._reads, query, BY_DISPLAY_NAME, s.c.schedule_id, page_size, after
        )

    async def update(
        self,
        customer: str,
        schedule_id: str,
        values: Mapping[str, Any],
        *,
        expected_update_time: dt.datetime | None,
    ) -> Row | None:
        """Change a schedule; None when it is gone or (with `expected_update_time`) changed
        since."""
        conditions = list(_key(customer, schedule_id))
        if expected_update_time is not None:
            conditions.append(report_schedules.c.update_time == expected_update_time)
        async with self._engine.begin() as connection:
            updated = await connection.execute(
                sa.update(report_schedules)
                .where(*conditions)
                .values(update_time=sa.func.clock_timestamp(), **values)
                .returning(report_schedules)
            )
            return updated.first()

    async def delete(
        self, customer: str, schedule_id: str, *, expected_update_time: dt.datetime | None
    ) -> bool:
        conditions = list(_key(customer, schedule_id))
        if expected_update_time is not None:
            conditions.append(report_schedules.c.update_time == expected_update_time)
        async with self._engine.begin() as connection:
            deleted = await connection.execute(
                sa.delete(report_schedules)
                .where(*conditions)
                .returning(report_schedules.c.schedule_id)
            )
            return deleted.first() is not None

    async def run_due(self, now: dt.datetime, resolve: Resolve, limit: int = CLAIM_BATCH) -> int:
        """Make the runs of up to `limit` schedules due at `now`: each a PENDING report
        (once per schedule and scheduled time), and the schedule's next run after `now`.
        Returns how many reports were created."""
        s = report_schedules
        created = 0
        async with self._engine.begin() as connection:
            due = await connection.execute(
                sa.select(s)
                .where(sa.not_(s.c.paused), s.c.next_run_time <= now)
                .order_by(s.c.next_run_time)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            for schedule in due.all():
                zone = time_zone_of(schedule.time_zone) or zoneinfo.ZoneInfo("UTC")
                template = resources_pb2.ReportTemplate.FromString(schedule.report_template)
                scheduled = schedule.next_run_time
                start, end = resolve(template.parameters, scheduled.astimezone(zone).date())
                report_id = "rpt_" + secrets.token_hex(8)
                inserted = await connection.execute(
                    postgresql.insert(reports)
                    .values(
                        customer_id=schedule.customer_id,
                        report_id=report_id,
                        kind=resources_pb2.ReportKind.Name(template.kind),
                        format=resources_pb2.ReportFormat.Name(template.format),
                        start_date=start,
                        end_date=end,
                        payers=list(template.parameters.payers),
                        parameters=template.parameters.SerializeToString(deterministic=True),
                        state=PENDING,
                        creator=schedule.creator,
                        schedule_id=schedule.schedule_id,
                        scheduled_time=scheduled,
                        trace_context={},
                    )
                    .on_conflict_do_nothing(
                        index_elements=["customer_id", "schedule_id", "scheduled_time"]
                    )
                    .returning(reports.c.report_id)
                )
                made = inserted.scalar()
                created += made is not None
                report_schedule_runs_total.labels("created" if made else "duplicate").inc()
                await connection.execute(
                    sa.update(s)
                    .where(*_key(schedule.customer_id, schedule.schedule_id))
                    .values(
                        next_run_time=next_run(schedule.cron, zone, now),
                        last_run_time=scheduled,
                        last_report_id=made or schedule.last_report_id,
                    )
                )
        return created

    async def next_due_in(self, now: dt.datetime) -> float | None:
        async with self._reads.connect() as connection:
            found = await connection.execute(
                sa.select(sa.func.min(report_schedules.c.next_run_time)).where(
                    sa.not_(report_schedules.c.paused)
                )
            )
            soonest = found.scalar()
        return None if soonest is None else max((soonest - now).total_seconds(), 0.0)


class Scheduler:
    """Makes due schedule runs until stopped; every replica runs one."""

    def __init__(
        self,
        store: ScheduleStore,
        resolve: Resolve,
        *,
        reports_created: asyncio.Event,
        wake_up: asyncio.Event,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._store = store
        self._resolve = resolve
        self._reports_created = reports_created
        self._wake_up = wake_up
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._stopping = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        worker = asyncio.create_task(self._run(), name="report-scheduler")
        try:
            yield
        finally:
            self._stopping = True
            self._wake_up.set()
            await worker

    async def _run(self) -> None:
        while not self._stopping:
            self._wake_up.clear()
            wait = self._poll_seconds
            try:
                now = self._clock()
                made = await self._store.run_due(now, self._resolve)
                if made:
                    self._reports_created.set()
                    logger.info("scheduled reports created", extra={"reports": made})
                    continue
                due_in = await self._store.next_due_in(now)
                if due_in is not None:
                    wait = min(wait, due_in)
            except Exception:
                report_scheduler_failures_total.inc()
                logger.exception("running due report schedules failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_up.wait(), max(wait, 0.25))


def schedule_violations(
    schedule: resources_pb2.ReportSchedule, paths: Sequence[str], field: str
) -> list[errors.FieldViolation]:
    """What is wrong with the fields `paths` of `schedule` (the request's `field`)."""
    problems = []
    if "display_name" in paths and not schedule.display_name.strip():
        problems.append(errors.FieldViolation(f"{field}.display_name", "required field is empty"))
    if "cron" in paths and (problem := cron_problem(schedule.cron)) is not None:
        problems.append(errors.FieldViolation(f"{field}.cron", problem))
    if "time_zone" in paths and time_zone_of(schedule.time_zone) is None:
        problems.append(
            errors.FieldViolation(
                f"{field}.time_zone",
                f"{schedule.time_zone!r} is not an IANA time zone (e.g. America/Chicago)",
            )
        )
    if "email_recipients" in paths:
        for index, address in enumerate(schedule.email_recipients):
            if (problem := email_problem(address)) is not None:
                problems.append(
                    errors.FieldViolation(f"{field}.email_recipients[{index}]", problem)
                )
    return problems

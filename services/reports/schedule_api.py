"""The ReportSchedule methods of ReportsService: create, get, list, update and delete the
schedules the scheduler (`schedules.Scheduler`) runs."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import grpc
from google.protobuf import empty_pb2
from sqlalchemy.engine import Row

from runtime import errors, names
from runtime.auth import require_identity
from runtime.messages import set_fields, timestamp_message
from runtime.ordering import position
from runtime.standard_methods import customer_of, etag_precondition, get_resource, list_resources
from runtime.updates import mask_paths
from services.reports import content
from services.reports.report_api import (
    REPORT_NAME,
    SCHEDULE_NAME,
    payer_violations,
    resolve_period,
)
from services.reports.schedules import (
    BY_DISPLAY_NAME,
    ScheduleStore,
    next_run,
    schedule_violations,
    time_zone_of,
)
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc, resources_pb2

SCHEDULE_FIELDS = (
    "display_name",
    "cron",
    "time_zone",
    "report_template",
    "paused",
    "email_recipients",
)
# A day whose period checks stand for any run's: templates are checked as if run today.
_CHECK_DAY = dt.date(2026, 1, 1)


def schedule_etag(row: Row) -> str:
    return format(int(row.update_time.timestamp() * 1_000_000), "x")


def schedule_message(row: Row) -> resources_pb2.ReportSchedule:
    schedule = resources_pb2.ReportSchedule(
        name=SCHEDULE_NAME.format(customer=row.customer_id, report_schedule=row.schedule_id),
        display_name=row.display_name,
        cron=row.cron,
        time_zone=row.time_zone,
        report_template=resources_pb2.ReportTemplate.FromString(row.report_template),
        paused=row.paused,
        last_report=(
            REPORT_NAME.format(customer=row.customer_id, report=row.last_report_id)
            if row.last_report_id
            else ""
        ),
        etag=schedule_etag(row),
        email_recipients=list(row.email_recipients),
    )
    return set_fields(
        schedule,
        next_run_time=timestamp_message(None if row.paused else row.next_run_time),
        last_run_time=timestamp_message(row.last_run_time),
        create_time=timestamp_message(row.create_time),
        update_time=timestamp_message(row.update_time),
    )


def template_violations(
    template: resources_pb2.ReportTemplate, field: str
) -> list[errors.FieldViolation]:
    """What is wrong with a schedule's report template (the request's `field`)."""
    if not template.parameters.WhichOneof("period"):
        return [
            errors.FieldViolation(
                f"{field}.parameters", "set a period: lookback_days (or a fixed date_range)"
            )
        ]
    try:
        start, end = resolve_period(template.parameters, f"{field}.parameters", today=_CHECK_DAY)
    except errors.ApiError as error:
        return list(error.violations)
    problems = [
        errors.FieldViolation(problem.field.replace("report.", f"{field}.", 1), problem.description)
        for problem in content.violations(template.kind, template.format, start, end)
    ]
    return problems + payer_violations(list(template.parameters.payers), f"{field}.parameters")


def _stored(
    schedule: resources_pb2.ReportSchedule, paths: list[str], current: Row | None
) -> dict[str, Any]:
    """The columns for `paths` of `schedule`, with the next run worked out again."""
    values: dict[str, Any] = {}
    for path in paths:
        if path == "report_template":
            values[path] = schedule.report_template.SerializeToString(deterministic=True)
        elif path == "email_recipients":
            values[path] = list(schedule.email_recipients)
        elif path == "time_zone":
            values[path] = schedule.time_zone or "UTC"
        else:
            values[path] = getattr(schedule, path)
    cron = values.get("cron", current.cron if current is not None else "")
    zone = time_zone_of(values.get("time_zone", current.time_zone if current else "UTC"))
    paused = values.get("paused", current.paused if current is not None else False)
    assert zone is not None
    values["next_run_time"] = None if paused else next_run(cron, zone, dt.datetime.now(dt.UTC))
    values["creator"] = require_identity().subject
    return values


class ScheduleMethods(reports_service_pb2_grpc.ReportsServiceServicer):
    """CreateReportSchedule, GetReportSchedule, ListReportSchedules, UpdateReportSchedule and
    DeleteReportSchedule."""

    _schedules: ScheduleStore
    _scheduler_wake_up: asyncio.Event

    async def CreateReportSchedule(
        self,
        request: reports_service_pb2.CreateReportScheduleRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.ReportSchedule:
        customer = customer_of(request.parent)
        schedule = request.report_schedule
        problems = schedule_violations(schedule, SCHEDULE_FIELDS, "report_schedule")
        if not schedule.HasField("report_template"):
            problems.append(
                errors.FieldViolation("report_schedule.report_template", "required field is unset")
            )
        else:
            problems += template_violations(
                schedule.report_template, "report_schedule.report_template"
            )
        if problems:
            raise errors.invalid_fields(problems)
        row = await self._schedules.create(customer, _stored(schedule, list(SCHEDULE_FIELDS), None))
        self._scheduler_wake_up.set()
        return schedule_message(row)

    async def GetReportSchedule(
        self,
        request: reports_service_pb2.GetReportScheduleRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.ReportSchedule:
        return await get_resource(
            request.name, SCHEDULE_NAME, self._schedules.get, schedule_message
        )

    async def ListReportSchedules(
        self,
        request: reports_service_pb2.ListReportSchedulesRequest,
        context: grpc.aio.ServicerContext,
    ) -> reports_service_pb2.ListReportSchedulesResponse:
        return await list_resources(
            request,
            reports_service_pb2.ListReportSchedulesResponse,
            "report_schedules",
            self._schedules.list,
            lambda last: position(BY_DISPLAY_NAME, last, "schedule_id"),
            schedule_message,
        )

    async def UpdateReportSchedule(
        self,
        request: reports_service_pb2.UpdateReportScheduleRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.ReportSchedule:
        change = request.report_schedule
        parsed = names.parse(change.name, SCHEDULE_NAME, field="report_schedule.name")
        customer, schedule_id = parsed["customer"], parsed["report_schedule"]
        paths = mask_paths(request.update_mask, change, SCHEDULE_FIELDS)
        current = await self._schedules.get(customer, schedule_id)
        if current is None:
            raise errors.not_found(change.name)
        if change.etag and change.etag != schedule_etag(current):
            raise errors.stale(change.name)
        problems = schedule_violations(change, paths, "report_schedule")
        if "report_template" in paths:
            problems += template_violations(
                change.report_template, "report_schedule.report_template"
            )
        if problems:
            raise errors.invalid_fields(problems)
        row = await self._schedules.update(
            customer,
            schedule_id,
            _stored(change, paths, current),
            expected_update_time=current.update_time if change.etag else None,
        )
        if row is None:
            raise errors.stale(change.name) if change.etag else errors.not_found(change.name)
        self._scheduler_wake_up.set()
        return schedule_message(row)

    async def DeleteReportSchedule(
        self,
        request: reports_service_pb2.DeleteReportScheduleRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        parsed = names.parse(request.name, SCHEDULE_NAME)
        customer, schedule_id = parsed["customer"], parsed["report_schedule"]
        expected = await etag_precondition(
            request.etag,
            request.name,
            lambda: self._schedules.get(customer, schedule_id),
            schedule_etag,
        )
        if not await self._schedules.delete(customer, schedule_id, expected_update_time=expected):
            raise errors.stale(request.name) if request.etag else errors.not_found(request.name)
        return empty_pb2.Empty()

"""The Report methods of ReportsService: ask for a report, follow it, list, delete and
download it. Building happens in `builds`; this module only reads and writes rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator

import grpc
from google.api import httpbody_pb2
from google.protobuf import empty_pb2
from google.rpc import status_pb2
from sqlalchemy.engine import Row

from runtime import errors, names
from runtime.auth import require_identity
from runtime.messages import date_message, python_date, set_fields, timestamp_message
from runtime.standard_methods import customer_of, get_resource, list_resources
from runtime.telemetry import trace_carrier
from services.reports import content
from services.reports.report_store import SUCCEEDED, ReportStore
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc, resources_pb2

REPORT_NAME = "customers/{customer}/reports/{report}"
SCHEDULE_NAME = "customers/{customer}/reportSchedules/{report_schedule}"
# Longest period a report covers: three years of claims.
MAX_PERIOD_DAYS = 1096
# Response headers DownloadReport sends (in its initial metadata) for the gateway to pass on.
DISPOSITION_HEADER = "content-disposition"
LENGTH_HEADER = "x-content-length"
DIGEST_HEADER = "x-content-sha256"


def report_message(row: Row) -> resources_pb2.Report:
    parameters = resources_pb2.ReportParameters.FromString(row.parameters)
    # A rolling period is shown with the dates it resolved to.
    parameters.date_range.start_date.CopyFrom(date_message(row.start_date))
    parameters.date_range.end_date.CopyFrom(date_message(row.end_date))
    report = resources_pb2.Report(
        name=REPORT_NAME.format(customer=row.customer_id, report=row.report_id),
        kind=resources_pb2.ReportKind.Value(row.kind),
        format=resources_pb2.ReportFormat.Value(row.format),
        parameters=parameters,
        state=resources_pb2.Report.State.Value(row.state),
        size_bytes=row.size_bytes or 0,
        content_type=row.content_type or "",
        sha256=row.sha256 or "",
        schedule=(
            SCHEDULE_NAME.format(customer=row.customer_id, report_schedule=row.schedule_id)
            if row.schedule_id
            else ""
        ),
        creator=row.creator,
    )
    if row.state == "FAILED":
        report.error.CopyFrom(
            status_pb2.Status(code=row.error_code or 0, message=row.error_message or "")
        )
    return set_fields(
        report,
        create_time=timestamp_message(row.create_time),
        finish_time=timestamp_message(row.finish_time),
        expire_time=timestamp_message(row.expire_time),
    )


def resolve_period(
    parameters: resources_pb2.ReportParameters, field: str, *, today: dt.date
) -> tuple[dt.date, dt.date]:
    """The dates a report's parameters cover: a date range as given, or the `lookback_days`
    days ending yesterday."""
    which = parameters.WhichOneof("period")
    if which == "lookback_days":
        days = parameters.lookback_days
        if not 1 <= days <= 730:
            raise _invalid(f"{field}.lookback_days", "must be 1–730")
        end = today - dt.timedelta(days=1)
        return end - dt.timedelta(days=days - 1), end
    if which != "date_range":
        raise _invalid(f"{field}", "set a period: date_range or lookback_days")
    start = python_date(parameters.date_range.start_date, f"{field}.date_range.start_date")
    end = python_date(parameters.date_range.end_date, f"{field}.date_range.end_date")
    if end < start:
        raise _invalid(f"{field}.date_range.end_date", "must not be before start_date")
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise _invalid(f"{field}.date_range", f"must span at most {MAX_PERIOD_DAYS} days")
    return start, end


def payer_violations(payers: list[str], field: str) -> list[errors.FieldViolation]:
    return [
        errors.FieldViolation(f"{field}.payers[{index}]", "must not be empty")
        for index, payer in enumerate(payers)
        if not payer.strip()
    ]


def _invalid(field: str, description: str) -> errors.ApiError:
    return errors.invalid_argument(
        f"{field} {description}", errors.FieldViolation(field, description)
    )


class ReportMethods(reports_service_pb2_grpc.ReportsServiceServicer):
    """CreateReport, GetReport, ListReports, DeleteReport and DownloadReport."""

    _reports: ReportStore
    _builds_wake_up: asyncio.Event

    async def CreateReport(
        self,
        request: reports_service_pb2.CreateReportRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.Report:
        customer = customer_of(request.parent)
        report = request.report
        start, end = resolve_period(
            report.parameters, "report.parameters", today=dt.datetime.now(dt.UTC).date()
        )
        problems = content.violations(report.kind, report.format, start, end)
        problems += payer_violations(list(report.parameters.payers), "report.parameters")
        if problems:
            first = problems[0]
            raise errors.invalid_argument(f"{first.field} {first.description}", *problems)
        row = await self._reports.create_report(
            customer,
            "rpt_" + secrets.token_hex(8),
            kind=resources_pb2.ReportKind.Name(report.kind),
            format=resources_pb2.ReportFormat.Name(report.format),
            start_date=start,
            end_date=end,
            payers=list(report.parameters.payers),
            parameters=report.parameters.SerializeToString(deterministic=True),
            creator=require_identity().subject,
            request_id=request.request_id or None,
            trace_context=trace_carrier(),
        )
        self._builds_wake_up.set()
        return report_message(row)

    async def GetReport(
        self, request: reports_service_pb2.GetReportRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Report:
        return await get_resource(
            request.name, REPORT_NAME, self._reports.get_report, report_message
        )

    async def ListReports(
        self, request: reports_service_pb2.ListReportsRequest, context: grpc.aio.ServicerContext
    ) -> reports_service_pb2.ListReportsResponse:
        return await list_resources(
            request,
            reports_service_pb2.ListReportsResponse,
            "reports",
            self._reports.list_reports,
            lambda last: [last.create_time.isoformat(), last.report_id],
            report_message,
        )

    async def DeleteReport(
        self, request: reports_service_pb2.DeleteReportRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        parsed = names.parse(request.name, REPORT_NAME)
        if not await self._reports.delete_report(parsed["customer"], parsed["report"]):
            raise errors.not_found(request.name)
        return empty_pb2.Empty()

    async def DownloadReport(
        self,
        request: reports_service_pb2.DownloadReportRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        parsed = names.parse(request.name, REPORT_NAME)
        row = await self._reports.get_report(parsed["customer"], parsed["report"])
        if row is None:
            raise errors.not_found(request.name)
        if row.state != SUCCEEDED:
            raise errors.ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{errors.client_text(request.name)} is {row.state}; its content can be "
                "downloaded once it is SUCCEEDED",
                reason="REPORT_NOT_READY",
            )
        await context.send_initial_metadata(
            (
                (DISPOSITION_HEADER, f'attachment; filename="{row.file_name}"'),
                (LENGTH_HEADER, str(row.size_bytes)),
                (DIGEST_HEADER, row.sha256),
            )
        )
        async for data in self._reports.content(row):
            yield httpbody_pb2.HttpBody(content_type=row.content_type, data=data)

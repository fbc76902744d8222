"""What a report is asked to contain, and which kinds come in which formats."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import grpc

from runtime import errors
from upstream.reports.v1 import resources_pb2

PDF, CSV, JSON = resources_pb2.PDF, resources_pb2.CSV, resources_pb2.JSON
DRIFT_SUMMARY, PAYER_SCORECARD = resources_pb2.DRIFT_SUMMARY, resources_pb2.PAYER_SCORECARD
CLAIMS_EXPORT, EVENTS_EXPORT = resources_pb2.CLAIMS_EXPORT, resources_pb2.EVENTS_EXPORT

DOCUMENTS = (DRIFT_SUMMARY, PAYER_SCORECARD)
EXPORTS = (CLAIMS_EXPORT, EVENTS_EXPORT)
FORMATS: dict[int, tuple[int, ...]] = {
    DRIFT_SUMMARY: (PDF, JSON),
    PAYER_SCORECARD: (PDF, JSON),
    CLAIMS_EXPORT: (CSV, JSON),
    EVENTS_EXPORT: (CSV, JSON),
}
# A document charts its period week by week: two years is about 105 weeks.
MAX_DOCUMENT_DAYS = 731

_EXTENSIONS: dict[int, str] = {PDF: "pdf", CSV: "csv", JSON: "json"}
_UNSAFE_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ReportSpec:
    customer: str  # customer id, e.g. "acme"
    name: str  # "customers/acme/reports/rpt_…"
    kind: int  # resources_pb2.ReportKind value
    format: int  # resources_pb2.ReportFormat value
    start_date: dt.date  # the period, inclusive
    end_date: dt.date
    payers: tuple[str, ...]  # empty: all payers
    create_time: dt.datetime  # shown as "generated" in documents


class ReportFailed(Exception):  # noqa: N818 (the name callers know it by)
    """A report that cannot be built, with a reason a person understands (shown in
    `Report.error`); `field` names the report field to change, when one is at fault."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_api_error(self) -> errors.ApiError:
        """The failure as the `google.rpc.Status` a FAILED report carries."""
        if self.field:
            return errors.invalid_argument(
                self.message, errors.FieldViolation(self.field, self.message)
            )
        return errors.ApiError(
            grpc.StatusCode.FAILED_PRECONDITION, self.message, reason="REPORT_FAILED"
        )


def supported(kind: int, format: int) -> bool:
    return format in FORMATS.get(kind, ())


def content_type(kind: int, format: int) -> str:
    if format == PDF:
        return "application/pdf"
    if format == CSV:
        return "text/csv; charset=utf-8"
    return "application/json" if kind in DOCUMENTS else "application/x-ndjson"


def extension(kind: int, format: int) -> str:
    return "jsonl" if format == JSON and kind in EXPORTS else _EXTENSIONS.get(format, "bin")


def file_name(spec: ReportSpec) -> str:
    """E.g. `payer-scorecard_acme_2025-01-01_2025-03-31.pdf`: ASCII letters, digits, dots,
    dashes and underscores only, so it needs no quoting in `Content-Disposition`."""
    kind = resources_pb2.ReportKind.Name(spec.kind).lower().replace("_", "-")
    customer = _UNSAFE_FILE_NAME.sub("-", spec.customer).strip("-.") or "customer"
    return (
        f"{kind}_{customer}_{spec.start_date.isoformat()}_{spec.end_date.isoformat()}"
        f".{extension(spec.kind, spec.format)}"
    )


def violations(
    kind: int, format: int, start_date: dt.date, end_date: dt.date
) -> list[errors.FieldViolation]:
    """What is wrong with a report's kind, format and period, each naming its field."""
    problems = []
    if kind not in FORMATS:
        problems.append(errors.FieldViolation("report.kind", "choose a report kind"))
    elif not supported(kind, format):
        names = " or ".join(resources_pb2.ReportFormat.Name(f) for f in FORMATS[kind])
        problems.append(
            errors.FieldViolation(
                "report.format",
                f"a {resources_pb2.ReportKind.Name(kind)} report comes as {names}",
            )
        )
    if end_date < start_date:
        problems.append(
            errors.FieldViolation(
                "report.parameters.date_range.end_date", "must not be before start_date"
            )
        )
    elif kind in DOCUMENTS and (end_date - start_date).days + 1 > MAX_DOCUMENT_DAYS:
        problems.append(
            errors.FieldViolation(
                "report.parameters.date_range",
                f"a document covers at most {MAX_DOCUMENT_DAYS} days; this period has "
                f"{(end_date - start_date).days + 1}",
            )
        )
    return problems


def check(spec: ReportSpec) -> None:
    """ReportFailed naming the first field at fault, if any."""
    problems = violations(spec.kind, spec.format, spec.start_date, spec.end_date)
    if problems:
        first = problems[0]
        raise ReportFailed(f"{first.field}: {first.description}", field=first.field)

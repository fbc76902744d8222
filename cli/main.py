"""`upstream`: the command line over gRPC, for people and for scripts.

    upstream upload FILE [--all-or-nothing] [--column NAME=HEADER]…
                                              upload a CSV or X12 835 file, with a progress bar
    upstream uploads [--limit N] | uploads delete UPLOAD…   newest first; deleting some
    upstream rejections UPLOAD [--code C] [--column COL]   an upload's rejected rows
    upstream events [--payer P] [--metric M] [--state S] [--severity S] [--active] [--limit N]
    upstream event EVENT                      one event whole: evidence, at stake, triage
    upstream triage EVENT --state STATE [--note TEXT]
    upstream run [--as-of DATE] [--wait]      start a detection run (as of the latest data)
    upstream config | config set NAME=VALUE…  the drift settings, and changing them
    upstream runs [--state S] [--trigger T] [--upload U] [--limit N]   detection runs, newest first
    upstream report create --kind K --format F --start DATE --end DATE [--payer P]… [--wait]
    upstream report download REPORT [-o FILE] | report delete REPORT…
    upstream reports [--kind K] [--state S] [--schedule S] [--limit N]   newest first
    upstream schedules | schedule create --name N --cron C [--time-zone Z] --kind K --format F
                             --lookback-days N [--payer P]… [--email ADDR]…
    upstream schedule pause|resume|delete SCHEDULE
    upstream webhooks | webhook create URL --event-type T… [--name N]
    upstream webhook test|enable|disable|rotate-secret|delete WEBHOOK
    upstream deliveries WEBHOOK [--state S] [--event-type T] [--limit N]   newest first
    upstream redeliver DELIVERY [--wait]      send a delivery once more
    upstream alerts [--state S] [--channel C] [--kind K] [--limit N]   newest first
    upstream alert-policy | alert-policy set NAME=VALUE…   who is alerted of what, and how
    upstream payers | summaries [--payer P] [--with-events] [--order-by F] [--limit N]
    upstream mappings | map RAW_NAME CANONICAL [--raw-id ID] | unmap MAPPING
    upstream audit [--service S]… [--actor A] [--resource NAME] [--field F] [--since DATE]

The token comes from `--token` or `UPSTREAM_TOKEN` (`make token` prints one locally), the
customer from the token (or `--customer`), the services' addresses from `--ingest`,
`--drift`, `--reports` or `UPSTREAM_INGEST`, `UPSTREAM_DRIFT`, `UPSTREAM_REPORTS` (the local
ports by default). `--json` prints what the services answered, in the proto3 JSON form, one
object a line. Exit status: 0 done; 2 the command line is wrong; 3 the request was refused
as invalid; 4 no such resource; 5 not signed in or not allowed; 6 a conflict (changed
meanwhile, exists already); 7 a service could not be reached or timed out; 141 the reader
of the output went away (`| head`); 1 anything else.
Errors are one line on stderr: `upstream: <STATUS>: <what is wrong>`.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.api import httpbody_pb2
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from cli.settings import Settings
from upstream.audit.v1 import audit_pb2
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc
from upstream.drift.v1 import resources_pb2 as drift_resources
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc
from upstream.ingest.v1 import resources_pb2 as ingest_resources
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc
from upstream.reports.v1 import resources_pb2 as reports_resources

CHUNK_BYTES = 1024 * 1024
PAGE_SIZE = 1000
CALL_SECONDS = 30.0
UPLOAD_SECONDS = 3600.0
WAIT_SECONDS = 3600.0
DEFAULTS = {"ingest": "127.0.0.1:50051", "drift": "127.0.0.1:50052", "reports": "127.0.0.1:50053"}
EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 3,
    grpc.StatusCode.OUT_OF_RANGE: 3,
    grpc.StatusCode.FAILED_PRECONDITION: 3,
    grpc.StatusCode.NOT_FOUND: 4,
    grpc.StatusCode.UNAUTHENTICATED: 5,
    grpc.StatusCode.PERMISSION_DENIED: 5,
    grpc.StatusCode.ALREADY_EXISTS: 6,
    grpc.StatusCode.ABORTED: 6,
    grpc.StatusCode.UNAVAILABLE: 7,
    grpc.StatusCode.DEADLINE_EXCEEDED: 7,
}


class CommandError(Exception):
    def __init__(self, status: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.status = status
        self.exit_code = exit_code


def _token_customer(token: str) -> str:
    """The `customer` claim of a JWT, read without checking it (the services check it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["customer"])
    except (IndexError, KeyError, ValueError) as error:
        raise CommandError("USAGE", "the token names no customer; give --customer", 2) from error


class Session:
    """The caller's token, customer and a channel per service."""

    def __init__(self, args: argparse.Namespace) -> None:
        token = args.token or os.environ.get("UPSTREAM_TOKEN", "")
        if not token:
            raise CommandError("USAGE", "no token: give --token or set UPSTREAM_TOKEN", 2)
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.customer = args.customer or _token_customer(token)
        self.parent = f"customers/{self.customer}"
        self.json = args.json
        self._targets = {
            service: getattr(args, service)
            or os.environ.get(f"UPSTREAM_{service.upper()}")
            or DEFAULTS[service]
            for service in DEFAULTS
        }
        self._channels: dict[str, grpc.Channel] = {}

    def channel(self, service: str) -> grpc.Channel:
        if service not in self._channels:
            self._channels[service] = grpc.insecure_channel(self._targets[service])
        return self._channels[service]

    def ingest(self) -> ingest_service_pb2_grpc.IngestServiceStub:
        return ingest_service_pb2_grpc.IngestServiceStub(self.channel("ingest"))

    def drift(self) -> drift_service_pb2_grpc.DriftServiceStub:
        return drift_service_pb2_grpc.DriftServiceStub(self.channel("drift"))

    def reports(self) -> reports_service_pb2_grpc.ReportsServiceStub:
        return reports_service_pb2_grpc.ReportsServiceStub(self.channel("reports"))

    def call(self, method: Callable[..., Any], request: Message) -> Any:
        """`method`'s answer to `request`, sent with the caller's token, within CALL_SECONDS."""
        return method(request, metadata=self.metadata, timeout=CALL_SECONDS)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def show(self, messages: Iterable[Message], columns: Callable[[Any], Sequence[str]]) -> None:
        """One JSON object a line with --json, else a line of columns a message."""
        for item in messages:
            if self.json:
                print(json.dumps(json_format.MessageToDict(item), ensure_ascii=False))
            else:
                print("  ".join(columns(item)))


def _listed(
    session: Session,
    method: Any,
    request_type: Any,
    field: str,
    parent: str | None = None,
    **request: Any,
) -> Iterator[Any]:
    """Every item of a List method under `parent` (the customer by default), page after
    page (AIP-158), each page as it comes: a long list starts printing at once, and a reader
    that has seen enough (`| head`) asks for no more pages."""
    token = ""
    while True:
        page = session.call(
            method,
            request_type(
                parent=parent or session.parent, page_size=PAGE_SIZE, page_token=token, **request
            ),
        )
        yield from getattr(page, field)
        token = page.next_page_token
        if not token:
            return


# --- commands -----------------------------------------------------------------------------


# What a file's name says it is (`claims.csv.gz` a CSV); other names leave it to the content
# (a `.txt` may be either, a `.zip` or `.xlsx` holds one).
_NAMED_FORMATS = {
    ".835": ingest_resources.Upload.X12_835,
    ".edi": ingest_resources.Upload.X12_835,
    ".x12": ingest_resources.Upload.X12_835,
    ".csv": ingest_resources.Upload.CSV,
    ".tsv": ingest_resources.Upload.CSV,
}


def _declared_format(path: Path) -> ingest_resources.Upload.Format:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    named = _NAMED_FORMATS.get(suffixes[-1]) if suffixes else None
    return ingest_resources.Upload.FORMAT_UNSPECIFIED if named is None else named


def upload(session: Session, args: argparse.Namespace) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise CommandError("USAGE", f"{path}: no such file", 2)
    size = path.stat().st_size
    kind = _declared_format(path)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        disable=args.json or not sys.stderr.isatty(),
        console=None,
        transient=True,
    ) as progress:
        task = progress.add_task(f"uploading {path.name}", total=size)

        def requests() -> Iterator[ingest_service_pb2.CreateUploadRequest]:
            yield ingest_service_pb2.CreateUploadRequest(
                parent=session.parent,
                upload=ingest_resources.Upload(
                    file_name=path.name,
                    format=kind,
                    mode=(
                        ingest_resources.Upload.ALL_OR_NOTHING
                        if args.all_or_nothing
                        else ingest_resources.Upload.MODE_UNSPECIFIED
                    ),
                    column_map=dict(args.column or []),
                ),
                request_id=args.request_id or str(uuid.uuid4()),
            )
            with path.open("rb") as file:
                while chunk := file.read(CHUNK_BYTES):
                    yield ingest_service_pb2.CreateUploadRequest(
                        http_body=httpbody_pb2.HttpBody(data=chunk)
                    )
                    progress.advance(task, len(chunk))
            progress.update(task, description=f"{path.name}: sent, the service is reading it")

        try:
            made = session.ingest().CreateUpload(
                requests(), metadata=session.metadata, timeout=UPLOAD_SECONDS
            )
        except grpc.RpcError as refused:
            if _problem(refused) != "MISSING_COLUMN":
                raise
            said = refused.details()  # type: ignore[attr-defined]
            raise CommandError(
                "INVALID_ARGUMENT",
                f"{said}; if the file has them under other headings, name those with "
                "--column NAME=HEADER (claim_id='Chart Ref')",
                EXIT_CODES[grpc.StatusCode.INVALID_ARGUMENT],
            ) from None
    session.show([made], _upload_columns)
    if not session.json:
        for warning in made.warnings[:20]:
            print(f"  warning: {warning.message}")
        if made.rows_rejected:
            _first_rejections(session, made)
    if made.state == ingest_resources.Upload.FAILED:
        raise CommandError("FAILED", f"{made.name}: {made.error.message or 'the upload failed'}", 3)


def _said(error: grpc.RpcError) -> str:
    """A refusal's message, with each field it names and what is wrong with it (its
    BadRequest's violations) where the message does not say them already."""
    said = error.details() or ""  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    violations = []
    for detail in status.details if status is not None else []:
        request = error_details_pb2.BadRequest()
        if detail.Unpack(request):
            violations += [
                f"{v.field}: {v.description}"
                for v in request.field_violations
                if v.description not in said
            ]
    return "; ".join([said, *violations]) if violations else said


def _problem(error: grpc.RpcError) -> str:
    """What was wrong with a refused upload: its ErrorInfo's `problem` (MISSING_COLUMN, …)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.metadata.get("problem", "")
    return ""


def _upload_columns(upload: ingest_resources.Upload) -> list[str]:
    state = ingest_resources.Upload.State.Name(upload.state)
    columns = [
        upload.name,
        state,
        upload.file_name,
        f"{upload.rows_accepted} rows accepted",
        f"{upload.rows_rejected} rejected",
    ]
    if upload.error.message:  # a failed upload says why
        columns.append(upload.error.message)
    return columns


def _column(text: str) -> tuple[str, str]:
    """`NAME=HEADER` of `upload --column`."""
    name, equals, header = text.partition("=")
    if not equals or not name.strip() or not header.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=HEADER (claim_id='Chart Ref')")
    return name.strip(), header.strip()


# Rejected rows an upload's output shows; `upstream rejections` lists them all.
FIRST_REJECTIONS = 20


def _first_rejections(session: Session, made: ingest_resources.Upload) -> None:
    """The upload's first rejected rows, each where it is and why, and how to see the rest."""
    page = session.call(
        session.ingest().ListUploadRejections,
        ingest_service_pb2.ListUploadRejectionsRequest(
            parent=made.name, page_size=FIRST_REJECTIONS
        ),
    )
    for rejection in page.upload_rejections:
        print("  rejected: " + "  ".join(_rejection_columns(rejection)))
    more = made.rows_rejected - len(page.upload_rejections)
    if more > 0:
        upload_id = made.name.rsplit("/", 1)[1]
        print(f"  … {more} more: upstream rejections {upload_id}")


def _rejection_columns(rejection: ingest_resources.UploadRejection) -> list[str]:
    where = (
        f"line {rejection.line_number}"
        if rejection.line_number
        else f"segment {rejection.segment_number}"
    )
    columns = [where]
    if rejection.column:
        columns.append(rejection.column)
    if rejection.raw_value:
        columns.append(json.dumps(rejection.raw_value, ensure_ascii=False))
    columns.append(f"{rejection.reason} ({rejection.code})")
    return columns


def _equals(pairs: Iterable[tuple[str, str | None]], *, quoted: bool = True) -> list[str]:
    """`field = "value"` filter terms of the pairs given a value (enum values unquoted)."""
    return [f"{field} = {_quoted(value) if quoted else value}" for field, value in pairs if value]


def rejections(session: Session, args: argparse.Namespace) -> None:
    terms = _equals((("code", args.code), ("column", args.column)))
    found = _listed(
        session,
        session.ingest().ListUploadRejections,
        ingest_service_pb2.ListUploadRejectionsRequest,
        "upload_rejections",
        parent=_named(session, "uploads", args.upload),
        filter=" AND ".join(terms),
    )
    session.show(found, _rejection_columns)


def uploads(session: Session, args: argparse.Namespace) -> None:
    found = _listed(
        session, session.ingest().ListUploads, ingest_service_pb2.ListUploadsRequest, "uploads"
    )
    session.show(itertools.islice(found, args.limit), _upload_columns)


def claims(session: Session, args: argparse.Namespace) -> None:
    terms = _equals(
        (
            ("payer", args.payer),
            ("code_group", args.code_group),
            ("claim_id", args.claim_id),
            ("upload", args.upload and _named(session, "uploads", args.upload)),
        )
    ) + _equals((("status", args.status),), quoted=False)
    if args.denied:
        terms.append("denied = true")
    if args.procedure_code:
        terms.append(f"procedure_codes:{_quoted(args.procedure_code)}")
    for operator, day in ((">=", args.decided_from), ("<=", args.decided_to)):
        if day:
            terms.append(f"decision_date {operator} {_quoted(day.isoformat())}")
    if args.filter:
        terms.append(f"({args.filter})")
    found = _listed(
        session,
        session.ingest().ListClaims,
        ingest_service_pb2.ListClaimsRequest,
        "claims",
        filter=" AND ".join(terms),
        order_by=args.order_by or "",
    )
    session.show(itertools.islice(found, args.limit), _claim_columns)


def _day_text(day: Any) -> str:
    """A google.type.Date as YYYY-MM-DD; "-" when unset."""
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}" if day.year else "-"


def _claim_columns(claim: ingest_resources.Claim) -> list[str]:
    reasons = ";".join(f"{a.group_code}-{a.reason_code}" for a in claim.adjustments)
    return [
        claim.claim_id,
        claim.payer,
        ingest_resources.Claim.Status.Name(claim.status),
        _day_text(claim.decision_date),
        f"billed {_dollars(claim.billed_amount)}",
        f"paid {_dollars(claim.paid_amount)}",
        reasons or "-",
    ]


def _dollars(money: Any) -> str:
    return f"${money.units + money.nanos / 1e9:,.2f}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def events(session: Session, args: argparse.Namespace) -> None:
    terms = _equals((("payer", args.payer), ("code_group", args.code_group))) + _equals(
        (("metric", args.metric), ("state", args.state)), quoted=False
    )
    if args.severity:
        terms.append(f"severity >= {args.severity}")
    if args.active:
        terms.append("active = true")
    found = _listed(
        session,
        session.drift().ListDriftEvents,
        drift_service_pb2.ListDriftEventsRequest,
        "drift_events",
        filter=" AND ".join(terms),
    )
    session.show(itertools.islice(found, args.limit), _event_columns)


def audit(session: Session, args: argparse.Namespace) -> None:
    terms = []
    if args.actor:
        terms.append(f"actor = {_quoted(args.actor)}")
    if args.resource:
        terms.append(f"resource = {_quoted(args.resource)}")
    if args.field:
        terms.append(f"changed_fields:{_quoted(args.field)}")
    if args.since:
        terms.append(f'create_time >= "{args.since.isoformat()}T00:00:00Z"')
    stubs: dict[str, Callable[[], Any]] = {
        "ingest": session.ingest,
        "drift": session.drift,
        "reports": session.reports,
    }
    found = [
        entry
        for service in args.service or list(stubs)
        for entry in _listed(
            session,
            stubs[service]().ListAuditEntries,
            audit_pb2.ListAuditEntriesRequest,
            "entries",
            parent=f"{session.parent}/auditLogs/{service}",
            filter=" AND ".join(terms),
        )
    ]
    # One list of every service's entries, newest first.
    found.sort(key=lambda e: (e.create_time.seconds, e.create_time.nanos), reverse=True)
    session.show(found, _audit_columns)


def _audit_columns(entry: audit_pb2.AuditEntry) -> list[str]:
    return [
        entry.create_time.ToJsonString(),
        entry.actor,
        audit_pb2.AuditEntry.Action.Name(entry.action),
        entry.resource,
        ",".join(entry.changed_fields),
    ]


def _event_columns(event: drift_resources.DriftEvent) -> list[str]:
    state = drift_resources.DriftEvent.State.Name(event.state)
    if event.HasField("untested_since"):
        state += f" (not tested since {_day_text(event.untested_since)})"
    return [
        event.name,
        drift_resources.DriftEvent.Severity.Name(event.severity),
        state,
        event.summary,
    ]


def event(session: Session, args: argparse.Namespace) -> None:
    found = session.call(
        session.drift().GetDriftEvent,
        drift_service_pb2.GetDriftEventRequest(name=_named(session, "driftEvents", args.event)),
    )
    if session.json:
        session.show([found], lambda _: [])
        return
    for label, value in _event_facts(found):
        print(f"{label + ':':<18} {value}" if label else value)


def _event_facts(event: drift_resources.DriftEvent) -> list[tuple[str, str]]:
    """An event whole, a fact a line: what drifted, the evidence (baseline against
    current, the test and its p and q values), its dollars at stake, when it was seen and
    how it was triaged."""
    evidence = event.evidence
    days = event.metric == drift_resources.DECISION_DAYS

    def value(number: float) -> str:
        return f"{number:.1f} days" if days else f"{number * 100:.1f} %"

    def window(period: Any, count: int, value_of: float, interval: Any) -> str:
        said = f"{_day_text(period.start_date)} – {_day_text(period.end_date)}: {value(value_of)}"
        said += f" of {count:,} decided claims"
        if interval.level:
            said += (
                f" ({interval.level * 100:.0f} % interval {value(interval.lower)} – "
                f"{value(interval.upper)})"
            )
        return said

    effect_interval = ""
    if evidence.effect_interval.level:
        effect_interval = (
            f" ({evidence.effect_interval.level * 100:.0f} % interval "
            f"{evidence.effect_interval.lower:+.2f} – {evidence.effect_interval.upper:+.2f})"
        )
    state = drift_resources.DriftEvent.State.Name(event.state)
    if not event.active:
        why = {drift_resources.DriftEvent.CLAIMS_REMOVED: "none of its claims are left"}
        state += f", ended {event.end_time.ToJsonString()}: " + why.get(
            event.end_reason, "no longer found"
        )
    elif event.HasField("untested_since"):
        state += f", open, not tested since {_day_text(event.untested_since)}"
    else:
        state += ", open"
    facts = [
        ("", event.name),
        ("", event.summary),
        ("payer", event.payer),
        ("code group", event.code_group or "all codes"),
        ("metric", drift_resources.Metric.Name(event.metric)),
        ("severity", drift_resources.DriftEvent.Severity.Name(event.severity)),
        ("state", state),
        (
            "baseline",
            window(
                event.baseline_window,
                evidence.baseline_count,
                evidence.baseline_value,
                evidence.baseline_interval,
            ),
        ),
        (
            "current",
            window(
                event.current_window,
                evidence.current_count,
                evidence.current_value,
                evidence.current_interval,
            ),
        ),
    ]
    if evidence.HasField("seasonal_expected_value"):
        facts.append(("season expects", value(evidence.seasonal_expected_value)))
    facts += [
        ("change", f"{evidence.effect_size:+.2f} {evidence.effect_unit}" + effect_interval),
        ("test", f"{evidence.test}: p {evidence.p_value:.2g}, q {evidence.q_value:.2g}"),
        ("at stake", _dollars(event.dollars_at_stake)),
    ]
    if evidence.carc_codes_moved:
        facts.append(
            (
                "reasons moved",
                "; ".join(
                    f"{shift.code} {shift.baseline_share * 100:.1f} % → "
                    f"{shift.current_share * 100:.1f} %"
                    for shift in evidence.carc_codes_moved
                ),
            )
        )
    facts += [
        ("first detected", event.first_detected_time.ToJsonString()),
        ("last seen", event.last_seen_time.ToJsonString()),
    ]
    if event.triaged_by:
        facts.append(("triaged", f"by {event.triaged_by} {event.triage_time.ToJsonString()}"))
    if event.triage_note:
        facts.append(("note", event.triage_note))
    return facts


def _named(session: Session, collection: str, given: str) -> str:
    """A resource's name from its name or its id in the customer's `collection`."""
    return given if given.startswith("customers/") else f"{session.parent}/{collection}/{given}"


def triage(session: Session, args: argparse.Namespace) -> None:
    stub = session.drift()
    changes = {"state": drift_resources.DriftEvent.State.Value(args.state)}
    if args.note is not None:
        changes["triage_note"] = args.note
    updated = _updated_as_read(
        session,
        (stub.GetDriftEvent, drift_service_pb2.GetDriftEventRequest),
        (stub.UpdateDriftEvent, drift_service_pb2.UpdateDriftEventRequest, "drift_event"),
        _named(session, "driftEvents", args.event),
        lambda current: drift_resources.DriftEvent(name=current.name, etag=current.etag, **changes),
        list(changes),
    )
    session.show([updated], _event_columns)


def _updated_as_read(
    session: Session,
    get: tuple[Any, Any],
    update: tuple[Any, Any, str],
    name: str,
    change: Callable[[Any], Message],
    paths: Sequence[str],
) -> Any:
    """The resource `name`, read (`get`: the Get method and its request), changed in
    `paths` to what `change(current)` holds (`update`: the Update method, its request and
    the request's field of the resource), conditional on it as read: a change someone made
    meanwhile is a conflict (exit 6), not overwritten."""
    get_method, get_request = get
    update_method, update_request, field = update
    current = session.call(get_method, get_request(name=name))
    return session.call(
        update_method,
        update_request(
            **{field: change(current)}, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
        ),
    )


def _mapping_columns(mapping: ingest_resources.PayerMapping) -> list[str]:
    said = (
        f"{mapping.raw_payer_name} (id {mapping.raw_payer_id})"
        if mapping.raw_payer_id
        else mapping.raw_payer_name
    )
    return [mapping.name, f"{said} → {mapping.canonical_payer}"]


def mappings(session: Session, args: argparse.Namespace) -> None:
    found = _listed(
        session,
        session.ingest().ListPayerMappings,
        ingest_service_pb2.ListPayerMappingsRequest,
        "payer_mappings",
    )
    session.show(found, _mapping_columns)


def map_payer(session: Session, args: argparse.Namespace) -> None:
    made = session.call(
        session.ingest().CreatePayerMapping,
        ingest_service_pb2.CreatePayerMappingRequest(
            parent=session.parent,
            payer_mapping=ingest_resources.PayerMapping(
                raw_payer_name=args.raw_name,
                raw_payer_id=args.raw_id or "",
                canonical_payer=args.canonical,
            ),
        ),
    )
    session.show([made], _mapping_columns)


def unmap_payer(session: Session, args: argparse.Namespace) -> None:
    _deleted(
        session,
        (session.ingest().DeletePayerMapping, ingest_service_pb2.DeletePayerMappingRequest),
        "payerMappings",
        [args.mapping],
    )


def delete_uploads(session: Session, args: argparse.Namespace) -> None:
    _deleted(
        session,
        (session.ingest().DeleteUpload, ingest_service_pb2.DeleteUploadRequest),
        "uploads",
        args.uploads,
    )


def _deleted(
    session: Session, delete: tuple[Any, Any], collection: str, given: Iterable[str]
) -> None:
    """Each resource `given` (its name, or its id in the customer's `collection`) deleted in
    turn (`delete`: the Delete method and its request), a line each as it goes; the first
    that cannot be stops the rest."""
    method, request = delete
    for each in given:
        name = _named(session, collection, each)
        session.call(method, request(name=name))
        if session.json:
            print(json.dumps({"deleted": name}), flush=True)
        else:
            print(f"{name} deleted", flush=True)


def payers(session: Session, args: argparse.Namespace) -> None:
    found = _listed(
        session, session.ingest().ListPayers, ingest_service_pb2.ListPayersRequest, "payers"
    )
    session.show(
        found,
        lambda p: [
            p.name,
            p.canonical_payer or "(unmapped)",
            p.raw_payer_name,
            _counted(p.claim_count, "claim"),
        ],
    )


def summaries(session: Session, args: argparse.Namespace) -> None:
    terms = _equals((("payer", args.payer),))
    if args.with_events:
        terms.append("open_event_count > 0")
    found = _listed(
        session,
        session.drift().ListPayerSummaries,
        drift_service_pb2.ListPayerSummariesRequest,
        "payer_summaries",
        filter=" AND ".join(terms),
        order_by=args.order_by or "",
    )
    shown: set[str] = set()

    def noted() -> Iterator[drift_resources.PayerSummary]:
        for summary in itertools.islice(found, args.limit):
            shown.add(summary.payer)
            yield summary

    session.show(noted(), _summary_columns)
    # Every payer was asked for and listed: say which have claims but none in the windows.
    if not (session.json or args.payer or args.with_events) and (
        args.limit is None or len(shown) < args.limit
    ):
        _payers_before_windows(session, shown)


def _payers_before_windows(session: Session, shown: set[str]) -> None:
    """A line naming the payers with claims none of which were decided in the summaries'
    windows (those end on the customer's latest decision date: a later file of some payers
    moves them past the others' claims), most claims first: their open events stay open,
    not tested, until their later claims come."""
    claims: dict[str, int] = {}
    for payer in _listed(
        session, session.ingest().ListPayers, ingest_service_pb2.ListPayersRequest, "payers"
    ):
        name = payer.canonical_payer or payer.raw_payer_name
        if name not in shown:
            claims[name] = claims.get(name, 0) + payer.claim_count
    earlier = sorted((name for name, n in claims.items() if n), key=lambda n: (-claims[n], n))
    if not earlier:
        return
    named = ", ".join(earlier[:5]) + (f" and {len(earlier) - 5} more" if len(earlier) > 5 else "")
    print(
        f"  + {_counted(len(earlier), 'payer')} with no claims decided in these windows"
        f", which end on the latest decision date in your files: {named} "
        "(their open events are not tested until their later claims are uploaded; "
        "`upstream payers` lists them)"
    )


def _summary_columns(summary: drift_resources.PayerSummary) -> list[str]:
    """A payer's current window against its baseline: claims, denial rate, median days to
    decision and paid ÷ allowed, and its open events."""
    now, before = summary.current, summary.baseline

    def moved(current: float, baseline: float, text: Callable[[float], str]) -> str:
        if not now.claims:
            return "-"
        return f"{text(current)} (was {text(baseline)})" if before.claims else text(current)

    columns = [
        summary.payer,
        f"{_counted(now.claims, 'claim')} ({before.claims:,} in the baseline)",
        "denials " + moved(now.denial_rate, before.denial_rate, lambda v: f"{v * 100:.1f} %"),
        "decided in "
        + moved(now.median_decision_days, before.median_decision_days, lambda v: f"{v:g} days"),
        "paid/allowed "
        + moved(now.paid_to_allowed_ratio, before.paid_to_allowed_ratio, lambda v: f"{v:.2f}"),
        _counted(summary.open_event_count, "open event"),
    ]
    if summary.self_pay:
        columns.append("self pay: not compared")
    return columns


def _counted(count: int, noun: str) -> str:
    """`1 claim`, `2 claims`, `1,200 claims`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from error


def _date(text: str) -> Any:
    day = _day(text)
    return {"year": day.year, "month": day.month, "day": day.day}


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


def report_create(session: Session, args: argparse.Namespace) -> None:
    report = reports_resources.Report(
        kind=reports_resources.ReportKind.Value(args.kind),
        format=reports_resources.ReportFormat.Value(args.format),
    )
    json_format.ParseDict(
        {"dateRange": {"startDate": args.start, "endDate": args.end}, "payers": args.payer or []},
        report.parameters,
    )
    stub = session.reports()
    made = session.call(
        stub.CreateReport,
        reports_service_pb2.CreateReportRequest(
            parent=session.parent, report=report, request_id=args.request_id or str(uuid.uuid4())
        ),
    )
    _shown_when_done(
        session,
        made,
        (stub.GetReport, reports_service_pb2.GetReportRequest),
        wait=args.wait,
        waiting=(reports_resources.Report.PENDING, reports_resources.Report.RUNNING),
        failed=reports_resources.Report.FAILED,
        columns=_report_columns,
        still="is still being built",
    )


def _shown_when_done(
    session: Session,
    made: Any,
    get: tuple[Any, Any],
    *,
    wait: bool,
    waiting: Sequence[int],
    failed: int,
    columns: Callable[[Any], Sequence[str]],
    still: str,
    why: Callable[[Any], str] = lambda made: str(made.error.message),
) -> None:
    """`made` (a report, a run or a webhook delivery) shown; with `wait`, once its state has
    left `waiting`, asked for again (`get`: the Get method and its request) each second
    meanwhile, and past WAIT_SECONDS DEADLINE_EXCEEDED. In the `failed` state, FAILED with
    why it failed (`why`: its error's message)."""
    method, request = get
    deadline = time.monotonic() + WAIT_SECONDS
    while wait and made.state in waiting:
        if time.monotonic() > deadline:
            raise CommandError("DEADLINE_EXCEEDED", f"{made.name} {still}", 7)
        time.sleep(1)
        made = session.call(method, request(name=made.name))
    session.show([made], columns)
    if made.state == failed:
        raise CommandError("FAILED", f"{made.name}: {why(made)}", 3)


def run_detection(session: Session, args: argparse.Namespace) -> None:
    stub = session.drift()
    request = drift_service_pb2.RunDetectionRequest(
        parent=session.parent, request_id=args.request_id or str(uuid.uuid4())
    )
    if args.as_of:
        json_format.ParseDict(args.as_of, request.as_of)
    made = session.call(stub.RunDetection, request)
    _shown_when_done(
        session,
        made,
        (stub.GetDriftRun, drift_service_pb2.GetDriftRunRequest),
        wait=args.wait,
        waiting=(drift_resources.DriftRun.PENDING, drift_resources.DriftRun.RUNNING),
        failed=drift_resources.DriftRun.FAILED,
        columns=_run_columns,
        still="is still running",
    )


def runs(session: Session, args: argparse.Namespace) -> None:
    terms = _equals((("state", args.state), ("trigger", args.trigger)), quoted=False)
    if args.upload:
        # An upload's run is asked for with the upload's id as its request id.
        terms += _equals((("request_id", _named(session, "uploads", args.upload).rsplit("/")[-1]),))
    found = _listed(
        session,
        session.drift().ListDriftRuns,
        drift_service_pb2.ListDriftRunsRequest,
        "drift_runs",
        filter=" AND ".join(terms),
    )
    session.show(itertools.islice(found, args.limit), _run_columns)


def _run_columns(run: drift_resources.DriftRun) -> list[str]:
    columns = [
        run.name,
        drift_resources.DriftRun.State.Name(run.state),
        drift_resources.DriftRun.Trigger.Name(run.trigger),
    ]
    # What started it: the upload's id, or the change (`upload-deleted:u_1`, less the suffix
    # that makes its request id its own).
    if run.trigger == drift_resources.DriftRun.UPLOAD:
        columns.append(run.request_id)
    elif run.trigger == drift_resources.DriftRun.DATA_CHANGE:
        columns.append(run.request_id.rpartition(":")[0] or run.request_id)
    columns.append(f"as of {_day_text(run.as_of)}")
    if run.state == drift_resources.DriftRun.SUCCEEDED:
        skipped = f" ({run.cells_skipped} skipped: too few claims)" if run.cells_skipped else ""
        columns += [
            f"{run.cells_tested} cells tested{skipped}",
            f"{run.events_opened} events opened, {run.events_updated} updated, "
            f"{run.events_closed} closed"
            + (f", {run.events_untested} not tested" if run.events_untested else ""),
            f"in {run.duration.ToTimedelta().total_seconds():.1f} s",
        ]
    if run.error.message:  # a failed run says why
        columns.append(run.error.message)
    return columns


DRIFT_SETTINGS = Settings(drift_resources.DriftConfig, "a drift setting")
ALERT_SETTINGS = Settings(
    reports_resources.AlertPolicy,
    "an alert setting",
    # Never read back: the host it sends to stands for it.
    shown={
        "slack_webhook_url": lambda policy: (
            f"(a webhook of {policy.slack_webhook_host})" if policy.slack_webhook_host else ""
        )
    },
)


@dataclass(frozen=True)
class OneOfACustomer:
    """A resource a customer has one of (`customers/{customer}/{path}`), and its settings:
    which service holds it, its Get and Update methods and the Update request's field."""

    settings: Settings
    stub: Callable[[Session], Any]
    path: str
    get: tuple[str, Any]
    update: tuple[str, Any, str]

    def add_commands(self, commands: Any, name: str, said: str, example: str, values: str) -> None:
        """`upstream NAME` listing the settings, `upstream NAME set NAME=VALUE…` changing
        them (`example` one; `values` how some are written)."""
        listed = commands.add_parser(name, help=said)
        listed.set_defaults(run=self.show)
        command = listed.add_subparsers(dest="action").add_parser(
            "set",
            help=f"change {self.settings.what.removeprefix('a ').removeprefix('an ')}s, "
            f"e.g. {example}",
        )
        command.add_argument(
            "settings",
            nargs="+",
            type=self.settings.parse,
            metavar="NAME=VALUE",
            help=f"a setting as `upstream {name}` lists it; {values}",
        )
        command.set_defaults(run=self.set)

    def show(self, session: Session, args: argparse.Namespace) -> None:
        method, request = self._get(session)
        _show_settings(
            session,
            self.settings,
            session.call(method, request(name=f"{session.parent}/{self.path}")),
        )

    def set(self, session: Session, args: argparse.Namespace) -> None:
        """The settings given changed, conditional on the resource as read."""
        method, request, field = self.update
        changed = _updated_as_read(
            session,
            self._get(session),
            (getattr(self.stub(session), method), request, field),
            f"{session.parent}/{self.path}",
            lambda current: self.settings.change(current, args.settings),
            [name for name, _ in args.settings],
        )
        _show_settings(session, self.settings, changed)

    def _get(self, session: Session) -> tuple[Any, Any]:
        method, request = self.get
        return getattr(self.stub(session), method), request


DRIFT_CONFIG = OneOfACustomer(
    DRIFT_SETTINGS,
    Session.drift,
    "driftConfig",
    ("GetDriftConfig", drift_service_pb2.GetDriftConfigRequest),
    ("UpdateDriftConfig", drift_service_pb2.UpdateDriftConfigRequest, "drift_config"),
)
ALERT_POLICY = OneOfACustomer(
    ALERT_SETTINGS,
    Session.reports,
    "alertPolicy",
    ("GetAlertPolicy", reports_service_pb2.GetAlertPolicyRequest),
    ("UpdateAlertPolicy", reports_service_pb2.UpdateAlertPolicyRequest, "alert_policy"),
)


def _show_settings(session: Session, settings: Settings, resource: Any) -> None:
    """The settings a line each (`NAME  VALUE`, as `set` takes them) and who changed them
    when; with --json the message."""
    if session.json:
        session.show([resource], lambda _: [])
        return
    for line in settings.lines(resource):
        print(line)
    if resource.HasField("update_time"):
        by = getattr(resource, "updated_by", "")
        print(f"changed {resource.update_time.ToJsonString()}" + (f" by {by}" if by else ""))


def webhooks(session: Session, args: argparse.Namespace) -> None:
    found = _listed(
        session, session.reports().ListWebhooks, reports_service_pb2.ListWebhooksRequest, "webhooks"
    )
    session.show(found, _webhook_columns)


def _webhook_columns(webhook: reports_resources.Webhook) -> list[str]:
    columns = [
        webhook.name,
        "disabled" if webhook.disabled else "enabled",
        webhook.url,
        ",".join(reports_resources.EventType.Name(t) for t in webhook.event_types),
    ]
    if webhook.display_name:
        columns.append(_quoted(webhook.display_name))
    if webhook.disabled_reason:  # the server turned it off: why
        columns.append(webhook.disabled_reason)
    return columns


def webhook_test(session: Session, args: argparse.Namespace) -> None:
    name = _named(session, "webhooks", args.webhook)
    sent = session.call(
        session.reports().TestWebhook, reports_service_pb2.TestWebhookRequest(name=name)
    )
    # The test was attempted once before the answer: its outcome is final.
    _shown_delivery(session, sent, wait=False)


def webhook_enabled(session: Session, args: argparse.Namespace) -> None:
    """`webhook enable` and `webhook disable`: the one setting changed, conditional on the
    webhook as read (a change made meanwhile is a conflict, not overwritten)."""
    stub = session.reports()
    updated = _updated_as_read(
        session,
        (stub.GetWebhook, reports_service_pb2.GetWebhookRequest),
        (stub.UpdateWebhook, reports_service_pb2.UpdateWebhookRequest, "webhook"),
        _named(session, "webhooks", args.webhook),
        lambda current: reports_resources.Webhook(
            name=current.name, etag=current.etag, disabled=args.action == "disable"
        ),
        ["disabled"],
    )
    session.show([updated], _webhook_columns)


def deliveries(session: Session, args: argparse.Namespace) -> None:
    terms = _equals((("state", args.state), ("event_type", args.event_type)), quoted=False)
    found = _listed(
        session,
        session.reports().ListWebhookDeliveries,
        reports_service_pb2.ListWebhookDeliveriesRequest,
        "webhook_deliveries",
        parent=_named(session, "webhooks", args.webhook),
        filter=" AND ".join(terms),
    )
    session.show(itertools.islice(found, args.limit), _delivery_columns)


def redeliver(session: Session, args: argparse.Namespace) -> None:
    queued = session.call(
        session.reports().RedeliverWebhookDelivery,
        reports_service_pb2.RedeliverWebhookDeliveryRequest(
            name=_delivery_name(session, args.delivery)
        ),
    )
    _shown_delivery(session, queued, wait=args.wait)


def _delivery_name(session: Session, given: str) -> str:
    """A delivery's name from its name (as `deliveries` lists it) or `WEBHOOK/DELIVERY`."""
    if given.startswith("customers/"):
        return given
    webhook, slash, delivery = given.partition("/")
    delivery = delivery.removeprefix("deliveries/")
    if not slash or not webhook or not delivery or "/" in delivery:
        raise CommandError(
            "USAGE",
            f"{given!r} names no delivery: give its name, as `upstream deliveries` lists it, "
            "or WEBHOOK/DELIVERY",
            2,
        )
    return f"{session.parent}/webhooks/{webhook}/deliveries/{delivery}"


def _shown_delivery(
    session: Session, delivery: reports_resources.WebhookDelivery, *, wait: bool
) -> None:
    _shown_when_done(
        session,
        delivery,
        (session.reports().GetWebhookDelivery, reports_service_pb2.GetWebhookDeliveryRequest),
        wait=wait,
        waiting=(reports_resources.WebhookDelivery.PENDING,),
        failed=reports_resources.WebhookDelivery.FAILED,
        columns=_delivery_columns,
        still="is still waiting to be sent",
        why=_delivery_failure,
    )


def _delivery_failure(delivery: reports_resources.WebhookDelivery) -> str:
    """Why a delivery's last attempt failed (`HTTP 503`, a connection refused, …), and what
    the receiver answered, if it did."""
    said = _delivery_outcome(delivery) or "not delivered"
    answered = delivery.attempts[-1].response_body.strip() if delivery.attempts else ""
    return f"{said}, answering {_quoted(answered[:200])}" if answered else said


def _delivery_outcome(delivery: reports_resources.WebhookDelivery) -> str:
    code = delivery.last_response_code
    return delivery.last_error or (f"HTTP {code}" if code else "")


def _delivery_columns(delivery: reports_resources.WebhookDelivery) -> list[str]:
    attempts = delivery.attempt_count
    columns = [
        delivery.name,
        reports_resources.WebhookDelivery.State.Name(delivery.state),
        reports_resources.EventType.Name(delivery.event_type),
        f"created {delivery.create_time.ToJsonString()}",
        f"{attempts} attempt{'' if attempts == 1 else 's'}",
    ]
    if outcome := _delivery_outcome(delivery):
        columns.append(outcome)
    if delivery.state == reports_resources.WebhookDelivery.RETRYING:
        columns.append(f"next attempt {delivery.next_attempt_time.ToJsonString()}")
    return columns


def webhook_create(session: Session, args: argparse.Namespace) -> None:
    made = session.call(
        session.reports().CreateWebhook,
        reports_service_pb2.CreateWebhookRequest(
            parent=session.parent,
            webhook=reports_resources.Webhook(
                url=args.url,
                event_types=[reports_resources.EventType.Value(t) for t in args.event_type],
                display_name=args.name or "",
            ),
        ),
    )
    _shown_with_secret(session, made)


def webhook_rotate_secret(session: Session, args: argparse.Namespace) -> None:
    rotated = session.call(
        session.reports().RotateWebhookSecret,
        reports_service_pb2.RotateWebhookSecretRequest(
            name=_named(session, "webhooks", args.webhook)
        ),
    )
    _shown_with_secret(session, rotated)


def _shown_with_secret(session: Session, webhook: reports_resources.Webhook) -> None:
    """A webhook just made or given a new secret, with that secret: the only time it is
    shown (a receiver checks deliveries' signatures with it)."""
    session.show([webhook], _webhook_columns)
    if session.json:
        return
    print(f"  signing secret: {webhook.signing_secret}")
    if webhook.HasField("previous_secret_expire_time"):
        until = webhook.previous_secret_expire_time.ToJsonString()
        print(f"  deliveries are signed with the previous secret as well until {until}")


def webhook_delete(session: Session, args: argparse.Namespace) -> None:
    _deleted(
        session,
        (session.reports().DeleteWebhook, reports_service_pb2.DeleteWebhookRequest),
        "webhooks",
        [args.webhook],
    )


def reports(session: Session, args: argparse.Namespace) -> None:
    terms = _equals((("kind", args.kind), ("state", args.state)), quoted=False)
    if args.schedule:
        terms += _equals((("schedule", _named(session, "reportSchedules", args.schedule)),))
    found = _listed(
        session,
        session.reports().ListReports,
        reports_service_pb2.ListReportsRequest,
        "reports",
        filter=" AND ".join(terms),
    )
    session.show(itertools.islice(found, args.limit), _report_columns)


def report_delete(session: Session, args: argparse.Namespace) -> None:
    _deleted(
        session,
        (session.reports().DeleteReport, reports_service_pb2.DeleteReportRequest),
        "reports",
        args.report_names,
    )


def schedules(session: Session, args: argparse.Namespace) -> None:
    found = _listed(
        session,
        session.reports().ListReportSchedules,
        reports_service_pb2.ListReportSchedulesRequest,
        "report_schedules",
    )
    session.show(found, _schedule_columns)


def _schedule_columns(schedule: reports_resources.ReportSchedule) -> list[str]:
    template = schedule.report_template
    covers = template.parameters
    columns = [
        schedule.name,
        "paused" if schedule.paused else "active",
        _quoted(schedule.display_name),
        f"{_quoted(schedule.cron)} {schedule.time_zone or 'UTC'}",
        f"{reports_resources.ReportKind.Name(template.kind)} "
        f"{reports_resources.ReportFormat.Name(template.format)}",
        f"the last {covers.lookback_days} days"
        if covers.HasField("lookback_days")
        else f"{_day_text(covers.date_range.start_date)} – {_day_text(covers.date_range.end_date)}",
    ]
    if covers.payers:
        columns.append("payers " + ",".join(covers.payers))
    if schedule.email_recipients:
        columns.append("to " + ",".join(schedule.email_recipients))
    if schedule.HasField("next_run_time"):
        columns.append(f"next {schedule.next_run_time.ToJsonString()}")
    if schedule.last_report:
        columns.append(f"last {schedule.last_report}")
    return columns


def schedule_create(session: Session, args: argparse.Namespace) -> None:
    template = reports_resources.ReportTemplate(
        kind=reports_resources.ReportKind.Value(args.kind),
        format=reports_resources.ReportFormat.Value(args.format),
    )
    template.parameters.lookback_days = args.lookback_days
    template.parameters.payers.extend(args.payer or [])
    made = session.call(
        session.reports().CreateReportSchedule,
        reports_service_pb2.CreateReportScheduleRequest(
            parent=session.parent,
            report_schedule=reports_resources.ReportSchedule(
                display_name=args.name,
                cron=args.cron,
                time_zone=args.time_zone or "",
                report_template=template,
                email_recipients=args.email or [],
            ),
        ),
    )
    session.show([made], _schedule_columns)


def schedule_paused(session: Session, args: argparse.Namespace) -> None:
    """`schedule pause` and `schedule resume`, conditional on the schedule as read."""
    stub = session.reports()
    updated = _updated_as_read(
        session,
        (stub.GetReportSchedule, reports_service_pb2.GetReportScheduleRequest),
        (
            stub.UpdateReportSchedule,
            reports_service_pb2.UpdateReportScheduleRequest,
            "report_schedule",
        ),
        _named(session, "reportSchedules", args.schedule),
        lambda current: reports_resources.ReportSchedule(
            name=current.name, etag=current.etag, paused=args.action == "pause"
        ),
        ["paused"],
    )
    session.show([updated], _schedule_columns)


def schedule_delete(session: Session, args: argparse.Namespace) -> None:
    _deleted(
        session,
        (session.reports().DeleteReportSchedule, reports_service_pb2.DeleteReportScheduleRequest),
        "reportSchedules",
        [args.schedule],
    )


def alerts(session: Session, args: argparse.Namespace) -> None:
    terms = _equals(
        (("state", args.state), ("channel", args.channel), ("kind", args.kind)), quoted=False
    )
    found = _listed(
        session,
        session.reports().ListAlerts,
        reports_service_pb2.ListAlertsRequest,
        "alerts",
        filter=" AND ".join(terms),
    )
    session.show(itertools.islice(found, args.limit), _alert_columns)


def _alert_columns(alert: reports_resources.Alert) -> list[str]:
    attempts = alert.attempt_count
    columns = [
        alert.name,
        reports_resources.Alert.State.Name(alert.state),
        reports_resources.Alert.Kind.Name(alert.kind),
        reports_resources.Alert.Channel.Name(alert.channel),
        "to " + ",".join(alert.recipients),
        f"created {alert.create_time.ToJsonString()}",
        f"{attempts} attempt{'' if attempts == 1 else 's'}",
    ]
    if alert.subject:
        columns.append(_quoted(alert.subject))
    if alert.last_error:
        columns.append(alert.last_error)
    if alert.HasField("next_attempt_time"):
        columns.append(f"next attempt {alert.next_attempt_time.ToJsonString()}")
    return columns


def _report_columns(report: reports_resources.Report) -> list[str]:
    columns = [
        report.name,
        reports_resources.Report.State.Name(report.state),
        reports_resources.ReportKind.Name(report.kind),
        reports_resources.ReportFormat.Name(report.format),
        f"created {report.create_time.ToJsonString()}",
    ]
    if report.schedule:
        columns.append(f"by {report.schedule}")
    if report.size_bytes:
        columns.append(f"{report.size_bytes} bytes")
    if report.error.message:  # a failed report says why
        columns.append(report.error.message)
    return columns


_EXTENSIONS = {
    "application/pdf": ".pdf",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/x-ndjson": ".jsonl",
    "application/jsonl": ".jsonl",
}


def report_download(session: Session, args: argparse.Namespace) -> None:
    name = _named(session, "reports", args.report)
    stub = session.reports()
    report = session.call(stub.GetReport, reports_service_pb2.GetReportRequest(name=name))
    extension = _EXTENSIONS.get(report.content_type.split(";")[0].strip(), "")
    target = Path(args.output or name.rsplit("/", 1)[1] + extension)
    partial = target.with_name(target.name + ".part")
    size = 0
    with partial.open("wb") as file:
        for body in stub.DownloadReport(
            reports_service_pb2.DownloadReportRequest(name=name),
            metadata=session.metadata,
            timeout=UPLOAD_SECONDS,
        ):
            file.write(body.data)
            size += len(body.data)
    # Only a whole file takes the name: a cut download leaves no half file behind it.
    partial.replace(target)
    if session.json:
        print(json.dumps({"report": name, "file": str(target), "sizeBytes": size}))
    else:
        print(f"{target}  {size} bytes")


# --- the command line ---------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="upstream", description=__doc__.split("\n\n")[0])
    top.add_argument("--token", help="bearer token (default: $UPSTREAM_TOKEN)")
    top.add_argument("--customer", help="customer id (default: the token's)")
    for service in DEFAULTS:
        top.add_argument(f"--{service}", help=f"{service} address (default {DEFAULTS[service]})")
    top.add_argument("--json", action="store_true", help="print proto3 JSON, a line an item")
    commands = top.add_subparsers(dest="command", required=True)

    command = commands.add_parser("upload", help="upload a claims file")
    command.add_argument("file")
    command.add_argument("--request-id", help="idempotency key (a retry makes no second upload)")
    command.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="keep nothing if any row is rejected (its rejections are still listed)",
    )
    command.add_argument(
        "--column",
        action="append",
        type=_column,
        metavar="NAME=HEADER",
        help="the CSV header holding a column, e.g. claim_id='Chart Ref' (repeat for more)",
    )
    command.set_defaults(run=upload)
    listed = commands.add_parser("uploads", help="list uploads (uploads delete: delete some)")
    listed.add_argument("--limit", type=_positive, help="at most this many")
    listed.set_defaults(run=uploads)
    command = listed.add_subparsers(dest="action").add_parser(
        "delete",
        help="delete uploads: the claims each last wrote and its rejected rows (detection "
        "runs again without them)",
    )
    command.add_argument("uploads", nargs="+", metavar="UPLOAD", help="upload id or name")
    command.set_defaults(run=delete_uploads)
    command = commands.add_parser(
        "rejections", help="an upload's rejected rows: where each is and why"
    )
    command.add_argument("upload", help="upload id or name")
    command.add_argument("--code", help="one reason, e.g. BAD_DATE")
    command.add_argument("--column", help="one column, e.g. decision_date")
    command.set_defaults(run=rejections)
    command = commands.add_parser("claims", help="list claims, newest decision first")
    command.add_argument("--payer", help="a canonical payer")
    command.add_argument("--status", choices=_names(ingest_resources.Claim.Status))
    command.add_argument("--denied", action="store_true", help="claims counted as denials")
    command.add_argument("--code-group", help="e.g. LABORATORY")
    command.add_argument("--procedure-code", help="claims with this code, e.g. 99213")
    command.add_argument("--claim-id", help="the id the files give it")
    command.add_argument("--upload", help="claims an upload wrote (upload id or name)")
    command.add_argument("--decided-from", type=_day, metavar="YYYY-MM-DD")
    command.add_argument("--decided-to", type=_day, metavar="YYYY-MM-DD")
    command.add_argument(
        "--filter",
        help="more terms in AIP-160 over payer, status, denied, code_group, procedure_codes, "
        "decision_date, claim_id, upload",
    )
    command.add_argument(
        "--order-by", help="decision_date, update_time or billed_amount, each maybe ' desc'"
    )
    command.add_argument("--limit", type=_positive, help="at most this many")
    command.set_defaults(run=claims)
    command = commands.add_parser("events", help="list drift events")
    command.add_argument("--payer")
    command.add_argument("--code-group")
    command.add_argument("--metric", choices=_names(drift_resources.Metric))
    command.add_argument("--state", choices=_names(drift_resources.DriftEvent.State))
    command.add_argument(
        "--severity", choices=_names(drift_resources.DriftEvent.Severity), help="at least"
    )
    command.add_argument("--active", action="store_true", help="only ongoing episodes")
    command.add_argument("--limit", type=_positive, help="at most this many")
    command.set_defaults(run=events)
    command = commands.add_parser(
        "event", help="one drift event whole: its evidence, dollars at stake and triage"
    )
    command.add_argument("event", help="event id or name")
    command.set_defaults(run=event)
    command = commands.add_parser("triage", help="acknowledge, resolve or dismiss an event")
    command.add_argument("event", help="event id or name")
    command.add_argument("--state", required=True, choices=_names(drift_resources.DriftEvent.State))
    command.add_argument("--note")
    command.set_defaults(run=triage)
    command = commands.add_parser(
        "run", help="start a detection run (as of the latest decision date in the data)"
    )
    command.add_argument(
        "--as-of", type=_date, metavar="YYYY-MM-DD", help="the last day of its current window"
    )
    command.add_argument("--request-id", help="idempotency key (a retry starts no second run)")
    command.add_argument("--wait", action="store_true", help="until it has finished")
    command.set_defaults(run=run_detection)
    DRIFT_CONFIG.add_commands(
        commands,
        "config",
        "the drift settings (config set: change them)",
        "false_discovery_rate=0.05",
        "enabled_metrics takes several, separated by commas",
    )
    command = commands.add_parser("runs", help="list detection runs, newest first")
    command.add_argument("--state", choices=_names(drift_resources.DriftRun.State))
    command.add_argument("--trigger", choices=_names(drift_resources.DriftRun.Trigger))
    command.add_argument("--upload", help="the run an upload started (upload id or name)")
    command.add_argument("--limit", type=_positive, help="at most this many")
    command.set_defaults(run=runs)
    commands.add_parser("payers", help="list payers").set_defaults(run=payers)
    command = commands.add_parser(
        "summaries",
        help="each payer's current window against its baseline: claims, denials, days to "
        "decision, paid/allowed, open events",
    )
    command.add_argument("--payer", help="one payer")
    command.add_argument("--with-events", action="store_true", help="payers with open events")
    command.add_argument(
        "--order-by",
        help="payer, open_event_count, current.claims, current.denial_rate or "
        "current.denied_billed_amount, each maybe ' desc' (current.claims desc)",
    )
    command.add_argument("--limit", type=_positive, help="at most this many")
    command.set_defaults(run=summaries)
    commands.add_parser("mappings", help="list payer mappings").set_defaults(run=mappings)
    command = commands.add_parser(
        "map", help="name a raw payer name's canonical payer (its claims move to it)"
    )
    command.add_argument("raw_name", help="the payer name as files give it")
    command.add_argument("canonical", help="the payer it is, e.g. 'Self Pay'")
    command.add_argument("--raw-id", help="only where files also give this payer id")
    command.set_defaults(run=map_payer)
    command = commands.add_parser("unmap", help="delete a payer mapping (its claims move back)")
    command.add_argument("mapping", help="mapping id or name")
    command.set_defaults(run=unmap_payer)
    command = commands.add_parser("audit", help="who changed what (admins)")
    command.add_argument(
        "--service", action="append", choices=list(DEFAULTS), help="one log (repeat for more)"
    )
    command.add_argument("--actor", help="a token subject, or service:<name>")
    command.add_argument("--resource", help="a resource name")
    command.add_argument("--field", help="entries that changed this stored field")
    command.add_argument("--since", type=_date, help="YYYY-MM-DD")
    command.set_defaults(run=audit)

    commands.add_parser("webhooks", help="list webhooks").set_defaults(run=webhooks)
    webhook = commands.add_parser(
        "webhook", help="create, test, enable, disable or delete a webhook, or rotate its secret"
    )
    actions = webhook.add_subparsers(dest="action", required=True)
    command = actions.add_parser(
        "create", help="send events to a URL (its signing secret is shown once)"
    )
    command.add_argument("url", help="an https URL that receives the events")
    command.add_argument(
        "--event-type",
        action="append",
        required=True,
        choices=_names(reports_resources.EventType),
        help="an event it receives (repeat for more)",
    )
    command.add_argument("--name", help="what people call it")
    command.set_defaults(run=webhook_create)
    command = actions.add_parser(
        "rotate-secret",
        help="a new signing secret (shown once); the old one also signs for a while",
    )
    command.add_argument("webhook", help="webhook id or name")
    command.set_defaults(run=webhook_rotate_secret)
    command = actions.add_parser("delete", help="delete it and its deliveries")
    command.add_argument("webhook", help="webhook id or name")
    command.set_defaults(run=webhook_delete)
    command = actions.add_parser(
        "test", help="send it a signed TEST event now and show how it went"
    )
    command.add_argument("webhook", help="webhook id or name")
    command.set_defaults(run=webhook_test)
    for action, said in (
        ("enable", "send it events again (its failed deliveries can then be redelivered)"),
        ("disable", "send it nothing until enabled again"),
    ):
        command = actions.add_parser(action, help=said)
        command.add_argument("webhook", help="webhook id or name")
        command.set_defaults(run=webhook_enabled)
    command = commands.add_parser("deliveries", help="a webhook's deliveries, newest first")
    command.add_argument("webhook", help="webhook id or name")
    command.add_argument("--state", choices=_names(reports_resources.WebhookDelivery.State))
    command.add_argument("--event-type", choices=_names(reports_resources.EventType))
    command.add_argument("--limit", type=_positive, help="at most this many")
    command.set_defaults(run=deliveries)
    command = commands.add_parser(
        "redeliver", help="send a delivery once more (one that succeeded or failed)"
    )
    command.add_argument(
        "delivery", help="its name, as `upstream deliveries` lists it, or WEBHOOK/DELIVERY"
    )
    command.add_argument("--wait", action="store_true", help="until it has been sent")
    command.set_defaults(run=redeliver)

    command = commands.add_parser("reports", help="list reports, newest first")
    command.add_argument("--kind", choices=_names(reports_resources.ReportKind))
    command.add_argument("--state", choices=_names(reports_resources.Report.State))
    command.add_argument("--schedule", help="reports a schedule made (schedule id or name)")
    command.add_argument("--limit", type=_positive, help="at most this many")
    command.set_defaults(run=reports)
    report = commands.add_parser("report", help="create, download or delete a report")
    actions = report.add_subparsers(dest="action", required=True)
    command = actions.add_parser("create")
    command.add_argument("--kind", required=True, choices=_names(reports_resources.ReportKind))
    command.add_argument(
        "--format",
        required=True,
        choices=_names(reports_resources.ReportFormat),
        help="JSON is JSON Lines for exports",
    )
    command.add_argument("--start", required=True, type=_date, help="YYYY-MM-DD")
    command.add_argument("--end", required=True, type=_date, help="YYYY-MM-DD")
    command.add_argument("--payer", action="append", help="a payer (repeat for more)")
    command.add_argument("--request-id")
    command.add_argument("--wait", action="store_true", help="until built, then print it")
    command.set_defaults(run=report_create)
    command = actions.add_parser("download")
    command.add_argument("report", help="report id or name")
    command.add_argument("-o", "--output", help="file (default: the report's file name)")
    command.set_defaults(run=report_download)
    command = actions.add_parser("delete", help="delete reports and their files")
    # Not `reports`: that is the reports service's address.
    command.add_argument("report_names", nargs="+", metavar="REPORT", help="report id or name")
    command.set_defaults(run=report_delete)

    commands.add_parser("schedules", help="list report schedules").set_defaults(run=schedules)
    schedule = commands.add_parser(
        "schedule", help="create, pause, resume or delete a report schedule"
    )
    actions = schedule.add_subparsers(dest="action", required=True)
    command = actions.add_parser("create", help="a report made whenever a cron expression says")
    command.add_argument("--name", required=True, help="what people call it")
    command.add_argument("--cron", required=True, help="e.g. '0 7 * * MON' (07:00 on Mondays)")
    command.add_argument("--time-zone", help="the cron's time zone, e.g. America/Chicago (UTC)")
    command.add_argument("--kind", required=True, choices=_names(reports_resources.ReportKind))
    command.add_argument("--format", required=True, choices=_names(reports_resources.ReportFormat))
    command.add_argument(
        "--lookback-days",
        required=True,
        type=_positive,
        help="each report covers the N days before the day it is made",
    )
    command.add_argument("--payer", action="append", help="a payer (repeat for more)")
    command.add_argument(
        "--email", action="append", help="told when each report is ready (repeat for more)"
    )
    command.set_defaults(run=schedule_create)
    for action, said in (
        ("pause", "make no reports until resumed"),
        ("resume", "make reports again, from the next time the cron says"),
    ):
        command = actions.add_parser(action, help=said)
        command.add_argument("schedule", help="schedule id or name")
        command.set_defaults(run=schedule_paused)
    command = actions.add_parser("delete", help="delete it (the reports it made stay)")
    command.add_argument("schedule", help="schedule id or name")
    command.set_defaults(run=schedule_delete)

    command = commands.add_parser("alerts", help="email and Slack alerts sent, newest first")
    command.add_argument("--state", choices=_names(reports_resources.Alert.State))
    command.add_argument("--channel", choices=_names(reports_resources.Alert.Channel))
    command.add_argument("--kind", choices=_names(reports_resources.Alert.Kind))
    command.add_argument("--limit", type=_positive, help="at most this many")
    command.set_defaults(run=alerts)
    ALERT_POLICY.add_commands(
        commands,
        "alert-policy",
        "who is alerted of what, and how (alert-policy set: change it)",
        "minimum_severity=HIGH",
        "email_recipients takes several, separated by commas; suppression_window a duration "
        "(90s, 15m, 2h, 1d)",
    )
    return top


def _names(enum: Any) -> list[str]:
    """An enum's value names but for its zero (`…_UNSPECIFIED`)."""
    return [name for name, number in enum.items() if number]


def _fail(status: str, message: str, exit_code: int) -> NoReturn:
    print(f"upstream: {status}: {message}", file=sys.stderr)
    sys.exit(exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        session = Session(args)
    except CommandError as failure:
        _fail(failure.status, str(failure), failure.exit_code)
    try:
        args.run(session, args)
    except CommandError as failure:
        _fail(failure.status, str(failure), failure.exit_code)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        _fail(code.name, _said(error), EXIT_CODES.get(code, 1))
    except KeyboardInterrupt:
        _fail("CANCELLED", "interrupted", 130)
    except BrokenPipeError:
        # The reader went away (`upstream events | head`): no traceback, the status a
        # process killed by SIGPIPE has, and nothing more written to the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

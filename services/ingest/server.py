"""IngestService over gRPC: a thin adapter between the contract and the domain and store."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import numpy as np
from google.protobuf import empty_pb2
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import errors, names, ordering
from runtime.audit import AuditLog, AuditMethods
from runtime.auth import require_identity
from runtime.db import BlockingReads
from runtime.messages import (
    date_message,
    money_message,
    python_date,
    set_fields,
    timestamp_message,
)
from runtime.notified_cache import ChangeListener
from runtime.outbox import OutboxEvent, outbox_relay
from runtime.retention import Purge, RetentionJob, audit_purge, claims_cutoff
from runtime.server import ServiceDefinition, running_task
from runtime.settings import Settings
from runtime.standard_methods import (
    customer_of,
    get_resource,
    list_resources,
    sign_page_tokens_with,
)
from runtime.streams import sent_to_the_end
from runtime.updates import mask_paths
from services.ingest.claim_writes import UPLOAD_COMPLETED
from services.ingest.copy_lines import display_name, name_key
from services.ingest.csv_claims import COLUMN_ALIASES
from services.ingest.daily_statistics import DAY_AMOUNTS, PACKED_DAY_AMOUNTS
from services.ingest.intake import (
    UploadIdTakenError,
    UploadIntake,
    UploadRejectedError,
    UploadRequest,
)
from services.ingest.months import Series, span_starts
from services.ingest.store import (
    IngestStore,
    MappingChange,
    MappingConflictError,
    claims,
    mapping_etag,
    payers,
    uploads,
)
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc
from upstream.drift.v1 import resources_pb2 as drift_resources_pb2
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

if TYPE_CHECKING:
    from services.ingest.claims_arrow import ArrowClaims

UPLOAD_NAME = "customers/{customer}/uploads/{upload}"
CLAIM_NAME = "customers/{customer}/claims/{claim}"
PAYER_NAME = "customers/{customer}/payers/{payer}"
MAPPING_NAME = "customers/{customer}/payerMappings/{payer_mapping}"
DATA_STATE_NAME = "customers/{customer}/dataState"
MAX_REQUEST_ID = 128
MAX_FILE_NAME = 255
STATS_PER_MESSAGE = 1000
CLAIMS_PER_MESSAGE = 1000
# Series per stream message: gathered up to about this many bytes (gRPC allows 4 MiB).
SERIES_BYTES_PER_MESSAGE = 1 << 20
# Connections series are read on (see IngestStore.stream_daily_stat_series), beside the
# pool's: a drift run reads one at a time; the others serve reports and dashboards meanwhile.
SERIES_READ_CONNECTIONS = 3
# Histogram and CARC entries in one series message (about 1.5 MB at most).
MAX_SERIES_ENTRIES = 150_000
CLAIM_ORDERS = {
    # A pending claim has no decision date: it sorts as the lowest.
    "decision_date": ordering.date_key(claims.c.decision_date),
    "update_time": ordering.time_key(claims.c.update_time),
    "billed_amount": ordering.number_key(claims.c.billed_cents),
}
UPLOAD_ORDERS = {
    "create_time": ordering.time_key(uploads.c.create_time),
    "rows_read": ordering.number_key(uploads.c.rows_read),
}
PAYER_ORDERS = {
    "claim_count": ordering.number_key(payers.c.claim_count),
    "raw_payer_name": ordering.text_key(payers.c.raw_name),
    "last_seen_time": ordering.time_key(payers.c.last_seen_time),
}


def upload_message(row: Row) -> resources_pb2.Upload:
    upload = resources_pb2.Upload(
        name=UPLOAD_NAME.format(customer=row.customer_id, upload=row.upload_id),
        state=resources_pb2.Upload.State.Value(row.state),
        format=resources_pb2.Upload.Format.Value(row.format),
        mode=resources_pb2.Upload.Mode.Value(row.mode),
        file_name=row.file_name or "",
        sha256=row.sha256 or "",
        size_bytes=row.size_bytes,
        rows_read=row.rows_read,
        rows_accepted=row.rows_accepted,
        claims_accepted=row.claims_accepted,
        rows_rejected=row.rows_rejected,
        rows_updated=row.rows_updated,
        payers=row.payers,
        creator=row.creator,
        request_id=row.request_id or "",
        column_map=row.column_map or {},
        warnings=[
            resources_pb2.UploadWarning(
                code=w.get("code", ""),
                message=w.get("message", ""),
                line_number=w.get("lineNumber", 0) if row.format == "CSV" else 0,
                segment_number=w.get("lineNumber", 0) if row.format == "X12_835" else 0,
            )
            for w in row.warnings
        ],
    )
    if row.error:
        upload.error.code = row.error.get("code", 3)
        upload.error.message = row.error.get("message", "")
    return set_fields(
        upload,
        first_decision_date=date_message(row.first_decision_date),
        last_decision_date=date_message(row.last_decision_date),
        create_time=timestamp_message(row.create_time),
        finish_time=timestamp_message(row.finish_time),
    )


def claim_message(row: Row) -> resources_pb2.Claim:
    # Built in one constructor call (an unset field passed as None): exports convert
    # millions of claims, and copying field by field was most of the cost.
    return resources_pb2.Claim(
        name=CLAIM_NAME.format(customer=row.customer_id, claim=row.claim_uid),
        claim_id=row.claim_id,
        payer=row.payer,
        payer_raw_name=row.payer_raw_name,
        payer_raw_id=row.payer_raw_id,
        procedure_codes=row.procedure_codes,
        code_group=row.code_group,
        status=resources_pb2.Claim.Status.Value(row.status),
        denied=row.denied,
        partially_denied=row.partially_denied,
        payer_claim_control_number=row.payer_claim_control_number,
        upload=UPLOAD_NAME.format(customer=row.customer_id, upload=row.upload_id),
        adjustments=[
            resources_pb2.Adjustment(
                group_code=a["group"],
                reason_code=a["reason"],
                # Left out where 0 (`copy_lines._adjustments_json`).
                amount=money_message(a.get("cents", 0)),
                line_number=a.get("line", 0),
            )
            for a in row.adjustments
        ],
        service_date=date_message(row.service_date),
        submitted_date=date_message(row.submitted_date),
        decision_date=date_message(row.decision_date),
        billed_amount=money_message(row.billed_cents),
        allowed_amount=money_message(row.allowed_cents),
        paid_amount=money_message(row.paid_cents),
        patient_responsibility=money_message(row.patient_responsibility_cents),
        update_time=timestamp_message(row.update_time),
    )


def daily_stat_message(row: Row) -> resources_pb2.DailyStat:
    # Built in one constructor call: a year of a large customer is ~100k of these.
    return resources_pb2.DailyStat(
        payer=row.payer,
        code_group=row.code_group,
        decision_date=date_message(row.decision_date),
        decided_claims=row.decided_claims,
        denied_claims=row.denied_claims,
        partially_denied_claims=row.partially_denied_claims,
        decision_days_histogram={int(k): v for k, v in row.decision_days.items()},
        billed_amount=money_message(row.billed_cents),
        allowed_amount=money_message(row.allowed_cents),
        paid_amount=money_message(row.paid_cents),
        denied_billed_amount=money_message(row.denied_billed_cents),
        carc_counts=row.carc_counts,
        patient_responsibility_amount=money_message(row.patient_responsibility_cents),
    )


def _date_range(
    request: ingest_service_pb2.StreamClaimsRequest
    | ingest_service_pb2.StreamDailyStatsRequest
    | ingest_service_pb2.StreamDailyStatSeriesRequest,
) -> tuple[dt.date, dt.date]:
    start = python_date(request.start_date, "start_date")
    end = python_date(request.end_date, "end_date")
    if end < start:
        raise errors.invalid_argument(
            "end_date is before start_date",
            errors.FieldViolation("end_date", "must not be before start_date"),
        )
    return start, end


MAX_ENTRY_SPAN_STARTS = 1000


def _span_starts(
    request: ingest_service_pb2.StreamDailyStatSeriesRequest, start: dt.date, end: dt.date
) -> np.ndarray | None:
    """The request's `entry_span_starts` inside the range, as ascending days since
    1970-01-01; None when it asks for none (every day its own span)."""
    if not request.entry_span_starts:
        return None
    if len(request.entry_span_starts) > MAX_ENTRY_SPAN_STARTS:
        raise errors.invalid_argument(
            f"{len(request.entry_span_starts)} entry_span_starts, more than "
            f"{MAX_ENTRY_SPAN_STARTS}",
            errors.FieldViolation(
                "entry_span_starts", f"at most {MAX_ENTRY_SPAN_STARTS} dates are allowed"
            ),
        )
    return span_starts(
        [
            python_date(day, f"entry_span_starts[{i}]")
            for i, day in enumerate(request.entry_span_starts)
        ],
        start,
        end,
    )


class ArrowOnDemand:
    """The Arrow reader of claims (`claims_arrow.ArrowClaims`), made on the first Arrow
    export: pyarrow and the ADBC driver add about 50 MB to a process's resident memory, which
    a process that never serves one does not carry. Loaded in a worker thread, so the event
    loop keeps serving meanwhile."""

    def __init__(self, database_url: str, application_name: str) -> None:
        self._database_url = database_url
        self._application_name = application_name
        self._claims: ArrowClaims | None = None

    async def get(self) -> ArrowClaims:
        if self._claims is None:
            self._claims = await asyncio.to_thread(self._make)
        return self._claims

    def _make(self) -> ArrowClaims:
        from services.ingest.claims_arrow import ArrowClaims

        return ArrowClaims(self._database_url, self._application_name)


class IngestServicer(AuditMethods, ingest_service_pb2_grpc.IngestServiceServicer):
    def __init__(self, store: IngestStore, intake: UploadIntake, arrow: ArrowOnDemand) -> None:
        self._store = store
        self._intake = intake
        self._arrow = arrow

    # --- uploads ---------------------------------------------------------------------------

    async def CreateUpload(
        self,
        request_iterator: AsyncIterator[ingest_service_pb2.CreateUploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.Upload:
        # A stream cut short is not a file: it raises here rather than end like one.
        requests = aiter(sent_to_the_end(aiter(request_iterator), context))
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            raise errors.invalid_argument(
                "the upload stream is empty", errors.FieldViolation("parent", "required")
            ) from None
        customer = customer_of(first.parent)
        _check_upload_metadata(first)
        metadata = first.upload

        async def chunks() -> AsyncIterator[bytes]:
            if first.http_body.data:
                yield first.http_body.data
            async for request in requests:
                if request.http_body.data:
                    yield request.http_body.data

        upload = UploadRequest(
            customer=customer,
            creator=require_identity().subject,
            file_name=metadata.file_name,
            request_id=first.request_id or None,
            declared_format=(
                resources_pb2.Upload.Format.Name(metadata.format) if metadata.format else ""
            ),
            column_map=dict(metadata.column_map),
            mode=resources_pb2.Upload.Mode.Name(metadata.mode or resources_pb2.Upload.ACCEPT_VALID),
            upload_id=first.upload_id or None,
        )
        try:
            row = await self._intake.create(upload, chunks())
        except UploadIdTakenError:
            name = UPLOAD_NAME.format(customer=customer, upload=first.upload_id)
            raise errors.ApiError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"{name} already exists: choose another upload_id",
                reason="ALREADY_EXISTS",
                metadata={"resource": name},
            ) from None
        except UploadRejectedError as rejected:
            raise errors.ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{metadata.file_name or 'the file'}: {rejected}",
                reason="UPLOAD_REJECTED",
                metadata={
                    "upload": UPLOAD_NAME.format(customer=customer, upload=rejected.upload_id),
                    # What was wrong: the file's problem (MISSING_COLUMN, NOT_CLAIMS_FILE, …)
                    # or ROWS_REJECTED (see the upload's rejections).
                    "problem": rejected.code,
                },
                violations=[
                    errors.FieldViolation(
                        f"line {p.line_number}" + (f" {p.column}" if p.column else ""), p.reason
                    )
                    for p in rejected.problems
                ]
                # A file refused as a whole (empty, binary, no header) has no row to name.
                or [errors.FieldViolation("http_body", str(rejected))],
            ) from None
        return upload_message(row)

    async def GetUpload(
        self, request: ingest_service_pb2.GetUploadRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Upload:
        return await get_resource(request.name, UPLOAD_NAME, self._upload_or_progress, lambda u: u)

    async def GetDataState(
        self, request: ingest_service_pb2.GetDataStateRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.DataState:
        customer = names.parse(request.name, DATA_STATE_NAME)["customer"]
        return data_state_message(customer, await self._store.data_state(customer))

    async def _upload_or_progress(
        self, customer: str, upload_id: str
    ) -> resources_pb2.Upload | None:
        """The stored upload, else the one being read under this id (PROCESSING)."""
        row = await self._store.get_upload(customer, upload_id)
        if row is not None:
            return upload_message(row)
        reading = await self._store.get_progress(customer, upload_id)
        if reading is None:
            return None
        upload = resources_pb2.Upload(
            name=UPLOAD_NAME.format(customer=customer, upload=upload_id),
            state=resources_pb2.Upload.PROCESSING,
            file_name=reading.file_name,
            creator=reading.creator,
            size_bytes=reading.size_bytes,
            rows_read=reading.rows_read,
        )
        upload.create_time.FromDatetime(reading.create_time)
        return upload

    async def ListUploads(
        self, request: ingest_service_pb2.ListUploadsRequest, context: grpc.aio.ServicerContext
    ) -> ingest_service_pb2.ListUploadsResponse:
        order = ordering.parse_order_by(request.order_by, UPLOAD_ORDERS, "create_time desc")
        return await list_resources(
            request,
            ingest_service_pb2.ListUploadsResponse,
            "uploads",
            lambda customer, filter_text, limit, after: self._store.list_uploads(
                customer, filter_text, order, limit, after
            ),
            lambda last: ordering.position(order, last, "upload_id"),
            upload_message,
        )

    async def DeleteUpload(
        self, request: ingest_service_pb2.DeleteUploadRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        parsed = names.parse(request.name, UPLOAD_NAME)
        deleted = await self._store.delete_upload(parsed["customer"], parsed["upload"])
        if not deleted:
            raise errors.not_found(request.name)
        self._intake.outbox_written.set()  # the outbox relay asks drift for a run now
        return empty_pb2.Empty()

    async def ListUploadRejections(
        self,
        request: ingest_service_pb2.ListUploadRejectionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> ingest_service_pb2.ListUploadRejectionsResponse:
        await get_resource(
            request.parent, UPLOAD_NAME, self._store.get_upload, lambda row: row, field="parent"
        )
        return await list_resources(
            request,
            ingest_service_pb2.ListUploadRejectionsResponse,
            "upload_rejections",
            self._store.list_rejections,
            lambda last: [last.seq],
            lambda row: resources_pb2.UploadRejection(
                name=f"{request.parent}/rejections/{row.seq}",
                line_number=row.line_number if not row.segment_number else 0,
                segment_number=row.segment_number,
                column=row.column_name or "",
                raw_value=(row.raw_value or "")[:100],
                reason=row.reason,
                code=row.code,
            ),
            parent=UPLOAD_NAME,
            key_length=1,
        )

    # --- claims -----------------------------------------------------------------------------

    async def GetClaim(
        self, request: ingest_service_pb2.GetClaimRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Claim:
        return await get_resource(request.name, CLAIM_NAME, self._store.get_claim, claim_message)

    async def ListClaims(
        self, request: ingest_service_pb2.ListClaimsRequest, context: grpc.aio.ServicerContext
    ) -> ingest_service_pb2.ListClaimsResponse:
        order = ordering.parse_order_by(request.order_by, CLAIM_ORDERS, "decision_date desc")
        return await list_resources(
            request,
            ingest_service_pb2.ListClaimsResponse,
            "claims",
            lambda customer, filter_text, limit, after: self._store.list_claims(
                customer, _upload_filter(filter_text), order, limit, after
            ),
            lambda last: ordering.position(order, last, "claim_uid"),
            claim_message,
        )

    async def StreamClaims(
        self, request: ingest_service_pb2.StreamClaimsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_service_pb2.StreamClaimsResponse]:
        customer = customer_of(request.parent)
        start, end = _date_range(request)
        if request.encoding == ingest_service_pb2.StreamClaimsRequest.ARROW:
            arrow = await self._arrow.get()
            async for batch in arrow.stream(customer, request.payers, start, end):
                yield ingest_service_pb2.StreamClaimsResponse(arrow_record_batch=batch)
            return
        async for rows in self._store.stream_claims(customer, request.payers, start, end):
            for first in range(0, len(rows), CLAIMS_PER_MESSAGE):
                yield ingest_service_pb2.StreamClaimsResponse(
                    claims=[claim_message(row) for row in rows[first : first + CLAIMS_PER_MESSAGE]]
                )

    async def ListPayers(
        self, request: ingest_service_pb2.ListPayersRequest, context: grpc.aio.ServicerContext
    ) -> ingest_service_pb2.ListPayersResponse:
        order = ordering.parse_order_by(request.order_by, PAYER_ORDERS, "claim_count desc")
        return await list_resources(
            request,
            ingest_service_pb2.ListPayersResponse,
            "payers",
            lambda customer, filter_text, limit, after: self._store.list_payers(
                customer, filter_text, order, limit, after
            ),
            lambda last: ordering.position(order, last, "payer_uid"),
            payer_message,
        )

    async def CreatePayerMapping(
        self,
        request: ingest_service_pb2.CreatePayerMappingRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.PayerMapping:
        customer = customer_of(request.parent)
        mapping = request.payer_mapping
        _check_mapping(mapping, creating=True)
        change = MappingChange(
            "pm_" + secrets.token_hex(6),
            create={
                "name_key": name_key(mapping.raw_payer_name),
                "raw_payer_name": display_name(mapping.raw_payer_name),
                "raw_payer_id": mapping.raw_payer_id.strip(),
                "canonical_payer": display_name(mapping.canonical_payer),
            },
        )
        return mapping_message(await self._change_mapping(customer, change))

    async def GetPayerMapping(
        self,
        request: ingest_service_pb2.GetPayerMappingRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.PayerMapping:
        return await get_resource(
            request.name, MAPPING_NAME, self._store.get_mapping, mapping_message
        )

    async def ListPayerMappings(
        self,
        request: ingest_service_pb2.ListPayerMappingsRequest,
        context: grpc.aio.ServicerContext,
    ) -> ingest_service_pb2.ListPayerMappingsResponse:
        return await list_resources(
            request,
            ingest_service_pb2.ListPayerMappingsResponse,
            "payer_mappings",
            self._store.list_mappings,
            lambda last: [last.mapping_id],
            mapping_message,
            key_length=1,
        )

    async def UpdatePayerMapping(
        self,
        request: ingest_service_pb2.UpdatePayerMappingRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.PayerMapping:
        mapping = request.payer_mapping
        parsed = names.parse(mapping.name, MAPPING_NAME, field="payer_mapping.name")
        paths = mask_paths(request.update_mask, mapping, ("canonical_payer",))
        if "canonical_payer" not in paths:
            raise errors.invalid_argument(
                "nothing to update: only canonical_payer can change",
                errors.FieldViolation("update_mask", "must name canonical_payer"),
            )
        _check_mapping(mapping, creating=False)
        change = MappingChange(
            parsed["payer_mapping"],
            canonical_payer=display_name(mapping.canonical_payer),
            etag=mapping.etag,
        )
        return mapping_message(await self._change_mapping(parsed["customer"], change, mapping.name))

    async def DeletePayerMapping(
        self,
        request: ingest_service_pb2.DeletePayerMappingRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        parsed = names.parse(request.name, MAPPING_NAME)
        change = MappingChange(parsed["payer_mapping"], delete=True, etag=request.etag)
        await self._change_mapping(parsed["customer"], change, request.name)
        return empty_pb2.Empty()

    async def _change_mapping(self, customer: str, change: MappingChange, name: str = "") -> Row:
        try:
            row = await self._store.change_mapping(customer, change)
        except LookupError:
            raise errors.not_found(name) from None
        except MappingConflictError as conflict:
            code = grpc.StatusCode.ABORTED if change.etag else grpc.StatusCode.ALREADY_EXISTS
            raise errors.ApiError(
                code, str(conflict), reason="ETAG_MISMATCH" if change.etag else "ALREADY_EXISTS"
            ) from None
        self._intake.outbox_written.set()  # any run it asked for is asked now
        return row  # type: ignore[return-value]

    async def StreamDailyStats(
        self,
        request: ingest_service_pb2.StreamDailyStatsRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ingest_service_pb2.StreamDailyStatsResponse]:
        customer = customer_of(request.parent)
        start, end = _date_range(request)
        batch = ingest_service_pb2.StreamDailyStatsResponse()
        async for row in self._store.stream_daily_stats(customer, request.payers, start, end):
            batch.daily_stats.append(daily_stat_message(row))
            if len(batch.daily_stats) == STATS_PER_MESSAGE:
                yield batch
                batch = ingest_service_pb2.StreamDailyStatsResponse()
        if batch.daily_stats:
            yield batch

    async def StreamDailyStatSeries(
        self,
        request: ingest_service_pb2.StreamDailyStatSeriesRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ingest_service_pb2.StreamDailyStatSeriesResponse]:
        customer = customer_of(request.parent)
        start, end = _date_range(request)
        batch = ingest_service_pb2.StreamDailyStatSeriesResponse()
        size = 0
        packed = request.encoding == ingest_service_pb2.StreamDailyStatSeriesRequest.PACKED
        spans = _span_starts(request, start, end)
        async for cell in self._store.stream_daily_stat_series(
            customer, request.payers, start, end, spans
        ):
            for piece in series_pieces(cell):
                message = _series_message(piece, packed)
                batch.daily_stat_series.append(message)
                # A packed message's size is its arrays' (protobuf's ByteSize would encode it).
                size += _packed_bytes(piece) if packed else message.ByteSize()
                if size >= SERIES_BYTES_PER_MESSAGE:
                    yield batch
                    batch = ingest_service_pb2.StreamDailyStatSeriesResponse()
                    size = 0
        if batch.daily_stat_series:
            yield batch


def daily_stat_series_messages(
    series: Series, max_entries: int = MAX_SERIES_ENTRIES, *, packed: bool = False
) -> list[resources_pb2.DailyStatSeries]:
    """The message(s) of one payer × code group, its numbers in repeated fields or, when
    `packed`, as little-endian arrays: a series with more histogram and CARC entries than
    `max_entries` is cut into runs of whole days, each its own message (gRPC refuses
    messages over 4 MiB)."""
    return [_series_message(piece, packed) for piece in series_pieces(series, max_entries)]


def series_pieces(series: Series, max_entries: int = MAX_SERIES_ENTRIES) -> list[Series]:
    """`series` cut into runs of whole days of at most `max_entries` histogram and CARC
    entries each (a day with more is a piece of its own); whole if it has no more."""
    if len(series.histogram) + len(series.carc) <= max_entries:
        return [series]
    per_day = np.bincount(series.histogram[:, 0], minlength=len(series.dates)) + np.bincount(
        series.carc[:, 0], minlength=len(series.dates)
    )
    # A new piece starts at each day whose entries would take its piece over the limit.
    starts, taken = [0], 0
    for day, entries in enumerate(per_day.tolist()):
        if taken + entries > max_entries and day > starts[-1]:
            starts.append(day)
            taken = 0
        taken += entries
    return [
        series.days(first, stop)
        for first, stop in zip(starts, [*starts[1:], len(series.dates)], strict=True)
    ]


def _packed_bytes(series: Series) -> int:
    """The bytes of `series`' arrays in a PACKED message (see `_series_message`)."""
    return (
        4 * (series.dates.size + series.histogram.size + series.carc.size)
        + 8 * series.amounts.size
        + 4 * series.pending.started.size
        + 8 * series.pending.claims.size
    )


def _series_message(series: Series, packed: bool) -> resources_pb2.DailyStatSeries:
    message = resources_pb2.DailyStatSeries(
        payer=series.payer, code_group=series.code_group, carc_codes=series.carc_codes
    )
    if packed:
        numbers = message.packed
        numbers.decision_dates = series.dates.astype("<i4", copy=False).tobytes()
        numbers.day_amounts = (
            series.amounts[:, : len(PACKED_DAY_AMOUNTS)].astype("<i8", copy=False).tobytes()
        )
        # The amounts after the packed ones: the patients' share.
        numbers.patient_responsibility_cents = (
            series.amounts[:, len(PACKED_DAY_AMOUNTS) :].astype("<i8", copy=False).tobytes()
        )
        numbers.histogram = series.histogram.astype("<i4", copy=False).tobytes()
        numbers.carc = series.carc.astype("<i4", copy=False).tobytes()
        numbers.pending_start_dates = series.pending.started.astype("<i4", copy=False).tobytes()
        numbers.pending_claims = series.pending.claims.astype("<i8", copy=False).tobytes()
        return message
    message.decision_dates.extend(series.dates.tolist())
    message.pending_start_dates.extend(series.pending.started.tolist())
    message.pending_claims.extend(series.pending.claims.tolist())
    # The daily statistics' amount columns and the message's fields have the same names.
    for field, column in zip(DAY_AMOUNTS, series.amounts.T.tolist(), strict=True):
        getattr(message, field).extend(column)
    for fields, entries in (
        (("histogram_day", "histogram_days", "histogram_claims"), series.histogram),
        (("carc_day", "carc_code", "carc_claims"), series.carc),
    ):
        for field, column in zip(fields, entries.T.tolist(), strict=True):
            getattr(message, field).extend(column)
    return message


def payer_message(row: Row) -> resources_pb2.Payer:
    payer = resources_pb2.Payer(
        name=PAYER_NAME.format(customer=row.customer_id, payer=row.payer_uid),
        raw_payer_name=row.raw_name,
        raw_payer_id=row.raw_id,
        canonical_payer=row.canonical_payer,
        mapped=row.mapping_id is not None or row.directory_payer is not None,
        payer_mapping=(
            MAPPING_NAME.format(customer=row.customer_id, payer_mapping=row.mapping_id)
            if row.mapping_id
            else ""
        ),
        claim_count=row.claim_count,
    )
    return set_fields(
        payer,
        first_seen_time=timestamp_message(row.first_seen_time),
        last_seen_time=timestamp_message(row.last_seen_time),
    )


def mapping_message(row: Row) -> resources_pb2.PayerMapping:
    mapping = resources_pb2.PayerMapping(
        name=MAPPING_NAME.format(customer=row.customer_id, payer_mapping=row.mapping_id),
        raw_payer_name=row.raw_payer_name,
        raw_payer_id=row.raw_payer_id,
        canonical_payer=row.canonical_payer,
        etag=mapping_etag(row),
    )
    return set_fields(
        mapping,
        create_time=timestamp_message(row.create_time),
        update_time=timestamp_message(row.update_time),
    )


def _check_mapping(mapping: resources_pb2.PayerMapping, *, creating: bool) -> None:
    problems = []
    canonical = display_name(mapping.canonical_payer)
    if not 1 <= len(canonical) <= 200:
        problems.append(
            errors.FieldViolation("payer_mapping.canonical_payer", "1 to 200 characters")
        )
    if creating:
        if not mapping.raw_payer_name.strip() and not mapping.raw_payer_id.strip():
            problems.append(
                errors.FieldViolation(
                    "payer_mapping.raw_payer_name", "set raw_payer_name, raw_payer_id or both"
                )
            )
        if len(mapping.raw_payer_name) > 200:
            problems.append(
                errors.FieldViolation("payer_mapping.raw_payer_name", "at most 200 characters")
            )
        if len(mapping.raw_payer_id) > 80:
            problems.append(
                errors.FieldViolation("payer_mapping.raw_payer_id", "at most 80 characters")
            )
    if problems:
        raise errors.invalid_argument("payer_mapping is not valid", *problems)


def _check_upload_metadata(first: ingest_service_pb2.CreateUploadRequest) -> None:
    problems = []
    if len(first.request_id) > MAX_REQUEST_ID:
        problems.append(errors.FieldViolation("request_id", f"at most {MAX_REQUEST_ID} characters"))
    if first.upload_id and not UPLOAD_ID.fullmatch(first.upload_id):
        problems.append(
            errors.FieldViolation(
                "upload_id",
                "3–63 lowercase letters, digits, '-' and '_', starting with a letter or digit",
            )
        )
    if len(first.upload.file_name) > MAX_FILE_NAME:
        problems.append(
            errors.FieldViolation("upload.file_name", f"at most {MAX_FILE_NAME} characters")
        )
    for column in first.upload.column_map:
        if column not in COLUMN_ALIASES:
            problems.append(
                errors.FieldViolation(
                    f"upload.column_map[{column}]",
                    "unknown column; known: " + ", ".join(COLUMN_ALIASES),
                )
            )
    if problems:
        raise errors.invalid_argument("the upload's options are not valid", *problems)


def data_state_message(customer: str, row: Row) -> resources_pb2.DataState:
    # The time as well as the counter: a customer whose data was restored from a backup
    # never gets an etag it had before with other data.
    etag = (
        f"{row.version:x}.{int(row.update_time.timestamp() * 1_000_000):x}"
        if row.update_time
        else "0"
    )
    return set_fields(
        resources_pb2.DataState(name=DATA_STATE_NAME.format(customer=customer), etag=etag),
        latest_decision_date=date_message(row.latest_decision_date),
        update_time=timestamp_message(row.update_time),
    )


UPLOAD_ID = re.compile(r"[a-z0-9][a-z0-9_-]{2,62}")
_UPLOAD_TERM = re.compile(r'\bupload\s*=\s*"?customers/[^/"\s]+/uploads/([^"\s)]+)"?')


def _upload_filter(text: str) -> str:
    """`upload = "customers/acme/uploads/u_1"` (a resource name) filters by the upload id."""
    return _UPLOAD_TERM.sub(r'upload_id = "\1"', text)


def build(settings: Settings, engine: AsyncEngine) -> ServiceDefinition:
    sign_page_tokens_with(settings.page_token_keys)
    series_reads = BlockingReads(settings, SERIES_READ_CONNECTIONS)
    store = IngestStore(
        engine,
        narrow_month_entries=settings.narrow_month_entries,
        compact_adjustments=settings.compact_adjustments,
        series_reads=series_reads,
    )
    outbox_written = asyncio.Event()

    async def run_detection(channel: grpc.aio.Channel, event: OutboxEvent) -> None:
        """Tells drift a customer's data changed, once per upload (its run's request id the
        upload's id) or other change (its own request id)."""
        uploaded = event.event_type == UPLOAD_COMPLETED
        await drift_service_pb2_grpc.DriftServiceStub(channel).RunDetection(
            drift_service_pb2.RunDetectionRequest(
                parent=f"customers/{event.payload['customer']}",
                request_id=event.payload["upload_id" if uploaded else "request_id"],
                trigger=(
                    drift_resources_pb2.DriftRun.UPLOAD
                    if uploaded
                    else drift_resources_pb2.DriftRun.DATA_CHANGE
                ),
            )
        )

    drift_notifier = outbox_relay(
        settings,
        engine,
        outbox_written,
        target=settings.drift_target,
        full_service_name="upstream.drift.v1.DriftService",
        publish=run_detection,
    )

    # Stored uploads and data states kept in memory between reads, each change forgotten as
    # it commits.
    changes = ChangeListener(
        settings.database_url,
        (store.upload_reads, store.data_state_reads),
        "upstream-ingest-listener",
    )
    servicer = IngestServicer(
        store,
        UploadIntake(
            store,
            max_upload_bytes=settings.max_upload_bytes,
            merge_every=settings.upload_merge_rows,
            outbox_written=outbox_written,
        ),
        ArrowOnDemand(settings.database_url, application_name=f"upstream-{settings.service}"),
    )
    audit_log = AuditLog(engine, "ingest")
    servicer.serve_audit(audit_log)

    async def purge_claims(customer: str, before: dt.date, limit: int, earlier: int) -> int:
        removed = await store.purge_claims(customer, before, limit, earlier)
        if removed < limit:
            outbox_written.set()  # the customer's last batch asks for a run if the pass removed any
        return removed

    claims_purge = Purge(
        "claims",
        lambda retention, now: claims_cutoff(retention, now.date()),
        store.customers_with_claims_before,
        purge_claims,
    )
    retention = RetentionJob(settings, [claims_purge, audit_purge(audit_log)])
    return ServiceDefinition(
        full_name="upstream.ingest.v1.IngestService",
        servicer=servicer,
        add_to_server=ingest_service_pb2_grpc.add_IngestServiceServicer_to_server,
        background=[
            functools.partial(running_task, "ingest-change-listener", changes.listen_forever),
            drift_notifier,
            retention.running,
            series_reads.running,
        ],
    )

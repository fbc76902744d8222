"""What a report reads, over gRPC only: ingest's claims and daily statistics, drift's events.

Claims are streamed (`StreamClaims`: Arrow batches for CSV, messages for JSON Lines) and
events read page by page (1,000 a page), each
message or page handed on as it comes, so an export of any size holds one at a time. For
events a payer list is asked for one payer at a time: a filter of a hundred long payer names
would pass the filter's length limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pyarrow as pa

from runtime.messages import date_message
from services.drift.ingest_client import STREAM_TIMEOUT_SECONDS, entry_spans, joined
from services.drift.ingest_client import series_from_message as _series
from services.drift.series import CellSeries
from services.reports.content.spec import ReportFailed
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc
from upstream.drift.v1 import resources_pb2 as drift_resources_pb2
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc
from upstream.ingest.v1 import resources_pb2 as ingest_resources_pb2

PAGE_SIZE = 1000
# Millions of claims stream in minutes; the default deadline is for quick calls.
EXPORT_TIMEOUT_SECONDS = 3600.0
# What our services answer to a request a report made that only the report's author can fix.
_REQUEST_FAULTS = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.FAILED_PRECONDITION,
)


@dataclass(frozen=True)
class Sources:
    """Stubs on channels made with `runtime.clients.open_channel` and the service's token."""

    ingest: ingest_service_pb2_grpc.IngestServiceStub
    drift: drift_service_pb2_grpc.DriftServiceStub


@contextmanager
def _request_faults(what: str) -> Iterator[None]:
    """A refusal that only the report's author can fix becomes ReportFailed, saying what was
    being read; any other failure goes on as it is."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        if error.code() in _REQUEST_FAULTS:
            raise ReportFailed(f"{what}: {error.details()}") from error
        raise


def quoted(text: str) -> str:
    """`text` as an AIP-160 string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _payer_filters(base: str, payers: Collection[str]) -> list[str]:
    if not payers:
        return [base]
    return [f"({base}) AND payer = {quoted(payer)}" for payer in sorted(set(payers))]


async def _pages(
    call: Callable[[str], Any], items: Callable[[Any], Sequence[Any]], what: str
) -> AsyncIterator[Sequence[Any]]:
    token = ""
    while True:
        with _request_faults(what):
            page = await call(token)
        yield items(page)
        token = page.next_page_token
        if not token:
            return


async def claim_pages(
    ingest: ingest_service_pb2_grpc.IngestServiceStub,
    customer: str,
    start: dt.date,
    end: dt.date,
    payers: Collection[str] = (),
) -> AsyncIterator[Sequence[ingest_resources_pb2.Claim]]:
    """The claims decided from `start` to `end`, by decision date (payer by payer when
    `payers` are named), a stream message (up to 1,000 claims) at a time."""
    async for message in _claim_stream(
        ingest, customer, start, end, payers, ingest_service_pb2.StreamClaimsRequest.MESSAGES
    ):
        yield message.claims


async def claim_batches(
    ingest: ingest_service_pb2_grpc.IngestServiceStub,
    customer: str,
    start: dt.date,
    end: dt.date,
    payers: Collection[str] = (),
) -> AsyncIterator[pa.RecordBatch]:
    """The same claims as `claim_pages`, as Arrow record batches (about a megabyte each) in
    the columns `StreamClaimsResponse` documents."""
    async for message in _claim_stream(
        ingest, customer, start, end, payers, ingest_service_pb2.StreamClaimsRequest.ARROW
    ):
        yield pa.ipc.open_stream(message.arrow_record_batch).read_next_batch()


async def _claim_stream(
    ingest: ingest_service_pb2_grpc.IngestServiceStub,
    customer: str,
    start: dt.date,
    end: dt.date,
    payers: Collection[str],
    encoding: ingest_service_pb2.StreamClaimsRequest.Encoding,
) -> AsyncIterator[ingest_service_pb2.StreamClaimsResponse]:
    call = ingest.StreamClaims(
        ingest_service_pb2.StreamClaimsRequest(
            parent=f"customers/{customer}",
            payers=sorted(set(payers)),
            start_date=date_message(start),
            end_date=date_message(end),
            encoding=encoding,
        ),
        timeout=EXPORT_TIMEOUT_SECONDS,
    )
    try:
        with _request_faults("reading claims"):
            async for message in call:
                yield message
    finally:
        # An export stopped midway (its build cancelled) stops ingest's query too.
        call.cancel()


def _rfc3339(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


async def event_pages(
    drift: drift_service_pb2_grpc.DriftServiceStub,
    customer: str,
    start: dt.date,
    end: dt.date,
    payers: Collection[str] = (),
) -> AsyncIterator[Sequence[drift_resources_pb2.DriftEvent]]:
    """The drift events of the period, by first detection, a page at a time: those detected
    in it (first detected before its end and last seen on or after its start, UTC days) and
    those measured on its claims (their current window overlaps it)."""
    overlapping = (
        f'(first_detected_time < "{_rfc3339(end + dt.timedelta(days=1))}" '
        f'AND last_seen_time >= "{_rfc3339(start)}") '
        f'OR (current_window.start_date <= "{end.isoformat()}" '
        f'AND current_window.end_date >= "{start.isoformat()}")'
    )
    for text in _payer_filters(overlapping, payers):

        def page(token: str, text: str = text) -> Any:
            return drift.ListDriftEvents(
                drift_service_pb2.ListDriftEventsRequest(
                    parent=f"customers/{customer}",
                    page_size=PAGE_SIZE,
                    page_token=token,
                    filter=text,
                    order_by="first_detected_time",
                )
            )

        async for events in _pages(page, lambda response: response.drift_events, "reading events"):
            yield events


async def all_events(
    drift: drift_service_pb2_grpc.DriftServiceStub,
    customer: str,
    start: dt.date,
    end: dt.date,
    payers: Collection[str] = (),
) -> list[drift_resources_pb2.DriftEvent]:
    return [
        event
        async for events in event_pages(drift, customer, start, end, payers)
        for event in events
    ]


async def daily_series(
    ingest: ingest_service_pb2_grpc.IngestServiceStub,
    customer: str,
    start: dt.date,
    end: dt.date,
    span_starts: Collection[dt.date],
    payers: Collection[str] = (),
) -> list[CellSeries]:
    """Ingest's daily statistics from `start` to `end` as drift reads them: one series per
    payer × code group, histogram and CARC entries summed over the spans `span_starts` begin."""
    call = ingest.StreamDailyStatSeries(
        ingest_service_pb2.StreamDailyStatSeriesRequest(
            parent=f"customers/{customer}",
            payers=sorted(set(payers)),
            start_date=date_message(start),
            end_date=date_message(end),
            encoding=ingest_service_pb2.StreamDailyStatSeriesRequest.PACKED,
            entry_span_starts=[date_message(day) for day in sorted(span_starts)],
        ),
        timeout=STREAM_TIMEOUT_SECONDS,
    )
    spans = entry_spans(start, end, span_starts)
    with _request_faults("reading daily statistics"):
        pieces = [
            _series(series, spans) async for message in call for series in message.daily_stat_series
        ]
    return joined(pieces)

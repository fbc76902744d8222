"""What a report contains: the data it gathers from ingest and drift over gRPC, rendered as
PDF, JSON, CSV or JSON Lines, handed on in chunks.

Exports stream: a page of claims or events is read, written and handed on before the next
is read, so memory stays flat for any size. Documents gather the period's statistics and
events (a few numbers per payer and week) and are rendered whole in a worker thread.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

from services.drift.series import Window
from services.reports.content import documents, pdf, weekly
from services.reports.content.exports import (
    CLAIM_COLUMNS,
    EVENT_COLUMNS,
    ArrowCsvWriter,
    CsvWriter,
    JsonLinesWriter,
)
from services.reports.content.sources import (
    Sources,
    all_events,
    claim_batches,
    claim_pages,
    daily_series,
    event_pages,
)
from services.reports.content.spec import (
    CLAIMS_EXPORT,
    CSV,
    EVENTS_EXPORT,
    PDF,
    ReportFailed,
    ReportSpec,
    check,
    content_type,
    file_name,
    supported,
    violations,
)

__all__ = [
    "ReportFailed",
    "ReportSpec",
    "Sources",
    "build",
    "content_type",
    "file_name",
    "supported",
    "violations",
]

# Documents are rendered whole, then handed on in pieces of this size.
DOCUMENT_CHUNK_BYTES = 1024 * 1024
# Claims batches (about a MiB each) being written to CSV at once.
BATCHES_AHEAD = 2


async def build(spec: ReportSpec, sources: Sources) -> AsyncIterator[bytes]:
    """The content of `spec` as chunks of at most about a MiB. Raises ReportFailed for what
    the report's author must change; no data in the period is no failure (an export has its
    header, a document says there was nothing)."""
    check(spec)
    if spec.kind in (CLAIMS_EXPORT, EVENTS_EXPORT):
        async for chunk in _export(spec, sources):
            yield chunk
        return
    content = await _document(spec, sources)
    for at in range(0, len(content), DOCUMENT_CHUNK_BYTES):
        yield content[at : at + DOCUMENT_CHUNK_BYTES]


async def _export(spec: ReportSpec, sources: Sources) -> AsyncIterator[bytes]:
    if spec.kind == CLAIMS_EXPORT and spec.format == CSV:
        claims_csv = ArrowCsvWriter(CLAIM_COLUMNS, spec.customer)
        yield claims_csv.header()
        batches = claim_batches(
            sources.ingest, spec.customer, spec.start_date, spec.end_date, spec.payers
        )
        # Arrow's kernels let go of the GIL: batches are written in worker threads, the next
        # ones while this one is handed on, and handed on in order.
        writing: collections.deque[asyncio.Future[bytes]] = collections.deque()
        try:
            async for batch in batches:
                writing.append(asyncio.ensure_future(asyncio.to_thread(claims_csv.rows, batch)))
                if len(writing) >= BATCHES_AHEAD:
                    yield await writing.popleft()
            while writing:
                yield await writing.popleft()
        finally:
            for left in writing:
                left.cancel()
        return
    if spec.kind == CLAIMS_EXPORT:
        pages = claim_pages(
            sources.ingest, spec.customer, spec.start_date, spec.end_date, spec.payers
        )
    else:
        pages = event_pages(
            sources.drift, spec.customer, spec.start_date, spec.end_date, spec.payers
        )
    writer = CsvWriter(EVENT_COLUMNS) if spec.format == CSV else JsonLinesWriter()
    async for page in pages:
        for chunk in writer.rows(page):
            yield chunk
    last = writer.flush()
    if last:
        yield last


async def _document(spec: ReportSpec, sources: Sources) -> bytes:
    period = Window(spec.start_date, spec.end_date)
    baseline = weekly.baseline_window(period)
    series, events = await asyncio.gather(
        daily_series(
            sources.ingest,
            spec.customer,
            baseline.start,
            period.end,
            weekly.span_starts(period),
            spec.payers,
        ),
        all_events(sources.drift, spec.customer, spec.start_date, spec.end_date, spec.payers),
    )
    document = documents.document(spec, series, events)
    if spec.format == PDF:
        return await asyncio.to_thread(pdf.render, document)
    return documents.json_document(document)

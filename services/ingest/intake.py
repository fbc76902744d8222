"""An upload, the use case: a file read while it streams in, its rows parsed, validated and
loaded in one transaction, the upload recorded with its rejections and an outbox event.
Callable without gRPC; the servicer only translates messages and errors."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram
from sqlalchemy.engine import Row

from runtime.telemetry import trace_carrier
from services.ingest.claim_writes import UploadFacts, UploadWriter, failure_message
from services.ingest.compression import file_bytes
from services.ingest.copy_lines import Staged
from services.ingest.parsing import UploadParser
from services.ingest.records import FileError, Rejection, UploadWarning
from services.ingest.store import PROGRESS_EVERY_SECONDS, IngestStore

MAX_KEPT_WARNINGS = 1000
# Chunks parsed ahead of what PostgreSQL has loaded (each about as large as a chunk received).
_PARSED_AHEAD = 4


@dataclass(frozen=True)
class UploadRequest:
    """What the caller asks: where the file goes and how to read it."""

    customer: str
    creator: str
    file_name: str = ""
    request_id: str | None = None
    # Chosen by the client (AIP-133) to follow the upload while it is read; else made here.
    upload_id: str | None = None
    declared_format: str = ""  # "", "CSV" or "X12_835"
    column_map: dict[str, str] = field(default_factory=dict)
    mode: str = "ACCEPT_VALID"  # or "ALL_OR_NOTHING"


class UploadIdTakenError(Exception):
    """The id the client chose names an upload stored or being read."""


# Why an upload failed whose file was read: no row was valid, or one was not in an
# all-or-nothing upload (a file that could not be read fails with its `FileError`'s code).
ROWS_REJECTED = "ROWS_REJECTED"


class UploadRejectedError(Exception):
    """The upload failed as a whole; its record (FAILED) and rejections are kept. `code`:
    the file's problem (`FileError.code`, e.g. MISSING_COLUMN) or ROWS_REJECTED."""

    def __init__(self, upload_id: str, message: str, problems: list[Rejection], code: str) -> None:
        super().__init__(message)
        self.upload_id = upload_id
        self.problems = problems
        self.code = code


class UploadIntake:
    """Creates uploads. `outbox_written` is set after each committed upload (and by whatever
    else commits an event to ingest's outbox), so the outbox relay publishes at once."""

    def __init__(
        self,
        store: IngestStore,
        *,
        max_upload_bytes: int,
        merge_every: int,
        outbox_written: asyncio.Event | None = None,
    ) -> None:
        self._store = store
        self._max_upload_bytes = max_upload_bytes
        self._merge_every = merge_every
        self.outbox_written = outbox_written or asyncio.Event()

    async def create(self, request: UploadRequest, chunks: AsyncIterator[bytes]) -> Row:
        """The stored upload: the new one, or the earlier one this file or `request_id`
        repeats. Raises UploadRejectedError when the file or its rows fail the upload."""
        if request.request_id:
            earlier = await self._store.find_upload_by_request(request.customer, request.request_id)
            if earlier is not None:
                await _discard(chunks)
                return earlier
        parser = UploadParser(
            declared_format=request.declared_format,
            column_map=request.column_map,
            max_bytes=self._max_upload_bytes,
        )
        upload_id = request.upload_id or "u_" + secrets.token_hex(8)
        if request.upload_id is not None:
            reserved = await self._store.start_progress(
                request.customer, upload_id, request.file_name, request.creator
            )
            if not reserved:
                await _discard(chunks)
                raise UploadIdTakenError(upload_id)
        started = time.perf_counter()
        try:
            stored = await self._read(request, upload_id, chunks, parser)
        except UploadRejectedError:
            _observe(await self._store.get_upload(request.customer, upload_id), started)
            raise
        finally:
            if request.upload_id is not None:
                await asyncio.shield(self._store.end_progress(request.customer, upload_id))
        if stored.upload_id == upload_id:  # not an earlier upload of the same file
            _observe(stored, started)
        return stored

    async def _read(
        self,
        request: UploadRequest,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        parser: UploadParser,
    ) -> Row:
        warnings: list[UploadWarning] = []
        trace_context = trace_carrier()

        def facts() -> UploadFacts:
            # What the upload is, as far as it has been read (counts grow while it streams).
            return UploadFacts(
                customer=request.customer,
                upload_id=upload_id,
                request_id=request.request_id,
                file_name=request.file_name,
                format=parser.format or "CSV",
                mode=request.mode,
                creator=request.creator,
                size_bytes=parser.size_bytes,
                sha256=parser.sha256,
                rows_read=parser.rows_read,
                warnings=warnings,
                trace_context=trace_context,
                column_map=dict(request.column_map),
            )

        progress = None
        if request.upload_id is not None:
            progress = _Progress(self._store, request.customer, upload_id, parser)
        async with self._store.upload_transaction(
            request.customer, upload_id, merge_every=self._merge_every
        ) as writer:
            reading, finishing = time.perf_counter(), None
            try:
                await _stream_into(writer, parser, chunks, warnings, progress)
            except FileError as problem:
                await _discard(chunks)
                outcome = await writer.record_failure(facts(), str(problem))
                failure, code = str(problem), problem.code
            else:
                finishing = time.perf_counter()
                outcome = await writer.finish(
                    facts(), all_or_nothing=request.mode == "ALL_OR_NOTHING"
                )
                failure = (
                    failure_message(writer.accepted, outcome.first_problems)
                    if outcome.failed
                    else ""
                )
                code = ROWS_REJECTED
        if finishing is not None and not failure and not outcome.repeated:
            ingest_upload_phase_seconds.labels("read").observe(finishing - reading)
            ingest_upload_phase_seconds.labels("finish").observe(time.perf_counter() - finishing)
        if outcome.repeated:
            return await self._stored(request.customer, outcome.upload_id)
        if failure:
            raise UploadRejectedError(upload_id, failure, outcome.first_problems, code)
        self.outbox_written.set()
        return await self._stored(request.customer, upload_id)

    async def _stored(self, customer: str, upload_id: str) -> Row:
        row = await self._store.get_upload(customer, upload_id)
        if row is None:
            raise LookupError(f"upload {upload_id} of {customer} is not stored")
        return row


ingest_uploads_total = Counter(
    "ingest_uploads_total", "Uploads stored, by format and state.", ("format", "state")
)
ingest_rows_total = Counter(
    "ingest_rows_total", "Rows of stored uploads, accepted or rejected.", ("outcome",)
)
ingest_upload_seconds = Histogram(
    "ingest_upload_seconds",
    "Seconds from an upload's first byte to its commit, by format.",
    ("format",),
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)

ingest_upload_phase_seconds = Histogram(
    "ingest_upload_phase_seconds",
    "Seconds of the phases of uploads that succeed: `read` (the file streamed in, parsed and "
    "loaded as it comes) and `finish` (what is merged and counted after, to the commit).",
    ("phase",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)


def _observe(upload: Row | None, started: float) -> None:
    if upload is None:
        return
    ingest_uploads_total.labels(upload.format, upload.state).inc()
    ingest_rows_total.labels("accepted").inc(upload.rows_accepted)
    ingest_rows_total.labels("rejected").inc(upload.rows_rejected)
    ingest_upload_seconds.labels(upload.format).observe(time.perf_counter() - started)


class _Progress:
    """Writes how far the upload has been read, at most every PROGRESS_EVERY_SECONDS."""

    def __init__(self, store: IngestStore, customer: str, upload_id: str, parser: UploadParser):
        self._store = store
        self._customer = customer
        self._upload_id = upload_id
        self._parser = parser
        self._written_at = time.monotonic()

    async def tell(self) -> None:
        if time.monotonic() - self._written_at < PROGRESS_EVERY_SECONDS:
            return
        self._written_at = time.monotonic()
        await self._store.record_progress(
            self._customer, self._upload_id, self._parser.size_bytes, self._parser.rows_read
        )


async def _stream_into(
    writer: UploadWriter,
    parser: UploadParser,
    chunks: AsyncIterator[bytes],
    warnings: list[UploadWarning],
    progress: _Progress | None = None,
) -> None:
    def read(chunk: bytes | None) -> tuple[Staged, list[UploadWarning]]:
        # Parsing and encoding are CPU work: off the event loop, in a worker thread.
        batch = parser.close() if chunk is None else parser.feed(chunk)
        # A CSV export's rows are lines of claims; an 835's records are claims.
        return writer.encode(batch, claim_lines=parser.format == "CSV"), batch.warnings

    # PostgreSQL loads and merges what is parsed while the next chunks are parsed; the
    # queue between them is bounded, so memory stays flat however large the file.
    queue: asyncio.Queue[Staged | None] = asyncio.Queue(maxsize=_PARSED_AHEAD)

    async def load() -> None:
        while (staged := await queue.get()) is not None:
            await writer.load(staged)

    loader = asyncio.create_task(load())

    async def hand_over(staged: Staged | None) -> None:
        putting = asyncio.ensure_future(queue.put(staged))
        await asyncio.wait((putting, loader), return_when=asyncio.FIRST_COMPLETED)
        if not putting.done():
            putting.cancel()
            loader.result()  # the loader failed: its error is the upload's

    try:
        async for chunk in file_bytes(chunks, parser):
            staged, found = await asyncio.to_thread(read, chunk)
            _keep(warnings, found)
            await hand_over(staged)
            if progress is not None:
                await progress.tell()
        staged, found = await asyncio.to_thread(read, None)
        _keep(warnings, found)
        await hand_over(staged)
        await hand_over(None)
    except BaseException:
        if not loader.done():
            # What was not loaded is dropped (the upload is failing); the step under way
            # always completes: a COPY cut mid-write could not be ended.
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
        raise
    finally:
        await asyncio.shield(loader)


async def _discard(chunks: AsyncIterator[bytes]) -> None:
    """Read what the client still sends before answering early: a client stream answered
    while the client is still writing can reach it as an internal error instead of our
    answer."""
    async for _ in chunks:
        pass


def _keep(kept: list[UploadWarning], new: list[UploadWarning]) -> None:
    room = MAX_KEPT_WARNINGS - len(kept)
    kept.extend(new[: max(room, 0)])

"""Report builds: workers claim reports waiting to be built, build each under a lease and
store its content in chunks; the report becomes SUCCEEDED (and REPORT_READY is queued to
webhooks) only once the whole file is stored.

Any number of reports replicas share the work: a claim leases one report (`FOR UPDATE SKIP
LOCKED`), the builder renews the lease while it works, and a builder that dies lets go when
the lease ends; another then builds the report again from the start, as a new build whose
chunks never mix with the dead one's. Expired reports are deleted here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
from google.protobuf import json_format
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from sqlalchemy.engine import Row

from runtime.memory import give_back_freed_memory
from runtime.telemetry import continuing
from services.reports import content
from services.reports.payloads import webhook_body
from services.reports.report_store import REPORT_READY, ReportStore
from upstream.reports.v1 import resources_pb2

logger = logging.getLogger("upstream.reports.builds")
tracer = trace.get_tracer("upstream.reports.builds")

POLL_SECONDS = 5.0
# Chunks are stored and streamed at this size (the contract's download chunks are ≤ 1 MiB).
CHUNK_BYTES = 1024 * 1024
# Chunks built and waiting to be written, at most: a build holds about this many MiB.
CHUNKS_AHEAD = 4
# Reports and their content are kept this long after they finish (the contract's 30 days).
KEEP_DAYS = 30
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 100
# A report whose builds stopped (the builder died) or hit a passing error this many times
# fails for good.
MAX_BUILDS = 3
RETRY_SECONDS = (10.0, 60.0)
# gRPC codes of the services a report reads that may pass if tried again later.
PASSING_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)

report_builds_total = Counter(
    "report_builds_total",
    "Report builds, by kind, format and outcome.",
    ("kind", "format", "outcome"),
)
report_build_seconds = Histogram(
    "report_build_seconds",
    "Seconds to build a report, by kind.",
    ("kind",),
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
)

Builder = Callable[[content.ReportSpec, content.Sources], AsyncIterator[bytes]]


def report_spec(row: Row, name: str) -> content.ReportSpec:
    return content.ReportSpec(
        customer=row.customer_id,
        name=name,
        kind=resources_pb2.ReportKind.Value(row.kind),
        format=resources_pb2.ReportFormat.Value(row.format),
        start_date=row.start_date,
        end_date=row.end_date,
        payers=tuple(row.payers),
        create_time=row.create_time,
    )


@dataclass(frozen=True)
class _Failure:
    code: grpc.StatusCode
    message: str
    retry_in_seconds: float | None


class ReportBuilds:
    """Builds reports, `concurrency` at a time, until stopped."""

    def __init__(
        self,
        store: ReportStore,
        sources: content.Sources,
        report_message: Callable[[Row], resources_pb2.Report],
        *,
        concurrency: int,
        lease_seconds: float,
        webhook_max_attempts: int,
        wake_up: asyncio.Event,
        deliveries_queued: asyncio.Event,
        builder: Builder = content.build,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._store = store
        self._sources = sources
        self._report_message = report_message
        self._concurrency = concurrency
        self._lease_seconds = lease_seconds
        self._webhook_max_attempts = webhook_max_attempts
        self._wake_up = wake_up
        self._deliveries_queued = deliveries_queued
        self._builder = builder
        self._poll_seconds = poll_seconds
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Build for the life of the server; on the way out, stop the builds in flight (their
        leases end and another replica builds those reports again)."""
        worker = asyncio.create_task(self._run(), name="report-builds")
        try:
            yield
        finally:
            self._stopping = True
            self._wake_up.set()
            await worker

    async def _run(self) -> None:
        next_prune = time.monotonic()
        while not self._stopping:
            self._wake_up.clear()
            wait = self._poll_seconds
            if len(self._in_flight) >= self._concurrency:
                await self._wake_up.wait()
                continue
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    while await self._store.delete_expired(PRUNE_BATCH) == PRUNE_BATCH:
                        pass
                claimed = await self._store.claim_report(uuid.uuid4(), self._lease_seconds)
                if claimed is not None:
                    task = asyncio.create_task(self._build(claimed))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                    continue
                due_in = await self._store.next_build_due_in()
                if due_in is not None:
                    wait = min(wait, due_in)
            except Exception:
                logger.exception("claiming reports to build failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_up.wait(), max(wait, 0.25))
        for task in self._in_flight:
            task.cancel()
        if self._in_flight:
            await asyncio.wait(self._in_flight)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Its lease ends and the report is built again.
            logger.error("a report build failed unexpectedly", exc_info=task.exception())
        self._wake_up.set()

    async def _build(self, claimed: Row) -> None:
        """One build, in the trace of the call that asked for the report."""
        with continuing(
            claimed.trace_context,
            tracer,
            "process report build",
            kind=trace.SpanKind.CONSUMER,
            operation="process",
            destination="report builds",
            message_id=claimed.report_id,
            attributes={
                "upstream.customer": claimed.customer_id,
                "upstream.report": claimed.report_id,
                "upstream.report_kind": claimed.kind,
                "upstream.report_format": claimed.format,
                "upstream.build": claimed.build_count,
            },
        ):
            await self._build_traced(claimed)
        if self._in_flight <= {asyncio.current_task()}:
            # The last build in flight: what the builds freed (charts, images, documents) goes
            # back, else the blocks that outlive a build ratchet the high-water mark up.
            await asyncio.to_thread(give_back_freed_memory)

    async def _build_traced(self, claimed: Row) -> None:
        name = self._report_message(claimed).name
        spec = report_spec(claimed, name)
        if claimed.build_count > MAX_BUILDS:
            await self._end(
                claimed,
                _Failure(
                    grpc.StatusCode.ABORTED,
                    f"building the report stopped {MAX_BUILDS} times before it finished; "
                    "create it again, or a smaller one (a shorter period or fewer payers)",
                    None,
                ),
            )
            return
        started = time.monotonic()
        renewing = asyncio.create_task(self._keep_lease(claimed, asyncio.current_task()))
        try:
            size, digest = await self._store_content(claimed, spec)
        except content.ReportFailed as failed:
            error = failed.to_api_error()
            await self._end(claimed, _Failure(error.code, error.message, None))
            return
        except grpc.aio.AioRpcError as error:
            await self._end(claimed, _read_failure(error, claimed.build_count))
            return
        except asyncio.CancelledError:
            if renewing.done() and not renewing.cancelled() and renewing.result():
                # The lease was lost: whoever holds the report now owns its outcome.
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                logger.warning(
                    "a report build lost its lease and stopped",
                    extra={"customer": claimed.customer_id, "report": claimed.report_id},
                )
                return
            raise
        finally:
            renewing.cancel()
        ready = await self._store.succeed(
            claimed,
            size_bytes=size,
            sha256=digest,
            content_type=content.content_type(spec.kind, spec.format),
            file_name=content.file_name(spec),
            keep_days=KEEP_DAYS,
            ready_body=self._ready_body,
            max_attempts=self._webhook_max_attempts,
            report_name=name,
        )
        if ready is None:
            return
        report_builds_total.labels(claimed.kind, claimed.format, "SUCCEEDED").inc()
        report_build_seconds.labels(claimed.kind).observe(time.monotonic() - started)
        self._deliveries_queued.set()

    async def _store_content(self, claimed: Row, spec: content.ReportSpec) -> tuple[int, str]:
        """Build the content into chunks of this build; its size and SHA-256. Chunks are
        written by a second task while the next ones are built, at most CHUNKS_AHEAD queued."""
        digest = hashlib.sha256()
        size = 0
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=CHUNKS_AHEAD)
        writer = asyncio.create_task(self._write_chunks(claimed, queue))

        async def put(chunk: bytes | None) -> None:
            # A writer that failed stops the build with its error instead of blocking it.
            putting = asyncio.ensure_future(queue.put(chunk))
            await asyncio.wait((putting, writer), return_when=asyncio.FIRST_COMPLETED)
            if not putting.done():
                putting.cancel()
                writer.result()

        try:
            pending = bytearray()
            async for piece in self._builder(spec, self._sources):
                digest.update(piece)
                size += len(piece)
                pending += piece
                while len(pending) >= CHUNK_BYTES:
                    await put(bytes(pending[:CHUNK_BYTES]))
                    del pending[:CHUNK_BYTES]
            await put(bytes(pending))
            await put(None)
            await writer
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return size, digest.hexdigest()

    async def _write_chunks(self, claimed: Row, queue: asyncio.Queue[bytes | None]) -> None:
        """Write the queued chunks in order until None; an empty last chunk only when it is
        the only one (empty content is one empty chunk)."""
        chunk_number = 0
        while (chunk := await queue.get()) is not None:
            if chunk or chunk_number == 0:
                await self._store.write_chunk(
                    claimed.customer_id,
                    claimed.report_id,
                    claimed.build_count,
                    chunk_number,
                    chunk,
                )
                chunk_number += 1

    async def _keep_lease(self, claimed: Row, build: asyncio.Task[None] | None) -> bool:
        """Renew the lease every third of it; cancel the build and return True if it is lost."""
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                held = await self._store.renew_lease(
                    claimed.customer_id, claimed.report_id, claimed.lease_token, self._lease_seconds
                )
            except Exception:
                logger.exception("renewing a report build's lease failed; trying again")
                continue
            if not held:
                if build is not None:
                    build.cancel()
                return True

    def _ready_body(self, row: Row) -> bytes:
        report = self._report_message(row)
        return webhook_body(
            REPORT_READY, report.finish_time.ToDatetime(dt.UTC), json_format.MessageToDict(report)
        )

    async def _end(self, claimed: Row, failure: _Failure) -> None:
        ended = await self._store.fail(
            claimed,
            code=failure.code.value[0],
            message=failure.message,
            keep_days=KEEP_DAYS,
            retry_in_seconds=failure.retry_in_seconds,
        )
        if ended:
            outcome = "RETRY" if failure.retry_in_seconds is not None else "FAILED"
            report_builds_total.labels(claimed.kind, claimed.format, outcome).inc()


def _read_failure(error: grpc.aio.AioRpcError, build: int) -> _Failure:
    """What a failed call to ingest or drift means for the report."""
    said = f"{error.code().name}: {error.details()}" if error.details() else error.code().name
    if error.code() in PASSING_CODES and build < MAX_BUILDS:
        return _Failure(
            error.code(),
            f"reading the report's data failed ({said}); trying again",
            RETRY_SECONDS[min(build, len(RETRY_SECONDS)) - 1],
        )
    return _Failure(
        error.code() if error.code() in PASSING_CODES else grpc.StatusCode.INTERNAL,
        f"reading the report's data failed ({said})",
        None,
    )

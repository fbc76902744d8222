"""Detection runs, the use case: a run is asked for (a PENDING row), a worker in this process
(or any replica) takes it, reads the statistics from ingest, detects and records the
findings. A run whose worker dies is taken again when its lease expires. Callable without
gRPC; the servicer only translates messages."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.engine import Row

from runtime.server import work_forever
from runtime.telemetry import continuing, error_text, trace_carrier
from services.drift.detection import detect, first_day_read, span_starts_read
from services.drift.ingest_client import IngestClient
from services.drift.kept_summaries import KeptSummaries
from services.drift.series import CellSeries, cells_without_claims
from services.drift.store import DriftStore

logger = logging.getLogger("upstream.drift")
tracer = trace.get_tracer("upstream.drift")
drift_runs_total = Counter("drift_runs_total", "Detection runs, by outcome.", ("outcome",))
drift_run_seconds = Histogram(
    "drift_run_seconds",
    "Seconds a detection run takes, reading the statistics to recording its events.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
drift_cells_tested_total = Counter(
    "drift_cells_tested_total", "Payer × code group × metric comparisons made by runs."
)
drift_events_opened_total = Counter(
    "drift_events_opened_total", "Drift events opened, by metric.", ("metric",)
)
drift_runs_waiting = Gauge(
    "drift_runs_waiting",
    "Detection runs asked for that no worker has taken yet (or whose worker died), of every "
    "customer.",
)
drift_run_oldest_waiting_age_seconds = Gauge(
    "drift_run_oldest_waiting_age_seconds",
    "Seconds the oldest detection run still waiting for a worker has waited; 0 when none waits.",
)

WORKER_POLL_SECONDS = 2.0


class DetectionRuns:
    """Asks for runs and executes them, one at a time per process. `published` is set when
    a run has written events to the outbox, so the relay sends them at once. After a run,
    the customer's payer summaries are brought up to date (`summaries`), so the first read
    after an upload finds them kept."""

    def __init__(
        self,
        store: DriftStore,
        ingest: IngestClient,
        published: asyncio.Event,
        summaries: KeptSummaries | None = None,
    ) -> None:
        self._store = store
        self._ingest = ingest
        self._published = published
        self._summaries = summaries
        self._queued = asyncio.Event()

    async def request(
        self,
        customer: str,
        *,
        as_of: dt.date | None,
        request_id: str | None,
        trigger: str,
        creator: str,
    ) -> Row:
        """A PENDING run (or the earlier run of the same `request_id`). Without `as_of`, the
        run analyses where the customer's data is (last year's upload included)."""
        if as_of is None:
            as_of = (
                await self._ingest.latest_decision_date(customer) or dt.datetime.now(dt.UTC).date()
            )
        row = await self._store.create_run(
            customer,
            request_id=request_id,
            trigger=trigger,
            creator=creator,
            as_of=as_of,
            trace_context=trace_carrier(),
        )
        self._queued.set()
        return row

    async def run_forever(self) -> None:
        await work_forever("drift run worker", self.run_next, self._queued, WORKER_POLL_SECONDS)

    async def count_waiting(self) -> None:
        """The runs waiting for a worker, set in the metrics (a run that waits long is one no
        worker takes)."""
        waiting, oldest = await self._store.waiting_runs()
        drift_runs_waiting.set(waiting)
        drift_run_oldest_waiting_age_seconds.set(oldest)

    async def run_next(self) -> bool:
        """Execute the next queued run; False when there was none."""
        # Each time the worker looks for one, busy or not: the metrics stay current.
        await self.count_waiting()
        run = await self._store.claim_next_run()
        if run is None:
            return False
        customer = run.customer_id
        started = time.perf_counter()
        # In the trace of the call that asked for the run (an upload, a person, a schedule).
        with continuing(
            run.trace_context,
            tracer,
            "process drift run",
            kind=trace.SpanKind.CONSUMER,
            operation="process",
            destination="drift runs",
            message_id=run.run_id,
            attributes={"upstream.customer": customer, "upstream.run": run.run_id},
        ):
            try:
                config = (await self._store.get_config(customer)).config
                series = await self._ingest.daily_stat_series(
                    customer,
                    first_day_read(run.as_of, config),
                    run.as_of,
                    span_starts_read(run.as_of, config),
                )
                detection, gone = await asyncio.gather(
                    asyncio.to_thread(detect, series, run.as_of, config),
                    self._cells_gone(customer, series),
                )
                outcome = await self._store.record_detection(
                    customer, run, detection, trace_carrier(), gone
                )
            except Exception as exc:
                logger.exception("drift run failed", extra={"run_id": run.run_id})
                # The run's error is shown to the customer: never a database error's values.
                await self._store.fail_run(customer, run.run_id, error_text(exc))
                drift_runs_total.labels("failed").inc()
                return True
        drift_runs_total.labels("succeeded").inc()
        drift_run_seconds.observe(time.perf_counter() - started)
        drift_cells_tested_total.inc(detection.cells_tested)
        for metric in outcome.opened_metrics:
            drift_events_opened_total.labels(metric).inc()
        logger.info(
            "drift run finished",
            extra={
                "run_id": run.run_id,
                "cells_tested": detection.cells_tested,
                "events_opened": outcome.opened,
                "events_updated": outcome.updated,
                "events_closed": outcome.closed,
            },
        )
        self._published.set()
        if self._summaries is not None:
            try:
                await self._summaries.refresh(customer)
            except Exception:
                # A read computes them then: nothing is lost but that read's time.
                logger.exception(
                    "payer summaries not computed after a run", extra={"run_id": run.run_id}
                )
        return True

    async def _cells_gone(
        self, customer: str, series: Iterable[CellSeries]
    ) -> set[tuple[str, str]]:
        """The cells of the customer's open events none of whose claims are left (every
        upload that held them deleted, or their payer's name mapped to another): their events
        end. A cell the run read has claims; one it did not (its claims stopped coming before
        the days a run reads, or are gone) is looked for in its payer's whole history, a
        small read made while detection runs."""
        unread = cells_without_claims(
            await self._store.open_event_cells(customer),
            {(one.payer, one.code_group) for one in series},
        )
        if not unread:
            return set()
        found = await self._ingest.cells_with_claims(customer, {payer for payer, _ in unread})
        return cells_without_claims(unread, found)

"""Payer summaries kept between reads. They change only when the customer's data (an
upload, a deletion, a payer remap, retention) or its detection settings change, so they are
computed once per state of both — ingest's data etag and the settings' etag — stored, and
read from the store: a read costs a data-state call to ingest and one query, not a year of
statistics streamed and summed. A run computes them after it finishes, so the first read
after an upload finds them ready."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.engine import Row

from runtime.messages import date_message, money_message, set_fields
from services.drift.config import DetectionConfig
from services.drift.detection import Windows, first_day_read, span_starts_read, windows_for
from services.drift.ingest_client import DataState, IngestClient
from services.drift.store import DriftStore, KeptSummary, StoredConfig
from services.drift.summaries import (
    Metrics,
    PayerSummary,
    summarize,
    summary_span_starts,
    summary_start,
)
from upstream.drift.v1 import resources_pb2

logger = logging.getLogger(__name__)

SUMMARY_NAME = "customers/{customer}/payerSummaries/{payer}"
# What a kept summary holds: a release whose summaries say more (`self_pay`, say) moves it, so
# that sets kept by the release before are computed again, once (kept with the settings' etag).
SUMMARIES_VERSION = "3"


def date_range(start: dt.date | None, end: dt.date | None) -> resources_pb2.DateRange | None:
    if start is None or end is None:
        return None
    return resources_pb2.DateRange(start_date=date_message(start), end_date=date_message(end))


def metrics_message(values: Metrics) -> resources_pb2.PayerMetrics:
    return resources_pb2.PayerMetrics(
        claims=values.claims,
        denial_rate=values.denial_rate,
        median_decision_days=values.median_decision_days,
        paid_to_allowed_ratio=values.paid_to_allowed_ratio,
        denied_billed_amount=money_message(values.denied_billed_cents),
        patient_share=values.patient_share,
    )


def summary_message(
    customer: str, summary: PayerSummary, windows: Windows
) -> resources_pb2.PayerSummary:
    """The summary's message, but for its open event count (read when it is listed)."""
    message = resources_pb2.PayerSummary(
        name=SUMMARY_NAME.format(customer=customer, payer=summary.payer),
        payer=summary.payer,
        current=metrics_message(summary.current),
        baseline=metrics_message(summary.baseline),
        weekly_series=[
            resources_pb2.WeeklyPoint(
                week_start=date_message(week),
                claims=values.claims,
                denial_rate=values.denial_rate,
                median_decision_days=values.median_decision_days,
                paid_to_allowed_ratio=values.paid_to_allowed_ratio,
            )
            for week, values in summary.weekly
        ],
    )
    return set_fields(
        message,
        current_window=date_range(windows.current.start, windows.current.end),
        baseline_window=date_range(windows.baseline.start, windows.baseline.end),
        detection_start_date=(
            date_message(summary.compared_from) if summary.compared_from else None
        ),
        season_note=summary.season or None,
        self_pay=summary.self_pay or None,
    )


async def compute_summaries(
    ingest: IngestClient, customer: str, config: DetectionConfig, as_of: dt.date
) -> tuple[Windows, list[PayerSummary]]:
    """Every payer's summary over the windows of `config` ending `as_of`, most claims
    first."""
    windows = windows_for(as_of, config)
    # From as far back as a run reads: how long each payer's history is decides whether a
    # run compares it.
    series = await ingest.daily_stat_series(
        customer,
        min(summary_start(windows), first_day_read(as_of, config)),
        as_of,
        summary_span_starts(windows) | span_starts_read(as_of, config),
    )
    return windows, await asyncio.to_thread(summarize, series, windows, config)


def _kept(customer: str, windows: Windows, summaries: list[PayerSummary]) -> list[KeptSummary]:
    return [
        KeptSummary(
            payer=summary.payer,
            current_claims=summary.current.claims,
            current_denial_rate=summary.current.denial_rate,
            current_denied_billed_cents=summary.current.denied_billed_cents,
            message=summary_message(customer, summary, windows).SerializeToString(),
        )
        for summary in summaries
    ]


@dataclass(frozen=True)
class _Key:
    data_etag: str
    config_etag: str

    @property
    def keepable(self) -> bool:
        # An ingest that cannot say its data etag yet (an older release during a rollout):
        # the summaries are computed on every read, as they were before they were kept.
        return bool(self.data_etag)


class KeptSummaries:
    """Brings a customer's kept summaries up to date: at most one computation per customer
    at a time in this process (readers that find them stale wait for it, then read)."""

    def __init__(
        self,
        store: DriftStore,
        ingest: IngestClient,
    ) -> None:
        self._store = store
        self._ingest = ingest
        self._computing: dict[str, asyncio.Lock] = {}

    async def refresh(self, customer: str) -> bool:
        """Compute and keep the customer's summaries unless those kept are for its data and
        settings now; True when they were computed."""
        return await self._bring_up_to_date(customer, *await self._now(customer))

    async def read(
        self, customer: str, read: Callable[[tuple[str, str] | None], Awaitable[list[Row]]]
    ) -> list[Row]:
        """What `read` finds of the customer's summaries once they are up to date. Asked
        first for the summaries of the data and settings now (`read`'s argument: their
        etags), and most often answered by that one query; only when it finds none is it
        checked whether they are kept, computed if not, and read again (None: as kept)."""
        key, state, stored = await self._now(customer)
        if key.keepable:
            rows = await read((key.data_etag, key.config_etag))
            if rows:
                return rows
        await self._bring_up_to_date(customer, key, state, stored)
        return await read(None)

    async def _now(self, customer: str) -> tuple[_Key, DataState, StoredConfig]:
        state = await self._ingest.data_state(customer)
        stored = await self._store.get_config(customer)
        return _Key(state.etag, f"{stored.etag}.v{SUMMARIES_VERSION}"), state, stored

    async def _bring_up_to_date(
        self, customer: str, key: _Key, state: DataState, stored: StoredConfig
    ) -> bool:
        if await self._current(customer, key):
            return False
        lock = self._computing.setdefault(customer, asyncio.Lock())
        async with lock:
            if await self._current(customer, key):
                return False
            await self._compute(customer, key, stored.config, state)
            return True

    async def _current(self, customer: str, key: _Key) -> bool:
        kept = await self._store.summary_set(customer)
        return (
            key.keepable
            and kept is not None
            and (kept.data_etag, kept.config_etag) == (key.data_etag, key.config_etag)
        )

    async def _compute(
        self, customer: str, key: _Key, config: DetectionConfig, state: DataState
    ) -> None:
        as_of = state.latest_decision_date
        kept: list[KeptSummary] = []
        if as_of is not None:
            windows, summaries = await compute_summaries(self._ingest, customer, config, as_of)
            kept = _kept(customer, windows, summaries)
        await self._store.keep_summaries(customer, key.data_etag, key.config_etag, as_of, kept)
        logger.info(
            "payer summaries computed",
            extra={"payers": len(kept), "data_etag": key.data_etag},
        )

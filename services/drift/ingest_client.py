"""What drift asks ingest, over gRPC: the customer's daily statistics and data range."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import grpc
import numpy as np

from runtime.messages import date_message
from runtime.validation import DEFAULT_MAX_YEAR, DEFAULT_MIN_YEAR
from services.drift.series import AMOUNTS, CellSeries, EntrySpans, ReadSeries, SeriesReading
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

# A year of statistics streams in seconds; the default deadline is for quick calls.
STREAM_TIMEOUT_SECONDS = 300.0


# Payers named in one request (the API takes up to 1,000).
PAYERS_PER_READ = 500
# Every day a claim can be decided on: the dates the API takes.
_EARLIEST = dt.date(DEFAULT_MIN_YEAR, 1, 1)
_LATEST = dt.date(DEFAULT_MAX_YEAR, 12, 31)

# Ingest numbers days from 1970-01-01; series number them as proleptic ordinals.
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


# The day amounts of a packed series, in the contract's order (`PackedDailyStatSeries`:
# `day_amounts`, then the patients' share sent apart), and where those a series keeps
# (AMOUNTS) are among them.
_PACKED_AMOUNTS = (
    "decided", "denied", "partially_denied", "billed_cents", "allowed_cents", "paid_cents",
    "denied_billed_cents",
)  # fmt: skip
_DAY_AMOUNTS = (*_PACKED_AMOUNTS, "patient_responsibility_cents")
_KEPT_AMOUNTS = [_DAY_AMOUNTS.index(name) for name in AMOUNTS]


def series_from_message(
    message: resources_pb2.DailyStatSeries, entry_spans: EntrySpans | None = None
) -> CellSeries:
    """A message's series (drift asks for the PACKED encoding); `entry_spans` when it was
    read with entries summed over spans."""
    packed = message.packed
    days = np.frombuffer(packed.decision_dates, dtype="<i4").astype(np.int64)
    amounts = np.frombuffer(packed.day_amounts, dtype="<i8").reshape(-1, len(_PACKED_AMOUNTS))
    # An ingest that does not count the patients' share sends none.
    patient = (
        np.frombuffer(packed.patient_responsibility_cents, dtype="<i8")
        if packed.patient_responsibility_cents
        else np.zeros(days.size, dtype=np.int64)
    )
    histogram = np.frombuffer(packed.histogram, dtype="<i4").reshape(-1, 3).astype(np.int64)
    carc = np.frombuffer(packed.carc, dtype="<i4").reshape(-1, 3).astype(np.int64)
    return CellSeries(
        payer=message.payer,
        code_group=message.code_group,
        days=days + _EPOCH_ORDINAL,
        amounts=np.ascontiguousarray(np.column_stack((amounts, patient))[:, _KEPT_AMOUNTS].T),
        histogram_day=histogram[:, 0].copy(),
        histogram_value=histogram[:, 1].copy(),
        histogram_claims=histogram[:, 2].copy(),
        carc_day=carc[:, 0].copy(),
        carc_code=carc[:, 1].copy(),
        carc_claims=carc[:, 2].copy(),
        codes=tuple(message.carc_codes),
        entry_spans=entry_spans,
        pending_started=np.frombuffer(packed.pending_start_dates, dtype="<i4").astype(np.int64)
        + _EPOCH_ORDINAL,
        pending_claims=np.frombuffer(packed.pending_claims, dtype="<i8").astype(np.int64),
    )


@dataclass(frozen=True)
class DataState:
    """What ingest says of a customer's data: an etag that changes with it ("" when ingest
    cannot say) and the last decision date it holds."""

    etag: str
    latest_decision_date: dt.date | None


class IngestClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = ingest_service_pb2_grpc.IngestServiceStub(channel)

    async def data_state(self, customer: str) -> DataState:
        """The etag of the customer's data now and the last decision date it holds. An
        ingest without `GetDataState` (an older release during a rollout) gives no etag, and
        the last decision date from the customer's uploads."""
        try:
            state = await self._stub.GetDataState(
                ingest_service_pb2.GetDataStateRequest(name=f"customers/{customer}/dataState")
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                raise
            return DataState("", await self._latest_upload_decision_date(customer))
        latest = state.latest_decision_date
        return DataState(
            state.etag,
            dt.date(latest.year, latest.month, latest.day)
            if state.HasField("latest_decision_date")
            else None,
        )

    async def latest_decision_date(self, customer: str) -> dt.date | None:
        """The last decision date across the customer's successful uploads."""
        return (await self.data_state(customer)).latest_decision_date

    async def _latest_upload_decision_date(self, customer: str) -> dt.date | None:
        latest: dt.date | None = None
        token = ""
        while True:
            page = await self._stub.ListUploads(
                ingest_service_pb2.ListUploadsRequest(
                    parent=f"customers/{customer}",
                    filter="state = SUCCEEDED",
                    page_size=1000,
                    page_token=token,
                )
            )
            for upload in page.uploads:
                if upload.HasField("last_decision_date"):
                    last = upload.last_decision_date
                    day = dt.date(last.year, last.month, last.day)
                    latest = day if latest is None or day > latest else latest
            token = page.next_page_token
            if not token:
                return latest

    async def cells_with_claims(
        self, customer: str, payers: Collection[str]
    ) -> set[tuple[str, str]]:
        """The payer × code groups of `payers` that have claims, whenever decided, or pending:
        the series of their whole history, each summed into one span (nothing of their
        numbers is used), read for PAYERS_PER_READ payers at a time."""
        names = sorted(payers)
        found: set[tuple[str, str]] = set()
        for at in range(0, len(names), PAYERS_PER_READ):
            call = self._stub.StreamDailyStatSeries(
                ingest_service_pb2.StreamDailyStatSeriesRequest(
                    parent=f"customers/{customer}",
                    payers=names[at : at + PAYERS_PER_READ],
                    start_date=date_message(_EARLIEST),
                    end_date=date_message(_LATEST),
                    encoding=ingest_service_pb2.StreamDailyStatSeriesRequest.PACKED,
                    entry_span_starts=[date_message(_EARLIEST)],
                ),
                timeout=STREAM_TIMEOUT_SECONDS,
            )
            async for message in call:
                found.update((s.payer, s.code_group) for s in message.daily_stat_series)
        return found

    async def daily_stat_series(
        self,
        customer: str,
        start: dt.date,
        end: dt.date,
        span_starts: Collection[dt.date] = (),
    ) -> ReadSeries:
        """The customer's daily statistics from `start` to `end`, one series per payer × code
        group (each payer's merged as they arrive, see `SeriesReading`); with `span_starts`,
        their histogram and CARC entries summed over the spans of days those begin (the
        series then sum only windows of whole spans)."""
        call = self._stub.StreamDailyStatSeries(
            ingest_service_pb2.StreamDailyStatSeriesRequest(
                parent=f"customers/{customer}",
                start_date=date_message(start),
                end_date=date_message(end),
                encoding=ingest_service_pb2.StreamDailyStatSeriesRequest.PACKED,
                entry_span_starts=[date_message(day) for day in sorted(span_starts)],
            ),
            timeout=STREAM_TIMEOUT_SECONDS,
        )
        spans = entry_spans(start, end, span_starts)
        reading = SeriesReading()
        async for message in call:
            for series in message.daily_stat_series:
                reading.add(series_from_message(series, spans))
        return reading.finish()


def entry_spans(
    start: dt.date, end: dt.date, span_starts: Collection[dt.date]
) -> EntrySpans | None:
    """What series read from `start` to `end` with `span_starts` can sum (None: any window)."""
    if not span_starts:
        return None
    return EntrySpans(
        start.toordinal(), end.toordinal() + 1, frozenset(day.toordinal() for day in span_starts)
    )


def joined(pieces: Iterable[CellSeries]) -> ReadSeries:
    """Consecutive pieces of one payer × code group (a long series comes in several
    messages) made one series, each payer's merged too (see `SeriesReading`)."""
    reading = SeriesReading()
    for piece in pieces:
        reading.add(piece)
    return reading.finish()

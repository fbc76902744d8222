"""Day statistics through the path drift reads them by: stored as ingest keeps a payer × code
group, sent as `DailyStatSeries` messages, decoded and joined as drift does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import numpy as np

from services.drift.ingest_client import entry_spans, joined, series_from_message
from services.drift.series import CellSeries, DayStat
from services.ingest.months import EPOCH, PackedMonth, Series, series_of_cells, span_starts
from services.ingest.server import MAX_SERIES_ENTRIES, daily_stat_series_messages


def packed_months(stats: list[DayStat]) -> list[PackedMonth]:
    """The days of one payer × code group (in order) packed by month, as ingest stores them
    in `ingest.daily_stat_months`."""
    months: dict[tuple[int, int], list[DayStat]] = {}
    for stat in stats:
        months.setdefault((stat.day.year, stat.day.month), []).append(stat)
    packed = []
    for days in months.values():
        codes = sorted({code for s in days for code in s.carc_counts})
        histogram = [
            (i, v, n) for i, s in enumerate(days) for v, n in sorted(s.decision_days.items())
        ]
        carc = [
            (i, codes.index(c), n)
            for i, s in enumerate(days)
            for c, n in sorted(s.carc_counts.items())
        ]
        amounts = [
            (s.decided, s.denied, s.partially_denied, s.billed_cents, s.allowed_cents,
             s.paid_cents, s.denied_billed_cents)
            for s in days
        ]  # fmt: skip
        packed.append(
            PackedMonth(
                np.array([(s.day - EPOCH).days for s in days], dtype=">i4").tobytes(),
                np.array(amounts, dtype=">i8").tobytes(),
                np.array(histogram, dtype=">i4").reshape(-1, 3).tobytes(),
                codes,
                np.array(carc, dtype=">i4").reshape(-1, 3).tobytes(),
            )
        )
    return packed


def stored(
    stats: list[DayStat], start: dt.date, end: dt.date, spans: np.ndarray | None = None
) -> Series | None:
    """One payer × code group's days (in order) from `start` to `end` as ingest reads them
    from its packed months."""
    (series,) = series_of_cells(
        [(stats[0].payer, stats[0].code_group, packed_months(stats))], start, end, spans
    )
    return series


def read(
    stats: list[DayStat],
    start: dt.date,
    end: dt.date,
    starts: Collection[dt.date] = (),
    *,
    max_entries: int = MAX_SERIES_ENTRIES,
) -> list[CellSeries]:
    """`stats` from `start` to `end` as drift reads them, entries summed over the spans
    `starts` begin (each day its own span when there are none)."""
    by_cell: dict[tuple[str, str], list[DayStat]] = {}
    for stat in sorted(stats, key=lambda s: (s.payer, s.code_group, s.day)):
        if start <= stat.day <= end:
            by_cell.setdefault((stat.payer, stat.code_group), []).append(stat)
    spans = entry_spans(start, end, starts)
    messages = []
    for days in by_cell.values():
        series = stored(days, start, end, span_starts(starts, start, end) if starts else None)
        assert series is not None
        messages += daily_stat_series_messages(series, max_entries, packed=True)
    return joined(series_from_message(message, spans) for message in messages)

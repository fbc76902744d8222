"""Day statistics through the path drift reads them by: stored as ingest keeps a payer × code
group, sent as `DailyStatSeries` messages, decoded and joined as drift does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import numpy as np

from services.drift.ingest_client import entry_spans, joined, series_from_message
from services.drift.series import CellSeries, DayStat
from services.ingest.months import EPOCH, Series, span_starts
from services.ingest.server import MAX_SERIES_ENTRIES, daily_stat_series_messages


def stored(stats: list[DayStat]) -> Series:
    """The stored statistics of one payer × code group (days in order) as ingest reads them."""
    codes = sorted({code for s in stats for code in s.carc_counts})
    histogram = [(i, v, n) for i, s in enumerate(stats) for v, n in s.decision_days.items()]
    carc = [(i, codes.index(c), n) for i, s in enumerate(stats) for c, n in s.carc_counts.items()]
    return Series(
        stats[0].payer,
        stats[0].code_group,
        np.array([(s.day - EPOCH).days for s in stats], dtype=np.int32),
        np.array(
            [
                (
                    s.decided,
                    s.denied,
                    s.partially_denied,
                    s.billed_cents,
                    s.allowed_cents,
                    s.paid_cents,
                    s.denied_billed_cents,
                )
                for s in stats
            ],
            dtype=np.int64,
        ).reshape(-1, 7),
        np.array(histogram, dtype=np.int32).reshape(-1, 3),
        codes,
        np.array(carc, dtype=np.int32).reshape(-1, 3),
    )


def read(
    stats: list[DayStat],
    start: dt.date,
    end: dt.date,
    starts: Collection[dt.date] = (),
    *,
    packed: bool = True,
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
        series = stored(days)
        if starts:
            series = series.summed_over_spans(span_starts(starts, start, end))
        messages += daily_stat_series_messages(series, max_entries, packed=packed)
    return joined(series_from_message(message, spans) for message in messages)

"""Day statistics and pending claims through the path drift reads them by: stored as ingest
keeps a payer × code group, sent as `DailyStatSeries` messages, decoded and joined as drift
does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import numpy as np

from services.drift.ingest_client import entry_spans, joined, series_from_message
from services.drift.series import CellSeries, DayStat, PendingStat
from services.ingest.daily_statistics import narrow_bytes, narrow_columns
from services.ingest.months import (
    EPOCH,
    NO_PENDING,
    PackedMonth,
    PendingClaims,
    Series,
    series_of_cells,
    span_starts,
)
from services.ingest.server import MAX_SERIES_ENTRIES, daily_stat_series_messages

# How a month's histogram and CARC entries are kept: all as int4 triplets (as before narrow
# entries were written, or with NARROW_MONTH_ENTRIES off), narrow where they fit (as ingest
# writes them by default), or some of each (those of an odd value stay triplets too).
ENTRY_FORMATS = ("wide", "narrow", "mixed")


def packed_months(stats: list[DayStat], entries: str = "narrow") -> list[PackedMonth]:
    """The days of one payer × code group (in order) packed by month, as ingest stores them
    in `ingest.daily_stat_months`, their entries kept as `entries` (ENTRY_FORMATS) says."""
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
        patient = [s.patient_responsibility_cents for s in days]
        wide_histogram, narrow_histogram = _kept(histogram, entries)
        wide_carc, narrow_carc = _kept(carc, entries)
        packed.append(
            PackedMonth(
                np.array([(s.day - EPOCH).days for s in days], dtype=">i4").tobytes(),
                np.array(amounts, dtype=">i8").tobytes(),
                # As the migration leaves a month whose patients owe nothing: empty.
                np.array(patient, dtype=">i8").tobytes() if any(patient) else b"",
                wide_histogram,
                codes,
                wide_carc,
                narrow_histogram,
                narrow_carc,
            )
        )
    return packed


def _kept(entries: list[tuple[int, int, int]], formats: str) -> tuple[bytes, bytes]:
    """A month's entries as int4 triplets and as narrow entries, as `formats` keeps them
    (claims past an int2 are triplets whatever it says, as ingest writes them)."""
    slim = [
        e
        for e in entries
        if -(1 << 15) <= e[2] < 1 << 15
        and (formats == "narrow" or (formats == "mixed" and not e[1] % 2))
    ]
    wide = [e for e in entries if e not in slim]
    return (
        np.array(wide, dtype=">i4").reshape(-1, 3).tobytes(),
        narrow_bytes(np.array(slim, dtype=np.int64).reshape(-1, 3)),
    )


def month_entries(wide: bytes, narrow: bytes) -> list[tuple[int, int, int]]:
    """A stored month's entries, int4 triplets and narrow ones, as (day index, value, claims)
    in order."""
    triplets = np.frombuffer(wide, dtype=">i4").reshape(-1, 3).tolist()
    slim = zip(*(column.tolist() for column in narrow_columns(narrow)), strict=True)
    return sorted([*map(tuple, triplets), *slim])


def pending_claims(pending: list[PendingStat]) -> PendingClaims:
    """One payer × code group's pending claims as ingest reads them (`ingest.pending_stats`)."""
    if not pending:
        return NO_PENDING
    ordered = sorted(pending, key=lambda p: p.started)
    return PendingClaims(
        np.array([(p.started - EPOCH).days for p in ordered], dtype=np.int32),
        np.array([p.claims for p in ordered], dtype=np.int64),
    )


def stored(
    stats: list[DayStat],
    start: dt.date,
    end: dt.date,
    spans: np.ndarray | None = None,
    pending: list[PendingStat] | None = None,
) -> Series | None:
    """One payer × code group's days (in order) from `start` to `end`, and its pending
    claims, as ingest reads them from its packed months and pending counts."""
    cell = stats[0] if stats else (pending or [])[0]
    (series,) = series_of_cells(
        [(cell.payer, cell.code_group, packed_months(stats), pending_claims(pending or []))],
        start,
        end,
        spans,
    )
    return series


def read(
    stats: list[DayStat],
    start: dt.date,
    end: dt.date,
    starts: Collection[dt.date] = (),
    *,
    max_entries: int = MAX_SERIES_ENTRIES,
    pending: Collection[PendingStat] = (),
) -> list[CellSeries]:
    """`stats` from `start` to `end`, and the claims `pending`, as drift reads them, entries
    summed over the spans `starts` begin (each day its own span when there are none)."""
    by_cell: dict[tuple[str, str], list[DayStat]] = {}
    for stat in sorted(stats, key=lambda s: (s.payer, s.code_group, s.day)):
        if start <= stat.day <= end:
            by_cell.setdefault((stat.payer, stat.code_group), []).append(stat)
    waiting: dict[tuple[str, str], list[PendingStat]] = {}
    for one in pending:
        waiting.setdefault((one.payer, one.code_group), []).append(one)
    spans = entry_spans(start, end, starts)
    messages = []
    for cell in sorted(by_cell.keys() | waiting.keys()):
        series = stored(
            by_cell.get(cell, []),
            start,
            end,
            span_starts(starts, start, end) if starts else None,
            waiting.get(cell, []),
        )
        assert series is not None
        messages += daily_stat_series_messages(series, max_entries, packed=True)
    return joined(series_from_message(message, spans) for message in messages)

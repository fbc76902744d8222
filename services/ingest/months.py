"""A payer × code group's daily statistics over a date range, from its packed months.

`ingest.daily_stat_months` keeps each month of a cell's daily statistics as packed
big-endian arrays (see services/ingest/counting.py). A series is the months' arrays joined:
day indexes of the histogram and CARC entries shifted by the days before their month, each
month's CARC code indexes mapped into the series' code list, and the days outside the range
cut off. No count map is unfolded, so reading a year of a cell costs twelve rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.ingest.counting import DAY_AMOUNTS

# Packed days, and days on the wire, count from this one.
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class PackedMonth:
    """One row of `ingest.daily_stat_months` (without its key)."""

    days: bytes
    amounts: bytes
    histogram: bytes
    carc_codes: Sequence[str]
    carc: bytes


@dataclass(frozen=True)
class Series:
    """The days of one payer × code group as arrays, in the layout of `DailyStatSeries`:
    `dates` (days since 1970-01-01), `amounts` (a row of DAY_AMOUNTS per day, int64),
    `histogram` and `carc` (rows of day index, value or code index, claims; int32)."""

    payer: str
    code_group: str
    dates: np.ndarray
    amounts: np.ndarray
    histogram: np.ndarray
    carc_codes: list[str]
    carc: np.ndarray

    def days(self, first: int, stop: int) -> Series:
        """The days `first` to `stop` (exclusive), their entries' day indexes counted from
        `first`; the CARC code list stays whole."""
        return Series(
            self.payer,
            self.code_group,
            self.dates[first:stop],
            self.amounts[first:stop],
            _entries_of_days(self.histogram, first, stop),
            self.carc_codes,
            _entries_of_days(self.carc, first, stop),
        )


def _entries_of_days(entries: np.ndarray, first: int, stop: int) -> np.ndarray:
    kept = entries[(entries[:, 0] >= first) & (entries[:, 0] < stop)]
    kept[:, 0] -= first
    return kept


def span_starts(days: Iterable[dt.date], start: dt.date, end: dt.date) -> np.ndarray:
    """The days of `days` that begin a span inside `start`..`end` (the range's first span
    begins on `start` anyway), as ascending days since 1970-01-01."""
    return np.array(sorted({(day - EPOCH).days for day in days if start < day <= end}), np.int32)


def series_of_months(
    payer: str,
    code_group: str,
    months: Sequence[PackedMonth],
    start: dt.date,
    end: dt.date,
    spans: np.ndarray | None = None,
) -> Series | None:
    """The series of `months` (in order) from `start` to `end`, with only the CARC codes it
    uses; None when no day of it is in the range. With `spans` (see `span_starts`), the
    histogram and CARC entries are summed over the spans of days those begin, each sum an
    entry of its span's last day (`StreamDailyStatSeriesRequest.entry_span_starts`).

    The months are joined as one: their packed arrays concatenated and decoded once, each
    entry's day index shifted by the days of the months before its own."""
    first_day, last_day = (start - EPOCH).days, (end - EPOCH).days
    days = np.frombuffer(b"".join(m.days for m in months), dtype=">i4")
    low, high = (int(i) for i in np.searchsorted(days, (first_day, last_day + 1)))
    if low == high:
        return None
    month_days = [len(m.days) // 4 for m in months]
    before = np.cumsum(month_days) - month_days
    dates = days[low:high].astype(np.int32)
    # Where each of the months' days goes: its index in the series, or with spans the index
    # of its span's last day; days outside the range to one slot past the series' days.
    slot = np.full(len(days), high - low, dtype=np.int64)
    if spans is None:
        slot[low:high] = np.arange(high - low)
    else:
        # Days are in order, so each span's days are a run; its last day closes the run.
        span = np.searchsorted(spans, dates, side="right")
        slot[low:high] = np.searchsorted(span, span, side="right") - 1
    summed = spans is not None
    histogram = _entries([m.histogram for m in months], before, slot, high - low, summed)
    # Each month numbers its own CARC codes; the series numbers those it uses, in order.
    month_codes = [list(m.carc_codes) for m in months]
    codes = sorted({code for listed in month_codes for code in listed})
    code_counts = [len(listed) for listed in month_codes]
    series_code = (
        np.searchsorted(codes, [c for listed in month_codes for c in listed]),
        np.cumsum(code_counts) - code_counts,
    )
    carc = _entries([m.carc for m in months], before, slot, high - low, summed, series_code)
    used = np.bincount(carc[:, 1], minlength=len(codes)) > 0
    if not used.all():
        carc[:, 1] = (np.cumsum(used) - 1).astype(np.int32)[carc[:, 1]]
    amounts = np.frombuffer(b"".join(m.amounts for m in months), dtype=">i8")
    return Series(
        payer,
        code_group,
        dates,
        amounts.reshape(-1, len(DAY_AMOUNTS))[low:high].astype(np.int64),
        histogram,
        [code for code, kept in zip(codes, used.tolist(), strict=True) if kept],
        carc,
    )


# Above this many (day, value) pairs an entry could take, entries are summed by sorting
# instead of counting into one slot per pair.
_MAX_DENSE_SLOTS = 1 << 22


def _entries(
    packed: Sequence[bytes],
    before: np.ndarray,
    slot: np.ndarray,
    days: int,
    summed: bool,
    codes: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The months' triplets (day index in the month, value, claims) as native int32 rows of
    the series: each entry moved to the `slot` of its day (`before` its month, the months'
    days before it; a slot of `days` or more is outside the range and dropped), its CARC
    code index made the series' when `codes` (the series' index of every month's codes, and
    where each month's begin) are given, and, when `summed`, entries of the same slot and
    value added up (in slot, then value order)."""
    per_month = [len(p) // 12 for p in packed]
    raw = np.frombuffer(b"".join(packed), dtype=">i4").reshape(-1, 3)
    if not len(raw):
        return np.zeros((0, 3), dtype=np.int32)
    at = slot[raw[:, 0] + np.repeat(before, per_month)]
    value = raw[:, 1].astype(np.int64)
    if codes is not None:
        series_code, offsets = codes
        value = series_code[value + np.repeat(offsets, per_month)]
    if not summed:
        kept = at < days
        return np.column_stack((at[kept], value[kept], raw[kept, 2])).astype(np.int32)
    width = int(value.max()) + 1
    if (days + 1) * width <= _MAX_DENSE_SLOTS:
        # One counter per (slot, value); those past the series' days are dropped.
        sums = np.bincount(at * width + value, weights=raw[:, 2], minlength=(days + 1) * width)
        key = np.flatnonzero(sums[: days * width])
        claims = sums[key]
    else:
        kept = at < days
        key, where = np.unique(at[kept] * width + value[kept], return_inverse=True)
        claims = np.bincount(where, weights=raw[kept, 2])
    return np.column_stack((key // width, key % width, claims)).astype(np.int32)


def series_of_rows(
    rows: Iterable[Sequence[Any]], start: dt.date, end: dt.date, spans: np.ndarray | None = None
) -> Iterator[Series]:
    """Every series of the rows of `SERIES_QUERY`, in order (see `series_of_months`)."""
    series = SeriesOfMonths(start, end, spans)
    for row in rows:
        if (done := series.add(row)) is not None:
            yield done
    if (last := series.finish()) is not None:
        yield last


class SeriesOfMonths:
    """Turns the rows of `SERIES_QUERY` (packed months in payer, code group, month order)
    into series, one cell at a time: `add` returns a cell's series when the next cell
    begins, `finish` the last one (see `series_of_months`)."""

    def __init__(self, start: dt.date, end: dt.date, spans: np.ndarray | None = None) -> None:
        self._start, self._end, self._spans = start, end, spans
        self._cell: tuple[str, str] | None = None
        self._months: list[PackedMonth] = []

    def add(self, row: Sequence[Any]) -> Series | None:
        payer, code_group, *packed = row
        done = None
        if (payer, code_group) != self._cell:
            done = self.finish()
            self._cell = (payer, code_group)
        self._months.append(PackedMonth(*packed))
        return done

    def finish(self) -> Series | None:
        cell, months = self._cell, self._months
        self._cell, self._months = None, []
        if cell is None:
            return None
        return series_of_months(*cell, months, self._start, self._end, self._spans)

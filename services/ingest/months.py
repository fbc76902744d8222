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

    def summed_over_spans(self, span_starts: np.ndarray) -> Series:
        """The histogram and CARC entries summed over the spans of days that `span_starts`
        (days since 1970-01-01, ascending) begin, each sum an entry of its span's last day
        (see `StreamDailyStatSeriesRequest.entry_span_starts`); the days stay as they are."""
        span = np.searchsorted(span_starts, self.dates, side="right")
        # Days are in order, so each span's days are a run; its last day closes the run.
        last_of_span = (np.searchsorted(span, span, side="right") - 1).astype(np.int32)
        return Series(
            self.payer,
            self.code_group,
            self.dates,
            self.amounts,
            _summed(self.histogram, last_of_span),
            self.carc_codes,
            _summed(self.carc, last_of_span),
        )


def span_starts(days: Iterable[dt.date], start: dt.date, end: dt.date) -> np.ndarray:
    """The days of `days` that begin a span inside `start`..`end` (the range's first span
    begins on `start` anyway), as ascending days since 1970-01-01, for `summed_over_spans`."""
    return np.array(sorted({(day - EPOCH).days for day in days if start < day <= end}), np.int32)


# Above this many (day, value) pairs an entry could take, entries are summed by sorting
# instead of counting into one slot per pair.
_MAX_DENSE_SLOTS = 1 << 22


def _summed(entries: np.ndarray, last_of_span: np.ndarray) -> np.ndarray:
    """Entries (day index, value, claims) moved to their span's last day, those of the same
    day and value summed, in day then value order."""
    if not len(entries):
        return entries
    day = last_of_span[entries[:, 0]].astype(np.int64)
    width = int(entries[:, 1].max()) + 1
    key = day * width + entries[:, 1]
    claims = entries[:, 2].astype(np.int64)
    if len(last_of_span) * width <= _MAX_DENSE_SLOTS:
        sums = np.bincount(key, weights=claims)
        key = np.flatnonzero(sums)
        summed = sums[key]
    else:
        key, at = np.unique(key, return_inverse=True)
        summed = np.bincount(at, weights=claims)
    return np.column_stack((key // width, key % width, summed)).astype(np.int32)


def _entries_of_days(entries: np.ndarray, first: int, stop: int) -> np.ndarray:
    kept = entries[(entries[:, 0] >= first) & (entries[:, 0] < stop)]
    kept[:, 0] -= first
    return kept


def series_of_months(
    payer: str, code_group: str, months: Sequence[PackedMonth], start: dt.date, end: dt.date
) -> Series | None:
    """The series of `months` (in order) from `start` to `end`, with only the CARC codes it
    uses; None when no day of it is in the range. Day numbers and entries stay 32-bit (as
    packed), each month copied once: a year of statistics is tens of megabytes."""
    first_day, last_day = (start - EPOCH).days, (end - EPOCH).days
    codes = sorted({code for m in months for code in m.carc_codes})
    dates, amounts, histogram, carc = [], [], [], []
    offset = 0
    for month in months:
        days = np.frombuffer(month.days, dtype=">i4")
        low, high = (int(i) for i in np.searchsorted(days, (first_day, last_day + 1)))
        if low == high:
            continue
        dates.append(days[low:high])
        amounts.append(
            np.frombuffer(month.amounts, dtype=">i8").reshape(-1, len(DAY_AMOUNTS))[low:high]
        )
        whole = low == 0 and high == len(days)
        histogram.append(_entries(month.histogram, low, high, offset, whole))
        entries = _entries(month.carc, low, high, offset, whole)
        if len(entries):
            # Each month numbers its own codes; the series numbers the union of them.
            entries[:, 1] = np.searchsorted(codes, month.carc_codes).astype(np.int32)[entries[:, 1]]
        carc.append(entries)
        offset += high - low
    if not offset:
        return None
    joined_carc = np.concatenate(carc)
    # Only the codes the days in the range carry.
    used = np.bincount(joined_carc[:, 1], minlength=len(codes)) > 0
    joined_carc[:, 1] = (np.cumsum(used) - 1).astype(np.int32)[joined_carc[:, 1]]
    return Series(
        payer,
        code_group,
        np.concatenate(dates).astype(np.int32),
        np.concatenate(amounts).astype(np.int64),
        np.concatenate(histogram),
        [code for code, kept in zip(codes, used.tolist(), strict=True) if kept],
        joined_carc,
    )


def _entries(packed: bytes, low: int, high: int, offset: int, whole: bool) -> np.ndarray:
    """A month's triplets (day index, value, claims) of its days `low` to `high`, as native
    int32, their day indexes counted from the series' first day (`offset` days before)."""
    entries = np.frombuffer(packed, dtype=">i4").reshape(-1, 3)
    if not whole:
        entries = entries[(entries[:, 0] >= low) & (entries[:, 0] < high)]
    native = entries.astype(np.int32)
    native[:, 0] += offset - low
    return native


def series_of_rows(rows: Iterable[Sequence[Any]], start: dt.date, end: dt.date) -> Iterator[Series]:
    """Every series of the rows of `SERIES_QUERY`, in order."""
    series = SeriesOfMonths(start, end)
    for row in rows:
        if (done := series.add(row)) is not None:
            yield done
    if (last := series.finish()) is not None:
        yield last


class SeriesOfMonths:
    """Turns the rows of `SERIES_QUERY` (packed months in payer, code group, month order)
    into series, one cell at a time: `add` returns a cell's series when the next cell
    begins, `finish` the last one."""

    def __init__(self, start: dt.date, end: dt.date) -> None:
        self._start, self._end = start, end
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
        return series_of_months(*cell, months, self._start, self._end)

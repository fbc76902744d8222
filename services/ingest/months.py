"""A payer × code group's daily statistics over a date range, from its packed months.

`ingest.daily_stat_months` keeps each month of a cell's daily statistics as packed
big-endian arrays (see services/ingest/counting.py). A series is the months' arrays joined:
day indexes of the histogram and CARC entries shifted by the days before their month, each
month's CARC code indexes mapped into the series' code list, and the days outside the range
cut off. No count map is unfolded, so reading a year of a cell costs twelve rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.ingest.counting import DAY_AMOUNTS

_EPOCH = dt.date(1970, 1, 1)


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
    """The days of one payer × code group as arrays (int64), in the layout of
    `DailyStatSeries`: `dates` (days since 1970-01-01), `amounts` (a row of DAY_AMOUNTS per
    day), `histogram` and `carc` (rows of day index, value or code index, claims)."""

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


def series_of_months(
    payer: str, code_group: str, months: Sequence[PackedMonth], start: dt.date, end: dt.date
) -> Series | None:
    """The series of `months` (in order) from `start` to `end`, with only the CARC codes it
    uses; None when no day of it is in the range."""
    days = [np.frombuffer(m.days, dtype=">i4") for m in months]
    offsets = np.cumsum([0, *(len(d) for d in days[:-1])])
    dates = np.concatenate(days).astype(np.int64)
    first, stop = np.searchsorted(dates, [(start - _EPOCH).days, (end - _EPOCH).days + 1])
    if first >= stop:
        return None
    amounts = np.concatenate(
        [np.frombuffer(m.amounts, dtype=">i8").reshape(-1, len(DAY_AMOUNTS)) for m in months]
    ).astype(np.int64)
    histogram = _joined_entries([m.histogram for m in months], offsets)
    carc = _joined_entries([m.carc for m in months], offsets)
    # Each month numbers its own codes; the series numbers the union of them.
    codes = sorted({code for m in months for code in m.carc_codes})
    month_codes = [np.searchsorted(codes, m.carc_codes).astype(np.int64) for m in months]
    if len(carc):
        month_of = np.searchsorted(offsets, carc[:, 0], side="right") - 1
        base = np.cumsum([0, *(len(c) for c in month_codes[:-1])])
        carc[:, 1] = np.concatenate(month_codes)[base[month_of] + carc[:, 1]]
    whole = Series(payer, code_group, dates, amounts, histogram, codes, carc)
    series = whole.days(int(first), int(stop))
    used = np.unique(series.carc[:, 1])
    series.carc[:, 1] = np.searchsorted(used, series.carc[:, 1])
    return Series(
        payer,
        code_group,
        series.dates,
        series.amounts,
        series.histogram,
        [codes[i] for i in used.tolist()],
        series.carc,
    )


def _joined_entries(packed: list[bytes], offsets: np.ndarray) -> np.ndarray:
    """Triplets (day index, value, claims) of every month, day indexes counted from the
    first month's first day."""
    months = [np.frombuffer(p, dtype=">i4").reshape(-1, 3).astype(np.int64) for p in packed]
    for month, offset in zip(months, offsets.tolist(), strict=True):
        month[:, 0] += offset
    return np.concatenate(months)


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

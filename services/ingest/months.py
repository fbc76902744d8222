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


def series_row(
    payer: str, code_group: str, months: Sequence[PackedMonth], start: dt.date, end: dt.date
) -> tuple[Any, ...] | None:
    """The series of `months` (in order) from `start` to `end`, as lists in the order of
    `DailyStatSeries`' fields; None when no day of it is in the range."""
    days = [np.frombuffer(m.days, dtype=">i4") for m in months]
    offsets = np.cumsum([0, *(len(d) for d in days[:-1])])
    dates = np.concatenate(days)
    first, stop = np.searchsorted(dates, [(start - _EPOCH).days, (end - _EPOCH).days + 1])
    if first >= stop:
        return None
    amounts = np.concatenate(
        [np.frombuffer(m.amounts, dtype=">i8").reshape(-1, len(DAY_AMOUNTS)) for m in months]
    )[first:stop]
    histogram = _entries([m.histogram for m in months], offsets, first, stop)
    codes = sorted({code for m in months for code in m.carc_codes})
    carc = _entries([m.carc for m in months], offsets, first, stop)
    if len(carc):
        # Each month numbers its own codes; the series numbers the union of them.
        local = np.concatenate(
            [
                np.searchsorted(codes, m.carc_codes) if m.carc_codes else np.zeros(0, int)
                for m in months
            ]
        ).astype(np.int64)
        base = np.cumsum([0, *(len(m.carc_codes) for m in months[:-1])])
        month_of = _month_of(carc, offsets, first)
        carc[:, 1] = local[base[month_of] + carc[:, 1]]
        used = np.unique(carc[:, 1])
        codes = [codes[i] for i in used.tolist()]
        carc[:, 1] = np.searchsorted(used, carc[:, 1])
    else:
        codes = []
    return (
        payer,
        code_group,
        dates[first:stop].tolist(),
        *(column.tolist() for column in amounts.T),
        *(column.tolist() for column in histogram.T),
        codes,
        *(column.tolist() for column in carc.T),
    )


def _entries(packed: list[bytes], offsets: np.ndarray, first: int, stop: int) -> np.ndarray:
    """Triplets (day index, value, claims) of every month, their day indexes counted from
    the series' first day in the range, those outside it dropped."""
    months = [np.frombuffer(p, dtype=">i4").reshape(-1, 3).astype(np.int64) for p in packed]
    for month, offset in zip(months, offsets.tolist(), strict=True):
        month[:, 0] += offset
    entries = np.concatenate(months) if months else np.zeros((0, 3), np.int64)
    kept = entries[(entries[:, 0] >= first) & (entries[:, 0] < stop)]
    kept[:, 0] -= first
    return kept


def _month_of(entries: np.ndarray, offsets: np.ndarray, first: int) -> np.ndarray:
    """Which month (index into `offsets`) each entry's day belongs to."""
    return np.searchsorted(offsets, entries[:, 0] + first, side="right") - 1


class SeriesRows:
    """Turns the rows of `SERIES_QUERY` (packed months in payer, code group, month order)
    into series rows, one cell at a time: `add` returns a cell's series when the next cell
    begins, `finish` the last one."""

    def __init__(self, start: dt.date, end: dt.date) -> None:
        self._start, self._end = start, end
        self._cell: tuple[str, str] | None = None
        self._months: list[PackedMonth] = []

    def add(self, row: Sequence[Any]) -> tuple[Any, ...] | None:
        payer, code_group, *packed = row
        done = None
        if (payer, code_group) != self._cell:
            done = self.finish()
            self._cell = (payer, code_group)
        self._months.append(PackedMonth(*packed))
        return done

    def finish(self) -> tuple[Any, ...] | None:
        cell, months = self._cell, self._months
        self._cell, self._months = None, []
        if cell is None:
            return None
        return series_row(*cell, months, self._start, self._end)

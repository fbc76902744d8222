"""A customer's daily statistics as detection reads them: one series of days per payer × code
group, in parallel arrays, summed over any window in a few array operations.

Ingest streams each payer × code group as one message of parallel arrays
(`StreamDailyStatSeries`); this module holds the same shape in numpy, builds it from single
days where a caller has those (tests, the evaluation), and merges a payer's code groups into
the payer-level series. Pure: no gRPC, no database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from services.drift.statistics import Histogram, IntArray

ALL_CODES = ""  # the code group of a payer-level series, and of claims without a code


@dataclass(frozen=True)
class DayStat:
    """One day of one payer × code group."""

    payer: str
    code_group: str
    day: dt.date
    decided: int
    denied: int
    partially_denied: int
    decision_days: Mapping[int, int]
    billed_cents: int
    allowed_cents: int
    paid_cents: int
    denied_billed_cents: int
    carc_counts: Mapping[str, int]


@dataclass(frozen=True)
class Window:
    start: dt.date
    end: dt.date

    def __contains__(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class EntrySpans:
    """How a series' histogram and CARC entries were read: summed over spans of days, each
    entry on a day of its span. `first` to `stop` (exclusive) is the range read and `starts`
    the days that begin a span inside it, all as ordinals. Sums over a window are exact when
    neither of its ends cuts a span, and refused otherwise."""

    first: int
    stop: int
    starts: frozenset[int]

    def check(self, window: Window) -> None:
        for edge in (window.start.toordinal(), window.end.toordinal() + 1):
            if self.first < edge < self.stop and edge not in self.starts:
                raise ValueError(
                    f"the window {window.start}..{window.end} cuts a span of days whose "
                    "entries were read summed"
                )


# The per-day amounts of a series, in this order.
AMOUNTS = (
    "decided",
    "denied",
    "billed_cents",
    "allowed_cents",
    "paid_cents",
    "denied_billed_cents",
)
ALLOWED, PAID = AMOUNTS.index("allowed_cents"), AMOUNTS.index("paid_cents")


@dataclass(frozen=True)
class Totals:
    """One window of one series, summed."""

    decided: int
    denied: int
    billed_cents: int
    allowed_cents: int
    paid_cents: int
    denied_billed_cents: int
    decision_days: Histogram
    carc_counts: dict[str, int]
    # Paid and allowed cents of each day with claims, for the payment-ratio test.
    daily_paid: IntArray
    daily_allowed: IntArray

    @property
    def denial_rate(self) -> float:
        return self.denied / self.decided if self.decided else 0.0


@dataclass(frozen=True, eq=False)
class CellSeries:
    """The days of one payer × code group with claims decided, as parallel arrays.

    `days` are decision dates as proleptic ordinals (`date.toordinal()`), distinct and
    ascending; `amounts` has one row per name in `AMOUNTS` and one column per day. The
    decision-days histogram and the CARC counts are lists of entries, each naming the day it
    belongs to by its index in `days`; entries may come in any order (they are put in day
    order) and may repeat a value. With `entry_spans`, an entry holds a whole span of days
    (see `EntrySpans`), and only windows made of whole spans can be summed.
    """

    payer: str
    code_group: str
    days: IntArray
    amounts: IntArray  # shape (len(AMOUNTS), len(days))
    histogram_day: IntArray
    histogram_value: IntArray  # days to decision, ≥ 0
    histogram_claims: IntArray
    carc_day: IntArray
    carc_code: IntArray  # index into `codes`
    carc_claims: IntArray
    codes: tuple[str, ...]
    entry_spans: EntrySpans | None = None

    def __post_init__(self) -> None:
        # Entries in day order, so that a window's entries are one slice.
        for day, columns in (
            ("histogram_day", ("histogram_value", "histogram_claims")),
            ("carc_day", ("carc_code", "carc_claims")),
        ):
            at = getattr(self, day)
            if at.size > 1 and bool(np.any(at[1:] < at[:-1])):
                order = np.argsort(at, kind="stable")
                for name in (day, *columns):
                    object.__setattr__(self, name, getattr(self, name)[order])

    def has_days_in(self, start: dt.date, end: dt.date) -> bool:
        low, high = np.searchsorted(self.days, (start.toordinal(), end.toordinal() + 1))
        return bool(high > low)

    def decided_in(self, window: Window) -> int:
        low, high = self._bounds(window)
        return int(self.amounts[0, low:high].sum())

    def totals(self, window: Window) -> Totals:
        if self.entry_spans is not None:
            self.entry_spans.check(window)
        low, high = self._bounds(window)
        decided, denied, billed, allowed, paid, denied_billed = (
            self.amounts[:, low:high].sum(axis=1).tolist()
        )
        first, last = np.searchsorted(self.histogram_day, (low, high))
        values = self.histogram_value[first:last]
        if values.size:
            dense = np.bincount(values, weights=self.histogram_claims[first:last])
            present = np.flatnonzero(dense)
            histogram = Histogram(present, dense[present].astype(np.int64))
        else:
            histogram = Histogram(_EMPTY, _EMPTY)
        first, last = np.searchsorted(self.carc_day, (low, high))
        carc = np.bincount(
            self.carc_code[first:last],
            weights=self.carc_claims[first:last],
            minlength=len(self.codes),
        )
        return Totals(
            decided,
            denied,
            billed,
            allowed,
            paid,
            denied_billed,
            decision_days=histogram,
            carc_counts={self.codes[i]: int(carc[i]) for i in np.flatnonzero(carc).tolist()},
            daily_paid=self.amounts[PAID, low:high],
            daily_allowed=self.amounts[ALLOWED, low:high],
        )

    def _bounds(self, window: Window) -> tuple[int, int]:
        low, high = np.searchsorted(
            self.days, (window.start.toordinal(), window.end.toordinal() + 1)
        )
        return int(low), int(high)


_EMPTY = np.zeros(0, dtype=np.int64)


def merged(payer: str, code_group: str, parts: Sequence[CellSeries]) -> CellSeries:
    """One series of everything in `parts` (read together: their entries summed over the
    same spans, if any), days that occur in several summed."""
    days = np.unique(np.concatenate([part.days for part in parts]))
    amounts = np.zeros((len(AMOUNTS), days.size), dtype=np.int64)
    codes = tuple(sorted({code for part in parts for code in part.codes}))
    code_index = {code: i for i, code in enumerate(codes)}
    histogram: list[tuple[IntArray, IntArray, IntArray]] = []
    carc: list[tuple[IntArray, IntArray, IntArray]] = []
    for part in parts:
        at = np.searchsorted(days, part.days)
        for row in range(len(AMOUNTS)):
            np.add.at(amounts[row], at, part.amounts[row])
        histogram.append((at[part.histogram_day], part.histogram_value, part.histogram_claims))
        recode = np.array([code_index[code] for code in part.codes], dtype=np.int64)
        carc.append((at[part.carc_day], recode[part.carc_code], part.carc_claims))
    return CellSeries(
        payer,
        code_group,
        days,
        amounts,
        *_concatenated(histogram),
        *_concatenated(carc),
        codes,
        parts[0].entry_spans,
    )


def _concatenated(
    entries: list[tuple[IntArray, IntArray, IntArray]],
) -> tuple[IntArray, IntArray, IntArray]:
    day, value, claims = zip(*entries, strict=True)
    return np.concatenate(day), np.concatenate(value), np.concatenate(claims)


def payer_series(series: Iterable[CellSeries]) -> dict[str, CellSeries]:
    """Each payer's code groups (claims without a code included) merged into one series."""
    by_payer: dict[str, list[CellSeries]] = {}
    for one in series:
        by_payer.setdefault(one.payer, []).append(one)
    return {
        payer: parts[0] if len(parts) == 1 else merged(payer, ALL_CODES, parts)
        for payer, parts in by_payer.items()
    }


def cell_series(stats: Iterable[DayStat]) -> list[CellSeries]:
    """Single days as series, one per payer × code group (for callers that have days)."""
    by_cell: dict[tuple[str, str], list[DayStat]] = {}
    for stat in stats:
        by_cell.setdefault((stat.payer, stat.code_group), []).append(stat)
    series = []
    for (payer, code_group), days in sorted(by_cell.items()):
        codes = tuple(sorted({code for day in days for code in day.carc_counts}))
        code_index = {code: i for i, code in enumerate(codes)}
        histogram = [
            (i, value, claims)
            for i, day in enumerate(days)
            for value, claims in day.decision_days.items()
        ]
        carc = [
            (i, code_index[code], claims)
            for i, day in enumerate(days)
            for code, claims in day.carc_counts.items()
        ]
        one_per_stat = CellSeries(
            payer,
            code_group,
            np.array([day.day.toordinal() for day in days], dtype=np.int64),
            np.array(
                [
                    [d.decided for d in days],
                    [d.denied for d in days],
                    [d.billed_cents for d in days],
                    [d.allowed_cents for d in days],
                    [d.paid_cents for d in days],
                    [d.denied_billed_cents for d in days],
                ],
                dtype=np.int64,
            ).reshape(len(AMOUNTS), len(days)),
            *_columns(histogram),
            *_columns(carc),
            codes,
        )
        # Sorted, and a day given twice summed.
        series.append(merged(payer, code_group, [one_per_stat]))
    return series


def _columns(entries: list[tuple[int, int, int]]) -> tuple[IntArray, IntArray, IntArray]:
    array = np.array(entries, dtype=np.int64).reshape(-1, 3)
    return array[:, 0].copy(), array[:, 1].copy(), array[:, 2].copy()

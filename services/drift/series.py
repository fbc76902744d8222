"""A customer's daily statistics as detection reads them: one series of days per payer × code
group, in parallel arrays, summed over any window in a few array operations.

Ingest streams each payer × code group as one message of parallel arrays
(`StreamDailyStatSeries`); this module holds the same shape in numpy, builds it from single
days where a caller has those (tests, the evaluation), and merges a payer's code groups into
the payer-level series. Pure: no gRPC, no database.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

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
    # The patients' share (deductible, coinsurance, copay) of the claims decided that day.
    patient_responsibility_cents: int = 0


@dataclass(frozen=True)
class PendingStat:
    """Claims of one payer × code group still pending, by the day they started (submission,
    or service when the submission date is not known)."""

    payer: str
    code_group: str
    started: dt.date
    claims: int


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
    "patient_responsibility_cents",
)
ALLOWED, PAID = AMOUNTS.index("allowed_cents"), AMOUNTS.index("paid_cents")
PATIENT = AMOUNTS.index("patient_responsibility_cents")


@dataclass(frozen=True)
class Totals:
    """One window of one series, summed."""

    decided: int
    denied: int
    billed_cents: int
    allowed_cents: int
    paid_cents: int
    denied_billed_cents: int
    patient_responsibility_cents: int
    decision_days: Histogram
    carc_counts: dict[str, int]
    # Paid, allowed and patient-share cents of each day with claims, for the payment test.
    daily_paid: IntArray
    daily_allowed: IntArray
    daily_patient: IntArray

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
    (see `EntrySpans`), and only windows made of whole spans can be summed. `pending_started`
    and `pending_claims` are the claims still pending when the statistics were read, by the
    day they started (ordinals, ascending, distinct).
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
    pending_started: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pending_claims: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

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

    def totals(self, window: Window) -> Totals:
        if self.entry_spans is not None:
            self.entry_spans.check(window)
        low, high = self._bounds(window)
        decided, denied, billed, allowed, paid, denied_billed, patient = (
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
            patient,
            decision_days=histogram,
            carc_counts={self.codes[i]: int(carc[i]) for i in np.flatnonzero(carc).tolist()},
            daily_paid=self.amounts[PAID, low:high],
            daily_allowed=self.amounts[ALLOWED, low:high],
            daily_patient=self.amounts[PATIENT, low:high],
        )

    def _bounds(self, window: Window) -> tuple[int, int]:
        low, high = np.searchsorted(
            self.days, (window.start.toordinal(), window.end.toordinal() + 1)
        )
        return int(low), int(high)


_EMPTY = np.zeros(0, dtype=np.int64)


Entries = tuple[IntArray, IntArray, IntArray]


# Running totals of a table's entries are kept at every this many day positions, or more
# where they would take more than _MAX_TOTALS cells (8 bytes each: 16 MB).
_BLOCK_POSITIONS = 16
_MAX_TOTALS = 2_000_000


class EntryTable:
    """Entries of every series of a table (histogram or CARC): the position of each entry's
    day in the table's days, its column (value or code) and its claims, in position order;
    summed between two positions for many rows at once, each set of windows once.

    A window is summed from running totals kept at every `block` positions (their difference
    between the first and last such position inside it) plus the entries at its two ends
    outside them: about as long for a year as for a week."""

    def __init__(self, entries: Entries, columns: int, positions: int) -> None:
        self.position, self.column, self.claims = entries
        self.columns = columns
        self.block = max(_BLOCK_POSITIONS, -(-(positions + 1) * max(columns, 1) // _MAX_TOTALS))
        self._blocks = positions // self.block + 1
        self._summed: dict[tuple[bytes, bytes], IntArray] = {}

    def between(self, low: IntArray, high: IntArray) -> IntArray:
        """Row i: the claims of each column of the entries whose day position is from
        low[i] to high[i] (exclusive). Read-only: the same windows summed again (a run's
        tests share many) are the same array."""
        key = (low.tobytes(), high.tobytes())
        counts = self._summed.get(key)
        if counts is None:
            counts = self._between(low, high)
            counts.setflags(write=False)
            self._summed[key] = counts
        return counts

    def _between(self, low: IntArray, high: IntArray) -> IntArray:
        # The first and last kept totals inside each window, where it holds any.
        first, last = -(-low // self.block), high // self.block
        inside = first <= last
        first, last = np.where(inside, first, 0), np.where(inside, last, 0)
        counts = (self._totals[last] - self._totals[first]).astype(np.int64)
        # The entries at its ends outside them (all of it where it holds none).
        end = np.where(inside, last * self.block, high)
        edges = _counts_between(
            (self.position, self.column, self.claims),
            np.concatenate([low, end]),
            np.concatenate([np.where(inside, first * self.block, high), high]),
            self.columns,
        )
        return counts + edges[: low.size] + edges[low.size :]

    @functools.cached_property
    def _totals(self) -> npt.NDArray[np.float64]:
        """Row k: the claims of each column of the entries before position k × block (in
        float64, exact below 2**53, where bincount sums them)."""
        totals = np.bincount(
            (self.position // self.block + 1) * self.columns + self.column,
            weights=self.claims,
            minlength=(self._blocks + 1) * self.columns,
        ).astype(np.float64, copy=False)
        return np.cumsum(totals.reshape(self._blocks + 1, self.columns), axis=0)


@dataclass(frozen=True)
class WindowTotals:
    """One window of every series of a `SeriesTable`, summed: row (or element) i is series
    i's. The amounts are summed at once; the days-to-decision and CARC counts, a row of
    columns each (up to thousands), only when read: most windows of a run (the denial and
    payment tests, the days a finding must hold) never read them."""

    sums: IntArray  # (len(AMOUNTS), series)
    values: IntArray
    # Where each series' days in the window are in the table's daily arrays: low to high.
    low: IntArray
    high: IntArray
    histogram: EntryTable
    carc: EntryTable

    def amount(self, name: str) -> IntArray:
        return self.sums[AMOUNTS.index(name)]

    @functools.cached_property
    def decision_days(self) -> IntArray:
        """(series, values): claims per days to decision (`values`)."""
        return self.histogram.between(self.low, self.high)

    @functools.cached_property
    def carc_counts(self) -> IntArray:
        """(series, codes): claims per code of the table's `codes`."""
        return self.carc.between(self.low, self.high)

    def with_counts(
        self,
        *,
        decision_days: IntArray | None = None,
        carc_counts: IntArray | None = None,
        **fields: Any,
    ) -> WindowTotals:
        """These totals with `fields` replaced and the counts given (those not given are
        this one's)."""
        changed = replace(self, **fields)
        changed.__dict__["decision_days"] = (
            self.decision_days if decision_days is None else decision_days
        )
        changed.__dict__["carc_counts"] = self.carc_counts if carc_counts is None else carc_counts
        return changed


# Days are ordinals below 2**22 (the year 9999 is 3,652,059); a series' number goes above.
_DAY_BITS = 22
# Past this many days-to-decision values in a table, only the values present get a column.
_MAX_VALUE_COLUMNS = 4096


class SeriesTable:
    """Many series as one, their days, amounts and entries end to end, so that a window is
    summed for all of them in a few array operations (a run tests a thousand cells)."""

    def __init__(self, series: Sequence[CellSeries]) -> None:
        self.series = list(series)
        count = len(self.series)
        sizes = np.array([one.days.size for one in self.series], dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(sizes)))
        owner = np.repeat(np.arange(count, dtype=np.int64), sizes)
        days = np.concatenate([one.days for one in self.series]) if count else _EMPTY
        self._keys = (owner << _DAY_BITS) | days
        amounts = (
            np.concatenate([one.amounts for one in self.series], axis=1)
            if count
            else np.zeros((len(AMOUNTS), 0), dtype=np.int64)
        )
        self.daily_paid, self.daily_allowed = amounts[PAID], amounts[ALLOWED]
        self.daily_patient = amounts[PATIENT]
        # Every series' days and daily claims decided and denied, end to end (for sequential
        # tests, day by day).
        self.days = days
        self.daily_decided = amounts[AMOUNTS.index("decided")]
        self.daily_denied = amounts[AMOUNTS.index("denied")]
        self._cumulative = np.zeros((len(AMOUNTS), amounts.shape[1] + 1), dtype=np.int64)
        np.cumsum(amounts, axis=1, out=self._cumulative[:, 1:])
        self._histogram = self._entries(
            offsets,
            [(one.histogram_day, one.histogram_value, one.histogram_claims) for one in self.series],
        )
        values = self._histogram[1]
        if values.size and int(values.max()) >= _MAX_VALUE_COLUMNS:
            self.values, column = np.unique(values, return_inverse=True)
        else:
            self.values = np.arange(int(values.max()) + 1 if values.size else 0)
            column = values
        self._histogram = (self._histogram[0], column, self._histogram[2])
        self.codes = tuple(sorted({code for one in self.series for code in one.codes}))
        self._carc = self._entries(
            offsets,
            [
                (
                    one.carc_day,
                    np.searchsorted(self.codes, one.codes)[one.carc_code],
                    one.carc_claims,
                )
                if one.codes
                else (_EMPTY, _EMPTY, _EMPTY)
                for one in self.series
            ],
        )
        self._histogram_table = EntryTable(self._histogram, self.values.size, days.size)
        self._carc_table = EntryTable(self._carc, len(self.codes), days.size)
        self._spans = {one.entry_spans for one in self.series if one.entry_spans is not None}

    @staticmethod
    def _entries(
        offsets: IntArray, entries: list[tuple[IntArray, IntArray, IntArray]]
    ) -> tuple[IntArray, IntArray, IntArray]:
        """(position of the entry's day in the table's days, value, claims), in position
        order (each series' entries are in day order)."""
        if not entries:
            return _EMPTY, _EMPTY, _EMPTY
        sizes = [day.size for day, _, _ in entries]
        owner = np.repeat(np.arange(len(entries), dtype=np.int64), sizes)
        day, value, claims = (np.concatenate(column) for column in zip(*entries, strict=True))
        return day + offsets[owner], value, claims

    def histogram_entries(self) -> tuple[IntArray, IntArray, IntArray]:
        """(position in the table's days, days to decision, claims) of every histogram
        entry, in position order."""
        position, _, claims = self._histogram
        return position, self._histogram_values, claims

    @functools.cached_property
    def _histogram_values(self) -> IntArray:
        return self.values[self._histogram[1]]

    @functools.cached_property
    def _pending(self) -> tuple[IntArray, IntArray, IntArray]:
        """(where each series' pending claims begin, and the start days and claims of every
        series' end to end)."""
        sizes = [one.pending_started.size for one in self.series]
        offsets = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
        if not self.series:
            return offsets, _EMPTY, _EMPTY
        started = np.concatenate([one.pending_started for one in self.series])
        claims = np.concatenate([one.pending_claims for one in self.series])
        return offsets, started, claims

    def pending_started_between(
        self, series: IntArray, first: IntArray, last: IntArray
    ) -> IntArray:
        """Row i: the claims of series `series[i]` still pending when the statistics were
        read that started from day `first[i]` to `last[i]` (ordinals, inclusive)."""
        offsets, started, claims = self._pending
        row, at = runs(offsets[series], offsets[series + 1])
        keep = (started[at] >= first[row]) & (started[at] <= last[row])
        return np.bincount(row[keep], weights=claims[at][keep], minlength=series.size).astype(
            np.int64
        )

    def totals(self, window: Window) -> WindowTotals:
        """`window` of every series, row i being series i."""
        count = len(self.series)
        return self.windows(
            np.arange(count),
            np.full(count, window.start.toordinal()),
            np.full(count, window.end.toordinal()),
        )

    def day_positions(
        self, series: IntArray, first: IntArray, last: IntArray
    ) -> tuple[IntArray, IntArray]:
        """Where the days of series `series[i]` from `first[i]` to `last[i]` (ordinals,
        inclusive) are in the table's daily arrays: low to high. Unlike `windows`, the days
        may cut a span: for callers that read the entries' days themselves."""
        ids = series.astype(np.int64) << _DAY_BITS
        keys = self._keys
        return np.searchsorted(keys, ids | first), np.searchsorted(keys, ids | (last + 1))

    def windows(self, series: IntArray, first: IntArray, last: IntArray) -> WindowTotals:
        """One window per row: row i sums series `series[i]` from day `first[i]` to `last[i]`
        (ordinals, inclusive). A series may be in several rows."""
        for start, end in set(zip(first.tolist(), last.tolist(), strict=True)):
            for spans in self._spans:
                spans.check(Window(dt.date.fromordinal(start), dt.date.fromordinal(end)))
        low, high = self.day_positions(series, first, last)
        return WindowTotals(
            self._cumulative[:, high] - self._cumulative[:, low],
            self.values,
            low,
            high,
            self._histogram_table,
            self._carc_table,
        )


def runs(first: IntArray, stop: IntArray) -> tuple[IntArray, IntArray]:
    """Every index from first[i] to stop[i] (exclusive), for each i in turn, and the i of
    each: (i, index)."""
    sizes = stop - first
    row = np.repeat(np.arange(first.size), sizes)
    return row, np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes - first, sizes)


def _counts_between(
    entries: tuple[IntArray, IntArray, IntArray], low: IntArray, high: IntArray, columns: int
) -> IntArray:
    """Row i: the claims of each column (value or code) of the entries whose day position
    is from low[i] to high[i] (exclusive)."""
    position, column, claims = entries
    first, last = np.searchsorted(position, low), np.searchsorted(position, high)
    counts = np.zeros((low.size, columns))
    for rows, row, at in runs_by_rows(first, last):
        counts[rows] = np.bincount(
            row * columns + column[at],
            weights=claims[at],
            minlength=(rows.stop - rows.start) * columns,
        ).reshape(rows.stop - rows.start, columns)
    return counts.astype(np.int64)


# Entries read at once by `runs_by_rows`: their arrays stay in the cache.
_ENTRIES_AT_ONCE = 1 << 15


def runs_by_rows(first: IntArray, stop: IntArray) -> Iterator[tuple[slice, IntArray, IntArray]]:
    """`runs(first, stop)` a few rows at a time, each piece holding about _ENTRIES_AT_ONCE
    indexes (or a single row): (the rows, each index's row counted from the piece's first,
    the index)."""
    cuts, taken = [0], 0
    for i, count in enumerate((stop - first).tolist()):
        if taken and taken + count > _ENTRIES_AT_ONCE:
            cuts.append(i)
            taken = 0
        taken += count
    cuts.append(first.size)
    for a, b in itertools.pairwise(cuts):
        if b > a:
            yield (slice(a, b), *runs(first[a:b], stop[a:b]))


def merged(payer: str, code_group: str, parts: Sequence[CellSeries]) -> CellSeries:
    """One series of everything in `parts` (read together: their entries summed over the
    same spans, if any), days that occur in several summed, and entries of the same day and
    value (or code) too: a payer's code groups share most of theirs, so its series holds
    about half the entries its groups do, and every window of it sums that many fewer."""
    days, place_of = _union(np.concatenate([part.days for part in parts]))
    amounts = np.zeros((len(AMOUNTS), days.size), dtype=np.int64)
    codes = tuple(sorted({code for part in parts for code in part.codes}))
    code_index = {code: i for i, code in enumerate(codes)}
    histogram: list[tuple[IntArray, IntArray, IntArray]] = []
    carc: list[tuple[IntArray, IntArray, IntArray]] = []
    for part in parts:
        at = place_of(part.days)
        once_each = at.size < 2 or bool(np.all(at[1:] > at[:-1]))
        if once_each and at.size == days.size:
            amounts += part.amounts  # a part with every day of the merge
        elif once_each:
            # Spread over the merge's days, then added: faster than adding at the indexes.
            spread = np.zeros_like(amounts)
            spread[:, at] = part.amounts
            amounts += spread
        else:  # a part that gives a day twice (see `cell_series`)
            np.add.at(amounts.T, at, part.amounts.T)
        histogram.append((at[part.histogram_day], part.histogram_value, part.histogram_claims))
        recode = np.array([code_index[code] for code in part.codes], dtype=np.int64)
        carc.append((at[part.carc_day], recode[part.carc_code], part.carc_claims))
    started = np.concatenate([part.pending_started for part in parts])
    pending_started, at = np.unique(started, return_inverse=True)
    pending_claims = np.bincount(
        at,
        weights=np.concatenate([part.pending_claims for part in parts]),
        minlength=pending_started.size,
    ).astype(np.int64)
    return CellSeries(
        payer,
        code_group,
        days,
        amounts,
        *_summed(histogram, days.size),
        *_summed(carc, days.size),
        codes,
        parts[0].entry_spans,
        pending_started,
        pending_claims,
    )


# Past this many (day, value) pairs an entry could take, `_summed` sorts the entries
# instead of counting into one slot per pair; past this many days from first to last,
# `_union` sorts the days instead of flagging them.
_MAX_DENSE_PAIRS = 1 << 20


def _union(days: IntArray) -> tuple[IntArray, Callable[[IntArray], IntArray]]:
    """The distinct days of `days`, in order, and a function giving where days of them are
    among those."""
    if not days.size or int(days.max()) - int(days.min()) >= _MAX_DENSE_PAIRS:
        distinct = np.unique(days)
        return distinct, lambda some: np.searchsorted(distinct, some)
    first = int(days.min())
    present = np.zeros(int(days.max()) - first + 1, dtype=np.bool_)
    present[days - first] = True
    place = np.cumsum(present) - 1
    return np.flatnonzero(present) + first, lambda some: place[some - first]


def _summed(
    entries: list[tuple[IntArray, IntArray, IntArray]], days: int
) -> tuple[IntArray, IntArray, IntArray]:
    """The entries of every part (day index among `days`, value, claims) with those of the
    same day and value added up, in day then value order."""
    day, value, claims = (np.concatenate(column) for column in zip(*entries, strict=True))
    if not day.size:
        return day.astype(np.int64), value.astype(np.int64), claims.astype(np.int64)
    width = int(value.max()) + 1
    pair = day.astype(np.int64) * width + value
    if days * width <= _MAX_DENSE_PAIRS:
        sums = np.bincount(pair, weights=claims, minlength=days * width)
        # The pairs present, found in a byte a pair rather than the sums' eight.
        present = np.zeros(days * width, dtype=np.bool_)
        present[pair] = True
        pairs = np.flatnonzero(present)
        counted = sums[pairs]
        if not counted.all():  # entries that cancel out are none
            pairs, counted = pairs[counted != 0], counted[counted != 0]
    else:
        pairs, at = np.unique(pair, return_inverse=True)
        counted = np.bincount(at, weights=claims, minlength=pairs.size)
    return pairs // width, pairs % width, counted.astype(np.int64)


def payer_series(series: Iterable[CellSeries]) -> dict[str, CellSeries]:
    """Each payer's code groups (claims without a code included) merged into one series
    (those of a `ReadSeries` merged as they were read)."""
    if isinstance(series, ReadSeries) and series.payers is not None:
        return series.payers
    by_payer: dict[str, list[CellSeries]] = {}
    for one in series:
        by_payer.setdefault(one.payer, []).append(one)
    return {
        payer: parts[0] if len(parts) == 1 else merged(payer, ALL_CODES, parts)
        for payer, parts in by_payer.items()
    }


def cells_without_claims(
    cells: Iterable[tuple[str, str]], with_claims: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Of `cells` (payer × code group; ALL_CODES for a payer's own), those none of whose
    claims are among `with_claims` (the payer × code groups that have claims): a payer's own
    cell has claims when any of its code groups has."""
    payers = {payer for payer, _ in with_claims}
    return {
        (payer, group)
        for payer, group in cells
        if (payer, group) not in with_claims and not (group == ALL_CODES and payer in payers)
    }


class ReadSeries(list[CellSeries]):
    """Series as `SeriesReading` read them, with each payer's merged (`payers`, what
    `payer_series` gives) while the rest were still arriving; None when they came out of
    payer order."""

    payers: dict[str, CellSeries] | None = None

    def __repr__(self) -> str:
        # Short, as reprlib makes a list's: asyncio formats the result of a task in its
        # repr, and a thousand series' arrays in full take seconds.
        return f"<ReadSeries of {len(self)} series>"


def listed(series: Iterable[CellSeries]) -> list[CellSeries]:
    """`series` as a list: a list as it is, so that a `ReadSeries` keeps its merged payers."""
    return series if isinstance(series, list) else list(series)


class SeriesReading:
    """Series arriving in payer, code group order, a long one in consecutive pieces: each
    series' pieces joined, and a payer's series merged as soon as the next payer's begin, so
    that a reader waiting on the rest does that work meanwhile (a run's thousand cells cost
    about a tenth of a second of merging)."""

    def __init__(self) -> None:
        self._series = ReadSeries()
        self._payers: dict[str, CellSeries] | None = {}
        self._pieces: list[CellSeries] = []
        self._payer: list[CellSeries] = []

    def add(self, piece: CellSeries) -> None:
        if self._pieces and (piece.payer, piece.code_group) != (
            self._pieces[0].payer,
            self._pieces[0].code_group,
        ):
            self._end_series()
        self._pieces.append(piece)

    def finish(self) -> ReadSeries:
        """Every series read, in order."""
        if self._pieces:
            self._end_series()
        if self._payer:
            self._end_payer()
        self._series.payers = self._payers
        return self._series

    def _end_series(self) -> None:
        parts, self._pieces = self._pieces, []
        one = parts[0] if len(parts) == 1 else merged(parts[0].payer, parts[0].code_group, parts)
        if self._payer and self._payer[0].payer != one.payer:
            self._end_payer()
        self._payer.append(one)
        self._series.append(one)

    def _end_payer(self) -> None:
        parts, self._payer = self._payer, []
        payer = parts[0].payer
        if self._payers is None or payer in self._payers:
            # Out of payer order: `payer_series` merges them when asked.
            self._payers = None
            return
        self._payers[payer] = parts[0] if len(parts) == 1 else merged(payer, ALL_CODES, parts)


def cell_series(stats: Iterable[DayStat], pending: Iterable[PendingStat] = ()) -> list[CellSeries]:
    """Single days as series, one per payer × code group (for callers that have days), with
    the claims of `pending` still pending."""
    by_cell: dict[tuple[str, str], list[DayStat]] = {}
    for stat in stats:
        by_cell.setdefault((stat.payer, stat.code_group), []).append(stat)
    waiting: dict[tuple[str, str], list[PendingStat]] = {}
    for one in pending:
        waiting.setdefault((one.payer, one.code_group), []).append(one)
    series = []
    # A payer × code group with pending claims and no decided day is a series too.
    for payer, code_group in sorted(by_cell.keys() | waiting.keys()):
        days = by_cell.get((payer, code_group), [])
        still = waiting.get((payer, code_group), [])
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
                    [d.patient_responsibility_cents for d in days],
                ],
                dtype=np.int64,
            ).reshape(len(AMOUNTS), len(days)),
            *_columns(histogram),
            *_columns(carc),
            codes,
            pending_started=np.array([p.started.toordinal() for p in still], dtype=np.int64),
            pending_claims=np.array([p.claims for p in still], dtype=np.int64),
        )
        # Sorted, and a day given twice summed.
        series.append(merged(payer, code_group, [one_per_stat]))
    return series


def _columns(entries: list[tuple[int, int, int]]) -> tuple[IntArray, IntArray, IntArray]:
    array = np.array(entries, dtype=np.int64).reshape(-1, 3)
    return array[:, 0].copy(), array[:, 1].copy(), array[:, 2].copy()

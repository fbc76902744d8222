"""A payer × code group's daily statistics over a date range, from its packed months.

`ingest.daily_stat_months` keeps each month of a cell's daily statistics as packed
big-endian arrays (see services/ingest/daily_statistics.py). A series is the months' arrays joined:
day indexes of the histogram and CARC entries shifted by the days before their month, each
month's CARC code indexes mapped into the series' code list, and the days outside the range
cut off; asked for spans of days, the entries of each span summed onto its last day. No count
map is unfolded, so reading a year of a cell costs twelve rows, and the months of many cells
are joined together in a few array operations. A cell's claims still pending
(`ingest.pending_stats`) come with it, as they are now, whatever the range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

# Packed days, and days on the wire, count from EPOCH.
from services.ingest.daily_statistics import (
    EPOCH,
    NARROW_ENTRY,
    PACKED_DAY_AMOUNTS,
    narrow_columns,
)


class PackedMonth(NamedTuple):
    """One row of `ingest.daily_stat_months` (without its key), its fields in the order
    `SERIES_QUERY` selects them: a read takes each month as that slice of its row (20,000 a
    drift run's read: as frozen dataclasses, 20 ms of a 0.27 s join)."""

    days: bytes
    amounts: bytes
    # Empty for a month packed by an ingest that did not count the patients' share yet.
    patient_responsibility: bytes
    histogram: bytes
    carc_codes: Sequence[str]
    carc: bytes
    # The entries kept narrow (`daily_statistics.NARROW_ENTRY`); empty for a month written
    # before they were, or whose entries did not fit.
    narrow_histogram: bytes = b""
    narrow_carc: bytes = b""


@dataclass(frozen=True)
class PendingClaims:
    """The claims of one payer × code group still pending, by the day they started:
    `started` (days since 1970-01-01, ascending, int32) and `claims` (int64)."""

    started: np.ndarray
    claims: np.ndarray


NO_PENDING = PendingClaims(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class Series:
    """The days of one payer × code group as arrays, in the layout of `DailyStatSeries`:
    `dates` (days since 1970-01-01), `amounts` (a row of DAY_AMOUNTS per day, int64),
    `histogram` and `carc` (rows of day index, value or code index, claims; int32), and its
    claims still pending."""

    payer: str
    code_group: str
    dates: np.ndarray
    amounts: np.ndarray
    histogram: np.ndarray
    carc_codes: list[str]
    carc: np.ndarray
    pending: PendingClaims = NO_PENDING

    def days(self, first: int, stop: int) -> Series:
        """The days `first` to `stop` (exclusive), their entries' day indexes counted from
        `first`; the CARC code list stays whole, and the pending claims go with the first
        days only (a series cut into pieces counts them once)."""
        return Series(
            self.payer,
            self.code_group,
            self.dates[first:stop],
            self.amounts[first:stop],
            _entries_of_days(self.histogram, first, stop),
            self.carc_codes,
            _entries_of_days(self.carc, first, stop),
            self.pending if first == 0 else NO_PENDING,
        )


def _entries_of_days(entries: np.ndarray, first: int, stop: int) -> np.ndarray:
    kept = entries[(entries[:, 0] >= first) & (entries[:, 0] < stop)]
    kept[:, 0] -= first
    return kept


def span_starts(days: Iterable[dt.date], start: dt.date, end: dt.date) -> np.ndarray:
    """The days of `days` that begin a span inside `start`..`end` (the range's first span
    begins on `start` anyway), as ascending days since 1970-01-01."""
    return np.array(sorted({(day - EPOCH).days for day in days if start < day <= end}), np.int32)


# A payer, a code group, its packed months in order (each the fields of a `PackedMonth`, in
# its order) and its pending claims.
Cell = tuple[str, str, Sequence[Sequence[Any]], PendingClaims]


def series_of_cells(
    cells: Sequence[Cell], start: dt.date, end: dt.date, spans: np.ndarray | None = None
) -> list[Series | None]:
    """The series of each cell from `start` to `end`, with only the CARC codes it uses;
    None for a cell without a day in the range or a pending claim. With `spans` (see
    `span_starts`), the histogram and CARC entries are summed over the spans of days those
    begin, each sum an entry of its span's last day
    (`StreamDailyStatSeriesRequest.entry_span_starts`).

    All the cells' months are joined as one: their packed arrays concatenated and decoded
    once, each entry sent to the slot of its day among all the cells' days in the range,
    and the result cut into cells. A batch of cells costs a few array operations."""
    months = [month for _, _, listed, _ in cells for month in listed]
    # Each field of every month, in one pass: a tuple per field.
    (
        month_dates, amount_bytes, patient_bytes, histograms, month_codes, carcs,
        narrow_histograms, narrow_carcs,
    ) = zip(*months, strict=True) if months else [()] * len(PackedMonth._fields)  # fmt: skip
    month_days = np.fromiter(map(len, month_dates), dtype=np.int64, count=len(months)) // 4
    cell_of_month = np.repeat(np.arange(len(cells)), [len(listed) for _, _, listed, _ in cells])
    days = np.frombuffer(b"".join(month_dates), dtype=">i4").astype(np.int64)
    in_range = (days >= (start - EPOCH).days) & (days <= (end - EPOCH).days)
    cell_of_day = np.repeat(cell_of_month, month_days)[in_range]
    dates = days[in_range].astype(np.int32)
    sizes = np.bincount(cell_of_day, minlength=len(cells))
    firsts = np.cumsum(sizes) - sizes
    # Where each of the months' days goes: its place among the days kept, or with spans its
    # span's (the spans of all cells numbered in order); days outside the range to one slot
    # past them all. A span's entries end up on its last day.
    if spans is None:
        slots, last_day = dates.size, None
        slot_of_day = np.arange(dates.size)
    else:
        # A cell's days are in order, so each of its spans is a run of days.
        run = cell_of_day * (spans.size + 1) + np.searchsorted(spans, dates, side="right")
        begins = np.r_[True, run[1:] != run[:-1]] if run.size else np.zeros(0, dtype=bool)
        slot_of_day = np.cumsum(begins) - 1
        slots = int(begins.sum())
        last_day = np.r_[np.flatnonzero(begins)[1:], run.size] - 1
    slot = np.full(days.size, slots, dtype=np.int64)
    slot[in_range] = slot_of_day
    month_first = np.cumsum(month_days) - month_days
    histogram = _entries(
        _MonthsEntries(histograms, narrow_histograms),
        month_first,
        slot,
        slots,
        last_day,
    )
    # Each month numbers its own CARC codes; the batch numbers them all, in order.
    codes = sorted({code for listed in month_codes for code in listed})
    code_index = {code: i for i, code in enumerate(codes)}
    code_counts = [len(listed) for listed in month_codes]
    batch_code = (
        np.array([code_index[c] for listed in month_codes for c in listed], dtype=np.int64),
        np.cumsum(code_counts) - code_counts,
    )
    carc = _entries(
        _MonthsEntries(carcs, narrow_carcs),
        month_first,
        slot,
        slots,
        last_day,
        batch_code,
    )
    # Entries are in slot order, so each cell's are a run; their days count from its first.
    owners, cuts = [], []
    for entries in (histogram, carc):
        owner = cell_of_day[entries[:, 0]]
        entries[:, 0] -= firsts[owner].astype(np.int32)
        owners.append(owner)
        cuts.append(np.searchsorted(owner, np.arange(len(cells) + 1)))
    # Each cell numbers the codes it uses, in order: a flag per cell and batch code, those
    # used counted off.
    width = max(len(codes), 1)
    pair = owners[1] * width + carc[:, 1]
    used = np.zeros(len(cells) * width, dtype=np.bool_)
    used[pair] = True
    pairs = np.flatnonzero(used)
    pair_cuts = np.searchsorted(pairs, np.arange(len(cells) + 1) * width)
    carc[:, 1] = (np.cumsum(used) - 1)[pair] - pair_cuts[owners[1]]
    amounts = np.frombuffer(b"".join(amount_bytes), dtype=">i8")
    # A month packed before the patients' share was counted has none: zeros.
    patient = np.frombuffer(
        b"".join(
            patient or bytes(2 * len(days))
            for patient, days in zip(patient_bytes, month_dates, strict=True)
        ),
        dtype=">i8",
    )
    amounts = np.column_stack(
        (amounts.reshape(-1, len(PACKED_DAY_AMOUNTS))[in_range], patient[in_range])
    ).astype(np.int64)
    series: list[Series | None] = []
    for i, (payer, code_group, _, pending) in enumerate(cells):
        if not sizes[i] and pending is NO_PENDING:
            series.append(None)
            continue
        first, stop = int(firsts[i]), int(firsts[i] + sizes[i])
        series.append(
            Series(
                payer,
                code_group,
                dates[first:stop],
                amounts[first:stop],
                histogram[cuts[0][i] : cuts[0][i + 1]],
                [codes[p % width] for p in pairs[pair_cuts[i] : pair_cuts[i + 1]].tolist()],
                carc[cuts[1][i] : cuts[1][i + 1]],
                pending,
            )
        )
    return series


# Above this many (day, value) pairs an entry could take, entries are summed by sorting
# instead of counting into one slot per pair.
_MAX_DENSE_SLOTS = 1 << 22


class _MonthsEntries:
    """The entries of one kind (histogram or CARC) of a run of months, wide and narrow, as
    columns: `day` (index in its month), `value`, `claims`, and `month` (of each entry, its
    index in the run). The narrow entries come first; `mixed` says whether both kinds are
    there (then the entries are not in the months' order)."""

    def __init__(self, wide_bytes: Sequence[bytes], narrow_bytes: Sequence[bytes]) -> None:
        numbers = np.arange(len(wide_bytes))
        slim = narrow_columns(b"".join(narrow_bytes))
        slim_months = np.repeat(numbers, [len(b) // NARROW_ENTRY.itemsize for b in narrow_bytes])
        triplets = np.frombuffer(b"".join(wide_bytes), dtype=">i4").reshape(-1, 3)
        wide_months = np.repeat(numbers, [len(b) // 12 for b in wide_bytes])
        self.mixed = bool(len(slim_months) and len(triplets))
        if not len(triplets):
            (self.day, self.value, self.claims), self.month = slim, slim_months
        elif not len(slim_months):
            self.day, self.value, self.claims = triplets.T
            self.month = wide_months
        else:
            self.day, self.value, self.claims = (
                np.concatenate((narrow, wide))
                for narrow, wide in zip(slim, triplets.T, strict=True)
            )
            self.month = np.concatenate((slim_months, wide_months))


def _entries(
    entries: _MonthsEntries,
    before: np.ndarray,
    slot: np.ndarray,
    slots: int,
    last_day: np.ndarray | None,
    codes: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The months' entries (day index in the month, value, claims) as native int32 rows of
    the days kept: each entry moved to the `slot` of its day (`before` its month, the
    months' days before it; a slot of `slots` or more is outside the range and dropped),
    its CARC code index made the batch's when `codes` (the batch's index of every month's
    codes, and where each month's begin) are given. With `last_day` (of each slot, a span),
    entries of the same slot and value are added up onto the slot's last day. In day, then
    value order."""
    if not len(entries.month):
        return np.zeros((0, 3), dtype=np.int32)
    at = slot[entries.day + before[entries.month]]
    value = entries.value.astype(np.int64, copy=False)
    if codes is not None:
        series_code, offsets = codes
        value = series_code[value + offsets[entries.month]]
    if last_day is None:
        kept = at < slots
        rows = np.column_stack((at[kept], value[kept], entries.claims[kept])).astype(np.int32)
        if entries.mixed:
            rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
        return rows
    width = int(value.max()) + 1
    if (slots + 1) * width <= _MAX_DENSE_SLOTS:
        # One counter per (slot, value); those past the slots are dropped. The pairs present
        # are found in a byte per pair, an eighth of the counters' memory to scan.
        pair = at * width + value
        sums = np.bincount(pair, weights=entries.claims, minlength=(slots + 1) * width)
        present = np.zeros((slots + 1) * width, dtype=np.bool_)
        present[pair] = True
        key = np.flatnonzero(present[: slots * width])
        claims = sums[key]
        if not claims.all():  # entries that cancel out are none
            key, claims = key[claims != 0], claims[claims != 0]
    else:
        kept = at < slots
        key, where = np.unique(at[kept] * width + value[kept], return_inverse=True)
        claims = np.bincount(where, weights=entries.claims[kept])
    summed = np.empty((key.size, 3), dtype=np.int32)
    summed[:, 0] = last_day[key // width]
    summed[:, 1] = key % width
    summed[:, 2] = claims
    return summed


def series_of_rows(
    rows: Iterable[Sequence[Any]], start: dt.date, end: dt.date, spans: np.ndarray | None = None
) -> Iterator[Series]:
    """Every series of the rows of `SERIES_QUERY`, in order (see `series_of_cells`)."""
    series = SeriesOfMonths(start, end, spans)
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == MONTHS_PER_BATCH:
            yield from series.add(batch)
            batch = []
    yield from series.add(batch)
    yield from series.finish()


# Packed months joined at once: enough to make the per-batch cost small, few enough that a
# batch's day slots stay in the cache.
MONTHS_PER_BATCH = 500
# Where a row of `SERIES_QUERY` has a month's fields (a `PackedMonth`'s, in order), then the
# pending claims' start days and counts.
_MONTH_FIELDS = slice(2, 2 + len(PackedMonth._fields))
_PENDING_STARTED = _MONTH_FIELDS.stop


class SeriesOfMonths:
    """Turns the rows of `SERIES_QUERY` (packed months in payer, code group, month order,
    each cell's pending claims after its months) into series, a batch of cells at a time:
    `add` returns the series of the cells its rows complete (the last cell may go on in the
    next rows), `finish` the rest (see `series_of_cells`)."""

    def __init__(self, start: dt.date, end: dt.date, spans: np.ndarray | None = None) -> None:
        self._start, self._end, self._spans = start, end, spans
        self._cells: list[tuple[str, str, list[Sequence[Any]], PendingClaims]] = []

    def add(self, rows: Iterable[Sequence[Any]]) -> list[Series]:
        cells = self._cells
        for row in rows:
            payer, code_group = row[0], row[1]
            if not cells or cells[-1][0] != payer or cells[-1][1] != code_group:
                cells.append((payer, code_group, [], NO_PENDING))
            if row[_PENDING_STARTED] is None:
                # The month as the row has it, a slice: 20,000 a drift run's read.
                cells[-1][2].append(row[_MONTH_FIELDS])
            else:
                pending = _pending(row[_PENDING_STARTED], row[_PENDING_STARTED + 1])
                cells[-1] = (payer, code_group, cells[-1][2], pending)
        done, self._cells = cells[:-1], cells[-1:]
        return self._series(done)

    def finish(self) -> list[Series]:
        done, self._cells = self._cells, []
        return self._series(done)

    def _series(self, cells: Sequence[Cell]) -> list[Series]:
        if not cells:
            return []
        joined = series_of_cells(cells, self._start, self._end, self._spans)
        return [one for one in joined if one is not None]


def _pending(started: bytes, claims: bytes) -> PendingClaims:
    """A cell's pending claims from the packed arrays of `SERIES_QUERY`."""
    return PendingClaims(
        np.frombuffer(started, dtype=">i4").astype(np.int32),
        np.frombuffer(claims, dtype=">i8").astype(np.int64),
    )

"""Daily-statistic series: window sums, payer roll-ups, long series sent in pieces, and the
claims still pending that come with them."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace

import numpy as np
import pytest

from services.drift.ingest_client import joined, series_from_message
from services.drift.series import (
    ALL_CODES,
    CellSeries,
    DayStat,
    PendingStat,
    SeriesTable,
    Window,
    cell_series,
    payer_series,
)
from services.ingest.daily_statistics import PACKED_DAY_AMOUNTS
from services.ingest.months import NO_PENDING, series_of_cells, span_starts
from services.ingest.server import daily_stat_series_messages
from tests.unit.series_reading import packed_months, read, stored

FIRST_DAY = dt.date(2026, 1, 1)


def _days(payer: str, group: str, count: int, seed: int) -> list[DayStat]:
    rng = random.Random(seed)
    stats = []
    for n in range(count):
        if rng.random() < 0.2:
            continue  # days without decisions are not stored
        decided = rng.randint(1, 40)
        denied = rng.randint(0, decided)
        paid = (decided - denied) * 7_000
        histogram: dict[int, int] = {}
        for _ in range(decided):
            days = rng.randint(0, 60)
            histogram[days] = histogram.get(days, 0) + 1
        stats.append(
            DayStat(
                payer=payer,
                code_group=group,
                day=FIRST_DAY + dt.timedelta(days=n),
                decided=decided,
                denied=denied,
                partially_denied=0,
                decision_days=histogram,
                billed_cents=decided * 10_000,
                allowed_cents=decided * 8_000,
                paid_cents=paid,
                denied_billed_cents=denied * 10_000,
                carc_counts={rng.choice(["16", "50", "197"]): denied} if denied else {},
                # Some months' patients owe nothing (their months are packed without it).
                patient_responsibility_cents=rng.randint(0, 1_000) * (n // 30 % 3 != 1),
            )
        )
    return stats


def _sums(series: CellSeries, window: Window) -> tuple[object, ...]:
    totals = series.totals(window)
    return (
        totals.decided,
        totals.denied,
        totals.paid_cents,
        totals.decision_days.values.tolist(),
        totals.decision_days.counts.tolist(),
        totals.carc_counts,
        totals.daily_paid.tolist(),
        totals.patient_responsibility_cents,
        totals.daily_patient.tolist(),
    )


@pytest.mark.parametrize("decades", [False, True], ids=["days", "some-decades-long"])
def test_window_totals_equal_the_days_summed_by_hand(decades: bool) -> None:
    stats = _days("Aetna", "RADIOLOGY", 120, seed=1)
    if decades:
        # Claims decided decades after submission (old records' dates): too many days and
        # values to count into a slot each, so the series' entries are summed by sorting.
        stats = [
            replace(s, decision_days={v + 20_000 * (v % 2): n for v, n in s.decision_days.items()})
            for s in stats
        ]
    (series,) = cell_series(stats)
    window = Window(FIRST_DAY + dt.timedelta(days=30), FIRST_DAY + dt.timedelta(days=59))
    inside = [s for s in stats if s.day in window]
    histogram: dict[int, int] = {}
    carc: dict[str, int] = {}
    for s in inside:
        for value, claims in s.decision_days.items():
            histogram[value] = histogram.get(value, 0) + claims
        for code, claims in s.carc_counts.items():
            carc[code] = carc.get(code, 0) + claims
    assert _sums(series, window) == (
        sum(s.decided for s in inside),
        sum(s.denied for s in inside),
        sum(s.paid_cents for s in inside),
        sorted(histogram),
        [histogram[v] for v in sorted(histogram)],
        carc,
        [s.paid_cents for s in inside],
        sum(s.patient_responsibility_cents for s in inside),
        [s.patient_responsibility_cents for s in inside],
    )


@pytest.mark.parametrize("apart", [0, 1_100_000], ids=["same-days", "millennia-apart"])
def test_a_payer_series_is_its_groups_added_day_by_day(apart: int) -> None:
    # Groups three thousand years apart (dates mistyped in an export) are too many days
    # apart to flag each, so their days are merged by sorting.
    later = [
        replace(s, day=s.day + dt.timedelta(days=apart)) for s in _days("Aetna", "SURGERY", 90, 3)
    ]
    groups = [*_days("Aetna", "RADIOLOGY", 90, 2), *later]
    payer = payer_series(cell_series(groups))["Aetna"]
    assert payer.code_group == ALL_CODES
    (whole,) = cell_series([DayStat(**{**s.__dict__, "code_group": ALL_CODES}) for s in groups])
    for first in (FIRST_DAY, FIRST_DAY + dt.timedelta(days=apart)):
        window = Window(first, first + dt.timedelta(days=89))
        assert _sums(payer, window) == _sums(whole, window)
        totals, inside = payer.totals(window), [s for s in groups if s.day in window]
        assert (totals.decided, totals.denied, totals.paid_cents) == (
            sum(s.decided for s in inside),
            sum(s.denied for s in inside),
            sum(s.paid_cents for s in inside),
        )
    assert payer.days.tolist() == sorted({s.day.toordinal() for s in groups})


def test_a_long_series_sent_in_pieces_is_joined_into_the_same_series() -> None:
    """Cut into messages of whole days, a series reads back as the series the stored
    statistics hold."""
    stats = _days("Aetna", "RADIOLOGY", 200, seed=4)
    kept = stored(stats, stats[0].day, stats[-1].day)
    assert kept is not None
    (whole,) = daily_stat_series_messages(kept, packed=True)
    pieces = daily_stat_series_messages(kept, max_entries=300, packed=True)
    assert len(pieces) > 3
    as_read = [series_from_message(p) for p in pieces]
    assert all(len(p.histogram_day) + len(p.carc_day) <= 300 for p in as_read)
    assert np.array_equal(
        np.concatenate([p.days for p in as_read]), series_from_message(whole).days
    )
    (rejoined,) = joined(as_read)
    (expected,) = cell_series(stats)
    for start, end in ((0, 199), (17, 80), (150, 160)):
        window = Window(FIRST_DAY + dt.timedelta(days=start), FIRST_DAY + dt.timedelta(days=end))
        assert _sums(rejoined, window) == _sums(expected, window)


def _pieces(stats: list[DayStat]) -> list[CellSeries]:
    """The series of `stats` as drift receives them: cut into small messages."""
    kept = stored(stats, stats[0].day, stats[-1].day)
    assert kept is not None
    return [
        series_from_message(p)
        for p in daily_stat_series_messages(kept, max_entries=300, packed=True)
    ]


def test_payers_merged_while_reading_are_the_payers_merged_afterwards() -> None:
    """Each payer's series is merged as soon as the next payer's arrive; the result is what
    merging them all at the end gives, for each payer, including one of a single group."""
    cells = [
        _days("Aetna", "RADIOLOGY", 120, seed=1),
        _days("Aetna", "SURGERY", 120, seed=2),
        _days("Cigna", ALL_CODES, 120, seed=3),
        _days("Humana", "LAB", 120, seed=5),
        _days("Humana", "RADIOLOGY", 120, seed=6),
    ]
    pieces = [piece for stats in cells for piece in _pieces(stats)]
    assert len(pieces) > len(cells)
    read = joined(pieces)
    assert read.payers is not None and list(read.payers) == ["Aetna", "Cigna", "Humana"]
    afterwards = payer_series(list(read))
    window = Window(FIRST_DAY + dt.timedelta(days=10), FIRST_DAY + dt.timedelta(days=100))
    for payer, merged_then in afterwards.items():
        assert payer_series(read)[payer].code_group == ALL_CODES
        assert _sums(payer_series(read)[payer], window) == _sums(merged_then, window)
    (whole,) = cell_series(
        [DayStat(**{**s.__dict__, "code_group": ALL_CODES}) for s in cells[0] + cells[1]]
    )
    assert _sums(payer_series(read)["Aetna"], window) == _sums(whole, window)
    # Each day's count of each value once: as many entries as its groups have distinct
    # days and values, fewer than theirs together.
    aetna = payer_series(read)["Aetna"]
    groups = {
        (int(group.days[day]), value)
        for group in read[:2]
        for day, value in zip(
            group.histogram_day.tolist(), group.histogram_value.tolist(), strict=True
        )
    }
    assert aetna.histogram_day.size == len(groups) < sum(g.histogram_day.size for g in read[:2])


def test_series_out_of_payer_order_are_merged_by_payer_all_the_same() -> None:
    """A payer whose series come apart (another payer's between them) is merged whole."""
    first, other, second = (
        _days("Aetna", "RADIOLOGY", 90, seed=7),
        _days("Cigna", "LAB", 90, seed=8),
        _days("Aetna", "SURGERY", 90, seed=9),
    )
    read = joined([*_pieces(first), *_pieces(other), *_pieces(second)])
    assert read.payers is None
    (whole,) = cell_series(
        [DayStat(**{**s.__dict__, "code_group": ALL_CODES}) for s in first + second]
    )
    window = Window(FIRST_DAY, FIRST_DAY + dt.timedelta(days=89))
    assert _sums(payer_series(read)["Aetna"], window) == _sums(whole, window)


def test_readable_and_packed_messages_carry_the_same_numbers() -> None:
    """REST clients read the READABLE encoding, drift the PACKED one: piece by piece, the
    same days, amounts and entries."""
    stats = _days("Aetna", "RADIOLOGY", 120, seed=6)
    kept = stored(stats, stats[0].day, stats[-1].day)
    assert kept is not None
    readable = daily_stat_series_messages(kept, max_entries=300)
    packed = daily_stat_series_messages(kept, max_entries=300, packed=True)
    assert len(readable) == len(packed) > 1
    for text, binary in zip(readable, packed, strict=True):
        assert not text.HasField("packed")
        numbers = binary.packed
        assert list(text.decision_dates) == np.frombuffer(numbers.decision_dates, "<i4").tolist()
        # Seven amounts a day, as a reader older than the patients' share reads them.
        amounts = np.frombuffer(numbers.day_amounts, "<i8").reshape(-1, len(PACKED_DAY_AMOUNTS))
        assert len(amounts) == len(text.decision_dates)
        for column, field in enumerate(PACKED_DAY_AMOUNTS):
            assert list(getattr(text, field)) == amounts[:, column].tolist(), field
        patient = np.frombuffer(numbers.patient_responsibility_cents, "<i8").tolist()
        assert list(text.patient_responsibility_cents) == patient
        for fields, entries in (
            (("histogram_day", "histogram_days", "histogram_claims"), numbers.histogram),
            (("carc_day", "carc_code", "carc_claims"), numbers.carc),
        ):
            columns = np.frombuffer(entries, "<i4").reshape(-1, 3).T.tolist()
            assert [list(getattr(text, f)) for f in fields] == columns
        assert text.carc_codes == binary.carc_codes


def _day(n: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=n)


def test_entries_read_summed_over_spans_sum_every_window_of_whole_spans_as_days_do() -> None:
    """Read with span starts (some outside the range), a series has far fewer histogram
    entries, and every window from one span boundary to another sums what the days sum, also
    when the series comes in pieces; a window that cuts a span is refused."""
    stats = _days("Aetna", "RADIOLOGY", 200, seed=5)
    start, end = _day(3), _day(190)
    starts = {_day(n) for n in (0, 10, 11, 12, 40, 100, 101, 150, 191, 250)}
    (by_day,) = read(stats, start, end)
    (by_span,) = read(stats, start, end, starts, max_entries=40)
    assert by_span.histogram_day.size * 3 < by_day.histogram_day.size
    assert np.array_equal(by_span.days, by_day.days)
    bounds = sorted({start, end + dt.timedelta(days=1), *(d for d in starts if start < d <= end)})
    for i, first in enumerate(bounds):
        for after in bounds[i + 1 :]:
            window = Window(first, after - dt.timedelta(days=1))
            assert _sums(by_span, window) == _sums(by_day, window), window
    # Before the range or after it nothing is cut.
    assert _sums(by_span, Window(_day(-30), _day(39))) == _sums(by_day, Window(start, _day(39)))
    assert _sums(by_span, Window(_day(150), _day(400))) == _sums(by_day, Window(_day(150), end))
    with pytest.raises(ValueError, match="cuts a span"):
        by_span.totals(Window(_day(20), _day(39)))
    with pytest.raises(ValueError, match="cuts a span"):
        by_span.totals(Window(_day(40), _day(98)))


def test_a_payer_read_summed_over_spans_sums_as_its_days_do() -> None:
    """Code groups with different days merged into their payer keep the sums of whole
    spans."""
    groups = [*_days("Aetna", "RADIOLOGY", 120, 6), *_days("Aetna", "SURGERY", 120, 7)]
    starts = {_day(30), _day(31), _day(90)}
    by_span = payer_series(read(groups, FIRST_DAY, _day(119), starts))["Aetna"]
    by_day = payer_series(cell_series(groups))["Aetna"]
    for window in (
        Window(FIRST_DAY, _day(29)),
        Window(_day(31), _day(89)),
        Window(_day(30), _day(119)),
    ):
        assert _sums(by_span, window) == _sums(by_day, window)


def test_a_table_sums_each_rows_window_as_its_series_does() -> None:
    """Rows may share a series and have windows of their own (a run's earlier windows); an
    empty window, one past the data and a series without denials sum to nothing."""
    series = [
        *cell_series(_days("Aetna", "RADIOLOGY", 150, seed=11)),
        *cell_series(_days("Cigna", "SURGERY", 90, seed=12)),
        *cell_series(
            [
                DayStat(**{**s.__dict__, "denied": 0, "carc_counts": {}})
                for s in _days("Kaiser", "", 60, 13)
            ]
        ),
    ]
    table = SeriesTable(series)
    rng = random.Random(14)
    rows, windows = [], []
    for _ in range(40):
        start = _day(rng.randint(-20, 170))
        windows.append(Window(start, start + dt.timedelta(days=rng.randint(-1, 60))))
        rows.append(rng.randrange(len(series)))
    totals = table.windows(
        np.array(rows),
        np.array([w.start.toordinal() for w in windows]),
        np.array([w.end.toordinal() for w in windows]),
    )
    for i, (row, window) in enumerate(zip(rows, windows, strict=True)):
        alone = series[row].totals(window)
        assert totals.sums[:, i].tolist() == [
            alone.decided, alone.denied, alone.billed_cents, alone.allowed_cents,
            alone.paid_cents, alone.denied_billed_cents, alone.patient_responsibility_cents,
        ]  # fmt: skip
        histogram = dict(
            zip(
                alone.decision_days.values.tolist(),
                alone.decision_days.counts.tolist(),
                strict=True,
            )
        )
        found = {
            int(v): int(n) for v, n in zip(table.values, totals.decision_days[i], strict=True) if n
        }
        assert found == histogram
        codes = {c: int(n) for c, n in zip(table.codes, totals.carc_counts[i], strict=True) if n}
        assert codes == alone.carc_counts
        days = slice(int(totals.low[i]), int(totals.high[i]))
        assert table.daily_paid[days].tolist() == alone.daily_paid.tolist()


def _pending(payer: str, group: str, seed: int) -> list[PendingStat]:
    rng = random.Random(seed)
    days = sorted(rng.sample(range(-400, 200), 25))
    return [PendingStat(payer, group, _day(n), rng.randint(1, 30)) for n in days]


def _pending_of(series: CellSeries) -> list[tuple[dt.date, int]]:
    return [
        (dt.date.fromordinal(day), claims)
        for day, claims in zip(
            series.pending_started.tolist(), series.pending_claims.tolist(), strict=True
        )
    ]


def test_pending_claims_come_with_their_series_whatever_the_range_and_once_per_series() -> None:
    """Claims still pending come with their payer × code group as they are: those that started
    long before the range too, once for a series sent in pieces, and a payer × code group
    with pending claims but no decided day in the range still comes."""
    stats = [*_days("Aetna", "RADIOLOGY", 200, seed=8), *_days("Cigna", "SURGERY", 60, seed=9)]
    pending = [
        *_pending("Aetna", "RADIOLOGY", 10),
        *_pending("Aetna", "SURGERY", 11),  # no decided day at all
        *_pending("Cigna", "SURGERY", 12),  # its days all before the range
    ]
    start, end = _day(100), _day(199)
    series = read(stats, start, end, {_day(130)}, max_entries=300, pending=pending)
    assert [(s.payer, s.code_group) for s in series] == [
        ("Aetna", "RADIOLOGY"),
        ("Aetna", "SURGERY"),
        ("Cigna", "SURGERY"),
    ]
    for one in series:
        cell = (one.payer, one.code_group)
        expected = sorted((p.started, p.claims) for p in pending if (p.payer, p.code_group) == cell)
        assert _pending_of(one) == expected, cell
    assert [one.days.size for one in series[1:]] == [0, 0]
    # Each as `cell_series` builds it from single days and pending claims.
    by_cell = {(one.payer, one.code_group): one for one in cell_series(stats, pending)}
    for one in series:
        built = by_cell[one.payer, one.code_group]
        assert _pending_of(one) == _pending_of(built)
        window = Window(start, end)
        assert _sums(one, window) == _sums(built, window)
    # A payer's pending claims are its code groups'.
    aetna = payer_series(series)["Aetna"]
    assert sum(aetna.pending_claims.tolist()) == sum(
        p.claims for p in pending if p.payer == "Aetna"
    )


def test_readable_and_packed_messages_carry_the_same_pending_claims() -> None:
    stats = _days("Aetna", "RADIOLOGY", 120, seed=15)
    pending = _pending("Aetna", "RADIOLOGY", 16)
    kept = stored(stats, stats[0].day, stats[-1].day, pending=pending)
    assert kept is not None
    readable = daily_stat_series_messages(kept, max_entries=300)
    packed = daily_stat_series_messages(kept, max_entries=300, packed=True)
    assert len(readable) == len(packed) > 1
    # The first piece carries them, the others none.
    assert [len(one.pending_start_dates) for one in readable] == [len(pending)] + [0] * (
        len(readable) - 1
    )
    for text, binary in zip(readable, packed, strict=True):
        numbers = binary.packed
        assert (
            list(text.pending_start_dates)
            == np.frombuffer(numbers.pending_start_dates, "<i4").tolist()
        )
        assert list(text.pending_claims) == np.frombuffer(numbers.pending_claims, "<i8").tolist()
    assert [
        (dt.date(1970, 1, 1) + dt.timedelta(days=day), claims)
        for day, claims in zip(
            readable[0].pending_start_dates, readable[0].pending_claims, strict=True
        )
    ] == [(p.started, p.claims) for p in pending]


def test_a_message_of_an_ingest_without_the_patients_share_reads_as_none_owed() -> None:
    stats = _days("Aetna", "RADIOLOGY", 60, seed=17)
    kept = stored(stats, stats[0].day, stats[-1].day)
    assert kept is not None
    (message,) = daily_stat_series_messages(kept, packed=True)
    message.packed.ClearField("patient_responsibility_cents")
    series = series_from_message(message)
    totals = series.totals(Window(stats[0].day, stats[-1].day))
    assert totals.patient_responsibility_cents == 0
    assert totals.paid_cents == sum(s.paid_cents for s in stats)


@pytest.mark.parametrize("spans", [False, True], ids=["by-day", "by-span"])
def test_months_read_the_same_whether_their_entries_are_kept_narrow_wide_or_both(
    spans: bool,
) -> None:
    """Months written before narrow entries (all triplets), months all narrow and months with
    some of each (values that did not fit) read as the same series, also several cells read
    together with months of every kind."""
    cells = [_days("Aetna", "RADIOLOGY", 150, 8), _days("Cigna", "SURGERY", 150, 9)]
    start, end = _day(10), _day(140)
    starts = span_starts({_day(n) for n in (20, 45, 46, 100)}, start, end) if spans else None

    def together(formats: tuple[str, ...]) -> list[tuple[object, ...]]:
        batch = [
            (stats[0].payer, stats[0].code_group, packed_months(stats, kept), NO_PENDING)
            for stats, kept in zip(cells, formats, strict=True)
        ]
        return [
            (s.dates.tolist(), s.amounts.tolist(), s.histogram.tolist(), s.carc_codes,
             s.carc.tolist())
            for s in series_of_cells(batch, start, end, starts)
            if s is not None
        ]  # fmt: skip

    expected = together(("wide", "wide"))
    assert expected[0][2], "histogram entries to read"
    for formats in (
        ("narrow", "narrow"),
        ("mixed", "mixed"),
        ("narrow", "mixed"),
        ("wide", "mixed"),
    ):
        assert together(formats) == expected, formats

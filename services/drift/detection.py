"""Drift detection: a customer's daily statistics in, findings with their evidence out.

Per payer, and per procedure-code group where the volume allows, the current window is
compared with the baseline window before it, on each enabled metric. Every comparison made
in a run enters one Benjamini–Hochberg correction; a finding needs a small q value, a p value
of at most twice the Bonferroni bound, an effect above the configured floor (so a tiny but
"significant" change on a huge payer does not raise an alarm), and the same on the windows
ending each of the days before the run's. Pure: no gRPC, no database. Its cost depends on the
number of cells and days, not on the number of claims.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.drift import statistics
from services.drift.config import DetectionConfig
from services.drift.series import (
    ALL_CODES,
    CellSeries,
    SeriesTable,
    Totals,
    Window,
    WindowTotals,
    payer_series,
    runs,
)

# Denial-reason mix: too few denials make a mix meaningless; the change must be visible.
MIN_DENIALS_FOR_MIX = 30
MIX_MIN_DISTANCE = 0.15
# A finding must also hold on the windows ending each of the days before the run's: a random
# excursion of a noisy cell rarely lasts a week, a drift does. Costs about that many days of
# latency, and tests only the cells that are findings.
PERSISTENCE_DAYS = 6
# A finding's p value must be at most this many times q/m (m comparisons in the run), as well
# as pass Benjamini–Hochberg at q: twice for a payer as a whole, once for one of its code
# groups. Groups are many and small, and their chance excursions were most false alarms.
PAYER_BONFERRONI_MULTIPLE = 2
GROUP_BONFERRONI_MULTIPLE = 1


@dataclass(frozen=True)
class Windows:
    baseline: Window
    current: Window


def windows_for(as_of: dt.date, config: DetectionConfig) -> Windows:
    """The current window ends on `as_of`; the baseline is the days just before it."""
    current_start = as_of - dt.timedelta(days=config.current_window_days - 1)
    baseline_end = current_start - dt.timedelta(days=1)
    baseline_start = baseline_end - dt.timedelta(days=config.baseline_window_days - 1)
    return Windows(Window(baseline_start, baseline_end), Window(current_start, as_of))


def first_day_read(as_of: dt.date, config: DetectionConfig) -> dt.date:
    """The earliest day whose statistics a run as of `as_of` reads (see PERSISTENCE_DAYS)."""
    return windows_for(as_of - dt.timedelta(days=PERSISTENCE_DAYS), config).baseline.start


def window_edges(windows: Iterable[Window]) -> set[dt.date]:
    """The days on which `windows` begin, and the days after they end: histogram and CARC
    entries summed over the spans these days begin still sum every one of the windows."""
    return {edge for w in windows for edge in (w.start, w.end + dt.timedelta(days=1))}


def span_starts_read(as_of: dt.date, config: DetectionConfig) -> set[dt.date]:
    """The spans a run as of `as_of` may read its entries summed over: it sums nothing finer
    than its windows and those ending each of the PERSISTENCE_DAYS days before."""
    every = [
        windows_for(as_of - dt.timedelta(days=days_before), config)
        for days_before in range(PERSISTENCE_DAYS + 1)
    ]
    return window_edges(window for w in every for window in (w.baseline, w.current))


@dataclass(frozen=True)
class Cell:
    payer: str
    code_group: str  # ALL_CODES for the payer as a whole


@dataclass(frozen=True)
class Evidence:
    """The numbers behind a finding, as the event states them."""

    baseline_count: int
    current_count: int
    baseline_events: int
    current_events: int
    baseline_value: float
    current_value: float
    effect_size: float
    effect_unit: str
    p_value: float
    test: str
    baseline_interval: statistics.Interval | None = None
    current_interval: statistics.Interval | None = None
    carc_shifts: tuple[tuple[str, float, float], ...] = ()
    q_value: float = 1.0


@dataclass(frozen=True)
class Finding:
    cell: Cell
    metric: str
    severity: str
    evidence: Evidence
    dollars_at_stake_cents: int
    summary: str


@dataclass
class Detection:
    """What a run found, and what it looked at (so open events it no longer finds close)."""

    windows: Windows
    findings: list[Finding]
    cells_tested: int
    cells_skipped: int
    # (payer, code_group, metric) of every comparison made.
    tested: set[tuple[str, str, str]]


def _cells(series: Iterable[CellSeries], first: dt.date, last: dt.date) -> dict[Cell, CellSeries]:
    """Every payer × code group with days between `first` and `last`, and every such payer as
    a whole. Claims without a procedure code (group "") count in their payer's cell only."""
    present = [one for one in series if one.has_days_in(first, last)]
    cells = {Cell(payer, ALL_CODES): one for payer, one in payer_series(present).items()}
    for one in present:
        if one.code_group != ALL_CODES:
            cells[Cell(one.payer, one.code_group)] = one
    return cells


def _window_totals(series: CellSeries, windows: Windows) -> tuple[Totals, Totals]:
    return series.totals(windows.baseline), series.totals(windows.current)


def detect(
    series: Iterable[CellSeries],
    as_of: dt.date,
    config: DetectionConfig,
    *,
    persistence_days: int = PERSISTENCE_DAYS,
) -> Detection:
    """Findings as of `as_of`; `persistence_days` of 0 judges the run's own windows alone."""
    windows = windows_for(as_of, config)
    cells = _cells(series, windows.baseline.start, windows.current.end)
    groups_per_payer = Counter(c.payer for c in cells if c.code_group != ALL_CODES)
    # A payer's only group is left out: the payer-level cell is the same comparison.
    compared = [
        cell
        for cell in sorted(cells, key=lambda cell: (cell.payer, cell.code_group))
        if cell.code_group == ALL_CODES or groups_per_payer[cell.payer] > 1
    ]
    # Every comparison's p-value, a metric at a time for all cells together; effects and
    # the earlier windows for those under the cut-off, evidence for the findings only.
    table = SeriesTable([cells[cell] for cell in compared])
    rows = np.arange(len(compared))
    screens = _Screens(table, rows, np.full(rows.size, as_of.toordinal()), config)
    tested = np.flatnonzero(screens.enough).tolist()
    # A small group is still in its payer's cell; a small payer is not.
    skipped = sum(
        1
        for cell, enough in zip(compared, screens.enough.tolist(), strict=True)
        if not enough and cell.code_group == ALL_CODES
    )
    p_values = {metric: screens.p_values(metric) for metric in config.enabled_metrics}
    candidates = [
        (i, metric, p)
        for i in tested
        for metric in config.enabled_metrics
        if not math.isnan(p := float(p_values[metric][i]))
    ]
    q_values = statistics.benjamini_hochberg([p for _, _, p in candidates])
    # Benjamini–Hochberg's critical value in this run: with k of m comparisons rejected, any
    # p value up to k·q/m is rejected too.
    rejected = sum(q <= config.false_discovery_rate for q in q_values)
    m = max(len(candidates), 1)
    # Capped at a multiple of the Bonferroni bound: BH's cut-off grows with every true drift
    # in the run, and on a customer with several drifts it let noise cells through with it.
    multiples = {True: PAYER_BONFERRONI_MULTIPLE, False: GROUP_BONFERRONI_MULTIPLE}
    cutoffs = np.array(
        [
            min(rejected, multiples[cell.code_group == ALL_CODES]) * config.false_discovery_rate / m
            for cell in compared
        ]
    )
    under = [
        (i, metric, p, q)
        for (i, metric, p), q in zip(candidates, q_values, strict=True)
        if p <= cutoffs[i]
    ]
    held = _held(under, screens, as_of, config, cutoffs, persistence_days)
    findings = []
    for i, metric, p_value, q in held:
        cell = compared[i]
        comparison = _compare(metric, *_window_totals(cells[cell], windows), config)
        assert comparison is not None  # the same sums had a p-value
        # The p-value Benjamini–Hochberg ranked, so that p and q agree to the last digit.
        evidence = _with(comparison[0], p_value=p_value, q_value=q)
        dollars = comparison[1]
        findings.append(
            Finding(
                cell,
                metric,
                _severity(metric, evidence, dollars, config),
                evidence,
                dollars,
                summary(cell, metric, evidence, dollars, windows),
            )
        )
    return Detection(
        windows,
        findings,
        cells_tested=len(tested),
        cells_skipped=skipped,
        tested={(compared[i].payer, compared[i].code_group, metric) for i, metric, _ in candidates},
    )


def _held(
    under: list[tuple[int, str, float, float]],
    screens: _Screens,
    as_of: dt.date,
    config: DetectionConfig,
    cutoffs: statistics.FloatArray,
    days: int,
) -> list[tuple[int, str, float, float]]:
    """The comparisons of `under` (series, metric, p, q) whose effect is over the floor on
    the run's windows (`screens`) and that also held on the windows ending each of the
    `days` days before the run's: enough claims, p at most the run's cut-off, effect over
    the floor. Those earlier windows are summed only for the series still in question, all
    days at once."""
    passed = set()
    for metric in dict.fromkeys(m for _, m, _, _ in under):
        mine = np.array([i for i, m, _, _ in under if m == metric])
        passed |= {(i, metric) for i in mine[screens.over_floor(metric, mine)].tolist()}
    alive = [one for one in under if (one[0], one[1]) in passed]
    if not alive or not days:
        return alive
    series = np.array(sorted({i for i, _, _, _ in alive}))
    # Row (d - 1) * len(series) + j: series[j] on the windows ending d days before the run's.
    earlier = _Screens(
        screens.table,
        np.tile(series, days),
        np.repeat(as_of.toordinal() - np.arange(1, days + 1), series.size),
        config,
    )
    row_of = {i: j for j, i in enumerate(series.tolist())}
    held = set()
    for metric in dict.fromkeys(m for _, m, _, _ in alive):
        mine = np.array([i for i, m, _, _ in alive if m == metric])
        rows = (
            np.array([row_of[i] for i in mine.tolist()])[None, :]
            + series.size * np.arange(days)[:, None]
        ).ravel()
        ok = (
            earlier.enough[rows]
            # NaN (no comparison) is not at most the cut-off.
            & (earlier.p_values(metric)[rows] <= np.tile(cutoffs[mine], days))
            & earlier.over_floor(metric, rows)
        )
        held |= {(i, metric) for i in mine[ok.reshape(days, -1).all(axis=0)].tolist()}
    return [one for one in alive if (one[0], one[1]) in held]


def _with(evidence: Evidence, **changes: float) -> Evidence:
    return Evidence(**{**evidence.__dict__, **changes})


class _Screens:
    """Every series of a table compared on one pair of windows, a metric at a time: the
    p-values (as `_compare` finds them one series at a time) and whether the effects clear
    their floors."""

    def __init__(
        self,
        table: SeriesTable,
        series: statistics.IntArray,
        as_of: statistics.IntArray,
        config: DetectionConfig,
    ) -> None:
        """Row i: series `series[i]` on the windows of a run as of `as_of[i]` (ordinal)."""
        self.table, self._config, self.rows = table, config, series.size
        current_start = as_of - (config.current_window_days - 1)
        baseline_start = current_start - config.baseline_window_days
        self._baseline = table.windows(series, baseline_start, current_start - 1)
        self._current = table.windows(series, current_start, as_of)
        self.enough = (self._current.amount("decided") >= config.min_current_claims) & (
            self._baseline.amount("decided") >= config.min_baseline_claims
        )
        self._p: dict[str, statistics.FloatArray] = {}
        self._payment: _PaymentDays | None = None

    def p_values(self, metric: str) -> statistics.FloatArray:
        """Each series' p-value, NaN where the comparison cannot be made."""
        if metric not in self._p:
            self._p[metric] = self._compute_p_values(metric)
        return self._p[metric]

    def _compute_p_values(self, metric: str) -> statistics.FloatArray:
        base, cur = self._baseline, self._current
        if metric == "DENIAL_RATE":
            return statistics.fisher_greater(
                base.amount("denied"),
                base.amount("decided"),
                cur.amount("denied"),
                cur.amount("decided"),
            )
        if metric == "DECISION_DAYS":
            p = statistics.mann_whitney_greater_rows(base.decision_days, cur.decision_days)[1]
            empty = (base.decision_days.sum(axis=1) == 0) | (cur.decision_days.sum(axis=1) == 0)
            return np.where(empty, np.nan, p)
        if metric == "PAYMENT_RATIO":
            days = self._payment_days()
            p = statistics.mann_whitney_less_groups(
                days.ratios, days.owner, days.current, self.rows
            )
            return np.where(days.enough, p, np.nan)
        if metric == "DENIAL_REASON_MIX":
            p = statistics.mix_p_values(base.carc_counts, cur.carc_counts, self.table.codes)
            few = (base.carc_counts.sum(axis=1) < MIN_DENIALS_FOR_MIX) | (
                cur.carc_counts.sum(axis=1) < MIN_DENIALS_FOR_MIX
            )
            return np.where(few, np.nan, p)
        raise ValueError(f"unknown metric {metric!r}")

    def over_floor(self, metric: str, rows: statistics.IntArray) -> npt.NDArray[np.bool_]:
        """Whether the effect of each of `rows` clears `metric`'s floor: a denial rate up by
        the configured points and ratio, decisions later by the configured days and share
        of the baseline median (Hodges–Lehmann shift), a paid/allowed ratio down by the
        configured drop, a denial mix at least MIX_MIN_DISTANCE (total variation) away."""
        config, base, cur = self._config, self._baseline, self._current
        if metric == "DENIAL_RATE":
            before, now = (
                _shares(w.amount("denied")[rows], w.amount("decided")[rows]) for w in (base, cur)
            )
            return ((now - before) * 100 >= config.denial_rate_min_increase_points) & (
                now >= config.denial_rate_min_ratio * before
            )
        if metric == "DECISION_DAYS":
            base_days, cur_days = base.decision_days[rows], cur.decision_days[rows]
            shift = statistics.shift_rows(base_days, cur_days, base.values)
            floor = np.maximum(
                config.decision_days_min_increase,
                config.decision_days_min_increase_fraction
                * statistics.median_rows(base_days, base.values),
            )
            return shift >= floor
        if metric == "PAYMENT_RATIO":
            days = self._payment_days()
            before, now = (
                _shares(paid[rows], allowed[rows])
                for paid, allowed in (days.baseline_sums, days.current_sums)
            )
            return -(now - before) >= config.payment_ratio_min_drop
        if metric == "DENIAL_REASON_MIX":
            base_mix, cur_mix = base.carc_counts[rows], cur.carc_counts[rows]
            distance = 0.5 * np.abs(_shares_of_rows(base_mix) - _shares_of_rows(cur_mix)).sum(
                axis=1
            )
            return distance >= MIX_MIN_DISTANCE
        raise ValueError(f"unknown metric {metric!r}")

    def _payment_days(self) -> _PaymentDays:
        if self._payment is None:
            self._payment = _PaymentDays(self.table, self._baseline, self._current)
        return self._payment


class _PaymentDays:
    """The days with allowed dollars of every series in both windows (a day of pure denials
    says nothing about the share): their paid/allowed ratios, and each window's sums."""

    def __init__(self, table: SeriesTable, baseline: WindowTotals, current: WindowTotals):
        count = baseline.low.size
        days, owners, windows = [], [], []
        for window, in_current in ((baseline, False), (current, True)):
            owner, position = runs(window.low, window.high)
            paying = table.daily_allowed[position] > 0
            days.append(position[paying])
            owners.append(owner[paying])
            windows.append(np.full(int(paying.sum()), in_current))
        position = np.concatenate(days)
        self.owner, self.current = np.concatenate(owners), np.concatenate(windows)
        paid, allowed = table.daily_paid[position], table.daily_allowed[position]
        self.ratios = paid / allowed
        self.baseline_sums, self.current_sums = (
            tuple(
                np.bincount(self.owner[mask], weights=amounts[mask], minlength=count)
                for amounts in (paid, allowed)
            )
            for mask in (~self.current, self.current)
        )
        self.enough = np.ones(count, dtype=bool)
        for mask in (~self.current, self.current):
            self.enough &= (
                np.bincount(self.owner[mask], minlength=count) >= statistics.MIN_PAYMENT_DAYS
            )


def _shares(part: npt.NDArray[Any], whole: npt.NDArray[Any]) -> statistics.FloatArray:
    """part / whole, 0.0 where the whole is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole > 0, part / np.where(whole > 0, whole, 1), 0.0)


def _shares_of_rows(counts: statistics.IntArray) -> statistics.FloatArray:
    return _shares(counts, counts.sum(axis=1, keepdims=True))


def _compare(
    metric: str, baseline: Totals, current: Totals, config: DetectionConfig
) -> tuple[Evidence, int] | None:
    """One comparison: its evidence and the dollars at stake; None when it cannot be made."""
    if metric == "DENIAL_RATE":
        rates = statistics.denial_rate_test(
            baseline.denied, baseline.decided, current.denied, current.decided
        )
        excess = max(rates.current_rate - rates.baseline_rate, 0.0)
        return (
            Evidence(
                baseline.decided,
                current.decided,
                baseline.denied,
                current.denied,
                rates.baseline_rate,
                rates.current_rate,
                (rates.current_rate - rates.baseline_rate) * 100,
                "percentage points",
                rates.p_value,
                "one-sided Fisher exact test",
                rates.baseline_interval,
                rates.current_interval,
            ),
            round(excess * current.billed_cents),
        )
    if metric == "DECISION_DAYS":
        base_days, cur_days = baseline.decision_days, current.decision_days
        if not base_days.total or not cur_days.total:
            return None
        shift = statistics.decision_days_shift(base_days, cur_days)
        late = int(cur_days.counts[cur_days.values > shift.baseline_median].sum())
        late_share = late / cur_days.total
        return (
            Evidence(
                base_days.total,
                cur_days.total,
                0,
                0,
                shift.baseline_median,
                shift.current_median,
                shift.shift,
                "days",
                shift.p_value,
                "one-sided Mann–Whitney U test, Hodges–Lehmann shift",
                None,
                shift.shift_interval,
            ),
            round(current.paid_cents * late_share),
        )
    if metric == "PAYMENT_RATIO":
        # Days with allowed dollars only: a day of pure denials says nothing about the share.
        base_paying, cur_paying = baseline.daily_allowed > 0, current.daily_allowed > 0
        if np.count_nonzero(base_paying) < statistics.MIN_PAYMENT_DAYS or (
            np.count_nonzero(cur_paying) < statistics.MIN_PAYMENT_DAYS
        ):
            return None
        ratio = statistics.payment_ratio_shift(
            baseline.daily_paid[base_paying],
            baseline.daily_allowed[base_paying],
            current.daily_paid[cur_paying],
            current.daily_allowed[cur_paying],
        )
        return (
            Evidence(
                baseline.decided,
                current.decided,
                0,
                0,
                ratio.baseline_ratio,
                ratio.current_ratio,
                ratio.current_ratio - ratio.baseline_ratio,
                "ratio",
                ratio.p_value,
                ratio.test,
            ),
            round(max(ratio.drop, 0.0) * current.allowed_cents),
        )
    if metric == "DENIAL_REASON_MIX":
        base_total, current_total = (
            sum(baseline.carc_counts.values()),
            sum(current.carc_counts.values()),
        )
        if base_total < MIN_DENIALS_FOR_MIX or current_total < MIN_DENIALS_FOR_MIX:
            return None
        mix = statistics.denial_reason_mix_test(baseline.carc_counts, current.carc_counts)
        distance = _total_variation(baseline.carc_counts, current.carc_counts)
        grown = sum(max(c - b, 0.0) for _, b, c in mix.shifts)
        return (
            Evidence(
                baseline.decided,
                current.decided,
                baseline.denied,
                current.denied,
                0.0,
                distance,
                distance,
                "total variation distance",
                mix.p_value,
                "chi-square test of homogeneity over the top CARC codes, Jensen–Shannon "
                f"distance {mix.js_distance:.3f}",
                carc_shifts=tuple(mix.shifts),
            ),
            round(grown * current.denied_billed_cents),
        )
    raise ValueError(f"unknown metric {metric!r}")


def _total_variation(baseline: Mapping[str, int], current: Mapping[str, int]) -> float:
    base_total, current_total = sum(baseline.values()), sum(current.values())
    codes = set(baseline) | set(current)
    return 0.5 * sum(
        abs(baseline.get(c, 0) / base_total - current.get(c, 0) / current_total) for c in codes
    )


def _severity(metric: str, evidence: Evidence, dollars: int, config: DetectionConfig) -> str:
    """How far over its floor the effect is, raised by the money involved."""
    floors = {
        "DENIAL_RATE": config.denial_rate_min_increase_points,
        "DECISION_DAYS": max(
            config.decision_days_min_increase,
            config.decision_days_min_increase_fraction * evidence.baseline_value,
        ),
        "PAYMENT_RATIO": config.payment_ratio_min_drop,
        "DENIAL_REASON_MIX": MIX_MIN_DISTANCE,
    }
    times_floor = abs(evidence.effect_size) / max(floors[metric], 1e-9)
    if times_floor >= 3 or dollars >= 5_000_000:
        return "HIGH"
    if times_floor >= 1.5 or dollars >= 1_000_000:
        return "MEDIUM"
    return "LOW"


def _money(cents: int) -> str:
    return f"${cents / 100:,.0f}"


def summary(cell: Cell, metric: str, evidence: Evidence, dollars: int, windows: Windows) -> str:
    """One line a revenue-cycle lead can act on."""
    scope = f"{cell.code_group.replace('_', ' ').lower()} claims" if cell.code_group else "claims"
    since = f"since {windows.current.start:%b} {windows.current.start.day}"
    stake = f" — about {_money(dollars)} at stake" if dollars else ""
    if metric == "DENIAL_RATE":
        return (
            f"{cell.payer} now denies {evidence.current_value:.1%} of {scope}, up from "
            f"{evidence.baseline_value:.1%}, {since}{stake}."
        )
    if metric == "DECISION_DAYS":
        return (
            f"{cell.payer} takes {evidence.effect_size:.1f} days longer to decide {scope} "
            f"(median {evidence.current_value:.0f} days, was {evidence.baseline_value:.0f}), "
            f"{since}{stake.replace('at stake', 'paid late')}."
        )
    if metric == "PAYMENT_RATIO":
        return (
            f"{cell.payer} pays {evidence.current_value:.1%} of the allowed amount on {scope}, "
            f"down from {evidence.baseline_value:.1%}, {since}{stake}."
        )
    grown = ", ".join(code for code, _, _ in evidence.carc_shifts[:3]) or "other codes"
    return f"{cell.payer} denies {scope} for different reasons {since}: more {grown}{stake}."

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
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from services.drift import statistics
from services.drift.config import DetectionConfig
from services.drift.series import ALL_CODES, CellSeries, Totals, Window, payer_series

# Denial-reason mix: too few denials make a mix meaningless; the change must be visible.
MIN_DENIALS_FOR_MIX = 30
MIX_MIN_DISTANCE = 0.15
MIN_DAYS_FOR_RATIO = 3
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


def _enough(series: CellSeries, windows: Windows, config: DetectionConfig) -> bool:
    return series.decided_in(windows.current) >= config.min_current_claims and (
        series.decided_in(windows.baseline) >= config.min_baseline_claims
    )


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
    tested_cells: list[Cell] = []
    skipped = 0
    for cell in sorted(cells, key=lambda cell: (cell.payer, cell.code_group)):
        if cell.code_group != ALL_CODES and groups_per_payer[cell.payer] == 1:
            continue  # the payer's only group: the payer-level cell is the same comparison
        if _enough(cells[cell], windows, config):
            tested_cells.append(cell)
        elif cell.code_group == ALL_CODES:
            skipped += 1  # a small group is still in its payer's cell; a small payer is not
    candidates: list[tuple[Cell, str, Evidence, int]] = []
    for cell in tested_cells:
        baseline, current = _window_totals(cells[cell], windows)
        for metric in config.enabled_metrics:
            tested = _compare(metric, baseline, current, config)
            if tested is not None:
                candidates.append((cell, metric, *tested))
    q_values = statistics.benjamini_hochberg([c[2].p_value for c in candidates])
    # Benjamini–Hochberg's critical value in this run: with k of m comparisons rejected, any
    # p value up to k·q/m is rejected too.
    rejected = sum(q <= config.false_discovery_rate for q in q_values)
    m = max(len(candidates), 1)
    # Capped at a multiple of the Bonferroni bound: BH's cut-off grows with every true drift
    # in the run, and on a customer with several drifts it let noise cells through with it.
    payer_cutoff = min(rejected, PAYER_BONFERRONI_MULTIPLE) * config.false_discovery_rate / m
    group_cutoff = min(rejected, GROUP_BONFERRONI_MULTIPLE) * config.false_discovery_rate / m
    earlier = _EarlierWindows(cells, as_of, config, persistence_days)
    findings = []
    for (cell, metric, evidence, dollars), q in zip(candidates, q_values, strict=True):
        evidence = _with_q(evidence, q)
        cutoff = payer_cutoff if cell.code_group == ALL_CODES else group_cutoff
        if (
            evidence.p_value <= cutoff
            and _over_floor(metric, evidence, config)
            and earlier.held(cell, metric, cutoff)
        ):
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
        cells_tested=len(tested_cells),
        cells_skipped=skipped,
        tested={(c.payer, c.code_group, metric) for c, metric, _, _ in candidates},
    )


class _EarlierWindows:
    """Whether a finding also held on the windows ending each of the `days` days before the
    run's, at the run's p-value cut-off and above the floor."""

    def __init__(
        self, cells: Mapping[Cell, CellSeries], as_of: dt.date, config: DetectionConfig, days: int
    ) -> None:
        self._cells, self._as_of, self._config, self._days = cells, as_of, config, days

    def held(self, cell: Cell, metric: str, cutoff: float) -> bool:
        series = self._cells[cell]
        for days_before in range(1, self._days + 1):
            windows = windows_for(self._as_of - dt.timedelta(days=days_before), self._config)
            if not _enough(series, windows, self._config):
                return False
            tested = _compare(metric, *_window_totals(series, windows), self._config)
            if tested is None:
                return False
            evidence = tested[0]
            if evidence.p_value > cutoff or not _over_floor(metric, evidence, self._config):
                return False
        return True


def _with_q(evidence: Evidence, q: float) -> Evidence:
    return Evidence(**{**evidence.__dict__, "q_value": q})


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
        if np.count_nonzero(base_paying) < MIN_DAYS_FOR_RATIO or (
            np.count_nonzero(cur_paying) < MIN_DAYS_FOR_RATIO
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


def _over_floor(metric: str, evidence: Evidence, config: DetectionConfig) -> bool:
    if metric == "DENIAL_RATE":
        points = evidence.effect_size
        ratio_ok = evidence.current_value >= config.denial_rate_min_ratio * evidence.baseline_value
        return points >= config.denial_rate_min_increase_points and ratio_ok
    if metric == "DECISION_DAYS":
        floor = max(
            config.decision_days_min_increase,
            config.decision_days_min_increase_fraction * evidence.baseline_value,
        )
        return evidence.effect_size >= floor
    if metric == "PAYMENT_RATIO":
        return -evidence.effect_size >= config.payment_ratio_min_drop
    return evidence.effect_size >= MIX_MIN_DISTANCE


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

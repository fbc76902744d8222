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
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from runtime.code_groups import group_words
from services.drift import statistics
from services.drift.config import DetectionConfig
from services.drift.series import (
    ALL_CODES,
    AMOUNTS,
    CellSeries,
    SeriesTable,
    Totals,
    Window,
    WindowTotals,
    listed,
    payer_series,
    runs,
    runs_by_rows,
)

# Denial-reason mix: too few denials make a mix meaningless (with 30, a total variation of
# 0.15 between two windows is a common chance excursion); the change must be visible.
MIN_DENIALS_FOR_MIX = 60
MIX_MIN_DISTANCE = 0.2
# The denial reasons an event lists (`carc_codes_moved`).
MAX_REASON_SHIFTS = 10
# A finding must also hold on the windows ending each of the days before the run's: a random
# excursion of a noisy cell rarely lasts a week, a drift does. Costs about that many days of
# latency, and tests only the cells that are findings.
PERSISTENCE_DAYS = 6
# A finding's p value must be at most this many times q/m (m comparisons in the run), as well
# as pass Benjamini–Hochberg at q: twice for a payer as a whole, once for one of its code
# groups. Groups are many and small, and their chance excursions were most false alarms.
PAYER_BONFERRONI_MULTIPLE = 2
GROUP_BONFERRONI_MULTIPLE = 1
# A payer that appears after the customer's data begins (a new payer, or a new procedure group
# of one) has biased first weeks: its first decisions can only be the quick ones. Its history
# must begin this long before a baseline window for the comparison to be made; a cell whose
# history does not cover its baseline window is not compared at all ("not enough history").
NEW_PAYER_LEAD_DAYS = 60
# Days after the customer's first that a cell's first decision may come and the cell still
# count as there from the start (a small payer is not decided on every day).
NEW_PAYER_SLACK_DAYS = 14
# Seasonality: last year's same weeks are 52 weeks back (weekdays line up). Where the history
# reaches back that far, the baseline is adjusted by how last year's same weeks differed from
# the days before them (the longest of these references the history covers), scaled to this
# year's level; see `_Season`.
SEASON_DAYS = 364
SEASON_REFERENCE_DAYS = (30, 90, 180)
# A reference counts as covered by a history that begins this share of its days into it:
# data that begins on a day has its first decisions days later, and a month's reference
# next to the season (December before January) is itself half in it where three months' is
# not.
SEASON_REFERENCE_SLACK = 0.1
# Fewer decided claims than this in a window of last year's says nothing about a season.
MIN_SEASON_CLAIMS = 30
# Last year's change of denial reasons counts as seasonal when this unlikely by chance.
SEASON_MIX_P_VALUE = 0.01
# Reasons that come and go with the season (January's eligibility denials, CO-27): a reason
# the customer's payers denied for, in last year's same weeks and SEASON_REASON_MARGIN_DAYS
# either side, at least SEASON_REASON_RATIO times as often (as a share of their denials) as
# in the SEASON_REASON_REFERENCE_DAYS before and after those, and that unlikely by chance
# (one-sided Fisher). When such denials are decided moves from year to year with the
# payers' pace (a week later, and a January's are February's), so in those weeks the mix is
# compared over the other reasons; the denial rate still counts them.
SEASON_REASON_MARGIN_DAYS = 30
SEASON_REASON_REFERENCE_DAYS = 60
SEASON_REASON_RATIO = 2.0
SEASON_REASON_P_VALUE = 0.001
# Sequential test (see `_Cusum`): the metrics it watches, how many of the last days must
# still lean towards the change (a spike that ended is no drift), and how far above the
# baseline's estimate the rate it starts from is put (one-sided z), so that a baseline that
# happened to come out low does not make every ordinary day look like a change. Decision
# times are watched as the share of claims slower than the time within which the baseline
# decided DECISION_SPLIT_SHARE of its claims, each day against last year's same days
# (SEASON_SMOOTH_DAYS either side): holiday slowdowns fall in a window's last days, where a
# season adjusted over the whole window does not reach.
SEQUENTIAL_METRICS = ("DENIAL_RATE", "DECISION_DAYS")
RECENT_DAYS = 7
BASELINE_MARGIN_Z = 0.84
# A payer that takes a few days longer delays its quick decisions as much as its slow ones,
# and a few days move more claims across a split among the quick ones than across the
# median: for times to decision spread as payers' are (log-normal, σ about 0.55), a claim
# says about 1.8 times as much about a small shift at the 25th percentile as at the median,
# so the sequential test reaches its threshold sooner at the same false-alarm rate (`make
# eval`: decision days +5 found in a median of 9 days against 11 at the median split with
# seed 7, 12 against 14 with seed 11, no more false alarms with either; the 30th percentile
# gave 10 and the 20th 11 with seed 7).
DECISION_SPLIT_SHARE = 0.25
# A decision-time season (a shift of the median by at least a day) is expected up to this
# many standard errors above its estimate, the error counting how much one year's holiday
# slowdown differs from the next's (variance in days²) besides the medians' sampling noise.
SEASON_DAY_MARGIN_Z = 1.0
SEASON_DAY_YEAR_VARIANCE = 4.0
SEASON_SMOOTH_DAYS = 3
# Censored decision times (see `_Screens.pending`): claims still pending past the time the
# baseline decided this share of its claims in count against the payer; so many more than
# the baseline leads to expect, and at least twice as many, make a finding.
PENDING_QUANTILE = 0.9
PENDING_MIN_EXCESS = 10
# A finding of pending claims must stand on the runs of this many days before as well: a day
# or two a small group's claims wait longer (a batch decided late) is not a payer that
# stopped deciding.
PENDING_PERSISTENCE_DAYS = 2
# Three times as many: a payer whose volume just doubled, or one in its holiday weeks, has
# up to twice as many pending as its usual pace leaves; one that stops deciding, many more.
PENDING_MIN_RATIO = 3.0
# A year before, a run reads the decisions of this many days after its as-of day day by day
# (a claim's start is its decision day less its days to decision): the claims pending then
# are counted exactly where they were decided within them (later ones, from the span of days
# they were decided in, as if on its first day).
SEASON_DAILY_DAYS = 90
# How many tests a comparison is (window, sequential, and for decision days pending claims):
# its p value is the smallest of theirs times this (Bonferroni).
TESTS = {"DENIAL_RATE": 2, "DECISION_DAYS": 3}
# Threads a run computes its metrics' p-values in (see `detect`).
TEST_THREADS = 2
# Payer names exports give claims the patients pay themselves (no insurer): counted and shown,
# never compared, as what patients pay is no payer's drift. Matched whole, in any case, with
# hyphens, dots and slashes as spaces ("SELF-PAY", "Self Pay", "self/pay").
SELF_PAY_NAMES = frozenset(
    {
        "self pay", "selfpay", "self", "self pay patient", "patient", "patient pay",
        "patient responsibility", "private pay", "uninsured", "no insurance", "cash",
        "cash pay", "self pay cash", "guarantor",
    }
)  # fmt: skip


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
    """The earliest day whose statistics a run as of `as_of` reads: its windows and those of
    the PERSISTENCE_DAYS days before, and the same weeks a year before them (seasons; also
    how long before its baseline a payer's history begins)."""
    earliest = windows_for(as_of - dt.timedelta(days=PERSISTENCE_DAYS), config).baseline.start
    return earliest - dt.timedelta(days=SEASON_DAYS)


def season_windows(windows: Windows, reference_days: int) -> tuple[Window, Window, Window]:
    """Last year's same weeks as the current window, the `reference_days` before them, and
    this year's `reference_days` before the current window (the end of the baseline)."""
    year = dt.timedelta(days=SEASON_DAYS)
    reference = dt.timedelta(days=reference_days)
    current = windows.current
    return (
        Window(current.start - year, current.end - year),
        Window(current.start - year - reference, current.start - year - dt.timedelta(days=1)),
        Window(current.start - reference, current.start - dt.timedelta(days=1)),
    )


def window_edges(windows: Iterable[Window]) -> set[dt.date]:
    """The days on which `windows` begin, and the days after they end: histogram and CARC
    entries summed over the spans these days begin still sum every one of the windows."""
    return {edge for w in windows for edge in (w.start, w.end + dt.timedelta(days=1))}


def span_starts_read(as_of: dt.date, config: DetectionConfig) -> set[dt.date]:
    """The spans a run as of `as_of` may read its entries summed over: it sums nothing finer
    than its windows and those ending each of the PERSISTENCE_DAYS days before, their season
    windows, and reads day by day its current window and the days around the same days a
    year earlier (the sequential tests' seasons, last year's pending claims)."""
    every = [
        windows_for(as_of - dt.timedelta(days=days_before), config)
        for days_before in range(PERSISTENCE_DAYS + 1)
    ]
    seasons = [
        window
        for w in every
        for days in SEASON_REFERENCE_DAYS
        for window in season_windows(w, days)
    ]
    # The sequential test reads the current window day by day; the pending claims of a year
    # earlier are worked out from the days of the decisions that followed (see `_Pending`).
    # The same windows a year earlier: what its baseline expected then (pending claims, the
    # share of slow decisions), and its current windows' days, SEASON_SMOOTH_DAYS either
    # side, day by day.
    year = dt.timedelta(days=SEASON_DAYS)
    last_years = [windows_for(w.current.end - year, config) for w in every]
    reasons = [window for w in every for window in season_reason_windows(w.current)]
    current = every[0].current
    after = dt.timedelta(days=max(SEASON_DAILY_DAYS, SEASON_SMOOTH_DAYS))
    days = [
        *_days_between(current.start, current.end),
        *_days_between(
            every[-1].current.start - year - dt.timedelta(days=SEASON_SMOOTH_DAYS),
            current.end - year + after,
        ),
    ]
    return window_edges(
        [
            *(window for w in every + last_years for window in (w.baseline, w.current)),
            *seasons,
            *reasons,
            *days,
        ]
    )


def season_reason_windows(current: Window) -> tuple[Window, Window, Window]:
    """Last year's same weeks as `current` with SEASON_REASON_MARGIN_DAYS either side, and
    the SEASON_REASON_REFERENCE_DAYS before and after those: where a reason of the season
    is looked for (see SEASON_REASON_RATIO)."""
    year = dt.timedelta(days=SEASON_DAYS)
    margin = dt.timedelta(days=SEASON_REASON_MARGIN_DAYS)
    reference = dt.timedelta(days=SEASON_REASON_REFERENCE_DAYS)
    one = dt.timedelta(days=1)
    same = Window(current.start - year - margin, current.end - year + margin)
    return (
        same,
        Window(same.start - reference, same.start - one),
        Window(same.end + one, same.end + reference),
    )


def _days_between(first: dt.date, last: dt.date) -> list[Window]:
    """Each day from `first` to `last` as a window of its own."""
    return [
        Window(first + dt.timedelta(days=n), first + dt.timedelta(days=n))
        for n in range((last - first).days + 1)
    ]


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
    # Of the effect, in its unit (the decision days' shift).
    effect_interval: statistics.Interval | None = None
    carc_shifts: tuple[tuple[str, float, float], ...] = ()
    q_value: float = 1.0
    # What the season led to expect in place of the baseline value (None: no season known):
    # the effect and p value are then measured against it.
    expected_value: float | None = None


@dataclass(frozen=True)
class Finding:
    cell: Cell
    metric: str
    severity: str
    evidence: Evidence
    dollars_at_stake_cents: int
    summary: str
    # When the change is estimated to have started; the current values cover it to the run.
    since: dt.date | None = None


@dataclass
class Detection:
    """What a run found, and what it looked at (so open events it no longer finds close)."""

    windows: Windows
    findings: list[Finding]
    cells_tested: int
    cells_skipped: int
    # (payer, code_group, metric) of every comparison made.
    tested: set[tuple[str, str, str]]
    # Payers whose history does not cover the baseline yet, with the first day a run may
    # compare them ("not enough history yet").
    history_until: dict[str, dt.date] = field(default_factory=dict)


def is_self_pay(payer: str) -> bool:
    """Whether `payer` names the patients themselves rather than an insurer (SELF_PAY_NAMES)."""
    return " ".join(re.split(r"[\s\-./_]+", payer.lower())).strip() in SELF_PAY_NAMES


def _cells(series: list[CellSeries], first: dt.date, last: dt.date) -> dict[Cell, CellSeries]:
    """Every payer × code group with days between `first` and `last`, and every such payer as
    a whole, self-pay aside (`is_self_pay`). Claims without a procedure code (group "") count
    in their payer's cell only."""
    present = [one for one in series if one.has_days_in(first, last)]
    # Every series present: a `ReadSeries` has its payers merged already.
    merging = series if len(present) == len(series) else present
    cells = {Cell(payer, ALL_CODES): one for payer, one in payer_series(merging).items()}
    for one in present:
        if one.code_group != ALL_CODES:
            cells[Cell(one.payer, one.code_group)] = one
    return {cell: one for cell, one in cells.items() if not is_self_pay(cell.payer)}


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
    series = listed(series)
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
    history = _History(table, series)
    rows = np.arange(len(compared))
    screens = _Screens(table, rows, np.full(rows.size, as_of.toordinal()), config, history)
    tested = np.flatnonzero(screens.enough).tolist()
    # A small group is still in its payer's cell; a small payer is not.
    skipped = sum(
        1
        for cell, enough in zip(compared, screens.enough.tolist(), strict=True)
        if not enough and cell.code_group == ALL_CODES
    )
    first_run = history.first_run(rows, config)
    history_until = {
        cell.payer: dt.date.fromordinal(day)
        for cell, day in zip(compared, first_run.tolist(), strict=True)
        if cell.code_group == ALL_CODES and day > as_of.toordinal()
    }
    # The metrics' tests are apart until here, and most of their time is spent in NumPy,
    # which lets go of the interpreter's lock: two at a time, on two cores.
    metrics = config.enabled_metrics
    with ThreadPoolExecutor(TEST_THREADS, thread_name_prefix="drift-tests") as pool:
        p_values = dict(zip(metrics, pool.map(screens.p_values, metrics), strict=True))
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
    # A change the sequential test found is a finding as it stands, measured since it began;
    # the others must hold on the windows of the days before too.
    pending = _pending_held(
        [
            i
            for i, metric, _, _ in under
            if metric == "DECISION_DAYS"
            and TESTS["DECISION_DAYS"] * screens.pending.p_value[i] <= cutoffs[i]
            and screens.pending.clears_floor(i)
        ],
        screens,
        as_of,
        config,
        cutoffs,
        min(PENDING_PERSISTENCE_DAYS, persistence_days),
    )
    # The changes the sequential test dates are measured since they began, each against the
    # season of its own days: those seasons made together.
    screens.prepare_seasons(
        (i, _dated_change(screens, i, metric, cutoffs[i])) for i, metric, _, _ in under
    )
    sequential = {
        (i, metric): since
        for i, metric, _, _ in under
        if not (metric == "DECISION_DAYS" and i in pending)
        if (since := _sequential_finding(screens, cells[compared[i]], i, metric, cutoffs[i], as_of))
    }
    sequential |= {(i, "DECISION_DAYS"): as_of for i in pending}
    held = [one for one in under if (one[0], one[1]) in sequential] + _held(
        [one for one in under if (one[0], one[1]) not in sequential],
        screens,
        as_of,
        config,
        cutoffs,
        persistence_days,
    )
    held, mixed = _fold_reason_mix(held, compared)
    findings = []
    for i, metric, p_value, q in sorted(held, key=lambda one: (one[0], one[1])):
        cell = compared[i]
        if metric == "DECISION_DAYS" and i in pending:
            baseline, current = _window_totals(cells[cell], windows)
            evidence, dollars = _pending_evidence(screens.pending, i, baseline, current)
            since = windows.current.start
            text = _pending_summary(cell, evidence, dollars)
        else:
            began = sequential.get((i, metric))
            measured = windows if began is None else replace(windows, current=Window(began, as_of))
            baseline, current = _window_totals(cells[cell], measured)
            expected = screens.expected(i, metric, baseline, began)
            if metric == "DENIAL_REASON_MIX":
                # The reasons of the season are left out of both windows' mix.
                current = screens.without_seasonal_reasons(i, current, began)
            comparison = _compare(metric, expected, current, config)
            assert comparison is not None  # the same sums had a p-value
            evidence, dollars = comparison
            if screens.seasonal(i, metric, began):
                evidence = _seasonal_evidence(evidence, metric, baseline, current, config)
            if metric == "DENIAL_RATE":
                reasons = screens.expected(i, "DENIAL_REASON_MIX", baseline, began)
                mix = screens.without_seasonal_reasons(i, current, began)
                evidence = _with(evidence, carc_shifts=_reason_shifts(reasons, mix))
            since = began or screens.change_start(i, metric) or windows.current.start
            text = summary(cell, metric, evidence, dollars, since, new_reasons=i in mixed)
        # The p-value Benjamini–Hochberg ranked, so that p and q agree to the last digit.
        evidence = _with(evidence, p_value=p_value, q_value=q)
        findings.append(
            Finding(
                cell,
                metric,
                _severity(metric, evidence, dollars, config),
                evidence,
                dollars,
                text,
                since,
            )
        )
    return Detection(
        windows,
        findings,
        cells_tested=len(tested),
        cells_skipped=skipped,
        tested={(compared[i].payer, compared[i].code_group, metric) for i, metric, _ in candidates},
        history_until=history_until,
    )


def _fold_reason_mix(
    held: list[tuple[int, str, float, float]], compared: Sequence[Cell]
) -> tuple[list[tuple[int, str, float, float]], set[int]]:
    """One story, one event: a payer denying more and for other reasons is told as its rise
    in denials, with the reasons that grew. A payer's reason-mix findings are left out where
    one of its cells' denial rate rose in the same run (a rise in some reasons moves every
    reason's share: the mix test finds the rise again). Returns the findings kept and the rows
    of the denial-rate findings that now say the reasons changed: the same cell's, else the
    payer's own, else its first group's."""
    rising = {i for i, metric, _, _ in held if metric == "DENIAL_RATE"}
    by_payer: dict[str, list[int]] = {}
    for i in sorted(rising, key=lambda i: (compared[i].code_group != ALL_CODES, i)):
        by_payer.setdefault(compared[i].payer, []).append(i)
    kept, mixed = [], set()
    for one in held:
        i, metric = one[0], one[1]
        told_by = by_payer.get(compared[i].payer)
        if metric != "DENIAL_REASON_MIX" or told_by is None:
            kept.append(one)
            continue
        mixed.add(i if i in rising else told_by[0])
    return kept, mixed


def _reason_shifts(baseline: Totals, current: Totals) -> tuple[tuple[str, float, float], ...]:
    """The denial reasons whose share grew from `baseline` to `current`, largest growth first
    (at most 10), as a denial-rate finding's evidence states them."""
    mix = statistics.denial_reason_mix_test(baseline.carc_counts, current.carc_counts)
    return tuple(mix.shifts[:MAX_REASON_SHIFTS])


def _dated_change(screens: _Screens, row: int, metric: str, cutoff: float) -> dt.date | None:
    """The day a change began, when the sequential test alone brings the comparison under the
    run's cut-off and the last RECENT_DAYS still lean towards it."""
    if metric not in SEQUENTIAL_METRICS:
        return None
    cusum = screens.cusum(metric)
    if not (TESTS[metric] * cusum.p_value[row] <= cutoff and cusum.recent[row]):
        return None
    return dt.date.fromordinal(int(cusum.start[row]))


def _sequential_finding(
    screens: _Screens, series: CellSeries, row: int, metric: str, cutoff: float, as_of: dt.date
) -> dt.date | None:
    """The day a change began, when the sequential test alone brings the comparison under the
    run's cut-off, the last RECENT_DAYS still lean towards it, and the change measured since
    it began (enough claims, seasonally expected baseline) clears the metric's floor."""
    since = _dated_change(screens, row, metric, cutoff)
    if since is None:
        return None
    config = screens.config
    baseline = screens.expected(row, metric, series.totals(screens.windows.baseline), since)
    current = series.totals(Window(since, as_of))
    if current.decided < config.min_current_claims // 2:
        return None
    comparison = _compare(metric, baseline, current, config)
    if comparison is None or not _clears_floor(metric, comparison[0], config):
        return None
    return since


PENDING_UNIT = "claims"


def _pending_evidence(
    pending: _Pending, row: int, baseline: Totals, current: Totals
) -> tuple[Evidence, int]:
    """A finding of claims pending past the usual decision time: the counts expected and
    seen, and the payments they hold back (at the current window's average payment)."""
    observed, expected, usual = (
        int(pending.observed[row]),
        float(pending.expected[row]),
        int(pending.usual[row]),
    )
    average_paid = current.paid_cents / current.decided if current.decided else 0.0
    factor = float(pending.factor[row])
    season = f", ×{factor:.1f} as on the same days a year earlier" if factor > 1 else ""
    return (
        Evidence(
            baseline.decided,
            current.decided,
            round(expected),
            observed,
            float(usual),
            float(usual),
            observed - expected,
            PENDING_UNIT,
            float(pending.p_value[row]),
            f"one-sided Poisson test of the claims pending past {usual} days (the baseline's "
            f"{PENDING_QUANTILE:.0%} decision time) against the baseline's pace{season}",
        ),
        round(observed * average_paid),
    )


def _pending_summary(cell: Cell, evidence: Evidence, dollars: int) -> str:
    scope = f"{group_words(cell.code_group)} claims" if cell.code_group else "claims"
    stake = f" — about {_money(dollars)} held back" if dollars else ""
    return (
        f"{cell.payer} has {evidence.current_events} {scope} waiting more than "
        f"{evidence.baseline_value:.0f} days for a decision, where its usual pace leaves about "
        f"{evidence.baseline_events}: decisions have slowed or stopped{stake}."
    )


def _clears_floor(metric: str, evidence: Evidence, config: DetectionConfig) -> bool:
    """`_Screens.over_floor` for one comparison's evidence."""
    if metric == "DENIAL_RATE":
        return (
            evidence.effect_size >= config.denial_rate_min_increase_points
            and evidence.current_value >= config.denial_rate_min_ratio * evidence.baseline_value
        )
    return evidence.effect_size >= max(
        config.decision_days_min_increase,
        config.decision_days_min_increase_fraction * evidence.baseline_value,
    )


def _earlier(
    screens: _Screens,
    series: statistics.IntArray,
    as_of: dt.date,
    config: DetectionConfig,
    days: int,
) -> _Screens:
    """Screens of `series` (rows of `screens`' table) on the windows of each of the `days`
    days before the run's: row (d - 1) * len(series) + j is series[j] d days before."""
    return _Screens(
        screens.table,
        np.tile(series, days),
        np.repeat(as_of.toordinal() - np.arange(1, days + 1), series.size),
        config,
        screens.history,
    )


def _pending_held(
    rows: list[int],
    screens: _Screens,
    as_of: dt.date,
    config: DetectionConfig,
    cutoffs: statistics.FloatArray,
    days: int,
) -> set[int]:
    """The rows whose pending claims are a finding on the run's day that are one on each of
    the `days` days before too (the run's cut-off, the floor)."""
    if not rows or not days:
        return set(rows)
    series = np.array(sorted(rows))
    pending = _earlier(screens, series, as_of, config, days).pending
    ok = np.array(
        [
            TESTS["DECISION_DAYS"] * pending.p_value[k] <= cutoffs[series[k % series.size]]
            and pending.clears_floor(k)
            for k in range(series.size * days)
        ]
    )
    return set(series[ok.reshape(days, -1).all(axis=0)].tolist())


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
    earlier = _earlier(screens, series, as_of, config, days)
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


def _with(evidence: Evidence, **changes: Any) -> Evidence:
    return replace(evidence, **changes)


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
        history: _History,
    ) -> None:
        """Row i: series `series[i]` on the windows of a run as of `as_of[i]` (ordinal). The
        baseline of a row whose history reaches a year back is adjusted for the season."""
        self.table, self.config, self.rows, self.history = table, config, series.size, history
        self._config = config
        self._as_of = as_of
        self._series = series
        self._cusums: dict[str, _Cusum] = {}
        self._span_seasons: dict[tuple[int, int], tuple[_Season, int]] = {}
        self._pending: _Pending | None = None
        current_start = as_of - (config.current_window_days - 1)
        baseline_start = current_start - config.baseline_window_days
        observed = table.windows(series, baseline_start, current_start - 1)
        self._current = table.windows(series, current_start, as_of)
        self._season = _Season(table, series, current_start, observed, config, history)
        self._observed = observed
        self._baseline, self._current = self._season.adjusted(observed, self._current)
        self.enough = (
            (self._current.amount("decided") >= config.min_current_claims)
            & (observed.amount("decided") >= config.min_baseline_claims)
            & (history.covered_from(series) <= baseline_start)
        )
        self._p: dict[str, statistics.FloatArray] = {}
        self._payment: _PaymentDays | None = None

    @property
    def windows(self) -> Windows:
        """The windows of the first row's run (a run's own screens share one as-of day)."""
        return windows_for(dt.date.fromordinal(int(self._as_of[0])), self._config)

    def p_values(self, metric: str) -> statistics.FloatArray:
        """Each series' p-value, NaN where the comparison cannot be made: the window test's,
        or for SEQUENTIAL_METRICS the smallest of it, the sequential test's and (decision
        days) the pending claims', times TESTS (Bonferroni)."""
        if metric not in self._p:
            p = self._compute_p_values(metric)
            # NaN stays NaN: the other tests need what the window test needs.
            if metric in SEQUENTIAL_METRICS:
                p = np.minimum(p, self.cusum(metric).p_value)
                if metric == "DECISION_DAYS":
                    p = np.minimum(p, self.pending.p_value)
                p = np.minimum(1.0, TESTS[metric] * p)
            self._p[metric] = p
        return self._p[metric]

    @property
    def pending(self) -> _Pending:
        if self._pending is None:
            self._pending = _Pending.of(self.table, self._series, self._as_of, self._baseline,
                                        self._current, self._config, self.history)  # fmt: skip
        return self._pending

    def change_start(self, row: int, metric: str) -> dt.date | None:
        """When the sequential test estimates the row's change began (None: not watched)."""
        if metric not in SEQUENTIAL_METRICS:
            return None
        return dt.date.fromordinal(int(self.cusum(metric).start[row]))

    def cusum(self, metric: str) -> _Cusum:
        """The sequential test of every row over its current window, day by day: from the
        baseline's denial rate to the rate the denial-rate floor means; from the baseline's
        share of claims slower than its split (DECISION_SPLIT_SHARE; as last year's same days
        had it) to the share a shift by the decision-days floor means."""
        if metric not in self._cusums:
            make = self._denial_cusum if metric == "DENIAL_RATE" else self._decision_cusum
            self._cusums[metric] = make()
        return self._cusums[metric]

    def _denial_cusum(self) -> _Cusum:
        config, base, days = self._config, self._baseline, self._config.current_window_days
        first = self._as_of - (days - 1)
        # The baseline's rate as precise as the season's expectation of it.
        p0 = _upper_rate(*self._season.denial_counts(base))
        p1 = np.maximum(
            p0 + config.denial_rate_min_increase_points / 100,
            p0 * config.denial_rate_min_ratio,
        )
        trials = self._by_day(self.table.daily_decided, first, days)
        successes = self._by_day(self.table.daily_denied, first, days)
        return _Cusum.of(successes, trials, p0, p1, first)

    def _decision_cusum(self) -> _Cusum:
        config, observed, days = self._config, self._observed, self._config.current_window_days
        table, series = self.table, self._series
        first = self._as_of - (days - 1)
        counts, values = observed.decision_days, observed.values
        median = statistics.median_rows(counts, values)
        floor = np.maximum(
            config.decision_days_min_increase, config.decision_days_min_increase_fraction * median
        )
        split = statistics.quantile_rows(counts, values, DECISION_SPLIT_SHARE)
        total = counts.sum(axis=1)
        p0 = _upper_rate(_claims_beyond(counts, values, split), total)
        p1 = _claims_beyond(counts, values, split - floor) / np.maximum(total, 1)
        successes, trials = _daily_beyond(table, series, first, days, split)
        season = _slow_season(table, series, first, days, config, self.history)
        return _Cusum.of(
            successes,
            trials,
            np.clip(p0[:, None] + season, 1e-4, 0.99),
            np.clip(p1[:, None] + season, 1e-4, 0.999),
            first,
        )

    def _by_day(
        self, daily: statistics.IntArray, first: statistics.IntArray, days: int
    ) -> statistics.IntArray:
        """Each row's current window of a daily amount of the table, one column per day."""
        current = self._current
        row, position = runs(current.low, current.high)
        matrix = np.zeros((self.rows, days), dtype=np.int64)
        np.add.at(matrix, (row, self.table.days[position] - first[row]), daily[position])
        return matrix

    def _compute_p_values(self, metric: str) -> statistics.FloatArray:
        base, cur = self._baseline, self._current
        if metric == "DENIAL_RATE":
            denied, decided = self._season.denial_counts(base)
            return statistics.fisher_greater(
                denied, decided, cur.amount("denied"), cur.amount("decided")
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

    def expected(
        self, row: int, metric: str, baseline: Totals, since: dt.date | None = None
    ) -> Totals:
        """Row `row`'s baseline window of one series as `metric` compares it: adjusted for
        the season, like the row's sums; for a change measured `since` a day of the current
        window, for the season of the days since then."""
        season, at = self._season_since(row, since)
        return season.expected(at, metric, baseline)

    def without_seasonal_reasons(
        self, row: int, totals: Totals, since: dt.date | None = None
    ) -> Totals:
        """`totals` of row `row` (measured `since`) without its reasons of the season."""
        season, at = self._season_since(row, since)
        return season.without_seasonal_reasons(at, totals)

    def seasonal(self, row: int, metric: str, since: dt.date | None = None) -> bool:
        """Whether `metric`'s baseline of row `row` (measured `since`) was adjusted for the
        season."""
        season, at = self._season_since(row, since)
        return season.adjusts(at, metric)

    def _season_since(self, row: int, since: dt.date | None) -> tuple[_Season, int]:
        """The season of row `row`'s days from `since` to its as-of day, and its row in it:
        a change that began inside the current window is expected only what last year's
        same dates brought (a holiday week's slowdown, not the window's average of it)."""
        key = self._span_key(row, since)
        if key is None:
            return self._season, row
        if key not in self._span_seasons:
            self.prepare_seasons([(row, since)])
        return self._span_seasons[key]

    def prepare_seasons(self, changes: Iterable[tuple[int, dt.date | None]]) -> None:
        """The seasons of changes measured since they began (row, first day), made at once:
        a season of many rows costs about what one of a single row does."""
        keys = sorted(
            {
                key
                for row, since in changes
                if (key := self._span_key(row, since)) is not None and key not in self._span_seasons
            }
        )
        if not keys:
            return
        config = self._config
        rows = np.array([row for row, _ in keys], dtype=np.int64)
        series = self._series[rows]
        start = self._as_of[rows] - (config.current_window_days - 1)
        observed = self.table.windows(series, start - config.baseline_window_days, start - 1)
        same = np.array(
            [
                [_a_year_before(dt.date.fromordinal(since)) for _, since in keys],
                [_a_year_before(dt.date.fromordinal(int(self._as_of[row]))) for row, _ in keys],
            ],
            dtype=np.int64,
        )
        season = _Season(self.table, series, start, observed, config, self.history, same=same)
        for at, key in enumerate(keys):
            self._span_seasons[key] = (season, at)

    def _span_key(self, row: int, since: dt.date | None) -> tuple[int, int] | None:
        """The key of row `row`'s season since `since`; None when that is its current
        window's own season."""
        current_start = int(self._as_of[row]) - (self._config.current_window_days - 1)
        if since is None or since.toordinal() <= current_start:
            return None
        return row, since.toordinal()

    def _payment_days(self) -> _PaymentDays:
        if self._payment is None:
            self._payment = _PaymentDays(self.table, self._baseline, self._current)
        return self._payment


def _upper_rate(events: statistics.IntArray, total: statistics.IntArray) -> statistics.FloatArray:
    """A rate put BASELINE_MARGIN_Z standard errors above its estimate, within (0, 1)."""
    n = np.maximum(total, 1)
    rate = events / n
    upper = rate + BASELINE_MARGIN_Z * np.sqrt(rate * (1 - rate) / n) + 0.5 / n
    return np.clip(upper, 1e-4, 0.99)


def _claims_beyond(
    counts: statistics.IntArray, values: statistics.IntArray, threshold: statistics.FloatArray
) -> statistics.IntArray:
    """Each row's claims of more days to decision than its `threshold`."""
    return np.where(values[None, :] > threshold[:, None], counts, 0).sum(axis=1)


def _daily_beyond(
    table: SeriesTable,
    series: statistics.IntArray,
    first: statistics.IntArray,
    days: int,
    threshold: statistics.FloatArray,
) -> tuple[statistics.IntArray, statistics.IntArray]:
    """(slower, decided): each row's claims decided on each of the `days` days from `first`
    (a column a day) taking more days than its `threshold`, and all of them."""
    window = table.windows(series, first, first + days - 1)
    position, value, claims = table.histogram_entries()
    first_entry = np.searchsorted(position, window.low)
    last_entry = np.searchsorted(position, window.high)
    decided, slower = np.zeros((series.size, days)), np.zeros((series.size, days))
    for rows, row, at in runs_by_rows(first_entry, last_entry):
        mine = row + rows.start
        cell = row * days + (table.days[position[at]] - first[mine])
        counted, size = claims[at], (rows.stop - rows.start) * days
        shape = (rows.stop - rows.start, days)
        decided[rows] = np.bincount(cell, weights=counted, minlength=size).reshape(shape)
        slower[rows] = np.bincount(
            cell, weights=counted * (value[at] > threshold[mine]), minlength=size
        ).reshape(shape)
    return slower.astype(np.int64), decided.astype(np.int64)


def _slow_season(
    table: SeriesTable,
    series: statistics.IntArray,
    first: statistics.IntArray,
    days: int,
    config: DetectionConfig,
    history: _History,
) -> statistics.FloatArray:
    """How much larger than usual the share of claims slower than the split (the time within
    which DECISION_SPLIT_SHARE of them were decided) was on each day
    of the current window a year earlier (SEASON_SMOOTH_DAYS either side), measured against
    the days before them that year (the longest of SEASON_REFERENCE_DAYS the history covers:
    their split and share); never below 0. Estimated for the customer (its payers' counts
    summed, each against its own split) and for the row, shrunk as `_Season`'s changes are:
    the customer's towards none, the row's towards the customer's; a row without its own
    year of history takes the customer's. A code group's is its payer's."""
    own = _slow_counts(table, payer_rows(table)[series], first, days, config, history)
    payers = payer_level_series(table)
    starts, row_of = np.unique(first, return_inverse=True)
    every = _slow_counts(
        table, np.tile(payers, starts.size), np.repeat(starts, payers.size), days, config, history
    )
    pooled = _SlowCounts(
        *(
            part.reshape(starts.size, payers.size, *part.shape[1:]).sum(axis=1)[row_of]
            for part in (every.slow, every.decided, every.usual_slow, every.total)
        )
    )
    pooled_ok, pooled_excess, pooled_variance = pooled.excess()
    target = np.where(pooled_ok, _shrunk(pooled_excess, pooled_variance), 0.0)
    ok, excess, variance = own.excess()
    return np.maximum(np.where(ok, target + _shrunk(excess - target, variance), target), 0.0)


@dataclass(frozen=True)
class _SlowCounts:
    """Per row, a year before its current window: claims slower than the reference days'
    split on each day with those either side (`slow`, `decided`: rows × days), and over the
    reference days (`usual_slow`, `total`); zeros where the history does not reach."""

    slow: statistics.IntArray
    decided: statistics.IntArray
    usual_slow: statistics.IntArray
    total: statistics.IntArray

    def excess(
        self,
    ) -> tuple[npt.NDArray[np.bool_], statistics.FloatArray, statistics.FloatArray]:
        """(enough claims, the share's excess over the usual one, its variance) a day."""
        decided = np.maximum(self.decided, 1)
        total = np.maximum(self.total, 1)[:, None]
        share, usual = self.slow / decided, self.usual_slow[:, None] / total
        variance = share * (1 - share) / decided + usual * (1 - usual) / total
        enough = (self.decided >= MIN_SEASON_CLAIMS) & (self.total >= MIN_SEASON_CLAIMS)[:, None]
        return enough, share - usual, variance


def _slow_counts(
    table: SeriesTable,
    series: statistics.IntArray,
    first: statistics.IntArray,
    days: int,
    config: DetectionConfig,
    history: _History,
) -> _SlowCounts:
    counts = _SlowCounts(
        np.zeros((series.size, days), dtype=np.int64),
        np.zeros((series.size, days), dtype=np.int64),
        np.zeros(series.size, dtype=np.int64),
        np.zeros(series.size, dtype=np.int64),
    )
    last_first = first - SEASON_DAYS
    reference = history.reference_days(series, last_first, config)
    rows = np.flatnonzero(reference)
    if not rows.size:
        return counts
    mine, start = series[rows], last_first[rows]
    baseline = table.windows(mine, start - reference[rows], start - 1)
    values = baseline.values
    split = statistics.quantile_rows(baseline.decision_days, values, DECISION_SPLIT_SHARE)
    smooth = SEASON_SMOOTH_DAYS
    slower, decided = _daily_beyond(table, mine, start - smooth, days + 2 * smooth, split)
    width = 2 * smooth + 1

    def around(daily: statistics.IntArray) -> statistics.IntArray:
        """Each day's sum with its SEASON_SMOOTH_DAYS either side."""
        cumulative = np.pad(np.cumsum(daily, axis=1), ((0, 0), (1, 0)))
        return cumulative[:, width:] - cumulative[:, :-width]

    counts.slow[rows] = around(slower)
    counts.decided[rows] = around(decided)
    counts.usual_slow[rows] = _claims_beyond(baseline.decision_days, values, split)
    counts.total[rows] = baseline.decision_days.sum(axis=1)
    return counts


@dataclass(frozen=True)
class _Cusum:
    """A one-sided CUSUM of each row's daily log-likelihood ratio, claims as Bernoulli trials
    from rate p0 (no change) against p1 (a change as large as the floor), over its current
    window. Page's statistic is the largest log-likelihood ratio of any stretch of days
    ending on any day; its p value is bounded by the window's days × e^−statistic (Ville's
    inequality for each start day, a union over the starts). It finds a change days after
    it begins, where a window test waits for the change to fill enough of its window.
    `start`: the first day of the stretch (ordinal), the change's estimated beginning;
    `recent`: whether the last RECENT_DAYS lean towards the change."""

    p_value: statistics.FloatArray
    start: statistics.IntArray
    recent: npt.NDArray[np.bool_]

    @classmethod
    def of(
        cls,
        successes: statistics.IntArray,
        trials: statistics.IntArray,
        p0: statistics.FloatArray,
        p1: statistics.FloatArray,
        first: statistics.IntArray,
    ) -> _Cusum:
        # Rates per row, or per row and day.
        p0 = np.broadcast_to(p0 if p0.ndim == 2 else p0[:, None], successes.shape)
        p1 = np.clip(np.maximum(p1 if p1.ndim == 2 else p1[:, None], p0 + 1e-3), 1e-4, 0.999)
        with_change, without = np.log(p1 / p0), np.log((1 - p1) / (1 - p0))
        ratio = successes * with_change + (trials - successes) * without
        rows, days = ratio.shape
        statistic, best = np.zeros(rows), np.zeros(rows)
        start, best_start = np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=np.int64)
        for day in range(days):
            was_zero = statistic <= 0
            statistic = np.maximum(0.0, statistic + ratio[:, day])
            start = np.where(was_zero & (statistic > 0), day, start)
            better = statistic > best
            best = np.where(better, statistic, best)
            best_start = np.where(better, start, best_start)
        return cls(
            np.minimum(1.0, days * np.exp(-best)),
            first + best_start,
            ratio[:, -RECENT_DAYS:].sum(axis=1) > 0,
        )


@dataclass(frozen=True)
class _Pending:
    """Claims still pending on each row's as-of day that started between the baseline's usual
    decision time (`usual`: days within which it decided PENDING_QUANTILE of its claims) and
    a current window earlier: `observed`, against `expected`, what the baseline's decision
    times leave pending of as many claims a day as it, or the current window if more,
    decided, plus the payer's usual backlog (the share of a baseline's worth of still older
    starts that is pending too). A payer that stops deciding shows here weeks before its late
    decisions arrive. Pending on the as-of day: claims decided after it (when the statistics
    reach that far) and those pending still, which started by it. p: one-sided Poisson.

    Where the history reaches a year back, the same count a year earlier (SEASON_DAYS),
    against what its baseline then expected, is the season's `factor` (never below 1), which
    raises the expectation, so the backlog of every year's holidays is expected, not
    alarmed: estimated for the customer (its payers summed) and for the row, shrunk as
    `_Season`'s changes are (the customer's towards none, the row's towards the customer's;
    a row without its own year takes the customer's; a code group's is its payer's)."""

    usual: statistics.IntArray
    observed: statistics.IntArray
    expected: statistics.FloatArray
    p_value: statistics.FloatArray
    factor: statistics.FloatArray

    @classmethod
    def of(
        cls,
        table: SeriesTable,
        series: statistics.IntArray,
        as_of: statistics.IntArray,
        baseline: WindowTotals,
        current: WindowTotals,
        config: DetectionConfig,
        history: _History,
    ) -> _Pending:
        usual, observed, expected = _pending_counts(table, series, as_of, baseline, current, config)
        # A code group's backlog season is its payer's, as its decision times' are.
        # Each payer's once for all its rows.
        keys, row_of = np.unique(
            np.stack([payer_rows(table)[series], as_of]), axis=1, return_inverse=True
        )
        own = _last_years_pending(table, keys[0], keys[1], config, history)[:, row_of.ravel()]
        payers = payer_level_series(table)
        days, row_of = np.unique(as_of, return_inverse=True)
        every = _last_years_pending(
            table, np.tile(payers, days.size), np.repeat(days, payers.size), config, history
        )
        pooled = every.reshape(2, days.size, payers.size).sum(axis=2)[:, row_of]
        # Log ratios of last year's pending to what was expected then; +½ keeps them finite.
        own_change, own_variance = _pending_ratio(own)
        pooled_change, pooled_variance = _pending_ratio(pooled)
        target = np.where(pooled[1] > 0, _shrunk(pooled_change, pooled_variance), 0.0)
        change = np.where(own[1] > 0, target + _shrunk(own_change - target, own_variance), target)
        factor = np.exp(np.maximum(change, 0.0))
        expected = expected * factor
        total = baseline.decision_days.sum(axis=1)
        p_value = np.where(
            (total > 0) & (expected > 0), stats.poisson.sf(observed - 1, expected), 1.0
        )
        return cls(usual, observed, expected, p_value, factor)

    def clears_floor(self, row: int) -> bool:
        observed, expected = int(self.observed[row]), float(self.expected[row])
        return (
            observed >= PENDING_MIN_RATIO * expected and observed - expected >= PENDING_MIN_EXCESS
        )


def _pending_counts(
    table: SeriesTable,
    series: statistics.IntArray,
    as_of: statistics.IntArray,
    baseline: WindowTotals,
    current: WindowTotals,
    config: DetectionConfig,
    baseline_days: statistics.IntArray | None = None,
) -> tuple[statistics.IntArray, statistics.IntArray, statistics.FloatArray]:
    """(usual, observed, expected) of `_Pending` for each row's windows, before the season;
    `baseline_days`: each row's baseline's length where not the configured one."""
    if baseline_days is None:
        baseline_days = np.full(series.size, config.baseline_window_days)
    counts, values = baseline.decision_days, baseline.values
    usual = statistics.quantile_rows(counts, values, PENDING_QUANTILE).astype(np.int64)
    total = counts.sum(axis=1)
    # Share of the baseline's claims still undecided at each age (column: age in days).
    oldest = int(values[-1]) + 1 if values.size else 1
    dense = np.zeros((counts.shape[0], oldest + 1), dtype=np.float64)
    dense[:, values] = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        undecided = 1 - np.cumsum(dense, axis=1) / np.maximum(total, 1)[:, None]
    days = config.current_window_days
    ages = usual[:, None] + 1 + np.arange(days)[None, :]
    share = np.take_along_axis(undecided, np.minimum(ages, oldest), axis=1).sum(axis=1)
    per_day = np.maximum(baseline.amount("decided") / baseline_days,
                         current.amount("decided") / days)  # fmt: skip
    # Pending on the as-of day: decided after it (at most the table's longest time to
    # decision later, for a claim started by then), or pending still. Ages in days then.
    longest = int(table.values[-1]) if table.values.size else 0
    low, high = table.day_positions(series, as_of + 1, as_of + longest)
    position, value, claims = table.histogram_entries()
    first_entry, last_entry = np.searchsorted(position, low), np.searchsorted(position, high)
    # Each row's claims aged from the first to the second bound: those pending (the rows'
    # ages of the current window past their usual time), and older ones still open (never
    # to be decided, or stuck for reasons of their own: the share of a baseline's worth of
    # older starts that is, a payer's usual backlog, expected of the newer ones too).
    bounds = ((usual + 1, usual + days), (usual + days + 1, usual + days + baseline_days))
    decided_later = np.zeros((len(bounds), series.size))
    # A few rows at a time, their entries' arrays kept small enough to stay in the cache.
    for rows, row, at in runs_by_rows(first_entry, last_entry):
        mine = row + rows.start
        age = as_of[mine] - (table.days[position[at]] - value[at])
        weight = claims[at]
        for k, (youngest, eldest) in enumerate(bounds):
            kept = (age >= youngest[mine]) & (age <= eldest[mine])
            decided_later[k, rows] = np.bincount(
                row, weights=weight * kept, minlength=rows.stop - rows.start
            )
    observed, stale = (
        decided_later[k].astype(np.int64)
        + table.pending_started_between(series, as_of - eldest, as_of - youngest)
        for k, (youngest, eldest) in enumerate(bounds)
    )
    stale_share = np.clip(stale / np.maximum(per_day * baseline_days, 1), 0.0, 1.0)
    expected = per_day * (stale_share * days + (1 - stale_share) * share)
    return usual, observed, expected


def _last_years_pending(
    table: SeriesTable,
    series: statistics.IntArray,
    as_of: statistics.IntArray,
    config: DetectionConfig,
    history: _History,
) -> statistics.FloatArray:
    """(observed, expected) of `_pending_counts` a year (SEASON_DAYS) before each row's as-of
    day, as rows of a 2 × rows array, its baseline the longest of SEASON_REFERENCE_DAYS the
    history covers; zeros where the history does not reach back that far."""
    counts = np.zeros((2, series.size))
    last_as_of = as_of - SEASON_DAYS
    last_current = last_as_of - (config.current_window_days - 1)
    reference = history.reference_days(series, last_current, config)
    rows = np.flatnonzero(reference)
    if rows.size:
        mine, first = series[rows], last_current[rows] - reference[rows]
        _, observed, expected = _pending_counts(
            table,
            mine,
            last_as_of[rows],
            table.windows(mine, first, last_current[rows] - 1),
            table.windows(mine, last_current[rows], last_as_of[rows]),
            config,
            reference[rows],
        )
        counts[0, rows], counts[1, rows] = observed, expected
    return counts


def _pending_ratio(
    counts: statistics.FloatArray,
) -> tuple[statistics.FloatArray, statistics.FloatArray]:
    """The log of observed ÷ expected pending claims, and its variance (Poisson counts)."""
    observed, expected = counts[0] + 0.5, counts[1] + 0.5
    return np.log(observed / expected), 1 / observed + 1 / expected


class _History:
    """How far back the history of each series of a table reaches: a cell is compared only
    once its history covers its baseline window, and a new payer's (one that appeared after
    the customer's data began) only NEW_PAYER_LEAD_DAYS after its first decision."""

    def __init__(self, table: SeriesTable, every: Sequence[CellSeries]) -> None:
        firsts = [int(one.days[0]) for one in every if one.days.size]
        customer_first = min(firsts, default=0)
        first = np.array(
            [int(one.days[0]) if one.days.size else customer_first for one in table.series],
            dtype=np.int64,
        )
        new = first > customer_first + NEW_PAYER_SLACK_DAYS
        self._covered_from = np.where(new, first + NEW_PAYER_LEAD_DAYS, first)

    def covered_from(self, series: statistics.IntArray) -> statistics.IntArray:
        """The earliest baseline start each of `series` covers (ordinals)."""
        return self._covered_from[series]

    def reference_days(
        self, series: statistics.IntArray, end: statistics.IntArray, config: DetectionConfig
    ) -> statistics.IntArray:
        """The longest of SEASON_REFERENCE_DAYS (none longer than the baseline) whose days
        just before `end` (ordinals) each of `series`' history covers, 0 where none is: a
        history may begin SEASON_REFERENCE_SLACK of a reference's days into it."""
        reference = np.zeros(series.size, dtype=np.int64)
        for length in sorted(d for d in SEASON_REFERENCE_DAYS if d <= config.baseline_window_days):
            slack = int(length * SEASON_REFERENCE_SLACK)
            reference = np.where(
                self._covered_from[series] <= end - length + slack, length, reference
            )
        return reference

    def first_run(
        self, series: statistics.IntArray, config: DetectionConfig
    ) -> statistics.IntArray:
        """The first day a run may compare each of `series`: its baseline covered, and those
        of the PERSISTENCE_DAYS days before (ordinals)."""
        reach = config.baseline_window_days + config.current_window_days - 1 + PERSISTENCE_DAYS
        return self._covered_from[series] + reach


def history_until(
    series: Iterable[CellSeries], as_of: dt.date, config: DetectionConfig
) -> dict[str, dt.date]:
    """The payers a run as of `as_of` would not compare for want of history (see `_History`),
    with the first day a run may compare them; `series` read from `first_day_read`."""
    every = listed(series)
    payers = payer_series(every)
    table = SeriesTable(list(payers.values()))
    first_run = _History(table, every).first_run(np.arange(len(payers)), config)
    return {
        payer: dt.date.fromordinal(day)
        for payer, day in zip(payers, first_run.tolist(), strict=True)
        if day > as_of.toordinal()
    }


def _a_year_before(day: dt.date) -> int:
    """The same date a year earlier (February 29: the 28th), as an ordinal: the year-end
    holidays are dates, not weekdays."""
    try:
        return day.replace(year=day.year - 1).toordinal()
    except ValueError:
        return day.replace(year=day.year - 1, day=28).toordinal()


def payer_level_series(table: SeriesTable) -> statistics.IntArray:
    """The series of `table` that are payer-level (every code group of a payer)."""
    return np.array(
        [j for j, one in enumerate(table.series) if one.code_group == ALL_CODES], dtype=np.int64
    )


def payer_rows(table: SeriesTable) -> statistics.IntArray:
    """Each series' payer-level series in `table` (itself for a payer's; itself too where
    its payer's is not in the table)."""
    payer_level = {table.series[j].payer: j for j in payer_level_series(table).tolist()}
    return np.array(
        [payer_level.get(one.payer, j) for j, one in enumerate(table.series)], dtype=np.int64
    )


class _Season:
    """What the season leads a row to expect, where the history reaches a year back.

    Last year's same weeks (S) are compared with the days just before them (R', the longest of
    SEASON_REFERENCE_DAYS the history covers), and that change is carried over to this year:
    scaled to this year's level through the same reference days before the current window
    (R) against the whole baseline (B). So January's deductible, eligibility and holiday
    effects, there every year, are expected rather than alarmed, while a payer's new
    behaviour is not (it was not there last year). Each change is estimated for the customer
    as a whole (its payers pooled) and for the row, and shrunk by its noise (positive-part
    James–Stein): the customer's towards none, the row's towards the customer's, so a small
    cell borrows the customer's season and keeps its own only where that is clear. A row
    without a year of its own history takes the customer's. Per metric:
    - denial rate: the baseline's denials × S/R' × R/B (rates, on the log scale), never
      below 1 (a season only raises expectations), tested as a baseline of as many claims as
      the noise of that expectation allows (`_denial_scale`);
    - days to decision: the baseline shifted by median(S) − median(R') + median(R) −
      median(B) (standard errors of medians from interquartile ranges), a code group's its
      payer's: holiday slowdowns are the payer's staff away, and a group's medians a year
      back are too thin to tell its own from noise;
    - denial-reason mix: the baseline's shares moved to S + R − R' (shares), when last year's
      change is itself clear (chi-square p < SEASON_MIX_P_VALUE), the row's own season where
      it has enough denials to say, the customer's only where it has not; the expected mix
      then counts as many denials as its windows' noise allows (1 / Σ 1/denials), not the
      baseline's; the reasons of the season (`_seasonal_reasons`) are left out of every
      window's mix, this season of the mix being that of the other reasons;
    - payment: none; patients' shares are counted with what is paid (the deductible season
      moves dollars from payer to patient, not out of the settlement).
    """

    def __init__(
        self,
        table: SeriesTable,
        series: statistics.IntArray,
        current_start: statistics.IntArray,
        observed: WindowTotals,
        config: DetectionConfig,
        history: _History,
        same: statistics.IntArray | None = None,
    ) -> None:
        """`same`: each row's last year's same days, first and last (2 × rows), where not
        its current window's 52 weeks back (a change measured since it began: its dates)."""
        if same is None:
            first = current_start - SEASON_DAYS
            same = np.stack([first, first + config.current_window_days - 1])
        windows = (table, current_start, same, config, history)
        own = _season_windows(*windows, series=series, observed=observed)
        pooled = _pooled_season(*windows)
        own_denials, pooled_denials = _denial_change(own), _denial_change(pooled)
        change = _pooled_towards(own_denials, pooled_denials)
        self.denial_factor = np.exp(np.maximum(change, 0.0))
        self.denial_scale = _denial_scale(observed, self.denial_factor, own_denials,
                                          pooled_denials)  # fmt: skip
        self.day_shift = np.zeros(series.size, dtype=np.int64)
        values = table.values
        if values.size:
            # Each payer's once for all its rows.
            keys, row_of = np.unique(
                np.vstack([payer_rows(table)[series], current_start, same]),
                axis=1,
                return_inverse=True,
            )
            payers, starts = keys[0], keys[1]
            observed_payers = table.windows(payers, starts - config.baseline_window_days,
                                            starts - 1)  # fmt: skip
            payer_season = _season_windows(
                table, starts, keys[2:], config, history,
                series=payers, observed=observed_payers,
            )  # fmt: skip
            ok, change, variance = _day_change(payer_season, values)
            mine = row_of.ravel()
            pooled_days = _day_change(pooled, values)
            shift = _pooled_towards((ok[mine], change[mine], variance[mine]), pooled_days)
            # One year's holidays are a rough guide to the next (their weekdays and dates
            # move): a clear season is expected up to SEASON_DAY_MARGIN_Z standard errors
            # above its estimate, counting that between-year noise too.
            noise = np.where(ok[mine], variance[mine], pooled_days[2])
            allowance = SEASON_DAY_MARGIN_Z * np.sqrt(noise + SEASON_DAY_YEAR_VARIANCE)
            shift = np.where(shift >= 1.0, shift + allowance, shift)
            self.day_shift = np.rint(np.maximum(shift, 0.0)).astype(np.int64)
        # The reasons of the season are left out of every window's mix (rows × codes), and
        # the season of the mix is that of the other reasons.
        self.seasonal_reasons = _seasonal_reasons(table, current_start, config)
        own, pooled = (_without_reasons(w, self.seasonal_reasons) for w in (own, pooled))
        observed_carc = np.where(self.seasonal_reasons, 0, observed.carc_counts)
        own_mix = _mix_change(own, table.codes)
        pooled_mix = _mix_change(pooled, table.codes)
        # Where the row's or the customer's season is clear, the row's own season of denial
        # reasons is expected where it has enough denials to say (a customer's January
        # eligibility denials are no season of a payer that does not deny for them), the
        # customer's where it has not.
        use_pooled = ~own_mix.usable & pooled_mix.clear
        self.mix = (own_mix.usable & (own_mix.clear | pooled_mix.clear)) | use_pooled
        moved = np.where(use_pooled[:, None], pooled_mix.moved, own_mix.moved)
        shares = np.clip(_shares_of_rows(observed_carc) + moved, 0.0, None)
        # The expectation is as precise as the windows it is made of: its counts are those
        # of a sample with the variance of their sum (so a thin week of last year does not
        # pass for the whole baseline's precision).
        own_total = observed_carc.sum(axis=1)
        variance = np.where(
            use_pooled,
            _inverse(own_total) + pooled_mix.variance,
            own_mix.variance,
        )
        precision = np.minimum(_inverse(variance), own_total)
        adjusted = np.rint(_shares_of_rows(shares) * precision[:, None])
        self.mix_adjusted = np.where(self.mix[:, None], adjusted.astype(np.int64), observed_carc)
        self._codes = table.codes

    def adjusted(
        self, observed: WindowTotals, current: WindowTotals
    ) -> tuple[WindowTotals, WindowTotals]:
        """The baseline sums adjusted row by row, and the current ones (their days-to-decision
        columns widened to match)."""
        sums = observed.sums.copy()
        denied = AMOUNTS.index("denied")
        sums[denied] = np.minimum(
            observed.amount("decided"), np.rint(observed.sums[denied] * self.denial_factor)
        ).astype(np.int64)
        baseline_days, current_days = observed.decision_days, current.decision_days
        values = observed.values
        if self.day_shift.any():
            # The columns of every value a shifted baseline or the current window holds (the
            # table's values need not be every day: a claim decided after a year is one).
            shifts = np.union1d(np.unique(self.day_shift), [0])
            widened = np.unique(np.concatenate([values + shift for shift in shifts.tolist()]))
            shifted = np.zeros((baseline_days.shape[0], widened.size), dtype=np.int64)
            for shift in shifts.tolist():
                mine = np.flatnonzero(self.day_shift == shift)
                shifted[np.ix_(mine, np.searchsorted(widened, values + shift))] = baseline_days[
                    mine
                ]
            baseline_days = shifted
            current_widened = np.zeros((current_days.shape[0], widened.size), dtype=np.int64)
            current_widened[:, np.searchsorted(widened, values)] = current_days
            current_days, values = current_widened, widened
        carc = self.mix_adjusted
        current_carc = np.where(self.seasonal_reasons, 0, current.carc_counts)
        return (
            observed.with_counts(
                sums=sums, decision_days=baseline_days, values=values, carc_counts=carc
            ),
            current.with_counts(
                decision_days=current_days, values=values, carc_counts=current_carc
            ),
        )

    def denial_counts(
        self, adjusted: WindowTotals
    ) -> tuple[statistics.IntArray, statistics.IntArray]:
        """The (denied, decided) each row's denial rate is tested against: the adjusted
        baseline's, scaled down to the precision of the season's expectation."""
        return tuple(  # type: ignore[return-value]
            np.rint(adjusted.amount(name) * self.denial_scale).astype(np.int64)
            for name in ("denied", "decided")
        )

    def adjusts(self, row: int, metric: str) -> bool:
        if metric == "DENIAL_RATE":
            return bool(self.denial_factor[row] > 1.0)
        if metric == "DECISION_DAYS":
            return bool(self.day_shift[row] > 0)
        if metric == "DENIAL_REASON_MIX":
            return bool(self.mix[row] or self.seasonal_reasons[row].any())
        return False

    def without_seasonal_reasons(self, row: int, totals: Totals) -> Totals:
        """`totals` without the denials of row `row`'s reasons of the season."""
        left_out = {self._codes[i] for i in np.flatnonzero(self.seasonal_reasons[row]).tolist()}
        if not left_out:
            return totals
        kept = {code: n for code, n in totals.carc_counts.items() if code not in left_out}
        return replace(totals, carc_counts=kept)

    def expected(self, row: int, metric: str, baseline: Totals) -> Totals:
        """One series' baseline window adjusted as row `row`'s sums are."""
        if not self.adjusts(row, metric):
            return baseline
        if metric == "DENIAL_RATE":
            denied = min(baseline.decided, round(baseline.denied * float(self.denial_factor[row])))
            scale = float(self.denial_scale[row])
            return replace(baseline, denied=round(denied * scale),
                           decided=round(baseline.decided * scale))  # fmt: skip
        if metric == "DECISION_DAYS":
            days = baseline.decision_days
            return replace(
                baseline,
                decision_days=statistics.Histogram(
                    days.values + int(self.day_shift[row]), days.counts
                ),
            )
        counts = self.mix_adjusted[row]
        return replace(
            baseline,
            carc_counts={self._codes[i]: int(counts[i]) for i in np.flatnonzero(counts).tolist()},
        )


def _without_reasons(season: _SeasonWindows, left_out: npt.NDArray[np.bool_]) -> _SeasonWindows:
    """`season` with the denials of the reasons `left_out` (rows × codes) taken out."""
    if not left_out.any():
        return season
    return replace(
        season,
        **{
            name: (window := getattr(season, name)).with_counts(
                carc_counts=np.where(left_out, 0, window.carc_counts)
            )
            for name in ("same", "before", "recent", "observed")
        },
    )


def _seasonal_reasons(
    table: SeriesTable, current_start: statistics.IntArray, config: DetectionConfig
) -> npt.NDArray[np.bool_]:
    """Each row's reasons of the season (rows × the table's codes): the customer's payers
    summed over `season_reason_windows` of the row's current window (see
    SEASON_REASON_RATIO)."""
    payers = payer_level_series(table)
    codes = len(table.codes)
    if not payers.size or not codes:
        return np.zeros((current_start.size, codes), dtype=bool)
    starts, row_of = np.unique(current_start, return_inverse=True)
    days = config.current_window_days - 1
    # (same weeks, before, after) of each distinct current window.
    windows = zip(
        *(
            season_reason_windows(
                Window(dt.date.fromordinal(start), dt.date.fromordinal(start + days))
            )
            for start in starts.tolist()
        ),
        strict=True,
    )
    sums = []
    for kind in windows:
        first = np.array([w.start.toordinal() for w in kind], dtype=np.int64)
        last = np.array([w.end.toordinal() for w in kind], dtype=np.int64)
        totals = table.windows(
            np.tile(payers, starts.size),
            np.repeat(first, payers.size),
            np.repeat(last, payers.size),
        )
        sums.append(totals.carc_counts.reshape(starts.size, payers.size, codes).sum(axis=1))
    same, before, after = sums
    reference = before + after
    same_total = same.sum(axis=1, keepdims=True)
    reference_total = reference.sum(axis=1, keepdims=True)
    share = _shares(same, same_total)
    usual = np.maximum(_shares(before, before.sum(axis=1, keepdims=True)),
                       _shares(after, after.sum(axis=1, keepdims=True)))  # fmt: skip
    p = statistics.fisher_greater(
        reference.ravel(),
        np.broadcast_to(reference_total, reference.shape).ravel(),
        same.ravel(),
        np.broadcast_to(same_total, same.shape).ravel(),
    ).reshape(same.shape)
    seasonal = (share >= SEASON_REASON_RATIO * usual) & (p < SEASON_REASON_P_VALUE) & (same > 0)
    return np.asarray(seasonal[row_of.ravel()])


def _season_windows(
    table: SeriesTable,
    current_start: statistics.IntArray,
    same: statistics.IntArray,
    config: DetectionConfig,
    history: _History,
    *,
    series: statistics.IntArray,
    observed: WindowTotals,
) -> _SeasonWindows:
    """Each row's season windows, the reference the longest its history covers (see
    `_History.reference_days`); last year's same days from `same` (first and last, 2 × rows)."""
    last_start = current_start - SEASON_DAYS
    reference = history.reference_days(series, last_start, config)
    has = reference > 0

    def window(first: statistics.IntArray, last: statistics.IntArray) -> WindowTotals:
        # Rows without a season sum an empty window.
        return table.windows(
            series, np.where(has, first, current_start), np.where(has, last, current_start - 1)
        )

    return _SeasonWindows(
        window(same[0], same[1]),
        window(last_start - reference, last_start - 1),
        window(current_start - reference, current_start - 1),
        observed,
        reference == config.baseline_window_days,
        has,
    )


def _pooled_season(
    table: SeriesTable,
    current_start: statistics.IntArray,
    same: statistics.IntArray,
    config: DetectionConfig,
    history: _History,
) -> _SeasonWindows:
    """The season windows of the customer as a whole (every payer of the table summed, each
    with the longest reference its history covers), for each row's current window and span."""
    payers = payer_level_series(table)
    keys, row_of = np.unique(np.vstack([current_start, same]), axis=1, return_inverse=True)
    row_of = row_of.ravel()
    starts = keys[0]
    series = np.tile(payers, starts.size)
    first = np.repeat(starts, payers.size)
    baseline = table.windows(series, first - config.baseline_window_days, first - 1)
    season = _season_windows(
        table, first, np.repeat(keys[1:], payers.size, axis=1), config, history,
        series=series, observed=baseline,
    )  # fmt: skip

    def summed(w: WindowTotals) -> WindowTotals:
        """The payers' rows of each current window summed, one row per row of the caller."""
        shape = (starts.size, payers.size)
        sums = w.sums.reshape(len(AMOUNTS), *shape).sum(axis=2)[:, row_of]
        days = w.decision_days.reshape(*shape, w.decision_days.shape[1]).sum(axis=1)[row_of]
        carc = w.carc_counts.reshape(*shape, w.carc_counts.shape[1]).sum(axis=1)[row_of]
        return w.with_counts(sums=sums, decision_days=days, carc_counts=carc)

    has = np.asarray(season.has.reshape(starts.size, payers.size).any(axis=1))[row_of]
    return _SeasonWindows(
        summed(season.same),
        summed(season.before),
        summed(season.recent),
        summed(season.observed),
        np.zeros(row_of.size, dtype=bool),
        has,
    )


def _log_change(
    parts: Sequence[tuple[statistics.FloatArray, statistics.FloatArray]],
) -> tuple[statistics.FloatArray, statistics.FloatArray]:
    """Σ sign·estimate and Σ variance over (estimate, variance) pairs, signs + − + −."""
    total = sum((1 if i % 2 == 0 else -1) * estimate for i, (estimate, _) in enumerate(parts))
    variance = sum(var for _, var in parts)
    return np.asarray(total, dtype=np.float64), np.asarray(variance, dtype=np.float64)


def _shrunk(
    change: statistics.FloatArray, variance: statistics.FloatArray
) -> statistics.FloatArray:
    """`change` kept in the proportion its size exceeds its noise (positive-part James–Stein):
    none at one standard error or less, three quarters at two, nearly all at five."""
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.clip(1 - variance / np.square(change), 0.0, 1.0)
    return np.where(np.isfinite(keep), keep * change, 0.0)


@dataclass(frozen=True)
class _SeasonWindows:
    """Each row's season windows: last year's same weeks, the reference days before them,
    this year's reference days before the current window, and the baseline; whether the
    reference is the whole baseline; and whether the row has them at all."""

    same: WindowTotals
    before: WindowTotals
    recent: WindowTotals
    observed: WindowTotals
    whole: npt.NDArray[np.bool_]
    has: npt.NDArray[np.bool_]


def _change(
    season: _SeasonWindows,
    estimates: Sequence[tuple[statistics.FloatArray, statistics.FloatArray]],
    ok: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.bool_], statistics.FloatArray, statistics.FloatArray]:
    """(usable, change, variance) from (estimate, variance) of same, before, recent and
    observed: same − before + recent − observed, the last two left out for a whole-baseline
    reference (they are the same window)."""
    change, variance = _log_change(estimates[:2])
    rest, rest_variance = _log_change(estimates[2:])
    change = change + np.where(season.whole, 0.0, rest)
    variance = variance + np.where(season.whole, 0.0, rest_variance)
    return ok & season.has, change, variance


def _pooled_towards(
    cell: tuple[npt.NDArray[np.bool_], statistics.FloatArray, statistics.FloatArray],
    pooled: tuple[npt.NDArray[np.bool_], statistics.FloatArray, statistics.FloatArray],
) -> statistics.FloatArray:
    """A row's seasonal change: the customer's (all payers pooled) shrunk towards none by
    its noise, then the row's own shrunk towards that by its own noise. A row without its
    own year of history takes the customer's."""
    pooled_ok, pooled_change, pooled_variance = pooled
    target = np.where(pooled_ok, _shrunk(pooled_change, pooled_variance), 0.0)
    ok, change, variance = cell
    return np.where(ok, target + _shrunk(change - target, variance), target)


def _denial_scale(
    observed: WindowTotals,
    factor: statistics.FloatArray,
    own: tuple[npt.NDArray[np.bool_], statistics.FloatArray, statistics.FloatArray],
    pooled: tuple[npt.NDArray[np.bool_], statistics.FloatArray, statistics.FloatArray],
) -> statistics.FloatArray:
    """The share of the baseline's claims the season's expected denial rate is as precise as:
    the variance of its log (the baseline's, (1 − r)/denials, plus the season's change's) set
    equal to that of a sample of the rate. The row's change varies by its windows' noise; the
    customer's, taken for a row without its own, also by how much the customer's rows' own
    changes spread around it beyond their noise (method of moments). 1 without a season."""
    own_ok, own_change, own_variance = own
    pooled_ok, pooled_change, pooled_variance = pooled
    both = own_ok & pooled_ok
    spread = 0.0
    if both.any():
        excess = np.square(own_change[both] - pooled_change[both]) - own_variance[both]
        spread = max(float(excess.mean()), 0.0)
    change_variance = np.where(
        own_ok, own_variance, np.where(pooled_ok, pooled_variance + spread, 0.0)
    )
    decided = np.maximum(observed.amount("decided"), 1).astype(np.float64)
    denied = np.maximum(observed.amount("denied"), 1).astype(np.float64)
    expected = np.minimum(denied * factor, decided)
    baseline_variance = np.maximum(1 / denied - 1 / decided, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.maximum(1 / expected - 1 / decided, 0.0) / (baseline_variance + change_variance)
    return np.where((factor > 1.0) & np.isfinite(scale), np.clip(scale, 0.0, 1.0), 1.0)


def _denial_change(
    season: _SeasonWindows,
) -> tuple[npt.NDArray[np.bool_], statistics.FloatArray, statistics.FloatArray]:
    ok = np.ones(season.has.size, dtype=bool)
    estimates = []
    for w in (season.same, season.before, season.recent, season.observed):
        decided, denied = w.amount("decided"), w.amount("denied")
        ok &= (decided >= MIN_SEASON_CLAIMS) & (denied > 0)
        safe_denied, safe_decided = np.maximum(denied, 1), np.maximum(decided, 1)
        estimates.append((np.log(safe_denied / safe_decided), 1 / safe_denied - 1 / safe_decided))
    return _change(season, estimates, ok)


# A median's standard error is about 1.2533·σ/√n; σ is about the interquartile range / 1.349.
_MEDIAN_ERROR = 1.2533 / 1.349


def _day_change(
    season: _SeasonWindows, values: statistics.IntArray
) -> tuple[npt.NDArray[np.bool_], statistics.FloatArray, statistics.FloatArray]:
    ok = np.ones(season.has.size, dtype=bool)
    estimates = []
    for w in (season.same, season.before, season.recent, season.observed):
        counts = w.decision_days
        claims = counts.sum(axis=1)
        ok &= claims >= MIN_SEASON_CLAIMS
        spread = statistics.quantile_rows(counts, values, 0.75) - statistics.quantile_rows(
            counts, values, 0.25
        )
        estimates.append(
            (
                statistics.median_rows(counts, values),
                np.square(_MEDIAN_ERROR * np.maximum(spread, 1.0)) / np.maximum(claims, 1),
            )
        )
    return _change(season, estimates, ok)


@dataclass(frozen=True)
class _MixChange:
    """Last year's change of denial reasons into these weeks, per row: whether each window
    has enough denials to say (`usable`), whether the change is clear (`clear`), the change
    of each reason's share carried to this year (`moved`, from the baseline's shares), and
    the variance that expectation has per denial (the sum of its windows' 1/denials)."""

    usable: npt.NDArray[np.bool_]
    clear: npt.NDArray[np.bool_]
    moved: statistics.FloatArray
    variance: statistics.FloatArray


def _mix_change(season: _SeasonWindows, codes: tuple[str, ...]) -> _MixChange:
    windows = (season.same, season.before, season.recent, season.observed)
    totals = [w.carc_counts.sum(axis=1) for w in windows]
    usable = season.has & np.all([t >= MIN_DENIALS_FOR_MIX for t in totals], axis=0)
    same_total, before_total, recent_total, _ = totals
    # Expected: last year's same weeks at this year's level, S + R − R' (the baseline B
    # cancels out of B + moved); each window's shares vary as 1/denials.
    variance = _inverse(same_total) + _inverse(before_total) + _inverse(recent_total)
    if not usable.any():
        return _MixChange(usable, usable, np.zeros(season.same.carc_counts.shape), variance)
    p = statistics.mix_p_values(season.before.carc_counts, season.same.carc_counts, codes)
    same, before, recent, observed = (_shares_of_rows(w.carc_counts) for w in windows)
    moved = same + recent - before - observed
    return _MixChange(usable, usable & (p < SEASON_MIX_P_VALUE), moved, variance)


def _inverse(counts: npt.NDArray[Any]) -> statistics.FloatArray:
    """1/count, infinite for none."""
    with np.errstate(divide="ignore"):
        return np.divide(1.0, counts.astype(np.float64))


def _seasonal_evidence(
    evidence: Evidence, metric: str, baseline: Totals, current: Totals, config: DetectionConfig
) -> Evidence:
    """Evidence measured against the season's expectation, stating the baseline as it was."""
    observed = _compare(metric, baseline, current, config)
    assert observed is not None  # the adjusted sums had a comparison; the same counts do
    as_observed = observed[0]
    return _with(
        evidence,
        baseline_count=as_observed.baseline_count,
        baseline_value=as_observed.baseline_value,
        baseline_events=as_observed.baseline_events,
        baseline_interval=as_observed.baseline_interval,
        expected_value=evidence.baseline_value,
    )


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
        # What the payer settles: its payment and the patient's share it assigns.
        paid = table.daily_paid[position] + table.daily_patient[position]
        allowed = table.daily_allowed[position]
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


def _shares_of_rows(counts: npt.NDArray[Any]) -> statistics.FloatArray:
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
                effect_interval=shift.shift_interval,
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
        # What the payer settles: its payment and the patient's share it assigns.
        settled = (w.daily_paid + w.daily_patient for w in (baseline, current))
        base_settled, cur_settled = settled
        ratio = statistics.payment_ratio_shift(
            base_settled[base_paying],
            baseline.daily_allowed[base_paying],
            cur_settled[cur_paying],
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
    # Summed in one order: a set's order of strings is each process's own, and floats added
    # in another order differ in their last bits (a replica or a run after a restart would
    # judge a distance at its floor otherwise).
    codes = sorted(set(baseline) | set(current))
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
    if evidence.effect_unit == PENDING_UNIT:
        # Claims pending past the usual time: how many times as many as expected, less one.
        times_floor = evidence.current_events / max(evidence.baseline_events, 1) - 1
    if times_floor >= 3 or dollars >= 5_000_000:
        return "HIGH"
    if times_floor >= 1.5 or dollars >= 1_000_000:
        return "MEDIUM"
    return "LOW"


def _money(cents: int) -> str:
    return f"${cents / 100:,.0f}"


def summary(
    cell: Cell,
    metric: str,
    evidence: Evidence,
    dollars: int,
    began: dt.date,
    *,
    new_reasons: bool = False,
) -> str:
    """One line a revenue-cycle lead can act on; `began`: when the change began;
    `new_reasons`: a denial rate's rise came with a change of reasons (the codes that grew)."""
    scope = f"{group_words(cell.code_group)} claims" if cell.code_group else "claims"
    since = f"since {began:%b} {began.day}"
    stake = f" — about {_money(dollars)} at stake" if dollars else ""
    expected = evidence.expected_value
    if metric == "DENIAL_RATE":
        season = "" if expected is None else f" ({expected:.1%} expected for the season)"
        grown = ", ".join(code for code, _, _ in evidence.carc_shifts[:3])
        reasons = f", for other reasons: more {grown}" if new_reasons and grown else ""
        return (
            f"{cell.payer} now denies {evidence.current_value:.1%} of {scope}, up from "
            f"{evidence.baseline_value:.1%}{season}{reasons}, {since}{stake}."
        )
    if metric == "DECISION_DAYS":
        season = "" if expected is None else f", {expected:.0f} expected for the season"
        more = "than the season explains " if expected is not None else ""
        return (
            f"{cell.payer} takes {evidence.effect_size:.1f} days longer {more}to decide {scope} "
            f"(median {evidence.current_value:.0f} days, was {evidence.baseline_value:.0f}"
            f"{season}), {since}{stake.replace('at stake', 'paid late')}."
        )
    if metric == "PAYMENT_RATIO":
        return (
            f"{cell.payer} settles {evidence.current_value:.1%} of the allowed amount on "
            f"{scope} (its payment and the patients' share), down from "
            f"{evidence.baseline_value:.1%}, {since}{stake}."
        )
    grown = ", ".join(code for code, _, _ in evidence.carc_shifts[:3]) or "other codes"
    season = " than the season explains" if expected is not None else ""
    return (
        f"{cell.payer} denies {scope} for different reasons{season} {since}: more {grown}{stake}."
    )

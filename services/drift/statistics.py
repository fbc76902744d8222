"""The statistical tests behind drift events: counts and histograms in, effects and p-values out.

Pure numpy/scipy: no gRPC, no database. Every test is one-sided in the direction that hurts the
provider (more denials, slower decisions, lower payments, a new denial mix) and answers an empty
or degenerate window with "no evidence" (p = 1.0) rather than an error, because a thin cell is
normal in a daily run and is rolled up by the caller, not fatal.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special, stats

CONFIDENCE_LEVEL = 0.95
# The category the denial-reason mix folds its long tail into.
OTHER = "OTHER"
# Below this many days with allowed dollars a window's daily ratios say nothing.
MIN_PAYMENT_DAYS = 3

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
# scipy's Mann–Whitney is exact when a sample this small has no ties.
SMALL_SAMPLE = 8
# Pairwise day differences are counted in a dense array up to this many distinct values.
MAX_DENSE_SPAN = 1 << 16


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float
    level: float = CONFIDENCE_LEVEL


def wilson_interval(events: int, total: int, level: float = CONFIDENCE_LEVEL) -> Interval:
    """Wilson score interval for a proportion; all of [0, 1] when there is nothing to measure."""
    if total == 0:
        return Interval(0.0, 1.0, level)
    # Wilson rather than Wald: it stays inside [0, 1] and keeps its coverage at 0/n and n/n,
    # which are common for small payers.
    # Closed form (as scipy's binomtest computes it, without its unused exact p-value).
    z = _z(level)
    rate = events / total
    denominator = 1 + z * z / total
    centre = (rate + z * z / (2 * total)) / denominator
    spread = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / denominator
    lower = 0.0 if events == 0 else max(0.0, centre - spread)
    upper = 1.0 if events == total else min(1.0, centre + spread)
    return Interval(lower, upper, level)


@functools.lru_cache(maxsize=8)
def _z(level: float) -> float:
    """The two-sided standard normal quantile of a confidence level."""
    return float(special.ndtri(0.5 + level / 2))


# --- Denial rate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateTest:
    baseline_rate: float
    current_rate: float
    p_value: float
    baseline_interval: Interval
    current_interval: Interval


def denial_rate_test(
    baseline_denied: int, baseline_total: int, current_denied: int, current_total: int
) -> RateTest:
    """One-sided Fisher exact test that the current denial rate exceeds the baseline rate."""
    _check_events(baseline_denied, baseline_total)
    _check_events(current_denied, current_total)
    (p_value,) = fisher_greater(
        np.array([baseline_denied]),
        np.array([baseline_total]),
        np.array([current_denied]),
        np.array([current_total]),
    ).tolist()
    return RateTest(
        baseline_rate=_rate(baseline_denied, baseline_total),
        current_rate=_rate(current_denied, current_total),
        p_value=p_value,
        baseline_interval=wilson_interval(baseline_denied, baseline_total),
        current_interval=wilson_interval(current_denied, current_total),
    )


def fisher_greater(
    baseline_events: IntArray,
    baseline_total: IntArray,
    current_events: IntArray,
    current_total: IntArray,
) -> FloatArray:
    """One-sided Fisher exact p-values that the current rate exceeds the baseline rate, one per
    element of the (equally long) arrays; 1.0 where either window is empty. Exact rather than
    a z-test: a zero baseline rate or a handful of claims is routine.

    P(X ≥ current events) for X hypergeometric (the current window drawn from both windows'
    claims, the events marked), as `scipy.stats.fisher_exact(…, alternative="greater")`
    computes it, for a whole run's cells in a few array operations. The probabilities over
    each support come from the ratio of consecutive terms, accumulated in log space and
    scaled by the largest, so no large factorial costs precision."""
    population = baseline_total + current_total
    marked = baseline_events + current_events
    at_least, drawn = current_events, current_total
    low = np.maximum(0, drawn - (population - marked))
    high = np.minimum(marked, drawn)
    empty = (baseline_total == 0) | (current_total == 0)
    p_value = np.where((at_least > high) & ~empty, 0.0, 1.0)
    todo = np.flatnonzero((at_least > low) & (at_least <= high) & ~empty)
    # Rows of similar support length together, a few million terms at a time.
    todo = todo[np.argsort((high - low)[todo], kind="stable")]
    lengths = ((high - low)[todo] + 1).tolist()
    start = 0
    while start < todo.size:
        stop = start + 1
        while stop < todo.size and (stop - start + 1) * lengths[stop] <= _TERMS:
            stop += 1
        rows = todo[start:stop]
        p_value[rows] = _hypergeometric_tails(
            at_least[rows], population[rows], marked[rows], drawn[rows], low[rows], high[rows]
        )
        start = stop
    return np.clip(p_value, 0.0, 1.0)


# Hypergeometric terms computed at once, at most (beyond a single row's support).
_TERMS = 1 << 22


def _hypergeometric_tails(
    at_least: IntArray,
    population: IntArray,
    marked: IntArray,
    drawn: IntArray,
    low: IntArray,
    high: IntArray,
    *,
    whole: bool = False,
) -> FloatArray:
    """The tails of `fisher_greater` for rows whose support (`low` to `high`) holds
    `at_least` above its lowest value.

    Each row's terms are scaled to 1 at its mode and built outwards by the ratio of
    consecutive terms (a running product, no logarithm): the terms shrink away from the
    mode, so none overflows, and those too small for a float become 0. Unless `whole`, a
    side stops TAIL_REACH standard deviations from the mode, where its terms have long
    become 0; a row whose last term there is not 0 yet is computed whole."""
    n, k, d = (a.astype(np.float64)[:, None] for a in (population, marked, drawn))
    mode = np.clip(np.floor((d + 1) * (k + 1) / (n + 2))[:, 0], low, high)
    reach = None
    if not whole:
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = (d * k * (n - k) * (n - d) / (n * n * (n - 1)))[:, 0]
        reach = np.ceil(TAIL_REACH * np.sqrt(np.nan_to_num(variance))) + 20
    right = _term_ratios(
        mode, high, reach, lambda x: (k - x) * (d - x) / ((x + 1) * (n - k - d + x + 1))
    )
    left = _term_ratios(
        mode, low, reach, lambda x: x * (n - k - d + x) / ((k - x + 1) * (d - x + 1))
    )
    # Terms of x = mode + 1, mode + 2, … and x = mode − 1, mode − 2, …
    above, below = np.cumprod(right, axis=1), np.cumprod(left, axis=1)
    total = 1 + above.sum(axis=1) + below.sum(axis=1)
    start = (at_least - mode)[:, None]
    tail = np.where(
        start[:, 0] > 0,
        (above * (np.arange(1, above.shape[1] + 1)[None, :] >= start)).sum(axis=1),
        1
        + above.sum(axis=1)
        + (below * (-np.arange(1, below.shape[1] + 1)[None, :] >= start)).sum(axis=1),
    )
    p_value = np.asarray(tail / total, dtype=np.float64)
    if reach is not None:
        stopped = (np.abs(high - mode) > reach) & (above[:, -1] != 0) | (
            (np.abs(mode - low) > reach) & (below[:, -1] != 0)
        )
        if stopped.any():
            p_value[stopped] = _hypergeometric_tails(
                *(a[stopped] for a in (at_least, population, marked, drawn, low, high)),
                whole=True,
            )
    return p_value


# Standard deviations from the mode past which hypergeometric terms are far below the
# smallest float (a normal density there is e^-1012; they underflow at about e^-745).
TAIL_REACH = 45


def _term_ratios(
    mode: FloatArray,
    end: IntArray,
    reach: FloatArray | None,
    ratio: Callable[[FloatArray], FloatArray],
) -> FloatArray:
    """Row by row, `ratio` of each term to the one before, from the mode towards `end` of the
    support (0 past it), at most `reach` terms."""
    steps = np.abs(end - mode)
    if reach is not None:
        steps = np.minimum(steps, reach)
    width = max(int(steps.max()), 1)
    direction = np.sign(end - mode)[:, None]
    x = mode[:, None] + direction * np.arange(width)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = ratio(x)
    ratios[np.arange(width)[None, :] >= steps[:, None]] = 0.0
    return ratios


def _check_events(events: int, total: int) -> None:
    if not 0 <= events <= total:
        raise ValueError(f"need 0 <= events <= total, got {events} of {total}")


def _rate(events: int, total: int) -> float:
    return events / total if total else 0.0


# --- Days to decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftTest:
    baseline_median: float
    current_median: float
    shift: float
    p_value: float
    u_statistic: float
    shift_interval: Interval


def decision_days_test(baseline: Mapping[int, int], current: Mapping[int, int]) -> ShiftTest:
    """One-sided Mann–Whitney test that decisions now take longer, and the Hodges–Lehmann shift.

    The windows are histograms {days to decision: claims}. Everything is computed over the
    distinct day values, never over the claims, so a window of 500k claims costs what a window of
    a few hundred does. The p-value is the normal approximation with tie-corrected variance and
    continuity correction, equal to `scipy.stats.mannwhitneyu(current, baseline,
    alternative="greater", method="asymptotic")` on the expanded claims. With this many ties
    (whole days) an exact test does not apply anyway.

    `shift_interval` is the distribution-free order-statistics interval for the shift (Lehmann;
    Hollander & Wolfe, "Nonparametric Statistical Methods", §4.3): the C-th smallest and C-th
    largest pairwise difference, with C = ⌊n₁n₂/2 − z·√(n₁n₂(n₁+n₂+1)/12)⌋ from the large-sample
    approximation, at least 1. Rounding down widens the interval rather than overstate coverage.
    An empty window gives p = 1.0, shift 0 and the interval [0, 0]; its median is 0.0.
    """
    return decision_days_shift(histogram(baseline), histogram(current))


class Histogram:
    """Integer values ascending, each with its (positive) count, and the running total of
    the counts, so that any order statistic is one binary search."""

    __slots__ = ("counts", "cumulative", "total", "values")

    def __init__(self, values: IntArray, counts: IntArray) -> None:
        self.values, self.counts = values, counts
        self.cumulative = np.cumsum(counts)
        self.total = int(self.cumulative[-1]) if counts.size else 0

    def order_statistic(self, k: int) -> float:
        """The k-th smallest (1-based) of the values, each repeated its count times."""
        return float(self.values[np.searchsorted(self.cumulative, k, side="left")])

    def median(self) -> float:
        """The mean of the two middle values for an even count; 0.0 if empty."""
        if self.total == 0:
            return 0.0
        low = self.order_statistic((self.total + 1) // 2)
        high = self.order_statistic(self.total // 2 + 1)
        return (low + high) / 2


def histogram(counts_by_value: Mapping[int, int]) -> Histogram:
    """A {value: count} mapping as a `Histogram`, values without counts left out."""
    if any(count < 0 for count in counts_by_value.values()):
        raise ValueError("histogram counts must be non-negative")
    pairs = sorted((value, count) for value, count in counts_by_value.items() if count > 0)
    values = np.array([value for value, _ in pairs], dtype=np.int64)
    counts = np.array([count for _, count in pairs], dtype=np.int64)
    return Histogram(values, counts)


def decision_days_shift(baseline: Histogram, current: Histogram) -> ShiftTest:
    """`decision_days_test` on histograms already in array form (see there)."""
    baseline_median = baseline.median()
    current_median = current.median()
    if baseline.total == 0 or current.total == 0:
        return ShiftTest(
            baseline_median=baseline_median,
            current_median=current_median,
            shift=0.0,
            p_value=1.0,
            u_statistic=0.0,
            shift_interval=Interval(0.0, 0.0),
        )
    u_statistic, p_value = _mann_whitney_greater(baseline, current)
    differences = _difference_histogram(baseline, current)
    return ShiftTest(
        baseline_median=baseline_median,
        current_median=current_median,
        shift=differences.median(),
        p_value=p_value,
        u_statistic=u_statistic,
        shift_interval=_shift_interval(
            differences, current.total, baseline.total, CONFIDENCE_LEVEL
        ),
    )


def _mann_whitney_greater(baseline: Histogram, current: Histogram) -> tuple[float, float]:
    """(U of the current window, one-sided p-value that current values tend to be larger)."""
    values = np.union1d(baseline.values, current.values)
    rows = np.zeros((2, 1, values.size), dtype=np.int64)
    rows[0, 0, np.searchsorted(values, baseline.values)] = baseline.counts
    rows[1, 0, np.searchsorted(values, current.values)] = current.counts
    u_statistic, p_value = mann_whitney_greater_rows(rows[0], rows[1])
    return float(u_statistic[0]), float(p_value[0])


def mann_whitney_greater_rows(
    baseline: IntArray, current: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Mann–Whitney for many pairs of histograms at once: row i of `baseline` and `current`
    counts the claims of each value (columns in ascending value order, shared by both).
    Returns (U of each current row, one-sided p-value that its values tend to be larger),
    with the normal approximation, tie-corrected variance and continuity correction; p = 1.0
    for a row with an empty window or a single value."""
    tied = baseline + current
    # Every claim of a value gets its midrank: ranks before it, plus the middle of its run.
    midranks = (np.cumsum(tied, axis=1) - tied) + (tied + 1) / 2
    n_cur, n_base = current.sum(axis=1), baseline.sum(axis=1)
    u_statistic = (current * midranks).sum(axis=1) - n_cur * (n_cur + 1.0) / 2
    # Tie-corrected variance, kept in integers until the last step so that a window on a
    # single value gives exactly zero instead of a rounding residue. From 2**21 claims on,
    # t³ and n³ could overflow int64, so Python integers take over for such a row.
    n = n_cur + n_base
    tie_term = (tied**3 - tied).sum(axis=1)
    untied_term = (n + 1) * n * (n - 1)
    spread = (untied_term - tie_term).astype(np.float64)
    for row in np.flatnonzero(n >= 2**21).tolist():
        big = int(n[row])
        spread[row] = float((big + 1) * big * (big - 1) - sum(t**3 - t for t in tied[row].tolist()))
    testable = (n_cur > 0) & (n_base > 0) & (spread > 0)
    cur, base, both = (counts.astype(np.float64) for counts in (n_cur, n_base, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = cur * base * spread / (12 * both * (both - 1))
        z = (u_statistic - cur * base / 2 - 0.5) / np.sqrt(variance)
    p_value = np.where(testable, special.ndtr(-np.where(testable, z, 0.0)), 1.0)
    return u_statistic, np.clip(p_value, 0.0, 1.0)


def median_rows(counts: IntArray, values: IntArray) -> FloatArray:
    """`Histogram.median` of each row of `counts` (claims per value of `values`, ascending);
    0.0 for an empty row."""
    if values.size == 0:
        # No decided claim at all in these windows (a customer's first days).
        return np.zeros(counts.shape[0], np.float64)
    cumulative = np.cumsum(counts, axis=1)
    total = cumulative[:, -1] if counts.shape[1] else np.zeros(counts.shape[0], np.int64)
    low = (cumulative < ((total + 1) // 2)[:, None]).sum(axis=1)
    high = (cumulative < (total // 2 + 1)[:, None]).sum(axis=1)
    last = max(values.size - 1, 0)
    middle = (values[np.minimum(low, last)] + values[np.minimum(high, last)]) / 2
    return np.where(total > 0, middle, 0.0)


def quantile_rows(counts: IntArray, values: IntArray, share: float) -> FloatArray:
    """The value below which `share` of each row's claims fall (the lower one at a tie);
    0.0 for an empty row."""
    cumulative = np.cumsum(counts, axis=1)
    total = cumulative[:, -1] if counts.shape[1] else np.zeros(counts.shape[0], np.int64)
    rank = np.maximum(np.ceil(total * share), 1)
    at = np.minimum((cumulative < rank[:, None]).sum(axis=1), max(values.size - 1, 0))
    return np.where(total > 0, values[at] if values.size else 0.0, 0.0).astype(np.float64)


# Pair counts of this many (row, value, value) cells at most are held at once.
_PAIR_CELLS = 1 << 22


def shift_rows(baseline: IntArray, current: IntArray, values: IntArray) -> FloatArray:
    """The Hodges–Lehmann shift of `decision_days_shift` (the median of all pairwise
    differences current − baseline) for many pairs of histograms at once: rows of claims
    per value of `values` (ascending). 0.0 for a row with an empty window."""
    shifts = np.zeros(baseline.shape[0])
    present = np.flatnonzero((baseline > 0).any(axis=0) | (current > 0).any(axis=0))
    if not present.size:
        return shifts
    base, cur, kept = baseline[:, present], current[:, present], values[present]
    differences = kept[:, None] - kept[None, :]
    lowest = int(differences.min())
    span = int(differences.max()) - lowest + 1
    slot = (differences - lowest).ravel()
    pairs = base.sum(axis=1) * cur.sum(axis=1)
    # Float counts are exact below 2**53 pairs; larger windows take the exact scalar path.
    exact = pairs < 2**53
    rows = max(1, _PAIR_CELLS // max(kept.size**2, span))
    for first in range(0, base.shape[0], rows):
        last = min(first + rows, base.shape[0])
        weights = (cur[first:last, :, None] * base[first:last, None, :]).reshape(last - first, -1)
        at = (np.arange(last - first)[:, None] * span + slot[None, :]).ravel()
        counts = np.bincount(at, weights=weights.ravel(), minlength=(last - first) * span)
        shifts[first:last] = median_rows(
            counts.reshape(last - first, span), np.arange(lowest, lowest + span)
        )
    for row in np.flatnonzero(~exact).tolist():
        shifts[row] = _difference_histogram(
            Histogram(kept[base[row] > 0], base[row][base[row] > 0]),
            Histogram(kept[cur[row] > 0], cur[row][cur[row] > 0]),
        ).median()
    return shifts


def _difference_histogram(baseline: Histogram, current: Histogram) -> Histogram:
    """All pairwise differences current − baseline, with claim-pair counts."""
    # n₁·n₂ claim pairs must fit int64 for the order statistics to be exact.
    if current.total * baseline.total >= 2**63:
        raise ValueError("windows too large for exact pair counts")
    differences = np.subtract.outer(current.values, baseline.values).ravel()
    weights = np.multiply.outer(current.counts, baseline.counts).ravel()
    lowest = int(current.values[0] - baseline.values[-1])
    span = int(current.values[-1] - baseline.values[0]) - lowest + 1
    if current.total * baseline.total < 2**53 and span <= MAX_DENSE_SPAN:
        # Counted into one slot per possible difference: no sort, and float64 counts are exact
        # below 2**53.
        dense = np.bincount(differences - lowest, weights=weights, minlength=span)
        present = np.flatnonzero(dense)
        return Histogram(present + lowest, dense[present].astype(np.int64))
    order = np.argsort(differences, kind="stable")
    return Histogram(differences[order], weights[order])


def _shift_interval(differences: Histogram, n_cur: int, n_base: int, level: float) -> Interval:
    """Order-statistics interval for the Hodges–Lehmann shift (see `decision_days_test`)."""
    pairs = n_cur * n_base
    z = float(special.ndtri(1 - (1 - level) / 2))
    rank = max(1, math.floor(pairs / 2 - z * math.sqrt(pairs * (n_cur + n_base + 1) / 12)))
    return Interval(
        differences.order_statistic(rank),
        differences.order_statistic(pairs + 1 - rank),
        level,
    )


# --- Payment ratio ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RatioTest:
    baseline_ratio: float
    current_ratio: float
    drop: float
    p_value: float
    test: str


PAYMENT_TEST_NAME = "one-sided Mann–Whitney U on daily (paid + patient share)/allowed ratios"


def payment_ratio_test(
    baseline_days: Sequence[tuple[int, int]], current_days: Sequence[tuple[int, int]]
) -> RatioTest:
    """Whether the payer now pays a smaller share of the allowed amount.

    Inputs are per-day (paid_cents, allowed_cents) of the cell. The ratios reported are
    dollar-weighted (sum paid / sum allowed) because that is what the money at stake follows.
    The p-value comes from a one-sided Mann–Whitney test on the per-day ratios (days with
    allowed > 0): ingest keeps day totals, not claims, so days are the units we can compare, and
    daily ratios are bounded, skewed and hit by the odd large claim, which a rank test tolerates
    and a t-test does not. Each day counts once whatever its volume. Fewer than
    `MIN_PAYMENT_DAYS` such days in either window gives p = 1.0.
    """
    base = np.array(baseline_days, dtype=np.int64).reshape(-1, 2)
    cur = np.array(current_days, dtype=np.int64).reshape(-1, 2)
    return payment_ratio_shift(base[:, 0], base[:, 1], cur[:, 0], cur[:, 1])


def payment_ratio_shift(
    base_paid: IntArray, base_allowed: IntArray, cur_paid: IntArray, cur_allowed: IntArray
) -> RatioTest:
    """`payment_ratio_test` on per-day arrays (paid cents, allowed cents), day by day."""
    baseline_ratio = _paid_share(base_paid, base_allowed)
    current_ratio = _paid_share(cur_paid, cur_allowed)
    base_daily = _daily_ratios(base_paid, base_allowed)
    cur_daily = _daily_ratios(cur_paid, cur_allowed)
    if base_daily.size < MIN_PAYMENT_DAYS or cur_daily.size < MIN_PAYMENT_DAYS:
        p_value = 1.0
    else:
        p_value = _mann_whitney_less(base_daily, cur_daily)
    return RatioTest(
        baseline_ratio=baseline_ratio,
        current_ratio=current_ratio,
        drop=baseline_ratio - current_ratio,
        p_value=_probability(p_value),
        test=PAYMENT_TEST_NAME,
    )


def _mann_whitney_less(baseline: FloatArray, current: FloatArray) -> float:
    """One-sided Mann–Whitney p-value that current values tend to be smaller (see
    `mann_whitney_less_groups`)."""
    values = np.concatenate((baseline, current))
    is_current = np.arange(values.size) >= baseline.size
    (p_value,) = mann_whitney_less_groups(values, np.zeros(values.size, np.int64), is_current, 1)
    return float(p_value)


def mann_whitney_less_groups(
    values: FloatArray, group: IntArray, is_current: npt.NDArray[np.bool_], groups: int
) -> FloatArray:
    """One-sided Mann–Whitney p-values that the current values of each group tend to be
    smaller than its baseline values, for `groups` groups at once (`group` names each
    value's, `is_current` its window), as `scipy.stats.mannwhitneyu(current, baseline,
    alternative="less")` computes them: exact for a sample of at most 8 without ties
    (scipy's own choice), else the normal approximation over the ranks. p = 1.0 for a group
    with an empty window."""
    if not values.size:
        return np.ones(groups)
    # Negated, a smaller value is a larger rank: the test becomes "greater" on the ranks.
    # In group order, then by negated value: each value's place among all, within its group.
    place = np.empty(values.size, dtype=np.int64)
    place[np.argsort(-values, kind="stable")] = np.arange(values.size)
    order = np.argsort(group.astype(np.int64) * values.size + place)
    sorted_group, negated = group[order], -values[order]
    current = is_current[order]
    starts_group = np.r_[True, sorted_group[1:] != sorted_group[:-1]]
    starts_run = starts_group | np.r_[True, negated[1:] != negated[:-1]]
    run = np.cumsum(starts_run) - 1
    # Each group's distinct values are columns 0, 1, … of its row.
    first_run = np.zeros(groups, dtype=np.int64)
    first_run[sorted_group[starts_group]] = run[starts_group]
    column = run - first_run[sorted_group]
    width = int(column.max()) + 1 if values.size else 1
    at = sorted_group * width + column
    baseline, current_rows = (
        np.bincount(at[mask], minlength=groups * width).reshape(groups, width)
        for mask in (~current, current)
    )
    p_value = mann_whitney_greater_rows(baseline, current_rows)[1]
    sizes = baseline.sum(axis=1), current_rows.sum(axis=1)
    distinct = np.bincount(sorted_group[starts_run], minlength=groups)
    small = (np.minimum(*sizes) <= SMALL_SAMPLE) & (np.minimum(*sizes) > 0)
    for row in np.flatnonzero(small & (distinct == sizes[0] + sizes[1])).tolist():
        mine = group == row
        p_value[row] = stats.mannwhitneyu(
            values[mine & is_current], values[mine & ~is_current], alternative="less"
        ).pvalue
    return np.clip(p_value, 0.0, 1.0)


def _paid_share(paid: IntArray, allowed: IntArray) -> float:
    total_allowed = int(allowed.sum())
    # Adjustments can leave a window's allowed total at or below zero: no meaningful share.
    return int(paid.sum()) / total_allowed if total_allowed > 0 else 0.0


def _daily_ratios(paid: IntArray, allowed: IntArray) -> FloatArray:
    with_allowed = allowed > 0
    return np.asarray(paid[with_allowed] / allowed[with_allowed], dtype=np.float64)


# --- Denial-reason mix ------------------------------------------------------------------------


@dataclass(frozen=True)
class MixTest:
    p_value: float
    js_distance: float
    shifts: list[tuple[str, float, float]]


def denial_reason_mix_test(
    baseline: Mapping[str, int], current: Mapping[str, int], top: int = 8
) -> MixTest:
    """Whether the reasons (CARC codes) a payer denies for have changed.

    The `top` codes by combined count are kept and the rest folded into `OTHER`, so that the
    chi-square test of homogeneity is not run on a long tail of near-empty cells; the
    Jensen–Shannon distance (base 2: 0 identical, 1 disjoint) is of that folded mix too. The
    `shifts` are the codes whose share grew, largest growth first, as (code, baseline share,
    current share): where the tail grew, its own codes that grew are named in its place (an
    analyst acts on CO-27, not on OTHER). An empty window or fewer than two codes with counts
    gives p = 1.0 and distance 0.0.
    """
    codes, base_counts, cur_counts = _folded_mix(baseline, current, top)
    base_total, cur_total = int(base_counts.sum()), int(cur_counts.sum())
    if base_total == 0 or cur_total == 0 or len(codes) < 2:
        return MixTest(p_value=1.0, js_distance=0.0, shifts=[])
    base_shares = base_counts / base_total
    cur_shares = cur_counts / cur_total
    js = _jensen_shannon(base_shares, cur_shares)
    grown = [
        (code, float(before), float(after))
        for code, before, after in zip(codes, base_shares, cur_shares, strict=True)
        if after > before
    ]
    if any(code == OTHER for code, _, _ in grown) and (tail := {*baseline, *current} - {*codes}):
        grown = [shift for shift in grown if shift[0] != OTHER] + [
            (code, before, after)
            for code in tail
            if (after := current.get(code, 0) / cur_total)
            > (before := baseline.get(code, 0) / base_total)
        ]
    grown.sort(key=lambda shift: (shift[1] - shift[2], shift[0]))
    every = sorted({*baseline, *current})
    (p_value,) = mix_p_values(
        np.array([[baseline.get(code, 0) for code in every]], dtype=np.int64),
        np.array([[current.get(code, 0) for code in every]], dtype=np.int64),
        every,
        top,
    ).tolist()
    return MixTest(p_value=p_value, js_distance=min(js, 1.0), shifts=grown)


def mix_p_values(
    baseline: IntArray, current: IntArray, codes: Sequence[str], top: int = 8
) -> FloatArray:
    """The p-values of `denial_reason_mix_test` for many pairs of mixes at once: row i of
    `baseline` and `current` counts each of `codes` (one column per code, names ascending).
    Per row, the `top` codes by combined count are kept and the rest folded into `OTHER`
    (as `_folded_mix` does), then a chi-square test of homogeneity of the two rows, as
    `scipy.stats.chi2_contingency` computes it: Yates' correction only at one degree of
    freedom (two codes), where it helps. p = 1.0 for a row with an empty window or fewer
    than two codes."""
    combined = baseline + current
    column = np.broadcast_to(np.arange(len(codes)), combined.shape)
    # Largest combined count first, then code name; empty codes last.
    rank = np.argsort(np.lexsort((column, -combined), axis=1), axis=1)
    kept = (rank < top) & (combined > 0)
    folded = (combined > 0) & ~kept
    if OTHER in codes:
        # A code named OTHER is the column the tail folds into.
        other = list(codes).index(OTHER)
        folded[:, other] |= kept[:, other]
        kept[:, other] = False
    observed = np.stack(
        [
            np.concatenate((np.where(kept, rows, 0), (rows * folded).sum(1)[:, None]), axis=1)
            for rows in (baseline, current)
        ]
    ).astype(np.float64)
    present = np.concatenate((kept, np.any(folded, axis=1, keepdims=True)), axis=1)
    row_totals = observed.sum(axis=2)
    total = row_totals.sum(axis=0)
    dof = present.sum(axis=1) - 1
    testable = (row_totals[0] > 0) & (row_totals[1] > 0) & (dof >= 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = row_totals[:, :, None] * observed.sum(axis=0)[None] / total[None, :, None]
        difference = expected - observed
        yates = (dof == 1)[None, :, None] & present[None]
        observed += np.where(yates, np.minimum(0.5, np.abs(difference)) * np.sign(difference), 0)
        terms = np.where(present[None], (observed - expected) ** 2 / expected, 0.0)
    chi2 = terms.sum(axis=(0, 2))
    p_value = np.where(testable, special.chdtrc(np.maximum(dof, 1), chi2), 1.0)
    return np.clip(p_value, 0.0, 1.0)


def _jensen_shannon(p: FloatArray, q: FloatArray) -> float:
    """Jensen–Shannon distance of two distributions, base 2 (as scipy's `jensenshannon`)."""
    m = (p + q) / 2
    divergence = float(np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m)))
    # Nearly equal mixes can round the divergence below zero.
    return math.sqrt(max(divergence / (2 * math.log(2)), 0.0))


def _folded_mix(
    baseline: Mapping[str, int], current: Mapping[str, int], top: int
) -> tuple[list[str], IntArray, IntArray]:
    """(codes, baseline counts, current counts) over the top codes plus OTHER, none empty."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if any(count < 0 for count in [*baseline.values(), *current.values()]):
        raise ValueError("denial reason counts must be non-negative")
    combined = {
        code: baseline.get(code, 0) + current.get(code, 0) for code in {*baseline, *current}
    }
    ranked = sorted(
        (code for code, count in combined.items() if count > 0),
        key=lambda code: (-combined[code], code),
    )
    kept, tail = ranked[:top], ranked[top:]
    folded: dict[str, tuple[int, int]] = {
        code: (baseline.get(code, 0), current.get(code, 0)) for code in kept
    }
    if tail:
        base_other, cur_other = folded.get(OTHER, (0, 0))
        folded[OTHER] = (
            base_other + sum(baseline.get(code, 0) for code in tail),
            cur_other + sum(current.get(code, 0) for code in tail),
        )
    codes = list(folded)
    base_counts = np.array([folded[code][0] for code in codes], dtype=np.int64)
    cur_counts = np.array([folded[code][1] for code in codes], dtype=np.int64)
    return codes, base_counts, cur_counts


# --- Multiple testing -------------------------------------------------------------------------


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg q-values, in the order of the p-values given.

    Step-up: the q-value of the k-th smallest of m p-values is min over j ≥ k of p₍ⱼ₎·m/j, so
    q-values keep the order of the p-values and are never below them.
    """
    if len(p_values) == 0:
        return []
    p = np.asarray(p_values, dtype=np.float64)
    if np.isnan(p).any():
        raise ValueError("p-values must not be NaN")
    order = np.argsort(p, kind="stable")
    m = p.size
    # m / rank first: at rank m the factor is exactly 1, so no q-value rounds below its p-value.
    scaled = p[order] * (m / np.arange(1, m + 1))
    stepped_up = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.clip(stepped_up, 0.0, 1.0)
    return [float(value) for value in q]


def _probability(p: float) -> float:
    """A p-value clipped into [0, 1]: normal approximations can overshoot by a rounding error."""
    return min(max(p, 0.0), 1.0)

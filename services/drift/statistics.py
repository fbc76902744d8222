"""The statistical tests behind drift events: counts and histograms in, effects and p-values out.

Pure numpy/scipy: no gRPC, no database. Every test is one-sided in the direction that hurts the
provider (more denials, slower decisions, lower payments, a new denial mix) and answers an empty
or degenerate window with "no evidence" (p = 1.0) rather than an error, because a thin cell is
normal in a daily run and is rolled up by the caller, not fatal.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
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
    if baseline_total == 0 or current_total == 0:
        p_value = 1.0
    else:
        # Exact rather than a z-test: a zero baseline rate or a handful of claims is routine.
        p_value = _hypergeometric_tail(
            current_denied,
            baseline_total + current_total,
            baseline_denied + current_denied,
            current_total,
        )
    return RateTest(
        baseline_rate=_rate(baseline_denied, baseline_total),
        current_rate=_rate(current_denied, current_total),
        p_value=_probability(p_value),
        baseline_interval=wilson_interval(baseline_denied, baseline_total),
        current_interval=wilson_interval(current_denied, current_total),
    )


def _hypergeometric_tail(at_least: int, population: int, marked: int, drawn: int) -> float:
    """P(X ≥ at_least) for X the marked items among `drawn` of `population` (hypergeometric):
    the one-sided Fisher exact p-value, as `scipy.stats.fisher_exact(…, alternative="greater")`
    computes it, without its per-call overhead (a run makes thousands of these).

    The probabilities over the support come from the ratio of consecutive terms, accumulated in
    log space and scaled by the largest, so no large factorial costs precision.
    """
    low = max(0, drawn - (population - marked))
    high = min(marked, drawn)
    if at_least <= low:
        return 1.0
    if at_least > high:
        return 0.0
    x = np.arange(low, high, dtype=np.float64)
    # log P(x + 1) − log P(x) for x = low … high − 1.
    steps = np.log((marked - x) * (drawn - x)) - np.log(
        (x + 1) * (population - marked - drawn + x + 1)
    )
    log_terms = np.concatenate(([0.0], np.cumsum(steps)))
    terms = np.exp(log_terms - log_terms.max())
    return float(terms[at_least - low :].sum() / terms.sum())


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
    days = np.union1d(baseline.values, current.values)
    cur_at = np.zeros(days.size, dtype=np.int64)
    cur_at[np.searchsorted(days, current.values)] = current.counts
    tied = np.zeros(days.size, dtype=np.int64)
    tied[np.searchsorted(days, baseline.values)] = baseline.counts
    tied += cur_at
    # Every claim of a day gets the day's midrank: ranks before it, plus the middle of its run.
    midranks = (np.cumsum(tied) - tied) + (tied + 1) / 2
    n_cur, n_base = current.total, baseline.total
    u_statistic = float(np.dot(cur_at, midranks)) - n_cur * (n_cur + 1) / 2
    # Tie-corrected variance, kept in integers until the last step so that a window on a single
    # day value gives exactly zero instead of a rounding residue. From 2**21 claims on, the sum
    # of t³ could overflow int64, so Python integers take over there.
    n = n_cur + n_base
    if n < 2**21:
        tie_term = int(np.sum(tied**3 - tied))
    else:
        tie_term = sum(t**3 - t for t in tied.tolist())
    untied_term = (n + 1) * n * (n - 1)
    if untied_term == tie_term:
        return u_statistic, 1.0  # every claim on one day value: no ordering to test
    variance = n_cur * n_base * (untied_term - tie_term) / (12 * n * (n - 1))
    z = (u_statistic - n_cur * n_base / 2 - 0.5) / math.sqrt(variance)
    return u_statistic, _probability(float(special.ndtr(-z)))


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


PAYMENT_TEST_NAME = "one-sided Mann–Whitney U on daily paid/allowed ratios"


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
    """One-sided Mann–Whitney p-value that current values tend to be smaller, as
    `scipy.stats.mannwhitneyu(current, baseline, alternative="less")` computes it: exact for
    a sample of at most 8 without ties (scipy's own choice), else the normal approximation,
    here over the ranks so that it costs no more than the decision-days test."""
    both = np.concatenate((baseline, current))
    distinct, rank = np.unique(-both, return_inverse=True)
    if min(baseline.size, current.size) <= SMALL_SAMPLE and distinct.size == both.size:
        return float(stats.mannwhitneyu(current, baseline, alternative="less").pvalue)
    counts = np.bincount(rank[: baseline.size], minlength=distinct.size)
    base_hist = Histogram(np.flatnonzero(counts), counts[counts > 0])
    counts = np.bincount(rank[baseline.size :], minlength=distinct.size)
    cur_hist = Histogram(np.flatnonzero(counts), counts[counts > 0])
    # A smaller ratio is a larger rank of the negated ratios.
    return _mann_whitney_greater(base_hist, cur_hist)[1]


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
    chi-square test of homogeneity is not run on a long tail of near-empty cells. The
    Jensen–Shannon distance (base 2: 0 identical, 1 disjoint) and the `shifts` (codes whose
    share grew, largest growth first, as (code, baseline share, current share)) describe the
    same folded mix, so the three numbers of an event agree. An empty window or fewer than two
    codes with counts gives p = 1.0 and distance 0.0.
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
    grown.sort(key=lambda shift: (shift[1] - shift[2], shift[0]))
    return MixTest(
        p_value=_probability(_homogeneity_p_value(base_counts, cur_counts)),
        js_distance=min(js, 1.0),
        shifts=grown,
    )


def _homogeneity_p_value(base_counts: IntArray, cur_counts: IntArray) -> float:
    """Chi-square test of homogeneity of two rows of counts (no column empty), as
    `scipy.stats.chi2_contingency` computes it: Yates' correction only at one degree of
    freedom (two codes), where it helps."""
    observed = np.vstack([base_counts, cur_counts]).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    dof = observed.shape[1] - 1
    if dof == 1:
        difference = expected - observed
        observed += np.minimum(0.5, np.abs(difference)) * np.sign(difference)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    return float(special.chdtrc(dof, chi2))


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

"""The statistical tests behind drift events: reference values, scipy equivalence, edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from services.drift import statistics as statistics_module
from services.drift.statistics import (
    OTHER,
    Interval,
    benjamini_hochberg,
    decision_days_test,
    denial_rate_test,
    denial_reason_mix_test,
    fisher_greater,
    mann_whitney_greater_rows,
    mann_whitney_less_groups,
    mix_p_values,
    payment_ratio_test,
    wilson_interval,
)

Histogram = dict[int, int]


def expand(histogram: Histogram) -> np.ndarray:
    """The claims a histogram stands for, one value each (test-side only)."""
    days = sorted(histogram)
    return np.repeat(np.array(days, dtype=float), [histogram[d] for d in days])


def random_histogram(rng: np.random.Generator, max_days: int = 40) -> Histogram:
    days = rng.choice(max_days, size=rng.integers(1, 12), replace=False)
    return {int(d): int(rng.integers(0, 25)) for d in days}


def poisson_histogram(mean: float, claims: int, offset: int = 0) -> Histogram:
    """A window's days-to-decision histogram with Poisson-shaped counts summing to `claims`."""
    days = np.arange(0, 150)
    weights = stats.poisson.pmf(days, mean)
    counts = np.floor(weights / weights.sum() * claims).astype(int)
    counts[int(mean)] += claims - counts.sum()
    return {int(d) + offset: int(c) for d, c in zip(days, counts, strict=True) if c > 0}


# --- Wilson interval --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "total", "lower", "upper"),
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (1, 1, 0.2065, 1.0)],
)
def test_wilson_interval_known_values(events: int, total: int, lower: float, upper: float) -> None:
    interval = wilson_interval(events, total)
    assert interval.lower == pytest.approx(lower, abs=5e-5)
    assert interval.upper == pytest.approx(upper, abs=5e-5)
    assert interval.level == 0.95


def test_wilson_interval_narrows_with_a_lower_level() -> None:
    wide, narrow = wilson_interval(30, 100, 0.99), wilson_interval(30, 100, 0.80)
    assert wide.lower < narrow.lower < 0.30 < narrow.upper < wide.upper
    assert narrow.level == 0.80


def test_wilson_interval_of_nothing_is_everything() -> None:
    assert wilson_interval(0, 0) == Interval(0.0, 1.0, 0.95)


@given(st.integers(0, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_rate(counts: tuple[int, int]) -> None:
    events, total = counts
    interval = wilson_interval(events, total)
    rate = events / total if total else 0.5
    assert 0.0 <= interval.lower <= rate <= interval.upper <= 1.0


# --- Denial rate ------------------------------------------------------------------------------


def test_denial_rate_known_fisher_value() -> None:
    # Current 3 of 4 denied, baseline 1 of 4: P(X >= 3) for X ~ Hypergeom(8, 4, 4) = 17/70.
    result = denial_rate_test(1, 4, 3, 4)
    assert result.p_value == pytest.approx(17 / 70, rel=1e-12)
    assert (result.baseline_rate, result.current_rate) == (0.25, 0.75)


def test_denial_rate_fisher_matches_scipy_on_random_tables() -> None:
    rng = np.random.default_rng(7)
    for _ in range(150):
        base_total, cur_total = (int(n) for n in rng.integers(1, 400, size=2))
        base_denied = int(rng.integers(0, base_total + 1))
        cur_denied = int(rng.integers(0, cur_total + 1))
        table = [[cur_denied, cur_total - cur_denied], [base_denied, base_total - base_denied]]
        expected = stats.fisher_exact(table, alternative="greater").pvalue
        result = denial_rate_test(base_denied, base_total, cur_denied, cur_total)
        assert result.p_value == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_zero_baseline_rate_with_new_denials_is_significant() -> None:
    result = denial_rate_test(0, 200, 10, 50)
    assert result.baseline_rate == 0.0
    assert result.current_rate == 0.2
    assert result.p_value < 1e-4
    assert result.baseline_interval.lower == 0.0
    assert result.current_interval.lower > result.baseline_interval.upper


def test_zero_denials_everywhere_is_no_evidence() -> None:
    result = denial_rate_test(0, 200, 0, 50)
    assert result.p_value == 1.0
    assert (result.baseline_rate, result.current_rate) == (0.0, 0.0)


@pytest.mark.parametrize(("baseline_total", "current_total"), [(0, 0), (0, 40), (40, 0)])
def test_an_empty_window_gives_no_evidence(baseline_total: int, current_total: int) -> None:
    result = denial_rate_test(0, baseline_total, current_total // 2, current_total)
    assert result.p_value == 1.0
    empty = result.baseline_interval if baseline_total == 0 else result.current_interval
    assert empty == Interval(0.0, 1.0)
    assert (result.baseline_rate if baseline_total == 0 else result.current_rate) == 0.0


def test_all_denied() -> None:
    assert denial_rate_test(100, 100, 30, 30).p_value == 1.0
    worse = denial_rate_test(50, 100, 30, 30)
    assert worse.current_rate == 1.0
    assert worse.current_interval.upper == 1.0
    assert worse.p_value < 1e-6


def test_one_claim_in_each_window() -> None:
    # The single current claim denied, the baseline one paid: a coin flip's worth of evidence.
    assert denial_rate_test(0, 1, 1, 1).p_value == pytest.approx(0.5)
    assert denial_rate_test(1, 1, 0, 1).p_value == 1.0


@pytest.mark.parametrize(("denied", "total"), [(0, 10), (3, 10), (10, 10), (120, 1000)])
def test_identical_windows_are_not_significant(denied: int, total: int) -> None:
    assert denial_rate_test(denied, total, denied, total).p_value >= 0.4


def test_a_lower_current_rate_is_not_a_drift() -> None:
    assert denial_rate_test(300, 1000, 10, 100).p_value > 0.99


def test_denied_above_total_is_rejected() -> None:
    with pytest.raises(ValueError, match="events <= total"):
        denial_rate_test(5, 4, 0, 10)


# --- Days to decision -------------------------------------------------------------------------


def test_mann_whitney_matches_scipy_on_expanded_random_histograms() -> None:
    rng = np.random.default_rng(2024)
    compared = 0
    while compared < 250:
        baseline, current = random_histogram(rng), random_histogram(rng)
        base_claims, cur_claims = expand(baseline), expand(current)
        if base_claims.size == 0 or cur_claims.size == 0:
            continue
        expected = stats.mannwhitneyu(
            cur_claims, base_claims, alternative="greater", method="asymptotic"
        )
        result = decision_days_test(baseline, current)
        assert result.u_statistic == pytest.approx(float(expected.statistic), rel=1e-9)
        assert result.p_value == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)
        compared += 1


@settings(max_examples=150)
@given(
    st.dictionaries(st.integers(0, 60), st.integers(0, 30), min_size=1, max_size=10),
    st.dictionaries(st.integers(0, 60), st.integers(0, 30), min_size=1, max_size=10),
)
def test_mann_whitney_matches_scipy_for_any_histograms(
    baseline: Histogram, current: Histogram
) -> None:
    base_claims, cur_claims = expand(baseline), expand(current)
    if base_claims.size == 0 or cur_claims.size == 0:
        return
    expected = stats.mannwhitneyu(
        cur_claims, base_claims, alternative="greater", method="asymptotic"
    )
    result = decision_days_test(baseline, current)
    assert result.u_statistic == pytest.approx(float(expected.statistic), rel=1e-9)
    assert result.p_value == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)


def test_hodges_lehmann_shift_and_medians_match_brute_force() -> None:
    rng = np.random.default_rng(11)
    compared = 0
    while compared < 300:
        baseline, current = random_histogram(rng, 25), random_histogram(rng, 25)
        base_claims, cur_claims = expand(baseline), expand(current)
        if base_claims.size == 0 or cur_claims.size == 0:
            continue
        differences = np.subtract.outer(cur_claims, base_claims).ravel()
        result = decision_days_test(baseline, current)
        assert result.shift == float(np.median(differences))
        assert result.baseline_median == float(np.median(base_claims))
        assert result.current_median == float(np.median(cur_claims))
        assert result.shift_interval.lower <= result.shift <= result.shift_interval.upper
        assert result.shift_interval.lower in differences
        assert result.shift_interval.upper in differences
        compared += 1


def test_shift_interval_covers_the_true_shift_at_least_as_often_as_it_claims() -> None:
    rng = np.random.default_rng(5)
    trials, covered, excludes_zero = 300, 0, 0
    for _ in range(trials):
        base_claims = rng.poisson(12, size=40)
        cur_claims = rng.poisson(12, size=30) + 3
        baseline = dict(zip(*np.unique(base_claims, return_counts=True), strict=True))
        current = dict(zip(*np.unique(cur_claims, return_counts=True), strict=True))
        interval = decision_days_test(baseline, current).shift_interval
        covered += interval.lower <= 3 <= interval.upper
        excludes_zero += interval.lower > 0
    assert covered / trials >= 0.95
    # Conservative, yet not so wide that it stops telling a 3-day delay from none.
    assert excludes_zero / trials >= 0.8


def test_known_small_shift() -> None:
    result = decision_days_test({10: 3, 11: 1}, {13: 2, 14: 2})
    # Pairwise differences: 3 (x6), 2 (x2), 4 (x6), 3 (x2) → median 3.
    assert result.shift == 3.0
    assert (result.baseline_median, result.current_median) == (10.0, 13.5)
    assert result.u_statistic == 16.0
    assert result.p_value < 0.05


def test_identical_windows_show_no_shift() -> None:
    window = poisson_histogram(mean=14, claims=2_000)
    result = decision_days_test(window, dict(window))
    assert result.shift == 0.0
    assert result.p_value >= 0.4
    assert result.shift_interval.lower <= 0.0 <= result.shift_interval.upper


def test_every_claim_on_the_same_day_value() -> None:
    result = decision_days_test({7: 500}, {7: 80})
    assert result.p_value == 1.0
    assert result.shift == 0.0
    assert result.shift_interval == Interval(0.0, 0.0)
    assert result.u_statistic == 500 * 80 / 2
    assert (result.baseline_median, result.current_median) == (7.0, 7.0)


def test_one_claim_in_each_window_of_decision_days() -> None:
    result = decision_days_test({10: 1}, {25: 1})
    assert result.shift == 15.0
    assert result.shift_interval == Interval(15.0, 15.0)
    assert 0.0 < result.p_value < 1.0


@pytest.mark.parametrize(
    ("baseline", "current"), [({}, {}), ({5: 10}, {}), ({}, {9: 4}), ({5: 0}, {9: 4})]
)
def test_an_empty_decision_window_gives_no_evidence(
    baseline: Histogram, current: Histogram
) -> None:
    result = decision_days_test(baseline, current)
    assert (result.p_value, result.shift, result.u_statistic) == (1.0, 0.0, 0.0)
    assert result.baseline_median == (5.0 if baseline.get(5) else 0.0)
    assert result.current_median == (9.0 if current else 0.0)


def test_faster_decisions_are_not_a_drift() -> None:
    result = decision_days_test(poisson_histogram(20, 3_000), poisson_histogram(20, 1_000, -4))
    assert result.shift == -4.0
    assert result.p_value > 0.999


def test_half_a_million_claims_per_window() -> None:
    baseline = poisson_histogram(mean=18, claims=500_000)
    current = poisson_histogram(mean=18, claims=500_000, offset=2)
    result = decision_days_test(baseline, current)
    assert result.shift == 2.0
    assert result.shift_interval == Interval(2.0, 2.0)
    assert result.current_median - result.baseline_median == 2.0
    assert result.p_value < 1e-100
    assert decision_days_test(baseline, dict(baseline)).p_value >= 0.4


def test_windows_no_array_could_hold() -> None:
    # A billion claims per window: only a computation over distinct day values can answer.
    baseline = {day: 10**9 // 30 for day in range(30)}
    current = {day + 1: 10**9 // 30 for day in range(30)}
    result = decision_days_test(baseline, current)
    assert result.shift == 1.0
    assert result.p_value == 0.0
    assert result.u_statistic > 0.5 * (10**9 // 30 * 30) ** 2


def test_negative_claim_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        decision_days_test({3: -1}, {4: 2})


# --- Payment ratio ----------------------------------------------------------------------------


def daily_payments(rng: np.random.Generator, ratio: float, days: int) -> list[tuple[int, int]]:
    allowed = rng.integers(50_000, 500_000, size=days)
    ratios = np.clip(rng.normal(ratio, 0.02, size=days), 0, 1)
    return [(int(a * r), int(a)) for a, r in zip(allowed, ratios, strict=True)]


def test_a_clear_payment_drop_is_detected() -> None:
    rng = np.random.default_rng(3)
    result = payment_ratio_test(daily_payments(rng, 0.80, 90), daily_payments(rng, 0.70, 30))
    assert result.baseline_ratio == pytest.approx(0.80, abs=0.01)
    assert result.current_ratio == pytest.approx(0.70, abs=0.01)
    assert result.drop == pytest.approx(0.10, abs=0.015)
    assert result.p_value < 1e-8
    assert "Mann–Whitney" in result.test


def test_identical_payment_days_are_not_a_drop() -> None:
    days = daily_payments(np.random.default_rng(4), 0.80, 30)
    result = payment_ratio_test(days, list(days))
    assert result.drop == 0.0
    assert result.p_value >= 0.4


def test_a_payment_rise_is_not_a_drop() -> None:
    rng = np.random.default_rng(8)
    result = payment_ratio_test(daily_payments(rng, 0.70, 90), daily_payments(rng, 0.85, 30))
    assert result.drop < 0
    assert result.p_value > 0.99


def test_payment_ratio_is_dollar_weighted() -> None:
    # One big day paid in full, two small days paid nothing: 90 % of the dollars were paid.
    result = payment_ratio_test([(900, 900), (0, 50), (0, 50)], [(0, 100)] * 3)
    assert result.baseline_ratio == pytest.approx(0.9)
    assert result.current_ratio == 0.0
    assert result.drop == pytest.approx(0.9)


def test_fewer_than_three_days_with_allowed_dollars_gives_no_evidence() -> None:
    baseline = [(80, 100)] * 30
    result = payment_ratio_test(baseline, [(10, 100), (10, 100), (0, 0), (0, 0)])
    assert result.current_ratio == pytest.approx(0.1)
    assert result.p_value == 1.0


def _rounded_days(
    rng: np.random.Generator, days: int, ratios: tuple[float, float], step: int
) -> list[tuple[int, int]]:
    """Daily (paid, allowed) with paid rounded down to a multiple of `step`."""
    allowed = rng.integers(1_000, 2_000, size=days) * step
    shares = rng.uniform(*ratios, size=days)
    return [(int(a * r) // step * step, int(a)) for a, r in zip(allowed, shares, strict=True)]


@pytest.mark.parametrize(("base_days", "cur_days"), [(180, 30), (120, 6), (5, 30), (12, 9)])
def test_payment_p_value_matches_scipy(base_days: int, cur_days: int) -> None:
    rng = np.random.default_rng(base_days * 100 + cur_days)
    for trial in range(40):
        # Some trials with repeated ratios: ties switch scipy to its normal approximation.
        step = 50 if trial % 2 else 1
        baseline = _rounded_days(rng, base_days, (0.7, 0.9), step)
        current = _rounded_days(rng, cur_days, (0.65, 0.88), step)
        expected = stats.mannwhitneyu(
            [p / a for p, a in current], [p / a for p, a in baseline], alternative="less"
        ).pvalue
        result = payment_ratio_test(baseline, current)
        assert result.p_value == pytest.approx(float(expected), rel=1e-9, abs=1e-300)


def test_nothing_allowed_gives_a_zero_ratio() -> None:
    result = payment_ratio_test([(0, 0)] * 5, [])
    assert (result.baseline_ratio, result.current_ratio, result.drop) == (0.0, 0.0, 0.0)
    assert result.p_value == 1.0


# --- Denial-reason mix ------------------------------------------------------------------------


def test_identical_mixes_are_zero_distance_apart() -> None:
    mix = {"CO-16": 40, "CO-197": 25, "CO-50": 10}
    result = denial_reason_mix_test(mix, {code: 2 * n for code, n in mix.items()})
    assert result.js_distance == 0.0
    assert result.p_value == pytest.approx(1.0)
    assert result.shifts == []


def test_disjoint_mixes_are_one_apart() -> None:
    result = denial_reason_mix_test({"CO-16": 30, "CO-50": 20}, {"CO-197": 25, "CO-29": 15})
    assert result.js_distance == pytest.approx(1.0)
    assert result.p_value < 1e-10
    assert [code for code, _, _ in result.shifts] == ["CO-197", "CO-29"]


def test_shifts_name_the_code_that_grew_most_first() -> None:
    baseline = {"CO-16": 500, "CO-197": 300, "CO-50": 200}
    current = {"CO-16": 200, "CO-197": 600, "CO-50": 250}
    result = denial_reason_mix_test(baseline, current)
    assert result.shifts[0] == ("CO-197", 0.3, pytest.approx(600 / 1050))
    assert [code for code, _, _ in result.shifts] == ["CO-197", "CO-50"]
    assert all(after > before for _, before, after in result.shifts)
    assert result.p_value < 1e-10
    assert 0.0 < result.js_distance < 1.0


def test_the_long_tail_is_folded_into_other() -> None:
    baseline = {f"CO-{n}": 100 - n for n in range(1, 21)}
    current = {**baseline, "CO-5": 400}
    result = denial_reason_mix_test(baseline, current, top=4)
    grown = [code for code, _, _ in result.shifts]
    assert grown == ["CO-5"]
    # A tail code that rises enough joins the top codes and is named.
    risen = denial_reason_mix_test(baseline, {**baseline, "CO-20": 400}, top=4)
    assert [code for code, _, _ in risen.shifts] == ["CO-20"]
    # One that stays in the tail is tested as part of OTHER, and named where OTHER grew.
    tail_grew = denial_reason_mix_test(baseline, {**baseline, "CO-20": 110}, top=3)
    assert [code for code, _, _ in tail_grew.shifts] == ["CO-20"]
    (shift,) = tail_grew.shifts
    assert shift[1] == pytest.approx(80 / sum(baseline.values()))
    assert shift[2] == pytest.approx(110 / (sum(baseline.values()) + 30))


@pytest.mark.parametrize(
    ("baseline", "current"),
    [({}, {}), ({"CO-16": 5}, {}), ({}, {"CO-16": 5}), ({"CO-16": 5}, {"CO-16": 9})],
)
def test_too_little_to_compare_gives_no_evidence(
    baseline: dict[str, int], current: dict[str, int]
) -> None:
    result = denial_reason_mix_test(baseline, current)
    assert (result.p_value, result.js_distance, result.shifts) == (1.0, 0.0, [])


def test_mix_p_value_and_distance_match_scipy() -> None:
    rng = np.random.default_rng(5)
    for codes in (2, 3, 5, 8, 8, 8):
        names = [f"CO-{n}" for n in range(codes)]
        baseline = {c: int(n) for c, n in zip(names, rng.integers(1, 300, codes), strict=True)}
        current = {c: int(n) for c, n in zip(names, rng.integers(1, 100, codes), strict=True)}
        base = np.array([baseline[c] for c in names])
        cur = np.array([current[c] for c in names])
        result = denial_reason_mix_test(baseline, current)
        expected = stats.chi2_contingency(np.vstack([base, cur])).pvalue
        assert result.p_value == pytest.approx(float(expected), rel=1e-9, abs=1e-300)
        expected_js = distance.jensenshannon(base / base.sum(), cur / cur.sum(), base=2)
        assert result.js_distance == pytest.approx(float(expected_js), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("named_other", [False, True])
def test_a_folded_mix_p_value_matches_scipy_on_the_folded_table(named_other: bool) -> None:
    """Past the top codes, the tail is one OTHER column (a code named OTHER joins it)."""
    rng = np.random.default_rng(9)
    names = [f"CO-{n}" for n in range(20)] + ([OTHER] if named_other else [])
    for top in (1, 3, 4, 8):
        baseline = {c: int(n) for c, n in zip(names, rng.integers(0, 300, len(names)), strict=True)}
        current = {c: int(n) for c, n in zip(names, rng.integers(0, 100, len(names)), strict=True)}
        combined = {c: baseline[c] + current[c] for c in names if baseline[c] + current[c]}
        ranked = sorted(combined, key=lambda c: (-combined[c], c))
        kept = [c for c in ranked[:top] if c != OTHER]
        tail = [c for c in names if c not in kept]
        table = np.array(
            [[mix[c] for c in kept] + [sum(mix[c] for c in tail)] for mix in (baseline, current)]
        )
        expected = stats.chi2_contingency(table).pvalue
        result = denial_reason_mix_test(baseline, current, top=top)
        assert result.p_value == pytest.approx(float(expected), rel=1e-9, abs=1e-300)


def test_each_test_gives_every_row_of_a_batch_what_it_gives_that_row_alone() -> None:
    """A run tests all its cells in one call per metric: no row changes another's result."""
    rng = np.random.default_rng(21)
    rows = 40
    # Denial rate: Fisher, with empty windows and zero counts among the rows.
    totals = rng.integers(0, 400, (2, rows))
    totals[:, :3] = [[0, 5, 0], [7, 0, 0]]
    events = rng.integers(0, totals + 1)
    batch = fisher_greater(events[0], totals[0], events[1], totals[1])
    alone = [
        denial_rate_test(*counts).p_value
        for counts in np.stack((events[0], totals[0], events[1], totals[1]), axis=1).tolist()
    ]
    assert batch.tolist() == pytest.approx(alone, rel=1e-12, abs=1e-300)
    # Days to decision: histograms over shared columns, some empty, one on a single value.
    counts = rng.integers(0, 6, (2, rows, 30)) * (rng.random((2, rows, 30)) < 0.4)
    counts[0, 0] = 0
    counts[:, 1] = 0
    counts[:, 1, 7] = 5
    p_batch = mann_whitney_greater_rows(counts[0], counts[1])[1]
    for row in range(rows):
        base, cur = ({int(v): int(n) for v, n in enumerate(c[row]) if n} for c in counts)
        assert p_batch[row] == pytest.approx(
            decision_days_test(base, cur).p_value, rel=1e-12, abs=1e-300
        )
    # Payment ratios: groups of different sizes, ties, and small samples scipy solves exactly.
    sizes = rng.integers(0, 30, (rows, 2))
    sizes[:4] = [[5, 4], [9, 2], [0, 6], [3, 3]]
    values, group, is_current = [], [], []
    for row, (base_days, cur_days) in enumerate(sizes.tolist()):
        for current, days in ((False, base_days), (True, cur_days)):
            ratios = rng.choice([0.5, 0.7, 0.8], days) if row % 3 == 0 else rng.random(days)
            values += ratios.tolist()
            group += [row] * days
            is_current += [current] * days
    p_groups = mann_whitney_less_groups(
        np.array(values), np.array(group), np.array(is_current), rows
    )
    for row in range(rows):
        mine = np.array(group) == row
        base = np.array(values)[mine & ~np.array(is_current)]
        cur = np.array(values)[mine & np.array(is_current)]
        if min(base.size, cur.size) == 0:
            assert p_groups[row] == 1.0
            continue
        expected = stats.mannwhitneyu(cur, base, alternative="less").pvalue
        assert p_groups[row] == pytest.approx(float(expected), rel=1e-9, abs=1e-300)
    # Denial-reason mixes: many codes, some rows with one code or an empty window.
    names = [f"CO-{n:02d}" for n in range(15)]
    mixes = rng.integers(0, 50, (2, rows, 15)) * (rng.random((2, rows, 15)) < 0.5)
    mixes[1, 0] = 0
    mixes[:, 1] = 0
    mixes[:, 1, 3] = 9
    p_mix = mix_p_values(mixes[0], mixes[1], names, top=5)
    for row in range(rows):
        base, cur = ({c: int(n) for c, n in zip(names, m[row], strict=True) if n} for m in mixes)
        assert p_mix[row] == pytest.approx(
            denial_reason_mix_test(base, cur, top=5).p_value, rel=1e-12, abs=1e-300
        )


def test_negative_reason_counts_and_an_empty_top_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        denial_reason_mix_test({"CO-16": -1}, {"CO-16": 3})
    with pytest.raises(ValueError, match="top must be at least 1"):
        denial_reason_mix_test({"CO-16": 1}, {"CO-16": 3}, top=0)


# --- Benjamini–Hochberg -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_values", "q_values"),
    [
        # Sorted 0.005, 0.01, 0.03, 0.04, 0.5 → ×5/k: 0.025, 0.025, 0.05, 0.05, 0.5.
        ([0.01, 0.04, 0.03, 0.005, 0.5], [0.025, 0.05, 0.05, 0.025, 0.5]),
        # Sorted 0.01, 0.03, 0.031, 0.04, 0.9 → ×5/k: 0.05, 0.075, 0.0517, 0.05, 0.9; the step-up
        # minimum from the top brings the 2nd and 3rd down to 0.05.
        ([0.04, 0.01, 0.03, 0.031, 0.9], [0.05, 0.05, 0.05, 0.05, 0.9]),
        ([0.2], [0.2]),
        ([1.0, 1.0], [1.0, 1.0]),
        ([], []),
    ],
)
def test_benjamini_hochberg_reference_values(p_values: list[float], q_values: list[float]) -> None:
    assert benjamini_hochberg(p_values) == pytest.approx(q_values, rel=1e-12)


@given(st.lists(st.floats(0.0, 1.0), max_size=60))
def test_q_values_are_monotone_bounded_and_never_below_p(p_values: list[float]) -> None:
    q_values = benjamini_hochberg(p_values)
    assert len(q_values) == len(p_values)
    for p, q in zip(p_values, q_values, strict=True):
        assert p <= q <= 1.0
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    ranked = [q_values[i] for i in order]
    assert ranked == sorted(ranked)


# --- Properties: any non-negative input gives a result, p-values are probabilities -----------

counts = st.integers(0, 10**6)
histograms = st.dictionaries(st.integers(0, 400), st.integers(0, 10**5), max_size=30)
payment_days = st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), max_size=40)
reason_mixes = st.dictionaries(st.sampled_from([f"CO-{n}" for n in range(30)]), counts)


def assert_probability(p: float) -> None:
    assert 0.0 <= p <= 1.0


@given(counts, counts, counts, counts)
def test_denial_rate_test_takes_any_counts(a: int, b: int, c: int, d: int) -> None:
    result = denial_rate_test(min(a, b), max(a, b), min(c, d), max(c, d))
    assert_probability(result.p_value)
    assert result.baseline_interval.lower <= result.baseline_rate <= result.baseline_interval.upper


@given(histograms, histograms)
def test_decision_days_test_takes_any_histograms(baseline: Histogram, current: Histogram) -> None:
    result = decision_days_test(baseline, current)
    assert_probability(result.p_value)
    assert result.shift_interval.lower <= result.shift <= result.shift_interval.upper


@given(payment_days, payment_days)
def test_payment_ratio_test_takes_any_days(
    baseline: list[tuple[int, int]], current: list[tuple[int, int]]
) -> None:
    result = payment_ratio_test(baseline, current)
    assert_probability(result.p_value)
    assert math.isfinite(result.drop)


@given(reason_mixes, reason_mixes, st.integers(1, 12))
def test_denial_reason_mix_test_takes_any_mixes(
    baseline: dict[str, int], current: dict[str, int], top: int
) -> None:
    result = denial_reason_mix_test(baseline, current, top)
    assert_probability(result.p_value)
    assert 0.0 <= result.js_distance <= 1.0
    growth = [after - before for _, before, after in result.shifts]
    assert growth == sorted(growth, reverse=True)
    assert all(g > 0 for g in growth)


def test_fisher_tails_cut_too_short_are_computed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Terms are built out from the mode only as far as they can matter; a row whose terms
    have not vanished where that stops is computed over its whole support instead."""
    rng = np.random.default_rng(3)
    tables = rng.integers(0, 60, (50, 4))
    tables[:, 1] += tables[:, 0]
    tables[:, 3] += tables[:, 2]
    expected = [
        stats.fisher_exact([[c, t - c], [b, s - b]], alternative="greater").pvalue
        for b, s, c, t in tables.tolist()
    ]
    monkeypatch.setattr(statistics_module, "TAIL_REACH", 0.01)
    found = fisher_greater(tables[:, 0], tables[:, 1], tables[:, 2], tables[:, 3])
    assert found.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_medians_and_quantiles_of_windows_without_a_single_value_are_zero() -> None:
    """A customer's first days: no decided claim in any window, so no value at all."""
    counts = np.zeros((3, 0), dtype=np.int64)
    values = np.zeros(0, dtype=np.int64)

    assert statistics_module.median_rows(counts, values).tolist() == [0.0, 0.0, 0.0]
    assert statistics_module.quantile_rows(counts, values, 0.75).tolist() == [0.0, 0.0, 0.0]

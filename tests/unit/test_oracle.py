"""The evaluation's oracle: a CUSUM that knows the effect, and its calibration to a false-alarm
rate."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from devtools import oracle

FIRST = dt.date(2024, 1, 1)
YEAR = oracle.REFERENCE_LAG_DAYS


def cell(
    decided: list[int] | np.ndarray,
    denied: list[int] | np.ndarray,
    days: list[list[int]] | None = None,
) -> oracle.DailyCell:
    """A cell from day-by-day counts; `days`: the days to decision of each day's claims."""
    per_day = days if days is not None else [[] for _ in decided]
    return oracle.DailyCell(
        FIRST,
        np.asarray(decided, dtype=np.int64),
        np.asarray(denied, dtype=np.int64),
        np.array([len(d) for d in per_day], dtype=np.int64),
        np.array([float(sum(d)) for d in per_day]),
        np.array([float(sum(x * x for x in d)) for d in per_day]),
    )


def test_a_day_adds_the_bernoulli_log_likelihood_ratio_against_last_years_rate() -> None:
    span = YEAR + 10
    decided = np.full(span, 100)
    denied = np.full(span, 10)  # 10 % a year earlier
    denied[YEAR + 5] = 20
    increments = oracle.denial_rate_increments(cell(decided, denied), factor=2.0)

    assert increments[YEAR + 5] == pytest.approx(20 * math.log(2) + 80 * math.log(0.8 / 0.9))
    assert increments[YEAR + 6] == pytest.approx(10 * math.log(2) + 90 * math.log(0.8 / 0.9))
    # A day with last year's rate speaks against the change; no year-ago days, no evidence.
    assert increments[YEAR + 6] < 0
    assert not increments[: YEAR - oracle.REFERENCE_HALF_WIDTH].any()


def test_decision_days_move_the_statistic_towards_the_shift_only_when_later() -> None:
    rng = np.random.default_rng(1)
    span = YEAR + 60
    days = [list(rng.integers(10, 21, size=20)) for _ in range(span)]
    later = [d if i < YEAR + 30 else [x + 5 for x in d] for i, d in enumerate(days)]
    increments = oracle.decision_days_increments(cell([20] * span, [0] * span, later), shift=5.0)

    assert increments[YEAR + 15 : YEAR + 30].mean() < 0 < increments[YEAR + 30 :].mean()


def test_the_cusum_alarms_at_its_threshold_and_starts_again_from_zero() -> None:
    increments = np.array([[1.0, 1.0, 1.0, -5.0, 3.0, -1.0, 2.0, 0.6]])

    fired = oracle.alarms(increments, threshold=2.5)

    assert np.flatnonzero(fired[0]).tolist() == [2, 4, 7]
    assert oracle.first_alarm(increments[0], 2.5, start=3) == 4
    assert oracle.first_alarm(increments[0], 10.0, start=0) is None


def test_calibration_finds_the_lowest_threshold_at_the_target_rate() -> None:
    rng = np.random.default_rng(7)
    # 40 cells a year, without change: noise drifting below zero, as LLRs do without it.
    increments = rng.normal(-0.2, 1.0, size=(40, 365))
    months = increments.size / oracle.DAYS_PER_MONTH

    for target in (0.5, 0.05, 0.005):
        found = oracle.calibrate(increments, target)
        assert found.alarms_per_cell_month <= target
        assert oracle.alarms_per_cell_month(increments, found.threshold * 0.999) > target
        assert found.cells == 40 and found.cell_months == pytest.approx(months)
    # Fewer alarms allowed, a higher threshold.
    thresholds = [oracle.calibrate(increments, t).threshold for t in (0.5, 0.05, 0.005)]
    assert thresholds == sorted(thresholds)
    never = oracle.calibrate(increments, 0.0)
    assert not oracle.alarms(increments, never.threshold).any()


def test_a_calibrated_oracle_finds_a_doubled_denial_rate_in_about_threshold_over_kl_days() -> None:
    rng = np.random.default_rng(3)
    span, start, claims = YEAR + 200, YEAR + 100, 40
    rate = np.where(np.arange(span) < start, 0.1, 0.2)
    denied = rng.binomial(claims, rate)
    increments = oracle.denial_rate_increments(cell([claims] * span, denied), factor=2.0)
    threshold = 8.0

    first = oracle.first_alarm(increments[YEAR:], threshold, start - YEAR)

    # Expected: threshold / (claims × KL(0.2 ‖ 0.1)) days, about 6.
    per_day = claims * (0.2 * math.log(2) + 0.8 * math.log(0.8 / 0.9))
    assert first is not None
    assert 0.3 * threshold / per_day <= first - (start - YEAR) <= 3 * threshold / per_day

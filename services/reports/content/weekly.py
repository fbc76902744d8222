"""A payer's period week by week against its baseline, with the band the baseline allows.

The baseline is the BASELINE_DAYS (13 weeks) before the period. Weeks are ISO weeks (Monday
to Sunday), the first and last cut to the period. Each week's value is drawn against a band
around the baseline value whose width follows the week's volume, so a quiet week's wander
stays inside it and a busy week's real change does not:
- denial rate (denied ÷ decided): baseline rate p ± 1.96 √(p(1−p)/n), n the week's decided
  claims (the normal approximation of a binomial proportion);
- median days to decision: the baseline's days-to-decision quantiles at ½ ∓ 0.98/√n, n the
  week's claims with both dates (the distribution-free interval of a median of n draws from
  the baseline);
- payment ratio ((paid + patient responsibility) ÷ allowed, what the payer settles, as drift
  defines it): baseline ratio ± 1.96 s √(ā/A), s the allowed-weighted spread of the
  baseline's daily ratios, ā the baseline's allowed dollars a day and A the week's: the
  spread of a day scaled to the week's dollars.
A week without claims has no value and no band. Pure: no gRPC.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from services.drift.series import CellSeries, Totals, Window
from services.drift.statistics import Histogram
from services.drift.summaries import Metrics

BASELINE_DAYS = 91
Z = 1.96


@dataclass(frozen=True)
class Point:
    """A week's value of one metric and the baseline's band for that week's volume."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Week:
    start: dt.date
    end: dt.date
    claims: int
    denied: int
    denial_rate: Point
    decision_days: Point
    payment_ratio: Point

    @property
    def label(self) -> str:
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class PayerFigures:
    payer: str
    period: Metrics
    baseline: Metrics
    weeks: list[Week]

    @property
    def has_claims(self) -> bool:
        return self.period.claims > 0


def baseline_window(period: Window) -> Window:
    return Window(
        period.start - dt.timedelta(days=BASELINE_DAYS), period.start - dt.timedelta(days=1)
    )


def weeks_of(period: Window) -> list[Window]:
    """The ISO weeks of the period, oldest first, the first and last cut to it."""
    weeks = []
    start = period.start
    while start <= period.end:
        sunday = start + dt.timedelta(days=6 - start.weekday())
        weeks.append(Window(start, min(sunday, period.end)))
        start = sunday + dt.timedelta(days=1)
    return weeks


def span_starts(period: Window) -> set[dt.date]:
    """The days the statistics' entries must be summed from for these windows to be whole."""
    return {baseline_window(period).start, *(week.start for week in weeks_of(period))}


def denial_band(rate: float, claims: int) -> tuple[float, float] | None:
    if claims <= 0:
        return None
    half = Z * math.sqrt(rate * (1 - rate) / claims)
    return max(0.0, rate - half), min(1.0, rate + half)


def quantile(histogram: Histogram, share: float) -> float:
    """The value with `share` (0–1) of the histogram's counts at or below it."""
    return histogram.order_statistic(
        min(histogram.total, max(1, math.ceil(share * histogram.total)))
    )


def median_band(baseline: Histogram, claims: int) -> tuple[float, float] | None:
    if claims <= 0 or baseline.total == 0:
        return None
    half = Z / 2 / math.sqrt(claims)
    return quantile(baseline, 0.5 - half), quantile(baseline, 0.5 + half)


@dataclass(frozen=True)
class RatioSpread:
    """The baseline's settled ratio, its allowed-weighted day-to-day spread, and its allowed
    cents a day."""

    ratio: float
    spread: float
    allowed_per_day: float

    @classmethod
    def of(cls, totals: Totals) -> RatioSpread | None:
        allowed = totals.daily_allowed.astype(np.float64)
        days = allowed > 0
        if int(days.sum()) < 2:
            return None
        settled = (totals.daily_paid + totals.daily_patient).astype(np.float64)
        ratios = settled[days] / allowed[days]
        weights = allowed[days]
        ratio = float(settled.sum() / allowed.sum())
        spread = math.sqrt(float(np.average((ratios - ratio) ** 2, weights=weights)))
        return cls(ratio, spread, float(weights.sum()) / int(days.sum()))

    def band(self, allowed_cents: int) -> tuple[float, float] | None:
        if allowed_cents <= 0:
            return None
        half = Z * self.spread * math.sqrt(self.allowed_per_day / allowed_cents)
        return self.ratio - half, self.ratio + half


def _point(value: float | None, band: tuple[float, float] | None) -> Point:
    return Point(value, *(band if band is not None else (None, None)))


def payer_figures(series: CellSeries, period: Window) -> PayerFigures:
    """One payer's (all code groups merged) period, baseline and weeks; `series` read with
    the entry spans of `span_starts(period)` from the baseline's start."""
    baseline_totals = series.totals(baseline_window(period))
    baseline = Metrics.of(baseline_totals)
    spread = RatioSpread.of(baseline_totals)
    weeks = []
    for window in weeks_of(period):
        totals = series.totals(window)
        metrics = Metrics.of(totals)
        with_dates = totals.decision_days.total
        weeks.append(
            Week(
                window.start,
                window.end,
                metrics.claims,
                metrics.denied,
                _point(
                    metrics.denial_rate if metrics.claims else None,
                    denial_band(baseline.denial_rate, metrics.claims) if baseline.claims else None,
                ),
                _point(
                    metrics.median_decision_days if with_dates else None,
                    median_band(baseline_totals.decision_days, with_dates),
                ),
                _point(
                    metrics.settled_ratio if metrics.allowed_cents else None,
                    spread.band(metrics.allowed_cents) if spread else None,
                ),
            )
        )
    return PayerFigures(series.payer, Metrics.of(series.totals(period)), baseline, weeks)

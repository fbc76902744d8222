"""Payer summaries: the numbers a dashboard shows per payer, from the daily statistics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from services.drift.detection import Windows, window_edges
from services.drift.series import CellSeries, Totals, Window, payer_series

WEEKS = 26
WEEK_END = dt.timedelta(days=6)  # Monday + 6 days: Sunday


@dataclass(frozen=True)
class Metrics:
    claims: int
    denied: int
    paid_cents: int
    allowed_cents: int
    denied_billed_cents: int
    median_decision_days: float

    @classmethod
    def of(cls, totals: Totals) -> Metrics:
        return cls(
            totals.decided,
            totals.denied,
            totals.paid_cents,
            totals.allowed_cents,
            totals.denied_billed_cents,
            totals.decision_days.median(),
        )

    @property
    def denial_rate(self) -> float:
        return self.denied / self.claims if self.claims else 0.0

    @property
    def paid_to_allowed_ratio(self) -> float:
        return self.paid_cents / self.allowed_cents if self.allowed_cents else 0.0


@dataclass
class PayerSummary:
    payer: str
    current: Metrics
    baseline: Metrics
    # (Monday of the week, metrics), oldest first, WEEKS of them ending with the as-of week.
    weekly: list[tuple[dt.date, Metrics]]


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _weeks(windows: Windows) -> list[Window]:
    """The WEEKS weeks shown, oldest first, the last one holding the end of the current
    window."""
    last_week = week_start(windows.current.end)
    return [
        Window(monday, monday + WEEK_END)
        for monday in (last_week - dt.timedelta(weeks=n) for n in range(WEEKS - 1, -1, -1))
    ]


def summary_span_starts(windows: Windows) -> set[dt.date]:
    """The spans the summaries may read their entries summed over: the weeks and windows."""
    return window_edges([windows.baseline, windows.current, *_weeks(windows)])


def summarize(series: Iterable[CellSeries], windows: Windows) -> list[PayerSummary]:
    """One summary per payer with days in the baseline, current window or the weeks shown,
    largest current volume first."""
    weeks = _weeks(windows)
    first = min(weeks[0].start, windows.baseline.start)
    summaries = [
        PayerSummary(
            payer,
            Metrics.of(one.totals(windows.current)),
            Metrics.of(one.totals(windows.baseline)),
            [(week.start, Metrics.of(one.totals(week))) for week in weeks],
        )
        for payer, one in payer_series(series).items()
        if one.has_days_in(first, windows.current.end)
    ]
    return sorted(summaries, key=lambda s: (-s.current.claims, s.payer))


def summary_start(windows: Windows) -> dt.date:
    """First day the summaries need: the baseline or the 26 weeks, whichever is earlier."""
    return min(windows.baseline.start, _weeks(windows)[0].start)

"""Payer summaries: the numbers a dashboard shows per payer, from the daily statistics."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.drift.detection import DayStat, Windows

WEEKS = 26


@dataclass
class Metrics:
    claims: int = 0
    denied: int = 0
    paid_cents: int = 0
    allowed_cents: int = 0
    denied_billed_cents: int = 0
    decision_days: Counter[int] = field(default_factory=Counter)

    def add(self, stat: DayStat) -> None:
        self.claims += stat.decided
        self.denied += stat.denied
        self.paid_cents += stat.paid_cents
        self.allowed_cents += stat.allowed_cents
        self.denied_billed_cents += stat.denied_billed_cents
        self.decision_days.update(stat.decision_days)

    @property
    def denial_rate(self) -> float:
        return self.denied / self.claims if self.claims else 0.0

    @property
    def paid_to_allowed_ratio(self) -> float:
        return self.paid_cents / self.allowed_cents if self.allowed_cents else 0.0

    @property
    def median_decision_days(self) -> float:
        return median(self.decision_days)


def median(histogram: Counter[int]) -> float:
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    middle, seen, values = total / 2, 0, sorted(histogram)
    for index, days in enumerate(values):
        seen += histogram[days]
        if seen > middle:
            return float(days)
        if seen == middle:
            return (days + values[index + 1]) / 2
    return float(values[-1])


@dataclass
class PayerSummary:
    payer: str
    current: Metrics
    baseline: Metrics
    # (Monday of the week, metrics), oldest first, WEEKS of them ending with the as-of week.
    weekly: list[tuple[dt.date, Metrics]]


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def summarize(stats: Iterable[DayStat], windows: Windows) -> list[PayerSummary]:
    """One summary per payer, largest current volume first."""
    last_week = week_start(windows.current.end)
    weeks = [last_week - dt.timedelta(weeks=n) for n in range(WEEKS - 1, -1, -1)]
    summaries: dict[str, PayerSummary] = {}
    for stat in stats:
        summary = summaries.get(stat.payer)
        if summary is None:
            summary = summaries[stat.payer] = PayerSummary(
                stat.payer, Metrics(), Metrics(), [(w, Metrics()) for w in weeks]
            )
        if stat.day in windows.current:
            summary.current.add(stat)
        elif stat.day in windows.baseline:
            summary.baseline.add(stat)
        index = (week_start(stat.day) - weeks[0]).days // 7
        if 0 <= index < WEEKS:
            summary.weekly[index][1].add(stat)
    return sorted(summaries.values(), key=lambda s: (-s.current.claims, s.payer))


def summary_start(windows: Windows) -> dt.date:
    """First day the summaries need: the baseline or the 26 weeks, whichever is earlier."""
    return min(
        windows.baseline.start, week_start(windows.current.end) - dt.timedelta(weeks=WEEKS - 1)
    )

"""Payer summaries: the numbers a dashboard shows per payer, from the daily statistics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from services.drift.config import DetectionConfig
from services.drift.detection import Windows, history_until, is_self_pay, window_edges
from services.drift.series import CellSeries, Totals, Window, listed, payer_series

WEEKS = 26
WEEK_END = dt.timedelta(days=6)  # Monday + 6 days: Sunday
# Patients paying this much more of the allowed amount (deductibles, coinsurance) is a
# season shown beside the payer, not a payer drift.
PATIENT_SEASON_POINTS = 0.05


@dataclass(frozen=True)
class Metrics:
    claims: int
    denied: int
    paid_cents: int
    allowed_cents: int
    denied_billed_cents: int
    median_decision_days: float
    patient_responsibility_cents: int = 0

    @classmethod
    def of(cls, totals: Totals) -> Metrics:
        return cls(
            totals.decided,
            totals.denied,
            totals.paid_cents,
            totals.allowed_cents,
            totals.denied_billed_cents,
            totals.decision_days.median(),
            totals.patient_responsibility_cents,
        )

    @property
    def denial_rate(self) -> float:
        return self.denied / self.claims if self.claims else 0.0

    @property
    def paid_to_allowed_ratio(self) -> float:
        return self.paid_cents / self.allowed_cents if self.allowed_cents else 0.0

    @property
    def patient_share(self) -> float:
        """The patients' share of the allowed amount (deductibles, coinsurance, copays)."""
        return self.patient_responsibility_cents / self.allowed_cents if self.allowed_cents else 0.0

    @property
    def settled_ratio(self) -> float:
        """What the payer settles (its payment and the patients' share) ÷ allowed."""
        return self.paid_to_allowed_ratio + self.patient_share


@dataclass
class PayerSummary:
    payer: str
    current: Metrics
    baseline: Metrics
    # (Monday of the week, metrics), oldest first, WEEKS of them ending with the as-of week.
    weekly: list[tuple[dt.date, Metrics]]
    # The first day detection may compare the payer, while its history does not cover a
    # baseline window yet ("not enough history yet"); None once it does, and for self-pay.
    compared_from: dt.date | None = None
    # The decided claims (current, baseline) below which detection does not compare a payer's
    # windows: nor does the season note (a share "up from 0%" of a baseline with no claims).
    min_claims: tuple[int, int] = (
        DetectionConfig.min_current_claims,
        DetectionConfig.min_baseline_claims,
    )

    @property
    def self_pay(self) -> bool:
        """The patients themselves, not an insurer: shown, never compared."""
        return is_self_pay(self.payer)

    @property
    def season(self) -> str:
        """What the season does to the payer's numbers, in words; "" when nothing shows, or
        either window has too few claims to say (detection's minimums)."""
        least_current, least_baseline = self.min_claims
        if self.current.claims < least_current or self.baseline.claims < least_baseline:
            return ""
        before, now = self.baseline.patient_share, self.current.patient_share
        if now - before < PATIENT_SEASON_POINTS:
            return ""
        settled = (
            "what the payer settles is unchanged, so this is no payer drift"
            if abs(self.current.settled_ratio - self.baseline.settled_ratio) < PATIENT_SEASON_POINTS
            else "what the payer settles changed too"
        )
        return (
            f"Deductible season: patients pay {now:.0%} of the allowed amount, up from "
            f"{before:.0%}; {settled}."
        )


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


def summarize(
    series: Iterable[CellSeries], windows: Windows, config: DetectionConfig | None = None
) -> list[PayerSummary]:
    """One summary per payer with days in the baseline, current window or the weeks shown,
    largest current volume first. With `config` (and `series` read from
    `detection.first_day_read`), each says from when detection compares it."""
    every = listed(series)
    weeks = _weeks(windows)
    first = min(weeks[0].start, windows.baseline.start)
    waiting = history_until(every, windows.current.end, config) if config else {}
    least = config or DetectionConfig()
    summaries = [
        PayerSummary(
            payer,
            Metrics.of(one.totals(windows.current)),
            Metrics.of(one.totals(windows.baseline)),
            [(week.start, Metrics.of(one.totals(week))) for week in weeks],
            None if is_self_pay(payer) else waiting.get(payer),
            (least.min_current_claims, least.min_baseline_claims),
        )
        for payer, one in payer_series(every).items()
        if one.has_days_in(first, windows.current.end)
    ]
    return sorted(summaries, key=lambda s: (-s.current.claims, s.payer))


def summary_start(windows: Windows) -> dt.date:
    """First day the summaries need: the baseline or the 26 weeks, whichever is earlier."""
    return min(windows.baseline.start, _weeks(windows)[0].start)

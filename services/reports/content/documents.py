"""The content of a PAYER_SCORECARD or DRIFT_SUMMARY, whatever its format: per payer, the
period's figures against the baseline week by week, the drift events of the period with
their evidence, and sentences a person reads. The PDF and the JSON document are written
from the same `Document`, so they always state the same numbers.

Only aggregates: no claim-level or patient data reaches a document.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.type import date_pb2

from runtime.messages import money_message
from runtime.words import counted
from services.drift.detection import is_self_pay
from services.drift.series import CellSeries, Window, payer_series
from services.drift.summaries import Metrics
from services.reports.content.spec import DRIFT_SUMMARY, ReportSpec
from services.reports.content.weekly import (
    BASELINE_DAYS,
    PayerFigures,
    Point,
    Week,
    baseline_window,
    payer_figures,
    weeks_of,
)
from upstream.drift.v1 import resources_pb2 as drift_resources_pb2
from upstream.reports.v1 import resources_pb2

DriftEvent = drift_resources_pb2.DriftEvent
DENIAL_RATE, DECISION_DAYS = drift_resources_pb2.DENIAL_RATE, drift_resources_pb2.DECISION_DAYS
PAYMENT_RATIO = drift_resources_pb2.PAYMENT_RATIO
CHARTED_METRICS = (DENIAL_RATE, DECISION_DAYS, PAYMENT_RATIO)
METRIC_TITLES: dict[int, str] = {
    DENIAL_RATE: "Denial rate",
    DECISION_DAYS: "Median days to decision",
    PAYMENT_RATIO: "Payment ratio",
    drift_resources_pb2.DENIAL_REASON_MIX: "Denial reasons",
}
BAND_NOTE = (
    f"The baseline is the {BASELINE_DAYS} days before the period. Each week is drawn against "
    "a band around the baseline value whose width follows that week's volume (95%): a "
    "week outside its band is unlikely to be chance."
)


def _day(stamp: timestamp_pb2.Timestamp) -> dt.date | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToDatetime(tzinfo=dt.UTC).date()


def first_seen(event: DriftEvent) -> dt.date | None:
    """The first day an event stands for: the day it was first detected, or the last day of
    the claims its evidence was measured on when that is earlier (a history uploaded after
    the fact has its drift when its claims were decided, not when they were uploaded)."""
    days = [
        day
        for day in (_day(event.first_detected_time), _date(event.current_window.end_date))
        if day is not None
    ]
    return min(days) if days else None


def _date(value: date_pb2.Date) -> dt.date | None:
    return dt.date(value.year, value.month, value.day) if value.year else None


@dataclass(frozen=True)
class PayerSection:
    figures: PayerFigures
    events: list[DriftEvent]  # the payer's events overlapping the period, first found first
    period: Window

    @property
    def payer(self) -> str:
        return self.figures.payer

    def opened(self) -> list[DriftEvent]:
        return [e for e in self.events if _in(first_seen(e), self.period)]

    def closed(self) -> list[DriftEvent]:
        return [e for e in self.events if _in(_day(e.end_time), self.period)]

    def open_at_end(self) -> list[DriftEvent]:
        """Events begun by the period's end and still ongoing when it ended."""
        return [
            e
            for e in self.events
            if (seen := first_seen(e)) is not None
            and seen <= self.period.end
            and ((end := _day(e.end_time)) is None or end > self.period.end)
        ]

    def dollars_at_stake_cents(self) -> int:
        return dollars_at_stake_cents(self.open_at_end())

    def summary(self) -> str:
        return payer_sentence(self.figures, self.open_at_end(), self.dollars_at_stake_cents())


def _in(day: dt.date | None, window: Window) -> bool:
    return day is not None and day in window


def _cents(event: DriftEvent) -> int:
    money = event.dollars_at_stake
    return money.units * 100 + money.nanos // 10_000_000


def dollars_at_stake_cents(events: Iterable[DriftEvent]) -> int:
    """The events' dollars at stake, each payer × metric counted once: a payer-level event
    covers its code groups' events of the same metric."""
    events = list(events)
    whole = {(e.payer, e.metric) for e in events if not e.code_group}
    return sum(_cents(e) for e in events if not e.code_group or (e.payer, e.metric) not in whole)


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def days(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def dollars(cents: int) -> str:
    return f"${cents / 100:,.0f}"


def _compared(now: float, before: float, text: str) -> str:
    if round(now, 3) == round(before, 3):
        return f"the same as the {text}"
    return f"{'up' if now > before else 'down'} from {text}"


def payer_sentence(figures: PayerFigures, open_events: Sequence[DriftEvent], at_stake: int) -> str:
    """One paragraph of the payer's period in words, from its numbers."""
    now, before = figures.period, figures.baseline
    if not now.claims:
        text = f"{figures.payer} decided no claims in the period."
    else:
        text = (
            f"{figures.payer} denied {percent(now.denial_rate)} of the {now.claims:,} claims "
            "it decided in the period"
        )
        if before.claims:
            text += (
                f", {_compared(now.denial_rate, before.denial_rate, percent(before.denial_rate))}"
                f" in the {BASELINE_DAYS} days before. Its median decision took "
                f"{days(now.median_decision_days)} days "
                f"({'baseline ' + days(before.median_decision_days)}), and it settled "
                f"{percent(now.settled_ratio)} of the allowed amount "
                f"(baseline {percent(before.settled_ratio)})."
            )
        else:
            text += (
                f"; with no claims decided in the {BASELINE_DAYS} days before, there is no "
                f"baseline to compare with. Its median decision took "
                f"{days(now.median_decision_days)} days, and it settled "
                f"{percent(now.settled_ratio)} of the allowed amount."
            )
    if open_events:
        count = len(open_events)
        text += (
            f" {counted(count, 'drift event')} open at the end of the period, "
            f"{dollars(at_stake)} at stake."
        )
    elif is_self_pay(figures.payer):
        text += " Self-pay, the patients themselves: not compared for drift."
    else:
        text += " No drift event open at the end of the period."
    return text


@dataclass(frozen=True)
class Document:
    spec: ReportSpec
    sections: list[PayerSection]

    @property
    def period(self) -> Window:
        return Window(self.spec.start_date, self.spec.end_date)

    @property
    def baseline(self) -> Window:
        return baseline_window(self.period)

    @property
    def title(self) -> str:
        return "Drift summary" if self.spec.kind == DRIFT_SUMMARY else "Payer scorecard"


def document(
    spec: ReportSpec, series: Iterable[CellSeries], events: Iterable[DriftEvent]
) -> Document:
    """The document of `spec` from the statistics (read from the baseline's start) and the
    events of the period. A scorecard has every payer with claims or events, busiest first;
    a drift summary the payers with events, most dollars at stake first."""
    period = Window(spec.start_date, spec.end_date)
    by_payer: dict[str, list[DriftEvent]] = {}
    for event in events:
        by_payer.setdefault(event.payer, []).append(event)
    merged = payer_series(series)
    payers = set(by_payer)
    if spec.kind != DRIFT_SUMMARY:
        payers |= {
            payer for payer, one in merged.items() if one.has_days_in(period.start, period.end)
        }
    sections = [
        PayerSection(
            payer_figures(merged[payer], period)
            if payer in merged
            else _without_claims(payer, period),
            by_payer.get(payer, []),
            period,
        )
        for payer in payers
    ]
    if spec.kind == DRIFT_SUMMARY:
        sections.sort(key=lambda s: (-s.dollars_at_stake_cents(), s.payer))
    else:
        sections.sort(key=lambda s: (-s.figures.period.claims, s.payer))
    return Document(spec, sections)


def _without_claims(payer: str, period: Window) -> PayerFigures:
    empty = Metrics(0, 0, 0, 0, 0, 0.0)
    nothing = Point(None, None, None)
    return PayerFigures(
        payer,
        empty,
        empty,
        [Week(w.start, w.end, 0, 0, nothing, nothing, nothing) for w in weeks_of(period)],
    )


# --- JSON ----------------------------------------------------------------------------------


def _metrics_json(metrics: Metrics) -> dict[str, Any]:
    return {
        "claims": metrics.claims,
        "deniedClaims": metrics.denied,
        "denialRate": metrics.denial_rate,
        "medianDecisionDays": metrics.median_decision_days,
        "paymentRatio": metrics.settled_ratio,
        "allowedAmount": _money_json(metrics.allowed_cents),
        "paidAmount": _money_json(metrics.paid_cents),
        "patientResponsibility": _money_json(metrics.patient_responsibility_cents),
    }


def _money_json(cents: int) -> dict[str, Any]:
    return json_format.MessageToDict(
        money_message(cents), always_print_fields_with_no_presence=True
    )


def _point_json(point: Point) -> dict[str, Any]:
    return {"value": point.value, "bandLow": point.low, "bandHigh": point.high}


def _week_json(week: Week) -> dict[str, Any]:
    return {
        "week": week.label,
        "startDate": week.start.isoformat(),
        "endDate": week.end.isoformat(),
        "claims": week.claims,
        "deniedClaims": week.denied,
        "denialRate": _point_json(week.denial_rate),
        "medianDecisionDays": _point_json(week.decision_days),
        "paymentRatio": _point_json(week.payment_ratio),
    }


def _names(events: Iterable[DriftEvent]) -> list[str]:
    return [e.name for e in events]


def _section_json(section: PayerSection) -> dict[str, Any]:
    figures = section.figures
    return {
        "payer": section.payer,
        "summary": section.summary(),
        "period": _metrics_json(figures.period),
        "baseline": _metrics_json(figures.baseline),
        "weeks": [_week_json(week) for week in figures.weeks],
        "dollarsAtStake": _money_json(section.dollars_at_stake_cents()),
        "eventsOpened": _names(section.opened()),
        "eventsClosed": _names(section.closed()),
        "eventsOpenAtEnd": _names(section.open_at_end()),
        "events": [json_format.MessageToDict(event) for event in section.events],
    }


def _window_json(window: Window) -> dict[str, str]:
    return {"startDate": window.start.isoformat(), "endDate": window.end.isoformat()}


def json_document(doc: Document) -> bytes:
    spec = doc.spec
    body = {
        "report": spec.name,
        "kind": resources_pb2.ReportKind.Name(spec.kind),
        "customer": spec.customer,
        "title": doc.title,
        "generateTime": spec.create_time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "period": _window_json(doc.period),
        "baselinePeriod": _window_json(doc.baseline),
        "payerFilter": list(spec.payers),
        "bands": BAND_NOTE,
        "dollarsAtStake": _money_json(
            sum(section.dollars_at_stake_cents() for section in doc.sections)
        ),
        "payers": [_section_json(section) for section in doc.sections],
    }
    return json.dumps(body, ensure_ascii=False, indent=1).encode()

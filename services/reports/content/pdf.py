"""A `Document` as a PDF a revenue-cycle director forwards: a title page, a table of the
payers, then a section per payer with its sentence, weekly charts and drift events with
their evidence; page numbers on every page.

Laid out with reportlab's platypus (pure-Python wheels, no system libraries, precise page
layout), charts from `charts`. Text is set in DejaVu Sans, the font matplotlib bundles, since
the PDF standard fonts lack glyphs such as ÷, ≥ and →.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import matplotlib
from google.protobuf import timestamp_pb2
from google.type import date_pb2
from PIL import Image as PILImage
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm, inch
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from services.reports.content.charts import Charts, chart_size
from services.reports.content.documents import (
    BAND_NOTE,
    CHARTED_METRICS,
    DECISION_DAYS,
    DENIAL_RATE,
    METRIC_TITLES,
    PAYMENT_RATIO,
    Document,
    DriftEvent,
    PayerSection,
    days,
    dollars,
    dollars_at_stake_cents,
    percent,
)
from services.reports.content.spec import DRIFT_SUMMARY
from services.reports.content.weekly import BASELINE_DAYS
from upstream.drift.v1 import resources_pb2 as drift_resources_pb2

# Binary streams: ASCII85 (for 7-bit mail of the 1990s) makes the file a quarter larger and
# is encoded in pure Python, the slowest step of a document with many charts.
rl_config.useA85 = 0

FONT, BOLD = "DejaVuSans", "DejaVuSans-Bold"
INK = colors.HexColor("#1a1a1a")
MUTED = colors.HexColor("#666666")
RULE = colors.HexColor("#c8d3df")
HEADER = colors.HexColor("#e8eef5")
MARGIN = 1.8 * cm


@functools.cache
def _fonts() -> None:
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(folder / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)


def _style(
    name: str, size: float, *, font: str = FONT, color: colors.Color = INK, space: float = 4
) -> ParagraphStyle:
    return ParagraphStyle(
        name, fontName=font, fontSize=size, leading=size * 1.3, textColor=color,
        spaceAfter=space, alignment=TA_LEFT,
    )  # fmt: skip


TITLE = _style("title", 26, font=BOLD, space=10)
SUBTITLE = _style("subtitle", 13, color=MUTED, space=18)
HEADING = _style("heading", 15, font=BOLD, space=6)
SUBHEADING = _style("subheading", 10.5, font=BOLD, space=3)
BODY = _style("body", 9.5)
SMALL = _style("small", 8, color=MUTED)
CELL = _style("cell", 8, space=0)
CELL_BOLD = _style("cell-bold", 8, font=BOLD, space=0)


def _text(value: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(value), style)


def _date(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


def _period(start: dt.date, end: dt.date) -> str:
    return f"{_date(start)} – {_date(end)}"


# Why an event ended, as its row in a document says it.
_END_REASONS = {
    drift_resources_pb2.DriftEvent.NO_LONGER_FOUND: "no longer found",
    drift_resources_pb2.DriftEvent.CLAIMS_REMOVED: "none of its claims are left",
}


def _ended(event: drift_resources_pb2.DriftEvent) -> str:
    if event.active:
        return ""
    reason = _END_REASONS.get(event.end_reason, "no longer found")
    return f", ended ({reason})"


def _table(
    rows: Sequence[Sequence[object]], widths: Sequence[float], *, header: bool = True
) -> Table:
    table = Table(
        [[_text(c, CELL) if isinstance(c, str) else c for c in row] for row in rows],
        colWidths=widths,
        repeatRows=1 if header else 0,
        hAlign="LEFT",
    )
    style = [
        ("FONTNAME", (0, 0), (-1, -1), FONT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), HEADER))
    table.setStyle(TableStyle(style))
    return table


def _value(metric: int, value: float) -> str:
    if metric in (DENIAL_RATE, PAYMENT_RATIO):
        return percent(value)
    if metric == DECISION_DAYS:
        return f"{days(value)} days"
    return "–"


def _day(stamp: timestamp_pb2.Timestamp) -> str:
    if not stamp.seconds:
        return "–"
    return _date(stamp.ToDatetime(tzinfo=dt.UTC).date())


def _calendar_day(day: date_pb2.Date) -> dt.date:
    return dt.date(day.year, day.month, day.day)


def _window(window: drift_resources_pb2.DateRange) -> str:
    if not window.start_date.year:
        return "–"
    return _period(_calendar_day(window.start_date), _calendar_day(window.end_date))


def _event(event: DriftEvent, width: float) -> Flowable:
    evidence = event.evidence
    severity = drift_resources_pb2.DriftEvent.Severity.Name(event.severity).title()
    state = drift_resources_pb2.DriftEvent.State.Name(event.state).title()
    where = f"{METRIC_TITLES.get(event.metric, 'Metric')}, " + (
        f"code group {event.code_group}" if event.code_group else "all codes"
    )
    before, now = evidence.baseline_value, evidence.current_value
    change = f"{_value(event.metric, before)} → {_value(event.metric, now)}"
    if evidence.HasField("seasonal_expected_value"):
        change += (
            f" (the season led to expect {_value(event.metric, evidence.seasonal_expected_value)})"
        )
    counts = f"{evidence.baseline_count:,} → {evidence.current_count:,} claims decided"
    if evidence.baseline_events or evidence.current_events:
        counts += f"; {evidence.baseline_events:,} → {evidence.current_events:,} denied"
    rows: list[list[object]] = [
        ["What", where],
        ["Severity, triage", f"{severity}, {state}" + _ended(event)],
        ["Baseline → current", change],
        ["Claims", counts],
        ["Test", f"{evidence.test}: p = {evidence.p_value:.2g}, q = {evidence.q_value:.2g}"],
        ["Dollars at stake", dollars(dollars_at_stake_cents([event]))],
        ["Windows", f"baseline {_window(event.baseline_window)}; "
                    f"current {_window(event.current_window)}"],
        ["Found", f"first {_day(event.first_detected_time)}, last {_day(event.last_seen_time)}"
         + (f", ended {_day(event.end_time)}" if event.end_time.seconds else "")
         + (f"; not tested since {_date(_calendar_day(event.untested_since))}, as no run"
            " since could compare it" if event.HasField("untested_since") else "")],
    ]  # fmt: skip
    if evidence.carc_codes_moved:
        rows.append(
            [
                "CARC codes moved",
                ", ".join(
                    f"{s.code} {percent(s.baseline_share)} → {percent(s.current_share)}"
                    for s in evidence.carc_codes_moved
                ),
            ]
        )
    table = _table(rows, [3.4 * cm, width - 3.4 * cm], header=False)
    return KeepTogether(
        [_text(event.summary or where, CELL_BOLD), Spacer(1, 2), table, Spacer(1, 8)]
    )


class _Picture(Flowable):
    """A chart's pixels, drawn at a size."""

    def __init__(self, image: PILImage.Image, width: float, height: float) -> None:
        super().__init__()
        self.image, self.width, self.height = image, width, height

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        self.canv.drawImage(ImageReader(self.image), 0, 0, self.width, self.height)


class _Pages:
    """Footer with the document's name and page numbers on every page."""

    def __init__(self, document: Document) -> None:
        spec = document.spec
        self.footer = (
            f"{document.title} · {spec.customer} · {_period(spec.start_date, spec.end_date)}"
        )

    def __call__(self, canvas: Canvas, template: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(MUTED)
        canvas.drawString(MARGIN, 1.0 * cm, self.footer)
        canvas.drawRightString(A4[0] - MARGIN, 1.0 * cm, f"Page {canvas.getPageNumber()}")
        canvas.restoreState()


def _title_page(document: Document) -> list[Flowable]:
    spec = document.spec
    payers = ", ".join(spec.payers) if spec.payers else "all payers"
    generated = spec.create_time.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC").lstrip("0")
    about = (
        "Drift events of the period by payer: what opened, what closed, the evidence behind "
        "each and the dollars at stake."
        if spec.kind == DRIFT_SUMMARY
        else "Each payer's denial rate, days to decision and payment ratio week by week "
        "against its baseline, with the drift events open at the end of the period."
    )
    facts = [
        ["Customer", spec.customer],
        ["Period", _period(spec.start_date, spec.end_date)],
        ["Baseline", f"{_period(document.baseline.start, document.baseline.end)} "
                     f"({BASELINE_DAYS} days)"],
        ["Payers", payers],
        ["Generated", generated],
    ]  # fmt: skip
    return [
        Spacer(1, 5 * cm),
        _text(document.title, TITLE),
        _text(f"{spec.customer} · {_period(spec.start_date, spec.end_date)}", SUBTITLE),
        _table(facts, [3.5 * cm, 12 * cm], header=False),
        Spacer(1, 1 * cm),
        _text(about),
        _text(BAND_NOTE + " The payment ratio is what the payer settles (its payment plus "
              "the patient responsibility it assigns) ÷ the allowed amount.", SMALL),
        PageBreak(),
    ]  # fmt: skip


def _compare(now: str, before: str, has_baseline: bool) -> str:
    return f"{now} ({before})" if has_baseline else now


def _summary_table(document: Document, width: float) -> list[Flowable]:
    if document.spec.kind == DRIFT_SUMMARY:
        rows: list[list[object]] = [
            ["Payer", "Opened", "Closed", "Open at end", "Dollars at stake"]
        ]
        for s in document.sections:
            counts = (len(s.opened()), len(s.closed()), len(s.open_at_end()))
            rows.append([s.payer, *map(str, counts), dollars(s.dollars_at_stake_cents())])
        widths = [width - 4 * 2.6 * cm, *[2.6 * cm] * 4]
        heading = "Events by payer"
    else:
        rows = [["Payer", "Claims", "Denial rate (baseline)", "Median days (baseline)",
                 "Payment ratio (baseline)", "Open events", "At stake"]]  # fmt: skip
        for s in document.sections:
            now, before, has = s.figures.period, s.figures.baseline, s.figures.baseline.claims > 0
            rows.append([
                s.payer,
                f"{now.claims:,}",
                _compare(percent(now.denial_rate), percent(before.denial_rate), has),
                _compare(days(now.median_decision_days), days(before.median_decision_days), has),
                _compare(percent(now.settled_ratio), percent(before.settled_ratio), has),
                str(len(s.open_at_end())),
                dollars(s.dollars_at_stake_cents()),
            ])  # fmt: skip
        widths = [width - 1.6 * cm - 3 * 2.7 * cm - 1.5 * cm - 2.0 * cm,
                  1.6 * cm, 2.7 * cm, 2.7 * cm, 2.7 * cm, 1.5 * cm, 2.0 * cm]  # fmt: skip
        heading = "Payers"
    flow: list[Flowable] = [_text(heading, HEADING)]
    if len(rows) == 1:
        flow.append(_text("Nothing to report: no payer had claims or drift events in the period."
                          if document.spec.kind != DRIFT_SUMMARY
                          else "No drift event was open during the period."))  # fmt: skip
    else:
        flow.append(_table(rows, widths))
        total = sum(s.dollars_at_stake_cents() for s in document.sections)
        flow.append(Spacer(1, 4))
        flow.append(
            _text(
                f"Dollars at stake in the events open at the end of the period: {dollars(total)}.",
                SMALL,
            )
        )
    flow.append(PageBreak())
    return flow


def _chart(charts: Charts, section: PayerSection, metrics: Sequence[int], width: float) -> Flowable:
    baseline = section.figures.baseline
    centers: dict[int, float | None] = {
        DENIAL_RATE: baseline.denial_rate if baseline.claims else None,
        DECISION_DAYS: baseline.median_decision_days if baseline.claims else None,
        PAYMENT_RATIO: baseline.settled_ratio if baseline.allowed_cents else None,
    }
    image = charts.weekly(section.figures.weeks, centers, metrics)
    inches_wide, inches_high = chart_size(len(metrics))
    scale = min(1.0, width / (inches_wide * inch))
    return _Picture(image, inches_wide * inch * scale, inches_high * inch * scale)


def _section(
    document: Document, section: PayerSection, charts: Charts, width: float
) -> list[Flowable]:
    flow: list[Flowable] = [_text(section.payer, HEADING), _text(section.summary())]
    if document.spec.kind == DRIFT_SUMMARY:
        metrics = [m for m in CHARTED_METRICS if any(e.metric == m for e in section.events)]
        groups = [
            ("Opened in the period", section.opened()),
            ("Closed in the period", [e for e in section.closed() if e not in section.opened()]),
            ("Open before the period and still open after it",
             [e for e in section.open_at_end() if e not in section.opened()]),
        ]  # fmt: skip
    else:
        metrics = list(CHARTED_METRICS)
        groups = [("Drift events open at the end of the period", section.open_at_end())]
    if metrics and section.figures.has_claims:
        flow.append(_chart(charts, section, metrics, width))
    for title, events in groups:
        if not events:
            continue
        at_stake = dollars(dollars_at_stake_cents(events))
        flow.append(_text(f"{title} ({len(events)}, {at_stake} at stake)", SUBHEADING))
        flow.extend(_event(event, width) for event in events)
    flow.append(PageBreak())
    return flow


def render(document: Document) -> bytes:
    """The PDF of `document` (CPU-bound: callers run it in a worker thread)."""
    _fonts()
    out = io.BytesIO()
    spec = document.spec
    template = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"{document.title}: {spec.customer}, {_period(spec.start_date, spec.end_date)}",
        author="Upstream",
        subject=spec.name,
        creator="Upstream reports",
    )
    width = A4[0] - 2 * MARGIN
    charts = Charts(document.sections[0].figures.weeks if document.sections else [])
    story = _title_page(document) + _summary_table(document, width)
    for section in document.sections:
        story.extend(_section(document, section, charts, width))
    if isinstance(story[-1], PageBreak):
        story.pop()
    pages = _Pages(document)
    template.build(story, onFirstPage=pages, onLaterPages=pages)
    return out.getvalue()

"""What an alert says: a subject, plain text, an HTML alternative and a Slack message
(`{"text", "blocks"}`), from the drift events it tells of or the webhook it reports
disabled. Plain Python, no I/O.

A message carries an event's summary line, its numbers (metric, baseline → current, the
dollars at stake, severity, since when) and a link to it; never claim-level data, nor the
triage note people wrote.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from runtime.code_groups import group_words
from runtime.words import counted
from upstream.drift.v1 import resources_pb2 as drift_resources

SUBJECT_PREFIX = "[Upstream]"
MAX_SUBJECT_CHARS = 200
MAX_SUMMARY_CHARS = 500
METRIC_NAMES = {
    "DENIAL_RATE": "denial rate",
    "DECISION_DAYS": "days to decision",
    "PAYMENT_RATIO": "payment ratio (settled ÷ allowed)",
    "DENIAL_REASON_MIX": "denial-reason mix",
}


@dataclass(frozen=True)
class AlertMessage:
    subject: str
    text: str
    html: str
    slack: dict[str, Any]


@dataclass(frozen=True)
class EventChange:
    """A drift event as a change left it: opened, escalated (its severity rose) or ended."""

    event: drift_resources.DriftEvent
    escalated: bool

    @property
    def ended(self) -> bool:
        return not self.event.active


# Why an event ended, as an alert says it.
ENDED_BECAUSE = {
    drift_resources.DriftEvent.NO_LONGER_FOUND: "a run compared it again and no longer found "
    "the drift",
    drift_resources.DriftEvent.CLAIMS_REMOVED: "none of its claims are left (the uploads that "
    "held them were deleted, or the payer's name was mapped to another payer)",
}
NO_LONGER_FOUND = drift_resources.DriftEvent.NO_LONGER_FOUND
# The same, as a subject says it.
ENDED_SHORT = {
    NO_LONGER_FOUND: "no longer found",
    drift_resources.DriftEvent.CLAIMS_REMOVED: "its claims are gone",
}


def drift_event_alert(change: EventChange, base_url: str) -> AlertMessage:
    """The alert of one drift event change."""
    event = change.event
    severity = _severity(event)
    headline = _one_line(event.summary, MAX_SUMMARY_CHARS)
    if change.ended:
        # The summary was written while the drift lasted: the subject names what ended and
        # why, and the message quotes the summary as what it was.
        short = ENDED_SHORT.get(event.end_reason, ENDED_SHORT[NO_LONGER_FOUND])
        subject = _subject(f"{severity} drift ended: {_cell_words(event)} ({short})")
        headline = f"Ended: {_why_ended(event)}. It was: {headline}"
    else:
        what = "escalated to" if change.escalated else "opened,"
        subject = _subject(f"{severity} drift {what} {_one_line(event.summary)}")
    facts = _facts(event)
    link = event_link(event.name, base_url)
    text = "\n".join(
        [
            headline,
            "",
            *(f"{label}: {value}" for label, value in facts),
            "",
            f"Open it: {link}",
            "",
        ]
    )
    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in facts
    )
    body = (
        f"<p><strong>{html.escape(headline)}</strong></p>"
        f"<table>{rows}</table>"
        f"<p><a href='{html.escape(link, quote=True)}'>Open the drift event</a></p>"
    )
    slack = {
        "text": f"{subject} {link}",
        "blocks": [
            _slack_section(f"*{_mrkdwn(headline)}*"),
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_mrkdwn(label)}*\n{_mrkdwn(value)}"}
                    for label, value in facts
                ],
            },
            _slack_section(f"<{_mrkdwn(link)}|Open the drift event>"),
        ],
    }
    return AlertMessage(subject, text, _html_document(subject, body), slack)


def digest_alert(
    listed: Sequence[EventChange], total: int, day: dt.date, customer: str, base_url: str
) -> AlertMessage:
    """The daily digest of `total` changes, of which `listed` (most severe first) are shown."""
    count = counted(total, "drift event change")
    since = (
        "opened, escalated or ended"
        if any(change.ended for change in listed)
        else "opened or escalated"
    )
    subject = _subject(f"Daily drift digest, {day.isoformat()}: {count}")
    lines = [_digest_line(change) for change in listed]
    links = [event_link(change.event.name, base_url) for change in listed]
    rest = total - len(listed)
    all_events = (
        f"{base_url}/v1/customers/{quote(customer, safe='')}/driftEvents?filter=active%20%3D%20true"
    )
    more = f"and {rest} more: {all_events}" if rest > 0 else f"All active events: {all_events}"
    text = "\n".join(
        [
            f"{count} {since} since the last digest, most severe first.",
            "",
            *(f"- {line}\n  {link}" for line, link in zip(lines, links, strict=True)),
            "",
            more,
            "",
        ]
    )
    items = "".join(
        f"<li>{html.escape(line)} <a href='{html.escape(link, quote=True)}'>open</a></li>"
        for line, link in zip(lines, links, strict=True)
    )
    body = (
        f"<p>{html.escape(count)} {since} since the last digest, most severe "
        f"first.</p><ul>{items}</ul><p>{html.escape(more)}</p>"
    )
    slack = {
        "text": f"{subject} {all_events}",
        "blocks": [
            _slack_section(f"*{_mrkdwn(subject)}*"),
            *(
                _slack_section(f"{_mrkdwn(line)} <{_mrkdwn(link)}|open>")
                for line, link in zip(lines, links, strict=True)
            ),
            _slack_section(_mrkdwn(more)),
        ],
    }
    return AlertMessage(subject, text, _html_document(subject, body), slack)


def webhook_disabled_alert(
    webhook_name: str, display_name: str, host: str, reason: str, base_url: str
) -> AlertMessage:
    """The alert that the server disabled a webhook (whose URL has `host`), why, and how to
    enable it again."""
    shown = display_name or webhook_name.rsplit("/", 1)[-1]
    subject = _subject(f"Webhook disabled: {_one_line(shown)}")
    enable = (
        f"PATCH {base_url}/v1/{webhook_name}?updateMask=disabled with the body "
        '{"disabled": false} (UpdateWebhook)'
    )
    paragraphs = [
        f"Upstream stopped delivering events to the webhook {webhook_name} ({host}): "
        f"{_one_line(reason, MAX_SUMMARY_CHARS)}.",
        "Events that occur while it is disabled are not delivered later.",
        f"Once the endpoint answers again, enable the webhook: {enable}.",
    ]
    text = "\n\n".join(paragraphs) + "\n"
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    slack = {
        "text": f"{subject}: {paragraphs[0]}",
        "blocks": [_slack_section(_mrkdwn(p)) for p in paragraphs],
    }
    return AlertMessage(subject, text, _html_document(subject, body), slack)


def report_ready_alert(detail: Mapping[str, Any], base_url: str) -> AlertMessage:
    """The email that a scheduled report is ready, with the link that downloads it."""
    report = str(detail.get("report", ""))
    schedule = _one_line(str(detail.get("schedule_display_name", "")) or "A schedule")
    subject = _subject(f"Report ready: {schedule}, {detail.get('period', '')}")
    download = f"{base_url}/v1/{quote(report, safe='/')}:download"
    paragraphs = [
        f"{schedule} made {detail.get('file_name', 'a report')} "
        f"({detail.get('size_bytes', 0):,} bytes), covering {detail.get('period', '')}.",
        f"Download it (with an Upstream token) from {download} until "
        f"{detail.get('expire_date', 'it expires')}.",
    ]
    text = "\n\n".join(paragraphs) + "\n"
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    slack = {
        "text": f"{subject}: {paragraphs[0]}",
        "blocks": [_slack_section(_mrkdwn(p)) for p in paragraphs],
    }
    return AlertMessage(subject, text, _html_document(subject, body), slack)


def event_link(event_name: str, base_url: str) -> str:
    return f"{base_url}/v1/{quote(event_name, safe='/')}"


def _severity(event: drift_resources.DriftEvent) -> str:
    return drift_resources.DriftEvent.Severity.Name(event.severity)


def _digest_line(change: EventChange) -> str:
    event = change.event
    severity = _severity(event) + (
        " (ended)" if change.ended else " (escalated)" if change.escalated else ""
    )
    dollars = _dollars(event)
    return f"{severity}: {_one_line(event.summary, MAX_SUMMARY_CHARS)} ({dollars} at stake)"


def _facts(event: drift_resources.DriftEvent) -> list[tuple[str, str]]:
    metric = drift_resources.Metric.Name(event.metric)
    evidence = event.evidence
    facts = [
        ("Payer", event.payer),
        ("Code group", group_words(event.code_group) if event.code_group else "all codes"),
        ("Metric", METRIC_NAMES.get(metric, metric)),
    ]
    if metric != "DENIAL_REASON_MIX":
        baseline = _value(metric, evidence.baseline_value)
        current = _value(metric, evidence.current_value)
        facts.append(("Baseline → current", f"{baseline} → {current}"))
    if evidence.effect_unit:
        facts.append(("Change", f"{evidence.effect_size:+.3g} {evidence.effect_unit}"))
    facts.append(("Dollars at stake", _dollars(event)))
    facts.append(("Severity", _severity(event)))
    if event.HasField("first_detected_time"):
        since = event.first_detected_time.ToDatetime(tzinfo=dt.UTC).date().isoformat()
        facts.append(("Detected since", since))
    if not event.active:
        why = _why_ended(event)
        ended = (
            event.end_time.ToDatetime(tzinfo=dt.UTC).date().isoformat()
            if event.HasField("end_time")
            else ""
        )
        facts.append(("Ended", f"{ended}: {why}" if ended else why))
    window = event.current_window
    if window.HasField("start_date") and window.HasField("end_date"):
        start, end = window.start_date, window.end_date
        facts.append(
            (
                "Current window",
                f"{start.year:04d}-{start.month:02d}-{start.day:02d} to "
                f"{end.year:04d}-{end.month:02d}-{end.day:02d}",
            )
        )
    return facts


def _why_ended(event: drift_resources.DriftEvent) -> str:
    return ENDED_BECAUSE.get(event.end_reason, ENDED_BECAUSE[NO_LONGER_FOUND])


def _cell_words(event: drift_resources.DriftEvent) -> str:
    """`Aetna, evaluation and management, denial rate`: what an event is about."""
    metric = drift_resources.Metric.Name(event.metric)
    group = f", {group_words(event.code_group)}" if event.code_group else ""
    return f"{event.payer}{group}, {METRIC_NAMES.get(metric, metric)}"


def _value(metric: str, value: float) -> str:
    if metric == "DECISION_DAYS":
        return f"{value:.1f} days"
    return f"{value * 100:.1f}%"


def _dollars(event: drift_resources.DriftEvent) -> str:
    money = event.dollars_at_stake
    cents = money.units * 100 + money.nanos // 10_000_000
    return f"${cents // 100:,}"


def _one_line(text: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """`text` on one line (no header or markup can be smuggled through line breaks), cut to
    `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _subject(text: str) -> str:
    return _one_line(f"{SUBJECT_PREFIX} {text}")


def _mrkdwn(text: str) -> str:
    """Text as Slack shows it literally: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _html_document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )

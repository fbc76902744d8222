"""A customer's alert policy: its values and defaults, what makes a value unfit, which drift
event changes it alerts, and when its daily digest goes out. Plain Python, no I/O."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

# The contract's order of severities (upstream.drift.v1.DriftEvent.Severity numbers).
SEVERITY_RANKS = {"LOW": 1, "MEDIUM": 2, "HIGH": 3}
IMMEDIATE, DAILY_DIGEST = "IMMEDIATE", "DAILY_DIGEST"
MAX_EMAIL_RECIPIENTS = 50
MAX_SUPPRESSION_SECONDS = 90 * 86400
DEFAULT_SUPPRESSION_SECONDS = 7 * 86400
# The drift event changes (reports' EventType names) that can be alerted; closing only when
# the policy asks for it (`alert_when_ended`), of an event alerted before.
DRIFT_EVENT_OPENED, DRIFT_EVENT_UPDATED = "DRIFT_EVENT_OPENED", "DRIFT_EVENT_UPDATED"
DRIFT_EVENT_CLOSED = "DRIFT_EVENT_CLOSED"

# An address as people type it into a form (RFC 5321's dot-atom local part and a domain of
# LDH labels with a top-level label of letters); quoted local parts and IP literals are not.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"(?P<local>{_LOCAL})@(?P<domain>(?:{_LABEL}\.)+[A-Za-z]{{2,63}})")


@dataclass(frozen=True)
class PolicyValues:
    """What a policy says; the defaults are a customer's until it changes them."""

    email_recipients: tuple[str, ...] = ()
    slack_webhook_url: str = ""
    minimum_severity: str = "MEDIUM"
    suppression_window_seconds: int = DEFAULT_SUPPRESSION_SECONDS
    delivery_mode: str = IMMEDIATE
    digest_hour: int = 8
    time_zone: str = "UTC"
    disabled: bool = False
    alert_when_ended: bool = False

    @property
    def alerts_anyone(self) -> bool:
        return not self.disabled and bool(self.email_recipients or self.slack_webhook_url)


def email_problem(address: str) -> str | None:
    """Why `address` is not an email address alerts can go to (None: it is)."""
    if len(address) > 254:
        return "must be at most 254 characters"
    found = _EMAIL.fullmatch(address)
    if found is None:
        return "must be an email address such as name@example.com"
    if len(found["local"]) > 64:
        return "must have at most 64 characters before the @"
    return None


def time_zone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone (None: it is)."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"must be an IANA time zone such as America/Chicago, got {name!r}"
    return None


def value_problems(values: PolicyValues) -> list[tuple[str, str]]:
    """(field, why) for each value of `values` that is unfit; the Slack URL's reach is
    checked where its host can be resolved."""
    problems: list[tuple[str, str]] = []
    if len(values.email_recipients) > MAX_EMAIL_RECIPIENTS:
        problems.append(("email_recipients", f"must name at most {MAX_EMAIL_RECIPIENTS}"))
    seen: set[str] = set()
    for index, address in enumerate(values.email_recipients):
        problem = email_problem(address)
        if problem is None and address.lower() in seen:
            problem = "must not repeat an address"
        if problem is not None:
            problems.append((f"email_recipients[{index}]", problem))
        seen.add(address.lower())
    if not 0 <= values.suppression_window_seconds <= MAX_SUPPRESSION_SECONDS:
        problems.append(("suppression_window", "must be between 0 and 90 days"))
    if not 0 <= values.digest_hour <= 23:
        problems.append(("digest_hour", "must be between 0 and 23"))
    zone_problem = time_zone_problem(values.time_zone)
    if zone_problem is not None:
        problems.append(("time_zone", zone_problem))
    return problems


def is_alerted_change(change: str, escalated: bool, active: bool) -> bool:
    """Whether a drift event change may be alerted: an event opened, or one whose severity
    rose, while it is active."""
    return active and (
        change == DRIFT_EVENT_OPENED or (change == DRIFT_EVENT_UPDATED and escalated)
    )


def severity_rank(severity: str) -> int:
    return SEVERITY_RANKS.get(severity, 0)


def next_digest_time(now: dt.datetime, hour: int, time_zone: str) -> dt.datetime:
    """The first `hour`:00 in `time_zone` after `now`, in UTC. An hour a DST change skips is
    sent an hour later; one it repeats, the first time."""
    zone = zoneinfo.ZoneInfo(time_zone)
    day = now.astimezone(zone).date()
    while True:
        candidate = dt.datetime.combine(day, dt.time(hour), tzinfo=zone).astimezone(dt.UTC)
        if candidate > now:
            return candidate
        day += dt.timedelta(days=1)

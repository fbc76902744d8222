"""Drift events as the API states them, from what the drift schema stores."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from services.drift.server import event_message
from upstream.drift.v1.resources_pb2 import DriftEvent

DAY = dt.date(2026, 3, 1)
WHEN = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def _row(metric: str, active: bool = True, end_reason: str | None = None, **evidence: Any) -> Any:
    return SimpleNamespace(
        active=active, end_reason=end_reason,
        customer_id="acme", event_id="ev_1", payer="Aetna", code_group="", metric=metric,
        severity="HIGH", state="NEW", triage_note="", triaged_by="",
        dollars_at_stake_cents=123_45, summary="Aetna takes longer", first_run="r_1",
        last_run="r_1", version=1, triage_time=None, baseline_start=DAY, baseline_end=DAY,
        current_start=DAY, current_end=DAY, first_detected_time=WHEN, last_seen_time=WHEN,
        end_time=None, update_time=WHEN, untested_since=None,
        evidence={
            "baseline_count": 300, "current_count": 60, "baseline_events": 0,
            "current_events": 0, "baseline_value": 19.0, "current_value": 26.0,
            "effect_size": 6.0, "effect_unit": "days", "p_value": 1e-9, "q_value": 1e-8,
            "test": "one-sided Mann–Whitney U test, Hodges–Lehmann shift",
            "carc_shifts": [], "expected_value": None, **evidence,
        },
    )  # fmt: skip


SHIFT = {"lower": 5.0, "upper": 7.0, "level": 0.95}


def test_a_decision_time_events_interval_is_of_its_shift() -> None:
    event = event_message(
        _row("DECISION_DAYS", baseline_interval=None, current_interval=None, effect_interval=SHIFT)
    )
    assert (event.evidence.effect_interval.lower, event.evidence.effect_interval.upper) == (5, 7)
    assert not event.evidence.HasField("current_interval")


def test_a_decision_time_event_stored_before_effect_intervals_reads_as_one_stored_since() -> None:
    """Such events kept their shift's interval as the current value's: it is read as the
    shift's, where it belongs."""
    stored = event_message(_row("DECISION_DAYS", baseline_interval=None, current_interval=SHIFT))
    since = event_message(
        _row("DECISION_DAYS", baseline_interval=None, current_interval=None, effect_interval=SHIFT)
    )
    assert stored == since


def test_a_denial_rate_events_intervals_are_of_its_rates() -> None:
    rates = {"lower": 0.2, "upper": 0.3, "level": 0.95}
    event = event_message(
        _row("DENIAL_RATE", baseline_interval=rates, current_interval=rates, effect_interval=None)
    )
    assert event.evidence.current_interval.upper == 0.3
    assert not event.evidence.HasField("effect_interval")


def test_an_ended_event_says_why_and_one_ended_before_reasons_were_kept_was_no_longer_found() -> (
    None
):
    def reason(**row: Any) -> str:
        event = event_message(_row("DENIAL_RATE", **row))
        return DriftEvent.EndReason.Name(event.end_reason)

    assert reason(active=False, end_reason="CLAIMS_REMOVED") == "CLAIMS_REMOVED"
    assert reason(active=False, end_reason=None) == "NO_LONGER_FOUND"
    assert reason(active=True) == "END_REASON_UNSPECIFIED"

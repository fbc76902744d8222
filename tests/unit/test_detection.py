"""The detector as a whole: windows, volume minimums, roll-ups, floors, multiplicity."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from services.drift import detection, statistics
from services.drift import series as series_module
from services.drift.config import DetectionConfig
from services.drift.detection import (
    ALL_CODES,
    Detection,
    Finding,
    detect,
    first_day_read,
    span_starts_read,
    windows_for,
)
from services.drift.series import DayStat, PendingStat, ReadSeries, cell_series
from services.drift.summaries import summarize, summary_span_starts, summary_start
from tests.unit.series_reading import read

AS_OF = dt.date(2026, 6, 30)
CONFIG = DetectionConfig()
# The data begins with the baseline of the earliest window a finding must hold on: every
# cell's history covers its baselines, and there is no season (nothing a year back).
HISTORY_START = windows_for(
    AS_OF - dt.timedelta(days=detection.PERSISTENCE_DAYS), CONFIG
).baseline.start
BASELINE_DAYS = (windows_for(AS_OF, CONFIG).current.start - HISTORY_START).days


def detect_days(
    stats: list[DayStat], as_of: dt.date, config: DetectionConfig, **options: int
) -> Detection:
    return detect(cell_series(stats), as_of, config, **options)


def _days(window_start: dt.date, days: int) -> list[dt.date]:
    return [window_start + dt.timedelta(days=n) for n in range(days)]


def _stats(
    payer: str,
    code_group: str,
    *,
    per_day: int,
    denial_rate: float,
    decision_days: int = 15,
    paid_share: float = 0.8,
    start: dt.date,
    days: int,
    seed: int = 1,
) -> list[DayStat]:
    rng = random.Random(seed)
    stats = []
    for day in _days(start, days):
        denied = sum(rng.random() < denial_rate for _ in range(per_day))
        histogram: dict[int, int] = {}
        for _ in range(per_day):
            value = max(1, round(rng.gauss(decision_days, 3)))
            histogram[value] = histogram.get(value, 0) + 1
        stats.append(
            DayStat(
                payer=payer,
                code_group=code_group,
                day=day,
                decided=per_day,
                denied=denied,
                partially_denied=0,
                decision_days=histogram,
                billed_cents=per_day * 10_000,
                allowed_cents=per_day * 8_000,
                paid_cents=round(per_day * 8_000 * paid_share * rng.uniform(0.97, 1.03)),
                denied_billed_cents=denied * 10_000,
                carc_counts={"CO-50": denied} if denied else {},
            )
        )
    return stats


def _history(payer: str, group: str = "RADIOLOGY", **current: float) -> list[DayStat]:
    """The baseline window of steady behaviour, then the current window with the changes."""
    windows = windows_for(AS_OF, CONFIG)
    base = {"denial_rate": 0.10, "decision_days": 15, "paid_share": 0.8}
    baseline = _stats(
        payer,
        group,
        per_day=20,
        start=HISTORY_START,
        days=BASELINE_DAYS,
        **base,
    )
    now = {**base, **current}
    recent = _stats(payer, group, per_day=20, start=windows.current.start, days=30, seed=2, **now)
    return baseline + recent


def test_windows_are_the_30_days_to_as_of_and_the_180_before() -> None:
    windows = windows_for(AS_OF, CONFIG)
    assert (windows.current.start, windows.current.end) == (dt.date(2026, 6, 1), AS_OF)
    assert (windows.baseline.start, windows.baseline.end) == (
        dt.date(2025, 12, 3),
        dt.date(2026, 5, 31),
    )


def test_identical_behaviour_raises_nothing() -> None:
    detection = detect_days(_history("Aetna"), AS_OF, CONFIG)
    assert detection.findings == []
    assert detection.cells_tested == 1  # a payer's only group is its payer-level cell


def test_a_doubled_denial_rate_is_found_with_its_evidence() -> None:
    detection = detect_days(_history("Aetna", denial_rate=0.25), AS_OF, CONFIG)
    (finding,) = [f for f in detection.findings if f.metric == "DENIAL_RATE"]
    evidence = finding.evidence
    assert finding.cell.payer == "Aetna" and finding.cell.code_group == ALL_CODES
    # Measured since the change is estimated to have begun: the current window's first days.
    assert finding.since is not None
    began = windows_for(AS_OF, CONFIG).current.start
    assert began <= finding.since <= began + dt.timedelta(days=6)
    assert evidence.current_count == 20 * ((AS_OF - finding.since).days + 1)
    assert evidence.baseline_count == 3600
    assert evidence.current_value > 0.2 and evidence.baseline_value < 0.12
    assert evidence.q_value <= 0.10 and evidence.p_value < 1e-6
    assert evidence.baseline_interval is not None and evidence.current_interval is not None
    assert (
        evidence.current_interval.lower <= evidence.current_value <= evidence.current_interval.upper
    )
    assert finding.dollars_at_stake_cents > 0
    assert "Aetna now denies" in finding.summary


def test_slower_decisions_state_the_shifts_interval_not_the_medians() -> None:
    """The interval of a decision-time finding is of the shift (the effect, in days); the
    windows' medians have none."""
    detection = detect_days(_history("Aetna", decision_days=25), AS_OF, CONFIG)
    (finding,) = [f for f in detection.findings if f.metric == "DECISION_DAYS"]
    evidence = finding.evidence
    assert evidence.effect_unit == "days"
    assert evidence.effect_interval is not None
    assert evidence.effect_interval.lower <= evidence.effect_size <= evidence.effect_interval.upper
    assert evidence.effect_interval.upper < evidence.current_value  # not the median's
    assert (evidence.baseline_interval, evidence.current_interval) == (None, None)


@pytest.mark.parametrize(
    ("group", "said"),
    [
        ("EVALUATION_MANAGEMENT", "evaluation and management claims"),
        ("REVENUE_04", "revenue code 04xx claims"),
        ("LABORATORY", "laboratory claims"),
    ],
)
def test_a_code_groups_finding_names_the_group_as_people_say_it(group: str, said: str) -> None:
    history = _history("Aetna", "RADIOLOGY") + _history("Aetna", group, decision_days=25)
    detection = detect_days(history, AS_OF, CONFIG)
    (finding,) = [
        f for f in detection.findings if f.metric == "DECISION_DAYS" and f.cell.code_group == group
    ]
    assert f"to decide {said} (median" in finding.summary


@pytest.mark.parametrize("payer", ["SELF PAY", "Self-Pay", "Patient", "Uninsured", "Cash"])
def test_the_patients_themselves_are_shown_but_never_compared(payer: str) -> None:
    """Claims a patient pays (no insurer) change with the patients: no payer drift, so the
    self-pay payer is not compared, though its numbers are summarised and flagged so; an
    insurer beside it with the same change is found."""
    stats = [
        *_history(payer, paid_share=0.5, denial_rate=0.25),
        *_history("Aetna", denial_rate=0.25),
    ]
    found = detect_days(stats, AS_OF, CONFIG)
    assert {f.cell.payer for f in found.findings} == {"Aetna"}
    assert found.cells_tested == 1
    windows = windows_for(AS_OF, CONFIG)
    summaries = {s.payer: s for s in summarize(cell_series(stats), windows, CONFIG)}
    assert (summaries[payer].self_pay, summaries["Aetna"].self_pay) == (True, False)
    assert summaries[payer].current.claims == summaries["Aetna"].current.claims == 600
    # A name that holds one of those words is an insurer's.
    assert not detection.is_self_pay("Patient First Health Plan")
    assert not detection.is_self_pay("Cash Value Insurance Co")


def _patients_paying(stats: list[DayStat], since: dt.date, share: float) -> list[DayStat]:
    """`stats` with the patients paying `share` of the allowed amount from `since` on (1/10
    before), the payer paying the rest of its part: what it settles is unchanged."""
    changed = []
    for stat in stats:
        paying = share if stat.day >= since else 0.1
        patient = round(stat.allowed_cents * paying)
        changed.append(
            replace(
                stat,
                patient_responsibility_cents=patient,
                paid_cents=stat.paid_cents - patient + round(stat.allowed_cents * 0.1),
            )
        )
    return changed


def test_a_season_note_needs_enough_claims_in_both_windows() -> None:
    """Patients paying 40 % of the allowed amount in the current window against 10 % in the
    baseline is deductible season for a payer with a baseline; a payer without claims in
    the baseline (its first claims, or a later file past the others) has no season to
    speak of, nor one with fewer baseline claims than detection compares."""
    windows = windows_for(AS_OF, CONFIG)
    history = _patients_paying(_history("Aetna"), windows.current.start, 0.4)
    newcomer = [replace(s, payer="Newplan") for s in history if s.day >= windows.current.start]
    # Five days of baseline claims: 100, under the 150 detection asks for.
    thin = [
        replace(s, payer="Thinplan")
        for s in history
        if s.day >= windows.current.start or s.day > windows.baseline.end - dt.timedelta(days=5)
    ]
    summaries = {
        s.payer: s for s in summarize(cell_series(history + newcomer + thin), windows, CONFIG)
    }
    assert summaries["Aetna"].season == (
        "Deductible season: patients pay 40% of the allowed amount, up from 10%; "
        "what the payer settles is unchanged, so this is no payer drift."
    )
    assert summaries["Thinplan"].baseline.claims == 100
    assert summaries["Newplan"].baseline.claims == 0
    assert summaries["Newplan"].current.patient_share == pytest.approx(0.4)
    assert summaries["Newplan"].season == summaries["Thinplan"].season == ""
    # A customer's own lower minimum lets the thin baseline speak.
    lenient = replace(CONFIG, min_baseline_claims=100)
    thin_summary = summarize(cell_series(thin), windows, lenient)[0]
    assert thin_summary.season.startswith("Deductible season: patients pay 40%")


def test_slower_decisions_and_lower_payments_are_found() -> None:
    slower = detect_days(_history("Cigna", decision_days=22), AS_OF, CONFIG)
    assert {f.metric for f in slower.findings} == {"DECISION_DAYS"}
    shift = slower.findings[0].evidence
    assert shift.effect_unit == "days" and 5 <= shift.effect_size <= 9
    cheaper = detect_days(_history("Humana", paid_share=0.65), AS_OF, CONFIG)
    assert {f.metric for f in cheaper.findings} == {"PAYMENT_RATIO"}
    assert cheaper.findings[0].evidence.effect_size < -0.05


def test_a_small_but_significant_change_stays_under_the_floor() -> None:
    # +3 points on a huge payer is "significant" but below the +5 point floor.
    windows = windows_for(AS_OF, CONFIG)
    stats = _stats(
        "Big",
        "",
        per_day=2000,
        denial_rate=0.10,
        start=HISTORY_START,
        days=BASELINE_DAYS,
    )
    stats += _stats(
        "Big", "", per_day=2000, denial_rate=0.13, start=windows.current.start, days=30, seed=3
    )
    detection = detect_days(stats, AS_OF, CONFIG)
    assert [f for f in detection.findings if f.metric == "DENIAL_RATE"] == []


def test_zero_baseline_denials_do_not_break_the_rate_test() -> None:
    windows = windows_for(AS_OF, CONFIG)
    stats = _stats(
        "Zero",
        "",
        per_day=10,
        denial_rate=0.0,
        start=HISTORY_START,
        days=BASELINE_DAYS,
    )
    stats += _stats(
        "Zero", "", per_day=10, denial_rate=0.3, start=windows.current.start, days=30, seed=4
    )
    findings = [f for f in detect_days(stats, AS_OF, CONFIG).findings if f.metric == "DENIAL_RATE"]
    assert findings and findings[0].evidence.baseline_value == 0.0


def test_a_customer_whose_claims_were_never_denied_is_compared_on_the_rest() -> None:
    """No denial codes at all (a table with no code column): the other metrics are still
    compared, and decisions that slow down are found."""
    windows = windows_for(AS_OF, CONFIG)
    stats = _stats("Paysall", "", per_day=30, denial_rate=0.0, start=HISTORY_START,
                   days=BASELINE_DAYS)  # fmt: skip
    stats += _stats("Paysall", "", per_day=30, denial_rate=0.0, decision_days=30,
                    start=windows.current.start, days=30, seed=5)  # fmt: skip
    assert not any(s.carc_counts for s in stats)
    detection = detect_days(stats, AS_OF, CONFIG)
    assert {f.metric for f in detection.findings} == {"DECISION_DAYS"}


def test_small_payers_are_skipped_and_small_groups_roll_up() -> None:
    tiny = _stats("Tiny", "", per_day=1, denial_rate=0.5, start=HISTORY_START, days=120)
    groups = [
        *_history("Split", "RADIOLOGY", denial_rate=0.3),
        *_stats(
            "Split",
            "LABORATORY",
            per_day=1,
            denial_rate=0.1,
            start=HISTORY_START,
            days=120,
        ),
    ]
    detection = detect_days(tiny + groups, AS_OF, CONFIG)
    assert detection.cells_skipped == 1  # Tiny: 30 current claims < 50
    cells = {(f.cell.payer, f.cell.code_group) for f in detection.findings}
    assert ("Split", ALL_CODES) in cells and ("Split", "RADIOLOGY") in cells
    assert ("Split", "LABORATORY") not in cells  # 30 current claims: only in the roll-up
    assert not any(payer == "Tiny" for payer, _ in cells)


def test_no_data_in_the_windows_means_nothing_tested() -> None:
    old = _stats("Old", "", per_day=50, denial_rate=0.1, start=dt.date(2024, 1, 1), days=60)
    detection = detect_days(old, AS_OF, CONFIG)
    assert (detection.cells_tested, detection.cells_skipped, detection.findings) == (0, 0, [])


def test_many_null_cells_rarely_raise_an_alarm() -> None:
    # 200 payers with no change: Benjamini–Hochberg keeps the false alarms near zero.
    stats = [
        s
        for n in range(200)
        for s in _history(
            f"P{n}",
            "",
        )
    ]
    detection = detect_days(stats, AS_OF, CONFIG)
    assert detection.cells_tested == 200
    assert len(detection.findings) <= 2


def test_a_change_of_the_last_days_is_found_since_it_began() -> None:
    """Nine claims in ten denied for the last five days: the sequential test finds it now,
    measured since the day it began, where the windows alone would wait for it to hold on the
    windows of the days before; the same days of ordinary denials raise nothing."""
    windows = windows_for(AS_OF, CONFIG)
    spike_start = windows.current.start + dt.timedelta(days=25)

    def with_last_days(denial_rate: float) -> list[DayStat]:
        return [
            *_stats("Aetna", "RADIOLOGY", per_day=20, start=HISTORY_START, days=BASELINE_DAYS,
                    denial_rate=0.10),
            *_stats("Aetna", "RADIOLOGY", per_day=20, start=windows.current.start, days=25,
                    seed=2, denial_rate=0.10),
            *_stats("Aetna", "RADIOLOGY", per_day=20, start=spike_start, days=5, seed=3,
                    denial_rate=denial_rate),
        ]  # fmt: skip

    (finding,) = detect_days(with_last_days(0.9), AS_OF, CONFIG).findings
    assert (finding.metric, finding.since) == ("DENIAL_RATE", spike_start)
    assert finding.evidence.current_count == 100 and finding.evidence.current_value > 0.8
    assert "since Jun 26" in finding.summary
    ordinary = detect_days(with_last_days(0.1), AS_OF, CONFIG)
    assert ordinary.findings == [] and ("Aetna", ALL_CODES, "DENIAL_RATE") in ordinary.tested


def test_many_true_drifts_do_not_carry_a_chance_excursion_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten payers drifting make Benjamini–Hochberg's cut-off ten times looser; the cap at
    twice the Bonferroni bound keeps a small payer's chance rise out all the same."""
    windows = windows_for(AS_OF, CONFIG)
    stats = [s for n in range(10) for s in _history(f"Drifting{n}", denial_rate=0.4)]
    stats += _stats(
        "Noise",
        "",
        per_day=5,
        denial_rate=0.10,
        start=HISTORY_START,
        days=BASELINE_DAYS,
        seed=7,
    )
    stats += _stats(
        "Noise", "", per_day=5, denial_rate=0.19, start=windows.current.start, days=30, seed=107
    )
    found = {f.cell.payer for f in detect_days(stats, AS_OF, CONFIG).findings}
    assert found == {f"Drifting{n}" for n in range(10)}
    # Benjamini–Hochberg alone would have called it a drift.
    monkeypatch.setattr(detection, "PAYER_BONFERRONI_MULTIPLE", 10**9)
    monkeypatch.setattr(detection, "GROUP_BONFERRONI_MULTIPLE", 10**9)
    assert "Noise" in {f.cell.payer for f in detect_days(stats, AS_OF, CONFIG).findings}


def test_reading_entries_summed_over_the_runs_windows_changes_no_finding_or_summary() -> None:
    """Drift reads histogram and CARC entries summed over the spans its windows begin:
    findings, their evidence and the payer summaries are exactly those of the days."""
    stats = [
        *_history("Aetna", denial_rate=0.25),
        *_history("Cigna", "SURGERY", decision_days=22),
        *_history("Cigna", "RADIOLOGY"),
        *_history("Humana", paid_share=0.65),
        *_history("Kaiser", "LABORATORY", decision_days=18),
        *_history("Kaiser", "SURGERY", denial_rate=0.2),
    ]
    by_day = detect_days(stats, AS_OF, CONFIG)
    first = first_day_read(AS_OF, CONFIG)
    read_by_span = read(stats, first, AS_OF, span_starts_read(AS_OF, CONFIG))
    assert sum(s.histogram_day.size for s in read_by_span) * 2 < sum(
        s.histogram_day.size for s in cell_series(stats)
    )
    # As drift reads them: each payer's series merged while the rest arrived.
    assert isinstance(read_by_span, ReadSeries) and read_by_span.payers is not None
    assert detect(read_by_span, AS_OF, CONFIG) == by_day
    assert len(by_day.findings) >= 4
    windows = windows_for(AS_OF, CONFIG)
    read_for_summaries = read(stats, summary_start(windows), AS_OF, summary_span_starts(windows))
    assert summarize(read_for_summaries, windows) == summarize(cell_series(stats), windows)


def test_decision_days_decades_long_are_compared_like_any_other() -> None:
    """A claim decided 5,000 days after submission (a mistyped year) is one more value: the
    run finds the same drift with the same numbers as the test run on its windows alone."""
    stats = _history("Cigna", decision_days=22)
    stats = [
        DayStat(**{**s.__dict__, "decision_days": {**s.decision_days, 5000 + n % 3: 1}})
        for n, s in enumerate(stats)
    ]
    detection = detect_days(stats, AS_OF, CONFIG)
    (finding,) = detection.findings
    windows = windows_for(AS_OF, CONFIG)
    baseline, current = (
        sum((Counter(s.decision_days) for s in stats if s.day in window), Counter())
        for window in (windows.baseline, windows.current)
    )
    alone = statistics.decision_days_test(baseline, current)
    evidence = finding.evidence
    assert finding.metric == "DECISION_DAYS"
    assert evidence.p_value == pytest.approx(alone.p_value, rel=1e-12)
    assert evidence.effect_size == alone.shift and evidence.baseline_value == alone.baseline_median


def _seasonal_years(
    payer: str,
    *,
    through: dt.date,
    january: dict[str, float],
    years_with_season: tuple[int, ...],
    per_day: int = 40,
    seed: int = 20,
) -> list[DayStat]:
    """Two years and a month of days to `through`: steady behaviour, but in January of the
    years named the `january` values instead (a season)."""
    steady = {"denial_rate": 0.10, "decision_days": 15, "paid_share": 0.8}
    first = through - dt.timedelta(days=2 * 365 + 31)
    stats = []
    for n in range((through - first).days + 1):
        day = first + dt.timedelta(days=n)
        season = day.month == 1 and day.year in years_with_season
        values = {**steady, **(january if season else {})}
        stats += _stats(payer, "", per_day=per_day, start=day, days=1, seed=seed * 10_000 + n,
                        **values)  # fmt: skip
    return stats


JANUARY_RUN = dt.date(2026, 1, 31)


def test_a_january_that_comes_every_year_is_expected_and_one_that_is_new_is_found() -> None:
    """Denials rise every January (eligibility checks when plans change): with last year's
    January in the history the run as of January 31 expects it; the same rise with no such
    January last year is a drift, and a rise well beyond the season's is one too, its evidence
    stating what the season led to expect."""
    every_year = _seasonal_years(
        "Aetna", through=JANUARY_RUN, january={"denial_rate": 0.2}, years_with_season=(2025, 2026)
    )
    assert not [
        f
        for f in detect_days(every_year, JANUARY_RUN, CONFIG).findings
        if f.metric == "DENIAL_RATE"
    ]
    only_now = _seasonal_years(
        "Aetna", through=JANUARY_RUN, january={"denial_rate": 0.2}, years_with_season=(2026,)
    )
    (new,) = [
        f for f in detect_days(only_now, JANUARY_RUN, CONFIG).findings if f.metric == "DENIAL_RATE"
    ]
    assert new.evidence.expected_value is None
    beyond = [
        s if s.day.year < 2026 else t
        for s, t in zip(
            every_year,
            _seasonal_years(
                "Aetna", through=JANUARY_RUN, january={"denial_rate": 0.4},
                years_with_season=(2025, 2026),
            ),
            strict=True,
        )
    ]  # fmt: skip
    (worse,) = [
        f for f in detect_days(beyond, JANUARY_RUN, CONFIG).findings if f.metric == "DENIAL_RATE"
    ]
    evidence = worse.evidence
    assert evidence.expected_value is not None
    assert evidence.baseline_value < 0.12 < evidence.expected_value < evidence.current_value
    assert evidence.effect_size == pytest.approx(
        (evidence.current_value - evidence.expected_value) * 100
    )
    assert "expected for the season" in worse.summary


def test_a_holiday_slowdown_every_year_is_expected() -> None:
    """Decisions take longer every January: expected where last January is in the history,
    a drift where it is not."""
    slow = {"decision_days": 24}
    every_year = _seasonal_years(
        "Cigna", through=JANUARY_RUN, january=slow, years_with_season=(2025, 2026)
    )
    only_now = _seasonal_years(
        "Cigna", through=JANUARY_RUN, january=slow, years_with_season=(2026,)
    )
    # A claim of another payer decided 5,000 days after it began (dates a billing system
    # got wrong): the run reads only the days to decision present, no longer every day up
    # to the largest, and the season still holds.
    straggler = DayStat(
        **{
            **_stats("Humana", "", per_day=1, denial_rate=0.0, start=JANUARY_RUN, days=1)[
                0
            ].__dict__,
            "decided": 1,
            "denied": 0,
            "decision_days": {5000: 1},
            "carc_counts": {},
        }
    )
    metrics = [
        {f.metric for f in detect_days(stats, JANUARY_RUN, CONFIG).findings}
        for stats in (every_year, only_now, [*every_year, straggler])
    ]
    assert metrics == [set(), {"DECISION_DAYS"}, set()]


def test_a_holiday_slowdown_a_little_longer_than_last_year_is_still_the_season() -> None:
    """One year's holidays are a rough guide to the next: decisions that took 5 days longer
    last January and 10 this January are the season; 15 longer this January is a drift."""

    def januaries(last: int, this: int) -> list[DayStat]:
        before = _seasonal_years(
            "Cigna",
            through=JANUARY_RUN,
            january={"decision_days": 15 + last},
            years_with_season=(2025,),
        )
        now = _seasonal_years(
            "Cigna",
            through=JANUARY_RUN,
            january={"decision_days": 15 + this},
            years_with_season=(2026,),
        )
        return [
            b if not (b.day.year == 2026 and b.day.month == 1) else n
            for b, n in zip(before, now, strict=True)
        ]  # fmt: skip

    def metrics(last: int, this: int) -> set[str]:
        return {f.metric for f in detect_days(januaries(last, this), JANUARY_RUN, CONFIG).findings}

    assert metrics(5, 10) == set()
    assert metrics(5, 15) == {"DECISION_DAYS"}


def test_the_deductible_season_is_no_payment_drift_but_a_payer_paying_less_is() -> None:
    """In deductible season patients pay part of the allowed amount the payer paid before:
    what the payer settles (its payment and the patient's share) is unchanged, so nothing is
    raised. A payer that pays less without the patients paying more is a drift."""
    windows = windows_for(AS_OF, CONFIG)

    def with_patients(stats: list[DayStat], share: float) -> list[DayStat]:
        return [
            DayStat(**{**s.__dict__, "paid_cents": round(s.paid_cents * (1 - share)),
                       "patient_responsibility_cents": round(s.paid_cents * share)})
            for s in stats
        ]  # fmt: skip

    baseline = with_patients(
        _stats("Cascade", "", per_day=20, denial_rate=0.1, start=HISTORY_START, days=BASELINE_DAYS),
        0.05,
    )
    recent = _stats(
        "Cascade", "", per_day=20, denial_rate=0.1, start=windows.current.start, days=30, seed=9
    )
    deductibles = detect_days(baseline + with_patients(recent, 0.45), AS_OF, CONFIG)
    assert "PAYMENT_RATIO" not in {f.metric for f in deductibles.findings}
    cut = [DayStat(**{**s.__dict__, "paid_cents": round(s.paid_cents * 0.7)}) for s in recent]
    (finding,) = [
        f
        for f in detect_days(baseline + with_patients(cut, 0.05), AS_OF, CONFIG).findings
        if f.metric == "PAYMENT_RATIO"
    ]
    assert finding.evidence.effect_size < -0.2
    assert "patients' share" in finding.summary


def test_a_new_payer_is_compared_only_once_its_history_covers_the_baseline() -> None:
    """A payer that appeared after the customer's data began is compared only once its
    history began NEW_PAYER_LEAD_DAYS before its baseline; the run says from when. A payer
    there from the start is compared as soon as its history covers the baseline."""
    windows = windows_for(AS_OF, CONFIG)
    old = _history("Aetna", denial_rate=0.25)
    appeared = HISTORY_START + dt.timedelta(days=20)
    new = [s for s in _history("Newco", denial_rate=0.25) if s.day >= appeared]
    found = detect_days(old + new, AS_OF, CONFIG)
    assert {f.cell.payer for f in found.findings} == {"Aetna"}
    first_run = appeared + dt.timedelta(
        days=detection.NEW_PAYER_LEAD_DAYS
        + CONFIG.baseline_window_days
        + CONFIG.current_window_days
        - 1
        + detection.PERSISTENCE_DAYS
    )
    assert found.history_until == {"Newco": first_run}
    assert first_run > AS_OF
    # Alone, the payer's history is the customer's: it waits for its baselines, no longer.
    alone = detect_days(new, AS_OF, CONFIG)
    lead = dt.timedelta(days=detection.NEW_PAYER_LEAD_DAYS)
    assert alone.history_until == {"Newco": first_run - lead}
    assert (alone.findings, windows.baseline.start < appeared) == ([], True)


def test_a_payer_that_stops_deciding_is_seen_in_its_pending_claims() -> None:
    """A payer that decides a fifth of its claims from one day on, at its usual pace: the
    claims it decides look as they always did, but those left pending past its usual
    decision time are many more than its pace leaves, and that is a finding."""
    windows = windows_for(AS_OF, CONFIG)
    stopped = windows.current.start - dt.timedelta(days=30)
    stats = [
        s if s.day < stopped else DayStat(**{**s.__dict__, "decided": 4, "denied": 0,
                                            "decision_days": {15: 4}, "carc_counts": {}})
        for s in _history("Slowco")
    ]  # fmt: skip
    waiting = [
        PendingStat("Slowco", "RADIOLOGY", stopped + dt.timedelta(days=n), 16)
        for n in range((AS_OF - stopped).days + 1)
    ]
    quiet = detect(cell_series(stats), AS_OF, CONFIG)
    assert "DECISION_DAYS" not in {f.metric for f in quiet.findings}
    # A usual backlog (one claim in twenty never decided, whatever its age) is no finding.
    backlog = [
        PendingStat("Slowco", "RADIOLOGY", HISTORY_START + dt.timedelta(days=n), 1)
        for n in range(0, (AS_OF - HISTORY_START).days, 1)
    ]
    steady = detect(cell_series(_history("Slowco"), backlog), AS_OF, CONFIG)
    assert "DECISION_DAYS" not in {f.metric for f in steady.findings}
    (finding,) = [
        f
        for f in detect(cell_series(stats, waiting), AS_OF, CONFIG).findings
        if f.metric == "DECISION_DAYS"
    ]
    evidence = finding.evidence
    assert evidence.effect_unit == "claims"
    # Started 30 to 1 days before the usual decision time ran out: 30 days of 16 claims.
    assert evidence.current_events == 30 * 16
    assert evidence.baseline_events < 30 and 17 <= evidence.baseline_value <= 22
    assert "waiting more than" in finding.summary and finding.severity == "HIGH"


def test_a_batch_pending_past_the_usual_time_for_a_day_is_no_stop_until_it_lasts() -> None:
    """Claims of one day still pending as they pass the payer's usual decision time: on that
    day alone a batch decided late, not a payer that stopped (a finding of pending claims
    must stand on the runs of the days before too); still waiting on those days, a finding."""
    history = _history("Slowco")
    stopped = windows_for(AS_OF, CONFIG).current.start - dt.timedelta(days=30)
    waiting = [
        PendingStat("Slowco", "RADIOLOGY", stopped + dt.timedelta(days=n), 16)
        for n in range((AS_OF - stopped).days + 1)
    ]
    (stop,) = [
        f
        for f in detect(cell_series(history, waiting), AS_OF, CONFIG).findings
        if f.metric == "DECISION_DAYS"
    ]
    usual = round(stop.evidence.baseline_value)

    def pending_findings(age_today: int) -> list[detection.Finding]:
        batch = [PendingStat("Slowco", "RADIOLOGY", AS_OF - dt.timedelta(days=age_today), 80)]
        found = detect(cell_series(history, batch), AS_OF, CONFIG).findings
        return [f for f in found if f.metric == "DECISION_DAYS"]

    assert pending_findings(usual + 1) == []
    assert pending_findings(usual + 2) == []
    (lasting,) = pending_findings(usual + 1 + detection.PENDING_PERSISTENCE_DAYS)
    assert lasting.evidence.effect_unit == "claims" and lasting.evidence.current_events >= 80


def _reasons(stats: list[DayStat], shares: Callable[[DayStat], dict[str, float]]) -> list[DayStat]:
    """The same days, their denials spread over the reasons `shares` gives each day."""
    rng = random.Random(7)
    spread = []
    for s in stats:
        codes, weights = zip(*shares(s).items(), strict=True)
        counts = Counter(rng.choices(codes, weights, k=s.denied))
        spread.append(DayStat(**{**s.__dict__, "carc_counts": dict(counts)}))
    return spread


def test_a_customers_january_denial_reasons_are_no_season_of_a_payer_without_them() -> None:
    """Every January the commercial payers deny a third of their claims for eligibility
    (CO-27) as plans change: expected of them, from their own last January. Medicare never
    does, and its own last January says so: the customer's season is not pinned on it. A
    payer whose reasons move as they did not last year is found."""
    usual = {"CO-50": 0.4, "CO-16": 0.3, "CO-18": 0.3}
    eligibility = {"CO-27": 0.35, "CO-50": 0.25, "CO-16": 0.2, "CO-18": 0.2}

    def payer(
        name: str, seed: int, january: dict[str, float], years: tuple[int, ...]
    ) -> list[DayStat]:
        days = _seasonal_years(name, through=JANUARY_RUN, january={}, years_with_season=(),
                               seed=seed)  # fmt: skip
        return _reasons(
            days, lambda s: january if s.day.month == 1 and s.day.year in years else usual
        )

    every_year = (2025, 2026)
    stats = [
        *payer("Aetna", 31, eligibility, every_year),
        *payer("Cigna", 32, eligibility, every_year),
        *payer("Humana", 33, eligibility, every_year),
        *payer("Medicare", 34, usual, every_year),
    ]
    assert not [
        f
        for f in detect_days(stats, JANUARY_RUN, CONFIG).findings
        if f.metric == "DENIAL_REASON_MIX"
    ]
    prior_auth = {"CO-197": 0.4, "CO-50": 0.2, "CO-16": 0.2, "CO-18": 0.2}
    moved = stats + payer("Wellcare", 35, prior_auth, (2026,))
    (finding,) = [
        f
        for f in detect_days(moved, JANUARY_RUN, CONFIG).findings
        if f.metric == "DENIAL_REASON_MIX"
    ]
    assert finding.cell.payer == "Wellcare"
    assert finding.evidence.carc_shifts[0][0] == "CO-197"


def test_a_season_of_denial_reasons_that_comes_late_this_year_is_still_the_season() -> None:
    """Every January the customer's payers deny many claims for eligibility (CO-27) as plans
    change. One payer decided last year's in January's first half and decides this year's
    a month later, in the weeks after mid-January: last year's same weeks had none of them
    (its history, since October, puts them in the weeks before), so its own season expects
    none. Their reason is still the season's, whose timing moves from year to year: no new
    mix (its denial rate still counts them). A reason that is not the season's, moving in
    the same weeks, is still found."""
    usual = {"CO-50": 0.4, "CO-16": 0.3, "CO-18": 0.3}
    eligibility = {"CO-27": 0.6, "CO-50": 0.16, "CO-16": 0.12, "CO-18": 0.12}
    prior_auth = {"CO-197": 0.6, "CO-50": 0.16, "CO-16": 0.12, "CO-18": 0.12}
    run = dt.date(2026, 2, 14)
    history_start = dt.date(2024, 10, 1)

    def payer(name: str, seed: int, shares: Callable[[dt.date], dict[str, float]]) -> list[DayStat]:
        days = _seasonal_years(name, through=run, january={}, years_with_season=(), seed=seed)
        return _reasons([s for s in days if s.day >= history_start], lambda s: shares(s.day))

    def january(day: dt.date) -> dict[str, float]:
        return eligibility if day.month == 1 else usual

    def early_then_late(day: dt.date) -> dict[str, float]:
        this_year = dt.date(2026, 1, 16) <= day <= dt.date(2026, 2, 14)
        last_year = dt.date(2025, 1, 1) <= day <= dt.date(2025, 1, 16)
        return eligibility if this_year or last_year else usual

    stats = [
        *payer("Aetna", 41, january),
        *payer("Cigna", 42, january),
        *payer("Humana", 43, january),
        *payer("Latecomer", 44, early_then_late),
    ]
    assert not [
        f for f in detect_days(stats, run, CONFIG).findings if f.metric == "DENIAL_REASON_MIX"
    ]

    def prior_authorisation(day: dt.date) -> dict[str, float]:
        return prior_auth if day >= dt.date(2026, 1, 10) else january(day)

    moved = stats + payer("Wellcare", 45, prior_authorisation)
    (finding,) = [
        f for f in detect_days(moved, run, CONFIG).findings if f.metric == "DENIAL_REASON_MIX"
    ]
    assert finding.cell.payer == "Wellcare"
    assert finding.evidence.carc_shifts[0][0] == "CO-197"
    assert "CO-27" not in {code for code, _, _ in finding.evidence.carc_shifts}


def test_denials_that_rise_for_new_reasons_are_one_finding_that_names_them() -> None:
    """A payer that starts denying for prior authorisation (CO-197) on top of its usual
    denials: its denial rate rose and so did CO-197's share of them — one story, told once,
    as the rise with the reasons that grew. A rise for the usual reasons lists them as
    evidence without saying they changed; a change of reasons alone is still its own finding."""
    usual = {"CO-50": 0.4, "CO-16": 0.3, "CO-18": 0.3}
    prior_auth = {"CO-197": 0.6, "CO-50": 0.16, "CO-16": 0.12, "CO-18": 0.12}
    current_start = windows_for(AS_OF, CONFIG).current.start

    def payer(name: str, now: dict[str, float], **current: float) -> list[DayStat]:
        days = _history(name, group="", **current)
        return _reasons(days, lambda s: now if s.day >= current_start else usual)

    stats = [
        *payer("Aetna", prior_auth, denial_rate=0.25),
        *payer("Cigna", usual, denial_rate=0.25),
        # A rise under the floor (+5 points), so that the window has denials enough to compare.
        *payer("Humana", prior_auth, denial_rate=0.12),
    ]
    # The run's own windows alone: the reasons change as the window begins.
    run = detect_days(stats, AS_OF, CONFIG, persistence_days=0)
    findings = {(f.cell.payer, f.metric): f for f in run.findings}
    assert set(findings) == {
        ("Aetna", "DENIAL_RATE"),
        ("Cigna", "DENIAL_RATE"),
        ("Humana", "DENIAL_REASON_MIX"),
    }
    aetna = findings["Aetna", "DENIAL_RATE"]
    assert aetna.evidence.carc_shifts[0][0] == "CO-197"
    assert "for other reasons: more CO-197" in aetna.summary
    cigna = findings["Cigna", "DENIAL_RATE"]
    assert cigna.evidence.carc_shifts and "other reasons" not in cigna.summary
    # Without its rise in denials, Aetna's new reasons would have been a finding of their own.
    alone = detect_days(payer("Aetna", prior_auth, denial_rate=0.25), AS_OF,
                        replace(CONFIG, enabled_metrics=("DENIAL_REASON_MIX",)),
                        persistence_days=0)  # fmt: skip
    assert [f.metric for f in alone.findings] == ["DENIAL_REASON_MIX"]


# A payer whose mix of 25 denial reasons changes, its finding's evidence printed.
_MIX_EVIDENCE = """
import random
from dataclasses import replace
from services.drift.detection import windows_for
from tests.unit.test_detection import AS_OF, CONFIG, _history, _reasons, detect_days
rng = random.Random(11)
codes = [f"CO-{n}" for n in range(4, 29)]
usual = {code: rng.random() for code in codes}
changed = {code: rng.random() ** 4 for code in codes}
start = windows_for(AS_OF, CONFIG).current.start
history = _history("Aetna", group="", denial_rate=0.3)
days = _reasons(history, lambda s: changed if s.day >= start else usual)
mix = replace(CONFIG, enabled_metrics=("DENIAL_REASON_MIX",))
print(repr([f.evidence for f in detect_days(days, AS_OF, mix, persistence_days=0).findings]))
"""


def test_a_reason_mix_finding_is_the_same_in_every_process() -> None:
    """Replicas (and a run after a restart) order a set of strings each their own way; the
    evidence of the same data must still be the same to the last digit."""
    printed = {
        subprocess.run(
            [sys.executable, "-c", _MIX_EVIDENCE],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        for seed in range(4)
    }
    (evidence,) = printed
    assert evidence.startswith("[Evidence(")  # a finding, the same in all four


@pytest.mark.parametrize("history_days", [None, 430])
def test_a_backlog_every_year_at_the_holidays_is_expected(history_days: int | None) -> None:
    """A payer that leaves four claims in five undecided over the last weeks of every year:
    the backlog on December 31 is what it was a year earlier, so it is expected (and would be
    a finding without last year's). One beyond the season's is still found. With only 14
    months of history, last year's backlog is measured against the month before it."""
    run = dt.date(2026, 12, 31)
    year = dt.timedelta(days=detection.SEASON_DAYS)
    steady = _seasonal_years("Slowco", through=run, january={}, years_with_season=(),
                             per_day=20)  # fmt: skip
    if history_days is not None:
        steady = [s for s in steady if s.day > run - dt.timedelta(days=history_days)]

    def holidays(as_of: dt.date) -> dt.date:
        return as_of - dt.timedelta(days=30)

    def slowed(stats: list[DayStat], years: tuple[dt.date, ...]) -> list[DayStat]:
        slow = [s for s in stats if any(holidays(y) <= s.day <= y for y in years)]
        kept = [
            s if s not in slow else DayStat(**{**s.__dict__, "decided": 4, "denied": 0,
                                             "decision_days": {15: 4}, "carc_counts": {}})
            for s in stats
        ]  # fmt: skip
        # The claims left over are decided ten days after the season, at once.
        caught_up: list[DayStat] = []
        for last in years:
            if last == run:
                continue
            day = last + dt.timedelta(days=10)
            late = {
                (day - (holidays(last) + dt.timedelta(days=n))).days: 16
                for n in range((last - holidays(last)).days + 1)
            }
            caught_up.append(DayStat("Slowco", "", day, 16 * len(late), 0, 0, late,
                                     0, 0, 0, 0, {}))  # fmt: skip
        return kept + caught_up

    def waiting(per_day: int) -> list[PendingStat]:
        return [
            PendingStat("Slowco", "", holidays(run) + dt.timedelta(days=n), per_day)
            for n in range((run - holidays(run)).days + 1)
        ]

    def pending_findings(stats: list[DayStat], per_day: int) -> list[Finding]:
        found = detect(cell_series(stats, waiting(per_day)), run, CONFIG)
        # As a run reads them: entries summed over its spans, to its as-of day.
        spans = span_starts_read(run, CONFIG)
        first = first_day_read(run, CONFIG)
        assert (
            detect(read(stats, first, run, spans, pending=waiting(per_day)), run, CONFIG) == found
        )
        return [f for f in found.findings if f.evidence.effect_unit == "claims"]

    every_year = slowed(steady, (run - year, run))
    assert pending_findings(every_year, 16) == []
    (new,) = pending_findings(slowed(steady, (run,)), 16)
    assert "a year earlier" not in new.evidence.test
    (worse,) = pending_findings(every_year, 60)
    assert "as on the same days a year earlier" in worse.evidence.test
    assert worse.evidence.baseline_events > new.evidence.baseline_events


def test_a_payer_without_its_own_last_january_is_held_to_the_customers_spread_of_seasons() -> None:
    """The customer's payers deny more every January, by how much differs from payer to
    payer (×1.2 to ×3). A payer whose history begins after last January takes the customer's
    season, as uncertain as its payers' seasons spread: a rise within that spread is no
    drift, one far beyond it is."""
    rises = {"Aetna": 1.2, "Cigna": 3.0, "Humana": 1.5, "Anthem": 2.5, "Kaiser": 1.3}
    stats = [
        s
        for n, (name, rise) in enumerate(rises.items())
        for s in _seasonal_years(
            name,
            through=JANUARY_RUN,
            january={"denial_rate": 0.1 * rise},
            years_with_season=(2025, 2026),
            seed=40 + n,
        )
    ]
    late_start = dt.date(2025, 3, 1)

    def late(rise: float) -> list[DayStat]:
        return [
            s
            for s in _seasonal_years(
                "Highmark",
                through=JANUARY_RUN,
                january={"denial_rate": 0.1 * rise},
                years_with_season=(2025, 2026),
                seed=50,
            )
            if s.day >= late_start
        ]

    def denial_findings(extra: list[DayStat]) -> set[str]:
        found = detect_days(stats + extra, JANUARY_RUN, CONFIG).findings
        return {f.cell.payer for f in found if f.metric == "DENIAL_RATE"}

    assert denial_findings(late(2.5)) == set()
    assert denial_findings(late(6.0)) == {"Highmark"}


def test_decisions_slower_for_the_last_days_are_found_since_they_began() -> None:
    """Every claim decided five days later than usual for the last eight days: the daily
    test finds it now, since the day it began, where the windows alone would wait for it to
    hold on the windows of the days before; the same days at the usual pace raise nothing."""
    windows = windows_for(AS_OF, CONFIG)
    slow_start = windows.current.start + dt.timedelta(days=22)

    def with_last_days(decision_days: int) -> list[DayStat]:
        return [
            *_stats("Aetna", "RADIOLOGY", per_day=20, start=HISTORY_START, days=BASELINE_DAYS,
                    denial_rate=0.10),
            *_stats("Aetna", "RADIOLOGY", per_day=20, start=windows.current.start, days=22,
                    seed=2, denial_rate=0.10),
            *_stats("Aetna", "RADIOLOGY", per_day=20, start=slow_start, days=8, seed=3,
                    denial_rate=0.10, decision_days=decision_days),
        ]  # fmt: skip

    (finding,) = detect_days(with_last_days(20), AS_OF, CONFIG).findings
    assert (finding.metric, finding.since) == ("DECISION_DAYS", slow_start)
    assert finding.evidence.current_count == 160 and finding.evidence.effect_size >= 4
    ordinary = detect_days(with_last_days(15), AS_OF, CONFIG)
    assert ordinary.findings == [] and ("Aetna", ALL_CODES, "DECISION_DAYS") in ordinary.tested


def test_a_slowdown_of_the_last_days_of_every_year_is_expected() -> None:
    """Decisions take six days longer from December 22 to January 4 every year: a run on
    December 31 expects it from last year's same days; the same slowdown with none last year
    is found, since the day it began."""
    run = dt.date(2026, 12, 31)
    holidays = dt.date(2026, 12, 22)

    def slowed(day: dt.date, years: tuple[int, ...]) -> bool:
        return any(dt.date(y, 12, 22) <= day <= dt.date(y + 1, 1, 4) for y in years)

    def years(slow_years: tuple[int, ...]) -> list[DayStat]:
        return [
            s if not slowed(s.day, slow_years)
            else DayStat(**{**s.__dict__,
                            "decision_days": {d + 6: n for d, n in s.decision_days.items()}})
            for s in _seasonal_years("Cigna", through=run, january={}, years_with_season=())
        ]  # fmt: skip

    every_year = years((2025, 2026))
    found = detect_days(every_year, run, CONFIG)
    assert found.findings == []
    # As a run reads them: entries summed over its spans, to its as-of day.
    spans = span_starts_read(run, CONFIG)
    assert detect(read(every_year, first_day_read(run, CONFIG), run, spans), run, CONFIG) == found
    (finding,) = detect_days(years((2026,)), run, CONFIG).findings
    assert (finding.metric, finding.since) == ("DECISION_DAYS", holidays)


def test_denials_that_rise_in_the_last_days_every_year_are_expected_of_those_days() -> None:
    """Denials rise from January 16 every year (plans' eligibility checked): a run on January
    29 finds the rise of its window's last two weeks day by day, and measures it against what
    last year's same two weeks brought, not the whole window's average of them; the same
    rise with none last year is found, since the day it began."""
    run, rise = dt.date(2026, 1, 29), dt.date(2026, 1, 16)

    def years(rise_years: tuple[int, ...]) -> list[DayStat]:
        first = run - dt.timedelta(days=2 * 365 + 31)
        stats = []
        for n in range((run - first).days + 1):
            day = first + dt.timedelta(days=n)
            rising = any(dt.date(y, 1, 16) <= day <= dt.date(y, 2, 14) for y in rise_years)
            stats += _stats("Aetna", "", per_day=40, start=day, days=1, seed=30_000 + n,
                            denial_rate=0.25 if rising else 0.10)  # fmt: skip
        return stats

    every_year = years((2025, 2026))
    expected = detect_days(every_year, run, CONFIG)
    assert expected.findings == []
    # As a run reads them: entries summed over its spans, to its as-of day.
    spans = span_starts_read(run, CONFIG)
    assert (
        detect(read(every_year, first_day_read(run, CONFIG), run, spans), run, CONFIG) == expected
    )
    (finding,) = detect_days(years((2026,)), run, CONFIG).findings
    assert (finding.metric, finding.since) == ("DENIAL_RATE", rise)


def test_a_payers_holiday_slowdown_is_expected_of_each_of_its_code_groups() -> None:
    """A payer decides six days slower over the holidays every year; last year its small
    code group happened to be decided at the usual pace. The holidays are the payer's staff
    away: this year's slowdown of the small group is expected as the payer's, not found."""
    run = dt.date(2026, 12, 31)

    def slowed(day: dt.date, years: tuple[int, ...]) -> bool:
        return any(dt.date(y, 12, 22) <= day <= dt.date(y + 1, 1, 4) for y in years)

    first = run - dt.timedelta(days=2 * 365 + 31)
    stats = []
    for group, per_day, slow_years in (
        ("RADIOLOGY", 40, (2025, 2026)),
        ("LABORATORY", 12, (2026,)),
    ):
        for n in range((run - first).days + 1):
            day = first + dt.timedelta(days=n)
            stats += _stats("Cigna", group, per_day=per_day, start=day, days=1,
                            seed=per_day * 10_000 + n, denial_rate=0.10,
                            decision_days=21 if slowed(day, slow_years) else 15)  # fmt: skip
    detection_ = detect_days(stats, run, CONFIG)
    assert ("Cigna", "LABORATORY", "DECISION_DAYS") in detection_.tested
    assert detection_.findings == []


@pytest.mark.parametrize("run", [dt.date(2025, 1, 4), dt.date(2026, 1, 4)])
def test_the_year_end_holidays_are_dates_after_a_leap_year_too(run: dt.date) -> None:
    """Every year decisions take five days longer from Christmas and ten from New Year's Day
    to January 4 (the backlog): 52 weeks before January 1, 2025 is January 3, 2024, two days
    past it. A run on the holidays' last day measures the backlog found since New Year's Day
    against last year's same dates and expects it."""

    def extra_days(day: dt.date) -> int:
        if day.month == 1 and day.day <= 4:
            return 10
        return 5 if day.month == 12 and day.day >= 25 else 0

    stats = [
        DayStat(**{**s.__dict__, "decision_days": {
            d + extra_days(s.day): n for d, n in s.decision_days.items()}})
        for s in _seasonal_years("Cigna", through=run, january={}, years_with_season=())
    ]  # fmt: skip
    found = detect_days(stats, run, CONFIG)
    assert ("Cigna", ALL_CODES, "DECISION_DAYS") in found.tested
    assert found.findings == []


def test_a_season_is_measured_against_three_months_where_the_data_nearly_has_them() -> None:
    """Data that begins on a day has its first decisions some days later. A customer whose
    decisions begin five days into the three months before last January: last December
    happened to be quick (ten days where fifteen is usual), so against December alone last
    January would look five days slower than usual, and this January's nine days slower a
    season. Against the three months, it is found."""
    run = dt.date(2026, 1, 31)
    year = dt.timedelta(days=detection.SEASON_DAYS)
    first = windows_for(run, CONFIG).current.start - year - dt.timedelta(days=90 - 5)

    def decision_days(day: dt.date) -> int:
        if dt.date(2024, 12, 3) <= day <= dt.date(2025, 1, 1):
            return 10
        return 24 if day >= dt.date(2026, 1, 1) else 15

    stats = [
        one
        for n in range((run - first).days + 1)
        for one in _stats("Cigna", "", per_day=40, start=first + dt.timedelta(days=n), days=1,
                          seed=40_000 + n, denial_rate=0.10,
                          decision_days=decision_days(first + dt.timedelta(days=n)))
    ]  # fmt: skip
    (finding,) = detect_days(stats, run, CONFIG).findings
    assert (finding.metric, finding.evidence.current_value) == ("DECISION_DAYS", 24)
    # Expected: last January's few days over the three months, and a margin for a season.
    assert finding.evidence.expected_value is not None
    assert finding.evidence.expected_value < 24 - CONFIG.decision_days_min_increase


def test_findings_do_not_depend_on_how_many_entries_are_read_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Detection reads the entries of many cells a few cells at a time (their arrays kept
    small); a customer with a season, a season that is new, slower decisions and a payer that
    stops deciding gets the same findings read a cell or two at a time as at once."""
    stats = [
        *_seasonal_years("Aetna", through=JANUARY_RUN, january={"denial_rate": 0.2},
                         years_with_season=(2025, 2026)),
        *_seasonal_years("Cigna", through=JANUARY_RUN, january={"denial_rate": 0.25},
                         years_with_season=(2026,), seed=21),
        *_seasonal_years("Humana", through=JANUARY_RUN, january={"decision_days": 26},
                         years_with_season=(2026,), seed=22),
    ]  # fmt: skip
    stopped = JANUARY_RUN - dt.timedelta(days=40)
    stats = [
        s if s.payer != "Humana" or s.day < stopped else DayStat(**{**s.__dict__, "decided": 8})
        for s in stats
    ]
    waiting = [
        PendingStat("Humana", "", stopped + dt.timedelta(days=n), 30)
        for n in range((JANUARY_RUN - stopped).days + 1)
    ]
    series = cell_series(stats, waiting)
    at_once = detect(series, JANUARY_RUN, CONFIG)
    assert {f.cell.payer for f in at_once.findings} >= {"Cigna", "Humana"}
    monkeypatch.setattr(series_module, "_ENTRIES_AT_ONCE", 3)
    assert detect(series, JANUARY_RUN, CONFIG) == at_once


def test_changes_dated_by_the_sequential_test_are_measured_against_their_own_seasons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each change the sequential test dates is expected what last year's same days since it
    began brought. Those seasons are made for all the changes of a run at once; two payers
    whose changes began on different days of a January with a season (each dated by the
    sequential test, at or before the day it began) get the same findings as when each season
    is made on its own."""
    began = {"Aetna": dt.date(2026, 1, 20), "Cigna": dt.date(2026, 1, 24)}
    stats = [
        *_seasonal_years("Aetna", through=JANUARY_RUN, january={"denial_rate": 0.2},
                         years_with_season=(2025, 2026)),
        *_seasonal_years("Cigna", through=JANUARY_RUN, january={"decision_days": 20},
                         years_with_season=(2025, 2026), seed=21),
        *_seasonal_years("Humana", through=JANUARY_RUN, january={"denial_rate": 0.2},
                         years_with_season=(2025, 2026), seed=22),
    ]  # fmt: skip
    changed = {
        "Aetna": lambda s, n: _stats("Aetna", "", per_day=40, start=s.day, days=1, seed=n,
                                     denial_rate=0.9),
        "Cigna": lambda s, n: _stats("Cigna", "", per_day=40, start=s.day, days=1, seed=n,
                                     denial_rate=0.1, decision_days=34),
    }  # fmt: skip
    stats = [
        one
        for n, s in enumerate(stats)
        for one in (changed[s.payer](s, n) if s.payer in began and s.day >= began[s.payer] else [s])
    ]
    series = cell_series(stats)
    together = detect(series, JANUARY_RUN, CONFIG)
    current = windows_for(JANUARY_RUN, CONFIG).current
    dated = {
        f.cell.payer: f.since
        for f in together.findings
        if (f.cell.payer, f.metric) in {("Aetna", "DENIAL_RATE"), ("Cigna", "DECISION_DAYS")}
    }
    # Both dated inside the current window (the sequential test's), on days of their own.
    assert set(dated) == {"Aetna", "Cigna"} and dated["Aetna"] != dated["Cigna"]
    assert all(current.start < since <= began[payer] for payer, since in dated.items())
    made = detection._Screens.prepare_seasons

    def one_at_a_time(screens: detection._Screens, changes: Any) -> None:
        for change in changes:
            made(screens, [change])

    monkeypatch.setattr(detection._Screens, "prepare_seasons", one_at_a_time)
    assert detect(series, JANUARY_RUN, CONFIG) == together

"""The detector as a whole: windows, volume minimums, roll-ups, floors, multiplicity."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest

from services.drift import detection, statistics
from services.drift.config import DetectionConfig
from services.drift.detection import (
    ALL_CODES,
    Detection,
    detect,
    first_day_read,
    span_starts_read,
    windows_for,
)
from services.drift.series import DayStat, cell_series
from services.drift.summaries import summarize, summary_span_starts, summary_start
from tests.unit.series_reading import read

AS_OF = dt.date(2026, 6, 30)
CONFIG = DetectionConfig()


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
        start=windows.baseline.start,
        days=CONFIG.baseline_window_days,
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
    assert evidence.current_count == 600 and evidence.baseline_count == 3600
    assert evidence.current_value > 0.2 and evidence.baseline_value < 0.12
    assert evidence.q_value <= 0.10 and evidence.p_value < 1e-6
    assert evidence.baseline_interval is not None and evidence.current_interval is not None
    assert (
        evidence.current_interval.lower <= evidence.current_value <= evidence.current_interval.upper
    )
    assert finding.dollars_at_stake_cents > 0
    assert "Aetna now denies" in finding.summary


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
        "Big", "", per_day=2000, denial_rate=0.10, start=windows.baseline.start,
        days=CONFIG.baseline_window_days,
    )  # fmt: skip
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
        start=windows.baseline.start,
        days=CONFIG.baseline_window_days,
    )
    stats += _stats(
        "Zero", "", per_day=10, denial_rate=0.3, start=windows.current.start, days=30, seed=4
    )
    findings = [f for f in detect_days(stats, AS_OF, CONFIG).findings if f.metric == "DENIAL_RATE"]
    assert findings and findings[0].evidence.baseline_value == 0.0


def test_small_payers_are_skipped_and_small_groups_roll_up() -> None:
    windows = windows_for(AS_OF, CONFIG)
    tiny = _stats("Tiny", "", per_day=1, denial_rate=0.5, start=windows.baseline.start, days=120)
    groups = [
        *_history("Split", "RADIOLOGY", denial_rate=0.3),
        *_stats(
            "Split",
            "LABORATORY",
            per_day=1,
            denial_rate=0.1,
            start=windows.baseline.start,
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


def test_a_few_days_spike_is_not_a_drift_but_the_same_change_held_for_weeks_is() -> None:
    """A finding must hold on the windows ending each of the days before the run's too."""
    windows = windows_for(AS_OF, CONFIG)
    spike_start = windows.current.start + dt.timedelta(days=25)
    stats = [
        *_stats("Aetna", "RADIOLOGY", per_day=20, start=windows.baseline.start,
                days=CONFIG.baseline_window_days, denial_rate=0.10),
        *_stats("Aetna", "RADIOLOGY", per_day=20, start=windows.current.start, days=25, seed=2,
                denial_rate=0.10),
        # The last five days: nine claims in ten denied.
        *_stats("Aetna", "RADIOLOGY", per_day=20, start=spike_start, days=5, seed=3,
                denial_rate=0.9),
    ]  # fmt: skip
    held = detect_days(_history("Aetna", denial_rate=0.25), AS_OF, CONFIG)
    assert [f.metric for f in held.findings].count("DENIAL_RATE") == 1
    spiked = detect_days(stats, AS_OF, CONFIG)
    assert "DENIAL_RATE" not in [f.metric for f in spiked.findings]
    assert ("Aetna", ALL_CODES, "DENIAL_RATE") in spiked.tested
    # The run's own windows alone would have called the spike a drift.
    alone = detect_days(stats, AS_OF, CONFIG, persistence_days=0)
    assert "DENIAL_RATE" in [f.metric for f in alone.findings]


def test_many_true_drifts_do_not_carry_a_chance_excursion_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten payers drifting make Benjamini–Hochberg's cut-off ten times looser; the cap at
    twice the Bonferroni bound keeps a small payer's chance rise out all the same."""
    windows = windows_for(AS_OF, CONFIG)
    stats = [s for n in range(10) for s in _history(f"Drifting{n}", denial_rate=0.4)]
    stats += _stats(
        "Noise", "", per_day=5, denial_rate=0.10, start=windows.baseline.start,
        days=CONFIG.baseline_window_days, seed=7,
    )  # fmt: skip
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
    assert sum(s.histogram_day.size for s in read_by_span) * 4 < sum(
        s.histogram_day.size for s in cell_series(stats)
    )
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

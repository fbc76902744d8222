"""The accuracy evaluation's own arithmetic: daily statistics as ingest counts them, how
alarms are judged true or false and counted by month, the customers' plans, what counts as
detectable, and the oracle's calibration. The evaluation itself runs with `make eval`, not
here."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from devtools import evaluation, oracle
from devtools.evaluation import (
    Alarm,
    AlarmKey,
    DriftOutcome,
    Effect,
    PowerResult,
    PrecisionTally,
    ReferenceCells,
    daily_stats,
    first_detection,
    opened_alarms,
)
from devtools.synthetic import (
    CODE_GROUP_SHARES,
    Drift,
    NewPayer,
    Scenario,
    VolumeChange,
    generate_claims,
    usual_monthly_claims,
    write_835,
    write_csv,
)
from services.drift.series import DayStat, PendingStat
from services.ingest.copy_lines import Encoder
from services.ingest.daily_statistics import DAY_AMOUNTS, CellSums
from services.ingest.denials import classify
from services.ingest.parsing import UploadParser
from services.ingest.records import Adjustment, ClaimRecord, ClaimStatus, ServiceLine

DAY = dt.date(2025, 6, 10)


def claim(number: int, **fields: object) -> ClaimRecord:
    defaults: dict[str, object] = {
        "source_line": number,
        "claim_id": f"C{number}",
        "payer_name": "Aetna",
        "procedure_codes": ("99213",),
        "service_date": DAY - dt.timedelta(days=12),
        "submitted_date": DAY - dt.timedelta(days=10),
        "decision_date": DAY,
        "billed_cents": 200_00,
        "allowed_cents": 120_00,
        "paid_cents": 100_00,
        "patient_responsibility_cents": 20_00,
    }
    record = ClaimRecord(**{**defaults, **fields})  # type: ignore[arg-type]
    classify(record)  # as ingest's parsers do
    return record


def hand_made_claims() -> Iterator[ClaimRecord]:
    """A generator, so `daily_stats` must manage with one pass."""
    yield claim(1)
    # Denied for two reasons (CO-45 is the contractual write-down, not a denial reason).
    yield claim(
        2,
        status=ClaimStatus.DENIED,
        allowed_cents=0,
        paid_cents=0,
        patient_responsibility_cents=0,
        adjustments=(
            Adjustment("CO", "50", 150_00),
            Adjustment("CO", "45", 30_00),
            Adjustment("CO", "16", 20_00),
        ),
    )
    # No allowed amount sent: ingest takes paid + patient responsibility. No submitted date:
    # days count from the service date.
    yield claim(3, allowed_cents=None, paid_cents=80_00, submitted_date=None)
    # Partially denied: its codes count, its billed amount is not denied billed.
    yield claim(
        4,
        status=ClaimStatus.PARTIAL,
        adjustments=(Adjustment("CO", "50", 40_00),),
        lines=(ServiceLine("99213", 200_00, 100_00, 120_00),),
    )
    # Another group, another day; decided before it was submitted (bad data): no days value.
    yield claim(5, procedure_codes=("80053",), decision_date=DAY + dt.timedelta(days=1))
    yield claim(
        6,
        procedure_codes=(),
        decision_date=DAY + dt.timedelta(days=1),
        submitted_date=DAY + dt.timedelta(days=3),
    )
    # Not decided, or reversed: left out.
    yield claim(7, status=ClaimStatus.PENDING, decision_date=None, allowed_cents=None)
    yield claim(8, status=ClaimStatus.REVERSED)


def test_daily_stats_sum_each_payer_group_and_day_as_ingest_does() -> None:
    counted = daily_stats(hand_made_claims())
    stats = counted.days

    assert [(s.code_group, s.day) for s in stats] == [
        ("", DAY + dt.timedelta(days=1)),
        ("EVALUATION_MANAGEMENT", DAY),
        ("LABORATORY", DAY + dt.timedelta(days=1)),
    ]
    no_code, office, lab = stats
    assert office == DayStat(
        payer="Aetna",
        code_group="EVALUATION_MANAGEMENT",
        day=DAY,
        decided=4,
        denied=1,
        partially_denied=1,
        decision_days={10: 3, 12: 1},
        billed_cents=4 * 200_00,
        allowed_cents=120_00 + 0 + (80_00 + 20_00) + 120_00,
        paid_cents=100_00 + 0 + 80_00 + 100_00,
        denied_billed_cents=200_00,
        carc_counts={"CO-50": 2, "CO-16": 1},
        patient_responsibility_cents=20_00 + 0 + 20_00 + 20_00,
    )
    assert (lab.decided, lab.decision_days) == (1, {11: 1})
    assert (no_code.decided, no_code.decision_days) == (1, {})
    # The pending claim, on the day it was submitted.
    assert counted.pending == [
        PendingStat("Aetna", "EVALUATION_MANAGEMENT", DAY - dt.timedelta(days=10), 1)
    ]


# A payer × code group × day of the statistics.
Cell = tuple[str, str, dt.date]


def ingest_counts(body: bytes) -> tuple[dict[Cell, CellSums], dict[Cell, int]]:
    """What ingest counts of a file uploaded by a customer with no claims yet: its rows
    parsed and classified, encoded, and the new claims summed as the upload writes them; and
    its pending claims by payer, code group and the day they started."""
    parser = UploadParser(max_bytes=len(body))
    # More claims than the file can hold a row for: the sums are taken once, at the end.
    encoder = Encoder("acme", "u_1", count_fresh=True, count_every=len(body), canonical={})
    payers: dict[str, str] = {}
    for batch in (parser.feed(body), parser.close()):
        staged = encoder.encode(batch)
        assert not staged.repeated and not batch.rejections
        payers.update((uid, name) for uid, _, _, name in staged.new_payers)
    sums = encoder.take_sums()
    return (
        {(payers[uid], group, day): cell for (uid, group, day), cell in sums.cells().items()},
        {(payers[uid], group, day): n for (uid, group, day), n in sums.pending().items()},
    )


# DayStat's field of each of ingest's day amounts.
DAY_STAT_FIELD = {
    "decided_claims": "decided",
    "denied_claims": "denied",
    "partially_denied_claims": "partially_denied",
}


@pytest.mark.parametrize("write", [write_csv, write_835], ids=["CSV", "835"])
def test_daily_stats_of_generated_claims_are_what_ingest_counts_of_their_file(
    write: Callable[[Scenario, io.StringIO], int],
) -> None:
    scenario = Scenario(claims=3_000, days=60, payers=5)
    counted = daily_stats(generate_claims(scenario))
    file = io.StringIO()
    write(scenario, file)
    cells, pending = ingest_counts(file.getvalue().encode())

    assert {
        (s.payer, s.code_group, s.day): CellSums(
            tuple(getattr(s, DAY_STAT_FIELD.get(name, name)) for name in DAY_AMOUNTS),
            dict(s.decision_days),
            dict(s.carc_counts),
        )
        for s in counted.days
    } == cells
    assert sum(s.denied for s in counted.days) > 0
    assert sum(s.patient_responsibility_cents for s in counted.days) > 0
    # An 835 holds remittances: its pending claims are not in it.
    if write is write_csv:
        assert {(p.payer, p.code_group, p.started): p.claims for p in counted.pending} == pending
        assert counted.pending


def day(n: int) -> dt.date:
    return dt.date(2025, 11, 1) + dt.timedelta(days=n)


AETNA_RATE: AlarmKey = ("Aetna", "", "DENIAL_RATE")
AETNA_LAB_RATE: AlarmKey = ("Aetna", "LABORATORY", "DENIAL_RATE")
CIGNA_DAYS: AlarmKey = ("Cigna", "", "DECISION_DAYS")


def test_an_alarm_opens_when_a_finding_appears_and_again_after_it_went_away() -> None:
    runs = [
        (day(0), {CIGNA_DAYS}),
        (day(1), {CIGNA_DAYS, AETNA_RATE}),
        (day(2), {AETNA_RATE}),
        (day(3), {AETNA_RATE, CIGNA_DAYS}),
        (day(4), set()),
    ]

    assert opened_alarms(runs) == [
        Alarm(day(0), *CIGNA_DAYS),
        Alarm(day(1), *AETNA_RATE),
        Alarm(day(3), *CIGNA_DAYS),
    ]


DRIFTS = (Drift("Aetna", day(5), "denial_rate", factor=2.0),)


def test_alarms_of_a_drifted_payer_are_one_true_episode_and_the_rest_are_false() -> None:
    tally = PrecisionTally()
    tally.add(
        "acme",
        [
            Alarm(day(2), *AETNA_RATE),  # before the drift started
            Alarm(day(6), *AETNA_RATE),
            Alarm(day(7), *AETNA_LAB_RATE),
            Alarm(day(7), "Aetna", "", "DECISION_DAYS"),  # not the metric that drifted
            Alarm(day(8), *CIGNA_DAYS),
            Alarm(day(9), "Cigna", "MEDICINE", "DECISION_DAYS"),
        ],
        DRIFTS,
    )

    assert tally.true_events == Counter({"DENIAL_RATE": 2})
    assert tally.false_events == Counter({"DENIAL_RATE": 1, "DECISION_DAYS": 3})
    assert tally.event_precision("DENIAL_RATE") == pytest.approx(2 / 3)
    # Aetna's denial rate is both a true and (before its start) a false episode.
    assert tally.episode_precision("DENIAL_RATE") == pytest.approx(1 / 2)
    assert tally.episode_precision("DECISION_DAYS") == 0.0
    assert tally.episode_precision("PAYMENT_RATIO") is None


def test_a_drift_is_found_by_the_first_run_from_its_start_flagging_its_payer() -> None:
    runs = [
        (day(4), {AETNA_RATE}),  # open before the start: not a detection of it
        (day(5), {CIGNA_DAYS}),
        (day(6), {("Aetna", "", "DECISION_DAYS")}),
        (day(8), {AETNA_LAB_RATE}),
        (day(9), {AETNA_RATE}),
    ]

    assert first_detection(DRIFTS[0], runs) == day(8)
    assert first_detection(DRIFTS[0], runs[:3]) is None


# --- False alarms by month ---------------------------------------------------------------------

HARD_CASES = Scenario(
    claims=5_000,
    payers=6,
    drifts=(Drift("Aetna", day(5), "denial_rate", factor=2.0),),
    new_payers=(NewPayer("Cigna", dt.date(2025, 6, 1)),),
    volume_changes=(VolumeChange("Humana", dt.date(2025, 4, 1), 2.0),),
)


def test_false_alarms_are_the_alarms_on_payers_without_drift_by_the_month_they_opened() -> None:
    alarms = [
        Alarm(dt.date(2025, 1, 20), *AETNA_RATE),  # a drifted payer: precision's business
        Alarm(dt.date(2025, 1, 21), "Cigna", "", "DECISION_DAYS"),
        Alarm(dt.date(2025, 1, 31), "Humana", "LABORATORY", "DENIAL_RATE"),
        Alarm(dt.date(2025, 2, 1), "UnitedHealthcare", "", "DENIAL_REASON_MIX"),
        Alarm(dt.date(2025, 12, 31), "UnitedHealthcare", "", "DENIAL_REASON_MIX"),
    ]

    pending = "one-sided Poisson test of the claims pending past 24 days (the baseline's …)"
    tests = {(dt.date(2025, 1, 21), ("Cigna", "", "DECISION_DAYS")): pending}

    false = evaluation.undrifted_alarms(alarms, HARD_CASES, tests)
    months = evaluation.false_alarms_by_month(false)

    assert [(one.alarm.payer, one.role, one.test) for one in false] == [
        ("Cigna", "new payer", "one-sided Poisson test of the claims pending past N days"),
        ("Humana", "volume ×2", ""),
        ("UnitedHealthcare", "", ""),
        ("UnitedHealthcare", "", ""),
    ]
    assert months[0] == Counter({"DECISION_DAYS": 1, "DENIAL_RATE": 1})
    assert months[1] == months[11] == Counter({"DENIAL_REASON_MIX": 1})
    assert sum(m.total() for m in months[2:11]) == 0
    # Five of six payers have no drift: a month of this customer is 5/6 of a customer-month.
    assert evaluation.exposure(HARD_CASES) == pytest.approx(5 / 6)
    assert evaluation.exposure(Scenario(payers=6)) == 1.0


# --- The customers ------------------------------------------------------------------------------


def test_runs_cover_2025_every_step() -> None:
    assert evaluation.run_days(1)[0] == dt.date(2025, 1, 1)
    assert len(evaluation.run_days(1)) == 365 and evaluation.run_days(1)[-1] == dt.date(
        2025, 12, 31
    )
    every_third = evaluation.run_days(3)
    assert {(b - a).days for a, b in itertools.pairwise(every_third)} == {3}
    assert every_third[-1] > dt.date(2025, 12, 28)


def test_customers_hold_the_hard_cases_and_drifts_in_every_delay_band() -> None:
    plans = evaluation.customer_plans(6, seed=7, step=1)

    in_band: Counter[tuple[str, float, float]] = Counter()
    for plan in plans:
        scenario = plan.scenario
        assert scenario.start <= dt.date(2023, 12, 31) and scenario.end == dt.date(2025, 12, 31)
        assert len(plan.run_days) == 365
        before, inside = sorted(n.first_service for n in scenario.new_payers)
        assert dt.date(2024, 9, 1) <= before <= dt.date(2024, 12, 31)
        assert dt.date(2025, 1, 1) <= inside <= dt.date(2025, 12, 31)
        assert [v.factor for v in scenario.volume_changes] == [2.0]
        drifted = [d.payer for d in scenario.drifts]
        assert len(set(drifted)) == len(drifted)
        hard = {n.payer for n in scenario.new_payers} | {v.payer for v in scenario.volume_changes}
        assert not hard & set(drifted)
        if not scenario.drifts:
            continue
        assert any(d.start.month == 1 for d in scenario.drifts)
        assert all(dt.date(2025, 1, 2) <= d.start <= dt.date(2025, 11, 10) for d in scenario.drifts)
        monthly = usual_monthly_claims(scenario)
        for d in scenario.drifts:
            volume = monthly[d.payer] * (CODE_GROUP_SHARES[d.code_group] if d.code_group else 1)
            for _, metric, size, low, high, _ in evaluation.DELAY_TARGETS:
                size_of = {"denial_rate": d.factor, "decision_days": d.days}.get(d.metric)
                if d.metric == metric and size_of == size and low <= volume < high:
                    in_band[metric, low, high] += 1
    assert sum(bool(p.scenario.drifts) for p in plans) == 3
    assert len(in_band) == len(evaluation.DELAY_TARGETS)
    assert min(in_band.values()) >= 4


# --- Recall, delays, the oracle ------------------------------------------------------------------

DOUBLED = Effect("DENIAL_RATE", "×2", denial_factor=2.0)
PLUS_FIVE = Effect("DECISION_DAYS", "+5", extra_days=5.0)


def power(effect: Effect, volume: int, detected: int) -> PowerResult:
    return PowerResult(volume, effect, 100, detected, 0, 0.0, 0.0)


def outcome(drift: Drift, monthly: float, detected: dt.date | None = None) -> DriftOutcome:
    return DriftOutcome(drift, detected, False, monthly, None)


def test_detectable_drifts_are_those_the_power_table_finds_in_smaller_cells() -> None:
    table = [power(DOUBLED, 250, 80), power(DOUBLED, 500, 97), power(PLUS_FIVE, 60, 90)]
    doubled = Drift("Aetna", day(5), "denial_rate", factor=2.0)

    assert evaluation.detectable(outcome(doubled, 700), table)
    assert not evaluation.detectable(outcome(doubled, 400), table)  # 250's power is too low
    tripled = Drift("Aetna", day(5), "denial_rate", factor=3.0)
    assert evaluation.detectable(outcome(tripled, 520), table)
    slower = Drift("Aetna", day(5), "decision_days", days=4.0)  # smaller than any row's
    assert not evaluation.detectable(outcome(slower, 5_000), table)
    cheaper = Drift("Aetna", day(5), "payment_ratio", ratio_drop=0.2)  # no row at all
    assert not evaluation.detectable(outcome(cheaper, 5_000), table)


def test_a_delay_is_days_from_start_to_first_detection_and_never_when_not_found() -> None:
    doubled = Drift("Aetna", dt.date(2025, 3, 1), "denial_rate", factor=2.0)
    assert outcome(doubled, 500, dt.date(2025, 3, 12)).delay == 11
    assert outcome(doubled, 500).delay == math.inf


def test_the_oracle_alarms_at_the_detectors_false_alarm_rate_on_the_same_cells() -> None:
    rng = np.random.default_rng(5)
    days = evaluation.RUN_YEAR_DAYS
    references = [
        ReferenceCells(
            [("Aetna", ""), ("Cigna", "")],
            {m: rng.normal(-0.3, 1.0, size=(2, days)) for m in evaluation.ORACLE_METRICS},
            Counter({"DENIAL_RATE": 3, "DENIAL_REASON_MIX": 40}),
        ),
        ReferenceCells(
            [("Humana", "")],
            {m: rng.normal(-0.3, 1.0, size=(1, days)) for m in evaluation.ORACLE_METRICS},
            Counter({"DENIAL_RATE": 1, "DECISION_DAYS": 2}),
        ),
    ]

    calibrations = evaluation.calibrate_oracle(references)

    rate = calibrations["DENIAL_RATE"]
    assert rate.detector_alarms == 4 and rate.cell_months == pytest.approx(36, rel=0.01)
    assert rate.calibration.alarms_per_cell_month <= rate.detector_rate
    stacked = np.concatenate([r.increments["DENIAL_RATE"] for r in references])
    assert oracle.alarms(stacked, rate.calibration.threshold).sum() <= 4
    assert oracle.alarms(stacked, rate.calibration.threshold * 0.99).sum() > 4
    assert calibrations["DECISION_DAYS"].detector_alarms == 2
    # The oracle's delay: from the drift's start to its first alarm at that threshold.
    start = dt.date(2025, 2, 1)
    step = np.zeros(days)
    step[(start - evaluation.RUN_START).days + 4] = rate.calibration.threshold
    found = DriftOutcome(Drift("Aetna", start, "denial_rate", factor=2.0), None, False, 500, step)
    assert evaluation.oracle_delay(found, calibrations) == 4


def test_a_customer_is_measured_drift_by_drift_with_the_oracles_series_of_its_cells() -> None:
    doubled = Drift("UnitedHealthcare", dt.date(2025, 3, 3), "denial_rate", factor=2.0)
    slower = Drift("Medicare Part B", dt.date(2025, 5, 5), "decision_days", days=5.0)
    scenario = Scenario(
        customer="small",
        start=evaluation.DATA_START,
        days=(evaluation.DATA_END - evaluation.DATA_START).days + 1,
        claims=60_000,
        payers=5,
        drifts=(doubled, slower),
    )
    plan = evaluation.CustomerPlan(scenario, (dt.date(2025, 2, 1), dt.date(2025, 7, 1)))

    result = evaluation.evaluate_customer(plan)

    assert [o.drift for o in result.outcomes] == [doubled, slower]
    usual = usual_monthly_claims(scenario)
    for measured in result.outcomes:
        assert measured.monthly_claims == pytest.approx(usual[measured.drift.payer], rel=0.2)
        increments = measured.oracle_increments
        assert increments is not None and increments.size == evaluation.RUN_YEAR_DAYS
        start = (measured.drift.start - evaluation.RUN_START).days
        # The oracle's statistic climbs once the drift has begun, not before.
        assert increments[start + 10 :].mean() > 0 > increments[30:start].mean()
    reference = result.reference
    assert reference.cells and all(
        payer not in {doubled.payer, slower.payer} for payer, _ in reference.cells
    )
    assert all(a.shape == (len(reference.cells), 365) for a in reference.increments.values())
    assert all(
        one.alarm.payer not in {doubled.payer, slower.payer} for one in result.undrifted_alarms
    )
    assert result.exposure == pytest.approx(3 / 5) and result.runs == 2


def test_a_detector_without_false_alarms_holds_the_oracle_to_the_rates_upper_bound() -> None:
    """No false alarm in the cell-months seen: the oracle's threshold is set for three in as
    many (the 95 % upper bound), not past everything its statistic reaches."""
    rng = np.random.default_rng(8)
    increments = rng.normal(-0.3, 1.0, size=(20, evaluation.RUN_YEAR_DAYS))
    references = [
        ReferenceCells(
            [(f"P{n}", "") for n in range(20)],
            {m: increments for m in evaluation.ORACLE_METRICS},
            Counter(),
        )
    ]
    calibration = evaluation.calibrate_oracle(references)["DENIAL_RATE"]
    assert calibration.detector_alarms == 0
    allowed = 3 / calibration.cell_months
    assert calibration.target_rate == pytest.approx(allowed)
    assert 0 < oracle.alarms(increments, calibration.calibration.threshold).sum() <= 3

"""The accuracy evaluation's own arithmetic: daily statistics as ingest counts them, and how
alarms are judged true or false. The evaluation itself runs with `make eval`, not here."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from devtools.evaluation import (
    Alarm,
    AlarmKey,
    PrecisionTally,
    daily_stats,
    first_detection,
    opened_alarms,
)
from devtools.synthetic import Drift, Scenario, generate_claims, write_835, write_csv
from services.drift.series import DayStat
from services.ingest.copy_lines import Encoder
from services.ingest.daily_statistics import CellSums
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
    stats = daily_stats(hand_made_claims())

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
    )
    assert (lab.decided, lab.decision_days) == (1, {11: 1})
    assert (no_code.decided, no_code.decision_days) == (1, {})


# A payer × code group × day of the statistics.
Cell = tuple[str, str, dt.date]


def ingest_counts(body: bytes) -> dict[Cell, CellSums]:
    """What ingest counts of a file uploaded by a customer with no claims yet: its rows
    parsed and classified, encoded, and the new claims summed as the upload writes them."""
    parser = UploadParser(max_bytes=len(body))
    # More claims than the file can hold a row for: the sums are taken once, at the end.
    encoder = Encoder("acme", "u_1", count_fresh=True, count_every=len(body), canonical={})
    payers: dict[str, str] = {}
    for batch in (parser.feed(body), parser.close()):
        staged = encoder.encode(batch)
        assert not staged.repeated and not batch.rejections
        payers.update((uid, name) for uid, _, _, name in staged.new_payers)
    cells = encoder.take_sums().cells()
    return {(payers[uid], group, day): sums for (uid, group, day), sums in cells.items()}


@pytest.mark.parametrize("write", [write_csv, write_835], ids=["CSV", "835"])
def test_daily_stats_of_generated_claims_are_what_ingest_counts_of_their_file(
    write: Callable[[Scenario, io.StringIO], int],
) -> None:
    scenario = Scenario(claims=3_000, days=60, payers=5)
    stats = daily_stats(generate_claims(scenario))
    file = io.StringIO()
    write(scenario, file)

    assert {
        (s.payer, s.code_group, s.day): CellSums(
            (
                s.decided, s.denied, s.partially_denied, s.billed_cents, s.allowed_cents,
                s.paid_cents, s.denied_billed_cents,
            ),
            dict(s.decision_days),
            dict(s.carc_counts),
        )
        for s in stats
    } == ingest_counts(file.getvalue().encode())  # fmt: skip
    assert sum(s.denied for s in stats) > 0


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

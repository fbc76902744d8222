"""The synthetic claims generator: deterministic, realistic enough, and drifting as told."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from devtools import synthetic
from devtools.synthetic import Drift, Scenario, generate_claims, write_835, write_csv
from services.ingest.claim_statistics import counted_allowed_cents, decision_days
from services.ingest.code_groups import code_group
from services.ingest.records import ClaimRecord, ClaimStatus

DRIFT_START = dt.date(2025, 7, 1)
DRIFTS = (
    Drift("UnitedHealthcare", DRIFT_START, "denial_rate", factor=2.0),
    Drift("Medicare Part B", DRIFT_START, "decision_days", days=7),
    Drift("Blue Cross Blue Shield of Texas", DRIFT_START, "payment_ratio", ratio_drop=0.10),
    Drift("Aetna", DRIFT_START, "denial_rate", factor=3.0, code_group="RADIOLOGY"),
)


@pytest.fixture(scope="module")
def baseline() -> list[ClaimRecord]:
    return list(generate_claims(Scenario(claims=40_000)))


@pytest.fixture(scope="module")
def drifted() -> list[ClaimRecord]:
    return list(generate_claims(Scenario(claims=40_000, drifts=DRIFTS)))


def decided(
    claims: Iterable[ClaimRecord], payer: str, first: dt.date, last: dt.date
) -> list[ClaimRecord]:
    """The payer's claims decided in [first, last)."""
    return [
        c
        for c in claims
        if c.payer_name == payer and c.decision_date is not None and first <= c.decision_date < last
    ]


def days_to_decision(claims: Iterable[ClaimRecord]) -> list[int]:
    """As ingest counts them (every generated claim has a submission date)."""
    return [days for c in claims if (days := decision_days(c)) is not None]


def denial_rate(claims: list[ClaimRecord]) -> float:
    return sum(c.denied for c in claims) / len(claims)


def halves() -> list[tuple[dt.date, dt.date]]:
    """Before and after the drift start, from February (decisions ramp up in January)."""
    return [(dt.date(2025, 2, 1), DRIFT_START), (DRIFT_START, dt.date(2026, 1, 1))]


def paid_to_allowed(claims: list[ClaimRecord]) -> float:
    return sum(c.paid_cents for c in claims) / sum(counted_allowed_cents(c) for c in claims)


def settled_to_allowed(claims: list[ClaimRecord]) -> float:
    settled = sum(c.paid_cents + c.patient_responsibility_cents for c in claims)
    return settled / sum(counted_allowed_cents(c) for c in claims)


# --- Determinism -----------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_claims() -> None:
    def csv_text(scenario: Scenario) -> str:
        out = io.StringIO()
        write_csv(scenario, out)
        return out.getvalue()

    def x12_text(scenario: Scenario) -> str:
        out = io.StringIO()
        write_835(scenario, out)
        return out.getvalue()

    scenario = Scenario(claims=1_500, days=90, drifts=DRIFTS[:1])
    assert csv_text(scenario) == csv_text(scenario)
    assert x12_text(scenario) == x12_text(scenario)
    assert csv_text(scenario) != csv_text(Scenario(claims=1_500, days=90, seed=8))


def test_a_drift_changes_only_the_claims_it_targets(
    baseline: list[ClaimRecord], drifted: list[ClaimRecord]
) -> None:
    # Same claims, one by one: only claims of a drifted payer (and code group) that the
    # payer would decide on or after the drift start may differ.
    assert len(baseline) == len(drifted)
    targets = {(d.payer, d.code_group) for d in DRIFTS}
    changed = [(b, d) for b, d in zip(baseline, drifted, strict=True) if b != d]
    assert changed
    for before, _ in changed:
        group = code_group(before.procedure_codes[0])
        assert {(before.payer_name, None), (before.payer_name, group)} & targets
        assert before.decision_date is not None and before.decision_date >= DRIFT_START
    changed_payers = {b.payer_name for b, _ in changed}
    assert changed_payers == {d.payer for d in DRIFTS}


# --- Realism ---------------------------------------------------------------------------------


def test_payer_volumes_are_long_tailed(baseline: list[ClaimRecord]) -> None:
    volumes = Counter(c.payer_name for c in baseline)
    names = synthetic.payer_names(Scenario())
    assert set(volumes) == set(names) and len(names) == 25
    ranked = [volumes[name] for name in names]
    assert ranked[:6] == sorted(ranked, reverse=True)[:6]  # names come largest first
    assert sum(ranked[:3]) > 0.4 * len(baseline)  # a few big payers
    assert ranked[0] > 10 * ranked[-1] > 0  # and a long tail of small ones
    assert len({c.payer_id for c in baseline}) == 25  # one stable id per payer


def test_pending_claims_are_as_many_as_asked_plus_those_not_decided_by_the_extract_date(
    baseline: list[ClaimRecord],
) -> None:
    end = Scenario().end
    # Claims serviced long before the extract date are pending only when held (3 %).
    old = [c for c in baseline if c.service_date < end - dt.timedelta(days=150)]  # type: ignore[operator]
    assert 0.02 < sum(c.status is ClaimStatus.PENDING for c in old) / len(old) < 0.04
    # Recent claims are mostly still waiting for the payer.
    last_week = [c for c in baseline if c.service_date > end - dt.timedelta(days=7)]  # type: ignore[operator]
    assert sum(c.status is ClaimStatus.PENDING for c in last_week) / len(last_week) > 0.95
    for claim in baseline:
        if claim.status is ClaimStatus.PENDING:
            assert claim.decision_date is None and claim.allowed_cents is None
            assert claim.paid_cents == 0 and not claim.adjustments
        else:
            assert claim.decision_date is not None and claim.decision_date <= end


def test_decided_claims_balance_and_look_like_remittances(baseline: list[ClaimRecord]) -> None:
    decided_claims = [c for c in baseline if c.decision_date is not None]
    for claim in decided_claims:
        assert claim.billed_cents == claim.paid_cents + sum(
            a.amount_cents for a in claim.adjustments
        )
        assert all(a.amount_cents > 0 for a in claim.adjustments)
        patient = sum(a.amount_cents for a in claim.adjustments if a.group_code == "PR")
        assert patient == claim.patient_responsibility_cents
        assert claim.submitted_date > claim.service_date  # type: ignore[operator]
        assert claim.decision_date > claim.submitted_date  # type: ignore[operator]
        if claim.denied:
            assert claim.status is ClaimStatus.DENIED
            assert claim.allowed_cents == claim.paid_cents == 0
            assert [a.group_code for a in claim.adjustments] == ["CO"]
        else:
            assert claim.status is ClaimStatus.PAID
            assert 0 < claim.allowed_cents <= claim.billed_cents  # type: ignore[operator]
    denial_reasons = Counter(
        a.reason_code for c in decided_claims if c.denied for a in c.adjustments
    )
    # CO-27: plans changed on January 1 (eligibility).
    assert set(denial_reasons) == {"197", "16", "50", "29", "18", "96", "4", "11", "27"}
    overall = sum(c.denied for c in decided_claims) / len(decided_claims)
    assert 0.05 < overall < 0.12
    assert statistics.median(days_to_decision(decided_claims)) in range(10, 21)
    allowed_share = sum(counted_allowed_cents(c) for c in decided_claims if not c.denied) / sum(
        c.billed_cents for c in decided_claims if not c.denied
    )
    assert 0.4 < allowed_share < 0.8


# --- Injected drift --------------------------------------------------------------------------


def test_a_denial_rate_drift_multiplies_the_payer_denial_rate(drifted: list[ClaimRecord]) -> None:
    before = decided(drifted, "UnitedHealthcare", dt.date(2025, 2, 1), DRIFT_START)
    after = decided(drifted, "UnitedHealthcare", DRIFT_START, dt.date(2026, 1, 1))
    assert 1.6 < denial_rate(after) / denial_rate(before) < 2.4
    # A payer without a denial drift keeps its rate.
    medicare = [decided(drifted, "Medicare Part B", *window) for window in halves()]
    assert 0.75 < denial_rate(medicare[1]) / denial_rate(medicare[0]) < 1.33


def test_a_decision_days_drift_shifts_the_median_by_about_the_days(
    drifted: list[ClaimRecord],
) -> None:
    before = decided(drifted, "Medicare Part B", dt.date(2025, 2, 1), DRIFT_START)
    after = decided(
        drifted, "Medicare Part B", DRIFT_START + dt.timedelta(days=7), dt.date(2026, 1, 1)
    )
    shift = statistics.median(days_to_decision(after)) - statistics.median(days_to_decision(before))
    assert 5.5 <= shift <= 8.5


def test_a_payment_ratio_drift_lowers_paid_to_allowed(
    baseline: list[ClaimRecord], drifted: list[ClaimRecord]
) -> None:
    payer = "Blue Cross Blue Shield of Texas"
    after, unchanged = (
        decided(c, payer, DRIFT_START, dt.date(2026, 1, 1)) for c in (drifted, baseline)
    )
    assert paid_to_allowed(after) == pytest.approx(0.9 * paid_to_allowed(unchanged), rel=0.005)
    before = decided(drifted, payer, dt.date(2025, 4, 1), DRIFT_START)
    # Deductibles move dollars from the payer to the patient over the year; what the payer
    # settles (paid and the patient's share) does not move with them, and drops with the drift.
    assert settled_to_allowed(after) < settled_to_allowed(before) - 0.03
    # The payer says why it paid less: a claim-specific discount on each paid claim.
    assert all(
        ("CO", "131") in {(a.group_code, a.reason_code) for a in c.adjustments}
        for c in after
        if c.paid_cents
    )


def test_drifts_name_known_payers_and_parse_from_the_command_line_syntax() -> None:
    with pytest.raises(ValueError, match="not one of this scenario"):
        Scenario(drifts=(Drift("Aetna Inc", DRIFT_START, "denial_rate", factor=2),))
    with pytest.raises(ValueError, match="Aetna"):
        Scenario(payers=3, drifts=(Drift("Aetna", DRIFT_START, "denial_rate", factor=2),))
    with pytest.raises(ValueError, match="factor"):
        Drift("Aetna", DRIFT_START, "denial_rate", days=5)
    assert synthetic.parse_drift(
        "payer=Blue Cross Blue Shield of Texas, metric=decision_days, days=4.5,"
        " start=2025-09-01, code_group=RADIOLOGY"
    ) == Drift(
        "Blue Cross Blue Shield of Texas",
        dt.date(2025, 9, 1),
        "decision_days",
        days=4.5,
        code_group="RADIOLOGY",
    )
    with pytest.raises(ValueError, match="fctor"):
        synthetic.parse_drift("payer=Aetna,metric=denial_rate,fctor=2,start=2025-09-01")


# --- Seasons, new payers, volume changes ------------------------------------------------------

# Two Januaries with a settled autumn before each.
TWO_YEARS = Scenario(start=dt.date(2023, 9, 1), days=853, claims=150_000, payers=8, seed=3)
DEDUCTIBLE_KINDS = ("commercial", "blues")


@pytest.fixture(scope="module")
def two_years() -> list[ClaimRecord]:
    return list(generate_claims(TWO_YEARS))


def service_day(claim: ClaimRecord) -> dt.date:
    assert claim.service_date is not None  # the generator dates every claim
    return claim.service_date


def serviced(
    claims: Iterable[ClaimRecord], first: dt.date, last: dt.date, kinds: Iterable[str] = ()
) -> list[ClaimRecord]:
    """Decided claims serviced from `first` to `last` (inclusive), of payers of `kinds` (any
    when empty)."""
    wanted = set(kinds)
    return [
        c
        for c in claims
        if c.decision_date is not None
        and first <= service_day(c) <= last
        and (not wanted or synthetic.PAYER_KINDS[c.payer_name] in wanted)
    ]


def paid_claims(claims: Iterable[ClaimRecord]) -> list[ClaimRecord]:
    return [c for c in claims if not c.denied]


@pytest.mark.parametrize("year", [2024, 2025])
def test_deductibles_take_much_of_the_allowed_amount_in_january_every_year(
    two_years: list[ClaimRecord], year: int
) -> None:
    january = paid_claims(
        serviced(two_years, dt.date(year, 1, 1), dt.date(year, 1, 31), DEDUCTIBLE_KINDS)
    )
    autumn = paid_claims(
        serviced(two_years, dt.date(year - 1, 10, 1), dt.date(year - 1, 11, 30), DEDUCTIBLE_KINDS)
    )
    # Strong enough to read as the payer paying far less (user reports: 42 % against 76 %)...
    assert paid_to_allowed(january) < paid_to_allowed(autumn) - 0.18
    assert paid_to_allowed(january) < 0.55 < 0.7 < paid_to_allowed(autumn)
    # ...while the payer settles exactly what it did: the patient pays the difference.
    assert settled_to_allowed(january) == pytest.approx(settled_to_allowed(autumn), abs=0.002)
    assert Counter(a.reason_code for c in january for a in c.adjustments if a.group_code == "PR")[
        "1"
    ] > 0.4 * len(january)


def test_the_deductible_season_is_the_same_every_year(two_years: list[ClaimRecord]) -> None:
    shares = [
        paid_to_allowed(
            paid_claims(serviced(two_years, dt.date(y, 1, 1), dt.date(y, 2, 28), DEDUCTIBLE_KINDS))
        )
        for y in (2024, 2025)
    ]
    assert shares[0] == pytest.approx(shares[1], abs=0.03)


def eligibility_denials(claims: Iterable[ClaimRecord]) -> list[ClaimRecord]:
    return [
        c for c in claims if ("CO", "27") in {(a.group_code, a.reason_code) for a in c.adjustments}
    ]


@pytest.mark.parametrize("year", [2024, 2025])
def test_claims_of_the_first_weeks_of_january_are_denied_for_eligibility(
    two_years: list[ClaimRecord], year: int
) -> None:
    ineligible = eligibility_denials(two_years)
    assert ineligible and all(
        service_day(c).month == 1 and service_day(c).day <= 21 and c.denied for c in ineligible
    )
    first_days = serviced(two_years, dt.date(year, 1, 1), dt.date(year, 1, 10))
    autumn = serviced(two_years, dt.date(year - 1, 10, 1), dt.date(year - 1, 11, 30))
    # Enough to read as a denial rate ×1.25 and +5 points to a test that ignores seasons.
    assert denial_rate(first_days) > max(1.5 * denial_rate(autumn), denial_rate(autumn) + 0.05)
    assert len(eligibility_denials(first_days)) > 0.04 * len(first_days)


@pytest.mark.parametrize("year", [2024, 2025])
def test_decisions_due_over_the_year_end_holidays_come_later(
    two_years: list[ClaimRecord], year: int
) -> None:
    def decided_between(first: dt.date, last: dt.date) -> list[ClaimRecord]:
        return [c for c in two_years if c.decision_date and first <= c.decision_date <= last]

    holidays = decided_between(dt.date(year - 1, 12, 26), dt.date(year, 1, 10))
    autumn = decided_between(dt.date(year - 1, 10, 1), dt.date(year - 1, 11, 30))
    slower = statistics.median(days_to_decision(holidays)) - statistics.median(
        days_to_decision(autumn)
    )
    assert slower >= 3


NEW_PAYER_START = dt.date(2025, 3, 10)
LATE = Scenario(
    claims=60_000,
    payers=8,
    seed=5,
    new_payers=(synthetic.NewPayer("Aetna", NEW_PAYER_START),),
    volume_changes=(synthetic.VolumeChange("Cigna", dt.date(2025, 7, 1), 2.0),),
)


@pytest.fixture(scope="module")
def late() -> list[ClaimRecord]:
    return list(generate_claims(LATE))


def per_month(claims: Iterable[ClaimRecord], payer: str, first: dt.date, last: dt.date) -> float:
    """The payer's claims serviced from `first` to `last` (inclusive), per average month."""
    count = sum(c.payer_name == payer and first <= service_day(c) <= last for c in claims)
    return count / ((last - first).days + 1) * 365.25 / 12


def test_a_new_payer_has_no_claims_before_its_first_service_date_then_its_usual_volume(
    late: list[ClaimRecord],
) -> None:
    aetna = [c for c in late if c.payer_name == "Aetna"]
    assert min(service_day(c) for c in aetna) >= NEW_PAYER_START
    usual = synthetic.usual_monthly_claims(LATE)
    after = per_month(late, "Aetna", NEW_PAYER_START, dt.date(2025, 6, 30))
    assert after == pytest.approx(usual["Aetna"], rel=0.1)
    # The other payers keep their volume when it starts.
    for payer in ("UnitedHealthcare", "Medicare Part B"):
        for first, last in (
            (dt.date(2025, 1, 1), dt.date(2025, 3, 9)),
            (NEW_PAYER_START, dt.date(2025, 6, 30)),
        ):
            assert per_month(late, payer, first, last) == pytest.approx(usual[payer], rel=0.1)


def test_a_volume_change_doubles_a_payer_at_the_same_rates(late: list[ClaimRecord]) -> None:
    change = dt.date(2025, 7, 1)
    before = per_month(late, "Cigna", dt.date(2025, 3, 10), change - dt.timedelta(days=1))
    after = per_month(late, "Cigna", change, dt.date(2025, 12, 31))
    assert after == pytest.approx(2 * before, rel=0.1)
    cigna = [c for c in late if c.payer_name == "Cigna" and c.decision_date]
    earlier = [c for c in cigna if service_day(c) < change]
    later = [c for c in cigna if service_day(c) >= change]
    assert denial_rate(later) == pytest.approx(denial_rate(earlier), abs=0.02)
    # One fee schedule: a procedure is allowed the same amount (or its billed amount, if less).
    schedule: dict[str, set[int]] = {}
    for claim in (c for c in cigna if not c.denied):
        allowed = counted_allowed_cents(claim)
        if allowed < claim.billed_cents:
            schedule.setdefault(claim.procedure_codes[0], set()).add(allowed)
    assert schedule and all(len(amounts) == 1 for amounts in schedule.values())


def test_new_payers_and_volume_changes_name_known_payers() -> None:
    with pytest.raises(ValueError, match="new payer payer 'Aetna Inc'"):
        Scenario(new_payers=(synthetic.NewPayer("Aetna Inc", DRIFT_START),))
    with pytest.raises(ValueError, match="only once"):
        Scenario(
            new_payers=(
                synthetic.NewPayer("Aetna", DRIFT_START),
                synthetic.NewPayer("Aetna", DRIFT_START),
            )
        )
    with pytest.raises(ValueError, match="volume change payer"):
        Scenario(payers=3, volume_changes=(synthetic.VolumeChange("Aetna", DRIFT_START, 2),))
    with pytest.raises(ValueError, match="≥ 0"):
        synthetic.VolumeChange("Aetna", DRIFT_START, -1)


# --- Files -----------------------------------------------------------------------------------


def test_csv_has_the_canonical_columns_and_one_row_per_claim(tmp_path: Path) -> None:
    scenario = Scenario(claims=2_000, days=60)
    path = tmp_path / "claims.csv"
    assert write_csv(scenario, path) == 2_000
    with path.open(newline="") as stream:
        reader = csv.DictReader(stream)
        assert reader.fieldnames == [
            "claim_id", "payer", "procedure_code", "service_date", "submitted_date",
            "decision_date", "status", "billed_amount", "allowed_amount", "paid_amount",
            "patient_responsibility", "carc_codes",
        ]  # fmt: skip
        rows = list(reader)
    claims = list(generate_claims(scenario))
    assert [r["claim_id"] for r in rows] == [c.claim_id for c in claims]
    assert len({r["claim_id"] for r in rows}) == 2_000
    money = re.compile(r"\d+\.\d\d")
    for row, claim in zip(rows, claims, strict=True):
        assert re.fullmatch(r"CLM\d{9}", row["claim_id"])
        assert row["status"] == claim.status.value
        assert row["payer"] == claim.payer_name
        assert dt.date.fromisoformat(row["service_date"]) == claim.service_date
        assert all(money.fullmatch(row[k]) for k in ("billed_amount", "paid_amount"))
        assert round(float(row["paid_amount"]) * 100) == claim.paid_cents
        if claim.status is ClaimStatus.PENDING:
            assert row["decision_date"] == row["allowed_amount"] == row["carc_codes"] == ""
        else:
            assert dt.date.fromisoformat(row["decision_date"]) == claim.decision_date
            assert money.fullmatch(row["allowed_amount"])
            assert re.fullmatch(r"(CO|PR)-\d+(;(CO|PR)-\d+)*", row["carc_codes"])


def _segments(text: str) -> list[list[str]]:
    assert text.endswith("~\n")
    return [segment.split("*") for segment in text[:-2].split("~\n")]


def test_835_envelopes_count_right_and_claims_balance() -> None:
    scenario = Scenario(claims=2_000, days=90)
    out = io.StringIO()
    written = write_835(scenario, out, claims_per_transaction=7)
    text = out.getvalue()
    assert len(text.split("~\n", 1)[0]) + 1 == 106  # ISA is fixed width
    segments = _segments(text)
    assert [s[0] for s in segments[:2]] == ["ISA", "GS"]
    assert segments[2][:2] == ["ST", "835"]
    assert [s[0] for s in segments[-2:]] == ["GE", "IEA"]
    assert segments[-1][1] == "1" and segments[-1][2] == segments[0][13]  # IEA01, IEA02
    assert segments[-2][2] == segments[1][6]  # GE02 = GS06

    transactions: list[list[list[str]]] = []
    for segment in segments[2:-2]:
        if segment[0] == "ST":
            transactions.append([])
        transactions[-1].append(segment)
    assert int(segments[-2][1]) == len(transactions)  # GE01
    decided_claims = {c.claim_id: c for c in generate_claims(scenario) if c.decision_date}
    seen: list[str] = []
    for transaction in transactions:
        st, bpr, se = transaction[0], transaction[1], transaction[-1]
        assert se[0] == "SE" and int(se[1]) == len(transaction) and se[2] == st[2]
        clps = [s for s in transaction if s[0] == "CLP"]
        assert 1 <= len(clps) <= 7
        payers = [s for s in transaction if s[:2] == ["N1", "PR"]]
        assert len(payers) == 1 and payers[0][3] == "XV"
        paid_date = dt.datetime.strptime(bpr[16], "%Y%m%d").date()
        assert bpr[2] == f"{sum(float(c[4]) for c in clps):.2f}"
        for clp in clps:
            claim = decided_claims[clp[1]]
            assert claim.decision_date == paid_date
            assert claim.payer_id == payers[0][4]
            assert clp[2] == ("4" if claim.denied else "1")
        seen += [clp[1] for clp in clps]
    assert seen and sorted(seen) == sorted(decided_claims) and written == len(decided_claims)
    # Claim balancing: billed − claim-level adjustments = paid.
    for index, segment in enumerate(segments):
        if segment[0] == "CLP":
            adjustments = 0.0
            for cas in segments[index + 1 :]:
                if cas[0] != "CAS":
                    break
                adjustments += sum(float(a) for a in cas[3::3])
            assert float(segment[3]) - adjustments == pytest.approx(float(segment[4]))
    patients = [s for s in segments if s[:2] == ["NM1", "QC"]]
    assert len(patients) == written and {s[3] for s in patients} == {"SYNTHETIC"}


def test_the_command_line_writes_the_file_and_says_what_it_injected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "remit.835"
    synthetic.main(
        [
            "--claims", "500", "--days", "30", "--format", "835", "--out", str(out),
            "--drift", "payer=Aetna,metric=denial_rate,factor=2,start=2025-01-15",
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert out.read_text().startswith("ISA*")
    assert re.search(r"wrote \d+ decided claims", printed)
    assert "25 payers" in printed
    assert "Aetna: denial probability ×2 for decisions from 2025-01-15" in printed

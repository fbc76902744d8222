"""What counts as a denial (as the industry counts it, not by status alone), the codes
reported behind one, and the procedure-code groups drift is compared within."""

from __future__ import annotations

import datetime as dt

import pytest

from services.ingest.code_groups import code_group
from services.ingest.denials import classify, denial_codes
from services.ingest.records import Adjustment, ClaimRecord, ClaimStatus, ServiceLine


def claim(
    *,
    status: ClaimStatus = ClaimStatus.PAID,
    billed: int = 10000,
    paid: int = 0,
    adjustments: tuple[Adjustment, ...] = (),
    lines: tuple[ServiceLine, ...] = (),
) -> ClaimRecord:
    return ClaimRecord(
        source_line=1,
        claim_id="C1",
        payer_name="Aetna",
        status=status,
        billed_cents=billed,
        paid_cents=paid,
        adjustments=adjustments,
        lines=lines,
    )


def verdict(record: ClaimRecord) -> tuple[bool, bool, list[str]]:
    """(denied, partially denied, denial codes) once the rules have run."""
    classify(record)
    return record.denied, record.partially_denied, list(denial_codes(record))


CO_50 = Adjustment("CO", "50", 10000)
CO_45 = Adjustment("CO", "45", 2000)
PR_1 = Adjustment("PR", "1", 3000)


def test_a_claim_the_payer_calls_denied_is_denied() -> None:
    # CLP02 = 4, or a DENIED status in a CSV export, even with money and no reason given.
    assert verdict(claim(status=ClaimStatus.DENIED, paid=500)) == (True, False, [])
    assert verdict(claim(status=ClaimStatus.DENIED, adjustments=(CO_50,))) == (
        True,
        False,
        ["CO-50"],
    )


def test_nothing_paid_for_a_denial_reason_is_a_denial() -> None:
    assert verdict(claim(adjustments=(CO_45, CO_50, PR_1))) == (True, False, ["CO-50"])


def test_a_carc_from_a_csv_export_counts_though_it_has_no_amount() -> None:
    assert verdict(claim(adjustments=(Adjustment("CO", "50", 0),))) == (True, False, ["CO-50"])


def test_nothing_paid_for_the_patients_share_or_the_contract_is_not_a_denial() -> None:
    # A deductible (PR-1) and the contractual write-down (CO-45) leave the payer owing nothing.
    assert verdict(claim(adjustments=(PR_1, CO_45))) == (False, False, [])
    assert verdict(claim(adjustments=())) == (False, False, [])


def test_a_paid_claim_with_a_denial_code_is_not_denied() -> None:
    assert verdict(claim(paid=6000, adjustments=(Adjustment("OA", "23", 4000),))) == (
        False,
        False,
        [],
    )


def test_a_negative_adjustment_gives_money_back_and_is_no_denial() -> None:
    assert verdict(claim(adjustments=(Adjustment("CO", "50", -500), PR_1))) == (False, False, [])


def test_every_line_allowed_nothing_for_a_denial_reason_is_a_denial() -> None:
    lines = (ServiceLine("99213", 6000, 0, 0), ServiceLine("80053", 4000, 0, 0))
    # Paid something (interest, say), but allowed nothing on any line.
    denied = claim(paid=150, lines=lines, adjustments=(Adjustment("CO", "97", 10000, 1),))
    assert verdict(denied) == (True, False, ["CO-97"])
    patient_share = claim(paid=150, lines=lines, adjustments=(Adjustment("PR", "1", 10000, 1),))
    assert verdict(patient_share) == (False, False, [])


def test_a_line_without_an_allowed_amount_is_not_allowed_nothing() -> None:
    lines = (ServiceLine("99213", 6000, 0, 0), ServiceLine("80053", 4000, 150, None))
    assert verdict(claim(paid=150, lines=lines, adjustments=(CO_50,))) == (False, False, [])


def test_a_paid_claim_with_a_line_denied_is_partially_denied() -> None:
    lines = (ServiceLine("99213", 6000, 5000, 5000), ServiceLine("80053", 4000, 0))
    adjustments = (CO_45, Adjustment("CO", "97", 4000, 2), Adjustment("CO", "97", 0, 2))
    assert verdict(claim(paid=5000, lines=lines, adjustments=adjustments)) == (
        False,
        True,
        ["CO-97"],
    )


def test_a_line_paid_nothing_without_a_denial_reason_on_it_is_not_a_partial_denial() -> None:
    lines = (ServiceLine("99213", 6000, 5000), ServiceLine("80053", 4000, 0))
    on_other_line = (Adjustment("CO", "97", 1000, 1),)
    contractual = (Adjustment("CO", "45", 4000, 2),)
    claim_level = (Adjustment("CO", "97", 4000, 0),)
    for adjustments in (on_other_line, contractual, claim_level):
        assert verdict(claim(paid=5000, lines=lines, adjustments=adjustments))[:2] == (
            False,
            False,
        )


def test_a_partial_status_is_a_partial_denial() -> None:
    assert verdict(claim(status=ClaimStatus.PARTIAL, paid=4000, adjustments=(CO_50,))) == (
        False,
        True,
        ["CO-50"],
    )


@pytest.mark.parametrize("status", [ClaimStatus.PENDING, ClaimStatus.REVERSED])
def test_pending_and_reversed_claims_are_never_denied(status: ClaimStatus) -> None:
    record = claim(status=status, adjustments=(CO_50,))
    record.denied = record.partially_denied = True  # as a stale earlier classification left it
    assert verdict(record) == (False, False, [])


PAID_LINE, DENIED_LINE = ServiceLine("99213", 6000, 5000), ServiceLine("80053", 4000, 0)


@pytest.mark.parametrize(
    ("paid", "lines", "adjustments", "status"),
    [
        # Nothing paid for a denial reason: denied, as the rules count a CLP02 = 1 claim.
        (0, (), (CO_50,), ClaimStatus.DENIED),
        (5000, (PAID_LINE, DENIED_LINE), (Adjustment("CO", "97", 4000, 2),), ClaimStatus.PARTIAL),
        (5000, (), (CO_45,), ClaimStatus.PAID),
        # The patient's share is no denial.
        (0, (), (PR_1,), ClaimStatus.PAID),
    ],
)
def test_a_claim_whose_file_states_no_status_has_the_status_the_rules_find(
    paid: int,
    lines: tuple[ServiceLine, ...],
    adjustments: tuple[Adjustment, ...],
    status: ClaimStatus,
) -> None:
    record = claim(paid=paid, lines=lines, adjustments=adjustments)
    record.status_stated = False
    record.decision_date = dt.date(2026, 3, 14)
    denied, partially_denied, _ = verdict(record)
    assert (record.status, denied, partially_denied) == (
        status,
        status is ClaimStatus.DENIED,
        status is ClaimStatus.PARTIAL,
    )
    # Run again (a combined claim is classified again): the same.
    assert verdict(record)[:2] == (denied, partially_denied)
    assert record.status is status


def test_an_undecided_claim_whose_file_states_no_status_is_pending() -> None:
    record = claim(adjustments=(CO_50,))
    record.status_stated = False
    assert verdict(record) == (False, False, [])
    assert record.status is ClaimStatus.PENDING


def test_denial_codes_are_listed_once_in_order_of_appearance() -> None:
    adjustments = (
        Adjustment("CO", "97", 100, 1),
        PR_1,
        CO_50,
        Adjustment("CO", "97", 100, 2),
        CO_45,
        Adjustment("OA", "18", 100),
        CO_50,
    )
    assert verdict(claim(adjustments=adjustments)) == (True, False, ["CO-97", "CO-50", "OA-18"])


@pytest.mark.parametrize(
    ("code", "group"),
    [
        ("99213", "EVALUATION_MANAGEMENT"),
        ("99499", "EVALUATION_MANAGEMENT"),
        ("71046", "RADIOLOGY"),
        ("80053", "LABORATORY"),
        ("29881", "SURGERY"),
        ("10004", "SURGERY"),
        ("00100", "ANESTHESIA"),
        ("01999", "ANESTHESIA"),
        ("97110", "MEDICINE"),
        ("99503", "MEDICINE"),
        ("J1100", "DRUGS"),
        ("j1100 ", "DRUGS"),
        ("E0114", "DURABLE_MEDICAL_EQUIPMENT"),
        ("K0001", "DURABLE_MEDICAL_EQUIPMENT"),
        ("A0428", "SUPPLIES_TRANSPORT"),
        ("C1713", "HCPCS_OTHER"),
        ("1234F", "CPT_CATEGORY_II_III"),
        ("0042T", "CPT_CATEGORY_II_III"),
        ("0450", "REVENUE_04"),
        ("0300", "REVENUE_03"),
        ("00099", "OTHER"),
        ("99999", "OTHER"),
        ("OFFICE", "OTHER"),
        ("", "OTHER"),
        ("992133", "OTHER"),
        ("J11X0", "OTHER"),
    ],
)
def test_procedure_codes_fall_in_their_clinical_group(code: str, group: str) -> None:
    assert code_group(code) == group

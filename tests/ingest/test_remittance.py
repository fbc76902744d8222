"""The 835 mapping alone: the segments of one hand-written transaction to claims, rejections
and warnings, with no text to cut and no envelope around them."""

from __future__ import annotations

import datetime as dt

import pytest

from services.ingest.records import (
    Adjustment,
    ClaimRecord,
    ClaimStatus,
    ParsedItem,
    ParseLimits,
    Rejection,
    ServiceLine,
    UploadWarning,
)
from services.ingest.remittance import RemittanceReader, stray_segment_warning
from services.ingest.x12_segments import Segment

ST_NUMBER = 3
TRANSACTION = (
    "BPR*I*130.00*C*CHK************20240315",  # 4
    "TRN*1*12345*1512345678",  # 5
    "DTM*405*20240314",  # 6
    "N1*PR*ACME HEALTH",  # 7
    "REF*2U*AH001",  # 8
    "N1*PE*CLINIC*XX*1234567893",  # 9
    "LX*1",  # 10
    "CLP*C1*1*150.00*130.00*20.00*12*PCN1",  # 11
    "CAS*PR*1*20.00",  # 12
    "NM1*QC*1*DOE*JANE****MI*M123456",  # 13
    "DTM*050*20240110",  # 14
    "SVC*HC>99213>25*150.00*130.00",  # 15
    "DTM*472*20240105",  # 16
    "AMT*B6*130.00",  # 17
    "CLP*C2*4*80.00*0**12*PCN2",  # 18
    "CAS*CO*50*80.00",  # 19
    "SVC*HC>99214*80.00*0",  # 20
    "DTM*472*20240106",  # 21
    "CLP*C3*1*12a*0**12*PCN3",  # 22
    "CLP*C4*23*10.00*0**12*PCN4",  # 23
)
# The standard segments an 835 transaction may hold between its ST and SE.
STANDARD_835_SEGMENTS = (
    "BPR", "TRN", "CUR", "REF", "DTM", "N1", "N2", "N3", "N4", "PER", "RDM", "LX", "TS3",
    "TS2", "CLP", "CAS", "NM1", "MIA", "MOA", "AMT", "QTY", "SVC", "LQ", "PLB",
)  # fmt: skip


def segment(text: str, number: int) -> Segment:
    elements = text.split("*")
    return Segment(elements[0], elements, number)


def reader(items: list[ParsedItem], component_separator: str = ">") -> RemittanceReader:
    return RemittanceReader(ST_NUMBER, component_separator, ParseLimits(), items.append)


def read(texts: tuple[str, ...], component_separator: str = ">") -> list[ParsedItem]:
    """Everything one transaction holding `texts` (numbered after its ST) yields."""
    items: list[ParsedItem] = []
    transaction = reader(items, component_separator)
    for number, text in enumerate(texts, start=ST_NUMBER + 1):
        transaction.read(segment(text, number))
    transaction.finish()
    return items


def warning_codes(items: list[ParsedItem]) -> list[tuple[str, int]]:
    return [(item.code, item.line_number) for item in items if isinstance(item, UploadWarning)]


def test_a_transaction_becomes_claims_rejections_and_warnings() -> None:
    items: list[ParsedItem] = []
    transaction = reader(items)
    for number, text in enumerate(TRANSACTION, start=ST_NUMBER + 1):
        transaction.read(segment(text, number))
    transaction.finish()
    paid_on = dt.date(2024, 3, 15)
    assert items == [
        ClaimRecord(
            source_line=11,
            claim_id="C1",
            payer_name="ACME HEALTH",
            payer_id="AH001",
            status=ClaimStatus.PAID,
            procedure_codes=("99213",),
            service_date=dt.date(2024, 1, 5),
            submitted_date=dt.date(2024, 1, 10),
            decision_date=paid_on,
            billed_cents=15000,
            allowed_cents=13000,
            paid_cents=13000,
            patient_responsibility_cents=2000,
            adjustments=(Adjustment("PR", "1", 2000, 0),),
            lines=(ServiceLine("99213", 15000, 13000, 13000),),
            payer_claim_control_number="PCN1",
        ),
        ClaimRecord(
            source_line=18,
            claim_id="C2",
            payer_name="ACME HEALTH",
            payer_id="AH001",
            status=ClaimStatus.DENIED,
            procedure_codes=("99214",),
            service_date=dt.date(2024, 1, 6),
            decision_date=paid_on,
            billed_cents=8000,
            allowed_cents=None,
            paid_cents=0,
            adjustments=(Adjustment("CO", "50", 8000, 0),),
            lines=(ServiceLine("99214", 8000, 0, None),),
            payer_claim_control_number="PCN2",
        ),
        Rejection(
            line_number=22,
            reason="claim C3: CLP03 (billed amount) is not an amount in dollars and cents",
            code="BAD_AMOUNT",
            column="CLP03",
            raw_value="12a",
            segment_number=22,
        ),
        UploadWarning(
            "NOT_OUR_CLAIM",
            "claim 'C4' skipped: the payer says the claim is not theirs and forwarded it "
            "(CLP02 = 23)",
            23,
        ),
    ]
    assert transaction.claims_read == 4
    assert [value for value in ("DOE", "JANE", "M123456") if value in repr(items)] == []


def test_a_claim_comes_out_when_the_next_claim_or_the_se_ends_it() -> None:
    items: list[ParsedItem] = []
    transaction = reader(items)
    emitted = []
    for number, text in enumerate(TRANSACTION[:15], start=ST_NUMBER + 1):
        transaction.read(segment(text, number))
        emitted.append(len(items))
    # Segment 18 (the 15th) starts claim C2, which ends claim C1.
    assert emitted == [0] * 14 + [1]
    transaction.finish()
    assert [item.claim_id for item in items if isinstance(item, ClaimRecord)] == ["C1", "C2"]


def test_procedure_codes_are_split_at_the_interchange_component_separator() -> None:
    header = ("BPR*I*0*C*CHK************20240315", "N1*PR*ACME HEALTH")
    line = ("CLP*C1*1*10.00*10.00**12*PCN1", "SVC*HC:99213*10.00*10.00")
    assert warning_codes(read((*header, *line), component_separator=":")) == []
    items = read((*header, *line), component_separator=">")
    assert [item for item in items if isinstance(item, UploadWarning)] == [
        UploadWarning(
            "COMPONENT_SEPARATOR_MISMATCH",
            "SVC01 separates its components with ':', not the ISA16 separator '>'",
            7,
        )
    ]
    [claim] = [item for item in items if isinstance(item, ClaimRecord)]
    assert claim.procedure_codes == ("99213",)


def test_without_a_declared_component_separator_each_composite_shows_its_own() -> None:
    # A file with no ISA header declares no ISA16: `HC:99213` and `HC>99214` are both clear.
    header = ("BPR*I*0*C*CHK************20240315", "N1*PR*ACME HEALTH")
    lines = (
        "CLP*C1*1*30.00*30.00**12*PCN1",
        "SVC*HC:99213:25*10.00*10.00",
        "SVC*HC>99214*20.00*20.00",
        "SVC*HC*5.00*5.00",
    )
    items = read((*header, *lines), component_separator="")
    [claim] = [item for item in items if isinstance(item, ClaimRecord)]
    assert claim.procedure_codes == ("99213", "99214")
    assert warning_codes(items) == [("UNREADABLE_SERVICE_LINE", 9)]


def test_transaction_warnings_point_at_its_st() -> None:
    items = read(("N1*PR**XV*12345", "CLP*C1*1*10.00*10.00**12*PCN1"))
    assert warning_codes(items) == [
        ("NO_DECISION_DATE", ST_NUMBER),
        ("MISSING_PAYER_NAME", ST_NUMBER),
    ]


def test_header_segments_after_the_first_claim_are_out_of_place() -> None:
    items = read(
        (
            "BPR*I*0*C*CHK************20240315",
            "N1*PR*ACME HEALTH",
            "CLP*C1*1*10.00*10.00**12*PCN1",
            "N1*PR*OTHER PAYER",
            "BPR*I*0*C*CHK************20240401",
        )
    )
    assert warning_codes(items) == [("SEGMENT_OUT_OF_PLACE", 7), ("SEGMENT_OUT_OF_PLACE", 8)]
    [claim] = [item for item in items if isinstance(item, ClaimRecord)]
    assert (claim.payer_name, claim.decision_date) == ("ACME HEALTH", dt.date(2024, 3, 15))


def test_only_segments_outside_the_835_standard_are_unknown() -> None:
    items = read((*STANDARD_835_SEGMENTS, "ZZZ"))
    unknown = [(code, number) for code, number in warning_codes(items) if code == "UNKNOWN_SEGMENT"]
    assert unknown == [("UNKNOWN_SEGMENT", ST_NUMBER + len(STANDARD_835_SEGMENTS) + 1)]


@pytest.mark.parametrize("segment_id", STANDARD_835_SEGMENTS)
def test_an_835_segment_outside_a_transaction_is_out_of_place(segment_id: str) -> None:
    assert stray_segment_warning(segment(f"{segment_id}*1", 9)) == UploadWarning(
        "SEGMENT_OUT_OF_PLACE", f"{segment_id} outside a transaction; ignored", 9
    )


def test_an_unknown_segment_outside_a_transaction_is_unknown() -> None:
    assert stray_segment_warning(segment("ZZZ*1", 9)) == UploadWarning(
        "UNKNOWN_SEGMENT", "ZZZ is not an 835 segment; ignored", 9
    )

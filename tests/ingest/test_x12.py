"""The X12 835 parser as an upload meets it: the claims of real remittance files, whatever
the chunking, and what happens to broken, hostile and non-compliant files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.records import (
    Adjustment,
    ClaimRecord,
    ClaimStatus,
    FileError,
    ParsedItem,
    ParseLimits,
    Rejection,
    ServiceLine,
    UploadWarning,
)
from services.ingest.x12 import X12Parser
from tests.fixtures import X12_835_FIXTURES
from tests.fixtures import X12_835_NAMES as FIXTURE_NAMES

FIXTURES = X12_835_FIXTURES
# Patients and subscribers named in the fixtures (NM1*QC), with their member ids.
PATIENT_DATA = (
    "BUDD", "WILLIAM", "SETTLE", "SUSAN", "JONES", "SAM", "BORDER", "LIZ", "TOWNSEND",
    "BAKI", "ANGI", "ISLAND", "ELLIS", "BURCK", "RAYMOND", "33344555510", "44455666610",
    "666666666A", "996669999B", "XXX123456789", "456789123", "789123456", "987654321",
)  # fmt: skip
FAST = settings(max_examples=60, deadline=None)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def parse(
    text: str, sizes: list[int] | None = None, limits: ParseLimits | None = None
) -> list[ParsedItem]:
    """Everything the parser yields for `text`, fed in chunks of `sizes` (cycled), then closed."""
    parser = X12Parser(limits)
    items: list[ParsedItem] = []
    position, turn = 0, 0
    while position < len(text):
        size = sizes[turn % len(sizes)] if sizes else len(text)
        items += parser.feed(text[position : position + size])
        position, turn = position + size, turn + 1
    return items + parser.close()


def file_error(text: str, limits: ParseLimits | None = None) -> FileError:
    with pytest.raises(FileError) as caught:
        parse(text, limits=limits)
    return caught.value


def claims(items: list[ParsedItem]) -> list[ClaimRecord]:
    return [item for item in items if isinstance(item, ClaimRecord)]


def codes(items: list[ParsedItem]) -> list[tuple[str, int]]:
    return [(w.code, w.line_number) for w in items if isinstance(w, UploadWarning)]


# --- A small 835 to vary one rule at a time ------------------------------------------------

ISA = (
    "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       "
    "*240401*1200*^*00501*000000001*0*P*:~"
)
PAYMENT = "BPR*I*100.00*C*CHK************20240315"
PAYER = "N1*PR*ACME HEALTH*XV*12345"
CLAIM = "CLP*C1*1*100.00*80.00*20.00*12*PCN1"
FIRST_BODY_SEGMENT = 6  # ISA, GS, ST, BPR, N1*PR come first


def x12(*body: str, header: tuple[str, ...] = (PAYMENT, PAYER)) -> str:
    """One interchange with one 835 transaction: `header` segments, then `body`."""
    transaction = ["ST*835*0001", *header, *body]
    segments = [
        "GS*HP*SUBMITTER*RECEIVER*20240401*1200*1*X*005010X221A1",
        *transaction,
        f"SE*{len(transaction) + 1}*0001",
        "GE*1*1",
        "IEA*1*000000001",
    ]
    return ISA + "".join(segment + "~" for segment in segments)


def only_claim(items: list[ParsedItem]) -> ClaimRecord:
    [claim] = claims(items)
    return claim


def only_rejection(items: list[ParsedItem]) -> Rejection:
    [rejection] = [item for item in items if isinstance(item, Rejection)]
    return rejection


# --- The fixture files, claim by claim -----------------------------------------------------

# Three fixtures carry their payment date one element early (BPR15, `CHK***********date`), so
# BPR16 is missing and the decision date is DTM*405 (the same date in those files).
NO_BPR16 = UploadWarning(
    "MISSING_PAYMENT_DATE",
    "BPR16 (payment date) is missing; the decision date is the production date (DTM*405), if any",
    4,
)


def test_managed_care_two_claims_and_a_bad_payment_date_falls_back_to_production_date() -> None:
    items = parse(fixture("managed-care.835"))
    # BPR16 is 20002316 (month 23): the decision date is DTM*405, 2002-03-14.
    decided = dt.date(2002, 3, 14)
    assert items == [
        UploadWarning(
            "BAD_PAYMENT_DATE",
            "BPR16 '20002316' is not a CCYYMMDD date; "
            "the decision date is the production date (DTM*405), if any",
            4,
        ),
        ClaimRecord(
            source_line=13,
            claim_id="5554555444",
            payer_name="RUSHMORE LIFE",
            status=ClaimStatus.PAID,
            procedure_codes=("99211",),
            service_date=dt.date(2002, 3, 1),
            decision_date=decided,
            billed_cents=80000,
            allowed_cents=None,
            paid_cents=45000,
            patient_responsibility_cents=30000,
            adjustments=(Adjustment("CO", "A2", 5000, 0), Adjustment("PR", "1", 30000, 1)),
            lines=(ServiceLine("99211", 80000, 50000, None),),
            payer_claim_control_number="94060555410000",
        ),
        ClaimRecord(
            source_line=20,
            claim_id="8765432112",
            payer_name="RUSHMORE LIFE",
            status=ClaimStatus.PAID,
            procedure_codes=("93555",),
            service_date=dt.date(2002, 3, 10),
            decision_date=decided,
            billed_cents=120000,
            allowed_cents=None,
            paid_cents=49500,
            patient_responsibility_cents=60000,
            adjustments=(
                Adjustment("CO", "A2", 5500, 0),
                Adjustment("PR", "1", 60000, 1),
                Adjustment("CO", "45", 5000, 1),
            ),
            lines=(ServiceLine("93555", 120000, 55000, None),),
            payer_claim_control_number="94077799230000",
        ),
    ]


def test_medicare_part_a_institutional_claims_without_service_lines() -> None:
    timbucktu = "INSURANCE COMPANY OF TIMBUCKTU"
    assert parse(fixture("medicare-part-a.835")) == [
        ClaimRecord(
            source_line=15,
            claim_id="666123",
            payer_name=timbucktu,
            payer_id="999",  # REF*2U
            status=ClaimStatus.PAID,
            service_date=dt.date(2002, 8, 16),
            decision_date=dt.date(2002, 9, 13),
            billed_cents=21136697,
            paid_cents=13801840,
            adjustments=(Adjustment("CO", "45", 7334857, 0),),
            payer_claim_control_number="1999999444444",
        ),
        ClaimRecord(
            source_line=24,
            claim_id="777777",
            payer_name=timbucktu,
            payer_id="999",  # REF*2U
            status=ClaimStatus.PAID,
            service_date=dt.date(2002, 5, 12),
            decision_date=dt.date(2002, 9, 13),
            billed_cents=1500000,
            paid_cents=1198033,
            adjustments=(Adjustment("CO", "45", 301967, 0),),
            payer_claim_control_number="1999999444445",
        ),
    ]


def test_secondary_payment_with_line_allowed_amounts_and_foreign_component_separator() -> None:
    tax_dollars = "YOUR TAX DOLLARS AT WORK"
    mismatch = "SVC01 separates its components with '>', not the ISA16 separator ':'"
    assert parse(fixture("secondary-payment.835")) == [
        NO_BPR16,
        ClaimRecord(
            source_line=16,
            claim_id="L0004828311",
            payer_name=tax_dollars,
            status=ClaimStatus.PAID,
            service_date=dt.date(2005, 3, 3),
            decision_date=dt.date(2005, 4, 12),
            billed_cents=1032364,
            # AMT*AU is the coverage amount, not an allowed amount.
            allowed_cents=None,
            paid_cents=91200,
            adjustments=(Adjustment("OA", "23", 941164, 0),),
            payer_claim_control_number="05090256390",
        ),
        UploadWarning("COMPONENT_SEPARATOR_MISMATCH", mismatch, 29),
        UploadWarning("COMPONENT_SEPARATOR_MISMATCH", mismatch, 34),
        ClaimRecord(
            source_line=24,
            claim_id="0001000053",
            payer_name=tax_dollars,
            status=ClaimStatus.PAID,
            procedure_codes=("12345", "66543"),
            service_date=dt.date(2005, 1, 6),
            decision_date=dt.date(2005, 4, 12),
            billed_cents=75150,
            allowed_cents=65000,
            paid_cents=31000,
            patient_responsibility_cents=22000,
            adjustments=(
                Adjustment("OA", "23", 13650, 1),
                Adjustment("PR", "1", 15000, 2),
                Adjustment("PR", "2", 7000, 2),
                Adjustment("CO", "42", 8500, 2),
            ),
            lines=(
                ServiceLine("12345", 16650, 3000, 15000),
                ServiceLine("66543", 58500, 28000, 50000),
            ),
            payer_claim_control_number="05630626430",
        ),
    ]


def test_tertiary_payment_leaves_out_a_service_line_without_procedure_code() -> None:
    # `SVC*HC*24599.00*1766.50*...`: SVC01 is a bare qualifier and the amounts are shifted, but
    # the CLP is clear: the claim is kept without the line, and its CAS counts for the claim.
    assert parse(fixture("tertiary-payment.835")) == [
        NO_BPR16,
        UploadWarning(
            "UNREADABLE_SERVICE_LINE",
            "SVC01 'HC' is not a qualifier and procedure code (e.g. HC:99213); "
            "the line is left out, its CAS adjustments count for the claim",
            20,
        ),
        ClaimRecord(
            source_line=16,
            claim_id="0001000054",
            payer_name="YOUR TAX DOLLARS AT WORK",
            status=ClaimStatus.PAID,
            service_date=dt.date(2005, 1, 20),
            decision_date=dt.date(2005, 4, 12),
            billed_cents=176650,
            # The left-out line's AMT*B6 is not read, so the claim's allowed total is unknown.
            allowed_cents=None,
            paid_cents=18750,
            adjustments=(Adjustment("OA", "23", 157900, 0),),
            payer_claim_control_number="50580155533",
        ),
    ]


def test_cob_contractual_adjustment_keeps_a_negative_line_adjustment() -> None:
    assert parse(fixture("cob-contractural-adjustment.835")) == [
        NO_BPR16,
        UploadWarning(
            "COMPONENT_SEPARATOR_MISMATCH",
            "SVC01 separates its components with '>', not the ISA16 separator ':'",
            21,
        ),
        ClaimRecord(
            source_line=16,
            claim_id="0001000055",
            payer_name="YOUR TAX DOLLARS AT WORK",
            status=ClaimStatus.PAID,
            procedure_codes=("55669",),
            service_date=dt.date(2005, 2, 2),
            decision_date=dt.date(2005, 3, 18),
            billed_cents=54100,
            allowed_cents=55000,
            paid_cents=3400,
            adjustments=(Adjustment("OA", "23", 51600, 1), Adjustment("OA", "94", -900, 1)),
            lines=(ServiceLine("55669", 54100, 3400, 55000),),
            payer_claim_control_number="50650619501",
        ),
    ]


def test_fixtures_count_every_clp_as_a_row_read() -> None:
    counts = {}
    for name in FIXTURE_NAMES:
        parser = X12Parser()
        parser.feed(fixture(name))
        parser.close()
        counts[name] = parser.rows_read
    assert counts == {
        "managed-care.835": 2,
        "medicare-part-a.835": 2,
        "secondary-payment.835": 2,
        "tertiary-payment.835": 1,
        "cob-contractural-adjustment.835": 1,
    }


def test_no_patient_name_or_member_id_leaves_the_parser() -> None:
    output = repr([parse(fixture(name)) for name in FIXTURE_NAMES])
    assert [value for value in PATIENT_DATA if value in output] == []
    # The names are in the files, so the test would notice if they leaked.
    assert all(any(value in fixture(name) for name in FIXTURE_NAMES) for value in PATIENT_DATA)


# --- Chunking, envelopes, delimiters -------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_one_character_at_a_time_gives_the_same_items(name: str) -> None:
    text = fixture(name)
    assert parse(text, sizes=[1]) == parse(text)


@FAST
@given(
    name=st.sampled_from(FIXTURE_NAMES),
    sizes=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=20),
)
def test_any_chunking_gives_the_same_items(name: str, sizes: list[int]) -> None:
    text = fixture(name)
    assert parse(text, sizes=sizes) == parse(text)


def with_delimiters(text: str, element: str, component: str, terminator: str) -> str:
    """The fixture rewritten with other delimiters (fixtures use `*`, `:` and `~`)."""
    segments = [segment.strip() for segment in text.split("~") if segment.strip()]
    return "".join(
        segment.replace("*", element).replace(":", component) + terminator for segment in segments
    )


def shifted(item: ParsedItem, segments: int) -> ParsedItem:
    """An item as it reads when its file follows `segments` segments of other files."""
    if isinstance(item, ClaimRecord):
        return dataclasses.replace(item, source_line=item.source_line + segments)
    if isinstance(item, Rejection):
        return dataclasses.replace(
            item,
            line_number=item.line_number + segments,
            segment_number=item.segment_number + segments,
        )
    return dataclasses.replace(item, line_number=item.line_number + segments)


def test_interchanges_with_different_delimiters_in_one_file() -> None:
    managed_care = fixture("managed-care.835")
    medicare = fixture("medicare-part-a.835")
    files = [
        (managed_care, with_delimiters(managed_care, "|", ">", "\n")),
        (medicare, with_delimiters(medicare, "\x1d", "\x1f", "\x1c")),
        (fixture("secondary-payment.835"), fixture("secondary-payment.835")),
        (fixture("tertiary-payment.835"), fixture("tertiary-payment.835").replace("~\n", "~\r\n")),
        (fixture("cob-contractural-adjustment.835"), fixture("cob-contractural-adjustment.835")),
    ]
    expected: list[ParsedItem] = []
    segments = 0
    for original, rewritten in files:
        assert parse(rewritten) == parse(original)
        expected += [shifted(item, segments) for item in parse(original)]
        segments += original.count("~")
    combined = "".join(rewritten for _, rewritten in files)
    assert parse(combined) == expected
    assert parse(combined, sizes=[7, 1, 113]) == expected


@pytest.mark.parametrize("layout", ["", "\n", "\r\n", "\r\n\r\n"])
def test_line_breaks_after_terminators_are_ignored(layout: str) -> None:
    text = fixture("secondary-payment.835")
    assert parse(text.replace("~\n", "~" + layout)) == parse(text)


def test_a_bare_transaction_reads_as_it_does_in_its_envelope() -> None:
    enveloped = x12(CLAIM, "CAS*CO*45*20.00", "SVC*HC:99213*100.00*80.00", "DTM*472*20240301")
    bare = enveloped[enveloped.index("ST*835") : enveloped.index("GE*")]
    items = parse(bare)
    # Two segments (ISA, GS) fewer come before each item.
    assert items[1:] == [shifted(item, -2) for item in parse(enveloped)]
    assert items[0] == UploadWarning(
        "NO_ENVELOPE",
        "the file has no ISA header: it starts with ST; it is read as 005010X221A1 with the "
        "delimiters its ST segment shows: '*' between elements, components as each "
        "composite shows them, '~' after each segment",
        1,
    )
    assert parse(bare, sizes=[1]) == items


def test_an_unpadded_isa_reads_as_the_padded_one() -> None:
    padded = fixture("secondary-payment.835")
    header = padded[: padded.index("~")]
    unpadded = "*".join(element.strip() for element in header.split("*"))
    items = parse(padded.replace(header, unpadded))
    assert isinstance(items[0], UploadWarning)
    assert (items[0].code, items[0].line_number) == ("ISA_NOT_FIXED_WIDTH", 1)
    assert items[1:] == parse(padded)


@pytest.mark.parametrize(("version", "name"), [("004010X091A1", "4010"), ("003051", "3051")])
def test_a_group_of_another_x12_version_is_refused_before_its_claims(
    version: str, name: str
) -> None:
    text = x12(CLAIM).replace("005010X221A1", version).replace("*00501*", "*00401*")
    error = file_error(text)
    assert (error.code, error.line_number) == ("UNSUPPORTED_VERSION", 2)
    assert str(error) == (
        f"segment 2 (GS): GS08 is '{version}', X12 version {name}; only 835 files of version "
        "005010X221A1 (5010) can be read, so ask the sender for a 5010 file"
    )


def test_segment_numbers_count_across_interchanges() -> None:
    text = fixture("cob-contractural-adjustment.835")
    second = parse(text + "\n" + text)
    assert [c.source_line for c in claims(second)] == [16, 16 + text.count("~")]


# --- Files that cannot be read ---------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_a_truncated_file_fails_at_close_or_keeps_every_claim(name: str) -> None:
    text = fixture(name)
    whole = claims(parse(text))
    for cut in range(len(text)):
        parser = X12Parser()
        items = parser.feed(text[:cut])
        try:
            items += parser.close()
        except FileError as error:
            assert error.code in {"TRUNCATED_FILE", "BAD_ISA", "EMPTY_FILE"}
            continue
        # Only a cut inside the last segment (IEA) leaves the envelopes closed.
        assert cut > text.rindex("IEA")
        assert claims(items) == whole


def test_a_file_cut_inside_the_transaction_names_the_last_segment_read() -> None:
    text = fixture("managed-care.835")
    error = file_error(text[: text.index("SE*26")])
    assert (error.code, error.line_number) == ("TRUNCATED_FILE", 27)
    assert str(error) == (
        "the file ends after segment 27 (CAS) without the SE, GE and IEA that close its "
        "transaction, group and interchange; it may be truncated"
    )
    cut_in_a_segment = file_error(text[: text.index("SE*26") + 4])
    assert str(cut_in_a_segment) == (
        "the file ends in the middle of segment 28, after segment 27 (CAS); it may be truncated"
    )


def test_a_missing_last_terminator_is_only_a_warning() -> None:
    text = fixture("managed-care.835").rstrip("~\n")
    items = parse(text)
    assert claims(items) == claims(parse(fixture("managed-care.835")))
    assert codes(items)[-1] == ("MISSING_SEGMENT_TERMINATOR", 30)


def test_a_file_that_does_not_start_with_isa_is_not_x12() -> None:
    error = file_error("claim_id,payer,billed\nC1,Aetna,100.00\n")
    assert error.code == "NOT_X12"


def test_an_empty_file() -> None:
    assert file_error(" \r\n").code == "EMPTY_FILE"


def test_an_isa_that_is_not_106_characters_is_read_with_a_warning() -> None:
    text = fixture("managed-care.835")
    short = text.replace("000000005      ", "000000005", 1)
    items = parse(short)
    assert claims(items) == claims(parse(text))
    assert codes(items)[0] == ("ISA_NOT_FIXED_WIDTH", 1)


@pytest.mark.parametrize(
    "isa",
    [
        ISA.replace("*:~", "***"),  # component separator = element separator
        ISA.replace("*:~", "*:A"),  # a letter as segment terminator
        ISA.replace("*00501", "|00501"),  # two element separators
        ISA.replace("*:~", "* ~"),  # a space as component separator
    ],
)
def test_unreadable_delimiters_are_refused(isa: str) -> None:
    assert file_error(x12(CLAIM).replace(ISA, isa)).code == "BAD_ISA"


def test_binary_junk_is_refused() -> None:
    junk = os.urandom(4096).decode("latin-1")
    assert file_error(junk).code == "NOT_X12"
    assert file_error(ISA + junk).code == "BINARY_FILE"
    error = file_error(x12(CLAIM, "\x00\x01\x02\x03", CLAIM))
    assert (error.code, error.line_number) == ("BINARY_FILE", FIRST_BODY_SEGMENT + 1)


def test_a_10_mb_segment_is_refused_without_holding_it() -> None:
    chunk = "A" * 65536
    parser = X12Parser()
    parser.feed(ISA + "GS*HP*")
    tracemalloc.start()
    try:
        with pytest.raises(FileError) as caught:
            for _ in range(10 * 1024 * 1024 // len(chunk)):
                parser.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (caught.value.code, caught.value.line_number) == ("SEGMENT_TOO_LONG", 2)
    assert peak < 512 * 1024


def test_a_10_mb_segment_in_one_piece_is_refused_without_copying_it() -> None:
    text = ISA + "GS*" + "A" * (10 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(FileError) as caught:
            X12Parser().feed(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == "SEGMENT_TOO_LONG"
    assert peak < 512 * 1024


def test_a_transaction_that_is_not_an_835_is_refused() -> None:
    assert file_error(x12(CLAIM).replace("ST*835", "ST*837")).code == "NOT_835"


@pytest.mark.parametrize(
    ("broken", "segment"),
    [
        (lambda text: text.replace("GE*1*1~", ""), 8),  # IEA while the group is open
        (lambda text: text.replace("GS*HP", "ST*835"), 2),  # ST before GS
        (lambda text: text.replace("~IEA", "~ISA"), 9),  # a second ISA inside
        (lambda text: text + "GS*HP*A*B*20240401*1200*2*X*005010X221A1~", 10),  # after IEA
    ],
)
def test_envelopes_out_of_order_are_refused(broken: Callable[[str], str], segment: int) -> None:
    error = file_error(broken(x12(CLAIM)))
    assert (error.code, error.line_number) == ("BAD_ENVELOPE", segment)


def assert_well_formed(items: list[ParsedItem]) -> None:
    """What the loader relies on, however broken the file was."""
    for item in items:
        if isinstance(item, ClaimRecord):
            assert item.claim_id and (item.payer_name or item.payer_id)
            assert item.procedure_codes == tuple(line.procedure_code for line in item.lines)
            assert all(0 <= a.line_number <= len(item.lines) for a in item.adjustments)
            assert item.allowed_cents is None or item.allowed_cents == sum(
                line.allowed_cents or 0 for line in item.lines
            )
        elif isinstance(item, Rejection):
            assert item.segment_number == item.line_number >= 1
            assert item.reason and item.code.isupper() and len(item.raw_value) <= 100
        else:
            assert isinstance(item, UploadWarning)
            assert item.line_number >= 1 and item.message and item.code.isupper()


def read_or_refuse_clearly(text: str, sizes: list[int]) -> None:
    """Parses `text`: what it yields is well formed, or it is refused with a `FileError` whose
    message names the segment where the reading stopped."""
    try:
        items = parse(text, sizes=sizes)
    except FileError as error:
        assert error.code.isupper() and str(error)
        if error.line_number:
            assert f"segment {error.line_number}" in str(error)
        return
    assert_well_formed(items)


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(max_size=300),
    start=st.sampled_from(["", ISA, "ST*835*0001~", "GS*HP*S*R*20240401*1200*1*X*005010X221A1~"]),
)
def test_random_text_fails_only_with_file_error(text: str, start: str) -> None:
    read_or_refuse_clearly(start + text, sizes=[17])


MUTATION_CHARS = st.sampled_from(list("*:~^>|\n\r \x00\x1c-.0123456789AZaz")) | st.characters()


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(FIXTURE_NAMES),
    edits=st.lists(
        st.tuples(
            st.floats(0, 1), st.sampled_from(["insert", "replace", "delete"]), MUTATION_CHARS
        ),
        min_size=1,
        max_size=6,
    ),
    size=st.integers(1, 200),
)
def test_mutated_fixtures_fail_only_with_file_error(
    name: str, edits: list[tuple[float, str, str]], size: int
) -> None:
    text = fixture(name)
    for where, edit, char in edits:
        at = int(where * (len(text) - 1))
        text = text[:at] + (char if edit != "delete" else "") + text[at + (edit != "insert") :]
    read_or_refuse_clearly(text, sizes=[size])


# --- Claim status, amounts, adjustments --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("1", ClaimStatus.PAID),
        ("2", ClaimStatus.PAID),
        ("3", ClaimStatus.PAID),
        ("19", ClaimStatus.PAID),
        ("20", ClaimStatus.PAID),
        ("21", ClaimStatus.PAID),
        ("4", ClaimStatus.DENIED),
    ],
)
def test_claim_status_codes(code: str, status: ClaimStatus) -> None:
    claim = only_claim(parse(x12(f"CLP*C1*{code}*100.00*0*20.00*12*PCN1")))
    assert claim.status is status


def test_a_reversal_keeps_its_negative_amounts_and_the_control_number_it_cancels() -> None:
    claim = only_claim(parse(x12("CLP*C1*22*-100.00*-80.00*-20.00*12*PCN1", "CAS*CR*45*-20.00")))
    assert (claim.status, claim.billed_cents, claim.paid_cents) == (
        ClaimStatus.REVERSED,
        -10000,
        -8000,
    )
    assert claim.patient_responsibility_cents == -2000
    assert claim.adjustments == (Adjustment("CR", "45", -2000, 0),)
    assert claim.payer_claim_control_number == "PCN1"


@pytest.mark.parametrize(("code", "warning"), [("23", "NOT_OUR_CLAIM"), ("25", "PREDETERMINATION")])
def test_claims_that_are_no_decision_are_skipped_with_a_warning(code: str, warning: str) -> None:
    parser = X12Parser()
    text = x12(f"CLP*C1*{code}*100.00*0**12*PCN1", "SVC*HC:99213*100.00*0", CLAIM)
    items = parser.feed(text) + parser.close()
    assert [c.claim_id for c in claims(items)] == ["C1"]
    assert codes(items) == [(warning, FIRST_BODY_SEGMENT)]
    assert parser.rows_read == 2


@pytest.mark.parametrize(
    ("raw", "cents"),
    [
        ("800", 80000),
        ("800.5", 80050),
        ("-45.00", -4500),
        (".5", 50),
        ("0", 0),
        ("12.340", 1234),
        ("800.", 80000),
        ("000123.45", 12345),
    ],
)
def test_amounts_become_exact_cents(raw: str, cents: int) -> None:
    assert only_claim(parse(x12(f"CLP*C1*1*{raw}*0**12*PCN1"))).billed_cents == cents


@pytest.mark.parametrize(
    "raw", ["1.005", "12a", "1e5", "-", ".", "1,000.00", "+5", "NaN", "1234567890123456"]
)
def test_an_amount_that_is_not_dollars_and_cents_rejects_only_its_claim(raw: str) -> None:
    items = parse(x12(f"CLP*C1*1*100.00*{raw}**12*PCN1", "CLP*C2*1*50.00*50.00**12*PCN2"))
    assert [c.claim_id for c in claims(items)] == ["C2"]
    assert only_rejection(items) == Rejection(
        line_number=FIRST_BODY_SEGMENT,
        reason="claim C1: CLP04 (paid amount) is not an amount in dollars and cents",
        code="BAD_AMOUNT",
        column="CLP04",
        raw_value=raw,
        segment_number=FIRST_BODY_SEGMENT,
    )


@pytest.mark.parametrize(
    ("clp", "column", "code", "raw"),
    [
        ("CLP**1*100.00*80.00**12*PCN1", "CLP01", "MISSING_FIELD", ""),
        ("CLP*C1*7*100.00*80.00**12*PCN1", "CLP02", "BAD_STATUS", "7"),
        ("CLP*C1**100.00*80.00**12*PCN1", "CLP02", "MISSING_FIELD", ""),
        ("CLP*C1*1**80.00**12*PCN1", "CLP03", "MISSING_FIELD", ""),
        ("CLP*" + "C" * 51 + "*1*100.00*80.00**12*PCN1", "CLP01", "TOO_LONG", "C" * 51),
    ],
)
def test_a_claim_without_clear_meaning_is_rejected(
    clp: str, column: str, code: str, raw: str
) -> None:
    items = parse(x12(clp, "SVC*HC:99213*100.00*80.00", CLAIM))
    rejection = only_rejection(items)
    assert (rejection.column, rejection.code, rejection.raw_value) == (column, code, raw)
    assert rejection.segment_number == rejection.line_number == FIRST_BODY_SEGMENT
    assert [c.claim_id for c in claims(items)] == ["C1"]


def test_a_transaction_without_payer_rejects_its_claims() -> None:
    rejection = only_rejection(parse(x12(CLAIM, header=(PAYMENT,))))
    assert (rejection.column, rejection.code) == ("N102", "MISSING_FIELD")


def test_cas_reads_up_to_six_adjustments_per_segment() -> None:
    claim = only_claim(
        parse(x12(CLAIM, "CAS*CO*45*50.00**A2*10.00*1*97*5*2*B7*1*1*253*.5**P24*2.5", "CAS*pr*1*3"))
    )
    assert claim.adjustments == (
        Adjustment("CO", "45", 5000, 0),
        Adjustment("CO", "A2", 1000, 0),
        Adjustment("CO", "97", 500, 0),
        Adjustment("CO", "B7", 100, 0),
        Adjustment("CO", "253", 50, 0),
        Adjustment("CO", "P24", 250, 0),
        Adjustment("PR", "1", 300, 0),
    )


def test_cas_pairs_without_quantities_are_read_with_a_warning() -> None:
    items = parse(x12(CLAIM, "CAS*CO*45*50.00*97*10.00"))
    assert only_claim(items).adjustments == (
        Adjustment("CO", "45", 5000, 0),
        Adjustment("CO", "97", 1000, 0),
    )
    assert codes(items) == [("CAS_WITHOUT_QUANTITIES", FIRST_BODY_SEGMENT + 1)]


@pytest.mark.parametrize(
    ("cas", "column", "code", "raw"),
    [
        ("CAS*XX*45*50.00", "CAS01", "BAD_GROUP_CODE", "XX"),
        ("CAS*CO*45", "CAS03", "MISSING_FIELD", ""),
        ("CAS*CO*45*5O.00", "CAS03", "BAD_AMOUNT", "5O.00"),
        ("CAS*CO*45*50.00*1*A2", "CAS06", "MISSING_FIELD", ""),
        ("CAS*CO*4.5*50.00", "CAS02", "BAD_CARC", "4.5"),
        ("CAS*CO", "CAS02", "MISSING_FIELD", ""),
    ],
)
def test_an_unclear_cas_rejects_its_claim(cas: str, column: str, code: str, raw: str) -> None:
    items = parse(x12(CLAIM, cas, "CLP*C2*1*50.00*50.00**12*PCN2"))
    rejection = only_rejection(items)
    assert (rejection.column, rejection.code, rejection.raw_value) == (column, code, raw)
    assert rejection.segment_number == FIRST_BODY_SEGMENT + 1
    assert [c.claim_id for c in claims(items)] == ["C2"]


# --- Service lines, dates, payer --------------------------------------------------------------


def test_service_lines_codes_allowed_amounts_and_line_adjustments() -> None:
    claim = only_claim(
        parse(
            x12(
                "CLP*C1*1*300.00*200.00**12*PCN1",
                "AMT*AU*250.00",
                "SVC*HC:99213:25:59*100.00*80.00",
                "CAS*CO*45*20.00",
                "AMT*B6*80.00",
                "SVC*NU:0450*150.00*90.00",
                "AMT*B6*90.00",
                "SVC*AD:D0120*50.00*30.00**1",
                "CAS*CO*45*20.00",
                "AMT*B6*30.00",
            )
        )
    )
    assert claim.procedure_codes == ("99213", "0450", "D0120")
    assert claim.lines == (
        ServiceLine("99213", 10000, 8000, 8000),
        ServiceLine("0450", 15000, 9000, 9000),
        ServiceLine("D0120", 5000, 3000, 3000),
    )
    assert claim.allowed_cents == 20000
    assert claim.adjustments == (Adjustment("CO", "45", 2000, 1), Adjustment("CO", "45", 2000, 3))


def test_allowed_is_unknown_when_a_line_has_no_allowed_amount() -> None:
    claim = only_claim(
        parse(
            x12(
                CLAIM,
                "SVC*HC:99213*60.00*50.00",
                "AMT*B6*50.00",
                "SVC*HC:99214*40.00*30.00",
            )
        )
    )
    assert claim.lines[1].allowed_cents is None
    assert claim.allowed_cents is None


def test_a_line_without_procedure_code_is_left_out_and_the_next_line_is_read() -> None:
    items = parse(
        x12(
            CLAIM,
            "SVC*HC*100.00*80.00",
            "CAS*CO*45*20.00",
            "AMT*B6*80.00",
            "SVC*HC:99213*50.00*40.00",
            "CAS*CO*45*10.00",
            "AMT*B6*40.00",
        )
    )
    claim = only_claim(items)
    assert claim.lines == (ServiceLine("99213", 5000, 4000, 4000),)
    assert claim.adjustments == (Adjustment("CO", "45", 2000, 0), Adjustment("CO", "45", 1000, 1))
    assert claim.allowed_cents is None
    assert codes(items) == [("UNREADABLE_SERVICE_LINE", FIRST_BODY_SEGMENT + 1)]


def test_too_many_service_lines_reject_the_claim() -> None:
    lines = ["SVC*HC:99213*10.00*10.00"] * 3
    rejection = only_rejection(parse(x12(CLAIM, *lines), limits=ParseLimits(max_claim_lines=2)))
    assert (rejection.code, rejection.segment_number) == ("TOO_MANY_LINES", FIRST_BODY_SEGMENT + 3)


def test_claim_dates() -> None:
    claim = only_claim(
        parse(
            x12(
                CLAIM,
                "DTM*050*20240110",
                "DTM*232*20240102",
                "DTM*233*20240105",
                "SVC*HC:99213*100.00*80.00",
                "DTM*472*20240103",
            )
        )
    )
    assert (claim.submitted_date, claim.service_date, claim.decision_date) == (
        dt.date(2024, 1, 10),
        dt.date(2024, 1, 2),
        dt.date(2024, 3, 15),
    )


def test_service_date_falls_back_to_the_earliest_line_date() -> None:
    claim = only_claim(
        parse(
            x12(
                CLAIM,
                "SVC*HC:99213*50.00*40.00",
                "DTM*150*20240207",
                "DTM*151*20240209",
                "SVC*HC:99214*50.00*40.00",
                "DTM*472*20240205",
            )
        )
    )
    assert claim.service_date == dt.date(2024, 2, 5)


@pytest.mark.parametrize(
    "date", ["DTM*232*20240230", "DTM*050*2024011", "DTM*232*2024-01-02", "DTM*232"]
)
def test_an_invalid_claim_date_rejects_the_claim(date: str) -> None:
    items = parse(x12(CLAIM, date, "CLP*C2*1*50.00*50.00**12*PCN2"))
    rejection = only_rejection(items)
    assert (rejection.code, rejection.column, rejection.segment_number) == (
        "BAD_DATE",
        "DTM02",
        FIRST_BODY_SEGMENT + 1,
    )
    assert [c.claim_id for c in claims(items)] == ["C2"]


def test_an_invalid_line_date_rejects_the_claim() -> None:
    rejection = only_rejection(parse(x12(CLAIM, "SVC*HC:99213*1*1", "DTM*472*20241301")))
    assert (rejection.code, rejection.raw_value) == ("BAD_DATE", "20241301")


def test_decision_date_is_the_production_date_without_bpr16() -> None:
    header = ("BPR*I*100.00*C*CHK", "DTM*405*20240320", PAYER)
    assert only_claim(parse(x12(CLAIM, header=header))).decision_date == dt.date(2024, 3, 20)


def test_no_decision_date_is_a_warning() -> None:
    items = parse(x12(CLAIM, header=("BPR*I*100.00*C*CHK", PAYER)))
    assert only_claim(items).decision_date is None
    assert codes(items) == [("MISSING_PAYMENT_DATE", 4), ("NO_DECISION_DATE", 3)]


def test_payer_id_from_n104_or_ref_2u() -> None:
    assert only_claim(parse(x12(CLAIM))).payer_id == "12345"
    header = (PAYMENT, "N1*PR*ACME HEALTH", "N3*1 MAIN ST", "REF*2U*AH001", "N1*PE*CLINIC*XX*1")
    claim = only_claim(parse(x12(CLAIM, header=header)))
    assert (claim.payer_name, claim.payer_id) == ("ACME HEALTH", "AH001")


def test_a_payer_with_an_id_but_no_name_is_a_warning() -> None:
    items = parse(x12(CLAIM, header=(PAYMENT, "N1*PR**XV*12345")))
    claim = only_claim(items)
    assert (claim.payer_name, claim.payer_id) == ("", "12345")
    assert codes(items) == [("MISSING_PAYER_NAME", 3)]


# --- Non-compliant segments whose meaning is clear ---------------------------------------------


def test_non_compliant_segments_are_flagged_and_read() -> None:
    text = x12(
        "clp*C1*1*100.00*80.00*20.00*12*PCN1",
        "ZZZ*1*2",
        "CAS*PR*1*20.00**",
        "AMT*B6*80.00",
    ).replace("SE*8*", "SE*12*")
    items = parse(text)
    claim = only_claim(items)
    assert (claim.claim_id, claim.adjustments) == ("C1", (Adjustment("PR", "1", 2000, 0),))
    assert codes(items) == [
        ("LOWERCASE_SEGMENT_ID", 6),
        ("UNKNOWN_SEGMENT", 7),
        ("TRAILING_SEPARATOR", 8),
        ("SEGMENT_OUT_OF_PLACE", 9),  # AMT*B6 belongs to a service line
        ("SEGMENT_COUNT_MISMATCH", 10),
    ]


def test_warnings_never_echo_a_garbled_segment() -> None:
    # With the wrong element separator, a whole NM1 segment would read as its segment id.
    items = parse(x12(CLAIM, "NM1|QC|1|DOE|JANE"))
    assert codes(items) == [("MALFORMED_SEGMENT", FIRST_BODY_SEGMENT + 1)]
    assert "DOE" not in repr(items)

"""The claims CSV parser as an export meets it: the header spellings, dates and amounts real
practice-management systems write, the rows it rejects and why, and that neither the
chunking of the text nor arbitrary garbage changes what it reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.claim_lines import combine
from services.ingest.csv_claims import CsvParser
from services.ingest.parsing import UploadParser
from services.ingest.records import (
    Adjustment,
    ClaimRecord,
    ClaimStatus,
    FileError,
    ParsedItem,
    ParseLimits,
    Rejection,
    UploadWarning,
)
from tests.fixtures import FIXTURES_DIR

FAST = settings(max_examples=60, deadline=None)
LINE_LEVEL_EXPORT = FIXTURES_DIR / "csv" / "line-level-export.csv"
FULL_HEADER = (
    "claim_id,payer,payer_id,procedure_code,service_date,submitted_date,decision_date,status,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes,"
    "payer_claim_control_number"
)
# The smallest useful export: who, when decided, how much billed and paid.
HEADER = "claim_id,payer,decision_date,billed_amount,paid_amount"
MARCH_14 = dt.date(2026, 3, 14)


def parse(
    text: str, column_map: Mapping[str, str] | None = None, limits: ParseLimits | None = None
) -> list[ParsedItem]:
    parser = CsvParser(column_map, limits)
    return parser.feed(text) + parser.close()


def parse_in_pieces(
    text: str, cuts: list[int], limits: ParseLimits | None = None
) -> tuple[list[ParsedItem], int]:
    parser = CsvParser(limits=limits)
    items: list[ParsedItem] = []
    bounds = [0, *sorted(cuts), len(text)]
    for start, end in pairwise(bounds):
        items += parser.feed(text[start:end])
    return items + parser.close(), parser.rows_read


def outcome(text: str, cuts: list[int], limits: ParseLimits | None = None) -> object:
    """The items and row count, or the code and line of the FileError."""
    try:
        return parse_in_pieces(text, cuts, limits)
    except FileError as error:
        return (error.code, error.line_number)


def file_error(text: str, **kwargs: object) -> FileError:
    with pytest.raises(FileError) as raised:
        parse(text, **kwargs)  # type: ignore[arg-type]
    return raised.value


def only(text: str) -> ParsedItem:
    items = parse(text)
    assert len(items) == 1, items
    return items[0]


def claim_of(row: str, header: str = HEADER) -> ClaimRecord:
    item = only(f"{header}\n{row}\n")
    assert isinstance(item, ClaimRecord), item
    return item


def rejection_of(row: str, header: str = HEADER) -> Rejection:
    item = only(f"{header}\n{row}\n")
    assert isinstance(item, Rejection), item
    return item


def claims(items: list[ParsedItem]) -> list[ClaimRecord]:
    return [item for item in items if isinstance(item, ClaimRecord)]


def rejections(items: list[ParsedItem]) -> list[Rejection]:
    return [item for item in items if isinstance(item, Rejection)]


# --- Headers -------------------------------------------------------------------------------


def test_a_reports_title_lines_above_its_header_are_skipped_with_a_warning() -> None:
    """Reports print a title, a run date and filters above the header; the header is the
    first line that has the columns, and lines keep their numbers."""
    text = (
        "Claims Detail Report\r\n"
        "Run date: 03/15/2026,,,,\r\n"
        "\r\n"
        "Payer: All;Status: All\r\n"
        f"{HEADER}\r\n"
        "C1,Aetna,2026-03-14,10,5\r\n"
        "C2,Aetna,not-a-date,10,5\r\n"
    )
    items = parse(text)
    assert [c.claim_id for c in claims(items)] == ["C1"]
    assert [(r.line_number, r.column) for r in rejections(items)] == [(7, "decision_date")]
    [warning] = [item for item in items if isinstance(item, UploadWarning)]
    assert (warning.code, warning.line_number, warning.message) == (
        "LINES_ABOVE_HEADER",
        1,
        "3 lines above the header (line 5) were skipped, from line 1: 'Claims Detail Report'",
    )


def _report_read(
    lines: list[str], by_columns: bool, count: int
) -> tuple[CsvParser, list[UploadWarning]]:
    """`lines` under the header read: claims C0 to C{count - 1} and no rejection; the
    parser and its warnings."""
    parser = CsvParser(by_columns=by_columns)
    items = parser.feed("\n".join([HEADER, *lines]) + "\n") + parser.close()
    assert [c.claim_id for c in claims(items)] == [f"C{i}" for i in range(count)]
    assert rejections(items) == []
    return parser, [item for item in items if isinstance(item, UploadWarning)]


@pytest.mark.parametrize("by_columns", [True, False])
def test_a_reports_totals_rows_are_skipped_not_counted_as_claims(by_columns: bool) -> None:
    """Totals and subtotals are the report's, not claims: skipped with a warning, neither a
    claim (a subtotal can look like one) nor a rejection (which fails an all-or-nothing
    upload)."""
    rows = [f"C{i},Aetna,2026-03-14,10,5" for i in range(50)]
    lines = [*rows[:25], "Subtotal:,Aetna,2026-03-14,250,125", *rows[25:], "Grand Total,,,500,250"]
    # Labelled in another column than the claim id's, which is empty.
    lines.append(",TOTAL,,500,250")
    parser, warnings = _report_read(lines, by_columns, 50)
    assert [(w.code, w.line_number) for w in warnings] == [
        ("TOTALS_ROW", 27), ("TOTALS_ROW", 53), ("TOTALS_ROW", 54),
    ]  # fmt: skip
    assert warnings[1].message == (
        "line 53 is a totals row ('Grand Total' as the claim id), not a claim: skipped"
    )
    assert warnings[2].message == (
        "line 54 is a totals row ('TOTAL', without a claim id), not a claim: skipped"
    )
    assert parser.rows_read == 50


@pytest.mark.parametrize("by_columns", [True, False])
def test_a_reports_headings_footers_and_empty_rows_are_not_claims_or_rejections(
    by_columns: bool,
) -> None:
    """A line of one cell among a report's rows is its heading or footer, skipped with a
    warning naming it; a row of empty cells (as spreadsheets save one) is nothing, as an
    empty line is. Neither fails an all-or-nothing upload."""
    rows = [f"C{i},Aetna,2026-03-14,10,5" for i in range(30)]
    lines = ["Payer: Aetna,,,,", *rows[:15], ",,,,", "  ,, ,,", *rows[15:], "End of Report"]
    lines.append('"Printed 12/03/2026 by jdoe, page 1 of 1",,,,')
    parser, warnings = _report_read(lines, by_columns, 30)
    assert [(w.code, w.line_number) for w in warnings] == [
        ("NOTE_LINE", 2), ("NOTE_LINE", 35), ("NOTE_LINE", 36),
    ]  # fmt: skip
    assert warnings[1].message == (
        "line 35 holds only 'End of Report': a report's heading or note, not a claim: skipped"
    )
    assert parser.rows_read == 30
    # A row with a second cell is a claim's row, and wrong if it is not one.
    parser = CsvParser(by_columns=by_columns)
    items = parser.feed(f"{HEADER}\nC1,,2026-03-14,,\n") + parser.close()
    assert [(r.line_number, r.column) for r in rejections(items)] == [(2, "payer")]


GROUPED_REPORT = [
    "Denials by Payer",
    "Run 12/03/2026",
    "Claim Nbr,Pmt Dt,Billed Amt,Amt Pd,CPT,Status",
    ",,,,,",
    "Payer: Aetna,,,,,",
    "A1,2026-03-02,100.00,80.00,99213,PAID",
    "A2,2026-03-03,100.00,0,99213,DENIED",
    "Total for Aetna,,200.00,80.00,,",
    "",
    "Insurance Name:,Cigna Health,,,,",
    "C1,2026-03-04,50.00,50.00,99214,PAID,,",
    "C2,2026-03-04,50.00,50.00,99214,PAID,40.00",
    "C3,2026-03-05,20.00",
    "Total: 2 claims,,70.00,50.00,,",
    "Grand Total,,270.00,130.00,,",
]


@pytest.mark.parametrize("by_columns", [True, False])
def test_a_report_grouped_by_payer_gives_each_claim_its_groups_heading(by_columns: bool) -> None:
    """A report with no payer column that names each group's payer in a heading ("Payer:
    Aetna", or the column's other names; the payer in the same cell or the next): each claim
    is its heading's payer's, said once in a warning; the groups' totals are skipped, and a
    row with a cell past the header's is refused counting the cells as the file has them."""
    parser = CsvParser(by_columns=by_columns)
    items = parser.feed("\n".join(GROUPED_REPORT) + "\n") + parser.close()
    assert [(c.claim_id, c.payer_name, c.paid_cents) for c in claims(items)] == [
        ("A1", "Aetna", 8000), ("A2", "Aetna", 0), ("C1", "Cigna Health", 5000),
        ("C3", "Cigna Health", 0),
    ]  # fmt: skip
    assert [(r.line_number, r.reason) for r in rejections(items)] == [
        (12, "row has 7 columns but the header has 6; quote values that contain commas")
    ]
    warnings = [item for item in items if isinstance(item, UploadWarning)]
    assert [(w.code, w.line_number) for w in warnings] == [
        ("LINES_ABOVE_HEADER", 1), ("PAYER_HEADINGS", 5), ("TOTALS_ROW", 8),
        ("TOTALS_ROW", 14), ("TOTALS_ROW", 15),
    ]  # fmt: skip
    assert warnings[1].message == (
        "the file has no payer column: each claim's payer is the one its group's heading "
        "names ('Payer: Aetna' on line 5, the first)"
    )
    assert warnings[2].message == (
        "line 8 is a totals row ('Total for Aetna' as the claim id), not a claim: skipped"
    )
    assert parser.rows_read == 5
    # A count beside the payer's name in its heading is no part of the name.
    counted = parse("Claim Nbr,Pmt Dt,Billed Amt\nPayer: Aetna,,2 claims\nA1,2026-03-02,100\n")
    assert [(c.claim_id, c.payer_name) for c in claims(counted)] == [("A1", "Aetna")]


def test_a_header_without_a_payer_column_and_no_payer_heading_is_no_header() -> None:
    """Only a payer's heading right below it (empty rows aside) makes a header without a payer
    column one; claims below it, a heading later on, or nothing at all, and the file is
    refused for the column as before. A column map that names the payer's column wants it."""
    header = "Claim Nbr,Pmt Dt,Billed Amt"
    missing = "line 1: missing required column payer (or payer name, insurance, insurance name)"
    for below in (
        "A1,2026-03-02,100.00\nPayer: Aetna\nA2,2026-03-02,100.00\n",
        "Note: Aetna\nA1,2026-03-02,100.00\n",
        "",
    ):
        error = file_error(f"{header}\n{below}")
        assert (str(error), error.code, error.line_number) == (missing, "MISSING_COLUMN", 1)
    error = file_error(f"{header}\nPayer: Aetna\n", column_map={"payer": "Plan"})
    assert error.code == "BAD_COLUMN_MAP"


def test_totals_rows_are_known_by_what_reports_write_before_or_after_total() -> None:
    """Rows labelled "Total for Aetna", "Aetna Total", "Subtotal (Cigna)" or "Total: 12
    claims" as the claim id or, without one, in the row's first cell are totals; a claim of a
    payer whose name begins with "Total" is a claim."""
    rows = [
        "Total for Aetna,,,200.00,80.00", ",Aetna Total,,200.00,80.00",
        "Subtotal (Cigna),,,1,1", ",,Total: 12 claims,1,1",
        "C1,Total Health Care,2026-03-14,10,5",
    ]  # fmt: skip
    items = parse("\n".join([HEADER, *rows]) + "\n")
    assert [(c.claim_id, c.payer_name) for c in claims(items)] == [("C1", "Total Health Care")]
    assert rejections(items) == []
    assert [w.code for w in items if isinstance(w, UploadWarning)] == ["TOTALS_ROW"] * 4


def test_a_file_whose_first_lines_are_no_header_says_what_the_first_one_lacks() -> None:
    rows = "".join(f"C{i},Aetna,2026-03-14,10,5\n" for i in range(40))
    error = file_error(rows)
    assert (error.code, error.line_number) == ("MISSING_COLUMN", 1)
    assert str(error).startswith("line 1: missing required column claim_id")
    # The header itself missing a column: the same error, however many rows follow it.
    error = file_error("claim_id,payer,billed_amount\n" + rows)
    assert str(error) == (
        "line 1: missing required column decision_date (or remit date, remittance date, "
        "adjudication date)"
    )


def test_a_column_map_finds_its_header_below_a_title() -> None:
    text = "Remittances, March\nChart Ref,Insurance,Remit Date,Billed\nE1,Cigna,2026-03-14,9\n"
    [claim] = claims(parse(text, column_map={"claim_id": "Chart Ref"}))
    assert (claim.claim_id, claim.payer_name, claim.decision_date) == ("E1", "Cigna", MARCH_14)


def test_every_canonical_column_lands_in_the_claim() -> None:
    row = (
        "C-1001,Aetna,60054,99213-25,03/01/2026,03/02/2026,03/14/2026,partial,"
        '"$1,200.00",900.00,700.00,200.00,CO-45;PR-1,ICN 778899'
    )
    assert claim_of(row, FULL_HEADER) == ClaimRecord(
        source_line=2,
        claim_id="C-1001",
        payer_name="Aetna",
        payer_id="60054",
        status=ClaimStatus.PARTIAL,
        procedure_codes=("99213",),
        service_date=dt.date(2026, 3, 1),
        submitted_date=dt.date(2026, 3, 2),
        decision_date=MARCH_14,
        billed_cents=120000,
        allowed_cents=90000,
        paid_cents=70000,
        patient_responsibility_cents=20000,
        adjustments=(Adjustment("CO", "45", 0), Adjustment("PR", "1", 0)),
        payer_claim_control_number="ICN 778899",
    )


@pytest.mark.parametrize(
    "header",
    [
        "Claim Number,Payer Name,DOS,CPT,Remit Date,Billed,Paid,CARC,Claim Status",
        "CLAIM NO,INSURANCE,DATE OF SERVICE,CPT CODE,PAID DATE,CHARGES,AMOUNT PAID,DENIAL CODES,"
        "STATUS",
        "  claim_id , payer-name ,Service.Date,Procedure_Code,Remit  Date,Billed Amount,"
        "Ins Paid,Adjustment Reason Codes,claim_status",
        "Claim #,Payor,Service From,HCPCS,Adjudication Date,Total Charges,Payment,Reason Codes,"
        "Status",
        "Patient Account Number,Carrier,From Date,Service Code,EOB Date,Charge,Payment Amount,"
        "CARCs,Status",
        # Shortened words, and words in another order.
        "Claim Nbr,Ins Name,Svc Dt,Proc Cd,Pmt Dt,Billed Amt,Amt Pd,Adj Reason Codes,Status",
        "Claim No.,Primary Insurance,Date of Service,CPT/HCPCS,Date Paid,Total Charge ($),"
        "Payment Amt,Denial Reason,Claim Status",
        "Patient Account #,Carrier Name,DOS,Proc Code,Process Date,Charge Amt,Payments,"
        "Denial Code,Claim Status",
        "Encounter ID,Payer,Date of Service,CPT,Check Date,Charges,Insurance Payment Amount,"
        "CARC Code,Status",
    ],
)
def test_header_spellings_of_real_exports_are_understood(header: str) -> None:
    claim = claim_of("A7,Cigna,2026-03-01,71046,2026-03-14,250.00,0,CO-50,Denied", header)
    assert (claim.claim_id, claim.payer_name, claim.procedure_codes) == ("A7", "Cigna", ("71046",))
    assert (claim.service_date, claim.decision_date) == (dt.date(2026, 3, 1), MARCH_14)
    assert (claim.billed_cents, claim.paid_cents, claim.status) == (25000, 0, ClaimStatus.DENIED)
    assert claim.adjustments == (Adjustment("CO", "50", 0),)


def test_of_two_headers_of_one_column_the_plainer_spelling_is_read() -> None:
    """An export with a claim number and the patient's account number (an account has many
    claims) reads the claim number, wherever it stands; likewise the payer's paid date
    before the day the payment was posted."""
    items = parse(
        "Patient Account #,Post Date,Claim #,Payer,Paid Date,Charges,Payments\n"
        "PA1,2026-03-20,C1,Aetna,2026-03-14,10,5\n"
        "PA1,2026-03-20,C2,Aetna,2026-03-14,10,5\n"
    )
    assert items[0] == UploadWarning(
        "IGNORED_COLUMNS", "columns not used: Patient Account #, Post Date", 1
    )
    assert [(c.claim_id, c.decision_date, c.billed_cents) for c in claims(items)] == [
        ("C1", MARCH_14, 1000),
        ("C2", MARCH_14, 1000),
    ]


@pytest.mark.parametrize("by_columns", [True, False])
def test_the_patients_share_in_parts_is_summed_where_there_is_no_total(by_columns: bool) -> None:
    """ERA exports split the patient's share into deductible, coinsurance and copay; with no
    patient responsibility column, the parts are its sum. `Co-Insurance` is never a payer
    (an insurance company) column, though a payer column spelled less plainly is there."""
    parser = CsvParser(by_columns=by_columns)
    text = (
        "Claim #,Primary Payer,Paid Date,Charges,Ins Paid,Deductible Amt,Co-Insurance,Co-Pay\n"
        + "".join(f"C{i},Aetna,2026-03-14,100,50,$20.00,5,\n" for i in range(20))
        + "C20,Aetna,2026-03-14,100,50,,,10\n"
        + "C21,Aetna,03/14/26,100,50,,(2.50),\n"  # a credit, read on its own
        + "C22,Aetna,2026-03-14,100,50,,x5,\n"
    )
    items = parser.feed(text) + parser.close()
    assert [w for w in items if isinstance(w, UploadWarning)] == []
    read = claims(items)
    assert {c.payer_name for c in read} == {"Aetna"}
    assert [c.patient_responsibility_cents for c in read] == [2500] * 20 + [1000, -250]
    (rejection,) = rejections(items)
    assert (rejection.line_number, rejection.column, rejection.raw_value) == (
        24,
        "coinsurance",
        "x5",
    )


def test_a_patient_responsibility_column_is_read_before_its_parts() -> None:
    items = parse("Claim,Payer,Paid Date,Deductible,Pt Resp,Copay\nC1,Aetna,2026-03-14,20,30,5\n")
    assert items[0] == UploadWarning("IGNORED_COLUMNS", "columns not used: Deductible, Copay", 1)
    assert claims(items)[0].patient_responsibility_cents == 3000


def test_columns_it_does_not_use_are_named_in_a_warning() -> None:
    items = parse("Claim ID,Patient Name,Payer,Remit Date,Notes\nC1,Jane Doe,Aetna,2026-03-14,x\n")
    assert items[0] == UploadWarning("IGNORED_COLUMNS", "columns not used: Patient Name, Notes", 1)
    assert claims(items)[0].payer_name == "Aetna"
    assert "Jane Doe" not in repr(items)


def test_a_column_map_names_the_columns_an_export_spells_its_own_way() -> None:
    text = "Acct,Claim Number,Ins Co,Closed On,Amt\nA-1,IGNORED,Humana,2026-03-14,55.10\n"
    column_map = {
        "claim_id": "acct",
        "payer": "Ins Co",
        "decision_date": "Closed On",
        "billed_amount": "AMT",
    }
    items = parse(text, column_map)
    # The map wins over the "Claim Number" alias, which is then the one column not used.
    assert items[0] == UploadWarning("IGNORED_COLUMNS", "columns not used: Claim Number", 1)
    [claim] = claims(items)
    assert (claim.claim_id, claim.payer_name, claim.decision_date) == ("A-1", "Humana", MARCH_14)
    assert claim.billed_cents == 5510


def test_a_column_map_naming_an_unknown_column_is_refused() -> None:
    error = file_error(f"{HEADER}\n", column_map={"claim_number": "claim_id"})
    assert error.code == "BAD_COLUMN_MAP"
    assert "'claim_number'" in str(error)


def test_a_column_map_naming_a_header_the_file_lacks_is_refused() -> None:
    error = file_error(f"{HEADER}\nC1,Aetna,2026-03-14,1,1\n", column_map={"payer": "Plan Name"})
    assert (error.code, error.line_number) == ("BAD_COLUMN_MAP", 1)
    assert "'Plan Name'" in str(error)


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("payer,decision_date,billed_amount", "claim_id"),
        ("Claim Number,Remit Date,Billed", "payer"),
        ("claim_id,payer,billed_amount,paid_amount", "decision_date"),
        ("Claim ID,Billed", "payer"),
    ],
)
def test_a_missing_required_column_is_named(header: str, missing: str) -> None:
    error = file_error(f"{header}\nC1,x,1\n")
    assert (error.code, error.line_number) == ("MISSING_COLUMN", 1)
    assert missing in str(error)
    assert f"{missing} (or" in str(error)


def test_a_status_column_stands_in_for_the_decision_date_column() -> None:
    [claim] = claims(parse("claim_id,payer,status\nC1,Aetna,Pending\n"))
    assert (claim.status, claim.decision_date) == (ClaimStatus.PENDING, None)


def test_a_file_without_a_header_row_is_refused() -> None:
    assert file_error("").code == "NO_HEADER"
    assert file_error("\n\r\n   \n").code == "NO_HEADER"


def test_semicolon_separated_exports_are_read() -> None:
    text = (
        "Claim ID;Payer Name;Remit Date;Billed;Paid\r\n"
        'C1;"Aetna; Medicare Advantage";14.03.2026;10;0\r\n'
        'C2;"Blue Cross, Blue Shield";03/14/2026;"$1,234.56";(12.00)\r\n'
        "C3;Cigna;14.3.2026;1.234,56;12,50\r\n"
    )
    items = parse(text)
    assert rejections(items) == []
    assert [
        (c.payer_name, c.decision_date, c.billed_cents, c.paid_cents) for c in claims(items)
    ] == [
        ("Aetna; Medicare Advantage", MARCH_14, 1000, 0),
        ("Blue Cross, Blue Shield", MARCH_14, 123456, -1200),
        ("Cigna", MARCH_14, 123456, 1250),
    ]


# --- Dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-14", MARCH_14),
        ("03/14/2026", MARCH_14),
        ("3/14/26", MARCH_14),
        ("3/4/26", dt.date(2026, 3, 4)),
        ("20260314", MARCH_14),
        ("2026-03-14T10:30:00Z", MARCH_14),
        ("2026-03-14 10:30:00", MARCH_14),
        ("03/14/2026 10:30 AM", MARCH_14),
        ("  03/14/2026  ", MARCH_14),
        ("2026/03/14", MARCH_14),
        ("14.03.2026", MARCH_14),
        ("14-Mar-2026", MARCH_14),
        ("14-MAR-26", MARCH_14),
        ("14 March 2026", MARCH_14),
        ("14-Mar-2026 10:30", MARCH_14),
        ("Mar 14, 2026", MARCH_14),
        ("March 14 2026", MARCH_14),
        ("Sept. 4, 2026", dt.date(2026, 9, 4)),
        ("46095", MARCH_14),  # Excel's serial number of the date
    ],
)
def test_dates_as_exports_write_them_with_or_without_a_time(raw: str, expected: dt.date) -> None:
    assert claim_of(f'C1,Aetna,"{raw}",1,1').decision_date == expected


@pytest.mark.parametrize(
    "raw",
    [
        "2026-02-30",
        "2026-13-01",
        "26-03-14",
        "03/14",
        "2026314",
        "yesterday",
        "2026-+3-14",
        "2026-0_3-14",
        "2026-99999999999999999999-01",
        "٢٠٢٦-03-14",  # Arabic-Indic digits: int() reads them, no export writes them
        "03.14.2026",  # dots are day first: there is no month 14
        "14-Foo-2026",
        "31-Feb-2026",
        "Mar 14",
        "12345",  # a serial number, but of 1933
        "99999",
    ],
)
def test_a_bad_date_rejects_the_row_naming_line_column_and_value(raw: str) -> None:
    text = f"{HEADER}\nC1,Aetna,2026-03-14,1,1\nC2,Aetna,{raw},1,1\nC3,Aetna,2026-03-14,1,1\n"
    items = parse(text)
    assert rejections(items) == [
        Rejection(
            3,
            f"{raw!r} is not a date (use 2026-03-14 or 03/14/2026)",
            "BAD_DATE",
            "decision_date",
            raw,
        )
    ]
    assert [c.claim_id for c in claims(items)] == ["C1", "C3"]


def test_a_day_first_date_is_refused_saying_the_files_other_dates_were_read_month_first() -> None:
    text = f"{HEADER}\nC1,Aetna,03/04/2026,1,1\nC2,Aetna,14/03/2026,1,1\n"
    [rejection] = rejections(parse(text))
    assert (rejection.line_number, rejection.raw_value) == (3, "14/03/2026")
    assert rejection.reason == (
        "'14/03/2026' can only be day first, and dates with slashes are read month first (US): "
        "if the file writes its dates day first, its other dates were misread too; export "
        "them as 2026-03-14"
    )


def test_a_bad_service_date_names_its_own_column() -> None:
    rejection = rejection_of("C1,Aetna,2026-03-14,2026-03-99", "claim_id,payer,remit date,dos")
    assert (rejection.code, rejection.column, rejection.raw_value) == (
        "BAD_DATE",
        "service_date",
        "2026-03-99",
    )


# --- Amounts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cents"),
    [
        ("1234.56", 123456),
        ("$1,234.56", 123456),
        ("$ 1,234.5", 123450),
        ("(12.00)", -1200),
        ("($12.00)", -1200),
        ("-5", -500),
        ("-12.00", -1200),
        (".5", 50),
        ("7.", 700),
        (" 0 ", 0),
        ("000012.07", 1207),
        ("1,234,567.89", 123456789),
        # European spellings: the last of `.` and `,` is the decimal mark.
        ("1.234,56", 123456),
        ("12,50", 1250),
        ("(1.234,5)", -123450),
        ("1.234.567,89", 123456789),
        # Excel's accounting format writes a zero as a dash.
        ("$ -", 0),
        ("-", 0),
        # Credits as accounting exports write them; a currency's code.
        ("12.00-", -1200),
        ("$1,234.56 CR", -123456),
        ("USD 1,234.56", 123456),
        ("12.50 usd", 1250),
    ],
)
def test_amounts_as_exports_write_them_become_exact_cents(raw: str, cents: int) -> None:
    claim = claim_of(f'C1,Aetna,2026-03-14,"{raw}","{raw}"')
    assert (claim.billed_cents, claim.paid_cents) == (cents, cents)


def test_semicolon_exports_write_amounts_with_a_decimal_comma() -> None:
    text = (
        "Claim ID;Payer Name;Remit Date;Billed;Paid\r\n"
        "C1;Aetna;2026-03-14;1.234,56;1.000\r\n"
        "C2;Aetna;2026-03-14;12,50;0,5\r\n"
        "C3;Aetna;2026-03-14;0.125;0\r\n"
    )
    items = parse(text)
    assert [(c.billed_cents, c.paid_cents) for c in claims(items)] == [
        (123456, 100000),
        (1250, 50),
    ]
    assert [(r.line_number, r.column, r.raw_value) for r in rejections(items)] == [
        (4, "billed_amount", "0.125")
    ]


def test_an_empty_allowed_amount_is_unknown_not_zero() -> None:
    header = "claim_id,payer,decision_date,billed_amount,allowed_amount,paid_amount"
    assert claim_of("C1,Aetna,2026-03-14,,,", header).allowed_cents is None
    assert claim_of("C1,Aetna,2026-03-14,,0,", header).allowed_cents == 0
    empty = claim_of("C1,Aetna,2026-03-14,,,", header)
    assert (empty.billed_cents, empty.paid_cents) == (0, 0)
    for no_value in ("N/A", "null", "None"):
        assert claim_of(f"C1,Aetna,2026-03-14,1,{no_value},1", header).allowed_cents is None


@pytest.mark.parametrize("no_date", ["N/A", "NULL", "-", "00/00/0000", "0000-00-00"])
def test_a_date_cell_that_says_there_is_none_is_empty(no_date: str) -> None:
    header = "claim_id,payer,service_date,decision_date"
    claim = claim_of(f"C1,Aetna,{no_date},2026-03-14", header)
    assert (claim.service_date, claim.decision_date) == (None, MARCH_14)
    # A decided claim's decision date cannot be one of them.
    rejection = rejection_of(f"C1,Aetna,2026-03-01,{no_date}", header)
    assert (rejection.code, rejection.column) == ("MISSING_FIELD", "decision_date")


@pytest.mark.parametrize(
    "raw",
    [
        *("12.345", "1.2.3", "abc", "1e5", "--5", "()", ".", "1-2", "²", "١٢", "1_000", "+5"),
        *("CR", "USD", "12.00 DR", "(12.00)-"),
        # Thousands groups of other than three digits; a thousands separator and three
        # decimals look alike.
        *("1,23,456", "12,3456.00", "1.234", "0,125.00", "1,234.56.7"),
    ],
)
def test_a_bad_amount_rejects_the_row_naming_line_column_and_value(raw: str) -> None:
    text = f'{HEADER}\nC1,Aetna,2026-03-14,1,1\n\nC2,Aetna,2026-03-14,10.00,"{raw}"\n'
    items = parse(text)
    assert rejections(items) == [
        Rejection(4, f"{raw!r} is not an amount (e.g. 1234.56)", "BAD_AMOUNT", "paid_amount", raw)
    ]
    assert len(claims(items)) == 1


@pytest.mark.parametrize(
    ("raw", "currency"),
    [
        ("€12,50", "euros"),
        ("12.50 EUR", "euros"),
        ("£5", "pounds sterling"),
        ("CAD 40.00", "Canadian dollars"),
        ("mxn 300", "Mexican pesos"),
    ],
)
def test_an_amount_in_another_currency_is_refused_naming_it(raw: str, currency: str) -> None:
    rejection = rejection_of(f'C1,Aetna,2026-03-14,10.00,"{raw}"', HEADER)
    assert (rejection.column, rejection.code, rejection.reason) == (
        "paid_amount",
        "BAD_AMOUNT",
        f"{raw!r} is an amount in {currency}: amounts are read in US dollars (e.g. 1234.56)",
    )


def test_a_huge_amount_is_rejected_rather_than_stored() -> None:
    rejection = rejection_of("C1,Aetna,2026-03-14,1234567890123.00,0")
    assert (rejection.code, rejection.column) == ("BAD_AMOUNT", "billed_amount")


# --- Status, decision date, codes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("paid", ClaimStatus.PAID),
        (" Paid ", ClaimStatus.PAID),
        ("DENIED", ClaimStatus.DENIED),
        ("Rejected", ClaimStatus.DENIED),
        ("Partially Paid", ClaimStatus.PARTIAL),
        ("partial", ClaimStatus.PARTIAL),
        ("Void", ClaimStatus.REVERSED),
        ("reversal", ClaimStatus.REVERSED),
        ("Paid-In-Full", ClaimStatus.PAID),
        ("Approved", ClaimStatus.PAID),
        ("PARTIAL_PAYMENT", ClaimStatus.PARTIAL),
        ("Declined", ClaimStatus.DENIED),
        ("Deny", ClaimStatus.DENIED),
        ("Paid - Partial", ClaimStatus.PARTIAL),
        ("", ClaimStatus.PAID),  # decided, with no status: the denial rules decide
    ],
)
def test_status_in_any_case_and_its_aliases(raw: str, status: ClaimStatus) -> None:
    claim = claim_of(f"C1,Aetna,2026-03-14,{raw}", "claim_id,payer,decision_date,status")
    assert (claim.status, claim.decision_date) == (status, MARCH_14)


@pytest.mark.parametrize(
    "raw",
    [
        "Processed", "Processed as Primary", "CLOSED", "Finalized", "Appealed", "Reprocessed",
        "Crossed Over", "Zero Pay", "Written-Off",
    ],
)  # fmt: skip
def test_a_status_saying_only_that_the_payer_decided_leaves_the_verdict_to_the_amounts(
    raw: str,
) -> None:
    text = (
        "claim_id,payer,decision_date,status,billed_amount,paid_amount,carc_codes\n"
        f"D1,Aetna,2026-03-14,{raw},100,0,CO-50\n"
        f"P1,Aetna,2026-03-14,{raw},100,80,CO-45\n"
    )
    parser = UploadParser(max_bytes=1 << 20)
    batches = [parser.feed(text.encode()), parser.close()]
    read = {claim.claim_id: claim.status for batch in batches for claim in batch.all_claims()}
    assert read == {"D1": ClaimStatus.DENIED, "P1": ClaimStatus.PAID}


@pytest.mark.parametrize(
    "raw", ["pending", "In Process", "OPEN", "submitted", "Pended", "On Hold", "in_review"]
)
def test_pending_claims_need_no_decision_date_and_keep_none(raw: str) -> None:
    header = "claim_id,payer,decision_date,status"
    for decision in ("", "2026-03-14"):
        claim = claim_of(f"C1,Aetna,{decision},{raw}", header)
        assert (claim.status, claim.decision_date) == (ClaimStatus.PENDING, None)


@pytest.mark.parametrize("status", ["PAID", "denied", ""])
def test_a_decided_claim_without_a_decision_date_is_rejected(status: str) -> None:
    rejection = rejection_of(f"C1,Aetna,,{status}", "claim_id,payer,decision_date,status")
    assert (rejection.line_number, rejection.code, rejection.column) == (
        2,
        "MISSING_FIELD",
        "decision_date",
    )
    assert "unless the status is PENDING" in rejection.reason


def test_an_unknown_status_is_rejected_with_the_statuses_it_knows() -> None:
    rejection = rejection_of("C1,Aetna,2026-03-14,Maybe", "claim_id,payer,decision_date,status")
    assert (rejection.code, rejection.column, rejection.raw_value) == (
        "BAD_STATUS",
        "status",
        "Maybe",
    )
    assert "PAID, PARTIAL, DENIED, PENDING, REVERSED" in rejection.reason


@pytest.mark.parametrize("column", ["claim_id", "payer"])
def test_a_blank_claim_id_or_payer_is_rejected(column: str) -> None:
    row = "C1,Aetna,2026-03-14".replace("C1" if column == "claim_id" else "Aetna", " ")
    rejection = rejection_of(row, "claim_id,payer,decision_date")
    assert (rejection.code, rejection.column) == ("MISSING_FIELD", column)


def test_carc_codes_with_any_separator_and_spelling() -> None:
    claim = claim_of('C1,Aetna,2026-03-14,"co-50; PR1 |OA:23,CO-B7"', "claim,payer,remit date,carc")
    assert claim.adjustments == (
        Adjustment("CO", "50", 0),
        Adjustment("PR", "1", 0),
        Adjustment("OA", "23", 0),
        Adjustment("CO", "B7", 0),
    )


@pytest.mark.parametrize(
    ("cell", "adjustments"),
    [
        ("CO 50", (("CO", "50"),)),
        ('"PR - 1, CO 45"', (("PR", "1"), ("CO", "45"))),
        ("CO-45/PR-2", (("CO", "45"), ("PR", "2"))),
        ("co-16 / oa 23", (("CO", "16"), ("OA", "23"))),
    ],
)
def test_a_group_written_apart_from_its_code_or_codes_between_slashes(
    cell: str, adjustments: tuple[tuple[str, str], ...]
) -> None:
    claim = claim_of(f"C1,Aetna,2026-03-14,{cell}", "claim,payer,remit date,carc")
    assert claim.adjustments == tuple(Adjustment(group, code, 0) for group, code in adjustments)


@pytest.mark.parametrize("by_columns", [True, False])
def test_remark_codes_beside_the_reason_codes_keep_the_claim_and_are_told_once(
    by_columns: bool,
) -> None:
    """Exports list remittance advice remark codes (RARCs) beside the reason codes they
    explain: the claim and its reasons are kept, the remarks are not, and one warning says
    how many rows had them and where the first was."""
    rows = [f"C{i},Aetna,2026-03-14,10,0,{carc}" for i, carc in enumerate(
        ["CO-45", '"CO-16, N290"', "CO-45", "CO-16 M127 MA130", "N479", "PR-1"] * 10
    )]  # fmt: skip
    rows[31] = "C31,Aetna,03/14/26,$10.00,0,CO-16 N290"  # read on its own when by columns
    parser = CsvParser(by_columns=by_columns)
    items = parser.feed("\n".join([f"{HEADER},carc_codes", *rows]) + "\n") + parser.close()
    assert rejections(items) == []
    read = claims(items)
    assert [c.claim_id for c in read] == [f"C{i}" for i in range(60)]
    assert read[1].adjustments == (Adjustment("CO", "16", 0),)
    assert read[3].adjustments == (Adjustment("CO", "16", 0),)
    assert read[4].adjustments == ()
    assert read[4].denied is read[0].denied is False
    warnings = [item for item in items if isinstance(item, UploadWarning)]
    assert [(w.code, w.line_number) for w in warnings] == [("REMARK_CODES", 3)]
    assert warnings[0].message == (
        "30 rows list remark codes (RARCs) beside their reason codes, the first 'N290' on "
        "line 3: a remark explains an adjustment and is not kept; the reason codes and the "
        "claims are kept"
    )


@pytest.mark.parametrize("by_columns", [True, False])
def test_reason_codes_given_with_their_descriptions_are_read_as_their_codes(
    by_columns: bool,
) -> None:
    """Denial reasons are often exported with the code's words beside it: the codes are
    read, the words are not kept, and nothing is rejected."""
    cells = [
        "CO-16 - Claim/service lacks information or has submission/billing error(s).",
        '"CO-45: Charge exceeds fee schedule/maximum allowable, or contracted fee arrangement"',
        '"PR-1 - Deductible Amount; PR-2 - Coinsurance Amount"',
        "CO 97 (The benefit for this service is included in the payment for another service)",
        '"CO-B7 - This provider was not certified, N290: Missing rendering provider"',
        "co-50 – these are non-covered services",
        "CO-45 -",
    ]
    rows = [f"C{i},Aetna,2026-03-14,10,0,{cell}" for i, cell in enumerate(cells)]
    parser = CsvParser(by_columns=by_columns)
    items = parser.feed("\n".join([f"{HEADER},denial_reason", *rows]) + "\n") + parser.close()
    assert rejections(items) == []
    assert [c.adjustments for c in claims(items)] == [
        (Adjustment("CO", "16", 0),),
        (Adjustment("CO", "45", 0),),
        (Adjustment("PR", "1", 0), Adjustment("PR", "2", 0)),
        (Adjustment("CO", "97", 0),),
        (Adjustment("CO", "B7", 0),),
        (Adjustment("CO", "50", 0),),
        (Adjustment("CO", "45", 0),),
    ]
    # The remark among them is told as remarks listed without words are.
    warnings = [item for item in items if isinstance(item, UploadWarning)]
    assert [(w.code, w.line_number) for w in warnings] == [("REMARK_CODES", 6)]


@pytest.mark.parametrize(
    ("cell", "bad"),
    [
        ("Denied - CO-16", "'Denied'"),  # words before the first code
        ("CO-45 12.50", "'12.50'"),  # a number after a code is no description
        ("Claim lacks information", "'Claim'"),  # words and no code
        ("16 - Claim lacks information", "'16'"),  # a code without its group
    ],
)
def test_a_cell_of_words_or_numbers_beside_no_code_is_still_rejected(cell: str, bad: str) -> None:
    rejection = rejection_of(f"C1,Aetna,2026-03-14,{cell}", "claim,payer,remit date,carc")
    assert (rejection.code, rejection.column, rejection.raw_value) == (
        "BAD_CARC",
        "carc_codes",
        cell,
    )
    assert bad in rejection.reason


def test_a_file_without_remark_codes_has_no_warning_of_them() -> None:
    items = parse(f"{HEADER},carc_codes\nC1,Aetna,2026-03-14,10,0,CO-16\n")
    assert [item for item in items if isinstance(item, UploadWarning)] == []


def test_a_carc_code_without_its_group_is_rejected() -> None:
    rejection = rejection_of("C1,Aetna,2026-03-14,CO-50;97", "claim,payer,remit date,carc")
    assert (rejection.code, rejection.column, rejection.raw_value) == (
        "BAD_CARC",
        "carc_codes",
        "CO-50;97",
    )
    assert "'97'" in rejection.reason


@pytest.mark.parametrize(
    ("cell", "codes"),
    [
        ("j1100:JW", ("J1100",)),
        ("99213-25-59", ("99213",)),
        ("99213 25", ("99213",)),
        ('"99213; 36415"', ("99213", "36415")),
        ('"99213, 36415-QW, 99213"', ("99213", "36415")),
        ("99213|G0008", ("99213", "G0008")),
    ],
)
def test_a_cell_holds_a_code_with_its_modifiers_or_a_claims_several_codes(
    cell: str, codes: tuple[str, ...]
) -> None:
    assert (
        claim_of(f"C1,Aetna,2026-03-14,{cell}", "claim_id,payer,decision_date,cpt").procedure_codes
        == codes
    )


@pytest.mark.parametrize("cell", ["OFFICE VISIT", '"99213; visit"', "12"])
def test_a_procedure_code_that_is_not_cpt_or_hcpcs_is_rejected(cell: str) -> None:
    rejection = rejection_of(f"C1,Aetna,2026-03-14,{cell}", "claim_id,payer,decision_date,cpt")
    assert (rejection.code, rejection.column) == ("BAD_PROCEDURE_CODE", "procedure_code")
    assert rejection.raw_value == cell.strip('"').upper()


# --- Spreadsheet formulas ------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell",
    ['"=HYPERLINK(""http://evil.example"",""x"")"', "+1", "@SUM(A1)", "-cmd", "-", "-2+3+cmd|x"],
)
@pytest.mark.parametrize("column", ["claim_id", "payer", "payer_id", "payer_claim_control_number"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_rejected(cell: str, column: str) -> None:
    header = "claim_id,payer,payer_id,payer_claim_control_number,decision_date"
    cells = {"claim_id": "C1", "payer": "Aetna", "payer_id": "60054"}
    cells["payer_claim_control_number"] = "ICN1"
    cells[column] = cell
    row = ",".join([*cells.values(), "2026-03-14"])
    rejection = rejection_of(row, header)
    assert (rejection.line_number, rejection.code, rejection.column) == (2, "FORMULA", column)


@pytest.mark.parametrize("by_columns", [True, False])
def test_excels_text_formula_is_read_as_its_text_and_any_other_formula_refused(
    by_columns: bool,
) -> None:
    """`="0012345"` is how some exports keep an id's leading zeros in Excel: its text is the
    value. A formula that does anything else is still refused."""
    text = (
        "claim_id,payer,decision_date,procedure_code,billed_amount\n"
        '="0012345",Aetna,2026-03-14,="99213",10\n'
        '"=""0012346""",Aetna,2026-03-14,99213,10\n'
        '"=""A1""&""B2""",Aetna,2026-03-14,99213,10\n'
        '=HYPERLINK("x"),Aetna,2026-03-14,99213,10\n'
    )
    parser = CsvParser(by_columns=by_columns)
    items = parser.feed(text) + parser.close()
    assert [(c.claim_id, c.procedure_codes) for c in claims(items)] == [
        ("0012345", ("99213",)),
        ("0012346", ("99213",)),
    ]
    assert [(r.line_number, r.code, r.raw_value) for r in rejections(items)] == [
        (4, "FORMULA", '="A1"&"B2"'),
        (5, "FORMULA", '=HYPERLINK("x")'),
    ]


def test_negative_numbers_are_not_formulas() -> None:
    claim = claim_of("-42,Aetna,2026-03-14,-12.00,(3.50)")
    assert (claim.claim_id, claim.billed_cents, claim.paid_cents) == ("-42", -1200, -350)


# --- Rows and lines ------------------------------------------------------------------------


def test_an_unquoted_comma_in_an_amount_shifts_the_columns_and_is_rejected() -> None:
    items = parse(f"{HEADER}\nC1,Aetna,2026-03-14,1,234.56,100.00\nC2,Aetna,2026-03-14,1,1\n")
    [rejection] = rejections(items)
    assert (rejection.line_number, rejection.code) == (2, "COLUMN_COUNT")
    assert "quote values that contain commas" in rejection.reason
    assert [c.claim_id for c in claims(items)] == ["C2"]


@pytest.mark.parametrize(("delimiter", "named"), [("\t", "tabs"), ("|", "pipes")])
def test_tab_and_pipe_delimited_exports_are_read(delimiter: str, named: str) -> None:
    """Practice-management and EHR reports write tabs or pipes; commas in their values need
    no quotes then."""
    rows = [
        ["Claim ID", "Payer Name", "Remit Date", "Billed", "Paid", "CARC"],
        ["C1", "Blue Cross, Blue Shield", "03/14/2026", "$1,234.56", "(12.00)", "CO-45,PR-1"],
        ["C2", "Aetna", "2026-03-14", "10", "0", "CO-50", "extra"],
        ["C3", "Aetna", "2026-03-15", "1.234", "0", ""],
    ]
    items = parse("\r\n".join(delimiter.join(row) for row in rows) + "\r\n")
    [claim] = claims(items)
    assert (claim.claim_id, claim.payer_name, claim.billed_cents, claim.paid_cents) == (
        "C1",
        "Blue Cross, Blue Shield",
        123456,
        -1200,
    )
    assert [(r.line_number, r.code) for r in rejections(items)] == [
        (3, "COLUMN_COUNT"),
        (4, "BAD_AMOUNT"),  # 1.234: three decimals or a thousand? Only a semicolon file says.
    ]
    assert rejections(items)[0].reason.endswith(f"quote values that contain {named}")


@pytest.mark.parametrize("hint", ["sep=;", "SEP=;", "sep=|", "sep=\t", "sep=,"])
def test_excels_sep_line_names_the_delimiter(hint: str) -> None:
    """Excel writes `sep=;` above the header of a CSV meant for it; the lines after count on
    from it."""
    delimiter = hint[-1]
    header = delimiter.join(["claim_id", "payer", "decision_date", "billed_amount"])
    text = f"{hint}\r\n{header}\r\nC1{delimiter}Aetna{delimiter}2026-03-14{delimiter}12,50\r\n"
    text += f"C2{delimiter}Aetna{delimiter}not-a-date{delimiter}1\r\n"
    if delimiter == ",":
        text = text.replace("12,50", '"12,50"')
    items = parse(text)
    assert [(c.claim_id, c.billed_cents) for c in claims(items)] == [("C1", 1250)]
    assert [(r.line_number, r.column) for r in rejections(items)] == [(4, "decision_date")]


def test_the_header_decides_the_delimiter_by_what_it_holds_most_of() -> None:
    """A column name may hold another delimiter, quoted or not."""
    text = 'claim_id;payer;"decision date, remit";billed, usd\nC1;Aetna, Inc;2026-03-14;1.234,50\n'
    names = {"decision_date": "decision date, remit", "billed_amount": "billed, usd"}
    [claim] = claims(parse(text, column_map=names))
    assert (claim.payer_name, claim.decision_date, claim.billed_cents) == (
        "Aetna, Inc",
        MARCH_14,
        123450,
    )


def test_a_semicolon_export_names_semicolons_when_a_value_shifts_the_columns() -> None:
    """Codes written as CO-45;PR-1 in a semicolon export make one column more."""
    header = "claim_id;payer;decision_date;billed_amount;carc_codes"
    items = parse(f"{header}\nC1;Aetna;2026-03-14;100,00;CO-45;PR-1\nC2;Aetna;2026-03-14;1;\n")
    [rejection] = rejections(items)
    assert (rejection.line_number, rejection.code) == (2, "COLUMN_COUNT")
    assert rejection.reason.endswith("quote values that contain semicolons")
    assert [c.claim_id for c in claims(items)] == ["C2"]


def test_trailing_empty_cells_and_short_rows_are_fine() -> None:
    items = parse(f"{HEADER}\nC1,Aetna,2026-03-14,1,2,,,\nC2,Aetna,2026-03-14\n")
    assert [(c.claim_id, c.billed_cents) for c in claims(items)] == [("C1", 100), ("C2", 0)]


def test_quoted_fields_over_several_lines_keep_later_line_numbers_right() -> None:
    text = (
        f"{HEADER}\n"
        'C1,"Aetna\nBetter\nHealth",2026-03-14,1,1\n'
        'C2,"Cigna ""Open Access""",2026-03-14,1,1\n'
        "C3,Cigna,2026-99-14,1,1\n"
        "C4,Cigna,2026-03-14,1,1\n"
    )
    items = parse(text)
    assert [(c.source_line, c.claim_id, c.payer_name) for c in claims(items)] == [
        (2, "C1", "Aetna\nBetter\nHealth"),
        (5, "C2", 'Cigna "Open Access"'),
        (7, "C4", "Cigna"),
    ]
    assert [(r.line_number, r.code) for r in rejections(items)] == [(6, "BAD_DATE")]


def test_a_stray_quote_inside_a_value_does_not_swallow_the_rows_after_it() -> None:
    text = f'{HEADER}\nC1,O"Brien Health,2026-03-14,1,1\nC2,Aetna,2026-03-14,1,1\n'
    assert [(c.claim_id, c.payer_name) for c in claims(parse(text))] == [
        ("C1", 'O"Brien Health'),
        ("C2", "Aetna"),
    ]


def test_an_unclosed_quote_at_the_end_of_the_file_rejects_only_the_last_row() -> None:
    text = f'{HEADER}\nC1,Aetna,2026-03-14,1,1\nC2,"Aetna,2026-03-14,1,1\n'
    items = parse(text)
    assert [c.claim_id for c in claims(items)] == ["C1"]
    assert [(r.line_number, r.code, r.column) for r in rejections(items)] == [
        (3, "MISSING_FIELD", "decision_date")
    ]


def test_crlf_line_endings_read_like_lf() -> None:
    text = (
        f"{FULL_HEADER}\n"
        "C1,Aetna,,99213,,,2026-03-14,paid,10,8,8,,CO-45,ICN1\n"
        'C2,"A\nB",,,,,,,,,,,,\n'
    )
    crlf = parse(text.replace("\n", "\r\n"))
    assert [c.payer_claim_control_number for c in claims(crlf)] == ["ICN1"]
    assert crlf == parse(text)


def test_blank_lines_are_skipped_but_counted_for_line_numbers() -> None:
    parser = CsvParser()
    items = parser.feed(f"\n{HEADER}\n\nC1,Aetna,2026-03-14,1,1\n   \n\r\nC2,Aetna,bad,1,1\n")
    items += parser.close()
    assert [c.source_line for c in claims(items)] == [4]
    assert [r.line_number for r in rejections(items)] == [7]
    assert parser.rows_read == 2


def test_rows_read_counts_data_rows_taken_and_rejected() -> None:
    parser = CsvParser()
    parser.feed(f"{HEADER}\nC1,Aetna,2026-03-14,1,1\nC2,Aetna,x,1,1\n")
    parser.feed("C3,Aetna,2026-03-14,1,1")  # no newline yet: not read
    assert parser.rows_read == 2
    parser.close()
    assert parser.rows_read == 3


def test_the_last_row_needs_no_newline() -> None:
    [claim] = claims(parse(f"{HEADER}\nC1,Aetna,2026-03-14,1,1"))
    assert claim.claim_id == "C1"


# --- Limits --------------------------------------------------------------------------------

SMALL = ParseLimits(max_line_bytes=80)


def over_long_file() -> str:
    return (
        f"{HEADER}\n"
        "C1,Aetna,2026-03-14,1,1\n"
        f"C2,{'A' * 200},2026-03-14,1,1\n"
        f'C3,"{"B" * 50}\n{"B" * 50}",2026-03-14,1,1\n'
        "C4,Aetna,2026-03-14,1,1\n"
    )


def test_an_over_long_row_is_rejected_and_the_rows_after_it_still_parse() -> None:
    items, rows_read = parse_in_pieces(over_long_file(), [], SMALL)
    assert [(c.claim_id, c.source_line) for c in claims(items)] == [("C1", 2), ("C4", 6)]
    assert rejections(items) == [
        Rejection(3, "row is longer than 80 bytes", "LINE_TOO_LONG"),
        Rejection(4, "row is longer than 80 bytes", "LINE_TOO_LONG"),
    ]
    assert rows_read == 4


def test_an_over_long_row_fed_a_character_at_a_time_reads_the_same() -> None:
    text = over_long_file()
    assert parse_in_pieces(text, list(range(1, len(text))), SMALL) == parse_in_pieces(
        text, [], SMALL
    )


def test_a_ten_megabyte_first_line_is_not_a_header() -> None:
    parser = CsvParser()
    with pytest.raises(FileError) as raised:
        parser.feed("x" * 10_000_000)
    assert (raised.value.code, raised.value.line_number) == ("LINE_TOO_LONG", 1)


@pytest.mark.parametrize("cuts", [[], [100], [40]])
def test_an_over_long_header_is_refused_whether_or_not_its_newline_has_arrived(
    cuts: list[int],
) -> None:
    text = "\n" + ",".join(["claim_id", "payer", "decision_date", *["extra"] * 20]) + "\nC1,x,y\n"
    assert outcome(text, cuts, SMALL) == ("LINE_TOO_LONG", 2)


def test_too_many_columns() -> None:
    limits = ParseLimits(max_columns=5)
    assert outcome("a,b,c,d,e,f\n", [], limits) == ("TOO_MANY_COLUMNS", 1)
    items, _ = parse_in_pieces(f"{HEADER}\nC1,Aetna,2026-03-14,1,1,,\n", [], limits)
    assert [(r.line_number, r.code) for r in rejections(items)] == [(2, "TOO_MANY_COLUMNS")]


# --- Properties ----------------------------------------------------------------------------

SAMPLE = (
    f"{FULL_HEADER}\r\n"
    'C1,"Aetna\r\nBetter Health",60054,99213,03/01/2026,,3/14/26,PAID,"$1,200.00",,"(5.00)",,'
    "CO-45;PR-1,\r\n"
    "\r\n"
    'C2,O"Brien,,,,,2026-03-14,denied,10,0,0,0,CO-50,=HYPERLINK()\r\n'
    "C3,Cigna,,,,,20260314T1200,partial,1,234.56,1,0,0,,CO-45\r\n"
    f'C4,"{"Z" * 200}",,,,,2026-03-14,,1,1,1,1,,\r\n'
    'C5,"Humana ""Gold""",,,,,,pending,,,,,,\n'
    'C6,"unclosed,2026-03-14'
)
# Room for the header, not for C4.
SAMPLE_LIMITS = ParseLimits(max_line_bytes=len(FULL_HEADER) + 1)
# Characters that make CSV interesting, and anything else now and then.
CSV_TEXT = st.text(
    alphabet=st.sampled_from([*',;"\n\r \t=+-@$().0123456789/ACDPEco', "²", "é", "\x00"])
    | st.characters(),
    max_size=300,
)


@FAST
@given(cuts=st.lists(st.integers(0, len(SAMPLE)), max_size=30))
def test_how_the_text_is_cut_into_pieces_never_changes_the_result(cuts: list[int]) -> None:
    assert outcome(SAMPLE, cuts, SAMPLE_LIMITS) == outcome(SAMPLE, [], SAMPLE_LIMITS)


def test_the_sample_exercises_claims_rejections_and_limits() -> None:
    items, rows_read = parse_in_pieces(SAMPLE, [], SAMPLE_LIMITS)
    assert [c.claim_id for c in claims(items)] == ["C1", "C5"]
    assert [(r.line_number, r.code) for r in rejections(items)] == [
        (5, "FORMULA"),
        (6, "COLUMN_COUNT"),
        (7, "LINE_TOO_LONG"),
        (9, "MISSING_FIELD"),
    ]
    assert rows_read == 6


def test_a_file_fed_one_character_at_a_time_reads_the_same() -> None:
    assert outcome(SAMPLE, list(range(len(SAMPLE)))) == outcome(SAMPLE, [])


@FAST
@given(body=CSV_TEXT, cuts=st.lists(st.integers(0, 400), max_size=8), limit=st.integers(1, 120))
def test_arbitrary_text_after_a_header_yields_items_or_a_file_error(
    body: str, cuts: list[int], limit: int
) -> None:
    text = f"{HEADER}\n{body}"
    limits = ParseLimits(max_line_bytes=max(limit, len(HEADER)), max_columns=8)
    result = outcome(text, [c for c in cuts if c <= len(text)], limits)
    # Chunking changes nothing, and every item points at a line of the file.
    assert result == outcome(text, [], limits)
    if isinstance(result, tuple) and isinstance(result[0], list):
        for item in result[0]:
            if isinstance(item, ClaimRecord | Rejection):
                line = item.source_line if isinstance(item, ClaimRecord) else item.line_number
                assert 2 <= line <= text.count("\n") + 1


@FAST
@given(text=CSV_TEXT, cuts=st.lists(st.integers(0, 300), max_size=8))
def test_arbitrary_text_without_a_header_yields_items_or_a_file_error(
    text: str, cuts: list[int]
) -> None:
    result = outcome(text, [c for c in cuts if c <= len(text)], ParseLimits(max_line_bytes=100))
    assert result == outcome(text, [], ParseLimits(max_line_bytes=100))


# --- Lines of one claim --------------------------------------------------------------------

LINES_HEADER = (
    "claim_id,payer,payer_id,procedure_code,service_date,submitted_date,decision_date,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes,"
    "payer_claim_control_number"
)


def test_adjacent_lines_of_a_claim_are_one_claim() -> None:
    text = (
        f"{LINES_HEADER}\n"
        "C1,Aetna,60054,99215,2026-02-04,2026-02-06,2026-02-24,1250.00,1092.86,1057.86,35.00,"
        "CO-45,\n"
        "C1,AETNA ,60054,93000,2026-02-03,2026-02-05,2026-02-26,950.00,865.00,865.00,0,"
        "CO-45,ICN-9\n"
        "C1,Aetna,60054,99215,2026-02-05,,2026-02-25,100.00,80.00,0.00,0,CO-97,ICN-10\n"
    )
    [claim] = claims(parse(text))
    assert (claim.source_line, claim.source_lines, claim.rows) == (2, (2, 3, 4), 3)
    assert (claim.claim_id, claim.payer_name, claim.payer_id) == ("C1", "Aetna", "60054")
    # Amounts summed; codes once each in order of appearance.
    assert (claim.billed_cents, claim.allowed_cents, claim.paid_cents) == (230000, 203786, 192286)
    assert claim.patient_responsibility_cents == 3500
    assert claim.procedure_codes == ("99215", "93000")
    # The earliest service and submission dates, the latest decision date.
    assert (claim.service_date, claim.submitted_date, claim.decision_date) == (
        dt.date(2026, 2, 3),
        dt.date(2026, 2, 5),
        dt.date(2026, 2, 26),
    )
    # Each line's adjustments on its line; the first claim number given.
    assert claim.adjustments == (
        Adjustment("CO", "45", 0, 1),
        Adjustment("CO", "45", 0, 2),
        Adjustment("CO", "97", 0, 3),
    )
    assert claim.payer_claim_control_number == "ICN-9"
    # The third line was paid nothing for a denial reason: the claim is partly denied.
    assert [line.paid_cents for line in claim.lines] == [105786, 86500, 0]
    assert (claim.status, claim.denied, claim.partially_denied) == (
        ClaimStatus.PARTIAL,
        False,
        True,
    )


def test_a_claim_with_a_line_whose_allowed_amount_is_unknown_has_no_allowed_total() -> None:
    text = f"{LINES_HEADER}\nC1,Aetna,,,,,2026-03-14,10,8,8,,,\nC1,Aetna,,,,,2026-03-14,5,,5,,,\n"
    [claim] = claims(parse(text))
    assert (claim.billed_cents, claim.allowed_cents, claim.paid_cents) == (1500, None, 1300)


def test_lines_apart_or_of_another_payer_are_left_to_the_upload_to_combine_or_refuse() -> None:
    """The parser combines the lines that follow each other; lines of a claim further
    apart, or of the same claim id with another payer (or payer id), come out apart."""
    text = (
        f"{LINES_HEADER}\n"
        "C1,Aetna,,,,,2026-03-14,10,,10,,,\n"
        "C1,Cigna,,,,,2026-03-14,20,,20,,,\n"
        "C1,Cigna,7,,,,2026-03-14,25,,25,,,\n"
        "C2,Aetna,,,,,2026-03-14,30,,30,,,\n"
        "C1,Aetna,,,,,2026-03-14,40,,40,,,\n"
    )
    assert [(c.claim_id, c.payer_name, c.billed_cents) for c in claims(parse(text))] == [
        ("C1", "Aetna", 1000),
        ("C1", "Cigna", 2000),
        ("C1", "Cigna", 2500),
        ("C2", "Aetna", 3000),
        ("C1", "Aetna", 4000),
    ]


def test_a_claim_of_more_lines_than_the_limit_comes_out_in_pieces() -> None:
    text = HEADER + "\n" + "".join("C1,Aetna,2026-03-14,1,1\n" for _ in range(5))
    pieces = claims(parse(text, limits=ParseLimits(max_claim_lines=3)))
    assert [piece.source_lines for piece in pieces] == [(2, 3, 4), (5, 6)]


def test_a_bad_line_is_rejected_and_the_claim_keeps_its_other_lines() -> None:
    text = f"{HEADER}\nC1,Aetna,2026-03-14,1,1\nC1,Aetna,2026-03-14,x,1\nC1,Aetna,2026-03-14,2,2\n"
    items = parse(text)
    assert [(r.line_number, r.column) for r in rejections(items)] == [(3, "billed_amount")]
    assert [(c.source_lines, c.billed_cents) for c in claims(items)] == [((2, 4), 300)]


STATUS_HEADER = "claim_id,payer,decision_date,status,billed_amount,paid_amount,carc_codes"


@pytest.mark.parametrize(
    ("statuses", "combined"),
    [
        (("PAID", "PAID"), ClaimStatus.PAID),
        (("DENIED", "DENIED"), ClaimStatus.DENIED),
        # Some lines paid, some denied: a partially paid claim.
        (("PAID", "DENIED"), ClaimStatus.PARTIAL),
        (("DENIED", "PARTIAL"), ClaimStatus.PARTIAL),
        # Pending lines leave the decided lines' status.
        (("PENDING", "DENIED"), ClaimStatus.DENIED),
        (("PENDING", "PENDING"), ClaimStatus.PENDING),
        # A line that states no status leaves it to the lines that do.
        (("", "DENIED"), ClaimStatus.DENIED),
    ],
)
def test_the_status_of_a_claim_whose_lines_state_different_ones(
    statuses: tuple[str, str], combined: ClaimStatus
) -> None:
    rows = "".join(f"C1,Aetna,2026-03-14,{status},10,5,\n" for status in statuses)
    [claim] = claims(parse(f"{STATUS_HEADER}\n{rows}"))
    assert claim.status is combined
    assert (claim.decision_date is None) == (combined is ClaimStatus.PENDING)


@pytest.mark.parametrize(
    ("lines", "status", "denied", "partially_denied"),
    [
        # Nothing paid for a denial reason on every line.
        (["0,CO-50", "0,CO-50"], ClaimStatus.DENIED, True, False),
        # A line paid nothing for a denial reason beside a paid one.
        (["10,CO-45", "0,CO-97"], ClaimStatus.PARTIAL, False, True),
        # Nothing paid for the patient's share is no denial.
        (["10,", "0,PR-1"], ClaimStatus.PAID, False, False),
    ],
)
def test_without_a_status_the_denial_rules_say_the_claims_status(
    lines: list[str], status: ClaimStatus, denied: bool, partially_denied: bool
) -> None:
    rows = "".join(f"C1,Aetna,2026-03-14,10,{line}\n" for line in lines)
    parser = UploadParser(max_bytes=1 << 20)
    batch = parser.feed(f"claim_id,payer,decision_date,billed,paid,carc\n{rows}".encode())
    [claim] = batch.claims + parser.close().claims
    assert (claim.status, claim.status_stated) == (status, False)
    assert (claim.denied, claim.partially_denied) == (denied, partially_denied)


def test_a_line_level_file_reads_the_same_however_it_is_cut() -> None:
    text = LINE_LEVEL_EXPORT.read_text()
    whole = parse_in_pieces(text, [])
    assert len(claims(whole[0])) == 5  # 4 claims, one with a line apart
    for size in (1, 7, 100):
        assert parse_in_pieces(text, list(range(size, len(text), size))) == whole


# --- Adjustments in columns of their own ---------------------------------------------------

ADJUSTMENTS_HEADER = (
    "claim_id,payer,decision_date,adj_0_group,adj_0_code,adj_0_amount,"
    "Adjustment Group,Reason Code,Adjustment Amount,adj_1_group,adj_1_code,adj_1_amount"
)


def test_adjustment_columns_are_read_as_cas_adjustments_in_header_order() -> None:
    items = parse(
        f"{ADJUSTMENTS_HEADER}\n"
        "C1,Aetna,2026-03-14,co,45,$30.00,PR,1,10.00,OA,23,(5.00)\n"
        "C2,Aetna,2026-03-14,,,,,CO-50,,,,\n"
        "C3,Aetna,2026-03-14,,,,,,,,,\n"
    )
    assert not [item for item in items if isinstance(item, UploadWarning)]
    assert [c.adjustments for c in claims(items)] == [
        (Adjustment("CO", "45", 3000), Adjustment("PR", "1", 1000), Adjustment("OA", "23", -500)),
        # A reason code that spells its group needs no group column.
        (Adjustment("CO", "50", 0),),
        (),
    ]


def test_a_single_adjustment_in_columns_adds_to_the_carc_codes_column() -> None:
    header = "claim_id,payer,decision_date,carc_codes,Adjustment Group,Reason Code"
    claim = claim_of("C1,Aetna,2026-03-14,PR-2,CO,B7", header)
    assert claim.adjustments == (Adjustment("PR", "2", 0), Adjustment("CO", "B7", 0))


def test_adjustment_columns_whose_reason_codes_come_with_their_descriptions() -> None:
    header = "claim_id,payer,decision_date,Adjustment Group,Reason Code,Adjustment Amount"
    items = parse(
        f"{header}\n"
        "C1,Aetna,2026-03-14,CO,16 - Claim lacks information,0\n"
        "C2,Aetna,2026-03-14,PR,B7: Provider not certified,5.00\n"
        '"C3","Aetna","2026-03-14","","CO-45 - Charge exceeds fee schedule","30.00"\n'
        # The separator written before a description the export does not have.
        "C4,Aetna,2026-03-14,CO,16 -,0\n"
        "C5,Aetna,2026-03-14,OA,23:,1.00\n"
    )
    assert rejections(items) == []
    assert [c.adjustments for c in claims(items)] == [
        (Adjustment("CO", "16", 0),),
        (Adjustment("PR", "B7", 500),),
        (Adjustment("CO", "45", 3000),),
        (Adjustment("CO", "16", 0),),
        (Adjustment("OA", "23", 100),),
    ]


@pytest.mark.parametrize(
    ("cells", "column", "code", "raw"),
    [
        ("XX,45,1.00", "adj_0_group", "BAD_GROUP_CODE", "XX"),
        ("CO,45 12,1.00", "adj_0_code", "BAD_CARC", "45 12"),
        ("CO,45,ten", "adj_0_amount", "BAD_AMOUNT", "ten"),
        ("CO,4-5,1.00", "adj_0_code", "BAD_CARC", "4-5"),
        ("CO,,1.00", "adj_0_code", "MISSING_FIELD", ""),
        (",45,1.00", "adj_0_group", "MISSING_FIELD", ""),
    ],
)
def test_a_bad_adjustment_rejects_its_row_naming_the_column(
    cells: str, column: str, code: str, raw: str
) -> None:
    header = "claim_id,payer,decision_date,adj_0_group,adj_0_code,adj_0_amount"
    rejection = rejection_of(f"C1,Aetna,2026-03-14,{cells}", header)
    assert (rejection.line_number, rejection.column, rejection.code, rejection.raw_value) == (
        2,
        column,
        code,
        raw,
    )


def test_a_claim_id_longer_than_any_real_one_rejects_its_row() -> None:
    longest = "C" * 50
    assert (
        claim_of(f"{longest},Aetna,2026-03-14", "claim_id,payer,decision_date").claim_id == longest
    )
    rejection = rejection_of(f"{longest}X,Aetna,2026-03-14", "claim_id,payer,decision_date")
    assert (rejection.line_number, rejection.column, rejection.code) == (2, "claim_id", "TOO_LONG")


# --- Files that are not what they seem -----------------------------------------------------


def test_a_missing_column_is_named_once_with_other_spellings_of_it() -> None:
    error = file_error("claim_id,procedure_code,decision_date\nA1,99213,2026-01-02\n")
    assert str(error) == (
        "line 1: missing required column payer (or payer name, insurance, insurance name)"
    )


def test_binary_bytes_without_a_nul_do_not_look_like_csv_text() -> None:
    error = file_error("PK\x03\x04\x14\x06\x08\rA\x9c,\x13claim_id\n\x02\x03")
    assert (error.code, error.line_number) == ("BAD_CSV", 1)
    assert str(error) == (
        "line 1: the file does not look like CSV text (a carriage return inside a value)"
    )
    rejection = rejection_of("C1,Aet\rna,2026-03-14,1,1")
    assert rejection.reason == (
        "not a valid CSV row: the file does not look like CSV text "
        "(a carriage return inside a value)"
    )


def _line(number: int, draw: st.DrawFn) -> ClaimRecord:
    """One row of claim C1 of Aetna, as the parser reads one (reversals are never lines)."""
    status = draw(st.sampled_from([None, *(s for s in ClaimStatus if s != "REVERSED")]))
    day = dt.date(2026, 3, 1) + dt.timedelta(days=draw(st.integers(0, 20)))
    return ClaimRecord(
        source_line=number,
        claim_id="C1",
        payer_name="Aetna",
        status=status or ClaimStatus.PAID,
        status_stated=status is not None,
        procedure_codes=(draw(st.sampled_from(["99213", "99214", "71046"])),),
        service_date=draw(st.none() | st.just(day - dt.timedelta(days=3))),
        submitted_date=draw(st.none() | st.just(day - dt.timedelta(days=2))),
        decision_date=None if status is ClaimStatus.PENDING else day,
        billed_cents=draw(st.integers(0, 10_000)),
        allowed_cents=draw(st.none() | st.integers(0, 10_000)),
        paid_cents=draw(st.integers(0, 10_000)),
        patient_responsibility_cents=draw(st.integers(0, 1_000)),
        adjustments=tuple(
            Adjustment(group, reason, draw(st.integers(0, 500)))
            for group, reason in draw(
                st.lists(st.sampled_from([("CO", "45"), ("CO", "50"), ("PR", "1")]), max_size=2)
            )
        ),
        payer_claim_control_number=draw(st.sampled_from(["", "ICN1", "ICN2"])),
    )


@st.composite
def _claim_lines_and_cuts(draw: st.DrawFn) -> tuple[list[ClaimRecord], list[int]]:
    count = draw(st.integers(1, 8))
    lines = [_line(number, draw) for number in range(2, 2 + count)]
    return lines, sorted(draw(st.sets(st.integers(1, count - 1))) if count > 1 else [])


def _fold(lines: list[ClaimRecord]) -> ClaimRecord:
    claim = lines[0]
    for line in lines[1:]:
        claim = combine(claim, line)
    return claim


@FAST
@given(lines_and_cuts=_claim_lines_and_cuts())
def test_lines_combined_in_pieces_make_the_claim_they_make_in_one(
    lines_and_cuts: tuple[list[ClaimRecord], list[int]],
) -> None:
    """An upload combines a claim's lines as they come: in the parser, in a chunk, and the
    pieces at the end. However the lines are cut into pieces, the claim is the same."""
    lines, cuts = lines_and_cuts
    whole = _fold(lines)
    pieces = [_fold(lines[start:end]) for start, end in pairwise([0, *cuts, len(lines)])]
    assert _fold(pieces) == whole
    assert whole.rows == len(lines)
    assert whole.source_lines == (tuple(line.source_line for line in lines) if lines[1:] else ())
    assert (whole.billed_cents, whole.paid_cents) == (
        sum(line.billed_cents for line in lines),
        sum(line.paid_cents for line in lines),
    )
    allowed = [line.allowed_cents for line in lines]
    assert whole.allowed_cents == (None if None in allowed else sum(filter(None, allowed)))
    decided = [line.decision_date for line in lines if line.decision_date is not None]
    if whole.status is not ClaimStatus.PENDING:
        assert whole.decision_date == max(decided)
    codes = (code for line in lines for code in line.procedure_codes)
    assert whole.procedure_codes == tuple(dict.fromkeys(codes))


# --- Reading column by column --------------------------------------------------------------

# Cells of each column of FULL_HEADER: the plain ones exports write most, and ones the
# columns cannot read at once (other spellings, blanks, formulas, bad values).
_CELLS = {
    "claim_id": ["C1", "C1", "C2", "C3", " C4 ", "", "=C5", "-7", "-C8", "X" * 51],
    "payer": ["Aetna", "Cigna", " Humana ", "", "+Aetna", "@SUM(A1)", "Médica"],
    "payer_id": ["", "60054", "-60054", "=1"],
    "procedure_code": ["99213", "", "99214-25", "71046:1", "BAD!", "12"],
    "service_date": ["2026-03-01", "", "03/01/2026", "2026-02-30", "yesterday"],
    "submitted_date": ["2026-03-02", "", "20260302", "3/2/26 10:00"],
    "decision_date": ["2026-03-14", "2026-03-15", "", "2026-13-01", "14.03.2026"],
    "status": ["PAID", "paid", "", "DENIED", "PENDING", "Partially Paid", "void", "LOST"],
    "billed_amount": ["100.00", "1234.56", "", "$1,200.00", "(5.00)", "12", "1.234", "abc"],
    "allowed_amount": ["80.00", "", "0.00", "1,5", "-3.50", "9999999999999.00"],
    "paid_amount": ["70.00", "0.00", "", " 70.00 ", "7O.00"],
    "patient_responsibility": ["10.00", "", "0.00", "٣.00"],
    "carc_codes": ["", "CO-45;PR-1", "CO-50", "co45 pr2", "XX-1", "CO-"],
    "payer_claim_control_number": ["", "ICN1", "=ICN", " ICN2 "],
}


@st.composite
def _export(draw: st.DrawFn) -> tuple[str, list[int]]:
    """A CSV export of some of FULL_HEADER's columns in any order (comma, semicolon, tab or
    pipe; LF or CRLF): rows mostly plain, some with odd cells, blank lines, short, long and
    over-long rows; and cuts."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    others = [c for c in _CELLS if c not in ("claim_id", "payer", "decision_date")]
    chosen = ["claim_id", "payer", "decision_date", *draw(st.sets(st.sampled_from(others)))]
    columns = draw(st.permutations(chosen))
    lines = [delimiter.join(columns)]
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["plain"] * 4 + ["odd", "blank", "short", "long", "huge"]))
        cell = {column: _CELLS[column][0] for column in columns}
        cell["claim_id"] = draw(st.sampled_from(["C1", "C2", "C3"]))
        if kind == "odd":
            for column in draw(st.sets(st.sampled_from(columns), min_size=1, max_size=3)):
                cell[column] = draw(st.sampled_from(_CELLS[column]))
        row = [cell[column] for column in columns]
        cells = {
            "blank": [draw(st.sampled_from(["", "  ", "\t"]))],
            "short": row[:-1],
            "long": [*row, draw(st.sampled_from(["", "x"]))],
            "huge": [*row[:-1], "Z" * 300],
        }.get(kind, row)
        lines.append(delimiter.join(cells))
    text = end.join(lines) + draw(st.sampled_from(["", end]))
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=5))
    return text, sorted(cuts)


def _read(text: str, cuts: list[int], *, by_columns: bool) -> object:
    parser = CsvParser(limits=ParseLimits(max_line_bytes=250), by_columns=by_columns)
    items: list[ParsedItem] = []
    try:
        for start, end in pairwise([0, *cuts, len(text)]):
            items += parser.feed(text[start:end])
        items += parser.close()
    except FileError as error:
        return (error.code, error.line_number)
    return items, parser.rows_read


@settings(max_examples=300, deadline=None)
@given(export=_export())
def test_reading_column_by_column_gives_what_reading_row_by_row_gives(
    export: tuple[str, list[int]],
) -> None:
    """Plain pieces of text are read column by column; each claim, rejection (line, column,
    value, reason), warning and the row count are those of reading every row on its own."""
    text, cuts = export
    assert _read(text, cuts, by_columns=True) == _read(text, cuts, by_columns=False)


def test_a_plain_export_is_read_column_by_column_with_its_odd_rows_explained() -> None:
    rows = [
        "C1,Aetna,60054,99213,2026-03-01,2026-03-02,2026-03-14,PAID,100.00,80.00,70.00,10.00,"
        "CO-45;PR-1,ICN1",
        "C2,Cigna,,99214,2026-03-01,,2026-03-15,DENIED,50.00,,0.00,0.00,CO-50,",
        "C3,Aetna,,99213,2026-03-01,,2026-03-15,PAID,$1x,,0.00,0.00,,",
        "C4,Humana,,99213,2026-03-01,2026-03-03,,PENDING,20.00,,0.00,0.00,,",
    ]
    items = parse(FULL_HEADER + "\n" + "\n".join(rows) + "\n")
    assert [c.claim_id for c in claims(items)] == ["C1", "C2", "C4"]
    assert claims(items)[0] == ClaimRecord(
        source_line=2, claim_id="C1", payer_name="Aetna", payer_id="60054",
        procedure_codes=("99213",), service_date=dt.date(2026, 3, 1),
        submitted_date=dt.date(2026, 3, 2), decision_date=MARCH_14, billed_cents=10000,
        allowed_cents=8000, paid_cents=7000, patient_responsibility_cents=1000,
        adjustments=(Adjustment("CO", "45", 0), Adjustment("PR", "1", 0)),
        payer_claim_control_number="ICN1",
    )  # fmt: skip
    assert claims(items)[2].decision_date is None
    assert claims(items)[1].allowed_cents is None
    [bad] = rejections(items)
    assert (bad.line_number, bad.column, bad.raw_value, bad.code) == (
        4, "billed_amount", "$1x", "BAD_AMOUNT",
    )  # fmt: skip


def test_blank_lines_in_a_one_column_export_are_skipped_when_read_by_columns() -> None:
    """A column map may name one column for claim id, payer and status alike: a blank line
    is then as wide as the header, and still a blank line."""
    text = "Account\nOPEN\n\nSUBMITTED\n  \nPENDING\npending\n"
    mapping = {"claim_id": "Account", "payer": "Account", "status": "Account"}

    def read(by_columns: bool) -> list[ParsedItem]:
        parser = CsvParser(mapping, by_columns=by_columns)
        return parser.feed(text) + parser.close()

    assert [(c.source_line, c.claim_id) for c in claims(read(True))] == [
        (2, "OPEN"), (4, "SUBMITTED"), (6, "PENDING"), (7, "pending"),
    ]  # fmt: skip
    assert read(True) == read(False)


def test_a_line_is_measured_in_characters_whatever_its_bytes() -> None:
    """A line of accented text within the limit in characters, over it in UTF-8 bytes, is a
    row like any other, read by columns or not; one over the limit in characters is not."""
    header = "claim_id,payer,decision_date,status"
    within, over = "é" * 280, "é" * 320
    rows = [f"C1,{within},2026-03-14,PAID", "C2,Aetna,2026-03-15,PAID"]
    rows.append(f"C3,{over},2026-03-16,PAID")
    text = "\n".join([header, *rows]) + "\n"
    for by_columns in (True, False):
        parser = CsvParser(limits=ParseLimits(max_line_bytes=310), by_columns=by_columns)
        items = parser.feed(text) + parser.close()
        assert [(c.claim_id, c.payer_name) for c in claims(items)] == [
            ("C1", within), ("C2", "Aetna"),
        ]  # fmt: skip
        assert [(r.line_number, r.code) for r in rejections(items)] == [(4, "LINE_TOO_LONG")]

"""A web page sent as a claims export, as some systems' "Export to Excel" writes one (an HTML
table in a .xls file): its claims table read as CSV text whose lines are the table's rows,
however its bytes are cut; a page without one refused saying so."""

from __future__ import annotations

from typing import Any

import pytest

from services.ingest.records import FileError
from tests.ingest.uploaded import read_upload

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Remittance detail</title></head><body>
<table><tr><td>Acme Clinic</td><td>Remittance Detail</td></tr><tr><td>Run: 12/03/2026</td></tr>
</table>
<TABLE border=1>
<TR><TH>Claim #</TH><TH>Payer Name</TH><TH>Remit Date</TH><TH>Billed</TH><TH>Paid</TH></TR>
<TR><TD>0045001</TD><TD>Soci&eacute;t&eacute; G&#233;n&eacute;rale</TD><TD>03/14/2026</TD>
<TD>$1,200.00</TD><TD>$900.00</TD></TR>
<tr><td>0045002</td><td>Aetna<br>Inc</td><td>not a date</td><td>10</td><td>5</td></tr>
<tr><td>0045003</td><td>Cigna,&nbsp;Inc</td><td>2026-03-15</td><td>10</td><td>0</td></tr>
<tr><td>Total</td><td></td><td></td><td>$1,220.00</td><td>$905.00</td></tr>
</TABLE>
<table><tr><th>Claim ID</th><th>Payer</th><th>Paid Date</th></tr>
<tr><td>X1</td><td>Humana</td><td>2026-01-01</td></tr></table>
</body></html>
"""


def _read(
    data: bytes, size: int, max_bytes: int = 1 << 20
) -> tuple[bytes, list[Any], list[Any], list[Any]]:
    read = read_upload(data, size, max_bytes)
    return read.text, read.claims, read.rejections, read.warnings


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_a_pages_claims_table_is_read_row_by_row_however_its_bytes_are_cut(size: int) -> None:
    csv, claims, rejections, warnings = _read(PAGE.encode(), size)
    assert csv.decode().splitlines() == [
        "Claim #,Payer Name,Remit Date,Billed,Paid",
        '0045001,Société Générale,03/14/2026,"$1,200.00",$900.00',
        "0045002,Aetna Inc,not a date,10,5",
        '0045003,"Cigna, Inc",2026-03-15,10,0',
        'Total,,,"$1,220.00",$905.00',
    ]
    assert [(c.claim_id, c.payer_name, c.billed_cents) for c in claims] == [
        ("0045001", "Société Générale", 120000),
        ("0045003", "Cigna, Inc", 1000),
    ]
    # A rejection's line is the table's row; the title table above is passed over.
    assert [(r.line_number, r.column) for r in rejections] == [(3, "decision_date")]
    assert [(w.code, w.message) for w in warnings] == [
        (
            "TABLES_NOT_READ",
            "the page's first table of claims was read; 1 more table with claims was not: "
            "upload each as a file of its own",
        ),
        ("TOTALS_ROW", "line 5 is a totals row ('Total' as the claim id), not a claim: skipped"),
    ]


def test_cells_spanning_rows_are_in_each_and_cells_spanning_columns_keep_the_rest_in_place() -> (
    None
):
    """A report that writes each payer once beside its claims (rowspan), and a total whose
    label spans the columns before the amounts (colspan)."""
    page = """<table>
<tr><th>Payer</th><th>Claim ID</th><th>Paid Date</th><th>Billed</th><th>Paid</th></tr>
<tr><td rowspan="2">Aetna</td><td>A1</td><td>2026-03-02</td><td>100.00</td><td>80.00</td></tr>
<tr><td>A2</td><td>2026-03-03</td><td>50.00</td><td>40.00</td></tr>
<tr><td rowspan=3>Cigna</td><td>C1</td><td rowspan="2" colspan="1">2026-03-04</td>
<td>10.00</td><td>9.00</td></tr>
<tr><td>C2</td><td>20.00</td><td>0</td></tr>
<tr><td>C3</td><td>2026-03-05</td><td>30.00</td><td>30.00</td></tr>
<tr><td colspan="3">Grand Total</td><td>210.00</td><td>159.00</td></tr>
</table>"""
    csv, claims, rejections, warnings = _read(page.encode(), 5)
    assert csv.decode().splitlines()[1:] == [
        "Aetna,A1,2026-03-02,100.00,80.00",
        "Aetna,A2,2026-03-03,50.00,40.00",
        "Cigna,C1,2026-03-04,10.00,9.00",
        "Cigna,C2,2026-03-04,20.00,0",
        "Cigna,C3,2026-03-05,30.00,30.00",
        "Grand Total,,,210.00,159.00",
    ]
    assert [(c.claim_id, c.payer_name, c.paid_cents) for c in claims] == [
        ("A1", "Aetna", 8000),
        ("A2", "Aetna", 4000),
        ("C1", "Cigna", 900),
        ("C2", "Cigna", 0),
        ("C3", "Cigna", 3000),
    ]
    assert rejections == []
    assert [w.code for w in warnings] == ["TOTALS_ROW"]


def test_a_report_grouped_by_payer_is_read_from_its_headings() -> None:
    """A report with no payer column, each payer's claims under a heading row spanning the
    table ("Payer: Aetna"), and its totals: the table is found by the header and the heading
    below it, and each claim is its heading's payer's."""
    page = """<table><tr><td colspan="4">Denials by payer, March 2026</td></tr>
<tr><th>Claim #</th><th>Remit Date</th><th>Billed</th><th>Paid</th></tr>
<tr><td colspan="4"><b>Payer: Aetna</b></td></tr>
<tr><td>A1</td><td>03/02/2026</td><td>100.00</td><td>80.00</td></tr>
<tr><td colspan="2">Total for Aetna</td><td>100.00</td><td>80.00</td></tr>
<tr><td colspan="4">Payer: Blue Cross</td></tr>
<tr><td>B1</td><td>03/03/2026</td><td>60.00</td><td>0.00</td></tr>
</table>"""
    _, claims, rejections, warnings = _read(page.encode(), 4096)
    assert [(c.claim_id, c.payer_name, c.paid_cents) for c in claims] == [
        ("A1", "Aetna", 8000),
        ("B1", "Blue Cross", 0),
    ]
    assert rejections == []
    assert [w.code for w in warnings] == ["LINES_ABOVE_HEADER", "PAYER_HEADINGS", "TOTALS_ROW"]


def test_a_page_saved_in_windows_1252_is_read() -> None:
    page = PAGE.replace('charset="utf-8"', 'charset="windows-1252"')
    page = page.replace("Soci&eacute;t&eacute; G&#233;n&eacute;rale", "Société Générale")
    _, claims, _, _ = _read(page.encode("cp1252"), 5)
    assert claims[0].payer_name == "Société Générale"


def test_a_table_within_a_layout_table_is_read_as_its_own_rows() -> None:
    page = (
        "<html><body><table><tr><td>Report</td></tr><tr><td>"
        "<table><tr><td>claim_id</td><td>payer</td><td>decision_date</td></tr>"
        "<tr><td>C1</td><td>Aetna</td><td>2026-03-14</td></tr></table>"
        "</td></tr><tr><td>End of report</td></tr></table></body></html>"
    )
    csv, claims, _, _ = _read(page.encode(), 64)
    assert csv.decode().splitlines() == ["claim_id,payer,decision_date", "C1,Aetna,2026-03-14"]
    assert [c.claim_id for c in claims] == ["C1"]


def test_a_page_without_a_claims_table_is_refused_saying_so() -> None:
    page = b"<html><body><table><tr><td>Claim</td><td>Amount</td></tr></table></body></html>"
    with pytest.raises(FileError) as refused:
        _read(page, 4096)
    assert (refused.value.code, str(refused.value)) == (
        "MISSING_COLUMN",
        "the file is a web page (HTML) with no table of claims: no table has a claims header "
        "within its first 21 rows",
    )


def test_a_page_is_held_to_the_upload_limit_though_its_table_is_smaller() -> None:
    padding = "<!-- " + "x" * 5000 + " -->"
    with pytest.raises(FileError) as refused:
        _read(PAGE.replace("</body>", padding + "</body>").encode(), 1024, max_bytes=4096)
    assert (refused.value.code, str(refused.value)) == (
        "FILE_TOO_LARGE",
        "the file is larger than the limit of 4,096 bytes",
    )

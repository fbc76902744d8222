"""An Excel 2003 XML workbook (SpreadsheetML), as Excel's "XML Spreadsheet 2003" and some
systems' "Export to Excel" write one: its first worksheet with a claims header read as CSV
text whose lines are the sheet's rows, however its bytes are cut; a damaged or hostile one
refused saying so."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from services.ingest import html_tables
from services.ingest.excel_xml import MAX_SKIPPED_ROWS
from services.ingest.html_tables import MAX_ROW_CELLS
from services.ingest.records import FileError
from tests.ingest.uploaded import MERGED_DOWN_CLAIMS, read_upload

HEAD = """<?xml version="1.0"?>
<?mso-application progid="Excel.Sheet"?>
<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"
 xmlns:o="urn:schemas-microsoft-com:office:office"
 xmlns:x="urn:schemas-microsoft-com:office:excel"
 xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"
 xmlns:html="http://www.w3.org/TR/REC-html40">
 <Styles><Style ss:ID="s62"><NumberFormat ss:Format="Short Date"/></Style></Styles>
"""
COVER = """ <Worksheet ss:Name="Cover">
  <Table><Row><Cell><Data ss:Type="String">Remittances, March</Data></Cell></Row></Table>
 </Worksheet>
"""
HEADER = (
    '<Row ss:Index="3"><Cell><Data ss:Type="String">Claim ID</Data></Cell>'
    '<Cell><Data ss:Type="String">Payer</Data></Cell>'
    '<Cell><Data ss:Type="String">Decision Date</Data></Cell>'
    '<Cell><Data ss:Type="String">Billed</Data></Cell>'
    '<Cell><Data ss:Type="String">Paid</Data></Cell></Row>'
)
CLAIMS = f""" <Worksheet ss:Name="Claims">
  <Table ss:ExpandedColumnCount="5">
   <Row><Cell ss:MergeAcross="3"><Data ss:Type="String">Acme Clinic &amp; Labs</Data></Cell>
    <Cell><Data ss:Type="String">March</Data></Cell></Row>
   {HEADER}
   <Row>
    <Cell><Data ss:Type="Number">5001</Data></Cell><Cell><Data ss:Type="String">Aetna</Data></Cell>
    <Cell ss:StyleID="s62"><Data ss:Type="DateTime">2026-03-14T00:00:00.000</Data></Cell>
    <Cell><Data ss:Type="Number">150.25</Data></Cell><Cell><Data ss:Type="Number">120</Data></Cell>
   </Row>
   <Row>
    <Cell><Data ss:Type="String">A2</Data></Cell>
    <Cell><ss:Data ss:Type="String" xmlns="http://www.w3.org/TR/REC-html40"
     ><B>Cigna</B>, Inc</ss:Data></Cell>
    <Cell ss:Index="4"><Data ss:Type="Number">90</Data></Cell>
    <Cell><Data ss:Type="Number">0</Data></Cell>
   </Row>
   <Row ss:Index="7">
    <Cell><Data ss:Type="String">A3</Data></Cell><Cell><Data ss:Type="String">Cigna</Data></Cell>
    <Cell><Data ss:Type="DateTime">2026-03-15T09:30:00.000</Data></Cell>
    <Cell><Data ss:Type="Boolean">1</Data></Cell><Cell><Data ss:Type="Error">#N/A</Data></Cell>
   </Row>
  </Table>
  <WorksheetOptions xmlns="urn:schemas-microsoft-com:office:excel"><Selected/></WorksheetOptions>
 </Worksheet>
"""
TAIL = "</Workbook>\n"


def _read(data: bytes, size: int = 4096) -> tuple[str, list[Any], list[Any], list[Any], str]:
    read = read_upload(data, size)
    return read.text.decode(), read.claims, read.rejections, read.warnings, read.sha256


def _error(data: bytes) -> FileError:
    with pytest.raises(FileError) as raised:
        _read(data)
    return raised.value


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_the_first_worksheet_with_claims_is_read_row_by_row(size: int) -> None:
    """A cover sheet is passed over; rows and cells placed after a gap (`ss:Index`) keep
    their places, a cell merged across columns is its first column's; numbers, dates, true
    and false, errors and rich text as a workbook's cells are read; a rejection's line is
    its row; the upload's digest is the file's."""
    data = (HEAD + COVER + CLAIMS + TAIL).encode()
    csv, claims, rejections, warnings, sha256 = _read(data, size)
    assert csv.splitlines() == [
        "Acme Clinic & Labs,,,,March",
        "",
        "Claim ID,Payer,Decision Date,Billed,Paid",
        "5001,Aetna,2026-03-14,150.25,120",
        'A2,"Cigna, Inc",,90,0',
        "",
        "A3,Cigna,2026-03-15 09:30:00,TRUE,#N/A",
    ]
    assert [(c.claim_id, c.payer_name, c.billed_cents) for c in claims] == [
        ("5001", "Aetna", 15025)
    ]
    assert [(r.line_number, r.column) for r in rejections] == [
        (5, "decision_date"),
        (7, "billed_amount"),
    ]
    assert [w.code for w in warnings] == ["LINES_ABOVE_HEADER"]
    assert sha256 == hashlib.sha256(data).hexdigest()


def test_later_worksheets_with_claims_are_named_and_a_workbook_without_is_refused() -> None:
    second = CLAIMS.replace('ss:Name="Claims"', 'ss:Name="April"')
    *_, warnings, _ = _read((HEAD + CLAIMS + second + TAIL).encode())
    assert (
        "TABLES_NOT_READ",
        "the workbook's first worksheet of claims was read; 1 more worksheet with claims was "
        "not: upload each as a file of its own",
    ) in [(w.code, w.message) for w in warnings]
    error = _error((HEAD + COVER + TAIL).encode())
    assert (error.code, str(error)) == (
        "MISSING_COLUMN",
        "the file is an Excel 2003 XML workbook with no sheet of claims: no worksheet has a "
        "claims header within its first 21 rows",
    )


def _hidden(sheet: str, name: str, how: str = "SheetHidden") -> str:
    """`sheet` renamed `name` and hidden, as Excel writes a hidden sheet: its options, after
    its table, say so."""
    return sheet.replace('ss:Name="Claims"', f'ss:Name="{name}"').replace(
        "<Selected/>", f"<Visible>{how}</Visible>"
    )


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_hidden_worksheets_are_passed_over_and_not_named(size: int) -> None:
    """A hidden worksheet with claims before the visible one (an old copy, say) is not read,
    though the file says it is hidden only after its rows; nor is one after it named among
    the worksheets not read, as a workbook's hidden sheets are not."""
    old = _hidden(CLAIMS, "Old", "SheetVeryHidden").replace("Aetna", "Humana")
    later = _hidden(CLAIMS, "Later")
    visible = (HEAD + COVER + CLAIMS + TAIL).encode()
    csv, claims, rejections, warnings, _ = _read(
        (HEAD + old + COVER + CLAIMS + later + TAIL).encode(), size
    )
    assert (csv, claims, rejections, warnings) == _read(visible, size)[:4]
    assert [c.payer_name for c in claims] == ["Aetna"]
    assert "TABLES_NOT_READ" not in [w.code for w in warnings]


def test_a_workbook_whose_claims_are_hidden_says_so() -> None:
    """The only worksheet of claims hidden: refused, saying a hidden worksheet has them."""
    error = _error((HEAD + COVER + _hidden(CLAIMS, "Old") + TAIL).encode())
    assert (error.code, str(error)) == (
        "MISSING_COLUMN",
        "the file is an Excel 2003 XML workbook with no sheet of claims: no worksheet has a "
        "claims header within its first 21 rows (a hidden worksheet has one: unhide it to "
        "upload it)",
    )


def test_a_hidden_worksheet_too_large_to_hold_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worksheet's text is held until its end up to HELD_BYTES (here 1,000 bytes); a hidden
    one larger has streamed before its end says it is hidden: the upload is refused rather
    than read from a sheet Excel does not show. Visible, the same sheet is read whole."""
    rows = "".join(
        f'<Row><Cell><Data ss:Type="String">H{n}</Data></Cell>'
        '<Cell><Data ss:Type="String">Aetna</Data></Cell>'
        '<Cell><Data ss:Type="DateTime">2026-03-14T00:00:00.000</Data></Cell>'
        '<Cell><Data ss:Type="Number">10</Data></Cell>'
        '<Cell><Data ss:Type="Number">8</Data></Cell></Row>'
        for n in range(100)
    )
    large = _hidden(CLAIMS.replace(HEADER, HEADER + rows), "Old")
    monkeypatch.setattr(html_tables, "HELD_BYTES", 1000)
    error = _error((HEAD + large + CLAIMS + TAIL).encode())
    assert (error.code, str(error)) == (
        "HIDDEN_SHEET",
        "the workbook's first worksheet of claims is hidden, which the file says after its "
        "rows: unhide the one to upload, or save it as CSV",
    )
    shown = large.replace("<Visible>SheetHidden</Visible>", "")
    _, claims, *_ = _read((HEAD + shown + CLAIMS + TAIL).encode())
    assert [c.claim_id for c in claims] == [f"H{n}" for n in range(100)] + ["5001"]


def test_a_damaged_or_hostile_workbook_is_refused_saying_why() -> None:
    declared = (
        HEAD.replace("<Workbook", '<!DOCTYPE w [<!ENTITY a "aaaaaaaa">]>\n<Workbook')
        + COVER.replace("Remittances", "&a;")
        + TAIL
    )
    assert str(_error(declared.encode())).startswith(
        "the Excel 2003 XML workbook declares a document type"
    )
    cut = (HEAD + CLAIMS)[:-200]
    assert str(_error(cut.encode())).startswith(
        "the Excel 2003 XML workbook is not well-formed XML ("
    )
    skipping = (
        HEAD
        + "<Worksheet><Table>"
        + "".join(
            f'<Row ss:Index="{n * 60_000}"><Cell><Data ss:Type="String">x</Data></Cell></Row>'
            for n in range(1, 4)
        )
        + "</Table></Worksheet>"
        + TAIL
    )
    assert str(_error(skipping.encode())) == (
        f"the Excel 2003 XML workbook skips more than {MAX_SKIPPED_ROWS:,} rows between its "
        "rows; save it again from Excel, or as CSV"
    )
    past = HEAD + '<Worksheet><Table><Row ss:Index="2000000"/></Table></Worksheet>' + TAIL
    assert _error(past.encode()).code == "BAD_ARCHIVE"


def test_a_row_of_cells_far_apart_holds_no_more_than_a_row_may() -> None:
    """A few bytes that place a cell at a far column or merge it across thousands make a row
    of at most MAX_ROW_CELLS cells (the rest dropped): refused for its width, as any too wide
    row is."""
    wide = (
        '<Row><Cell ss:Index="1000"><Data ss:Type="String">x</Data></Cell>'
        '<Cell ss:MergeAcross="16000"><Data ss:Type="String">y</Data></Cell>'
        '<Cell><Data ss:Type="String">z</Data></Cell></Row>'
    )
    data = HEAD + CLAIMS.replace(HEADER, HEADER + wide * 50) + TAIL
    csv, _, rejections, _, _ = _read(data.encode())
    assert set(csv.splitlines()[3:53]) == {"," * 999 + "x,y"}
    assert MAX_ROW_CELLS < 1001 + 16000
    assert [(r.line_number, r.code) for r in rejections[:50]] == [
        (line, "TOO_MANY_COLUMNS") for line in range(4, 54)
    ]


GROUPED = f""" <Worksheet ss:Name="By payer">
  <Table>
   {HEADER}
   <Row>
    <Cell><Data ss:Type="String">K1</Data></Cell>
    <Cell ss:MergeDown="2"><Data ss:Type="String">Aetna</Data></Cell>
    <Cell><Data ss:Type="String">2026-03-02</Data></Cell>
    <Cell><Data ss:Type="Number">100</Data></Cell><Cell><Data ss:Type="Number">80</Data></Cell>
   </Row>
   <Row>
    <Cell><Data ss:Type="String">K2</Data></Cell>
    <Cell ss:Index="3"><Data ss:Type="String">2026-03-03</Data></Cell>
    <Cell><Data ss:Type="Number">100</Data></Cell><Cell><Data ss:Type="Number">0</Data></Cell>
   </Row>
   <Row>
    <Cell><Data ss:Type="String">K3</Data></Cell>
    <Cell ss:Index="3"><Data ss:Type="String">2026-03-04</Data></Cell>
    <Cell ss:MergeAcross="1" ss:MergeDown="1"><Data ss:Type="Number">50</Data></Cell>
   </Row>
   <Row>
    <Cell><Data ss:Type="String">K4</Data></Cell>
    <Cell><Data ss:Type="String">Cigna</Data></Cell>
    <Cell><Data ss:Type="String">2026-03-05</Data></Cell>
   </Row>
   <Row ss:Index="9">
    <Cell><Data ss:Type="String">K5</Data></Cell>
    <Cell><Data ss:Type="String">Cigna</Data></Cell>
    <Cell><Data ss:Type="String">2026-03-06</Data></Cell>
    <Cell><Data ss:Type="Number">10</Data></Cell><Cell><Data ss:Type="Number">10</Data></Cell>
   </Row>
  </Table>
 </Worksheet>
"""


@pytest.mark.parametrize("size", [1, 4096])
def test_a_payer_merged_down_beside_its_claims_is_each_claims_payer(size: int) -> None:
    """A report that writes each payer once, merged down over its claims' rows (the rows
    below place their next cells past it with `ss:Index`, as Excel writes them), gives
    every claim that payer; a cell merged across and down is in its first column of each row
    it covers, the others empty; a merge covers only the rows it spans."""
    csv, claims, rejections, _, _ = _read((HEAD + GROUPED + TAIL).encode(), size)
    assert csv.splitlines()[2:] == [
        "Claim ID,Payer,Decision Date,Billed,Paid",
        "K1,Aetna,2026-03-02,100,80",
        "K2,Aetna,2026-03-03,100,0",
        "K3,Aetna,2026-03-04,50",
        "K4,Cigna,2026-03-05,50",
        "",
        "K5,Cigna,2026-03-06,10,10",
    ]
    assert [(c.claim_id, c.payer_name, c.billed_cents) for c in claims] == MERGED_DOWN_CLAIMS
    assert rejections == []

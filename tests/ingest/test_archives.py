"""A claims file inside a ZIP archive, or an Excel workbook sent as it is: unpacked to the file,
or the workbook's sheet to CSV text whose lines are its rows; what cannot be one refused by
name."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import io
import zipfile
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import xlwt
from openpyxl import Workbook
from openpyxl.utils.cell import range_boundaries

from services.ingest import archives
from services.ingest.archives import PIECE_BYTES
from services.ingest.compression import file_bytes
from services.ingest.csv_claims import CsvParser
from services.ingest.parsing import UploadParser
from services.ingest.records import ClaimRecord, FileError, Rejection, UploadWarning
from tests.ingest.uploaded import MERGED_DOWN_CLAIMS

CSV = b"claim_id,payer,decision_date,billed_amount,paid_amount\nC1,Aetna,2026-03-14,10,5\n"


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def _read(data: bytes, max_bytes: int = 1 << 30, size: int = 4096) -> bytes:
    return _unpacked(data, UploadParser(max_bytes=max_bytes), size)


def _unpacked(data: bytes, parser: UploadParser, size: int = 4096) -> bytes:
    async def read() -> bytes:
        return b"".join([piece async for piece in file_bytes(_chunks(data, size), parser)])

    return asyncio.run(read())


def _uploaded(data: bytes, **parser_args: Any) -> tuple[list[ClaimRecord], list[UploadWarning]]:
    """A workbook read as an upload is: its claims and warnings."""
    parser = UploadParser(max_bytes=1 << 30, **parser_args)
    batches = [parser.feed(_unpacked(data, parser)), parser.close()]
    claims = [claim for batch in batches for claim in batch.all_claims()]
    return claims, [warning for batch in batches for warning in batch.warnings]


def _error(data: bytes, max_bytes: int = 1 << 30) -> FileError:
    with pytest.raises(FileError) as raised:
        _read(data, max_bytes)
    return raised.value


def _zip(*members: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return out.getvalue()


def test_the_one_file_of_a_zip_archive_is_the_upload() -> None:
    assert _read(_zip(("export/claims.csv", CSV)), size=7) == CSV
    # What archivers add beside it does not count; a gzip-compressed archive is unpacked too.
    cluttered = _zip(("__MACOSX/._claims.csv", b"\x00\x05"), ("claims.csv", CSV))
    assert _read(gzip.compress(cluttered)) == CSV
    assert _read(_zip(("claims.csv.gz", gzip.compress(CSV)))) == CSV


def test_an_archive_of_several_files_or_none_is_refused_naming_them() -> None:
    error = _error(_zip(("march.csv", CSV), ("april.csv", CSV)))
    assert (error.code, str(error)) == (
        "ARCHIVE_MEMBERS",
        "the ZIP archive holds 2 files (march.csv, april.csv); upload them one at a time",
    )
    assert str(_error(_zip(("empty/", b"")))) == "the ZIP archive is empty"


def test_an_archive_that_unpacks_past_the_limit_is_refused_before_unpacking() -> None:
    big = _zip(("claims.csv", b"0" * 50_000))
    assert len(big) < 1_000
    error = _error(big, max_bytes=10_000)
    assert (error.code, str(error)) == (
        "FILE_TOO_LARGE",
        "claims.csv in the ZIP archive is 50,000 bytes, larger than the limit of 10,000",
    )


def test_damaged_encrypted_and_office_archives_are_named() -> None:
    assert _error(b"PK\x03\x04" + b"\x01" * 200).code == "BAD_ARCHIVE"
    # The "encrypted" flag set in the member's local and central headers.
    encrypted = bytearray(_zip(("claims.csv", CSV)))
    encrypted[6] |= 0x1
    encrypted[encrypted.index(b"PK\x01\x02") + 8] |= 0x1
    assert str(_error(bytes(encrypted))) == (
        "claims.csv in the ZIP archive is encrypted; upload it unencrypted"
    )
    document = _zip(("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w/>"))
    assert str(_error(document)) == (
        "the file is a Word document; upload the claims export (CSV) or 835 file"
    )
    spreadsheet = _zip(
        ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"), ("content.xml", b"<x/>")
    )
    assert str(_error(spreadsheet)) == (
        "the file is an OpenDocument spreadsheet (.ods); save it as CSV or Excel (.xlsx) and "
        "upload that"
    )
    numbers = _zip(("Index/Document.iwa", b"\x00"), ("Metadata/Properties.plist", b"x"))
    assert str(_error(numbers)) == (
        "the file is an Apple Numbers document; export it as CSV and upload that"
    )
    fake_workbook = _zip(("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<w/>"))
    error = _error(fake_workbook)
    assert error.code == "BAD_ARCHIVE"
    assert str(error).startswith("the Excel workbook cannot be read")


def _workbook() -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "Remits"
    sheet.append(["Claims remitted in March"])
    sheet.append([])
    sheet.append(["Claim #", "Payer Name", "CPT", "Remit Date", "Billed", "Paid", "Note"])
    sheet.append([1001, "Aetna", 99213, dt.datetime(2026, 3, 14), 150.1, 80, None])
    sheet.append(
        [1002, "Cigna, Inc", "71046", dt.date(2026, 3, 15), 1234.5, 0.1 + 0.2, "see\r\nattached"]
    )
    sheet.append([None, None, None, None, None, None, None])
    sheet.append([1003, "Aetna", 99214, "not a date", 90, 60])
    book.create_sheet("Summary").append(["Total", 1474.6])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_excel_workbook_is_read_as_its_sheet_row_by_row() -> None:
    text = _read(_workbook()).decode()
    assert text.splitlines() == [
        "Claims remitted in March",
        "",
        "Claim #,Payer Name,CPT,Remit Date,Billed,Paid,Note",
        "1001,Aetna,99213,2026-03-14,150.1,80",
        '1002,"Cigna, Inc",71046,2026-03-15,1234.5,0.3,see attached',
        "",
        "1003,Aetna,99214,not a date,90,60",
    ]
    parser = CsvParser()
    items = parser.feed(text) + parser.close()
    claims = [item for item in items if isinstance(item, ClaimRecord)]
    assert [(c.claim_id, c.payer_name, c.decision_date, c.billed_cents) for c in claims] == [
        ("1001", "Aetna", dt.date(2026, 3, 14), 15010),
        ("1002", "Cigna, Inc", dt.date(2026, 3, 15), 123450),
    ]
    # A rejection's line is the sheet's row (a line break within a cell is a space).
    [rejection] = [item for item in items if isinstance(item, Rejection)]
    assert (rejection.line_number, rejection.column) == (7, "decision_date")


def test_a_workbook_that_unpacks_past_the_limit_is_refused() -> None:
    workbook = _workbook()
    error = _error(workbook, max_bytes=len(workbook) + 100)
    assert error.code == "FILE_TOO_LARGE"
    assert str(error).startswith("the workbook unpacks to ")


def _book(
    *sheets: tuple[str, list[list[Any]]],
    opens_on: int = 0,
    hidden: int = -1,
    merged: Sequence[str] = (),
) -> bytes:
    """An .xlsx workbook of `sheets`; the ranges `merged` merged in its last sheet."""
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    for cells in merged:
        book.worksheets[-1].merge_cells(cells)
    book.active = opens_on
    if hidden >= 0:
        book.worksheets[hidden].sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


HEADER = ["Claim ID", "Payer", "Decision Date", "Billed", "Paid"]
COVER = ("Summary", [["Remittance summary, March"], ["Claims", 2], ["Paid", 130]])


def _claims(*ids: str) -> list[list[Any]]:
    return [HEADER, *([claim, "Aetna", dt.date(2026, 3, 14), 100, 65] for claim in ids)]


def test_a_workbook_that_opens_on_a_cover_sheet_is_read_from_its_claims_sheet() -> None:
    claims, warnings = _uploaded(_book(COVER, ("Claims", _claims("A1", "A2"))))
    assert [claim.claim_id for claim in claims] == ["A1", "A2"]
    assert [(w.code, w.message) for w in warnings] == [
        (
            "SHEET_CHOSEN",
            "the workbook opens on the sheet 'Summary', which holds no claims header; "
            "its sheet 'Claims' was read",
        )
    ]


def test_the_sheet_a_workbook_opens_on_is_read_and_its_other_claims_sheets_named() -> None:
    book = _book(
        ("March", _claims("M1")),
        COVER,
        ("April", _claims("A1")),
        ("May", _claims("Y1")),
        opens_on=2,
    )
    claims, warnings = _uploaded(book)
    assert [claim.claim_id for claim in claims] == ["A1"]
    assert [(w.code, w.message) for w in warnings] == [
        (
            "SHEETS_NOT_READ",
            "the sheet 'April' was read; the workbook's other sheets with claims ('March', "
            "'May') were not: upload each as a file of its own",
        )
    ]


def test_hidden_sheets_are_not_chosen_or_named() -> None:
    claims, warnings = _uploaded(
        _book(("Claims", _claims("C1")), ("Lookup", _claims("H1")), hidden=1)
    )
    assert ([claim.claim_id for claim in claims], warnings) == (["C1"], [])


def test_a_sheet_grouped_by_payer_is_found_and_read_from_its_headings() -> None:
    """A sheet with no payer column whose groups are headed by their payer is the claims
    sheet (a cover sheet beside it is not), its header as low as the parser reads one."""
    title = [[f"Filter {i}"] for i in range(20)]
    grouped = [
        *title,
        ["Claim ID", "Decision Date", "Billed", "Paid"],
        ["Payer:", "Aetna"],
        ["A1", dt.date(2026, 3, 14), 100, 65],
        ["Payer: Cigna"],
        ["C1", dt.date(2026, 3, 15), 40, 0],
    ]
    claims, warnings = _uploaded(_book(COVER, ("By payer", grouped)))
    assert [(claim.claim_id, claim.payer_name) for claim in claims] == [
        ("A1", "Aetna"),
        ("C1", "Cigna"),
    ]
    assert [w.code for w in warnings] == ["SHEET_CHOSEN", "LINES_ABOVE_HEADER", "PAYER_HEADINGS"]


def _old_book(
    *sheets: tuple[str, list[list[Any]]],
    opens_on: int = 0,
    hidden: int = -1,
    merged: Sequence[str] = (),
) -> bytes:
    """An Excel 97-2003 workbook (.xls) of `sheets`, dates in date cells; the ranges
    `merged` merged in its last sheet."""
    book = xlwt.Workbook()
    day = xlwt.easyxf(num_format_str="MM/DD/YYYY")
    for at, (title, rows) in enumerate(sheets):
        sheet = book.add_sheet(title)
        if at == len(sheets) - 1:
            for cells in merged:
                first_column, first_row, last_column, last_row = range_boundaries(cells)
                sheet.merge(first_row - 1, last_row - 1, first_column - 1, last_column - 1)
        for row_at, row in enumerate(rows):
            for column, value in enumerate(row):
                if isinstance(value, dt.date):
                    sheet.write(row_at, column, value, day)
                elif value is not None:
                    sheet.write(row_at, column, value)
        sheet.set_sheet_visible(at == opens_on)
        sheet.set_selected(at == opens_on)
        if at == hidden:
            sheet.visibility = 1
    book.active_sheet = opens_on
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_excel_97_2003_workbook_is_read_as_its_claims_sheet() -> None:
    """An .xls is read as an .xlsx is: the sheet it opens on when that holds the claims, else
    the claims sheet (named in a warning), hidden sheets left alone; each cell as it shows
    (dates as dates, whole numbers without a point, true and false as Excel writes them, a
    formula as its saved result: none here)."""
    rows = [
        [*HEADER, "Denied"],
        ["A1", "Aetna", dt.date(2026, 3, 14), 100.5, 65, False],
        [5002, "Cigna", dt.datetime(2026, 3, 15, 9, 30), 40, xlwt.Formula("1/0"), True],
    ]
    text = _read(_old_book(COVER, ("Claims", rows), ("Old", _claims("H1")), hidden=2))
    assert text.decode().splitlines() == [
        "Claim ID,Payer,Decision Date,Billed,Paid,Denied",
        "A1,Aetna,2026-03-14,100.5,65,FALSE",
        "5002,Cigna,2026-03-15 09:30:00,40,,TRUE",
    ]
    claims, warnings = _uploaded(_old_book(COVER, ("Claims", _claims("A1", "A2"))))
    assert [claim.claim_id for claim in claims] == ["A1", "A2"]
    assert [w.code for w in warnings] == ["SHEET_CHOSEN"]
    claims, warnings = _uploaded(
        _old_book(("March", _claims("M1")), ("April", _claims("A1")), opens_on=1)
    )
    assert ([claim.claim_id for claim in claims], [w.code for w in warnings]) == (
        ["A1"],
        ["SHEETS_NOT_READ"],
    )


def test_an_office_file_that_is_no_workbook_or_a_damaged_one_is_named() -> None:
    """Word and PowerPoint 97-2003 files begin as an .xls does: named for what they are not;
    a damaged workbook, for what cannot be read."""
    book = _old_book(("Claims", _claims("A1")))
    # The same compound file with its workbook stream renamed: as a Word file holds none.
    other = book.replace("Workbook".encode("utf-16-le"), "Document".encode("utf-16-le"))
    error = _error(other)
    assert (error.code, str(error)) == (
        "NOT_CLAIMS_FILE",
        "the file is an Office document (Word, PowerPoint, Outlook, …) but not an Excel "
        "workbook; upload the claims export (CSV) or 835 file",
    )
    error = _error(book[:1536])
    assert error.code == "BAD_ARCHIVE"
    assert str(error).startswith("the Excel 97-2003 workbook (.xls) cannot be read (")


def test_a_claims_sheet_is_found_by_the_uploads_column_map() -> None:
    renamed = [
        ["Remit Key", "Plan", "Decision Date", "Billed", "Paid"],
        ["R1", "Aetna", dt.date(2026, 3, 14), 100, 65],
    ]
    book = _book(COVER, ("Remits", renamed))
    claims, warnings = _uploaded(book, column_map={"claim_id": "Remit Key", "payer": "Plan"})
    assert [claim.claim_id for claim in claims] == ["R1"]
    assert [w.code for w in warnings] == ["SHEET_CHOSEN"]
    # Without it, no sheet holds a header: refused, saying what each sheet's first row lacks.
    with pytest.raises(FileError) as refused:
        _uploaded(book)
    assert refused.value.code == "MISSING_COLUMN"
    message = str(refused.value)
    assert message.startswith(
        "no sheet of the workbook has a claims header within its first 21 rows: sheet "
        "'Summary': line 1: missing required column claim_id (or "
    )
    assert "; sheet 'Remits': line 1: missing required column claim_id (or " in message
    # A workbook of one sheet without a header fails as a CSV would, on its first line.
    with pytest.raises(FileError, match=r"^line 1: missing required column claim_id"):
        _uploaded(_book(("Remits", renamed)))


# A report grouped by payer, each payer written once and merged down beside its claims; an
# amount merged across two columns and down two rows.
GROUPED = [
    HEADER,
    ["K1", "Aetna", dt.date(2026, 3, 14), 100, 80],
    ["K2", None, dt.date(2026, 3, 15), 100, 0],
    ["K3", None, dt.date(2026, 3, 16), 50, None],
    ["K4", "Cigna", dt.date(2026, 3, 17), None, None],
    ["K5", "Cigna", dt.date(2026, 3, 18), 10, 10],
]
GROUPED_MERGES = ("B2:B4", "D4:E5")


@pytest.mark.parametrize("piece_bytes", [7, PIECE_BYTES])
@pytest.mark.parametrize("workbook", [_book, _old_book])
def test_a_payer_merged_down_beside_its_claims_is_each_claims_payer(
    workbook: Callable[..., bytes], piece_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the workbook shows it: a merged cell's value is in each row it covers, in its
    first column (the columns it spans across stay empty), however the sheet's part is cut
    as it is read for its merged ranges (.xlsx)."""
    monkeypatch.setattr(archives, "PIECE_BYTES", piece_bytes)
    data = workbook(COVER, ("By payer", GROUPED), merged=GROUPED_MERGES)
    assert _read(data).decode().splitlines() == [
        "Claim ID,Payer,Decision Date,Billed,Paid",
        "K1,Aetna,2026-03-14,100,80",
        "K2,Aetna,2026-03-15,100,0",
        "K3,Aetna,2026-03-16,50",
        "K4,Cigna,2026-03-17,50",
        "K5,Cigna,2026-03-18,10,10",
    ]
    claims, _ = _uploaded(data)
    assert [(c.claim_id, c.payer_name, c.billed_cents) for c in claims] == MERGED_DOWN_CLAIMS


@pytest.mark.parametrize("workbook", [_book, _old_book])
def test_a_sheet_merging_more_ranges_over_rows_than_the_limit_is_refused(
    workbook: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a few bytes of XML may make: ranges merged over rows are held while the sheet is
    read, so a sheet of more of them than the limit is refused saying so."""
    monkeypatch.setattr(archives, "MAX_MERGED_RANGES", 1)
    error = _error(workbook(COVER, ("By payer", GROUPED), merged=GROUPED_MERGES))
    assert (error.code, str(error)) == (
        "BAD_ARCHIVE",
        "the sheet 'By payer' merges more than 1 ranges of cells over rows; save it as CSV "
        "and upload that",
    )

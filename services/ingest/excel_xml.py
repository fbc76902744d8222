"""An Excel 2003 XML workbook (SpreadsheetML: what Excel saves as "XML Spreadsheet 2003", and
what some systems' "Export to Excel" writes, often in a file named .xls or .xml): its first
visible worksheet with a claims header within its first rows is read as CSV text, a row a
line, as a web page's table is (services/ingest/html_tables.py), as the file streams (a
worksheet says it is hidden after its rows: see `TableReading`). Cells are written
as a workbook's are (services/ingest/archives.py): dates as dates, whole numbers without a
decimal point. A document type declaration (where entities are declared) is refused."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any
from xml.parsers import expat

from services.ingest.archives import ClaimsReader, MergedDown, cell_text
from services.ingest.html_tables import (
    MAX_ROW_CELLS,
    TableEnd,
    TableReading,
    Tables,
    table_lines,
)
from services.ingest.records import FileError

SPREADSHEET = "urn:schemas-microsoft-com:office:spreadsheet"
# Names as the parser gives them (namespace, a space, the local name).
_WORKSHEET, _ROW, _CELL, _DATA = (
    f"{SPREADSHEET} {name}" for name in ("Worksheet", "Row", "Cell", "Data")
)
_INDEX, _MERGE_ACROSS, _MERGE_DOWN, _TYPE = (
    f"{SPREADSHEET} {name}" for name in ("Index", "MergeAcross", "MergeDown", "Type")
)
# A worksheet's options, after its table: `<Visible>SheetHidden</Visible>` (or
# `SheetVeryHidden`) for a sheet Excel does not show.
EXCEL = "urn:schemas-microsoft-com:office:excel"
_OPTIONS, _VISIBLE = f"{EXCEL} WorksheetOptions", f"{EXCEL} Visible"
_HIDDEN = ("SheetHidden", "SheetVeryHidden")
# What tells an Excel 2003 XML workbook from other XML in its first bytes.
MARKS = (b"urn:schemas-microsoft-com:office:spreadsheet", b'progid="Excel.Sheet"')
# A row or cell `ss:Index` past Excel's own limits is a damaged file.
_MAX_ROWS = 1_048_576
_MAX_COLUMNS = 16_384
# What a few bytes may make: rows skipped over by `ss:Index` past this many in all make the
# file refused (a row's cells are held to MAX_ROW_CELLS, as a page's are).
MAX_SKIPPED_ROWS = 100_000

_WORKSHEETS = Tables(
    "the file is an Excel 2003 XML workbook with no sheet of claims: no worksheet has a",
    "the workbook's first worksheet of claims",
    "worksheet with claims was",
    "worksheets with claims were",
    "worksheet",
)
_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?")


def _index(attributes: dict[str, str], limit: int) -> int | None:
    """A row's or cell's `ss:Index` (1-based), None when it has none."""
    value = attributes.get(_INDEX)
    if value is None:
        return None
    if not value.isdecimal() or not 1 <= int(value) <= limit:
        raise FileError(
            f"the Excel 2003 XML workbook gives a row or cell the index {value[:20]!r}",
            code="BAD_ARCHIVE",
        )
    return int(value)


def _count(attributes: dict[str, str], name: str, limit: int) -> int:
    """A cell's `ss:MergeAcross` or `ss:MergeDown`: how many columns or rows more it covers."""
    value = attributes.get(name, "0")
    return min(int(value), limit) if value.isdecimal() else 0


def _value(kind: str, text: str) -> Any:
    """A cell's `Data` as the value a workbook reader gives (see `archives.cell_text`)."""
    if kind == "Number":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "DateTime":
        found = _DATE_TIME.fullmatch(text.strip())
        if found is None:
            return text
        return dt.datetime.fromisoformat(f"{found.group(1)}T{found.group(2)}")
    if kind == "Boolean":
        return text.strip() == "1"
    return text


class _SheetRows:
    """A SpreadsheetML workbook's rows, as its bytes come: (worksheet number, cells), and
    after each worksheet's rows whether it is hidden (`TableEnd`). A row or cell placed by
    `ss:Index` after a gap has the gap as empty rows or cells (so a line is its row), a
    cell merged across columns (`ss:MergeAcross`) is its first column's, the others empty,
    and one merged down (`ss:MergeDown`: a payer written once beside its claims) is also in
    the rows below it that it covers (`MergedDown`), as a workbook's is."""

    tells_hidden = True

    def __init__(self) -> None:
        self.rows: list[tuple[int, list[str] | TableEnd]] = []
        self._options = False  # within the worksheet's options
        self._visible: list[str] | None = None  # the text of its `Visible`, being read
        self._hidden = False
        self._parser = expat.ParserCreate(namespace_separator=" ")
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._data
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._sheet = 0
        self._row_number = 0  # of the worksheet's last row
        self._row: list[str] | None = None
        self._kind: str | None = None  # the `ss:Type` of the Data being read
        self._text: list[str] = []
        self._cell_value: Any = None
        self._merged = 0
        self._merged_down = 0
        self._down = MergedDown()
        self._skipped = 0

    def feed(self, data: bytes, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            raise FileError(
                f"the Excel 2003 XML workbook is not well-formed XML ({exc})", code="BAD_ARCHIVE"
            ) from None

    def _doctype(self, *_: Any) -> None:
        raise FileError(
            "the Excel 2003 XML workbook declares a document type; Excel writes none: save it "
            "again from Excel, or as CSV",
            code="BAD_ARCHIVE",
        )

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        if name == _WORKSHEET:
            self._sheet += 1
            self._row_number = 0
            self._hidden = False
            self._down = MergedDown()
        elif name == _OPTIONS and self._sheet:
            self._options = True
        elif name == _VISIBLE and self._options:
            self._visible = []
        elif name == _ROW and self._sheet:
            number = _index(attributes, _MAX_ROWS) or self._row_number + 1
            # Rows skipped over are empty rows, so that a line is the sheet's row.
            skipped = max(number - self._row_number - 1, 0)
            self._skipped += skipped
            if self._skipped > MAX_SKIPPED_ROWS:
                raise FileError(
                    f"the Excel 2003 XML workbook skips more than {MAX_SKIPPED_ROWS:,} rows "
                    "between its rows; save it again from Excel, or as CSV",
                    code="BAD_ARCHIVE",
                )
            self.rows.extend((self._sheet, []) for _ in range(skipped))
            self._row_number = number
            self._row = []
        elif name == _CELL and self._row is not None:
            column = _index(attributes, _MAX_COLUMNS)
            if column is not None and column - 1 > len(self._row):
                self._row.extend([""] * (min(column - 1, MAX_ROW_CELLS) - len(self._row)))
            self._merged = _count(attributes, _MERGE_ACROSS, _MAX_COLUMNS)
            self._merged_down = _count(attributes, _MERGE_DOWN, _MAX_ROWS)
            self._cell_value = None
        elif name == _DATA and self._row is not None:
            self._kind = attributes.get(_TYPE, "String")
            self._text = []

    def _data(self, text: str) -> None:
        if self._kind is not None:
            self._text.append(text)
        elif self._visible is not None:
            self._visible.append(text)

    def _end(self, name: str) -> None:
        if name == _DATA and self._kind is not None:
            self._cell_value = _value(self._kind, "".join(self._text))
            self._kind = None
        elif name == _CELL and self._row is not None:
            room = MAX_ROW_CELLS - len(self._row)
            if room > 0:
                text = cell_text(self._cell_value)
                if self._merged_down:
                    self._down.cover(len(self._row), self._row_number + self._merged_down, text)
                self._row.append(text)
                self._row.extend([""] * min(self._merged, room - 1))
        elif name == _ROW and self._row is not None:
            row, self._row = self._down.fill(self._row_number, self._row), None
            while row and not row[-1]:
                row.pop()
            self.rows.append((self._sheet, row))
        elif name == _VISIBLE and self._visible is not None:
            self._hidden = "".join(self._visible).strip() in _HIDDEN
            self._visible = None
        elif name == _OPTIONS:
            self._options = False
        elif name == _WORKSHEET and self._sheet:
            self.rows.append((self._sheet, TableEnd(self._hidden)))


def is_excel_xml(head: bytes) -> bool:
    """Whether the first bytes of an XML file show an Excel 2003 XML workbook."""
    return any(mark in head for mark in MARKS)


async def sheet_lines(chunks: AsyncIterator[bytes], reader: ClaimsReader) -> AsyncIterator[bytes]:
    """The claims worksheet of the Excel 2003 XML workbook whose bytes `chunks` are, as CSV
    text."""
    reading = TableReading(reader, _SheetRows(), _WORKSHEETS)
    async for piece in table_lines(chunks, reader, reading):
        yield piece

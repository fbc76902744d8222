"""A claims file sent inside a ZIP archive, or an Excel workbook sent as it is (.xlsx, or the
Excel 97-2003 .xls many older systems still export): the archive's one file, or the
workbook's claims sheet as CSV text (a row a line, so a rejection's line is the sheet's row).
Each keeps its index at its end (or, for an .xls, anywhere), so the upload is spooled first:
in memory up to SPOOL_MEMORY_BYTES, then in a temporary file, at most the upload's size
limit, and what they unpack to is held to that limit too (an archive declaring more is
refused before anything is unpacked)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Protocol

from services.ingest.csv_claims import MAX_LINES_ABOVE_HEADER
from services.ingest.records import FileError, UploadWarning

SPOOL_MEMORY_BYTES = 8 << 20
# What an unpacked or decompressed file is handed on in: pieces of about an upload chunk,
# so that a little data that unpacks to a great deal (a "zip bomb") is never held whole.
PIECE_BYTES = 1 << 20
# Files an archive may hold besides the claims file: what archivers add.
_CLUTTER = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
_WORKBOOK = "xl/workbook.xml"
_OTHER_OFFICE = {
    "word/document.xml": "a Word document; upload the claims export (CSV) or 835 file",
    "ppt/presentation.xml": "a PowerPoint presentation; upload the claims export (CSV) or 835 file",
    "Index/Document.iwa": "an Apple Numbers document; export it as CSV and upload that",
}
# An OpenDocument file's first member, `mimetype`, names its kind after this.
_OPEN_DOCUMENT = b"application/vnd.oasis.opendocument."


class ClaimsReader(Protocol):
    """What unpacking asks of the upload's parser: the largest file it reads, why a row of a
    sheet is not a header it reads (None when it is one), a place for warnings about the
    file, and the file's own bytes when what it reads is made from them (an archive's file,
    a workbook's sheet, a web page's table): its size and digest are the file's."""

    @property
    def max_bytes(self) -> int: ...

    def header_problem(
        self, cells: list[str], line: int, above: list[str] | None = None
    ) -> str | None: ...

    def note(self, warning: UploadWarning) -> None: ...

    def received(self, chunk: bytes) -> None: ...


async def held_to(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """`chunks` as they come, refused once they add up to more than `max_bytes` (a file read
    for what it holds is held to the upload limit as sent, not only as read)."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise FileError(
                f"the file is larger than the limit of {max_bytes:,} bytes", code="FILE_TOO_LARGE"
            )
        yield chunk


async def unpacked(chunks: AsyncIterator[bytes], reader: ClaimsReader) -> AsyncIterator[bytes]:
    """The claims file in the archive or workbook whose bytes `chunks` are."""
    async for piece in _spooled(chunks, reader, _opened):
        yield piece


async def old_workbook_lines(
    chunks: AsyncIterator[bytes], reader: ClaimsReader
) -> AsyncIterator[bytes]:
    """The claims sheet of the Excel 97-2003 workbook (.xls) whose bytes `chunks` are, as CSV
    text (as an .xlsx is read)."""
    async for piece in _spooled(chunks, reader, _old_workbook):
        yield piece


async def _spooled(
    chunks: AsyncIterator[bytes],
    reader: ClaimsReader,
    opened: Callable[[IO[bytes], ClaimsReader], Iterator[bytes]],
) -> AsyncIterator[bytes]:
    """What `opened` reads from the whole of `chunks`, spooled (at most the reader's
    `max_bytes`), in worker threads."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        async for chunk in held_to(chunks, reader.max_bytes):
            spool.write(chunk)
        pieces = await asyncio.to_thread(opened, spool, reader)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            yield piece


def _opened(spool: IO[bytes], reader: ClaimsReader) -> Iterator[bytes]:
    max_bytes = reader.max_bytes
    try:
        archive = zipfile.ZipFile(spool)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileError(
            f"the file starts as a ZIP archive but cannot be read as one ({exc})",
            code="BAD_ARCHIVE",
        ) from None
    names = set(archive.namelist())
    if _WORKBOOK in names:
        unpacked_size = sum(member.file_size for member in archive.infolist())
        archive.close()
        return _workbook_lines(spool, unpacked_size, reader)
    for part, what in _OTHER_OFFICE.items():
        if part in names:
            raise FileError(f"the file is {what}", code="NOT_CLAIMS_FILE")
    if "mimetype" in names and archive.read("mimetype").startswith(_OPEN_DOCUMENT):
        spreadsheet = archive.read("mimetype") == _OPEN_DOCUMENT + b"spreadsheet"
        raise FileError(
            "the file is an OpenDocument spreadsheet (.ods); save it as CSV or Excel (.xlsx) "
            "and upload that"
            if spreadsheet
            else "the file is an OpenDocument file; upload the claims export (CSV) or 835 file",
            code="NOT_CLAIMS_FILE",
        )
    files = [
        member
        for member in archive.infolist()
        if not member.is_dir() and not any(mark in member.filename for mark in _CLUTTER)
    ]
    if len(files) != 1:
        listed = ", ".join(member.filename for member in files[:5])
        raise FileError(
            "the ZIP archive is empty"
            if not files
            else f"the ZIP archive holds {len(files)} files ({listed}"
            f"{', …' if len(files) > 5 else ''}); upload them one at a time",
            code="ARCHIVE_MEMBERS",
        )
    [member] = files
    if member.flag_bits & 0x1:
        raise FileError(
            f"{member.filename} in the ZIP archive is encrypted; upload it unencrypted",
            code="BAD_ARCHIVE",
        )
    if member.file_size > max_bytes:
        raise FileError(
            f"{member.filename} in the ZIP archive is {member.file_size:,} bytes, larger than "
            f"the limit of {max_bytes:,}",
            code="FILE_TOO_LARGE",
        )
    return _member_bytes(archive, member)


def _member_bytes(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Iterator[bytes]:
    try:
        with archive.open(member) as data:
            while piece := data.read(PIECE_BYTES):
                yield piece
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        raise FileError(
            f"{member.filename} in the ZIP archive cannot be read ({exc})", code="BAD_ARCHIVE"
        ) from None


def _workbook_lines(spool: IO[bytes], unpacked_size: int, reader: ClaimsReader) -> Iterator[bytes]:
    """The workbook's claims sheet (`_claims_sheet`) as CSV text, row by row; its empty rows as
    empty lines, so that lines keep the rows' numbers."""
    if unpacked_size > reader.max_bytes:
        raise FileError(
            f"the workbook unpacks to {unpacked_size:,} bytes, more than the limit of "
            f"{reader.max_bytes:,}",
            code="FILE_TOO_LARGE",
        )
    # Loaded on the first workbook: most ingest processes never read one.
    from openpyxl import load_workbook

    try:
        book = load_workbook(spool, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
        raise FileError(
            f"the Excel workbook cannot be read ({type(exc).__name__}: {exc}); save it again, "
            "or as CSV",
            code="BAD_ARCHIVE",
        ) from None
    try:
        yield from _sheet_lines(_claims_sheet(book, reader))
    finally:
        book.close()


def _sheet_lines(sheet: _Sheet) -> Iterator[bytes]:
    """`sheet` as CSV text, a row a line (an empty row an empty line), in pieces of about
    PIECE_BYTES."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for cells in _sheet_rows(sheet):
        if cells:
            writer.writerow(cells)
        else:
            text.write("\n")
        if text.tell() >= PIECE_BYTES:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
    if text.tell():
        yield text.getvalue().encode()


def _sheet_rows(sheet: _Sheet) -> Iterator[list[str]]:
    """`sheet`'s rows as text, without their empty cells at the end, each merged cell read
    in every row it covers (`MergedDown`)."""
    merges = _merged_down(sheet)
    merged = MergedDown()
    for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = _row_cells(row)
        for column, last_row in merges.get(number, ()):
            merged.cover(column, last_row, cells[column] if column < len(cells) else "")
        yield merged.fill(number, cells)


class MergedDown:
    """Cells merged down over the rows below their own, as a report writes a payer once
    beside its claims: each is read in every row it covers, in its first column (columns it
    also spans across stay empty, as in its own row: the cells after it stay under their
    headings), where that row has no value of its own. What a workbook shows, where Excel's
    own CSV would keep it in its first row alone."""

    def __init__(self) -> None:
        self._covering: dict[int, tuple[int, str]] = {}  # column: (its last row, the text)

    def cover(self, column: int, last_row: int, text: str) -> None:
        """A cell of `column` (0-based) merged down to `last_row` (the sheet's, 1-based)."""
        if text and column < _MAX_MERGED_COLUMN:
            self._covering[column] = (last_row, text)

    def fill(self, row: int, cells: list[str]) -> list[str]:
        """`cells`, of the sheet's `row`, with the text of the cells above that cover it."""
        for column, (last_row, text) in list(self._covering.items()):
            if row > last_row:
                del self._covering[column]
            elif column >= len(cells):
                cells.extend([""] * (column - len(cells)))
                cells.append(text)
            elif not cells[column]:
                cells[column] = text
        return cells


# Merged cells past this column are not read down (a row's cells are held to about as many).
_MAX_MERGED_COLUMN = 1024
# What a few bytes may make: a sheet merging more ranges over rows than this is refused
# (a report writing a payer once beside its claims merges a range per payer and period).
MAX_MERGED_RANGES = 65_536
# A workbook sheet's merged ranges, in its XML after its rows: `<mergeCell ref="A2:A9"/>`.
_MERGE_CELL = re.compile(
    rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([A-Z]{1,3}[0-9]{1,7}:[A-Z]{1,3}[0-9]{1,7})"'
)
_MERGE_CELL_TAIL = 200  # bytes kept between pieces: a mergeCell element cut in two is found


def _merged_down(sheet: _Sheet) -> dict[int, list[tuple[int, int]]]:
    """The sheet's ranges merged over more than one row: by their first row (1-based), their
    first column (0-based) and last row."""
    ranges: Iterable[tuple[int, int, int]] = (
        [(low + 1, column, high) for low, high, column, _ in sheet.merged_cells]
        if isinstance(sheet, _OldSheet)
        else _xlsx_merges(sheet)
    )
    merges: dict[int, list[tuple[int, int]]] = {}
    kept = 0
    for first_row, column, last_row in ranges:
        if last_row > first_row:
            kept += 1
            if kept > MAX_MERGED_RANGES:
                raise FileError(
                    f"the sheet {sheet.title!r} merges more than {MAX_MERGED_RANGES:,} ranges "
                    "of cells over rows; save it as CSV and upload that",
                    code="BAD_ARCHIVE",
                )
            merges.setdefault(first_row, []).append((column, last_row))
    return merges


def _xlsx_merges(sheet: Any) -> Iterator[tuple[int, int, int]]:
    """An .xlsx sheet's merged ranges (first row, first column 0-based, last row), read from
    its part: openpyxl's read-only sheets, which read rows as they stream, do not keep them."""
    from openpyxl.utils.cell import range_boundaries

    source = getattr(sheet, "_get_source", None)
    if source is None:
        return
    tail = b""
    with source() as part:
        while piece := part.read(PIECE_BYTES):
            text, last_end = tail + piece, 0
            for found in _MERGE_CELL.finditer(text):
                min_col, min_row, _, max_row = range_boundaries(found.group(1).decode())
                yield min_row, min_col - 1, max_row
                last_end = found.end()
            # What may begin an element cut in two, past any found already.
            tail = text[max(last_end, len(text) - _MERGE_CELL_TAIL) :]


class _Sheet(Protocol):
    """A workbook's sheet as the claims are looked for and read in it (openpyxl's names)."""

    @property
    def title(self) -> str: ...

    @property
    def sheet_state(self) -> str: ...

    def iter_rows(
        self, max_row: int | None = None, *, values_only: bool
    ) -> Iterator[tuple[Any, ...]]: ...


class _Book(Protocol):
    """A workbook as its claims sheet is chosen (openpyxl's names): its sheets in tab order
    and the one it opens on."""

    @property
    def worksheets(self) -> Sequence[_Sheet]: ...

    @property
    def active(self) -> Any: ...


def _old_workbook(spool: IO[bytes], reader: ClaimsReader) -> Iterator[bytes]:
    """The claims sheet (`_claims_sheet`) of an Excel 97-2003 workbook as CSV text. Its file
    is at most the upload limit, and its sheets at most 65,536 rows of 256 cells: read whole."""
    # Loaded on the first such workbook: most ingest processes never read one.
    import xlrd

    spool.seek(0)
    contents = spool.read()
    try:
        # xlrd writes its notes on a damaged file to `logfile`: kept out of the service's.
        # Its formatting read too: only then does xlrd give a sheet's merged cells.
        book = xlrd.open_workbook(
            file_contents=contents, logfile=io.StringIO(), formatting_info=True
        )
    except Exception:  # formatting xlrd cannot read: the cells all the same, without merges
        book = None
    try:
        if book is None:
            book = xlrd.open_workbook(file_contents=contents, logfile=io.StringIO())
    except xlrd.XLRDError as exc:
        if "find workbook" in str(exc):
            raise FileError(
                "the file is an Office document (Word, PowerPoint, Outlook, …) but not an "
                "Excel workbook; upload the claims export (CSV) or 835 file",
                code="NOT_CLAIMS_FILE",
            ) from None
        if "encrypted" in str(exc):
            raise FileError(
                "the Excel workbook is protected by a password; save it without one, or as "
                "CSV, and upload that",
                code="BAD_ARCHIVE",
            ) from None
        raise _unreadable_old_workbook(exc) from None
    except Exception as exc:  # xlrd raises many kinds for a damaged file
        raise _unreadable_old_workbook(exc) from None
    try:
        yield from _sheet_lines(_claims_sheet(_OldBook(book), reader))
    finally:
        book.release_resources()


def _unreadable_old_workbook(exc: Exception) -> FileError:
    return FileError(
        f"the Excel 97-2003 workbook (.xls) cannot be read ({type(exc).__name__}: {exc}); "
        "save it again, or as CSV",
        code="BAD_ARCHIVE",
    )


class _OldSheet:
    """An .xls sheet (xlrd's) as `_Sheet`: each cell's value as openpyxl gives it (a date
    cell a datetime, a true/false cell a bool, an error its text, an empty cell None)."""

    def __init__(self, sheet: Any, datemode: int) -> None:
        import xlrd

        self._xlrd = xlrd
        self.title: str = sheet.name
        # xlrd: 0 visible, 1 hidden, 2 very hidden.
        self.sheet_state = "visible" if sheet.visibility == 0 else "hidden"
        self.opens_on = bool(sheet.sheet_visible)  # xlrd's name for the sheet shown on opening
        self._sheet = sheet
        self._datemode = datemode
        # (first row, last row + 1, first column, last column + 1), 0-based, as xlrd gives them.
        self.merged_cells: list[tuple[int, int, int, int]] = sheet.merged_cells

    def iter_rows(
        self, max_row: int | None = None, *, values_only: bool
    ) -> Iterator[tuple[Any, ...]]:
        rows = self._sheet.nrows if max_row is None else min(max_row, self._sheet.nrows)
        for at in range(rows):
            yield tuple(self._value(cell) for cell in self._sheet.row(at))

    def _value(self, cell: Any) -> Any:
        xlrd, kind, value = self._xlrd, cell.ctype, cell.value
        if kind == xlrd.XL_CELL_DATE:
            try:
                return xlrd.xldate_as_datetime(value, self._datemode)
            except (xlrd.xldate.XLDateError, ValueError, OverflowError):
                return value  # a date Python has no day for: its serial number
        if kind == xlrd.XL_CELL_BOOLEAN:
            return bool(value)
        if kind == xlrd.XL_CELL_ERROR:
            return xlrd.error_text_from_code.get(value, "#ERROR")
        if kind in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
            return None
        return value


class _OldBook:
    """An .xls workbook (xlrd's) as `_Book`."""

    def __init__(self, book: Any) -> None:
        self.worksheets = [_OldSheet(sheet, book.datemode) for sheet in book.sheets()]
        visible = [sheet for sheet in self.worksheets if sheet.sheet_state == "visible"]
        self.active = next((sheet for sheet in visible if sheet.opens_on), None)


def _claims_sheet(book: _Book, reader: ClaimsReader) -> _Sheet:
    """The sheet the claims are on: the one the workbook opens on when a claims header is
    within its first rows, else the first other visible sheet (in tab order) where one is.
    Other sheets that hold claims are named in a warning: one sheet is read, and none is
    lost unsaid. A workbook of one sheet without a header is read all the same (the parser
    says what its header lacks, as for a CSV); of several, refused naming each sheet's
    problem."""
    sheets = book.worksheets
    if not sheets:
        raise FileError("the Excel workbook has no sheet of cells", code="NOT_CLAIMS_FILE")
    opened = book.active if book.active in sheets else sheets[0]
    others = [s for s in sheets if s is not opened and s.sheet_state == "visible"]
    problems = {sheet: _header_problem(sheet, reader) for sheet in (opened, *others)}
    with_claims = [sheet for sheet, problem in problems.items() if problem is None]
    if not with_claims:
        if not others:
            return opened
        raise FileError(
            f"no sheet of the workbook has a claims header within its first "
            f"{MAX_LINES_ABOVE_HEADER + 1} rows: "
            + "; ".join(f"sheet {sheet.title!r}: {problem}" for sheet, problem in problems.items()),
            code="MISSING_COLUMN",
        )
    read, *unread = with_claims
    if read is not opened:
        reader.note(
            UploadWarning(
                "SHEET_CHOSEN",
                f"the workbook opens on the sheet {opened.title!r}, which holds no claims "
                f"header; its sheet {read.title!r} was read",
            )
        )
    if unread:
        reader.note(
            UploadWarning(
                "SHEETS_NOT_READ",
                f"the sheet {read.title!r} was read; the workbook's other sheets with claims ("
                + ", ".join(repr(s.title) for s in unread)
                + ") were not: upload each as a file of its own",
            )
        )
    return read


def _header_problem(sheet: _Sheet, reader: ClaimsReader) -> str | None:
    """None when a claims header is within the sheet's first rows; else why its first row
    with a value is not one."""
    first: str | None = None
    above: list[str] | None = None
    rows = sheet.iter_rows(max_row=MAX_LINES_ABOVE_HEADER + 2, values_only=True)
    for line, row in enumerate(rows, start=1):
        if cells := _row_cells(row):
            if begins_claims(reader, cells, line, above):
                return None
            first = first or reader.header_problem(cells, line)
            above = cells
    return first or "it is empty"


def begins_claims(
    reader: ClaimsReader, cells: list[str], line: int, above: list[str] | None
) -> bool:
    """Whether the claims begin at `cells`, on `line` of a sheet or table (the row `above`
    them with a value, if any): they are the claims header, within the first
    MAX_LINES_ABOVE_HEADER + 1 rows, or the first payer's heading below such a header
    without a payer column (a report grouped by payer), one row lower at most."""
    if reader.header_problem(cells, line, above) is not None:
        return False
    return line <= MAX_LINES_ABOVE_HEADER + 1 or reader.header_problem(cells, line) is not None


def _row_cells(row: tuple[Any, ...]) -> list[str]:
    """A row's cells as text, without its empty cells at the end."""
    cells = [cell_text(value) for value in row]
    while cells and not cells[-1]:
        cells.pop()
    return cells


_LINE_BREAKS = re.compile(r"\r\n|[\r\n]")


def cell_text(value: Any) -> str:
    """A cell as an export writes it: dates as ISO dates (with the time when it has one),
    whole numbers without a decimal point (claim ids, procedure codes), other numbers with
    Excel's 15 significant digits; a line break within a cell (Alt+Enter) as a space, so that
    every row stays one line."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, ".15g")
    return _LINE_BREAKS.sub(" ", str(value))

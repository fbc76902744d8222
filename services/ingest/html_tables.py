"""A web page sent as a claims export: what many systems' "Export to Excel" writes (an HTML
table, often in a file named .xls). The table with a claims header within its first rows is
read as CSV text, a row a line, so a rejection's line is the table's row; tables before it
(a report's title block) are passed over, and later tables that hold claims are named in a
warning. The page is read as it streams, at most one table's first rows held at a time."""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Protocol

from services.ingest.archives import PIECE_BYTES, ClaimsReader, begins_claims, held_to
from services.ingest.csv_claims import MAX_LINES_ABOVE_HEADER
from services.ingest.records import FileError, UploadWarning

_SPACES = re.compile(r"\s+")


# HTML's own limits on a cell's spans.
_MAX_COLSPAN = 1000
_MAX_ROWSPAN = 65534
# What a few bytes may make: a row's cells past this many are dropped (such a row is refused
# for its width anyway: see `ParseLimits.max_columns`).
MAX_ROW_CELLS = 1024


def _span(attrs: list[tuple[str, str | None]], name: str, limit: int) -> int:
    """A cell's `colspan` or `rowspan`: 1 unless a whole number from 1 to `limit`."""
    value = next((v for k, v in attrs if k == name), None) or ""
    value = value.strip()
    return min(int(value), limit) if value.isdecimal() and int(value) >= 1 else 1


class _Rows(HTMLParser):
    """The rows of a page's tables as they close: (table number, cells), a nested table's
    rows its own. A cell spanning rows (`rowspan`: a report's payer written once beside its
    claims) is in each of those rows; one spanning columns is its first column's, the others
    empty, so the cells after it stay under their headings."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[int, list[str]]] = []
        self._tables: list[int] = []  # the numbers of the tables open, innermost last
        # Of each open table: the cells that span into its next rows, by column (the text
        # and how many rows more).
        self._spanning: list[dict[int, tuple[str, int]]] = []
        self._count = 0
        self._row: list[str] | None = None
        # The current row's columns that a cell of a row above fills, not yet placed.
        self._above: dict[int, str] = {}
        self._cell: list[str] | None = None
        self._spans = (1, 1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._count += 1
            self._tables.append(self._count)
            self._spanning.append({})
            self._row = self._cell = None
        elif not self._tables:
            return
        elif tag == "tr":
            self._end_row()
            self._begin_row()
        elif tag in ("td", "th"):
            self._end_cell()
            if self._row is None:
                self._begin_row()
            self._cell = []
            self._spans = (
                _span(attrs, "colspan", _MAX_COLSPAN),
                _span(attrs, "rowspan", _MAX_ROWSPAN),
            )
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._tables:
            self._end_row()
            self._tables.pop()
            self._spanning.pop()
        elif tag == "tr":
            self._end_row()
        elif tag in ("td", "th"):
            self._end_cell()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def _begin_row(self) -> None:
        self._row = []
        spanning = self._spanning[-1]
        self._above = {column: text for column, (text, _) in spanning.items()}
        for column, (text, rows) in list(spanning.items()):
            if rows > 1:
                spanning[column] = (text, rows - 1)
            else:
                del spanning[column]

    def _fill_from_above(self, row: list[str]) -> None:
        while len(row) in self._above:
            row.append(self._above.pop(len(row)))

    def _end_cell(self) -> None:
        row = self._row
        if self._cell is not None and row is not None and len(row) < MAX_ROW_CELLS:
            self._fill_from_above(row)
            columns, rows = self._spans
            columns = min(columns, MAX_ROW_CELLS - len(row))
            first = len(row)
            text = _SPACES.sub(" ", "".join(self._cell)).strip()
            row.append(text)
            row.extend([""] * (columns - 1))
            if rows > 1:
                spanning = self._spanning[-1]
                for column in range(first, first + columns):
                    spanning[column] = (text if column == first else "", rows - 1)
        self._cell = None

    def _end_row(self) -> None:
        self._end_cell()
        row = self._row
        if row is not None and self._tables:
            # Cells from above past the row's own cells: in their columns.
            for column in sorted(self._above):
                if column >= len(row):  # else a cell of this row overlaps it, and wins
                    row.extend([""] * (column - len(row)))
                    row.append(self._above[column])
            self.rows.append((self._tables[-1], row))
        self._row = None
        self._above = {}


@dataclass(frozen=True)
class TableEnd:
    """In a `RowSource`'s rows that `tells_hidden`, after a table's last row: whether the
    table (a worksheet) is hidden, which its file says only after its rows."""

    hidden: bool


class RowSource(Protocol):
    """A file's tables (or sheets) read as its bytes come: after each `feed`, `rows` holds the
    rows completed since, as (table number, cells); with `tells_hidden`, each table's
    `TableEnd` after its rows."""

    rows: list[tuple[int, list[str] | TableEnd]]
    tells_hidden: bool

    def feed(self, data: bytes, final: bool) -> None: ...


class _PageRows:
    """A web page's tables' rows (`_Rows`) from its bytes: UTF-8, or Windows-1252 from the
    first byte that is not UTF-8."""

    def __init__(self) -> None:
        self._parser = _Rows()
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._windows_1252 = False
        self.rows: list[tuple[int, list[str] | TableEnd]] = []
        self.tells_hidden = False

    def feed(self, data: bytes, final: bool) -> None:
        self._parser.feed(self._decoded(data, final))
        if final:
            self._parser.close()
        self.rows.extend(self._parser.rows)
        self._parser.rows = []

    def _decoded(self, data: bytes, final: bool) -> str:
        if not self._windows_1252:
            try:
                return self._decoder.decode(data, final)
            except UnicodeDecodeError:
                # Not UTF-8: a page saved in Windows-1252, read so from here on.
                self._windows_1252 = True
                pending = self._decoder.getstate()[0]
                data = pending + data
        return data.decode("cp1252", errors="replace")


@dataclass(frozen=True)
class Tables:
    """How a file's tables are named in what is said of them."""

    none_found: str  # the file had no table with a claims header
    first_read: str  # "the page's first table of claims"
    one_more: str
    more: str
    kind: str  # "table"


PAGE_TABLES = Tables(
    "the file is a web page (HTML) with no table of claims: no table has a",
    "the page's first table of claims",
    "table with claims was",
    "tables with claims were",
    "table",
)
# The text of a table that may turn out hidden held until its end, at most (see
# `TableReading`): a workbook exported for upload is rarely larger.
HELD_BYTES = 8 * PIECE_BYTES


class TableReading:
    """Feeds a file's bytes; gives the CSV text of its claims table's rows: the first table
    (of a page, or visible sheet of a workbook) with a claims header within its first rows.

    Where the file says whether a table is hidden only after its rows (`tells_hidden`: an
    Excel 2003 XML workbook), the chosen table's text is held until its end, up to
    HELD_BYTES: a hidden one is then passed over as a workbook's hidden sheets are; past
    that much it streams, and turning out hidden at its end, the file is refused."""

    def __init__(
        self, reader: ClaimsReader, source: RowSource | None = None, tables: Tables = PAGE_TABLES
    ) -> None:
        self._reader = reader
        self._source = source or _PageRows()
        self._tables = tables
        self._chosen: int | None = None
        self._first_rows: dict[int, list[list[str]]] = {}  # of tables not yet judged
        self._judged: set[int] = set()
        # Other tables with claims, and of them those not yet known to be visible.
        self._other_tables = 0
        self._others_unsure: set[int] = set()
        # Whether the chosen table's text is held until its end, and whether some of it was
        # sent before its end was known.
        self._held = False
        self._streamed = False
        self._hidden_with_claims = 0
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\n")

    def feed(self, data: bytes, *, final: bool = False) -> Iterator[bytes]:
        self._source.feed(data, final)
        rows, self._source.rows = self._source.rows, []
        for table, cells in rows:
            if isinstance(cells, TableEnd):
                self._end(table, cells.hidden)
            else:
                self._take(table, cells)
            size = self._text.tell()
            if self._held and size >= HELD_BYTES:
                self._held, self._streamed = False, True
            if size >= PIECE_BYTES and not self._held:
                yield self._flushed()
        if final:
            tables = self._tables
            if self._chosen is None:
                hidden = (
                    f" (a hidden {tables.kind} has one: unhide it to upload it)"
                    if self._hidden_with_claims
                    else ""
                )
                raise FileError(
                    f"{tables.none_found} claims header within its first "
                    f"{MAX_LINES_ABOVE_HEADER + 1} rows{hidden}",
                    code="MISSING_COLUMN",
                )
            if self._other_tables:
                more = self._other_tables
                self._reader.note(
                    UploadWarning(
                        "TABLES_NOT_READ",
                        f"{tables.first_read} was read; {more} more "
                        + (tables.one_more if more == 1 else tables.more)
                        + " not: upload each as a file of its own",
                    )
                )
            yield self._flushed()

    def _take(self, table: int, cells: list[str]) -> None:
        while cells and not cells[-1]:
            cells.pop()
        if table == self._chosen:
            self._write(cells)
            return
        if table in self._judged:
            return
        # A table's first rows are held until one is a claims header or there are too many.
        rows = self._first_rows.setdefault(table, [])
        above = next((row for row in reversed(rows) if row), None)
        rows.append(cells)
        holds = bool(cells) and begins_claims(self._reader, cells, len(rows), above)
        if holds or len(rows) > MAX_LINES_ABOVE_HEADER + 1:
            self._judged.add(table)
            del self._first_rows[table]
        if holds and self._chosen is None:
            self._chosen = table
            self._held = self._source.tells_hidden
            for row in rows:
                self._write(row)
        elif holds:
            self._other_tables += 1
            if self._source.tells_hidden:
                self._others_unsure.add(table)

    def _end(self, table: int, hidden: bool) -> None:
        """The end of `table`, `hidden` or not: a hidden table is passed over (its text
        dropped when it was the chosen one), a visible chosen one's text sent on."""
        self._first_rows.pop(table, None)
        self._judged.add(table)
        unsure = table in self._others_unsure
        self._others_unsure.discard(table)
        if not hidden:
            if table == self._chosen:
                self._held = False
            return
        if unsure:
            self._other_tables -= 1
            self._hidden_with_claims += 1
        if table != self._chosen:
            return
        if self._streamed:
            raise FileError(
                f"{self._tables.first_read} is hidden, which the file says after its rows: "
                "unhide the one to upload, or save it as CSV",
                code="HIDDEN_SHEET",
            )
        self._hidden_with_claims += 1
        self._chosen, self._held = None, False
        self._text.seek(0)
        self._text.truncate()

    def _write(self, cells: list[str]) -> None:
        if cells:
            self._csv.writerow(cells)
        else:
            self._text.write("\n")

    def _flushed(self) -> bytes:
        piece = self._text.getvalue().encode()
        self._text.seek(0)
        self._text.truncate()
        return piece


async def table_lines(
    chunks: AsyncIterator[bytes], reader: ClaimsReader, reading: TableReading | None = None
) -> AsyncIterator[bytes]:
    """The claims table of the page whose bytes `chunks` are (or of what `reading` reads), as
    CSV text (parsing is CPU work: each chunk in a worker thread)."""
    reading = reading or TableReading(reader)

    def read(data: bytes, final: bool) -> list[bytes]:
        return [piece for piece in reading.feed(data, final=final) if piece]

    async for chunk in held_to(chunks, reader.max_bytes):
        for piece in await asyncio.to_thread(read, chunk, False):
            yield piece
    for piece in await asyncio.to_thread(read, b"", True):
        yield piece

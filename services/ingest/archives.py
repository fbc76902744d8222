"""A claims file sent inside a ZIP archive, or an Excel workbook (.xlsx) sent as it is: the
archive's one file, or the workbook's sheet as CSV text (a row a line, so a rejection's line
is the sheet's row). Both keep their index at their end, so the upload is spooled first: in
memory up to SPOOL_MEMORY_BYTES, then in a temporary file, at most the upload's size limit,
and what they unpack to is held to that limit too (an archive declaring more is refused before
anything is unpacked)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

from services.ingest.records import FileError

SPOOL_MEMORY_BYTES = 8 << 20
# What an unpacked or decompressed file is handed on in: pieces of about an upload chunk,
# so that a little data that unpacks to a great deal (a "zip bomb") is never held whole.
PIECE_BYTES = 1 << 20
# Files an archive may hold besides the claims file: what archivers add.
_CLUTTER = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
_WORKBOOK = "xl/workbook.xml"
_OTHER_OFFICE = {
    "word/document.xml": "a Word document",
    "ppt/presentation.xml": "a PowerPoint presentation",
}


async def unpacked(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The claims file in the archive or workbook whose bytes `chunks` are."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise FileError(
                    f"the file is larger than the limit of {max_bytes:,} bytes",
                    code="FILE_TOO_LARGE",
                )
            spool.write(chunk)
        pieces = await asyncio.to_thread(_opened, spool, max_bytes)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            yield piece


def _opened(spool: IO[bytes], max_bytes: int) -> Iterator[bytes]:
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
        return _workbook_lines(spool, unpacked_size, max_bytes)
    for part, what in _OTHER_OFFICE.items():
        if part in names:
            raise FileError(
                f"the file is {what}; upload the claims export (CSV) or 835 file",
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


def _workbook_lines(spool: IO[bytes], unpacked_size: int, max_bytes: int) -> Iterator[bytes]:
    """The workbook's active sheet (the one Excel opens on) as CSV text, row by row; its
    empty rows as empty lines, so that lines keep the rows' numbers."""
    if unpacked_size > max_bytes:
        raise FileError(
            f"the workbook unpacks to {unpacked_size:,} bytes, more than the limit of "
            f"{max_bytes:,}",
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
        sheet = book.active or book.worksheets[0]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        for row in sheet.iter_rows(values_only=True):
            cells = [_cell_text(value) for value in row]
            while cells and not cells[-1]:
                cells.pop()
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
    finally:
        book.close()


_LINE_BREAKS = re.compile(r"\r\n|[\r\n]")


def _cell_text(value: Any) -> str:
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

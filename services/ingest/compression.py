"""What an upload's bytes are before they are text: a gzip-compressed file (a `.csv.gz` or
`.835.gz` export, or a body sent with `Content-Encoding: gzip`) is decompressed as it streams;
a ZIP archive or an Excel workbook (.xlsx or .xls) is unpacked (services/ingest/archives.py),
an Excel 2003 XML workbook or a web page read for its table of claims; a document or a file
compressed otherwise, sent by mistake, is named, with what to send instead."""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator, Iterator

from runtime.streams import prepended
from services.ingest.archives import PIECE_BYTES, ClaimsReader, old_workbook_lines, unpacked
from services.ingest.excel_xml import is_excel_xml, sheet_lines
from services.ingest.html_tables import table_lines
from services.ingest.records import FileError

GZIP_MAGIC = b"\x1f\x8b"
# Bytes enough to tell every format below apart (a web page's start after some blank lines).
_SNIFF_BYTES = 64
# An XML file's: enough for an Excel 2003 XML workbook's namespace, after its declarations.
_XML_SNIFF_BYTES = 1024
_XML = re.compile(rb"(?:\xef\xbb\xbf)?\s*<\?xml", re.IGNORECASE)
# Files packed in one another are read a few levels deep: a .csv.gz sent with
# Content-Encoding: gzip, a zipped .csv.gz, a gzip-compressed archive.
_MAX_NESTING = 3
ZIP_MAGIC = b"PK\x03\x04"
# An OLE2 compound document: an Excel 97-2003 workbook (.xls), or another Office document.
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# A web page: what some systems' "Export to Excel" writes (an HTML table in a .xls file).
_HTML = re.compile(rb"(?:\xef\xbb\xbf)?\s*(?:<!doctype html|<html|<table)", re.IGNORECASE)
_REFUSED = (
    (re.compile(rb"%PDF-"), "a PDF document; upload the claims export (CSV) or 835 file"),
    (
        re.compile(rb"BZh[1-9]1AY&SY"),
        "compressed with bzip2; upload it uncompressed or compressed with gzip",
    ),
    (re.compile(rb"\xfd7zXZ\x00"), "compressed with xz; upload it uncompressed or with gzip"),
    (
        re.compile(rb"\x28\xb5\x2f\xfd"),
        "compressed with zstd; upload it uncompressed or compressed with gzip",
    ),
    (
        re.compile(rb"\x89PNG\r\n|\xff\xd8\xff|GIF8[79]a"),
        "an image; upload the claims export (CSV) or 835 file",
    ),
    (_XML, "an XML document; upload the claims export (CSV) or 835 file"),
    (
        re.compile(rb"(?:\xef\xbb\xbf)?\s*[\[{]\s*[\[{\"]"),
        "JSON; upload the claims export (CSV) or 835 file",
    ),
    (re.compile(rb"\{\\rtf"), "a Rich Text document; upload the claims export (CSV) or 835 file"),
)


def refused_format(head: bytes) -> str | None:
    """What the file is, said so that its sender knows what to upload instead, when its first
    bytes show a format that is never claims (None: it may be)."""
    for magic, what in _REFUSED:
        if magic.match(head):
            return what
    return None


class Inflater:
    """One gzip stream (one or more members, as `cat a.gz b.gz` makes them) decompressed as
    its bytes arrive, in pieces of at most PIECE_BYTES. NUL bytes after the last member (the
    padding some tools add) are ignored; anything else there is an error."""

    def __init__(self) -> None:
        self._member: zlib._Decompress | None = None
        # Bytes after a member that ended, before the next one begins (or padding).
        self._between = b""
        self._fed = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._fed += len(data)
        while True:
            if self._member is None:
                data, self._between = self._between + data, b""
                if not data.strip(b"\x00"):
                    return
                if not data.startswith(GZIP_MAGIC):
                    if len(data) == 1 and data == GZIP_MAGIC[:1]:
                        self._between = data  # the next member's first byte
                        return
                    raise FileError(
                        "the file goes on after the end of its gzip data",
                        code="BAD_COMPRESSION",
                    )
                self._member = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
            try:
                piece = self._member.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                raise FileError(
                    f"the gzip data is damaged ({exc}) within its first {self._fed:,} bytes",
                    code="BAD_COMPRESSION",
                ) from None
            if piece:
                yield piece
            if self._member.eof:
                data, self._member = self._member.unused_data, None
                if not data:
                    return
            else:
                data = self._member.unconsumed_tail
                if not data:
                    return

    def close(self) -> Iterator[bytes]:
        """The last of the output; raises if the gzip data stopped short."""
        if self._between:
            raise FileError(
                "the file goes on after the end of its gzip data", code="BAD_COMPRESSION"
            )
        if self._member is not None:
            piece = self._member.flush()
            if not self._member.eof:
                raise FileError(
                    "the gzip data ends early: the file was cut short (send it again whole)",
                    code="BAD_COMPRESSION",
                )
            if piece:
                yield piece


async def file_bytes(chunks: AsyncIterator[bytes], reader: ClaimsReader) -> AsyncIterator[bytes]:
    """The file's own bytes from an upload's chunks: as they come, decompressed when they are
    gzip, unpacked when they are a ZIP archive or an Excel workbook (.xlsx or .xls, of at most
    the reader's `max_bytes`; a workbook's sheet chosen by what `reader` reads), a web page's
    claims table as CSV text. Refuses a format that is never claims, before anything is
    parsed."""
    head, stream = await _head(chunks)
    # The file is what the upload sent, gzip-decompressed: where what is read is made from it
    # (unpacked, or a page's table), the reader is given the file's own bytes.
    told = False
    for _ in range(_MAX_NESTING):
        if head.startswith(GZIP_MAGIC):
            stream = inflated(stream)
        elif head.startswith(ZIP_MAGIC):
            stream = unpacked(stream if told else _told(stream, reader), reader)
            told = True
        else:
            break
        head, stream = await _head(stream)
    if _XML.match(head):
        head, stream = await _head(stream, _XML_SNIFF_BYTES)
    # What is read is made from the file (a workbook's sheet, a page's table): the reader is
    # told the file's own bytes.
    own = stream if told else _told(stream, reader)
    if _XML.match(head) and is_excel_xml(head):
        stream = sheet_lines(own, reader)
    elif (what := refused_format(head)) is not None:
        raise FileError(f"the file is {what}", code="NOT_CLAIMS_FILE")
    elif head.startswith(OLE2_MAGIC):
        stream = old_workbook_lines(own, reader)
    elif _HTML.match(head):
        stream = table_lines(own, reader)
    async for chunk in stream:
        yield chunk


async def _told(chunks: AsyncIterator[bytes], reader: ClaimsReader) -> AsyncIterator[bytes]:
    """`chunks` as they come, each given to `reader` as the file's own bytes."""
    async for chunk in chunks:
        reader.received(chunk)
        yield chunk


async def inflated(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` of gzip data decompressed, each piece in a worker thread (decompressing is
    CPU work: a megabyte of output takes a few milliseconds)."""
    inflater = Inflater()
    async for chunk in chunks:
        pieces = inflater.feed(chunk)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            yield piece
    for piece in inflater.close():
        yield piece


async def _head(
    stream: AsyncIterator[bytes], size: int = _SNIFF_BYTES
) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first bytes of `stream` (at least `size`, fewer if it ends first), and the whole
    stream again."""
    head = b""
    async for chunk in stream:
        head += chunk
        if len(head) >= size:
            break
    return head, prepended(head, stream)

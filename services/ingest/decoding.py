"""Bytes to text as they stream in: UTF-8 (with or without BOM), UTF-16 with BOM, and
Windows-1252/Latin-1 exports, which are decoded rather than rejected."""

from __future__ import annotations

import codecs
import re

from services.ingest.records import FileError, UploadWarning

_LEGACY = "cp1252"
# Bytes no text export contains; a NUL means a binary file (or UTF-16 without a BOM).
_BINARY = b"\x00"
# A segment id, its element separator (no letter, digit, blank or line break), then what must
# come next: ISA01 (two digits), GS01 (a functional id) or ST01 (835). A CSV whose first
# column name merely starts with "ISA" or "ST" does not match.
_X12_START = re.compile(
    r"ISA(?P<isa>[^A-Za-z0-9 \t\r\n])[0-9]{2}(?P=isa)"
    r"|GS(?P<gs>[^A-Za-z0-9 \t\r\n])[A-Za-z]{2}(?P=gs)"
    r"|ST[^A-Za-z0-9 \t\r\n]835(?![0-9])",
    re.IGNORECASE,
)


class StreamDecoder:
    """Decodes a file chunk by chunk. Starts as UTF-8 and falls back to Windows-1252 for the
    rest of the file at the first byte sequence that is not UTF-8, with a warning."""

    def __init__(self) -> None:
        self._decoder: codecs.IncrementalDecoder | None = None
        self._head = b""
        # A UTF-8 BOM the UTF-8 decoder has not consumed yet (its first decode failed).
        self._bom_unread = False
        self.encoding = ""
        self.warnings: list[UploadWarning] = []

    def decode(self, chunk: bytes, *, final: bool = False) -> str:
        if self._decoder is None:
            self._head += chunk
            if len(self._head) < 4 and not final:
                return ""
            chunk, self._head = self._head, b""
            self._decoder = self._start(chunk)
            if self._decoder is None:
                raise FileError("the file is empty", code="EMPTY_FILE")
        if self.encoding != "utf-16" and _BINARY in chunk:
            raise FileError(
                "the file contains binary data (NUL bytes); upload a CSV or X12 835 text file",
                code="BINARY_FILE",
            )
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            return self._fall_back(chunk, final)
        self._bom_unread = False
        return text

    def _start(self, head: bytes) -> codecs.IncrementalDecoder | None:
        if not head:
            return None
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            self.encoding = "utf-16"
        elif head.startswith(codecs.BOM_UTF8):
            self.encoding = "utf-8-sig"
            self._bom_unread = True
        else:
            self.encoding = "utf-8"
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        if self.encoding == "utf-8-sig":
            self.encoding = "utf-8"
        return decoder

    def _fall_back(self, chunk: bytes, final: bool) -> str:
        assert self._decoder is not None
        if self.encoding != "utf-8":
            raise FileError(f"the file is not valid {self.encoding}", code="BAD_ENCODING")
        # Bytes the UTF-8 decoder buffered from the previous chunk belong to this one.
        pending, _ = self._decoder.getstate()
        data = pending + chunk
        if self._bom_unread:
            data = data.removeprefix(codecs.BOM_UTF8)
        self._decoder = codecs.getincrementaldecoder(_LEGACY)(errors="replace")
        self.encoding = _LEGACY
        self.warnings.append(
            UploadWarning(
                "DECODED_AS_WINDOWS_1252",
                "the file is not UTF-8; it was read as Windows-1252 (Latin-1)",
            )
        )
        return self._decoder.decode(data, final)


def detect_format(text: str) -> str:
    """`X12_835` when the text starts like X12 (an ISA header, or a GS or bare ST*835 sent
    without the envelopes around it), else `CSV`."""
    return "X12_835" if _X12_START.match(text.lstrip(" \t\r\n\ufeff")) else "CSV"

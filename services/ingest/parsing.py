"""An upload's bytes in, claims, rejections and warnings out, chunk by chunk.

Decodes the text, recognises the format from the first bytes (or takes the caller's), runs
the matching parser, applies the denial rules, and keeps the file's size and SHA-256, so
the file is read once and never held whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.ingest.csv_claims import CsvParser, header_problem
from services.ingest.decoding import StreamDecoder, detect_format
from services.ingest.denials import classify, classify_columns
from services.ingest.records import (
    ClaimColumns,
    ClaimRecord,
    FileError,
    ParsedItem,
    ParseLimits,
    Rejection,
    UploadWarning,
)
from services.ingest.x12 import X12Parser

# Enough of the start of a file to tell an X12 start (`ISA*00*`, `GS*HP*`, `ST*835*`) from a
# CSV header.
_SNIFF_CHARS = 16


@dataclass
class Batch:
    """What one chunk of the file yielded."""

    claims: list[ClaimRecord] = field(default_factory=list)
    # Claims of one row each read as columns (CSV), which come after the first
    # `columns_at` of `claims` in the file.
    columns: ClaimColumns | None = None
    columns_at: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    warnings: list[UploadWarning] = field(default_factory=list)

    def all_claims(self) -> list[ClaimRecord]:
        """`claims` with those of `columns` among them, in file order, as records."""
        if self.columns is None:
            return self.claims
        at = self.columns_at
        return self.claims[:at] + self.columns.records() + self.claims[at:]


class UploadParser:
    """Feeds one upload through decoding and the right parser."""

    def __init__(
        self,
        *,
        declared_format: str = "",
        column_map: Mapping[str, str] | None = None,
        max_bytes: int,
        limits: ParseLimits | None = None,
        as_columns: bool = True,
    ) -> None:
        """`as_columns`: a CSV's plain rows come as `Batch.columns` (else all as records)."""
        self._as_columns = as_columns
        self._declared = declared_format
        self._column_map = column_map
        self._limits = limits or ParseLimits()
        self._max_bytes = max_bytes
        self._decoder = StreamDecoder()
        self._digest = hashlib.sha256()
        self._parser: CsvParser | X12Parser | None = None
        self._pending = ""
        # Warnings from before the text (how the file was unpacked), for the next batch.
        self._notes: list[UploadWarning] = []
        self.format = declared_format
        # The file's size, and the text read's (held to `max_bytes`): the same bytes, unless
        # the text is made from the file (`received`).
        self.size_bytes = 0
        self._text_bytes = 0
        self._made_from_file = False

    @property
    def max_bytes(self) -> int:
        """The largest file read (as it is parsed: decompressed, unpacked)."""
        return self._max_bytes

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def rows_read(self) -> int:
        return self._parser.rows_read if self._parser is not None else 0

    def header_problem(
        self, cells: list[str], line: int, above: list[str] | None = None
    ) -> str | None:
        """Why a row of a workbook's sheet (or a page's table) is not a claims header this
        upload reads; None when it is one, or when it is the first payer's heading below a
        header without a payer column (the row `above` it)."""
        if self._declared == "X12_835":
            return "an 835 is never a workbook"
        problem = header_problem(cells, line, self._column_map, above=above)
        return None if problem is None else str(problem)

    def note(self, warning: UploadWarning) -> None:
        """A warning about the file found before its text was read (a workbook's sheets)."""
        self._notes.append(warning)

    def received(self, chunk: bytes) -> None:
        """The file's own bytes, when the text fed is made from them (an archive's file, a
        workbook's sheet, a web page's table): its size and SHA-256 are the file's."""
        self._made_from_file = True
        self.size_bytes += len(chunk)
        self._digest.update(chunk)

    def feed(self, chunk: bytes) -> Batch:
        self._text_bytes += len(chunk)
        if self._text_bytes > self._max_bytes:
            raise FileError(
                f"the file is larger than the limit of {self._max_bytes:,} bytes",
                code="FILE_TOO_LARGE",
            )
        if not self._made_from_file:
            self.size_bytes += len(chunk)
            self._digest.update(chunk)
        return self._parse(self._decoder.decode(chunk), final=False)

    def close(self) -> Batch:
        return self._parse(self._decoder.decode(b"", final=True), final=True)

    def _parse(self, text: str, *, final: bool) -> Batch:
        notes, self._notes = self._notes, []
        batch = Batch(warnings=notes + self._decoder.warnings)
        self._decoder.warnings = []
        if self._parser is None:
            self._pending += text
            if len(self._pending.lstrip()) < _SNIFF_CHARS and not final:
                return batch
            if not self._pending.strip():
                raise FileError("the file is empty", code="EMPTY_FILE")
            self._parser = self._start(self._pending)
            text, self._pending = self._pending, ""
        items: list[ParsedItem] = self._parser.feed(text) if text else []
        if final:
            items += self._parser.close()
        for item in items:
            if isinstance(item, ClaimRecord):
                classify(item)
                batch.claims.append(item)
            elif isinstance(item, ClaimColumns):
                # A parser hands over one piece of text's columns at most.
                assert batch.columns is None
                classify_columns(item)
                batch.columns, batch.columns_at = item, len(batch.claims)
            elif isinstance(item, Rejection):
                batch.rejections.append(item)
            else:
                batch.warnings.append(item)
        return batch

    def _start(self, head: str) -> CsvParser | X12Parser:
        detected = detect_format(head)
        if self._declared and self._declared != detected:
            raise FileError(
                f"the upload says {self._declared} but the file looks like {detected}",
                code="FORMAT_MISMATCH",
            )
        self.format = detected
        if detected == "X12_835":
            if self._column_map:
                raise FileError("column_map applies to CSV files only", code="BAD_COLUMN_MAP")
            return X12Parser(self._limits)
        return CsvParser(self._column_map, self._limits, as_columns=self._as_columns)

"""X12 835 (005010X221A1) remittance advice to claims, streamed segment by segment.

The parser is push-based: `feed` takes the file text in chunks of any size and returns the
claims, rejections and warnings the text completed; `close` ends the file. It holds only the
segment being read, the open envelopes and the current claim, so memory stays flat for any
file size.

It joins three parts, each usable alone: `SegmentReader` cuts the text into segments
(x12_segments), `Envelopes` checks their ISA/GS/ST nesting and trailers (x12_envelope), and a
`RemittanceReader` maps the segments of each 835 transaction to claims (remittance).

How the parser judges a file:
- `FileError` when the file as a whole cannot be read: it starts with neither an ISA header
  nor a GS or bare ST whose delimiters can be told, binary data, a segment over
  `ParseLimits.max_segment_bytes`, envelopes out of order, another X12 version than 5010, or
  envelopes still open at the end (a truncated file). The message names the segment.
- `Rejection` of one claim when its meaning is unclear (see `services.ingest.remittance`).
- `UploadWarning` where a segment breaks the standard but its meaning is clear: the parser
  reads it as meant and says so.
"""

from __future__ import annotations

from services.ingest.records import ParsedItem, ParseLimits
from services.ingest.remittance import RemittanceReader, stray_segment_warning
from services.ingest.x12_envelope import ENVELOPE_SEGMENTS, Envelopes
from services.ingest.x12_segments import Segment, SegmentReader


class X12Parser:
    """Streams an 835 file into `ClaimRecord`s, `Rejection`s and `UploadWarning`s."""

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self._limits = limits or ParseLimits()
        # Every part adds to this one list, so items come in the order of their segments.
        self._items: list[ParsedItem] = []
        self._segments = SegmentReader(self._limits.max_segment_bytes, self._items.append)
        self._envelopes = Envelopes(self._items.append)
        self._remittance: RemittanceReader | None = None
        self._claims_read_before = 0

    @property
    def rows_read(self) -> int:
        """The CLP segments read so far, skipped and rejected claims among them."""
        current = self._remittance.claims_read if self._remittance is not None else 0
        return self._claims_read_before + current

    def feed(self, text: str) -> list[ParsedItem]:
        """Reads the next piece of the file; returns what the segments it completed yielded."""
        self._items.clear()
        for segment in self._segments.feed(text):
            self._read(segment)
        return self._items.copy()

    def close(self) -> list[ParsedItem]:
        """Ends the file: reads a last segment that lacks its terminator, checks envelopes."""
        self._items.clear()
        for segment in self._segments.close():
            self._read(segment)
        self._envelopes.close(self._segments.last_segment)
        return self._items.copy()

    def _read(self, segment: Segment) -> None:
        if segment.id not in ENVELOPE_SEGMENTS:
            if self._remittance is not None:
                self._remittance.read(segment)
            else:
                self._items.append(stray_segment_warning(segment))
            return
        remittance = self._remittance
        if segment.id == "SE" and remittance is not None:
            # The last claim ends before the SE's own trailer warnings.
            remittance.finish()
            self._claims_read_before += remittance.claims_read
            self._remittance = None
        self._envelopes.read(segment)
        if segment.id == "ST":
            delimiters = self._segments.delimiters
            assert delimiters is not None
            self._remittance = RemittanceReader(
                segment.number, delimiters.component, self._limits, self._items.append
            )

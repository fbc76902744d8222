"""X12 text to segments, streamed: the delimiters an ISA header declares, then each segment
up to its terminator.

Push-based: `feed` takes the text in chunks of any size and yields the segments they
complete; a segment split across chunks is yielded from the chunk that ends it. Only the
segment being read is held, so memory stays flat for any file size. Segment numbers count
from the file's first ISA (1-based), across interchanges.

The reader knows the syntax of X12, not the meaning of any transaction: an ISA header opens
each interchange and declares its delimiters, and after an IEA only another ISA header may
follow (it may declare other delimiters). It raises `FileError` when the text cannot be cut
into segments, and reports segments that break the syntax but can still be read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from services.ingest.records import FileError, UploadWarning

_ISA_LENGTH = 106
# Widths of ISA01..ISA16. The ISA is fixed-length so that its delimiters can be found before
# they are known: element separator at index 3, ISA11 at 82, ISA16 at 104, terminator at 105.
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
_ISA_BODY = _ISA_LENGTH - 1
_NOT_BLANK = re.compile(r"[^ \t\r\n]")
_SEGMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9]{1,2}")
_MAX_ECHO = 40


@dataclass(frozen=True)
class Delimiters:
    """The delimiters one ISA header declares, and what follows from them."""

    element: str
    component: str
    terminator: str
    # CR and LF unless the ISA made one a delimiter: line breaks between (or inside) segments
    # carry no data.
    line_breaks: tuple[str, ...]
    # Control characters that are not delimiters: a file holding them is binary.
    binary: re.Pattern[str]


@dataclass(slots=True)
class Segment:
    """One segment as read. `elements[0]` is the id, so `elements[n]` is the standard's
    element n (e.g. CLP02 is `elements[2]`); trailing empty elements are dropped."""

    id: str
    elements: list[str]
    # 1-based, counted from the file's first ISA.
    number: int

    def element(self, index: int) -> str:
        """Element `index` without surrounding blanks; "" when the segment is shorter."""
        elements = self.elements
        return elements[index].strip() if index < len(elements) else ""


class SegmentReader:
    """Cuts X12 text, fed in chunks, into `Segment`s."""

    def __init__(self, max_segment_bytes: int, warn: Callable[[UploadWarning], None]) -> None:
        # None while an ISA header is expected: at the start and after each IEA.
        self.delimiters: Delimiters | None = None
        # The number of the last segment read.
        self.segment_count = 0
        self._max_segment_bytes = max_segment_bytes
        self._warn = warn
        self._header = ""
        self._pending: list[str] = []
        self._pending_length = 0

    def feed(self, text: str) -> Iterator[Segment]:
        """Yields the segments `text` completes, in order; lazily, so that a consumer's
        `FileError` on one segment stops the reading before the next."""
        position = 0
        while position < len(text):
            delimiters = self.delimiters
            if delimiters is None:
                position, header = self._read_header(text, position)
                if header is not None:
                    yield header
                continue
            end = text.find(delimiters.terminator, position)
            stop = len(text) if end == -1 else end
            # Checked before the text is copied, so a huge segment never gets into memory.
            if self._pending_length + stop - position > self._max_segment_bytes:
                raise FileError(
                    f"segment {self.segment_count + 1} is longer than "
                    f"{self._max_segment_bytes} bytes",
                    code="SEGMENT_TOO_LONG",
                    line_number=self.segment_count + 1,
                )
            if end == -1:
                self._pending.append(text[position:])
                self._pending_length += stop - position
                return
            raw = text[position:end]
            if self._pending:
                raw = "".join(self._pending) + raw
                self._pending, self._pending_length = [], 0
            position = end + 1
            segment = self._segment(raw, delimiters)
            if segment is not None:
                yield segment
                self._end_interchange(segment)

    def close(self) -> Iterator[Segment]:
        """Ends the text: yields a last segment that lacks its terminator (only an IEA may),
        or raises `FileError` when the text ends inside a segment or an ISA header, or holds
        no segment at all."""
        delimiters = self.delimiters
        if delimiters is not None and self._pending:
            last = self._without_line_breaks("".join(self._pending), delimiters).strip()
            self._pending, self._pending_length = [], 0
            if last:
                if last.split(delimiters.element)[0].strip().upper() != "IEA":
                    raise FileError(
                        "the file ends in the middle of a segment; it may be truncated",
                        code="TRUNCATED_FILE",
                        line_number=self.segment_count + 1,
                    )
                segment = self._segment(last, delimiters)
                if segment is not None:
                    yield segment
                    self._end_interchange(segment)
                self._report(
                    "MISSING_SEGMENT_TERMINATOR", "the last segment (IEA) has no terminator"
                )
        if self._header:
            if self.segment_count == 0:
                raise FileError(
                    "the file is too short to hold an ISA header (106 characters)", code="BAD_ISA"
                )
            raise file_ends_inside_envelope(self.segment_count)
        if self.segment_count == 0:
            raise FileError("the file is empty", code="EMPTY_FILE")

    def _read_header(self, text: str, position: int) -> tuple[int, Segment | None]:
        """Reads on into the fixed-length ISA header; the header as a segment once whole."""
        if not self._header:
            found = _NOT_BLANK.search(text, position)
            position = found.start() if found else len(text)
        take = text[position : position + _ISA_LENGTH - len(self._header)]
        self._header += take
        if not self._header.startswith("ISA"[: len(self._header)]):
            if self.segment_count == 0:
                raise FileError("the file does not start with an X12 ISA header", code="NOT_X12")
            raise FileError(
                "only an ISA header may follow an IEA",
                code="BAD_ENVELOPE",
                line_number=self.segment_count + 1,
            )
        position += len(take)
        if len(self._header) < _ISA_LENGTH:
            return position, None
        isa, self._header = self._header, ""
        self.segment_count += 1
        delimiters = _delimiters_of(isa, self.segment_count)
        self.delimiters = delimiters
        return position, Segment(
            "ISA", isa[:_ISA_BODY].split(delimiters.element), self.segment_count
        )

    def _end_interchange(self, segment: Segment) -> None:
        # The next interchange may declare other delimiters.
        if segment.id == "IEA":
            self.delimiters = None

    def _segment(self, raw: str, delimiters: Delimiters) -> Segment | None:
        text = self._without_line_breaks(raw, delimiters)
        if not text.strip(" \t"):
            return None
        self.segment_count += 1
        if delimiters.binary.search(text):
            raise FileError(
                f"segment {self.segment_count} holds control characters; "
                "the file is binary or corrupt",
                code="BINARY_FILE",
                line_number=self.segment_count,
            )
        elements = text.split(delimiters.element)
        segment_id = elements[0].strip(" \t")
        if not _SEGMENT_ID.fullmatch(segment_id):
            # The id is not echoed: a garbled segment may hold anything, a patient name too.
            self._report("MALFORMED_SEGMENT", "the segment has no readable segment id; skipped")
            return None
        if not segment_id.isupper():
            self._report("LOWERCASE_SEGMENT_ID", f"segment id {segment_id!r} is not upper case")
            segment_id = segment_id.upper()
        elements[0] = segment_id
        if len(elements) > 1 and not elements[-1]:
            self._report(
                "TRAILING_SEPARATOR",
                f"{segment_id} ends with empty elements (extra separators); they were ignored",
            )
            while len(elements) > 1 and not elements[-1]:
                elements.pop()
        return Segment(segment_id, elements, self.segment_count)

    @staticmethod
    def _without_line_breaks(raw: str, delimiters: Delimiters) -> str:
        for line_break in delimiters.line_breaks:
            raw = raw.replace(line_break, "")
        return raw

    def _report(self, code: str, message: str) -> None:
        self._warn(UploadWarning(code, message, self.segment_count))


def file_ends_inside_envelope(segment_count: int) -> FileError:
    """The error of a file that ends in an ISA header or before its SE, GE or IEA."""
    return FileError(
        "the file ends inside an envelope (no closing SE, GE or IEA); it may be truncated",
        code="TRUNCATED_FILE",
        line_number=segment_count,
    )


def echo(value: str) -> str:
    """A value from a non-patient element, cut short for a message."""
    return value[:_MAX_ECHO]


def _delimiters_of(isa: str, segment_number: int) -> Delimiters:
    """The delimiters of a 106-character ISA header, or FileError if they cannot be read."""
    element, repetition = isa[3], isa[82]
    component, terminator = isa[104], isa[105]
    fields = isa[:_ISA_BODY].split(element)
    if tuple(len(value) for value in fields[1:]) != _ISA_WIDTHS:
        raise FileError(
            "the ISA header is not 106 characters of fixed-width elements, "
            "so its delimiters cannot be read",
            code="BAD_ISA",
            line_number=segment_number,
        )
    # 004010 headers carry the standards id `U` where 005010 has the repetition separator.
    declared = [element, component, terminator] + ([] if repetition.isalnum() else [repetition])
    if len(set(declared)) < len(declared) or any(d.isalnum() or d == " " for d in declared):
        raise FileError(
            "the ISA header's delimiters must be distinct and not letters, digits or spaces",
            code="BAD_ISA",
            line_number=segment_number,
        )
    controls = {chr(code) for code in range(32)} | {"\x7f"}
    binary = sorted(controls - {"\t", "\r", "\n", *declared})
    delimiters = Delimiters(
        element=element,
        component=component,
        terminator=terminator,
        line_breaks=tuple(c for c in "\r\n" if c not in declared),
        binary=re.compile("[" + "".join(re.escape(c) for c in binary) + "]"),
    )
    if delimiters.binary.search(isa):
        raise FileError(
            "the ISA header holds control characters; the file is binary or corrupt",
            code="BINARY_FILE",
            line_number=segment_number,
        )
    return delimiters

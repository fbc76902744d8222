"""X12 text to segments, streamed: the delimiters the start of each interchange declares, then
each segment up to its terminator.

Push-based: `feed` takes the text in chunks of any size and yields the segments they
complete; a segment split across chunks is yielded from the chunk that ends it. Only the
segment being read is held, so memory stays flat for any file size. Segment numbers count
from the file's first segment (1-based), across interchanges.

Where the delimiters come from:
- An ISA header declares them: the element separator is its 4th character, ISA16 (one
  character after its 16th element separator) is the component separator, and the character
  after ISA16 ends each segment. A header padded to fixed width is 106 characters; one whose
  elements are not padded is read the same way, with a warning.
- A file with no ISA that starts with a GS or with a bare ST (a transaction sent without its
  envelope) shows them: the element separator follows the segment id, and the segment ends
  at the first character that cannot be part of its elements, which must be followed by the
  next segment's id. Such a file declares no component separator.

The reader knows the syntax of X12, not the meaning of any transaction: after an IEA only
another ISA header may follow (it may declare other delimiters). It raises `FileError` when
the text cannot be cut into segments, and reports segments that break the syntax but can
still be read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from services.ingest.records import FileError, UploadWarning

# Widths of ISA01..ISA16 when the header is padded to its fixed 106 characters.
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
_ISA_ELEMENTS = len(_ISA_WIDTHS)
# Enough for any ISA header and for a first GS or ST with the start of the segment after it;
# text that declares no delimiters within this many characters is no X12.
_MAX_PRELUDE = 512
# Blanks (and a byte order mark) before an interchange carry nothing.
_NOT_BLANK = re.compile("[^ \t\r\n\ufeff]")
_SEGMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9]{1,2}")
# What GS08 (the version) and the elements of an ST (835, control number, version) hold.
_ELEMENT_TEXT = re.compile("[A-Za-z0-9 ]*")
# GS01..GS08: the version, where a GS segment can end, is the last.
_GS_ELEMENTS = 8
# The segments a file may start with, and the trailer that closes each.
_CLOSING_TRAILERS = {"ISA": "IEA", "GS": "GE", "ST": "SE"}
_MAX_ECHO = 40


@dataclass(frozen=True)
class Delimiters:
    """The delimiters one interchange declares (or shows), and what follows from them."""

    element: str
    # "" when the file has no ISA header to declare one.
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
    # 1-based, counted from the file's first segment.
    number: int

    def element(self, index: int) -> str:
        """Element `index` without surrounding blanks; "" when the segment is shorter."""
        elements = self.elements
        return elements[index].strip() if index < len(elements) else ""

    def label(self) -> str:
        """Where the segment is, as messages name it: `segment 27 (DTM)`."""
        return f"segment {self.number} ({self.id})"


class SegmentReader:
    """Cuts X12 text, fed in chunks, into `Segment`s."""

    def __init__(self, max_segment_bytes: int, warn: Callable[[UploadWarning], None]) -> None:
        # None while the start of an interchange is expected: at the start and after each IEA.
        self.delimiters: Delimiters | None = None
        # The number of the last segment counted, and the last segment read.
        self.segment_count = 0
        self.last_segment: Segment | None = None
        # The id the file starts with: ISA, or GS or ST when it has no ISA header.
        self.outermost = "ISA"
        self._max_segment_bytes = max_segment_bytes
        self._warn = warn
        # The start of an interchange, held until its delimiters can be told.
        self._prelude = ""
        self._pending: list[str] = []
        self._pending_length = 0

    def feed(self, text: str) -> Iterator[Segment]:
        """Yields the segments `text` completes, in order; lazily, so that a consumer's
        `FileError` on one segment stops the reading before the next."""
        position = 0
        while position < len(text):
            delimiters = self.delimiters
            if delimiters is None:
                position, prelude = self._read_prelude(text, position)
                if prelude:
                    # The delimiters are known: the held text is read as segments.
                    yield from self.feed(prelude)
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
        """Ends the text: yields a last segment that lacks its terminator (only the trailer
        that closes the file's outermost envelope may), or raises `FileError` when the text
        ends inside a segment or an ISA header, or holds no segment at all."""
        while self._prelude:
            prelude, self._prelude = self._prelude, ""
            self.delimiters = self._delimiters_from(prelude, final=True)
            yield from self.feed(prelude)
        delimiters = self.delimiters
        if delimiters is not None and self._pending:
            last = self._without_line_breaks("".join(self._pending), delimiters).strip()
            self._pending, self._pending_length = [], 0
            if last:
                trailer = _CLOSING_TRAILERS[self.outermost]
                if last.split(delimiters.element)[0].strip().upper() != trailer:
                    raise FileError(
                        f"the file ends in the middle of segment {self.segment_count + 1}"
                        f"{self._after_last()}; it may be truncated",
                        code="TRUNCATED_FILE",
                        line_number=self.segment_count + 1,
                    )
                segment = self._segment(last, delimiters)
                if segment is not None:
                    yield segment
                    self._end_interchange(segment)
                self._report(
                    "MISSING_SEGMENT_TERMINATOR", f"the last segment ({trailer}) has no terminator"
                )
        if self.segment_count == 0:
            raise FileError("the file is empty", code="EMPTY_FILE")

    def _read_prelude(self, text: str, position: int) -> tuple[int, str]:
        """Reads on into the start of an interchange: the position reached in `text`, and the
        text held so far once its delimiters are known (else "")."""
        if not self._prelude:
            found = _NOT_BLANK.search(text, position)
            if found is None:
                return len(text), ""
            position = found.start()
        take = text[position : position + _MAX_PRELUDE - len(self._prelude)]
        prelude = self._prelude + take
        position += len(take)
        delimiters = self._delimiters_from(prelude, final=False)
        if delimiters is None:
            self._prelude = prelude
            return position, ""
        self._prelude = ""
        self.delimiters = delimiters
        return position, prelude

    def _delimiters_from(self, prelude: str, *, final: bool) -> Delimiters | None:
        """The delimiters the start of an interchange declares or shows; None while more text
        is needed (never when `final`); `FileError` when they cannot be told."""
        if len(prelude) < 4 and not final:
            return None
        number = self.segment_count + 1
        first_id = prelude[:3].upper()
        if first_id == "ISA" and _separator_at(prelude, 3):
            found = _isa_delimiters(prelude, number, final=final, last=self._after_last())
            if found is None:
                return None
            delimiters, fixed_width = found
            if not fixed_width:
                self._warn(
                    UploadWarning(
                        "ISA_NOT_FIXED_WIDTH",
                        "the ISA header's elements are not padded to their fixed widths "
                        f"(106 characters in all); its delimiters were read from its elements: "
                        f"{_described(delimiters)}",
                        number,
                    )
                )
            return delimiters
        if final and "ISA".startswith(prelude.strip().upper()):
            raise _ends_inside_isa(number, self._after_last())
        first_id = first_id[:2]
        if self.segment_count == 0 and first_id in ("GS", "ST") and _separator_at(prelude, 2):
            shown = _shown_delimiters(prelude, first_id, final=final)
            if shown is not None:
                self.outermost = first_id
                self._warn(
                    UploadWarning(
                        "NO_ENVELOPE",
                        f"the file has no ISA header: it starts with {first_id}; it is read "
                        f"as 005010X221A1 with the delimiters its {first_id} segment shows: "
                        f"{_described(shown)}",
                        number,
                    )
                )
            return shown
        if self.segment_count == 0:
            raise FileError(
                "the file does not start with an X12 ISA header (nor with ST*835, an 835 "
                "transaction sent without its envelope)",
                code="NOT_X12",
            )
        raise FileError(
            f"segment {number}: the file goes on after the IEA{self._at_last()} with text that "
            "is not an ISA header; only another interchange may follow an IEA",
            code="BAD_ENVELOPE",
            line_number=number,
        )

    def _after_last(self) -> str:
        last = self.last_segment
        return f", after {last.label()}" if last is not None else ""

    def _at_last(self) -> str:
        last = self.last_segment
        return f" of segment {last.number}" if last is not None else ""

    def _end_interchange(self, segment: Segment) -> None:
        # The next interchange may declare other delimiters.
        if segment.id == "IEA" and self.outermost == "ISA":
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
        segment = Segment(segment_id, elements, self.segment_count)
        self.last_segment = segment
        return segment

    @staticmethod
    def _without_line_breaks(raw: str, delimiters: Delimiters) -> str:
        for line_break in delimiters.line_breaks:
            raw = raw.replace(line_break, "")
        return raw

    def _report(self, code: str, message: str) -> None:
        self._warn(UploadWarning(code, message, self.segment_count))


def echo(value: str) -> str:
    """A value from a non-patient element, cut short for a message."""
    return value[:_MAX_ECHO]


def _separator_at(text: str, index: int) -> bool:
    """Whether `text[index]` can separate elements: no letter, digit, blank or line break."""
    return index < len(text) and not text[index].isalnum() and text[index] not in " \t\r\n"


def _isa_delimiters(
    prelude: str, number: int, *, final: bool, last: str
) -> tuple[Delimiters, bool] | None:
    """The delimiters of the ISA header `prelude` starts with, and whether the header is
    padded to fixed width; None while more text is needed."""
    element = prelude[3]
    separator_at = 3
    for _ in range(_ISA_ELEMENTS - 1):
        separator_at = prelude.find(element, separator_at + 1)
        if separator_at == -1:
            break
    terminator_at = separator_at + 2
    if separator_at == -1 or terminator_at >= len(prelude):
        if final:
            raise _ends_inside_isa(number, last)
        if len(prelude) < _MAX_PRELUDE:
            return None
        raise FileError(
            f"segment {number} (ISA): the ISA header does not hold its 16 elements and "
            f"delimiters within {_MAX_PRELUDE} characters",
            code="BAD_ISA",
            line_number=number,
        )
    header = prelude[:terminator_at]
    elements = header.split(element)
    component, terminator, repetition = prelude[terminator_at - 1], prelude[terminator_at], ""
    # 004010 headers carry the standards id `U` in ISA11, where 005010 has the repetition
    # separator.
    if len(elements[11]) == 1 and not elements[11].isalnum():
        repetition = elements[11]
    delimiters = _checked_delimiters(element, component, terminator, repetition, number, "ISA")
    if terminator in header:
        raise FileError(
            f"segment {number} (ISA): the segment terminator {terminator!r} (the character "
            "after ISA16) also occurs inside the header, so where the header ends cannot be "
            "told",
            code="BAD_ISA",
            line_number=number,
        )
    fixed_width = tuple(len(value) for value in elements[1:]) == _ISA_WIDTHS
    return delimiters, fixed_width


def _shown_delimiters(prelude: str, first_id: str, *, final: bool) -> Delimiters | None:
    """The delimiters of a file that starts with a GS or ST segment instead of an ISA header;
    None while more text is needed."""
    element = prelude[2]
    more_wanted = not final and len(prelude) < _MAX_PRELUDE
    last_element_at = 3
    if first_id == "GS":
        # GS02..GS07 may hold any character; GS08 (the version) comes after 8 separators.
        for _ in range(_GS_ELEMENTS - 1):
            last_element_at = prelude.find(element, last_element_at) + 1
            if last_element_at == 0:
                if more_wanted:
                    return None
                raise _unclear_end(first_id, final=final)
    # GS08 and the elements of an ST hold letters, digits and blanks only: the first other
    # character that is no element separator ends the segment.
    terminator_at = _element_end(prelude, last_element_at)
    if first_id == "ST":
        while prelude.startswith(element, terminator_at):
            terminator_at = _element_end(prelude, terminator_at + 1)
    if terminator_at + 1 >= len(prelude) and more_wanted:
        return None
    if terminator_at >= len(prelude):
        raise _unclear_end(first_id, final=final)
    terminator = prelude[terminator_at]
    if prelude.startswith("\r\n", terminator_at):
        # Segments on lines of their own: LF ends each, a CR before it is a line break.
        terminator, terminator_at = "\n", terminator_at + 1
    following = prelude[terminator_at + 1 :].lstrip(" \t\r\n")
    if len(following) < 4 and more_wanted:
        return None
    # The terminator holds if the next segment starts right after it (or the file ends there).
    next_segment = re.match(f"[A-Za-z][A-Za-z0-9]{{1,2}}{re.escape(element)}", following)
    if following and next_segment is None and not (final and len(following) < 4):
        raise FileError(
            f"segment 1 ({first_id}): the file has no ISA header to declare its delimiters, "
            f"and its first segment cannot be told from the next: {terminator!r}, where it "
            "seems to end, is not followed by a segment id",
            code="UNKNOWN_DELIMITERS",
            line_number=1,
        )
    return _checked_delimiters(element, "", terminator, "", 1, first_id)


def _element_end(text: str, start: int) -> int:
    found = _ELEMENT_TEXT.match(text, start)
    return found.end() if found is not None else start


def _unclear_end(first_id: str, *, final: bool) -> FileError:
    if final:
        return FileError(
            f"the file ends inside segment 1 ({first_id}); it may be truncated",
            code="TRUNCATED_FILE",
            line_number=1,
        )
    return FileError(
        f"segment 1 ({first_id}): the file has no ISA header to declare its delimiters, and "
        f"its first segment shows no end within {_MAX_PRELUDE} characters",
        code="UNKNOWN_DELIMITERS",
        line_number=1,
    )


def _checked_delimiters(
    element: str, component: str, terminator: str, repetition: str, number: int, segment_id: str
) -> Delimiters:
    declared = [d for d in (element, repetition, component, terminator) if d]
    if len(set(declared)) < len(declared) or any(d.isalnum() or d == " " for d in declared):
        raise FileError(
            f"segment {number} ({segment_id}): the delimiters "
            f"{', '.join(repr(d) for d in declared)} must be distinct and not letters, digits "
            "or spaces",
            code="BAD_ISA" if segment_id == "ISA" else "UNKNOWN_DELIMITERS",
            line_number=number,
        )
    controls = {chr(code) for code in range(32)} | {"\x7f"}
    binary = sorted(controls - {"\t", "\r", "\n", *declared})
    return Delimiters(
        element=element,
        component=component,
        terminator=terminator,
        line_breaks=tuple(c for c in "\r\n" if c not in declared),
        binary=re.compile("[" + "".join(re.escape(c) for c in binary) + "]"),
    )


def _described(delimiters: Delimiters) -> str:
    components = (
        f"{delimiters.component!r} between components, "
        if delimiters.component
        else "components as each composite shows them, "
    )
    return (
        f"{delimiters.element!r} between elements, {components}"
        f"{delimiters.terminator!r} after each segment"
    )


def _ends_inside_isa(number: int, last: str) -> FileError:
    return FileError(
        f"the file ends inside the ISA header of segment {number}{last}; it may be truncated",
        code="TRUNCATED_FILE",
        line_number=number,
    )

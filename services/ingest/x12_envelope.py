"""The envelopes of an X12 835 file, checked segment by segment: ISA > GS > ST .. SE < GE < IEA.

A file may also be sent without its outer envelopes: it then starts with a GS (groups only) or
with a bare ST (transactions only), and holds no envelope above the one it starts with.

`FileError` when the envelopes are out of order, a transaction is not an 835, a group or
transaction declares another X12 version than 5010 (004010X091A1, say), or the file ends
with an envelope open (a truncated file: the message names the last segment read).
`UploadWarning` when a trailer's count or control number does not match its header, or a
5010 group or transaction declares another guide than 005010X221A1: the file is still read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from services.ingest.records import FileError, UploadWarning
from services.ingest.x12_segments import Segment, echo

ENVELOPE_SEGMENTS = frozenset({"ISA", "GS", "ST", "SE", "GE", "IEA"})
# The envelopes from the outermost in: the header that opens each, the trailer that closes it.
_LEVELS = (("ISA", "IEA", "interchange"), ("GS", "GE", "group"), ("ST", "SE", "transaction"))
_READ_GUIDE = "005010X221"
# GS08 and ST03 start with the version, release and industry code: 004010, 005010, 003051
# (some senders write the ISA12 form, 00401).
_VERSION = re.compile(r"00([1-9][0-9]{2}[0-9]?)")


@dataclass
class _Interchange:
    control_number: str
    group_count: int = 0


@dataclass
class _Group:
    control_number: str
    transaction_count: int = 0


@dataclass
class _Transaction:
    first_segment: int
    control_number: str


class Envelopes:
    """The envelopes open at the current segment of a file."""

    def __init__(self, warn: Callable[[UploadWarning], None]) -> None:
        self._warn = warn
        # The headers the file may hold: from the one it starts with, inwards. Set by its
        # first segment.
        self._headers: frozenset[str] | None = None
        self._interchange: _Interchange | None = None
        self._group: _Group | None = None
        self._transaction: _Transaction | None = None
        self._handlers: dict[str, Callable[[Segment], None]] = {
            "ISA": self._on_isa,
            "GS": self._on_gs,
            "ST": self._on_st,
            "SE": self._on_se,
            "GE": self._on_ge,
            "IEA": self._on_iea,
        }

    def read(self, segment: Segment) -> None:
        """Opens or closes the envelope of one of the `ENVELOPE_SEGMENTS`."""
        if self._headers is None:
            self._headers = _headers_from(segment.id)
        if segment.id not in self._headers and _header_of(segment.id) not in self._headers:
            raise _broken(segment, f"in a file that starts with {_outermost(self._headers)}")
        self._handlers[segment.id](segment)

    def close(self, last_segment: Segment | None) -> None:
        """Ends the file after `last_segment`: all envelopes must be closed."""
        open_levels = [
            (trailer, name)
            for (_, trailer, name), envelope in zip(
                _LEVELS, (self._interchange, self._group, self._transaction), strict=True
            )
            if envelope is not None
        ]
        if not open_levels:
            return
        open_levels.reverse()
        after = f" after {last_segment.label()}" if last_segment is not None else ""
        close = "closes" if len(open_levels) == 1 else "close"
        raise FileError(
            f"the file ends{after} without the {_listed([t for t, _ in open_levels])} that "
            f"{close} its {_listed([n for _, n in open_levels])}; it may be truncated",
            code="TRUNCATED_FILE",
            line_number=last_segment.number if last_segment is not None else 0,
        )

    def _on_isa(self, segment: Segment) -> None:
        if self._interchange is not None:
            raise _broken(segment, "before the IEA of the previous interchange")
        self._interchange = _Interchange(control_number=segment.element(13))

    def _on_gs(self, segment: Segment) -> None:
        if self._group is not None or (self._interchange is None and self._headers != _FROM_GS):
            raise _broken(segment, "outside an interchange or inside a group")
        if self._interchange is not None:
            self._interchange.group_count += 1
        self._group = _Group(control_number=segment.element(6))
        self._check_version(segment, 8)

    def _on_st(self, segment: Segment) -> None:
        if self._transaction is not None or (self._group is None and self._headers != _FROM_ST):
            raise _broken(segment, "outside a functional group or inside a transaction")
        transaction_set = segment.element(1)
        if transaction_set != "835":
            raise FileError(
                f"segment {segment.number}: transaction set {echo(transaction_set)!r} is not "
                "an 835 remittance advice",
                code="NOT_835",
                line_number=segment.number,
            )
        # ST03 came with 5010: a 4010 transaction has none, and its group names the version.
        if segment.element(3):
            self._check_version(segment, 3)
        if self._group is not None:
            self._group.transaction_count += 1
        self._transaction = _Transaction(
            first_segment=segment.number, control_number=segment.element(2)
        )

    def _on_se(self, segment: Segment) -> None:
        transaction = self._transaction
        if transaction is None:
            raise _broken(segment, "without its ST")
        # A wrong count is a warning, not a refusal: every segment between ST and SE was
        # read and judged on its own, and a cut file is caught by its missing trailers.
        count = str(segment.number - transaction.first_segment + 1)
        self._check_trailer(segment, "SEGMENT_COUNT_MISMATCH", 1, count, "segment count")
        self._check_trailer(
            segment, "CONTROL_NUMBER_MISMATCH", 2, transaction.control_number, "ST02"
        )
        self._transaction = None

    def _on_ge(self, segment: Segment) -> None:
        group = self._group
        if group is None or self._transaction is not None:
            raise _broken(segment, "without its GS or before the SE")
        count = str(group.transaction_count)
        self._check_trailer(segment, "TRANSACTION_COUNT_MISMATCH", 1, count, "ST count")
        self._check_trailer(segment, "CONTROL_NUMBER_MISMATCH", 2, group.control_number, "GS06")
        self._group = None

    def _on_iea(self, segment: Segment) -> None:
        interchange = self._interchange
        if interchange is None or self._group is not None:
            raise _broken(segment, "before the GE")
        count = str(interchange.group_count)
        self._check_trailer(segment, "GROUP_COUNT_MISMATCH", 1, count, "GS count")
        self._check_trailer(
            segment, "CONTROL_NUMBER_MISMATCH", 2, interchange.control_number, "ISA13"
        )
        self._interchange = None

    def _check_version(self, segment: Segment, index: int) -> None:
        """Refuses another X12 version than 5010 (its 835 differs); warns of another 5010
        guide than the 835's, whose segments are read as the 835's."""
        version = segment.element(index)
        if version.startswith(_READ_GUIDE):
            return
        reference = f"{segment.id}{index:02d}"
        found = _VERSION.match(version)
        if found is not None and found[1][:3] != "501":
            raise FileError(
                f"{segment.label()}: {reference} is {echo(version)!r}, X12 version "
                f"{found[1]:0<4}; only 835 files of version 005010X221A1 (5010) can be read, so "
                "ask the sender for a 5010 file",
                code="UNSUPPORTED_VERSION",
                line_number=segment.number,
            )
        subject = "group" if segment.id == "GS" else "transaction"
        self._warn(
            UploadWarning(
                "UNEXPECTED_VERSION",
                f"{reference} is {echo(version)!r}; the {subject} is read as 005010X221A1",
                segment.number,
            )
        )

    def _check_trailer(
        self, segment: Segment, code: str, index: int, expected: str, meaning: str
    ) -> None:
        actual = segment.element(index)
        if _same_number(actual, expected):
            return
        reference = f"{segment.id}{index:02d}"
        message = f"{reference} is {echo(actual)!r} but the {meaning} is {expected!r}"
        self._warn(UploadWarning(code, message, segment.number))


_FROM_ISA = frozenset({"ISA", "GS", "ST"})
_FROM_GS = frozenset({"GS", "ST"})
_FROM_ST = frozenset({"ST"})


def _headers_from(first_id: str) -> frozenset[str]:
    """The headers a file that starts with `first_id` may hold. A file that starts with any
    other segment is held to the whole ISA nesting, which refuses that segment."""
    return {"GS": _FROM_GS, "ST": _FROM_ST}.get(first_id, _FROM_ISA)


def _header_of(trailer: str) -> str:
    return next((header for header, closing, _ in _LEVELS if closing == trailer), trailer)


def _outermost(headers: frozenset[str]) -> str:
    return next(header for header, _, _ in _LEVELS if header in headers)


def _listed(words: list[str]) -> str:
    """`SE`, `SE and GE`, `SE, GE and IEA`."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _broken(segment: Segment, problem: str) -> FileError:
    return FileError(
        f"segment {segment.number}: {segment.id} {problem}; the envelopes are broken",
        code="BAD_ENVELOPE",
        line_number=segment.number,
    )


def _same_number(actual: str, expected: str) -> bool:
    """Trailer counts and control numbers match as numbers (`0001` is `1`), else as text."""
    if actual.isascii() and actual.isdigit() and expected.isascii() and expected.isdigit():
        return int(actual) == int(expected)
    return actual == expected

"""The envelopes of an X12 835 file, checked segment by segment: ISA > GS > ST .. SE < GE < IEA.

`FileError` when the envelopes are out of order, a transaction is not an 835, or the file
ends with an envelope open (a truncated file). `UploadWarning` when a trailer's count or
control number does not match its header, or a group declares another version than
005010X221A1: the file is still read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.ingest.records import FileError, UploadWarning
from services.ingest.x12_segments import Segment, echo, file_ends_inside_envelope

ENVELOPE_SEGMENTS = frozenset({"ISA", "GS", "ST", "SE", "GE", "IEA"})


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
        self._handlers[segment.id](segment)

    def close(self, segment_count: int) -> None:
        """Ends the file after its `segment_count` segments: all envelopes must be closed."""
        if self._interchange is not None:
            raise file_ends_inside_envelope(segment_count)

    def _on_isa(self, segment: Segment) -> None:
        if self._interchange is not None:
            raise _broken(segment, "before the IEA of the previous interchange")
        self._interchange = _Interchange(control_number=segment.element(13))

    def _on_gs(self, segment: Segment) -> None:
        if self._interchange is None or self._group is not None:
            raise _broken(segment, "outside an interchange or inside a group")
        self._interchange.group_count += 1
        self._group = _Group(control_number=segment.element(6))
        version = segment.element(8)
        if not version.startswith("005010X221"):
            self._warn(
                UploadWarning(
                    "UNEXPECTED_VERSION",
                    f"GS08 is {echo(version)!r}; the group is read as 005010X221A1",
                    segment.number,
                )
            )

    def _on_st(self, segment: Segment) -> None:
        if self._group is None or self._transaction is not None:
            raise _broken(segment, "outside a functional group or inside a transaction")
        transaction_set = segment.element(1)
        if transaction_set != "835":
            raise FileError(
                f"transaction set {echo(transaction_set)!r} is not an 835 remittance advice",
                code="NOT_835",
                line_number=segment.number,
            )
        self._group.transaction_count += 1
        self._transaction = _Transaction(
            first_segment=segment.number, control_number=segment.element(2)
        )

    def _on_se(self, segment: Segment) -> None:
        transaction = self._transaction
        if transaction is None:
            raise _broken(segment, "without its ST")
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

    def _check_trailer(
        self, segment: Segment, code: str, index: int, expected: str, meaning: str
    ) -> None:
        actual = segment.element(index)
        if _same_number(actual, expected):
            return
        reference = f"{segment.id}{index:02d}"
        message = f"{reference} is {echo(actual)!r} but the {meaning} is {expected!r}"
        self._warn(UploadWarning(code, message, segment.number))


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

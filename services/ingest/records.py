"""What the parsers produce: claims as Upstream keeps them, rejected rows, and warnings.

Pure data, shared by the CSV and X12 835 parsers and the loader. Amounts are integer cents
(exact, and cheap to sum); dates are calendar dates. Nothing here names a patient: parsers
drop patient names and member ids before a record is built.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import itertools
import re
from dataclasses import dataclass
from typing import NamedTuple


class ClaimStatus(enum.StrEnum):
    PAID = "PAID"
    PARTIAL = "PARTIAL"
    DENIED = "DENIED"
    PENDING = "PENDING"
    REVERSED = "REVERSED"


# CAS01 group codes, and the shape of a Claim Adjustment Reason Code (`45`, `A2`, `B22`,
# `P24`), as an 835 CAS segment has them; a CSV export's adjustment columns are read alike.
ADJUSTMENT_GROUPS = frozenset({"CO", "PR", "OA", "PI", "CR"})
CARC = re.compile(r"[A-Z0-9]{1,5}")
# Longer than any real claim id (an 835's CLP01 holds at most 38), and short enough that a
# list sorted by claim id always fits its page token.
MAX_CLAIM_ID_LENGTH = 50

_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=4096)
def name_key(raw_name: str) -> str:
    """How payer names are compared: case and spacing do not matter."""
    return _SPACES.sub(" ", raw_name.strip()).upper()


class Adjustment(NamedTuple):
    """One CAS adjustment: group code (CO, PR, OA, PI, CR), CARC reason code, amount. A
    named tuple: claims' adjustments are hashed (as cache keys) once per row of large files."""

    group_code: str
    reason_code: str
    amount_cents: int
    # 0 for a claim-level adjustment, else the 1-based service line it belongs to.
    line_number: int = 0


@dataclass(frozen=True, slots=True)
class ServiceLine:
    """One SVC line of an 835 claim (CSV claims have one implicit line)."""

    procedure_code: str
    billed_cents: int
    paid_cents: int
    # AMT*B6 allowed amount of the line; None when the payer did not send one.
    allowed_cents: int | None = None


@dataclass(slots=True)
class ClaimRecord:
    """One adjudicated (or pending) claim from an upload."""

    # Where it came from: the CSV line number, or the 835 segment number of its CLP.
    source_line: int
    claim_id: str
    payer_name: str
    payer_id: str = ""
    status: ClaimStatus = ClaimStatus.PAID
    # False when the file states no status (a CSV without one): the denial rules derive it.
    status_stated: bool = True
    procedure_codes: tuple[str, ...] = ()
    service_date: dt.date | None = None
    # When the payer received the claim (CSV submitted_date; 835 DTM*050).
    submitted_date: dt.date | None = None
    # When the payer decided (CSV decision_date; 835 BPR16 or DTM*405). None while pending.
    decision_date: dt.date | None = None
    billed_cents: int = 0
    allowed_cents: int | None = None
    paid_cents: int = 0
    patient_responsibility_cents: int = 0
    adjustments: tuple[Adjustment, ...] = ()
    lines: tuple[ServiceLine, ...] = ()
    # CLP07: the payer's own claim number; a reversal (CLP02 = 22) names the claim it undoes.
    payer_claim_control_number: str = ""
    # Set by the denial rules (services.ingest.denials), not by the parsers.
    denied: bool = False
    partially_denied: bool = False
    # The lines of the CSV rows combined into this claim, when more than one.
    source_lines: tuple[int, ...] = ()

    @property
    def rows(self) -> int:
        """How many rows of the file the record was read from."""
        return len(self.source_lines) or 1


@dataclass(slots=True)
class ClaimColumns:
    """Claims of one CSV row each, as columns: each field of ClaimRecord a list with one
    entry per claim, in file order. Plain text of a large export is read and encoded this way
    (a million rows make no million objects); `records` gives the same claims as records."""

    source_line: list[int]
    claim_id: list[str]
    payer_name: list[str]
    payer_id: list[str]
    status: list[ClaimStatus]
    status_stated: list[bool]
    procedure_codes: list[tuple[str, ...]]
    service_date: list[dt.date | None]
    submitted_date: list[dt.date | None]
    decision_date: list[dt.date | None]
    billed_cents: list[int]
    allowed_cents: list[int | None]
    paid_cents: list[int]
    patient_responsibility_cents: list[int]
    adjustments: list[tuple[Adjustment, ...]]
    payer_claim_control_number: list[str]
    # Set by the denial rules (`denials.classify_columns`), as on a record.
    denied: list[bool] | None = None
    partially_denied: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.source_line)

    def records(self) -> list[ClaimRecord]:
        rows = len(self)
        denied = self.denied if self.denied is not None else [False] * rows
        partially = self.partially_denied if self.partially_denied is not None else [False] * rows
        return list(
            map(
                ClaimRecord,
                self.source_line, self.claim_id, self.payer_name, self.payer_id, self.status,
                self.status_stated, self.procedure_codes, self.service_date,
                self.submitted_date, self.decision_date, self.billed_cents, self.allowed_cents,
                self.paid_cents, self.patient_responsibility_cents, self.adjustments,
                itertools.repeat((), rows), self.payer_claim_control_number, denied, partially,
            )
        )  # fmt: skip

    def record(self, row: int) -> ClaimRecord:
        """The claim of one row (negative: from the end)."""
        return self.sliced(row, row + 1 or None).records()[0]

    def sliced(self, start: int, stop: int | None) -> ClaimColumns:
        """The claims of rows `start` to `stop` (as a slice)."""
        cut = slice(start, stop)
        return ClaimColumns(
            *(getattr(self, name)[cut] for name in _COLUMN_FIELDS),
            *(None if (v := getattr(self, name)) is None else v[cut] for name in _VERDICTS),
        )


_COLUMN_FIELDS = tuple(ClaimColumns.__dataclass_fields__)[:-2]
_VERDICTS = ("denied", "partially_denied")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row or claim that could not be taken, and why, in words a person understands."""

    line_number: int
    reason: str
    # Machine-readable kind, e.g. "BAD_DATE", "MISSING_FIELD", "BAD_SEGMENT".
    code: str
    column: str = ""
    raw_value: str = ""
    # For 835 files: the segment number (1-based, counted from the file start).
    segment_number: int = 0


@dataclass(frozen=True, slots=True)
class UploadWarning:
    """Something off that did not stop the upload (a non-compliant but clear 835 segment,
    a file decoded as Windows-1252, an unknown column that was ignored)."""

    code: str
    message: str
    line_number: int = 0


ParsedItem = ClaimRecord | ClaimColumns | Rejection | UploadWarning


class FileError(ValueError):
    """The file as a whole cannot be read (wrong format, no header, broken envelope)."""

    def __init__(self, message: str, *, code: str, line_number: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.line_number = line_number


@dataclass
class ParseLimits:
    """Bounds that keep a hostile file from exhausting memory."""

    max_line_bytes: int = 64 * 1024
    max_columns: int = 200
    max_segment_bytes: int = 64 * 1024
    # Lines of one claim: the SVC loops of an 835 claim, the rows of a CSV claim.
    max_claim_lines: int = 999

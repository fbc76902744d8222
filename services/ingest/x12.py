"""X12 835 (005010X221A1) remittance advice to claims, streamed segment by segment.

The parser is push-based: `feed` takes the file text in chunks of any size and returns the
claims, rejections and warnings the text completed; `close` ends the file. It holds only the
segment being read, the open envelopes and the current claim, so memory stays flat for any
file size. Segment numbers count from the file's first ISA (1-based), across interchanges.

Patient and subscriber data (NM1*QC/IL/74, MIA, MOA, claim and line REFs) are skipped
unread, so no patient name or member id can reach a record, a warning or a rejection.

How the parser judges a file:
- `FileError` when the file as a whole cannot be read: no ISA header, an ISA that is not
  106 characters, binary data, a segment over `ParseLimits.max_segment_bytes`, envelopes out
  of order, or envelopes still open at the end (a truncated file).
- `Rejection` of one claim when its meaning is unclear: a missing claim id, an unknown CLP02
  status, an amount that is not dollars and cents, a CAS group code outside CO/PR/OA/PI/CR,
  an invalid date, no payer in the transaction.
- `UploadWarning` where a segment breaks the standard but its meaning is clear: the parser
  reads it as meant and says so. A service line without a readable procedure code is left
  out this way: the claim's own amounts and status are still clear.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from services.ingest.records import (
    Adjustment,
    ClaimRecord,
    ClaimStatus,
    FileError,
    ParsedItem,
    ParseLimits,
    Rejection,
    ServiceLine,
    UploadWarning,
)

_ISA_LENGTH = 106
# Widths of ISA01..ISA16. The ISA is fixed-length so that its delimiters can be found before
# they are known: element separator at index 3, ISA11 at 82, ISA16 at 104, terminator at 105.
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
_ISA_BODY = _ISA_LENGTH - 1
_NOT_BLANK = re.compile(r"[^ \t\r\n]")
_SEGMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9]{1,2}")
# X12 decimal (R) amounts: an optional minus, digits, an optional point; never exponents.
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE = re.compile(r"[0-9]{8}")
# Claim Adjustment Reason Codes: `45`, `A2`, `B22`, `P24`.
_CARC = re.compile(r"[A-Z0-9]{1,5}")
# A composite written with another separator than ISA16, e.g. `HC>99213` under ISA16 `:`.
_FOREIGN_COMPOSITE = re.compile(r"([A-Z0-9]{2})([^A-Za-z0-9\s])(.+)")
# Dollars beyond this many digits do not fit a BIGINT of cents and are no real claim.
_MAX_DOLLAR_DIGITS = 15
_MAX_RAW_VALUE = 100
_MAX_ECHO = 40
# Every line may carry two full CAS segments on average; more is a hostile file.
_ADJUSTMENTS_PER_LINE = 12

_CLAIM_STATUSES = {
    "1": ClaimStatus.PAID,  # processed as primary
    "2": ClaimStatus.PAID,  # processed as secondary
    "3": ClaimStatus.PAID,  # processed as tertiary
    "19": ClaimStatus.PAID,  # processed as primary, forwarded to additional payer(s)
    "20": ClaimStatus.PAID,  # processed as secondary, forwarded
    "21": ClaimStatus.PAID,  # processed as tertiary, forwarded
    "4": ClaimStatus.DENIED,
    "22": ClaimStatus.REVERSED,
}
# Statuses that are no decision on the claim by this payer, so they would skew its rates.
_SKIPPED_STATUSES = {
    "23": (
        "NOT_OUR_CLAIM",
        "the payer says the claim is not theirs and forwarded it (CLP02 = 23)",
    ),
    "25": (
        "PREDETERMINATION",
        "the claim is a predetermination of benefits, not a payment decision (CLP02 = 25)",
    ),
}
_ADJUSTMENT_GROUPS = frozenset({"CO", "PR", "OA", "PI", "CR"})
_CLAIM_DATES = frozenset({"050", "232"})
_LINE_DATES = frozenset({"150", "151", "472"})
_ENVELOPE_SEGMENTS = frozenset({"ISA", "GS", "ST", "SE", "GE", "IEA"})
# Standard 835 segments that carry nothing Upstream keeps (or patient data it must not keep).
_UNREAD_SEGMENTS = frozenset(
    {"TRN", "CUR", "N2", "N3", "N4", "PER", "RDM", "TS3", "TS2", "NM1", "MIA", "MOA", "QTY", "LQ"}
)


@dataclass(frozen=True)
class _Syntax:
    """The delimiters one ISA header declares, and what follows from them."""

    element: str
    component: str
    terminator: str
    # Translation table dropping CR/LF: line breaks between (or inside) segments carry no
    # data unless the ISA made one of them a delimiter.
    line_breaks: dict[int, None]
    # Control characters that are not delimiters: a file holding them is binary.
    binary: re.Pattern[str]


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
    """The header of one ST..SE transaction, which every claim in it shares."""

    first_segment: int
    control_number: str
    payment_date: dt.date | None = None
    production_date: dt.date | None = None
    payer_name: str = ""
    payer_id: str = ""
    # N101 of the N1 loop being read: REF*2U names the payer only inside the N1*PR loop.
    party: str = ""
    claims_started: bool = False

    @property
    def decision_date(self) -> dt.date | None:
        return self.payment_date or self.production_date


@dataclass
class _Claim:
    """One CLP loop while it is read."""

    segment_number: int
    claim_id: str
    control_number: str
    status: ClaimStatus = ClaimStatus.PAID
    billed_cents: int = 0
    paid_cents: int = 0
    patient_responsibility_cents: int = 0
    adjustments: list[Adjustment] = field(default_factory=list)
    lines: list[ServiceLine] = field(default_factory=list)
    statement_start: dt.date | None = None
    earliest_line_date: dt.date | None = None
    received_date: dt.date | None = None
    # The first problem that makes the claim unusable; the rest of its loop is read past.
    rejection: Rejection | None = None
    # CLP02 23 or 25: read past without a record.
    skipped: bool = False
    # An SVC whose procedure code cannot be read is left out, and the segments of its loop
    # are not given to the line before it; the claim's own data is still clear.
    in_left_out_line: bool = False
    lines_left_out: bool = False

    @property
    def open(self) -> bool:
        return self.rejection is None and not self.skipped


@dataclass(frozen=True)
class _Fault:
    """Why a CAS segment could not be read, at which element."""

    element: int
    raw: str
    code: str
    problem: str


class X12Parser:
    """Streams an 835 file into `ClaimRecord`s, `Rejection`s and `UploadWarning`s."""

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self.rows_read = 0
        self._limits = limits or ParseLimits()
        # None while an ISA header is expected: at the start and after each IEA.
        self._syntax: _Syntax | None = None
        self._isa_text = ""
        self._pending: list[str] = []
        self._pending_length = 0
        self._segment_number = 0
        self._interchange: _Interchange | None = None
        self._group: _Group | None = None
        self._transaction: _Transaction | None = None
        self._claim: _Claim | None = None
        self._items: list[ParsedItem] = []
        self._handlers: dict[str, Callable[[list[str]], None]] = {
            "GS": self._on_gs,
            "ST": self._on_st,
            "SE": self._on_se,
            "GE": self._on_ge,
            "IEA": self._on_iea,
            "BPR": self._on_bpr,
            "DTM": self._on_dtm,
            "N1": self._on_n1,
            "REF": self._on_ref,
            "LX": self._on_lx,
            "CLP": self._on_clp,
            "CAS": self._on_cas,
            "SVC": self._on_svc,
            "AMT": self._on_amt,
            "PLB": self._on_plb,
        }

    def feed(self, text: str) -> list[ParsedItem]:
        """Reads the next piece of the file; returns what the segments it completed yielded."""
        self._items = []
        position = 0
        while position < len(text):
            if self._syntax is None:
                position = self._read_isa(text, position)
            else:
                position = self._read_segment(text, position, self._syntax)
        return self._items

    def close(self) -> list[ParsedItem]:
        """Ends the file: reads a last segment that lacks its terminator, checks envelopes."""
        self._items = []
        if self._syntax is not None and self._pending:
            self._read_last_segment(self._syntax)
        if self._isa_text and self._segment_number == 0:
            raise FileError(
                "the file is too short to hold an ISA header (106 characters)", code="BAD_ISA"
            )
        if self._segment_number == 0:
            raise FileError("the file is empty", code="EMPTY_FILE")
        if self._isa_text or self._interchange is not None:
            raise FileError(
                "the file ends inside an envelope (no closing SE, GE or IEA); it may be truncated",
                code="TRUNCATED_FILE",
                line_number=self._segment_number,
            )
        return self._items

    # --- Tokens: the fixed-length ISA, then segments up to the terminator -------------------

    def _read_last_segment(self, syntax: _Syntax) -> None:
        last = "".join(self._pending).translate(syntax.line_breaks).strip()
        self._pending, self._pending_length = [], 0
        if not last:
            return
        # Only a final IEA may lack its terminator; any other segment was cut off.
        if last.split(syntax.element)[0].strip().upper() != "IEA":
            raise FileError(
                "the file ends in the middle of a segment; it may be truncated",
                code="TRUNCATED_FILE",
                line_number=self._segment_number + 1,
            )
        self._segment(last, syntax)
        self._warn("MISSING_SEGMENT_TERMINATOR", "the last segment (IEA) has no terminator")

    def _read_isa(self, text: str, position: int) -> int:
        if not self._isa_text:
            found = _NOT_BLANK.search(text, position)
            position = found.start() if found else len(text)
        take = text[position : position + _ISA_LENGTH - len(self._isa_text)]
        self._isa_text += take
        if not self._isa_text.startswith("ISA"[: len(self._isa_text)]):
            if self._segment_number == 0:
                raise FileError("the file does not start with an X12 ISA header", code="NOT_X12")
            raise FileError(
                "only an ISA header may follow an IEA",
                code="BAD_ENVELOPE",
                line_number=self._segment_number + 1,
            )
        if len(self._isa_text) == _ISA_LENGTH:
            isa, self._isa_text = self._isa_text, ""
            self._start_interchange(isa)
        return position + len(take)

    def _read_segment(self, text: str, position: int, syntax: _Syntax) -> int:
        end = text.find(syntax.terminator, position)
        stop = len(text) if end == -1 else end
        # Checked before the text is copied, so a huge segment never gets into memory.
        if self._pending_length + stop - position > self._limits.max_segment_bytes:
            raise FileError(
                f"segment {self._segment_number + 1} is longer than "
                f"{self._limits.max_segment_bytes} bytes",
                code="SEGMENT_TOO_LONG",
                line_number=self._segment_number + 1,
            )
        self._pending.append(text[position:stop])
        self._pending_length += stop - position
        if end == -1:
            return stop
        raw = "".join(self._pending)
        self._pending, self._pending_length = [], 0
        self._segment(raw, syntax)
        return end + 1

    def _start_interchange(self, isa: str) -> None:
        self._segment_number += 1
        syntax = _syntax_of(isa, self._segment_number)
        fields = isa[:_ISA_BODY].split(syntax.element)
        self._interchange = _Interchange(control_number=fields[13].strip())
        self._syntax = syntax

    def _segment(self, raw: str, syntax: _Syntax) -> None:
        text = raw.translate(syntax.line_breaks)
        if not text.strip(" \t"):
            return
        self._segment_number += 1
        if syntax.binary.search(text):
            raise FileError(
                f"segment {self._segment_number} holds control characters; "
                "the file is binary or corrupt",
                code="BINARY_FILE",
                line_number=self._segment_number,
            )
        elements = text.split(syntax.element)
        segment_id = self._segment_id(elements[0])
        if segment_id is None:
            return
        elements[0] = segment_id
        self._drop_trailing_separators(elements)
        self._dispatch(segment_id, elements)

    def _segment_id(self, raw_id: str) -> str | None:
        segment_id = raw_id.strip(" \t")
        if not _SEGMENT_ID.fullmatch(segment_id):
            # The id is not echoed: a garbled segment may hold anything, a patient name too.
            self._warn("MALFORMED_SEGMENT", "the segment has no readable segment id; skipped")
            return None
        if not segment_id.isupper():
            self._warn("LOWERCASE_SEGMENT_ID", f"segment id {segment_id!r} is not upper case")
        return segment_id.upper()

    def _drop_trailing_separators(self, elements: list[str]) -> None:
        if len(elements) < 2 or elements[-1]:
            return
        self._warn(
            "TRAILING_SEPARATOR",
            f"{elements[0]} ends with empty elements (extra separators); they were ignored",
        )
        while len(elements) > 1 and not elements[-1]:
            elements.pop()

    def _dispatch(self, segment_id: str, elements: list[str]) -> None:
        if segment_id == "ISA":
            raise self._envelope_error("ISA", "before the IEA of the previous interchange")
        handler = self._handlers.get(segment_id)
        if handler is None and segment_id not in _UNREAD_SEGMENTS:
            self._warn("UNKNOWN_SEGMENT", f"{segment_id} is not an 835 segment; ignored")
        elif segment_id not in _ENVELOPE_SEGMENTS and self._transaction is None:
            self._warn("SEGMENT_OUT_OF_PLACE", f"{segment_id} outside a transaction; ignored")
        elif handler is not None:
            handler(elements)

    # --- Envelopes: ISA > GS > ST .. SE < GE < IEA --------------------------------------------

    def _on_gs(self, elements: list[str]) -> None:
        if self._interchange is None or self._group is not None:
            raise self._envelope_error("GS", "outside an interchange or inside a group")
        self._interchange.group_count += 1
        self._group = _Group(control_number=_element(elements, 6))
        version = _element(elements, 8)
        if not version.startswith("005010X221"):
            self._warn(
                "UNEXPECTED_VERSION",
                f"GS08 is {_echo(version)!r}; the group is read as 005010X221A1",
            )

    def _on_st(self, elements: list[str]) -> None:
        if self._group is None or self._transaction is not None:
            raise self._envelope_error("ST", "outside a functional group or inside a transaction")
        transaction_set = _element(elements, 1)
        if transaction_set != "835":
            raise FileError(
                f"transaction set {_echo(transaction_set)!r} is not an 835 remittance advice",
                code="NOT_835",
                line_number=self._segment_number,
            )
        self._group.transaction_count += 1
        self._transaction = _Transaction(
            first_segment=self._segment_number, control_number=_element(elements, 2)
        )

    def _on_se(self, elements: list[str]) -> None:
        transaction = self._transaction
        if transaction is None:
            raise self._envelope_error("SE", "without its ST")
        self._finish_claim()
        count = self._segment_number - transaction.first_segment + 1
        self._check_trailer("SEGMENT_COUNT_MISMATCH", elements, 1, str(count), "segment count")
        self._check_trailer(
            "CONTROL_NUMBER_MISMATCH", elements, 2, transaction.control_number, "ST02"
        )
        self._transaction = None

    def _on_ge(self, elements: list[str]) -> None:
        group = self._group
        if group is None or self._transaction is not None:
            raise self._envelope_error("GE", "without its GS or before the SE")
        count = str(group.transaction_count)
        self._check_trailer("TRANSACTION_COUNT_MISMATCH", elements, 1, count, "ST count")
        self._check_trailer("CONTROL_NUMBER_MISMATCH", elements, 2, group.control_number, "GS06")
        self._group = None

    def _on_iea(self, elements: list[str]) -> None:
        interchange = self._interchange
        if interchange is None or self._group is not None:
            raise self._envelope_error("IEA", "before the GE")
        count = str(interchange.group_count)
        self._check_trailer("GROUP_COUNT_MISMATCH", elements, 1, count, "GS count")
        self._check_trailer(
            "CONTROL_NUMBER_MISMATCH", elements, 2, interchange.control_number, "ISA13"
        )
        self._interchange = None
        # The next interchange may declare other delimiters.
        self._syntax = None

    def _check_trailer(
        self, code: str, elements: list[str], index: int, expected: str, meaning: str
    ) -> None:
        actual = _element(elements, index)
        if _same_number(actual, expected):
            return
        reference = f"{elements[0]}{index:02d}"
        self._warn(code, f"{reference} is {_echo(actual)!r} but the {meaning} is {expected!r}")

    def _envelope_error(self, segment_id: str, problem: str) -> FileError:
        return FileError(
            f"segment {self._segment_number}: {segment_id} {problem}; the envelopes are broken",
            code="BAD_ENVELOPE",
            line_number=self._segment_number,
        )

    # --- Transaction header: payment, payer --------------------------------------------------

    def _on_bpr(self, elements: list[str]) -> None:
        transaction = self._header("BPR")
        if transaction is None:
            return
        raw = _element(elements, 16)
        if not raw:
            # BPR16 is required; a sender that drops it still dates the file with DTM*405.
            self._warn(
                "MISSING_PAYMENT_DATE",
                "BPR16 (payment date) is missing; the decision date is the production date "
                "(DTM*405), if any",
            )
            return
        transaction.payment_date = _date(raw)
        if transaction.payment_date is None:
            self._warn(
                "BAD_PAYMENT_DATE",
                f"BPR16 {_echo(raw)!r} is not a CCYYMMDD date; the decision date is the "
                "production date (DTM*405), if any",
            )

    def _on_n1(self, elements: list[str]) -> None:
        transaction = self._header("N1")
        if transaction is None:
            return
        transaction.party = _element(elements, 1).upper()
        if transaction.party != "PR":
            return
        transaction.payer_name = _element(elements, 2)
        if _element(elements, 3):
            transaction.payer_id = _element(elements, 4)

    def _on_ref(self, elements: list[str]) -> None:
        transaction = self._transaction
        # Claim and line REFs (member ids among them) are never read.
        if transaction is None or transaction.claims_started or transaction.party != "PR":
            return
        if _element(elements, 1).upper() == "2U" and not transaction.payer_id:
            transaction.payer_id = _element(elements, 2)

    def _on_dtm(self, elements: list[str]) -> None:
        if self._claim is not None:
            self._claim_date(self._claim, elements)
            return
        transaction = self._header("DTM")
        qualifier, raw = _element(elements, 1), _element(elements, 2)
        if transaction is None or qualifier != "405":
            return
        transaction.production_date = _date(raw)
        if transaction.production_date is None:
            self._warn("BAD_PRODUCTION_DATE", f"DTM*405 date {_echo(raw)!r} is not CCYYMMDD")

    def _header(self, segment_id: str) -> _Transaction | None:
        """The transaction, if its header is still being read (else a warning)."""
        transaction = self._transaction
        if transaction is not None and transaction.claims_started:
            self._warn(
                "SEGMENT_OUT_OF_PLACE", f"{segment_id} after the first claim of the transaction"
            )
            return None
        return transaction

    def _start_claims(self, transaction: _Transaction) -> None:
        if transaction.claims_started:
            return
        transaction.claims_started = True
        if transaction.decision_date is None:
            self._warn(
                "NO_DECISION_DATE",
                "the transaction has no payment date (BPR16) or production date (DTM*405); "
                "its claims have no decision date",
                transaction.first_segment,
            )
        if transaction.payer_id and not transaction.payer_name:
            self._warn(
                "MISSING_PAYER_NAME",
                f"the payer (N1*PR) has no name, only the id {_echo(transaction.payer_id)!r}",
                transaction.first_segment,
            )

    # --- Claims: LX, CLP, CAS, DTM, SVC, AMT ---------------------------------------------------

    def _on_lx(self, elements: list[str]) -> None:
        self._finish_claim()
        assert self._transaction is not None
        self._start_claims(self._transaction)

    def _on_plb(self, elements: list[str]) -> None:
        # Provider-level adjustments follow the last claim and belong to none.
        self._finish_claim()

    def _on_clp(self, elements: list[str]) -> None:
        self._finish_claim()
        transaction = self._transaction
        assert transaction is not None
        self._start_claims(transaction)
        self.rows_read += 1
        claim = _Claim(
            segment_number=self._segment_number,
            claim_id=_element(elements, 1),
            control_number=_element(elements, 7),
        )
        self._claim = claim
        status = _element(elements, 2)
        if status in _SKIPPED_STATUSES:
            code, reason = _SKIPPED_STATUSES[status]
            claim.skipped = True
            self._warn(code, f"claim {_echo(claim.claim_id)!r} skipped: {reason}")
            return
        if not transaction.payer_name and not transaction.payer_id:
            self._reject(claim, "N102", "", "MISSING_FIELD", "the transaction names no payer")
        if not claim.claim_id:
            self._reject(claim, "CLP01", "", "MISSING_FIELD", "CLP01 (claim id) is missing")
        if not status:
            self._reject(claim, "CLP02", "", "MISSING_FIELD", "CLP02 (claim status) is missing")
        elif status not in _CLAIM_STATUSES:
            self._reject(claim, "CLP02", status, "BAD_STATUS", "CLP02 is not a claim status")
        claim.status = _CLAIM_STATUSES.get(status, ClaimStatus.PAID)
        claim.billed_cents = self._amount(claim, elements, 3, "billed amount")
        claim.paid_cents = self._amount(claim, elements, 4, "paid amount")
        claim.patient_responsibility_cents = self._amount(
            claim, elements, 5, "patient responsibility", required=False
        )

    def _on_cas(self, elements: list[str]) -> None:
        claim = self._claim_in_progress("CAS")
        if claim is None:
            return
        group = _element(elements, 1).upper()
        if group not in _ADJUSTMENT_GROUPS:
            self._reject(claim, "CAS01", group, "BAD_GROUP_CODE", "CAS01 is not CO/PR/OA/PI/CR")
            return
        values = [value.strip() for value in elements[2:]]
        parsed = _adjustment_values(values, step=3)
        if isinstance(parsed, _Fault):
            # Some senders leave out the empty quantity elements: reason, amount, reason, ...
            pairs = _adjustment_values(values, step=2)
            if isinstance(pairs, _Fault):
                fault = parsed
                self._reject(claim, f"CAS{fault.element:02d}", fault.raw, fault.code, fault.problem)
                return
            parsed = pairs
            self._warn(
                "CAS_WITHOUT_QUANTITIES",
                "CAS lists reason and amount pairs without quantity elements; read as pairs",
            )
        # The adjustments of a left-out line still explain the claim's payment.
        line_number = 0 if claim.in_left_out_line else len(claim.lines)
        if (
            len(claim.adjustments) + len(parsed)
            > _ADJUSTMENTS_PER_LINE * self._limits.max_claim_lines
        ):
            self._reject(claim, "CAS", "", "TOO_MANY_ADJUSTMENTS", "the claim has too many CAS")
            return
        claim.adjustments.extend(
            Adjustment(group, reason, cents, line_number) for reason, cents in parsed
        )

    def _claim_date(self, claim: _Claim, elements: list[str]) -> None:
        qualifier, raw = _element(elements, 1), _element(elements, 2)
        wanted = _LINE_DATES if claim.lines or claim.lines_left_out else _CLAIM_DATES
        if not claim.open or qualifier not in wanted:
            return
        date = _date(raw)
        if date is None:
            self._reject(claim, "DTM02", raw, "BAD_DATE", f"DTM*{qualifier} date is not CCYYMMDD")
        elif qualifier == "050":
            claim.received_date = date
        elif qualifier == "232":
            claim.statement_start = date
        elif claim.earliest_line_date is None or date < claim.earliest_line_date:
            claim.earliest_line_date = date

    def _on_svc(self, elements: list[str]) -> None:
        claim = self._claim_in_progress("SVC")
        if claim is None:
            return
        if len(claim.lines) >= self._limits.max_claim_lines:
            self._reject(
                claim,
                "SVC",
                "",
                "TOO_MANY_LINES",
                f"the claim has more than {self._limits.max_claim_lines} service lines",
            )
            return
        code = self._procedure_code(_element(elements, 1))
        claim.in_left_out_line = not code
        if not code:
            claim.lines_left_out = True
            return
        billed = self._amount(claim, elements, 2, "line charge")
        paid = self._amount(claim, elements, 3, "line payment")
        if claim.open:
            claim.lines.append(ServiceLine(code, billed, paid))

    def _procedure_code(self, composite: str) -> str:
        """The code of an SVC01 composite `HC:99213:25` (qualifier, code, modifiers), or ""
        (with a warning) when there is none to read."""
        assert self._syntax is not None
        parts = composite.split(self._syntax.component)
        foreign = _FOREIGN_COMPOSITE.fullmatch(composite) if len(parts) == 1 else None
        if foreign is not None:
            separator = foreign.group(2)
            parts = composite.split(separator)
            self._warn(
                "COMPONENT_SEPARATOR_MISMATCH",
                f"SVC01 separates its components with {separator!r}, "
                f"not the ISA16 separator {self._syntax.component!r}",
            )
        code = parts[1].strip() if len(parts) > 1 and parts[0].strip() else ""
        if not code:
            self._warn(
                "UNREADABLE_SERVICE_LINE",
                f"SVC01 {_echo(composite)!r} is not a qualifier and procedure code "
                "(e.g. HC:99213); the line is left out, its CAS adjustments count for the claim",
            )
        return code

    def _on_amt(self, elements: list[str]) -> None:
        claim = self._claim_in_progress("AMT")
        # Only the line's allowed amount is kept; claim-level AMT*AU is coverage, not allowed.
        if claim is None or _element(elements, 1).upper() != "B6" or claim.in_left_out_line:
            return
        if not claim.lines:
            self._warn("SEGMENT_OUT_OF_PLACE", "AMT*B6 (line allowed amount) before any SVC")
            return
        allowed = self._amount(claim, elements, 2, "line allowed amount")
        if claim.open:
            claim.lines[-1] = dataclasses.replace(claim.lines[-1], allowed_cents=allowed)

    def _claim_in_progress(self, segment_id: str) -> _Claim | None:
        """The claim a claim- or line-level segment adds to, if it still takes data."""
        claim = self._claim
        if claim is None:
            self._warn("SEGMENT_OUT_OF_PLACE", f"{segment_id} outside a claim (CLP) loop")
            return None
        return claim if claim.open else None

    def _amount(
        self,
        claim: _Claim,
        elements: list[str],
        index: int,
        meaning: str,
        *,
        required: bool = True,
    ) -> int:
        raw = _element(elements, index)
        reference = f"{elements[0]}{index:02d}"
        if not raw:
            if required:
                self._reject(
                    claim, reference, "", "MISSING_FIELD", f"{reference} ({meaning}) is missing"
                )
            return 0
        cents = _cents(raw)
        if cents is None:
            self._reject(
                claim,
                reference,
                raw,
                "BAD_AMOUNT",
                f"{reference} ({meaning}) is not an amount in dollars and cents",
            )
            return 0
        return cents

    def _reject(self, claim: _Claim, column: str, raw: str, code: str, problem: str) -> None:
        if claim.rejection is not None:
            return
        subject = f"claim {_echo(claim.claim_id)}: " if claim.claim_id else ""
        claim.rejection = Rejection(
            line_number=self._segment_number,
            reason=subject + problem,
            code=code,
            column=column,
            raw_value=raw[:_MAX_RAW_VALUE],
            segment_number=self._segment_number,
        )

    def _finish_claim(self) -> None:
        claim, self._claim = self._claim, None
        if claim is None or claim.skipped:
            return
        if claim.rejection is not None:
            self._items.append(claim.rejection)
            return
        assert self._transaction is not None
        self._items.append(_record(claim, self._transaction))

    def _warn(self, code: str, message: str, segment_number: int = 0) -> None:
        self._items.append(UploadWarning(code, message, segment_number or self._segment_number))


def _syntax_of(isa: str, segment_number: int) -> _Syntax:
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
    delimiters = [element, component, terminator] + ([] if repetition.isalnum() else [repetition])
    if len(set(delimiters)) < len(delimiters) or any(d.isalnum() or d == " " for d in delimiters):
        raise FileError(
            "the ISA header's delimiters must be distinct and not letters, digits or spaces",
            code="BAD_ISA",
            line_number=segment_number,
        )
    controls = {chr(code) for code in range(32)} | {"\x7f"}
    binary = sorted(controls - {"\t", "\r", "\n", *delimiters})
    syntax = _Syntax(
        element=element,
        component=component,
        terminator=terminator,
        line_breaks={ord(c): None for c in "\r\n" if c not in delimiters},
        binary=re.compile("[" + "".join(re.escape(c) for c in binary) + "]"),
    )
    if syntax.binary.search(isa):
        raise FileError(
            "the ISA header holds control characters; the file is binary or corrupt",
            code="BINARY_FILE",
            line_number=segment_number,
        )
    return syntax


def _adjustment_values(values: list[str], *, step: int) -> list[tuple[str, int]] | _Fault:
    """CAS02.. as (reason, cents): triples reason/amount/quantity (step 3) or pairs (step 2)."""
    adjustments: list[tuple[str, int]] = []
    for start in range(0, len(values), step):
        reason, amount, quantity = (*values[start : start + step], "", "", "")[:3]
        element = start + 2
        if not (reason or amount or quantity):
            continue
        fault = _adjustment_fault(element, reason, amount, quantity)
        if fault is not None:
            return fault
        cents = _cents(amount)
        assert cents is not None
        adjustments.append((reason.upper(), cents))
    if not adjustments:
        return _Fault(2, "", "MISSING_FIELD", "CAS has no reason code and amount")
    return adjustments


def _adjustment_fault(element: int, reason: str, amount: str, quantity: str) -> _Fault | None:
    if not reason:
        return _Fault(element, "", "MISSING_FIELD", "adjustment reason code is missing")
    if not _CARC.fullmatch(reason.upper()):
        return _Fault(element, reason, "BAD_CARC", "not a claim adjustment reason code")
    if not amount:
        return _Fault(element + 1, "", "MISSING_FIELD", "adjustment amount is missing")
    if _cents(amount) is None:
        return _Fault(element + 1, amount, "BAD_AMOUNT", "not an amount in dollars and cents")
    if quantity and not _NUMBER.fullmatch(quantity):
        return _Fault(element + 2, quantity, "BAD_AMOUNT", "adjustment quantity is not a number")
    return None


def _record(claim: _Claim, transaction: _Transaction) -> ClaimRecord:
    lines = tuple(claim.lines)
    allowed = [line.allowed_cents for line in lines]
    return ClaimRecord(
        source_line=claim.segment_number,
        claim_id=claim.claim_id,
        payer_name=transaction.payer_name,
        payer_id=transaction.payer_id,
        status=claim.status,
        procedure_codes=tuple(line.procedure_code for line in lines),
        service_date=claim.statement_start or claim.earliest_line_date,
        submitted_date=claim.received_date,
        decision_date=transaction.decision_date,
        billed_cents=claim.billed_cents,
        # Only a claim whose every line has an allowed amount has a known total.
        allowed_cents=(
            sum(a for a in allowed if a is not None)
            if lines and None not in allowed and not claim.lines_left_out
            else None
        ),
        paid_cents=claim.paid_cents,
        patient_responsibility_cents=claim.patient_responsibility_cents,
        adjustments=tuple(claim.adjustments),
        lines=lines,
        payer_claim_control_number=claim.control_number,
    )


def _element(elements: list[str], index: int) -> str:
    return elements[index].strip() if index < len(elements) else ""


def _cents(raw: str) -> int | None:
    """Exact cents of an X12 decimal such as `800`, `800.5`, `-45.00` or `.5`; None if it is
    not one, or has fractions of a cent."""
    if not _NUMBER.fullmatch(raw):
        return None
    dollars, _, fraction = raw.lstrip("-").partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > 2 or len(dollars.lstrip("0")) > _MAX_DOLLAR_DIGITS:
        return None
    cents = int(dollars or "0") * 100 + int(fraction.ljust(2, "0"))
    return -cents if raw.startswith("-") else cents


def _date(raw: str) -> dt.date | None:
    if not _DATE.fullmatch(raw):
        return None
    try:
        return dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return None


def _same_number(actual: str, expected: str) -> bool:
    """Trailer counts and control numbers match as numbers (`0001` is `1`), else as text."""
    if actual.isascii() and actual.isdigit() and expected.isascii() and expected.isdigit():
        return int(actual) == int(expected)
    return actual == expected


def _echo(value: str) -> str:
    """A value from a non-patient element, cut short for a message."""
    return value[:_MAX_ECHO]

"""One 835 remittance advice (an ST..SE transaction of 005010X221A1) to claims.

`RemittanceReader` takes the segments between a transaction's ST and its SE: the header
(BPR payment date, DTM*405 production date, N1*PR payer with REF*2U), then the claims (LX,
CLP with its CAS, DTM, SVC and AMT). It holds only the header and the claim being read.

Patient and subscriber data (NM1*QC/IL/74, MIA, MOA, claim and line REFs) are skipped
unread, so no patient name or member id can reach a record, a warning or a rejection.

How a claim is judged:
- `Rejection` of the claim when its meaning is unclear: a missing claim id, an unknown CLP02
  status, an amount that is not dollars and cents, a CAS group code outside CO/PR/OA/PI/CR,
  an invalid date, no payer in the transaction.
- `UploadWarning` where a segment breaks the standard but its meaning is clear: the reader
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
    ADJUSTMENT_GROUPS,
    CARC,
    MAX_CLAIM_ID_LENGTH,
    Adjustment,
    ClaimRecord,
    ClaimStatus,
    ParsedItem,
    ParseLimits,
    Rejection,
    ServiceLine,
    UploadWarning,
)
from services.ingest.x12_segments import Segment, echo

# X12 decimal (R) amounts: an optional minus, digits, an optional point; never exponents.
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE = re.compile(r"[0-9]{8}")
# A composite written with another separator than ISA16, e.g. `HC>99213` under ISA16 `:`.
_FOREIGN_COMPOSITE = re.compile(r"([A-Z0-9]{2})([^A-Za-z0-9\s])(.+)")
# Dollars beyond this many digits do not fit a BIGINT of cents and are no real claim.
_MAX_DOLLAR_DIGITS = 15
_MAX_RAW_VALUE = 100
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
_CLAIM_DATES = frozenset({"050", "232"})
_LINE_DATES = frozenset({"150", "151", "472"})
# The 835 segments the reader takes data from.
_READ_SEGMENTS = frozenset({"BPR", "DTM", "N1", "REF", "LX", "CLP", "CAS", "SVC", "AMT", "PLB"})
# Standard 835 segments that carry nothing Upstream keeps (or patient data it must not keep).
_UNREAD_SEGMENTS = frozenset(
    {"TRN", "CUR", "N2", "N3", "N4", "PER", "RDM", "TS3", "TS2", "NM1", "MIA", "MOA", "QTY", "LQ"}
)


@dataclass
class _Header:
    """The header of the transaction, which every claim in it shares."""

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


class RemittanceReader:
    """Reads one 835 transaction into `ClaimRecord`s, `Rejection`s and `UploadWarning`s,
    handed to `emit` in the order of the segments that complete them."""

    def __init__(
        self,
        first_segment: int,
        component_separator: str,
        limits: ParseLimits,
        emit: Callable[[ParsedItem], None],
    ) -> None:
        """`first_segment` is the number of the ST; `component_separator` is the ISA16 of
        the interchange, or "" when the file has no ISA to declare one."""
        self.claims_read = 0
        self._first_segment = first_segment
        self._component_separator = component_separator
        self._limits = limits
        self._emit = emit
        self._segment_number = first_segment
        self._header = _Header()
        self._claim: _Claim | None = None
        self._handlers: dict[str, Callable[[Segment], None]] = {
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

    def read(self, segment: Segment) -> None:
        """Reads the next segment of the transaction (not its ST or SE)."""
        self._segment_number = segment.number
        handler = self._handlers.get(segment.id)
        if handler is not None:
            handler(segment)
        elif segment.id not in _UNREAD_SEGMENTS:
            self._warn("UNKNOWN_SEGMENT", f"{segment.id} is not an 835 segment; ignored")

    def finish(self) -> None:
        """Ends the transaction (at its SE): the claim being read is complete."""
        self._finish_claim()

    # --- Transaction header: payment, payer --------------------------------------------------

    def _on_bpr(self, segment: Segment) -> None:
        if not self._in_header("BPR"):
            return
        raw = segment.element(16)
        if not raw:
            # BPR16 is required; a sender that drops it still dates the file with DTM*405.
            self._warn(
                "MISSING_PAYMENT_DATE",
                "BPR16 (payment date) is missing; the decision date is the production date "
                "(DTM*405), if any",
            )
            return
        self._header.payment_date = _date(raw)
        if self._header.payment_date is None:
            self._warn(
                "BAD_PAYMENT_DATE",
                f"BPR16 {echo(raw)!r} is not a CCYYMMDD date; the decision date is the "
                "production date (DTM*405), if any",
            )

    def _on_n1(self, segment: Segment) -> None:
        if not self._in_header("N1"):
            return
        header = self._header
        header.party = segment.element(1).upper()
        if header.party != "PR":
            return
        header.payer_name = segment.element(2)
        if segment.element(3):
            header.payer_id = segment.element(4)

    def _on_ref(self, segment: Segment) -> None:
        header = self._header
        # Claim and line REFs (member ids among them) are never read.
        if header.claims_started or header.party != "PR":
            return
        if segment.element(1).upper() == "2U" and not header.payer_id:
            header.payer_id = segment.element(2)

    def _on_dtm(self, segment: Segment) -> None:
        if self._claim is not None:
            self._claim_date(self._claim, segment)
            return
        in_header = self._in_header("DTM")
        qualifier, raw = segment.element(1), segment.element(2)
        if not in_header or qualifier != "405":
            return
        self._header.production_date = _date(raw)
        if self._header.production_date is None:
            self._warn("BAD_PRODUCTION_DATE", f"DTM*405 date {echo(raw)!r} is not CCYYMMDD")

    def _in_header(self, segment_id: str) -> bool:
        """Whether the header is still being read (else a warning)."""
        if self._header.claims_started:
            self._warn(
                "SEGMENT_OUT_OF_PLACE", f"{segment_id} after the first claim of the transaction"
            )
            return False
        return True

    def _start_claims(self) -> None:
        header = self._header
        if header.claims_started:
            return
        header.claims_started = True
        if header.decision_date is None:
            self._warn(
                "NO_DECISION_DATE",
                "the transaction has no payment date (BPR16) or production date (DTM*405); "
                "its claims have no decision date",
                self._first_segment,
            )
        if header.payer_id and not header.payer_name:
            self._warn(
                "MISSING_PAYER_NAME",
                f"the payer (N1*PR) has no name, only the id {echo(header.payer_id)!r}",
                self._first_segment,
            )

    # --- Claims: LX, CLP, CAS, DTM, SVC, AMT ---------------------------------------------------

    def _on_lx(self, segment: Segment) -> None:
        self._finish_claim()
        self._start_claims()

    def _on_plb(self, segment: Segment) -> None:
        # Provider-level adjustments follow the last claim and belong to none.
        self._finish_claim()

    def _on_clp(self, segment: Segment) -> None:
        self._finish_claim()
        self._start_claims()
        self.claims_read += 1
        claim = _Claim(
            segment_number=self._segment_number,
            claim_id=segment.element(1),
            control_number=segment.element(7),
        )
        self._claim = claim
        status = segment.element(2)
        if status in _SKIPPED_STATUSES:
            code, reason = _SKIPPED_STATUSES[status]
            claim.skipped = True
            self._warn(code, f"claim {echo(claim.claim_id)!r} skipped: {reason}")
            return
        if not self._header.payer_name and not self._header.payer_id:
            self._reject(claim, "N102", "", "MISSING_FIELD", "the transaction names no payer")
        if not claim.claim_id:
            self._reject(claim, "CLP01", "", "MISSING_FIELD", "CLP01 (claim id) is missing")
        elif len(claim.claim_id) > MAX_CLAIM_ID_LENGTH:
            self._reject(
                claim,
                "CLP01",
                claim.claim_id,
                "TOO_LONG",
                f"CLP01 (claim id) is longer than {MAX_CLAIM_ID_LENGTH} characters",
            )
        if not status:
            self._reject(claim, "CLP02", "", "MISSING_FIELD", "CLP02 (claim status) is missing")
        elif status not in _CLAIM_STATUSES:
            self._reject(claim, "CLP02", status, "BAD_STATUS", "CLP02 is not a claim status")
        claim.status = _CLAIM_STATUSES.get(status, ClaimStatus.PAID)
        claim.billed_cents = self._amount(claim, segment, 3, "billed amount")
        claim.paid_cents = self._amount(claim, segment, 4, "paid amount")
        claim.patient_responsibility_cents = self._amount(
            claim, segment, 5, "patient responsibility", required=False
        )

    def _on_cas(self, segment: Segment) -> None:
        claim = self._claim_in_progress("CAS")
        if claim is None:
            return
        group = segment.element(1).upper()
        if group not in ADJUSTMENT_GROUPS:
            self._reject(claim, "CAS01", group, "BAD_GROUP_CODE", "CAS01 is not CO/PR/OA/PI/CR")
            return
        values = [value.strip() for value in segment.elements[2:]]
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

    def _claim_date(self, claim: _Claim, segment: Segment) -> None:
        qualifier, raw = segment.element(1), segment.element(2)
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

    def _on_svc(self, segment: Segment) -> None:
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
        code = self._procedure_code(segment.element(1))
        claim.in_left_out_line = not code
        if not code:
            claim.lines_left_out = True
            return
        billed = self._amount(claim, segment, 2, "line charge")
        paid = self._amount(claim, segment, 3, "line payment")
        if claim.open:
            claim.lines.append(ServiceLine(code, billed, paid))

    def _procedure_code(self, composite: str) -> str:
        """The code of an SVC01 composite `HC:99213:25` (qualifier, code, modifiers), or ""
        (with a warning) when there is none to read."""
        declared = self._component_separator
        parts = composite.split(declared) if declared else [composite]
        foreign = _FOREIGN_COMPOSITE.fullmatch(composite) if len(parts) == 1 else None
        if foreign is not None:
            separator = foreign.group(2)
            parts = composite.split(separator)
            if declared:
                self._warn(
                    "COMPONENT_SEPARATOR_MISMATCH",
                    f"SVC01 separates its components with {separator!r}, "
                    f"not the ISA16 separator {declared!r}",
                )
        code = parts[1].strip() if len(parts) > 1 and parts[0].strip() else ""
        if not code:
            self._warn(
                "UNREADABLE_SERVICE_LINE",
                f"SVC01 {echo(composite)!r} is not a qualifier and procedure code "
                "(e.g. HC:99213); the line is left out, its CAS adjustments count for the claim",
            )
        return code

    def _on_amt(self, segment: Segment) -> None:
        claim = self._claim_in_progress("AMT")
        # Only the line's allowed amount is kept; claim-level AMT*AU is coverage, not allowed.
        if claim is None or segment.element(1).upper() != "B6" or claim.in_left_out_line:
            return
        if not claim.lines:
            self._warn("SEGMENT_OUT_OF_PLACE", "AMT*B6 (line allowed amount) before any SVC")
            return
        allowed = self._amount(claim, segment, 2, "line allowed amount")
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
        segment: Segment,
        index: int,
        meaning: str,
        *,
        required: bool = True,
    ) -> int:
        raw = segment.element(index)
        reference = f"{segment.id}{index:02d}"
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
        subject = f"claim {echo(claim.claim_id)}: " if claim.claim_id else ""
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
            self._emit(claim.rejection)
            return
        self._emit(_record(claim, self._header))

    def _warn(self, code: str, message: str, segment_number: int = 0) -> None:
        self._emit(UploadWarning(code, message, segment_number or self._segment_number))


def stray_segment_warning(segment: Segment) -> UploadWarning:
    """What a segment outside any transaction is told: it is ignored."""
    if segment.id in _READ_SEGMENTS or segment.id in _UNREAD_SEGMENTS:
        message = f"{segment.id} outside a transaction; ignored"
        return UploadWarning("SEGMENT_OUT_OF_PLACE", message, segment.number)
    message = f"{segment.id} is not an 835 segment; ignored"
    return UploadWarning("UNKNOWN_SEGMENT", message, segment.number)


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
    if not CARC.fullmatch(reason.upper()):
        return _Fault(element, reason, "BAD_CARC", "not a claim adjustment reason code")
    if not amount:
        return _Fault(element + 1, "", "MISSING_FIELD", "adjustment amount is missing")
    if _cents(amount) is None:
        return _Fault(element + 1, amount, "BAD_AMOUNT", "not an amount in dollars and cents")
    if quantity and not _NUMBER.fullmatch(quantity):
        return _Fault(element + 2, quantity, "BAD_AMOUNT", "adjustment quantity is not a number")
    return None


def _record(claim: _Claim, header: _Header) -> ClaimRecord:
    lines = tuple(claim.lines)
    allowed = [line.allowed_cents for line in lines]
    return ClaimRecord(
        source_line=claim.segment_number,
        claim_id=claim.claim_id,
        payer_name=header.payer_name,
        payer_id=header.payer_id,
        status=claim.status,
        procedure_codes=tuple(line.procedure_code for line in lines),
        service_date=claim.statement_start or claim.earliest_line_date,
        submitted_date=claim.received_date,
        decision_date=header.decision_date,
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

"""The rows of a line-level export combined into the claims they describe.

Most billing exports write one row per service line, the claim id repeated on each. The rows
of one claim (same claim id and payer) in one upload are one claim: amounts summed,
procedure codes collected once each in order of appearance, each row's adjustments kept on
its line, service and submission dates the earliest, decision date the latest. Rows of one
claim id that name different payers, or more rows than a claim may have, are refused whole.

`combine` gives the same claim whatever pieces the rows arrive in, taken in line order: the
CSV parser combines adjacent rows, an upload combines a chunk's rows and, at the end, the
pieces of claims whose rows lay further apart (`claim_writes`).
"""

from __future__ import annotations

import datetime as dt

from services.ingest.denials import classify
from services.ingest.records import (
    Adjustment,
    ClaimRecord,
    ClaimStatus,
    Rejection,
    ServiceLine,
    name_key,
)

_DECIDED = (ClaimStatus.PAID, ClaimStatus.DENIED, ClaimStatus.PARTIAL, ClaimStatus.REVERSED)


def payer_of(claim: ClaimRecord) -> tuple[str, str]:
    """The payer as rows of one claim must agree on it: its name (case and spacing aside)
    and its id."""
    return name_key(claim.payer_name), claim.payer_id


def same_claim(first: ClaimRecord, later: ClaimRecord) -> bool:
    """Whether two records are lines of one claim. A reversal undoes another claim and is
    never combined with lines that are not reversals."""
    return (
        first.claim_id == later.claim_id
        and (first.status is ClaimStatus.REVERSED) == (later.status is ClaimStatus.REVERSED)
        and payer_of(first) == payer_of(later)
    )


def combine(first: ClaimRecord, later: ClaimRecord) -> ClaimRecord:
    """The claim the lines of `first` and then those of `later` make, classified."""
    first_lines, first_adjustments = _lines(first)
    later_lines, later_adjustments = _lines(later)
    offset = len(first_lines)
    status, stated = _status(first, later)
    allowed = (
        None
        if first.allowed_cents is None or later.allowed_cents is None
        else first.allowed_cents + later.allowed_cents
    )
    claim = ClaimRecord(
        source_line=first.source_line,
        claim_id=first.claim_id,
        payer_name=first.payer_name,
        payer_id=first.payer_id,
        status=status,
        status_stated=stated,
        procedure_codes=tuple(dict.fromkeys(first.procedure_codes + later.procedure_codes)),
        service_date=_earliest(first.service_date, later.service_date),
        submitted_date=_earliest(first.submitted_date, later.submitted_date),
        decision_date=(
            None
            if status is ClaimStatus.PENDING
            else _latest(first.decision_date, later.decision_date)
        ),
        billed_cents=first.billed_cents + later.billed_cents,
        allowed_cents=allowed,
        paid_cents=first.paid_cents + later.paid_cents,
        patient_responsibility_cents=(
            first.patient_responsibility_cents + later.patient_responsibility_cents
        ),
        adjustments=first_adjustments
        + tuple(a._replace(line_number=a.line_number + offset) for a in later_adjustments),
        lines=first_lines + later_lines,
        # The payer's claim number is the claim's: the first line that gives one says it.
        payer_claim_control_number=(
            first.payer_claim_control_number or later.payer_claim_control_number
        ),
        source_lines=_source_lines(first) + _source_lines(later),
    )
    classify(claim)
    return claim


def _lines(claim: ClaimRecord) -> tuple[tuple[ServiceLine, ...], tuple[Adjustment, ...]]:
    """The claim's lines and its adjustments on them; a record of one row is one line."""
    if claim.lines:
        return claim.lines, claim.adjustments
    code = claim.procedure_codes[0] if claim.procedure_codes else ""
    line = ServiceLine(code, claim.billed_cents, claim.paid_cents, claim.allowed_cents)
    return (line,), tuple(a._replace(line_number=1) for a in claim.adjustments)


def _source_lines(claim: ClaimRecord) -> tuple[int, ...]:
    return claim.source_lines or (claim.source_line,)


def _status(first: ClaimRecord, later: ClaimRecord) -> tuple[ClaimStatus, bool]:
    """The claim's status and whether the file stated it. Lines that state different
    decisions make a PARTIAL claim (some paid, some denied); PENDING lines leave the decided
    lines' status; lines that state none leave it to the denial rules, unless others do."""
    stated = {c.status for c in (first, later) if c.status_stated and c.status in _DECIDED}
    if len(stated) > 1:
        return ClaimStatus.PARTIAL, True
    if stated:
        return stated.pop(), True
    if first.status_stated and later.status_stated:
        return ClaimStatus.PENDING, True
    # Decided, as a line that states no status is: the denial rules say how.
    return ClaimStatus.PAID, False


def _earliest(a: dt.date | None, b: dt.date | None) -> dt.date | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: dt.date | None, b: dt.date | None) -> dt.date | None:
    return b if a is None else a if b is None else max(a, b)


class ClaimAssembly:
    """The pieces of one claim id that an upload gathered, given in line order: combined
    into the claim, or refused with a rejection for each of their lines when they name more
    than one payer or hold more lines than a claim may have. Holds at most `max_lines`
    lines: beyond that the claim is refused and its rejections come as its pieces do."""

    def __init__(self, max_lines: int) -> None:
        self._max_lines = max_lines
        self._held: list[ClaimRecord] = []
        self._claim: ClaimRecord | None = None
        self._payers: dict[tuple[str, str], ClaimRecord] = {}
        self._rows = 0
        self._too_many = False
        self.pieces = 0

    def add(self, piece: ClaimRecord) -> list[Rejection]:
        """Take the next piece; returns the rejections already known."""
        self.pieces += 1
        self._rows += piece.rows
        if self._too_many:
            return self._too_many_lines(piece)
        if self._rows > self._max_lines:
            self._too_many = True
            held, self._held, self._claim = self._held, [], None
            return [r for p in (*held, piece) for r in self._too_many_lines(p)]
        self._held.append(piece)
        self._payers.setdefault(payer_of(piece), piece)
        if len(self._payers) == 1:
            self._claim = piece if self._claim is None else combine(self._claim, piece)
        return []

    def finish(self) -> tuple[ClaimRecord | None, list[Rejection]]:
        """The claim, or None and the rest of the rejections when it is refused."""
        if self._too_many:
            return None, []
        if len(self._payers) > 1:
            refused = [r for piece in self._held for r in self._payer_conflict(piece)]
            return None, sorted(refused, key=lambda r: r.line_number)
        if self._claim is not None:
            # A piece read back alone has not met the denial rules in this form.
            classify(self._claim)
        return self._claim, []

    def _too_many_lines(self, piece: ClaimRecord) -> list[Rejection]:
        reason = (
            f"claim {piece.claim_id}: more than {self._max_lines} lines; none of them is stored"
        )
        return _each_line(piece, reason, "TOO_MANY_LINES", "claim_id", piece.claim_id)

    def _payer_conflict(self, piece: ClaimRecord) -> list[Rejection]:
        names = {key for key, _ in self._payers}
        column = "payer" if len(names) > 1 else "payer_id"
        # Each payer as the claim's lines first spelled it.
        spelled = {
            payer: first.payer_name if column == "payer" else first.payer_id
            for payer, first in self._payers.items()
        }
        values = ", ".join(repr(value) for value in dict.fromkeys(spelled.values()))
        reason = (
            f"claim {piece.claim_id}: its lines name different payers ({column} {values}); "
            "none of them is stored"
        )
        return _each_line(piece, reason, "CONFLICTING_PAYER", column, spelled[payer_of(piece)])


def _each_line(
    piece: ClaimRecord, reason: str, code: str, column: str, raw_value: str
) -> list[Rejection]:
    return [Rejection(line, reason, code, column, raw_value[:200]) for line in _source_lines(piece)]

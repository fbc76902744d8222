"""What counts as a denial, as the industry counts it, not by claim status alone.

A claim is denied when the payer pays nothing and the reason is not the patient's share
(group PR) or the contractual write-down (CO-45); when every line was allowed nothing and a
denial reason is given; or when the payer says so (835 CLP02 = 4, or a DENIED status in a
CSV export). A claim that is paid but has a line paid nothing for a denial reason is
partially denied, and kept apart from full denials. A CSV export without a status says
nothing of the kind: its claims' status is what these rules find.
"""

from __future__ import annotations

import functools

from services.ingest.records import Adjustment, ClaimColumns, ClaimRecord, ClaimStatus

_UNDECIDED = (ClaimStatus.PENDING, ClaimStatus.REVERSED)
# Reductions that are not denials: the patient's share, and the contractual adjustment.
_CONTRACTUAL = ("CO", "45")


def is_denial_reason(adjustment: Adjustment) -> bool:
    if adjustment.group_code == "PR":
        return False
    return (adjustment.group_code, adjustment.reason_code) != _CONTRACTUAL


def classify(claim: ClaimRecord) -> None:
    """Set `denied` and `partially_denied` on a parsed claim, and the status of one whose file
    states none: DENIED or PARTIAL when these rules find a denial, else PAID (or PENDING
    while undecided), as the 835 path stores a claim processed by the payer."""
    if not claim.status_stated:
        claim.status = ClaimStatus.PENDING if claim.decision_date is None else ClaimStatus.PAID
    claim.denied, claim.partially_denied = _verdict(claim)
    if not claim.status_stated:
        if claim.denied:
            claim.status = ClaimStatus.DENIED
        elif claim.partially_denied:
            claim.status = ClaimStatus.PARTIAL


def _verdict(claim: ClaimRecord) -> tuple[bool, bool]:
    """(denied, partially denied)."""
    if not claim.lines:
        return _one_line_verdict(
            claim.status, claim.paid_cents, claim.billed_cents, claim.adjustments
        )
    if claim.status in _UNDECIDED:
        return False, False
    if claim.status is ClaimStatus.DENIED:
        return True, False
    denial_reasons = _denial_reasons(claim.adjustments)
    if claim.paid_cents == 0 and claim.billed_cents > 0 and denial_reasons:
        return True, False
    lines_allowed = [line.allowed_cents for line in claim.lines]
    if lines_allowed and all(a == 0 for a in lines_allowed) and denial_reasons:
        return True, False
    if claim.status is ClaimStatus.PARTIAL:
        return False, True
    denied_lines = {a.line_number for a in denial_reasons if a.line_number > 0}
    return False, any(
        line.paid_cents == 0 and number in denied_lines
        for number, line in enumerate(claim.lines, start=1)
    )


def _one_line_verdict(
    status: ClaimStatus, paid_cents: int, billed_cents: int, adjustments: tuple[Adjustment, ...]
) -> tuple[bool, bool]:
    """(denied, partially denied) of a claim of one line (a row of a CSV export): a decided
    one is denied when nothing was paid for a denial reason."""
    if status in _UNDECIDED:
        return False, False
    if status is ClaimStatus.DENIED:
        return True, False
    denied = paid_cents == 0 and billed_cents > 0 and _gives_denial_reason(adjustments)
    return denied, not denied and status is ClaimStatus.PARTIAL


@functools.lru_cache(maxsize=4096)
def _gives_denial_reason(adjustments: tuple[Adjustment, ...]) -> bool:
    return bool(_denial_reasons(adjustments))


def classify_columns(claims: ClaimColumns) -> None:
    """`classify` of each claim of one row, the claims given as columns."""
    pending, paid_status = ClaimStatus.PENDING, ClaimStatus.PAID
    statuses = claims.status
    if not all(claims.status_stated):
        statuses = claims.status = [
            status if stated else pending if decided is None else paid_status
            for status, stated, decided in zip(
                statuses, claims.status_stated, claims.decision_date, strict=True
            )
        ]
    verdicts = list(
        map(
            _one_line_verdict, statuses, claims.paid_cents, claims.billed_cents,
            claims.adjustments,
        )
    )  # fmt: skip
    claims.denied = [denied for denied, _ in verdicts]
    claims.partially_denied = [partially for _, partially in verdicts]
    if not all(claims.status_stated):
        # A denial the rules found is the status of a claim whose file states none (one
        # line, PAID or PENDING: never partially denied).
        claims.status = [
            ClaimStatus.DENIED if denied and not stated else status
            for status, stated, denied in zip(
                statuses, claims.status_stated, claims.denied, strict=True
            )
        ]


def _denial_reasons(adjustments: tuple[Adjustment, ...]) -> list[Adjustment]:
    # CSV exports list CARC codes without amounts (0 here); a negative amount gives money back.
    return [a for a in adjustments if is_denial_reason(a) and a.amount_cents >= 0]


def denial_codes(claim: ClaimRecord) -> tuple[str, ...]:
    """The CARC codes behind a denial or partial denial, as `CO-50`, once each."""
    if not (claim.denied or claim.partially_denied):
        return ()
    return denial_reason_codes(claim.adjustments)


def denial_reason_codes(adjustments: tuple[Adjustment, ...]) -> tuple[str, ...]:
    """The codes of the adjustments that are denial reasons, as `CO-50`, once each."""
    return tuple(
        dict.fromkeys(f"{a.group_code}-{a.reason_code}" for a in adjustments if is_denial_reason(a))
    )

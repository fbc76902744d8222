"""What counts as a denial, as the industry counts it, not by claim status alone.

A claim is denied when the payer pays nothing and the reason is not the patient's share
(group PR) or the contractual write-down (CO-45); when every line was allowed nothing and a
denial reason is given; or when the payer says so (835 CLP02 = 4, or a DENIED status in a
CSV export). A claim that is paid but has a line paid nothing for a denial reason is
partially denied, and kept apart from full denials.
"""

from __future__ import annotations

from services.ingest.records import Adjustment, ClaimRecord, ClaimStatus

# Reductions that are not denials: the patient's share, and the contractual adjustment.
_CONTRACTUAL = ("CO", "45")


def is_denial_reason(adjustment: Adjustment) -> bool:
    if adjustment.group_code == "PR":
        return False
    return (adjustment.group_code, adjustment.reason_code) != _CONTRACTUAL


def classify(claim: ClaimRecord) -> None:
    """Set `denied` and `partially_denied` on a parsed claim."""
    claim.denied = False
    claim.partially_denied = False
    if claim.status in (ClaimStatus.PENDING, ClaimStatus.REVERSED):
        return
    if claim.status is ClaimStatus.DENIED:
        claim.denied = True
        return
    # CSV exports list CARC codes without amounts (0 here); a negative amount gives money back.
    denial_reasons = [a for a in claim.adjustments if is_denial_reason(a) and a.amount_cents >= 0]
    if claim.paid_cents == 0 and claim.billed_cents > 0 and denial_reasons:
        claim.denied = True
        return
    lines_allowed = [line.allowed_cents for line in claim.lines]
    if lines_allowed and all(a == 0 for a in lines_allowed) and denial_reasons:
        claim.denied = True
        return
    if claim.status is ClaimStatus.PARTIAL:
        claim.partially_denied = True
        return
    denied_lines = {a.line_number for a in denial_reasons if a.line_number > 0}
    claim.partially_denied = any(
        line.paid_cents == 0 and number in denied_lines
        for number, line in enumerate(claim.lines, start=1)
    )


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

"""What one claim counts for in the daily statistics.

A claim counts on its decision date, unless it was reversed (a pending claim has no decision
date). Its days to decision run from submission, or from service when the submission date is
not known; without either date, or with a decision dated before it, there is no value. A claim
without an allowed amount counts what was paid plus the patient's share. A pending claim counts
among its payer's pending claims on the day it started (submission, else service), unless it
has neither date. Whether it is denied, and for which reasons, is the denial rules'
(`denials`). The SQL that counts stored claims (`daily_statistics.version` and
`daily_statistics.counting_in`) keeps the same rules; a test holds them together.
"""

from __future__ import annotations

import datetime as dt
import functools

from services.ingest.code_groups import code_group
from services.ingest.denials import denial_codes
from services.ingest.records import ClaimRecord, ClaimStatus

# What a claim adds to the statistics and its payer's claim count, as the arguments of
# `daily_statistics.PartialSums.add`: payer, code group, the day it counts on (None: none), days to
# decision, denied, partially denied, billed, allowed and paid cents, denial codes, the
# patient's share in cents, and the day a pending claim started (None: not pending, or no
# date). A plain tuple: one is made per claim of files with millions of rows.
Counted = tuple[
    str, str, dt.date | None, int | None, bool, bool, int, int, int, tuple[str, ...], int,
    dt.date | None,
]  # fmt: skip


# Looked up once: an enum member costs a lookup through its class each time.
_REVERSED, _PENDING = ClaimStatus.REVERSED, ClaimStatus.PENDING


def counted_day(claim: ClaimRecord) -> dt.date | None:
    """The day the claim counts on: its decision date, none once reversed."""
    return None if claim.status is _REVERSED else claim.decision_date


def decision_days(claim: ClaimRecord) -> int | None:
    """Whole days from submission (or service) to decision."""
    started = claim.submitted_date or claim.service_date
    decided = claim.decision_date
    if decided is None or started is None or decided < started:
        return None
    return (decided - started).days


def pending_started(claim: ClaimRecord) -> dt.date | None:
    """The day a pending claim started: submission, or service when that is not known."""
    if claim.status is not _PENDING:
        return None
    return claim.submitted_date or claim.service_date


def counted_allowed_cents(claim: ClaimRecord) -> int:
    """The allowed amount, or what was paid plus the patient's share when none was sent."""
    allowed = claim.allowed_cents
    return claim.paid_cents + claim.patient_responsibility_cents if allowed is None else allowed


@functools.lru_cache(maxsize=4096)
def claim_code_group(procedure_codes: tuple[str, ...]) -> str:
    """The group of the claim's first procedure code; "" for a claim without one."""
    return code_group(procedure_codes[0]) if procedure_codes else ""


def counted(claim: ClaimRecord, payer: str) -> Counted:
    """What the claim adds to the statistics, under `payer` (a payer uid, or a name)."""
    return (
        payer, claim_code_group(claim.procedure_codes), counted_day(claim), decision_days(claim),
        claim.denied, claim.partially_denied, claim.billed_cents, counted_allowed_cents(claim),
        claim.paid_cents, denial_codes(claim), claim.patient_responsibility_cents,
        pending_started(claim),
    )  # fmt: skip

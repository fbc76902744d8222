"""What a claim counts for in the daily statistics and the pending claims' counts is said once
in Python (`claim_statistics` and the denial rules), which an upload counts its new claims by,
and once in SQL (`daily_statistics`), which counts claims as stored: updated, reversed, moved or
deleted ones. The same claims, edge cases included, go through both in the real PostgreSQL, and
agree claim by claim, day by day and start day by start day with each other and with the rules
as written here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import create_async_engine

from runtime import schemas
from services.ingest.claim_statistics import counted
from services.ingest.claim_writes import UploadFacts
from services.ingest.daily_statistics import (
    COUNT_TABLES,
    DAY_AMOUNTS,
    CellSums,
    PartialSums,
    counting_in,
    recording_changes,
    version,
)
from services.ingest.denials import classify
from services.ingest.parsing import Batch
from services.ingest.records import Adjustment, ClaimRecord, ClaimStatus, ServiceLine
from services.ingest.store import IngestStore
from tests.conftest import PostgresUnderTest

DAY = dt.date(2026, 3, 14)
NEXT_DAY = dt.date(2026, 3, 15)
STARTED = dt.date(2026, 3, 2)  # submitted: 12 days before DAY
SERVED = STARTED - dt.timedelta(days=1)
# A payer × code group × day of the statistics (or, for pending claims, day started).
Cell = tuple[str, str, dt.date]


def claim(claim_id: str, **fields: Any) -> ClaimRecord:
    """A claim as a parser makes one, classified by the denial rules as the parser does."""
    defaults: dict[str, Any] = {
        "source_line": 1,
        "payer_name": "Aetna",
        "procedure_codes": ("99213",),
        "service_date": SERVED,
        "submitted_date": STARTED,
        "decision_date": DAY,
        "billed_cents": 150_00,
        "allowed_cents": 100_00,
        "paid_cents": 80_00,
        "patient_responsibility_cents": 20_00,
        "adjustments": (Adjustment("CO", "45", 50_00), Adjustment("PR", "2", 20_00)),
        "payer_claim_control_number": f"ICN-{claim_id}",
    }
    record = ClaimRecord(claim_id=claim_id, **{**defaults, **fields})
    classify(record)
    return record


@dataclasses.dataclass(frozen=True)
class Case:
    """A claim as stored in the end, and what it counts for, worked out by hand."""

    claim: ClaimRecord
    day: dt.date | None  # the day it counts on
    days: int | None  # days to decision
    allowed_cents: int
    denied: bool = False
    partially_denied: bool = False
    codes: tuple[str, ...] = ()
    code_group: str = "EVALUATION_MANAGEMENT"  # that of its first procedure code
    pending_started: dt.date | None = None  # the day it started, while pending


NOTHING_PAID = {"allowed_cents": 0, "paid_cents": 0, "patient_responsibility_cents": 0}
PENDING = {"status": ClaimStatus.PENDING, "decision_date": None}
# Claims the second upload changes: a newer adjudication of one sent without an allowed
# amount (moved to the next day), a pending claim decided, and a reversal.
FIRST_ADJUDICATION = claim("N1", allowed_cents=None, paid_cents=70_00, decision_date=DAY)
PENDING_BEFORE = claim("W4", **PENDING)
REVERSED_BEFORE = claim("R1", payer_name="Cigna")
CASES = (
    Case(claim("P1"), DAY, 12, 100_00),
    # Sent without an allowed amount: it counts what was paid plus the patient's share.
    Case(
        claim("N1", allowed_cents=None, paid_cents=70_00, decision_date=NEXT_DAY),
        NEXT_DAY,
        13,
        70_00 + 20_00,
    ),
    # Days count from the service date when the submission date is not known.
    Case(claim("S1", submitted_date=None), DAY, 13, 100_00),
    Case(claim("S2", submitted_date=None, service_date=None), DAY, None, 100_00),
    # Decided before it was submitted (bad data): counted on its day, with no days value.
    Case(claim("S3", submitted_date=DAY + dt.timedelta(days=6)), DAY, None, 100_00),
    Case(claim("S4", submitted_date=DAY), DAY, 0, 100_00),
    # Paid nothing for a denial reason, though its status says paid.
    Case(
        claim("D1", adjustments=(Adjustment("CO", "50", 150_00),), **NOTHING_PAID),
        DAY,
        12,
        0,
        denied=True,
        codes=("CO-50",),
    ),
    # The payer says denied; the patient's share and the contractual write-down are no reasons.
    Case(
        claim(
            "D2",
            status=ClaimStatus.DENIED,
            payer_name="Cigna",
            adjustments=(
                Adjustment("CO", "16", 100_00),
                Adjustment("CO", "45", 30_00),
                Adjustment("PR", "1", 20_00),
            ),
            **NOTHING_PAID,
        ),
        DAY,
        12,
        0,
        denied=True,
        codes=("CO-16",),
    ),
    # Its second line paid nothing for a denial reason.
    Case(
        claim(
            "PD1",
            procedure_codes=("99213", "80053"),
            paid_cents=60_00,
            lines=(ServiceLine("99213", 100_00, 60_00, 80_00), ServiceLine("80053", 50_00, 0, 0)),
            adjustments=(
                Adjustment("CO", "45", 20_00, 1),
                Adjustment("PR", "2", 20_00, 1),
                Adjustment("CO", "97", 50_00, 2),
            ),
        ),
        DAY,
        12,
        100_00,
        partially_denied=True,
        codes=("CO-97",),
    ),
    Case(
        claim("PD2", status=ClaimStatus.PARTIAL, adjustments=(Adjustment("CO", "50", 30_00),)),
        DAY,
        12,
        100_00,
        partially_denied=True,
        codes=("CO-50",),
    ),
    # Nothing paid: the deductible took it all (no allowed amount sent), or the contract did.
    Case(
        claim(
            "PR1",
            allowed_cents=None,
            paid_cents=0,
            patient_responsibility_cents=100_00,
            adjustments=(Adjustment("PR", "1", 100_00), Adjustment("CO", "45", 50_00)),
        ),
        DAY,
        12,
        100_00,
    ),
    Case(claim("CO1", adjustments=(Adjustment("CO", "45", 150_00),), **NOTHING_PAID), DAY, 12, 0),
    Case(
        claim("G1", procedure_codes=("80053",), payer_name="Cigna"),
        DAY,
        12,
        100_00,
        code_group="LABORATORY",
    ),
    Case(
        claim("G2", procedure_codes=(), decision_date=NEXT_DAY), NEXT_DAY, 13, 100_00, code_group=""
    ),
    # Not decided yet, and reversed by the second upload: they count on no day. A pending
    # claim counts among the pending from its submission, else its service, else not at all.
    Case(
        claim("W1", allowed_cents=None, **PENDING),
        None,
        None,
        80_00 + 20_00,
        pending_started=STARTED,
    ),
    Case(claim("W2", submitted_date=None, **PENDING), None, None, 100_00, pending_started=SERVED),
    Case(
        claim("W3", procedure_codes=("80053",), payer_name="Cigna", **PENDING),
        None,
        None,
        100_00,
        code_group="LABORATORY",
        pending_started=STARTED,
    ),
    Case(claim("W5", submitted_date=None, service_date=None, **PENDING), None, None, 100_00),
    # Decided by the second upload: no longer pending.
    Case(claim("W4"), DAY, 12, 100_00),
    # Its patient owes most: the share counts on its day like what was paid.
    Case(
        claim(
            "PR2",
            paid_cents=10_00,
            patient_responsibility_cents=90_00,
            adjustments=(Adjustment("PR", "1", 90_00), Adjustment("CO", "45", 50_00)),
        ),
        DAY,
        12,
        100_00,
    ),
    Case(claim("R1", payer_name="Cigna", status=ClaimStatus.REVERSED), None, 12, 100_00),
)
STORED = {case.claim.claim_id: case.claim for case in CASES}
FIRST_UPLOAD = [
    {"N1": FIRST_ADJUDICATION, "R1": REVERSED_BEFORE, "W4": PENDING_BEFORE}.get(claim_id, record)
    for claim_id, record in STORED.items()
]
SECOND_UPLOAD = [
    STORED["N1"],
    STORED["W4"],
    claim(
        "R1-REVERSAL",
        payer_name="Cigna",
        status=ClaimStatus.REVERSED,
        payer_claim_control_number=REVERSED_BEFORE.payer_claim_control_number,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.claim.claim_id for c in CASES])
def test_each_claim_counts_as_the_rules_say(case: Case) -> None:
    (_, group, day, days, denied, partially_denied, billed, allowed, paid, codes, patient,
     started) = counted(case.claim, case.claim.payer_name)  # fmt: skip
    assert (group, day, days, allowed, denied, partially_denied, codes, started) == (
        case.code_group,
        case.day,
        case.days,
        case.allowed_cents,
        case.denied,
        case.partially_denied,
        case.codes,
        case.pending_started,
    )
    assert (billed, paid, patient) == (
        case.claim.billed_cents,
        case.claim.paid_cents,
        case.claim.patient_responsibility_cents,
    )


async def test_stored_claims_keep_and_sql_counts_what_the_rules_say(
    postgres: PostgresUnderTest,
) -> None:
    customer = "c" + uuid.uuid4().hex[:10]
    await _upload(postgres, customer, [FIRST_UPLOAD, SECOND_UPLOAD])

    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        stored = _stored_versions(connection, customer)
        statistics = _daily_stats(connection, customer)
        pending = _pending_stats(connection, customer)
        recounted, recounted_pending = _recount_in_sql(connection, customer)
        connection.rollback()

    assert stored == {claim_id: _counted_fields(record) for claim_id, record in STORED.items()}
    expected = _summed(STORED.values())
    # The upload counted the new claims in Python and the changed ones in SQL.
    assert statistics == expected
    assert recounted == expected
    assert {day for _, _, day in expected} == {DAY, NEXT_DAY}
    expected_pending = _pending_summed(STORED.values())
    assert pending == recounted_pending == expected_pending
    assert expected_pending == {
        ("Aetna", "EVALUATION_MANAGEMENT", STARTED): 1,
        ("Aetna", "EVALUATION_MANAGEMENT", SERVED): 1,
        ("Cigna", "LABORATORY", STARTED): 1,
    }
    assert sum(cell.amounts[-1] for cell in statistics.values()) == sum(
        case.claim.patient_responsibility_cents for case in CASES if case.day is not None
    )


def _counted_fields(record: ClaimRecord) -> tuple[Any, ...]:
    """What a claim counts for, but the day it counts on (compared day by day)."""
    _, group, _, days, denied, partially_denied, billed, allowed, paid, codes, patient, started = (
        counted(record, record.payer_name)
    )
    return (group, days, denied, partially_denied, billed, allowed, paid, codes, patient, started)


def _partial_sums(records: Iterable[ClaimRecord]) -> PartialSums:
    sums = PartialSums()
    sums.add_all(counted(record, record.payer_name) for record in records)
    return sums


def _summed(records: Iterable[ClaimRecord]) -> dict[Cell, CellSums]:
    return _partial_sums(records).cells()


def _pending_summed(records: Iterable[ClaimRecord]) -> dict[Cell, int]:
    return _partial_sums(records).pending()


async def _upload(
    postgres: PostgresUnderTest, customer: str, uploads: list[list[ClaimRecord]]
) -> None:
    engine = create_async_engine(postgres.url("ingest"))
    try:
        store = IngestStore(engine)
        for number, claims in enumerate(uploads):
            upload_id = f"u_{number}"
            async with store.upload_transaction(customer, upload_id, merge_every=4) as writer:
                # Claims a few at a time, as batches of a streamed file come.
                for at in range(0, len(claims), 3):
                    await writer.load(writer.encode(Batch(claims=claims[at : at + 3])))
                outcome = await writer.finish(
                    UploadFacts(
                        customer, upload_id, None, "claims", "CSV", "ACCEPT_VALID", "test", 0,
                        upload_id, len(claims), [], {}, {},
                    ),
                    all_or_nothing=False,
                )  # fmt: skip
            assert not outcome.failed and not outcome.repeated
    finally:
        await engine.dispose()


def _stored_versions(connection: psycopg.Connection[Any], customer: str) -> dict[str, tuple]:
    """Each stored claim as the SQL counting reads it (`daily_statistics.version`), in the order of
    `_counted_fields`."""
    with connection.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            f"SELECT c.claim_id, {version('c')} FROM ingest.claims c WHERE c.customer_id = %s",
            (customer,),
        ).fetchall()
    return {
        row["claim_id"]: (
            row["code_group"], row["decision_days"], row["denied"], row["partially_denied"],
            row["billed_cents"], row["allowed_cents"], row["paid_cents"],
            tuple(row["denial_codes"]), row["patient_responsibility_cents"],
            row["pending_started"],
        )
        for row in rows
    }  # fmt: skip


def _daily_stats(connection: psycopg.Connection[Any], customer: str) -> dict[Cell, CellSums]:
    rows = connection.execute(
        f"SELECT payer, code_group, decision_date, {', '.join(DAY_AMOUNTS)}, decision_days, "
        "carc_counts FROM ingest.daily_stats WHERE customer_id = %s",
        (customer,),
    ).fetchall()
    return {
        (payer, group, day): CellSums(
            tuple(amounts), {int(days): n for days, n in histogram.items()}, codes
        )
        for payer, group, day, *amounts, histogram, codes in rows
    }


def _pending_stats(connection: psycopg.Connection[Any], customer: str) -> dict[Cell, int]:
    rows = connection.execute(
        "SELECT payer, code_group, start_date, pending_claims FROM ingest.pending_stats "
        "WHERE customer_id = %s",
        (customer,),
    ).fetchall()
    return {(payer, group, day): n for payer, group, day, n in rows}


def _recount_in_sql(
    connection: psycopg.Connection[Any], customer: str
) -> tuple[dict[Cell, CellSums], dict[Cell, int]]:
    """The customer's stored claims counted by the SQL that counts changed claims: each
    recorded as a new version (as a payer remapping records them), summed by `counting_in`;
    the daily statistics and the pending claims. The caller rolls back."""
    for statement in COUNT_TABLES:
        connection.execute(statement)
    connection.execute(
        recording_changes(
            "UPDATE ingest.claims c SET payer = c.payer WHERE c.customer_id = %s", ("new",)
        ),
        (customer,),
    )
    connection.execute(f"WITH {counting_in('claim_changes')}")
    cell = "payer, code_group, decision_date"
    amounts = ", ".join(
        f"sum({column})::bigint"
        for column in (
            "decided", "denied", "partially_denied", "billed", "allowed", "paid", "denied_billed",
            "patient",
        )
    )  # fmt: skip
    cells: dict[Cell, CellSums] = {
        (payer, group, day): CellSums(tuple(sums), {}, {})
        for payer, group, day, *sums in connection.execute(
            f"SELECT {cell}, {amounts} FROM stat_cells GROUP BY {cell}"
        ).fetchall()
    }
    for payer, group, day, histogram, codes in connection.execute(
        f"SELECT {cell}, histogram, codes FROM stat_cells"
    ).fetchall():
        sums = cells[payer, group, day]
        for days, n in histogram.items():
            sums.decision_days[int(days)] = sums.decision_days.get(int(days), 0) + n
        for code, n in codes.items():
            sums.carc_counts[code] = sums.carc_counts.get(code, 0) + n
    pending = {
        (payer, group, day): n
        for payer, group, day, n in connection.execute(
            "SELECT payer, code_group, start_date, sum(n)::bigint FROM stat_pending "
            "GROUP BY payer, code_group, start_date"
        ).fetchall()
    }
    return cells, pending

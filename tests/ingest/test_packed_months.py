"""The packed months an upload writes (`ingest.daily_stat_months`, what drift reads) are those
packed again from the stored days, whichever way the upload packed each month: in Python from
its own partial sums (a month new to the customer, whose every claim is new; the sums written
once or every few claims), or from the stored days (a month with days stored before, or one a
changed claim moved into or out of)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from runtime import schemas
from services.ingest import claim_writes
from services.ingest.daily_statistics import (
    MONTHS_FROM_DAILY_STATS,
)
from services.ingest.intake import UploadIntake, UploadRequest
from services.ingest.store import IngestStore
from tests.conftest import PostgresUnderTest, own_database
from tests.ingest.test_uploads_api import HEADER, _fresh_customer
from tests.system import System
from tests.unit.series_reading import month_entries

_MONTH_ROWS = (
    "SELECT payer, code_group, month, days, amounts, patient_responsibility, histogram, "
    "carc_codes, carc, narrow_histogram, narrow_carc FROM ingest.daily_stat_months "
    "WHERE customer_id = %s ORDER BY 1, 2, 3"
)
_EVERY_MONTH = (
    "SELECT DISTINCT customer_id, payer, code_group, "
    "date_trunc('month', decision_date)::date AS month FROM ingest.daily_stats "
    "WHERE customer_id = %(customer)s"
)
# Payers: two raw names mapped to one canonical payer, one with a name outside ASCII.
_PAYERS = ("Aetna Inc.", "AETNA", "Cigna", "Société Générale Assurance")
# Denial codes of a denied or partly paid claim, several to a claim sometimes.
_CODES = ("CO-50", "CO-97;PR-1", "CO-45", "CO-4;CO-16;N-362", "PR-204")


def _claim(
    claim_id: str,
    i: int,
    decided: dt.date | None,
    *,
    procedure: str = "99213",
    paid: int = 70,
    again: int = 0,
) -> str:
    """A claim of a payer and outcome that vary with `i` (the outcome with `again` too),
    decided `decided` (None: pending), submitted from one to about two hundred days before,
    so that days to decision have one, two and three digits."""
    payer = _PAYERS[i % len(_PAYERS)]
    served = (decided or dt.date(2026, 9, 1)) - dt.timedelta(days=1 + (i * 37) % 190)
    i += again
    if decided is None:
        return f"{claim_id},{payer},{procedure},{served},{served},,PENDING,100.00,0,0,0,"
    status, codes = ("PAID", "")
    if i % 4 == 0:
        status, codes, paid = "DENIED", _CODES[i % len(_CODES)], 0
    elif i % 7 == 0:
        status, codes = "PARTIAL", _CODES[(i // 7) % len(_CODES)]
    patient = i % 3 * 5
    return (
        f"{claim_id},{payer},{procedure},{served},{served},{decided},{status},"
        f"100.00,{paid + patient}.00,{paid}.00,{patient}.00,{codes}"
    )


def _file(rows: list[str]) -> bytes:
    return (HEADER + "".join(row + "\n" for row in rows)).encode()


def _uploads() -> list[bytes]:
    """A customer's first export (three months), a second with days of a stored month and
    a new month, and a third adjudicating some claims again into two new months."""
    first = [
        _claim(f"A{i}", i, dt.date(2026, 4, 1) + dt.timedelta(days=i % 91), procedure=code)
        for i in range(600)
        for code in ("99213",) + (("71046",) if i % 5 == 0 else ())
    ]
    first += [_claim(f"P{i}", i, None) for i in range(20)]
    # Submitted in 1800 (a typo in a real export): 82,000 days to decision.
    first.append("T1,Cigna,99213,1800-04-03,1800-04-03,2026-05-07,PAID,100.00,70.00,70.00,0.00,")
    second = [
        _claim(f"B{i}", i, dt.date(2026, 6, 20) + dt.timedelta(days=i % 25)) for i in range(300)
    ]
    third = [
        _claim(f"A{i}", i, dt.date(2026, 8, 1) + dt.timedelta(days=i % 30), paid=60, again=1)
        for i in range(0, 600, 9)
    ]
    third += [
        _claim(f"C{i}", i, dt.date(2026, 9, 1) + dt.timedelta(days=i % 20)) for i in range(200)
    ]
    return [_file(first), _file(second), _file(third)]


async def _upload(store: IngestStore, customer: str, body: bytes, merge_every: int) -> None:
    """An upload through the use case, its partial sums written every `merge_every` claims."""

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 4096):
            yield body[at : at + 4096]

    intake = UploadIntake(store, max_upload_bytes=1 << 22, merge_every=merge_every)
    upload = await intake.create(UploadRequest(customer, "test", "export.csv"), chunks())
    assert upload.state == "SUCCEEDED", upload


def _kept_and_repacked(
    postgres: PostgresUnderTest, customer: str, *, narrow: bool
) -> tuple[list, list]:
    """The customer's packed months as stored, and as packed again from its stored days
    (with narrow entries if `narrow`)."""
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        kept = connection.execute(_MONTH_ROWS, (customer,)).fetchall()
        connection.execute(
            "DELETE FROM ingest.daily_stat_months WHERE customer_id = %s", (customer,)
        )
        connection.execute(
            MONTHS_FROM_DAILY_STATS.format(touched=_EVERY_MONTH),
            {"customer": customer, "narrow": narrow},
        )
        repacked = connection.execute(_MONTH_ROWS, (customer,)).fetchall()
        connection.rollback()
    return kept, repacked


@pytest.mark.parametrize(("merge_every", "narrow"), [(100_000, True), (97, True), (100_000, False)])
async def test_the_months_an_upload_packs_are_those_packed_from_the_stored_days(
    system: System,
    postgres: PostgresUnderTest,
    monkeypatch: pytest.MonkeyPatch,
    merge_every: int,
    narrow: bool,
) -> None:
    # As on a database with many claims, where the planner probes the customer's stored
    # claims by key: an upload's claims new to the customer are copied and counted in Python
    # (a few claims in a test database are read whole instead, and all merged by key).
    monkeypatch.setattr(claim_writes, "probes_primary_key", lambda plan: True)
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        for raw in ("Aetna Inc.", "AETNA"):
            mapped = client.post(
                f"/v1/customers/{customer}/payerMappings",
                json={"rawPayerName": raw, "canonicalPayer": "Aetna"},
            )
            assert mapped.status_code == 200, mapped.text
    engine = create_async_engine(postgres.url("ingest"))
    months = []
    try:
        store = IngestStore(engine, narrow_month_entries=narrow)
        for body in _uploads():
            await _upload(store, customer, body, merge_every)
            kept, repacked = _kept_and_repacked(postgres, customer, narrow=narrow)
            assert kept == repacked
            months.append({(payer, group, month) for payer, group, month, *_ in kept})
    finally:
        await engine.dispose()
    # Every entry narrow if written so (82,000 days to decision among them), else none.
    wide = [e for row in kept for e in month_entries(row[6], b"") + month_entries(row[8], b"")]
    slim = [e for row in kept for e in month_entries(b"", row[9]) + month_entries(b"", row[10])]
    written, none = (slim, wide) if narrow else (wide, slim)
    assert len(written) > 1000 and not none
    assert (dt.date(2026, 5, 7) - dt.date(1800, 4, 3)).days in {days for _, days, _ in wide + slim}
    # Aetna's two raw names are one payer; the months are April to September.
    assert {payer for payer, _, _ in months[-1]} == {"Aetna", "Cigna", "Société Générale Assurance"}
    assert [sorted({month.month for _, _, month in kept}) for kept in months] == [
        [4, 5, 6],
        [4, 5, 6, 7],
        [4, 5, 6, 7, 8, 9],
    ]


async def test_an_entry_of_more_claims_than_a_narrow_one_holds_is_kept_as_a_triplet(
    system: System, postgres: PostgresUnderTest
) -> None:
    """32,768 claims of one payer denied on one day for one reason (CO-50), 30 days after
    submission: their histogram and CARC entries stay triplets, the others of the month are
    narrow, in the months an upload packs and in those packed from the stored days alike."""
    customer = _fresh_customer()
    rows = [
        f"D{i},Cigna,99213,2026-05-01,2026-05-01,2026-05-31,DENIED,100.00,0,0,0,CO-50"
        for i in range(32_768)
    ]
    rows += [_claim(f"A{i}", i, dt.date(2026, 5, 1) + dt.timedelta(days=i % 30)) for i in range(50)]
    engine = create_async_engine(postgres.url("ingest"))
    try:
        await _upload(IngestStore(engine), customer, _file(rows), 100_000)
    finally:
        await engine.dispose()
    kept, repacked = _kept_and_repacked(postgres, customer, narrow=True)
    assert kept == repacked
    (cigna,) = [row for row in kept if row[0] == "Cigna"]
    # (day index among the month's days, value, claims): 30 days to decision, CO-50.
    assert [entry[1:] for entry in month_entries(cigna[6], b"")] == [(30, 32_768)]
    assert [entry[1:] for entry in month_entries(cigna[8], b"")] == [
        (cigna[7].index("CO-50"), 32_768)
    ]
    assert month_entries(b"", cigna[9]) and month_entries(b"", cigna[10])


async def test_a_downgrade_makes_narrow_entries_triplets_as_the_release_before_packs_them(
    postgres: PostgresUnderTest,
) -> None:
    """Taken back to the release before narrow entries, every month's entries are triplets
    again, exactly as that release packs them."""
    customer = _fresh_customer()
    with own_database(postgres, ("ingest",)) as database:
        engine = create_async_engine(database.url("ingest"))
        try:
            await _upload(IngestStore(engine), customer, _uploads()[0], 100_000)
        finally:
            await engine.dispose()
        kept, wide = _kept_and_repacked(database, customer, narrow=False)
        assert all(row[9] for row in kept)
        owner = database.url("ingest", "owner")
        schemas.downgrade("ingest", owner, "0010")
        try:
            with psycopg.connect(schemas.libpq_url(database.admin_url)) as connection:
                widened = connection.execute(
                    _MONTH_ROWS.replace(", narrow_histogram, narrow_carc", ""), (customer,)
                ).fetchall()
        finally:
            schemas.migrate("ingest", owner)
    assert widened == [row[:9] for row in wide]
    assert [month_entries(row[6], b"") for row in widened] == [
        month_entries(row[6], row[9]) for row in kept
    ]

"""The patients' share and the claims still pending, from uploads through ingest's statistics to
the series drift reads: streamed over gRPC as drift asks for them (and as JSON over REST), they
equal a recount of the stored claims, also after claims are decided, payers remapped and
uploads deleted; and the migration that adds them counts what was stored before it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import psycopg
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from runtime import schemas
from runtime.db import BlockingReads
from runtime.messages import date_message
from runtime.settings import Settings
from services.drift.ingest_client import joined, series_from_message
from services.drift.series import PATIENT, CellSeries
from services.ingest.intake import UploadIntake, UploadRequest
from services.ingest.store import IngestStore
from tests.conftest import PostgresUnderTest, own_database
from tests.system import System, base_env
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc

HEADER = (
    "claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n"
)
EPOCH = dt.date(1970, 1, 1)
# (payer, code group, day) -> cents or claims
Counts = dict[tuple[str, str, dt.date], int]
PENDING_CLAIMS = 36
# Counted among the pending: all but the three with neither date.
COUNTED_PENDING = PENDING_CLAIMS - 3


def _csv(rows: list[str]) -> bytes:
    return (HEADER + "".join(row + "\n" for row in rows)).encode()


def _first_file() -> bytes:
    """Decided claims whose patients owe a share that changes with the month (deductibles in
    January), and pending claims of several payers and code groups: started on their
    submission, on their service when not submitted, or with neither date."""
    rows = []
    for i in range(240):
        payer = ("Aetna", "Cigna", "AETNA  medicare")[i % 3]
        code = ("99213", "71046")[i // 3 % 2]
        decided = dt.date(2026, 1, 5) + dt.timedelta(days=i % 70)
        share = 60 if decided.month == 1 else 15 + i % 7
        rows.append(
            f"D{i},{payer},{code},2025-12-20,2025-12-{20 + i % 9},{decided},PAID,200.00,"
            f"150.00,{150 - share}.00,{share}.{i % 100:02d},PR-1"
        )
    for i in range(PENDING_CLAIMS):
        payer = ("Aetna", "Cigna", "Humana")[i % 3]
        submitted = "" if i % 4 == 1 else f"2026-03-{1 + i % 6:02d}"
        # W5, W17 and W29 have neither date.
        served = "" if i % 12 == 5 else f"2026-02-{10 + i % 5}"
        code = ("99213", "80053")[i % 2]
        rows.append(f"W{i},{payer},{code},{served},{submitted},,PENDING,90.00,,,,")
    return _csv(rows)


def _second_file() -> bytes:
    """Pending claims decided (W0, W5, …, W35: seven of them counted among the pending), two
    new pending ones (one of a payer a mapping will rename), and a newer adjudication that
    moves a patient's share."""
    return _csv(
        [
            *(
                f"W{i},{('Aetna', 'Cigna', 'Humana')[i % 3]},{('99213', '80053')[i % 2]},"
                f"2026-02-10,2026-03-01,2026-03-20,PAID,90.00,90.00,80.00,10.00,PR-2"
                for i in range(0, PENDING_CLAIMS, 5)
            ),
            "W90,Northwind,J1100,2026-01-02,,,PENDING,40.00,,,,",
            "W91,AETNA  medicare,99213,2026-01-02,2026-01-03,,PENDING,40.00,,,,",
            "D4,Cigna,99213,2025-12-20,2025-12-24,2026-03-21,PAID,200.00,150.00,50.00,100.00,PR-1",
        ]
    )


def _stream(system: System, customer: str, start: dt.date, end: dt.date) -> list[CellSeries]:
    """The customer's series as drift reads them: PACKED, entries summed over spans, decoded
    and joined by drift's own functions."""
    request = ingest_service_pb2.StreamDailyStatSeriesRequest(
        parent=f"customers/{customer}",
        start_date=date_message(start),
        end_date=date_message(end),
        encoding=ingest_service_pb2.StreamDailyStatSeriesRequest.PACKED,
        entry_span_starts=[date_message(start + dt.timedelta(days=30))],
    )
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        stream = ingest_service_pb2_grpc.IngestServiceStub(channel).StreamDailyStatSeries(
            request, metadata=[("authorization", f"Bearer {system.token(customer)}")], timeout=60
        )
        return joined(
            series_from_message(series)
            for message in stream
            for series in message.daily_stat_series
        )


def _read(series: list[CellSeries]) -> tuple[Counts, Counts]:
    """The patients' share by decision day and the pending claims by start day, of every
    series."""
    patient: Counts = {}
    pending: Counts = {}
    for one in series:
        for day, cents in zip(one.days.tolist(), one.amounts[PATIENT].tolist(), strict=True):
            patient[one.payer, one.code_group, dt.date.fromordinal(day)] = cents
        for day, claims in zip(
            one.pending_started.tolist(), one.pending_claims.tolist(), strict=True
        ):
            pending[one.payer, one.code_group, dt.date.fromordinal(day)] = claims
    return patient, pending


def _recount(
    postgres: PostgresUnderTest, customer: str, start: dt.date, end: dt.date
) -> tuple[Counts, Counts]:
    """The same, counted from the stored claims: the share on the decision day of claims not
    reversed; pending claims on their submission, else service date."""
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        patient = connection.execute(
            "SELECT payer, code_group, decision_date, sum(patient_responsibility_cents)::bigint "
            "FROM ingest.claims WHERE customer_id = %s AND status <> 'REVERSED' "
            "AND decision_date BETWEEN %s AND %s GROUP BY 1, 2, 3",
            (customer, start, end),
        ).fetchall()
        pending = connection.execute(
            "SELECT payer, code_group, coalesce(submitted_date, service_date), count(*) "
            "FROM ingest.claims WHERE customer_id = %s AND status = 'PENDING' "
            "AND coalesce(submitted_date, service_date) IS NOT NULL GROUP BY 1, 2, 3",
            (customer,),
        ).fetchall()
    return (
        {(payer, group, day): cents for payer, group, day, cents in patient},
        {(payer, group, day): claims for payer, group, day, claims in pending},
    )


def _upload(client: httpx.Client, customer: str, body: bytes) -> str:
    response = client.post(
        f"/v1/customers/{customer}/uploads", content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


def test_the_patients_share_and_pending_claims_reach_drift_as_stored(
    system: System, postgres: PostgresUnderTest
) -> None:
    customer = "c" + uuid.uuid4().hex[:10]
    # A range that leaves out the pending claims' days and some cells' decided days.
    start, end = dt.date(2026, 2, 1), dt.date(2026, 3, 31)

    def assert_read_as_recounted() -> tuple[Counts, Counts]:
        found = _read(_stream(system, customer, start, end))
        assert found == _recount(postgres, customer, start, end)
        return found

    with system.client(customer, "admin") as client:
        _upload(client, customer, _first_file())
        patient, pending = assert_read_as_recounted()
        # In cents, to the cent; January's deductibles are outside the range asked for.
        assert len(patient) > 50 and all(cents > 0 for cents in patient.values())
        assert min(day for *_, day in patient) == start
        assert sum(pending.values()) == COUNTED_PENDING
        assert {payer for payer, *_ in pending} == {"Aetna", "Cigna", "Humana"}
        assert len({payer for payer, *_ in patient}) == 3
        # Humana has nothing decided: its series come for their pending claims alone.
        humana = [s for s in _stream(system, customer, start, end) if s.payer == "Humana"]
        assert humana and all(s.days.size == 0 for s in humana)

        second = _upload(client, customer, _second_file())
        _, pending = assert_read_as_recounted()
        assert sum(pending.values()) == COUNTED_PENDING - 7 + 2
        assert pending["Northwind", "DRUGS", dt.date(2026, 1, 2)] == 1
        assert len({payer for payer, *_ in pending}) == 5

        # Payers remapped move their pending claims and shares with them.
        mapped = client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": "Aetna Medicare", "canonicalPayer": "Aetna"},
        )
        assert mapped.status_code == 200, mapped.text
        patient, pending = assert_read_as_recounted()
        # (Humana's share is that of its claims the second upload decided.)
        assert {payer for payer, *_ in patient} == {"Aetna", "Cigna", "Humana"}
        assert {payer for payer, *_ in pending} == {"Aetna", "Cigna", "Humana", "Northwind"}
        assert pending["Aetna", "EVALUATION_MANAGEMENT", dt.date(2026, 1, 3)] == 1

        # Deleting an upload removes the claims it last set: those it decided, and its new
        # pending claim, with their counts.
        assert client.delete(f"/v1/{second}").status_code == 200
        _, pending = assert_read_as_recounted()
        assert sum(pending.values()) == COUNTED_PENDING - 7
        assert "Northwind" not in {payer for payer, *_ in pending}

        # REST readers see the same numbers in the readable encoding, and day by day.
        window = {"startDate": start.isoformat(), "endDate": end.isoformat()}
        streamed = client.get(f"/v1/customers/{customer}/dailyStatSeries", params=window)
        days = client.get(f"/v1/customers/{customer}/dailyStats", params=window)
    assert streamed.status_code == days.status_code == 200
    readable_patient: Counts = {}
    readable_pending: Counts = {}
    for line in streamed.text.splitlines():
        for one in json.loads(line)["result"]["dailyStatSeries"]:
            cell = (one["payer"], one.get("codeGroup", ""))
            for day, cents in zip(
                one.get("decisionDates", []), one.get("patientResponsibilityCents", []), strict=True
            ):
                readable_patient[(*cell, EPOCH + dt.timedelta(days=day))] = int(cents)
            for day, claims in zip(
                one.get("pendingStartDates", []), one.get("pendingClaims", []), strict=True
            ):
                readable_pending[(*cell, EPOCH + dt.timedelta(days=day))] = int(claims)
    recounted_patient, recounted_pending = _recount(postgres, customer, start, end)
    assert (readable_patient, readable_pending) == (recounted_patient, recounted_pending)
    by_day: Counts = {}
    for line in days.text.splitlines():
        for stat in json.loads(line)["result"]["dailyStats"]:
            share = stat.get("patientResponsibilityAmount", {})
            day = dt.date(**stat["decisionDate"])
            by_day[stat["payer"], stat.get("codeGroup", ""), day] = (
                int(share.get("units", 0)) * 100 + share.get("nanos", 0) // 10_000_000
            )
    assert by_day == recounted_patient


def test_the_migration_counts_the_share_and_pending_claims_stored_before_it(
    postgres: PostgresUnderTest,
) -> None:
    """Statistics kept before the patients' share and the pending claims were counted are
    counted by the migration that adds them: what a drift run reads afterwards is what it
    reads of statistics kept since."""
    customer = "c" + uuid.uuid4().hex[:10]
    start, end = dt.date(2025, 12, 1), dt.date(2026, 3, 31)
    with own_database(postgres, ("ingest",)) as database:
        asyncio.run(_write_in_process(database, customer, [_first_file(), _second_file()]))
        kept = asyncio.run(_series_in_process(database, customer, start, end))
        owner = database.url("ingest", "owner")
        command.downgrade(schemas.alembic_config("ingest", owner), "0005")
        schemas.migrate("ingest", owner)
        counted = asyncio.run(_series_in_process(database, customer, start, end))
    assert counted == kept
    patient, pending = counted
    assert sum(cents for (*_, day), cents in patient.items() if day.month == 1) > 0
    assert sum(pending.values()) == COUNTED_PENDING - 7 + 2


async def _write_in_process(database: PostgresUnderTest, customer: str, files: list[bytes]) -> None:
    engine = create_async_engine(database.url("ingest"))
    try:
        intake = UploadIntake(IngestStore(engine), max_upload_bytes=1 << 20, merge_every=50)
        for body in files:

            async def chunks(body: bytes = body) -> AsyncIterator[bytes]:
                yield body

            upload = await intake.create(UploadRequest(customer, "test", "f.csv"), chunks())
            assert upload.state == "SUCCEEDED"
    finally:
        await engine.dispose()


async def _series_in_process(
    database: PostgresUnderTest, customer: str, start: dt.date, end: dt.date
) -> tuple[Counts, Counts]:
    """What ingest streams of the customer's shares and pending claims, read by its store."""
    engine = create_async_engine(database.url("ingest"))
    reads = BlockingReads(
        Settings.from_env("ingest", base_env(DATABASE_URL=database.url("ingest"))), 1
    )
    store = IngestStore(engine, series_reads=reads)
    patient: Counts = {}
    pending: Counts = {}
    try:
        async for one in store.stream_daily_stat_series(customer, [], start, end):
            for day, cents in zip(one.dates.tolist(), one.amounts[:, -1].tolist(), strict=True):
                patient[one.payer, one.code_group, EPOCH + dt.timedelta(days=day)] = cents
            for day, claims in zip(
                one.pending.started.tolist(), one.pending.claims.tolist(), strict=True
            ):
                pending[one.payer, one.code_group, EPOCH + dt.timedelta(days=day)] = claims
    finally:
        reads.close()
        await engine.dispose()
    return patient, pending

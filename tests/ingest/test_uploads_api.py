"""Uploads through the real gateway into the real ingest service and PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import gzip
import hashlib
import importlib
import io
import re
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import psycopg
import pyarrow as pa
import pytest
import xlwt
from google.type import date_pb2
from openpyxl import Workbook
from sqlalchemy.ext.asyncio import create_async_engine

from runtime import schemas
from services.ingest.copy_lines import SeenClaims
from services.ingest.intake import UploadIntake, UploadRequest
from services.ingest.store import IngestStore
from tests.conftest import PostgresUnderTest
from tests.fixtures import FIXTURES_DIR, X12_835_FIXTURES
from tests.system import System, running_service
from tests.test_gateway_api import violations
from tests.unit.series_reading import month_entries
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

FIXTURES = X12_835_FIXTURES
HEADER = (
    "claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n"
)


def _csv(rows: list[str]) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def _upload(
    client: httpx.Client,
    customer: str,
    body: bytes,
    key: str | None = None,
    content_type: str = "text/csv",
    **params: str,
) -> httpx.Response:
    headers = {"content-type": content_type}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(
        f"/v1/customers/{customer}/uploads", content=body, headers=headers, params=params
    )


def _fresh_customer() -> str:
    return "c" + uuid.uuid4().hex[:10]


def test_csv_upload_counts_rejections_and_idempotency(system: System) -> None:
    customer = _fresh_customer()
    body = _csv(
        [
            "C1,Aetna,99213,2026-03-01,2026-03-02,2026-03-14,PAID,150.00,100.00,80.00,20.00,CO-45;PR-2",
            'C2,Aetna,99214,03/01/2026,03/02/2026,03/20/2026,denied,"$1,200.00",0,0,0,CO-50',
            "C3,Cigna,71046,2026-03-01,2026-03-03,not-a-date,PAID,90,60,60,0,",
            'C4,=HYPERLINK("http://x"),99213,2026-03-01,2026-03-03,2026-03-10,PAID,90,60,60,0,',
            "C5,Cigna,71046,2026-03-01,2026-03-03,,PENDING,90,,,,",
        ]
    )
    with system.client(customer, "admin") as client:
        first = _upload(client, customer, body, key="k-1", **{"upload.fileName": "march.csv"})
        assert first.status_code == 200, first.text
        upload = first.json()
        assert upload["state"] == "SUCCEEDED"
        assert upload["format"] == "CSV"
        assert upload["fileName"] == "march.csv"
        assert (upload["rowsRead"], upload["rowsAccepted"], upload["rowsRejected"]) == (
            "5",
            "3",
            "2",
        )
        assert upload["payers"] == ["Aetna", "Cigna"]
        assert upload["creator"] == f"admin@{customer}"
        again = _upload(client, customer, body, key="k-1")
        assert again.json()["name"] == upload["name"]
        same_content = _upload(client, customer, body, key="another-key")
        assert same_content.json()["name"] == upload["name"]
        rejections = client.get(f"/v1/{upload['name']}/rejections").json()["uploadRejections"]
        assert [(r["lineNumber"], r["column"], r["code"]) for r in rejections] == [
            ("4", "decision_date", "BAD_DATE"),
            ("5", "payer", "FORMULA"),
        ]
        assert "not a date" in rejections[0]["reason"]
        assert rejections[0]["rawValue"] == "not-a-date"
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
        assert sorted(c["claimId"] for c in claims) == ["C1", "C2", "C5"]
        denied = client.get(
            f"/v1/customers/{customer}/claims", params={"filter": "denied = true"}
        ).json()["claims"]
        assert [c["claimId"] for c in denied] == ["C2"]
        assert denied[0]["billedAmount"] == {"currencyCode": "USD", "units": "1200", "nanos": 0}
        uploads = client.get(f"/v1/customers/{customer}/uploads").json()["uploads"]
        assert [u["name"] for u in uploads] == [upload["name"]]


def test_a_newer_adjudication_updates_the_claim_instead_of_duplicating_it(system: System) -> None:
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        _upload(client, customer, _csv(["A1,Humana,99213,,,,PENDING,100,,,,"]))
        second = _upload(
            client, customer, _csv(["A1,HUMANA ,99213,,2026-02-01,2026-02-20,PAID,100,80,80,0,"])
        ).json()
        assert second["rowsUpdated"] == "1"
        older = _upload(
            client,
            customer,
            _csv(["A1,Humana,99213,,2026-02-01,2026-01-05,DENIED,100,0,0,0,CO-16"]),
        ).json()
        assert older["rowsUpdated"] == "0"
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
    assert len(claims) == 1
    assert claims[0]["status"] == "PAID"
    assert claims[0]["decisionDate"] == {"year": 2026, "month": 2, "day": 20}


# Each fixture's claims as its CLP segments state them: claim id → (billed, paid) in cents.
FIXTURE_CLAIMS = {
    "cob-contractural-adjustment.835": {"0001000055": (54100, 3400)},
    "managed-care.835": {"5554555444": (80000, 45000), "8765432112": (120000, 49500)},
    "medicare-part-a.835": {"666123": (21136697, 13801840), "777777": (1500000, 1198033)},
    "secondary-payment.835": {"L0004828311": (1032364, 91200), "0001000053": (75150, 31000)},
    "tertiary-payment.835": {"0001000054": (176650, 18750)},
}


def test_every_fixture_835_is_tested() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.835")) == sorted(FIXTURE_CLAIMS)


@pytest.mark.parametrize("fixture", sorted(FIXTURE_CLAIMS))
def test_each_fixture_835_uploads_with_the_claims_it_holds(system: System, fixture: str) -> None:
    customer = _fresh_customer()
    body = (FIXTURES / fixture).read_bytes()
    with system.client(customer, "admin") as client:
        response = _upload(client, customer, body, key=f"835-{fixture}")
        assert response.status_code == 200, response.text
        upload = response.json()
        claims = client.get(f"/v1/customers/{customer}/claims").json().get("claims", [])
        resent = _upload(client, customer, body, key=f"835-{fixture}")
    assert upload["format"] == "X12_835"
    assert upload["state"] == "SUCCEEDED"
    assert int(upload["rowsAccepted"]) == len(claims)
    assert resent.json()["name"] == upload["name"]
    assert {
        c["claimId"]: (_cents(c["billedAmount"]), _cents(c["paidAmount"])) for c in claims
    } == FIXTURE_CLAIMS[fixture]
    assert all(claim["payer"] for claim in claims)


def test_files_with_nothing_valid_fail_with_a_summary(system: System) -> None:
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        response = _upload(client, customer, _csv(["X1,Aetna,99213,,,31/31/2026,PAID,1,1,1,0,"]))
        assert response.status_code == 400
        error = response.json()
        assert "no valid claim" in error["detail"]
        assert "line 2" in error["detail"]
        info = next(d for d in error["details"] if d["@type"].endswith("ErrorInfo"))
        failed = client.get(f"/v1/{info['metadata']['upload']}").json()
        assert failed["state"] == "FAILED"
        missing = _upload(client, customer, b"claim,amount\n1,2\n")
        assert missing.status_code == 400
        assert "missing required column payer" in missing.json()["detail"]


def test_all_or_nothing_keeps_nothing_when_a_row_is_bad(system: System) -> None:
    customer = _fresh_customer()
    body = _csv(
        [
            "G1,Aetna,99213,,,2026-03-14,PAID,1,1,1,0,",
            "G2,Aetna,99213,,,2026-13-14,PAID,1,1,1,0,",
        ]
    )
    with system.client(customer, "admin") as client:
        response = _upload(client, customer, body, **{"upload.mode": "ALL_OR_NOTHING"})
        claims = client.get(f"/v1/customers/{customer}/claims").json()
        payers = client.get(f"/v1/customers/{customer}/payers").json()
        details = response.json()["details"]
        info = next(d for d in details if d["@type"].endswith("ErrorInfo"))
        rejections = client.get(f"/v1/{info['metadata']['upload']}/rejections").json()
    assert response.status_code == 400
    assert "line 3" in response.json()["detail"]
    assert info["metadata"]["problem"] == "ROWS_REJECTED"
    assert claims.get("claims", []) == []
    assert payers.get("payers", []) == []
    assert [r["lineNumber"] for r in rejections["uploadRejections"]] == ["3"]


def test_an_upload_keeps_the_column_map_it_was_read_with(system: System) -> None:
    """Headers no export spelling names: refused as a missing column (the error's problem);
    named in the request's column map, the file is read by them, and the upload says how,
    when made and whenever read again."""
    customer = _fresh_customer()
    body = b"Chart Ref,Insurer,Adjudicated,Charge,Remitted\nE1,Aetna,2026-03-14,100,80\n"
    names = {"claim_id": "Chart Ref", "payer": "Insurer", "decision_date": "Adjudicated",
             "billed_amount": "Charge", "paid_amount": "Remitted"}  # fmt: skip
    with system.client(customer, "admin") as client:
        unnamed = _upload(client, customer, body)
        made = _upload(
            client, customer, body, **{f"upload.columnMap[{k}]": v for k, v in names.items()}
        )
        assert made.status_code == 200, made.text
        again = client.get(f"/v1/{made.json()['name']}").json()
        listed = client.get(f"/v1/customers/{customer}/uploads").json()["uploads"]
        plain = _upload(client, customer, _csv(["P1,Aetna,99213,,,2026-03-14,PAID,1,1,1,0,"]))
    assert unnamed.status_code == 400
    (info,) = [d for d in unnamed.json()["details"] if d["@type"].endswith("ErrorInfo")]
    assert (info["reason"], info["metadata"]["problem"]) == ("UPLOAD_REJECTED", "MISSING_COLUMN")
    assert made.json()["rowsAccepted"] == "1"
    assert made.json()["columnMap"] == again["columnMap"] == names
    assert [u.get("columnMap", {}) for u in listed] == [names, {}]  # newest first
    assert plain.json().get("columnMap", {}) == {}


def test_daily_stats_match_a_group_by_over_the_stored_claims(
    system: System, postgres: PostgresUnderTest
) -> None:
    customer = _fresh_customer()
    rows = []
    for i in range(60):
        payer = ("Aetna", "Cigna", "Humana")[i % 3]
        day = 1 + i % 5
        denied = i % 4 == 0
        rows.append(
            f"S{i},{payer},9921{i % 3},2026-04-0{day},2026-04-0{day},2026-04-{10 + i % 7},"
            f"{'DENIED' if denied else 'PAID'},{100 + i}.00,{80 if not denied else 0},"
            f"{70 if not denied else 0},10,{'CO-50' if denied else 'CO-45'}"
        )
    with system.client(customer, "admin") as client:
        assert _upload(client, customer, _csv(rows)).status_code == 200
        streamed = client.get(
            f"/v1/customers/{customer}/dailyStats",
            params={"startDate": "2026-01-01", "endDate": "2026-12-31"},
        )
    assert streamed.status_code == 200
    stats = _stats(streamed.text)
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        expected = connection.execute(
            "SELECT payer, decision_date, count(*), count(*) FILTER (WHERE denied), "
            "sum(billed_cents) FROM ingest.claims WHERE customer_id = %s "
            "AND decision_date IS NOT NULL GROUP BY payer, decision_date ORDER BY 1, 2",
            (customer,),
        ).fetchall()
    by_cell: dict[tuple[str, str], list[int]] = {}
    for stat in stats:
        date = stat["decisionDate"]
        key = (stat["payer"], f"{date['year']}-{date['month']:02d}-{date['day']:02d}")
        cell = by_cell.setdefault(key, [0, 0, 0])
        cell[0] += int(stat["decidedClaims"])
        cell[1] += int(stat.get("deniedClaims", 0))
        cell[2] += (
            int(stat["billedAmount"]["units"]) * 100
            + stat["billedAmount"].get("nanos", 0) // 10_000_000
        )
    assert by_cell == {
        (payer, day.isoformat()): [decided, denied, billed]
        for payer, day, decided, denied, billed in expected
    }
    assert sum(c[0] for c in by_cell.values()) == 60


def test_the_series_stream_holds_exactly_the_days_of_the_day_stream(system: System) -> None:
    customer = _fresh_customer()
    # Decided over three months, each with its own mix of denial reasons; the window starts
    # and ends inside a month.
    rows = [
        f"T{i},{('Aetna', 'Cigna')[i % 2]},{('99213', '71046', '')[i % 3]},2026-03-01,"
        f"2026-03-0{1 + i % 4},2026-0{3 + i % 7 % 3}-{10 + i % 19},"
        f"{'DENIED' if i % 5 == 0 else 'PAID'},{100 + i}.00,{0 if i % 5 == 0 else 80},"
        f"{0 if i % 5 == 0 else 70},10,"
        f"{('CO-50;CO-16', 'CO-197', 'CO-4')[i % 7 % 3] if i % 5 == 0 else ''}"
        for i in range(300)
    ]
    window = {"startDate": "2026-03-15", "endDate": "2026-05-20"}
    with system.client(customer, "admin") as client:
        assert _upload(client, customer, _csv(rows)).status_code == 200
        days = client.get(f"/v1/customers/{customer}/dailyStats", params=window)
        series = client.get(f"/v1/customers/{customer}/dailyStatSeries", params=window)
        aetna = client.get(
            f"/v1/customers/{customer}/dailyStatSeries", params={**window, "payers": "Aetna"}
        )
    assert days.status_code == series.status_code == aetna.status_code == 200
    expected = {}
    for stat in _stats(days.text):
        date = stat["decisionDate"]
        expected[(stat["payer"], stat.get("codeGroup", ""), dt.date(**date))] = (
            int(stat["decidedClaims"]),
            int(stat.get("deniedClaims", 0)),
            _cents(stat["billedAmount"]),
            _cents(stat.get("paidAmount", {})),
            {int(k): int(v) for k, v in stat.get("decisionDaysHistogram", {}).items()},
            {k: int(v) for k, v in stat.get("carcCounts", {}).items()},
        )
    found = _series_days(series.text)
    assert found == expected
    assert len({(payer, group) for payer, group, _ in found}) >= 4
    assert any(carc for *_, carc in found.values())
    assert {payer for payer, _, _ in _series_days(aetna.text)} == {"Aetna"}


def test_the_series_stream_sums_entries_over_the_spans_asked_for(system: System) -> None:
    """With `entrySpanStarts`, each span's histogram and CARC entries arrive summed on one of
    its days: every span holds what its days hold, the days' amounts are untouched; too many
    span starts or a bad date are refused, naming the field."""
    customer = _fresh_customer()
    rows = [
        f"S{i},{('Aetna', 'Cigna')[i % 2]},{('99213', '71046')[i // 2 % 2]},2026-03-01,"
        f"2026-03-{1 + i % 7:02d},2026-04-{1 + i // 4 % 30:02d},"
        f"{'DENIED' if i % 5 == 0 else 'PAID'},{100 + i}.00,80,70,10,"
        f"{('CO-50', 'CO-197')[i % 3 % 2] if i % 5 == 0 else ''}"
        for i in range(400)
    ]
    window = {"startDate": "2026-04-03", "endDate": "2026-04-27"}
    starts = ["2026-03-01", "2026-04-10", "2026-04-11", "2026-04-20", "2026-05-01"]
    with system.client(customer, "admin") as client:
        assert _upload(client, customer, _csv(rows)).status_code == 200
        url = f"/v1/customers/{customer}/dailyStatSeries"
        by_day = client.get(url, params=window)
        by_span = client.get(url, params={**window, "entrySpanStarts": starts})
        too_many = client.get(url, params={**window, "entrySpanStarts": ["2026-04-10"] * 1001})
        bad_date = client.get(url, params={**window, "entrySpanStarts": ["2026-02-30"]})
    assert by_day.status_code == by_span.status_code == 200
    days, spanned = _series_days(by_day.text), _series_days(by_span.text)
    assert {key: value[:4] for key, value in spanned.items()} == {
        key: value[:4] for key, value in days.items()
    }
    span_of = [dt.date(2026, 4, 10), dt.date(2026, 4, 11), dt.date(2026, 4, 20)]

    def per_span(found: dict) -> dict:
        summed: dict = {}
        for (payer, group, day), (*_, histogram, carc) in found.items():
            span = sum(day >= first for first in span_of)
            into = summed.setdefault((payer, group, span), ({}, {}))
            for target, counts in zip(into, (histogram, carc), strict=True):
                for key, claims in counts.items():
                    target[key] = target.get(key, 0) + claims
        return summed

    assert per_span(spanned) == per_span(days)
    assert len(per_span(days)) == 4 * 4
    entries = sum(len(histogram) for *_, histogram, _ in spanned.values())
    assert entries < sum(len(histogram) for *_, histogram, _ in days.values())
    # 1001 dates make a URL of 27 KB: over the gateway's 8 KiB, refused before any service.
    assert too_many.status_code == 414
    assert bad_date.status_code == 400
    assert set(violations(bad_date)) == {"entry_span_starts[0]"}


def test_months_written_before_narrow_entries_read_as_the_same_series(
    system: System, postgres: PostgresUnderTest
) -> None:
    """An ingest told not to write narrow entries (`NARROW_MONTH_ENTRIES=false`, as while a
    release that reads only triplets still runs) keeps every month's entries as triplets;
    months written either way, and a customer's months of both kinds together, read as the
    same series, by day and by span."""
    narrow, wide = _fresh_customer(), _fresh_customer()
    rows = [
        f"W{i},{('Aetna', 'Cigna')[i % 2]},{('99213', '71046')[i // 2 % 2]},2026-03-01,"
        f"2026-03-{1 + i % 7:02d},2026-{4 + i // 200}-{1 + i // 4 % 28:02d},"
        f"{'DENIED' if i % 5 == 0 else 'PAID'},{100 + i}.00,80,70,10,"
        f"{('CO-50', 'CO-197')[i % 3 % 2] if i % 5 == 0 else ''}"
        for i in range(400)
    ]
    april, may = _csv(rows[:200]), _csv(rows[200:])
    with running_service("ingest", postgres.url("ingest", "app"), NARROW_MONTH_ENTRIES="false") as (
        _,
        target,
    ):
        _upload_over_grpc(system, wide, april, chunk_bytes=1 << 16, target=target)
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        entries = (
            "SELECT sum(length(histogram) + length(carc)), "
            "sum(length(narrow_histogram) + length(narrow_carc)) "
            "FROM ingest.daily_stat_months WHERE customer_id = %s"
        )
        assert connection.execute(entries, (wide,)).fetchone()[1] == 0
        with system.client(wide, "admin") as client:
            assert _upload(client, wide, may).status_code == 200
        with system.client(narrow, "admin") as client:
            assert _upload(client, narrow, april).status_code == 200
            assert _upload(client, narrow, may).status_code == 200
        assert connection.execute(entries, (narrow,)).fetchone()[0] == 0
    window = {"startDate": "2026-03-01", "endDate": "2026-06-30"}
    starts = {"entrySpanStarts": ["2026-04-10", "2026-05-01", "2026-05-20"]}
    read = {}
    for customer in (narrow, wide):
        with system.client(customer, "admin") as client:
            url = f"/v1/customers/{customer}/dailyStatSeries"
            read[customer] = [
                _series_days(client.get(url, params={**window, **spans}).text)
                for spans in ({}, starts)
            ]
    assert read[wide] == read[narrow]
    assert len(read[wide][0]) > 100 and any(carc for *_, carc in read[wide][0].values())


def test_adjustments_stored_with_or_without_their_zero_fields_read_the_same(
    system: System, postgres: PostgresUnderTest
) -> None:
    """An ingest told to write adjustments whole (`COMPACT_ADJUSTMENTS=false`, as while a
    release that reads only all four fields still runs) stores `cents` and `line` even where
    0; this release leaves them out. Both read as the same claims, listed and streamed as
    Arrow, and an 835's amounts and lines are kept."""
    whole, compact = _fresh_customer(), _fresh_customer()
    body = _csv(
        [
            "A1,Aetna,99213,,,2026-07-01,DENIED,10,0,0,0,CO-50;PR-1",
            "A2,Aetna,99213,,,2026-07-02,PAID,10,10,10,0,CO-45",
            "A3,Aetna,99213,,,2026-07-03,PAID,10,10,10,0,",
        ]
    )
    with running_service("ingest", postgres.url("ingest", "app"), COMPACT_ADJUSTMENTS="false") as (
        _,
        target,
    ):
        _upload_over_grpc(system, whole, body, chunk_bytes=1 << 16, target=target)
    _upload_over_grpc(system, compact, body, chunk_bytes=1 << 16)
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        stored = {
            customer: connection.execute(
                "SELECT claim_id, adjustments FROM ingest.claims WHERE customer_id = %s ORDER BY 1",
                (customer,),
            ).fetchall()
            for customer in (whole, compact)
        }
    assert stored[whole][0][1] == [
        {"group": "CO", "reason": "50", "cents": 0, "line": 0},
        {"group": "PR", "reason": "1", "cents": 0, "line": 0},
    ]
    assert stored[compact][0][1] == [
        {"group": "CO", "reason": "50"},
        {"group": "PR", "reason": "1"},
    ]
    listed, streamed = {}, {}
    for customer in (whole, compact):
        with system.client(customer, "admin") as client:
            listed[customer] = {
                claim_id: (denied, adjustments)
                for claim_id, (_, denied, *_, adjustments) in _claims_of(client, customer).items()
            }
        streamed[customer] = _arrow_adjustments(system, customer)
    assert (
        listed[whole]
        == listed[compact]
        == {
            "A1": (True, [("CO", "50", 0, 0), ("PR", "1", 0, 0)]),
            "A2": (False, [("CO", "45", 0, 0)]),
            "A3": (False, []),
        }
    )
    assert (
        streamed[whole]
        == streamed[compact]
        == {
            "A1": [("CO", "50", 0, 0), ("PR", "1", 0, 0)],
            "A2": [("CO", "45", 0, 0)],
            "A3": [],
        }
    )


def _arrow_adjustments(system: System, customer: str) -> dict[str, list[tuple]]:
    """Each claim's adjustments as the ARROW encoding of `StreamClaims` gives them."""
    request = ingest_service_pb2.StreamClaimsRequest(
        parent=f"customers/{customer}",
        start_date=date_pb2.Date(year=2026, month=7, day=1),
        end_date=date_pb2.Date(year=2026, month=7, day=31),
        encoding=ingest_service_pb2.StreamClaimsRequest.ARROW,
    )
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        messages = ingest_service_pb2_grpc.IngestServiceStub(channel).StreamClaims(
            request, metadata=[("authorization", f"Bearer {system.token(customer)}")], timeout=60
        )
        rows = [
            row
            for message in messages
            for row in pa.ipc.open_stream(message.arrow_record_batch).read_all().to_pylist()
        ]
    return {
        row["claim_id"]: [
            (a["group_code"], a["reason_code"], a["amount_cents"], a["line_number"])
            for a in row["adjustments"]
        ]
        for row in rows
    }


def _cents(money: dict) -> int:
    return int(money.get("units", 0)) * 100 + money.get("nanos", 0) // 10_000_000


def _series_days(ndjson: str) -> dict:
    """Every day of a StreamDailyStatSeries response, keyed (payer, code group, date)."""
    days = {}
    for line in ndjson.splitlines():
        for one in _json(line)["result"]["dailyStatSeries"]:
            dates = one.get("decisionDates", [])
            histograms: list[dict[int, int]] = [{} for _ in dates]
            for i, value, claims in zip(
                one.get("histogramDay", []),
                one.get("histogramDays", []),
                one.get("histogramClaims", []),
                strict=True,
            ):
                histograms[i][value] = histograms[i].get(value, 0) + int(claims)
            carcs: list[dict[str, int]] = [{} for _ in dates]
            codes = one.get("carcCodes", [])
            for i, code, claims in zip(
                one.get("carcDay", []), one.get("carcCode", []), one.get("carcClaims", []),
                strict=True,
            ):  # fmt: skip
                carcs[i][codes[code]] = carcs[i].get(codes[code], 0) + int(claims)
            for i, epoch_day in enumerate(dates):
                day = dt.date(1970, 1, 1) + dt.timedelta(days=epoch_day)
                days[(one["payer"], one.get("codeGroup", ""), day)] = (
                    int(one["decidedClaims"][i]),
                    int(one["deniedClaims"][i]),
                    int(one["billedCents"][i]),
                    int(one["paidCents"][i]),
                    histograms[i],
                    carcs[i],
                )
    return days


def test_deleting_an_upload_removes_its_claims_and_restores_statistics(system: System) -> None:
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        first = _upload(client, customer, _csv(["D1,Aetna,99213,,,2026-05-01,PAID,10,10,10,0,"]))
        second = _upload(client, customer, _csv(["D2,Aetna,99213,,,2026-05-01,PAID,20,20,20,0,"]))
        deleted = client.delete(f"/v1/{second.json()['name']}")
        assert deleted.status_code == 200
        assert client.get(f"/v1/{second.json()['name']}").status_code == 404
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
        stats = client.get(
            f"/v1/customers/{customer}/dailyStats",
            params={"startDate": "2026-05-01", "endDate": "2026-05-01"},
        ).text.splitlines()
        audit = client.get(
            f"/v1/customers/{customer}/auditLogs/ingest/entries",
            params={"filter": 'action = "DELETE"'},
        ).json()["entries"]
    assert first.status_code == 200
    assert [c["claimId"] for c in claims] == ["D1"]
    assert [s["decidedClaims"] for s in _stats("\n".join(stats))] == ["1"]
    assert [(e["resource"], e["actor"]) for e in audit] == [
        (second.json()["name"], f"admin@{customer}")
    ]


def test_two_identical_uploads_at_the_same_instant_make_one(system: System) -> None:
    customer = _fresh_customer()
    body = _csv([f"P{i},Aetna,99213,,,2026-06-01,PAID,10,10,10,0," for i in range(2000)])

    def send() -> httpx.Response:
        with system.client(customer, "admin") as client:
            return _upload(client, customer, body, key="same-instant")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda _: send(), range(2)))
    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].json()["name"] == responses[1].json()["name"]
    with system.client(customer, "admin") as client:
        uploads = client.get(f"/v1/customers/{customer}/uploads").json()["uploads"]
        payers = client.get(f"/v1/customers/{customer}/payers").json()["payers"]
    assert len(uploads) == 1
    assert [(p["canonicalPayer"], p["claimCount"]) for p in payers] == [("Aetna", "2000")]


def _stats(ndjson: str) -> list[dict]:
    """The daily statistics of a StreamDailyStats response (one message per line)."""
    return [stat for line in ndjson.splitlines() for stat in _json(line)["result"]["dailyStats"]]


def _daily_stats(client: httpx.Client, customer: str, start: str, end: str) -> list[dict]:
    """The customer's daily statistics from `start` to `end` (ISO dates) over REST."""
    streamed = client.get(
        f"/v1/customers/{customer}/dailyStats", params={"startDate": start, "endDate": end}
    )
    return _stats(streamed.text)


def _json(line: str) -> dict:
    import json

    return dict(json.loads(line))


def test_payer_mappings_repoint_claims_and_statistics(system: System) -> None:
    customer = _fresh_customer()
    body = _csv(
        [
            "M1,Northwind Health Inc.,99213,,,2026-07-01,PAID,10,10,10,0,",
            "M2,NORTHWIND,99213,,,2026-07-01,DENIED,10,0,0,0,CO-50",
            "M3,Contoso Care,99213,,,2026-07-01,PAID,10,10,10,0,",
        ]
    )
    with system.client(customer, "admin") as client:
        assert _upload(client, customer, body).status_code == 200
        unmapped = client.get(
            f"/v1/customers/{customer}/payers", params={"filter": "mapped = false"}
        ).json()["payers"]
        assert {p["rawPayerName"] for p in unmapped} == {
            "Northwind Health Inc.",
            "NORTHWIND",
            "Contoso Care",
        }
        created = client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": "northwind health inc.", "canonicalPayer": "Northwind"},
        )
        assert created.status_code == 200, created.text
        duplicate = client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": "NORTHWIND HEALTH INC.", "canonicalPayer": "Northwind"},
        )
        assert duplicate.status_code == 409
        client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": "NORTHWIND", "canonicalPayer": "Northwind"},
        )
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
        stats = _daily_stats(client, customer, "2026-07-01", "2026-07-01")
        payers = client.get(f"/v1/customers/{customer}/payers").json()["payers"]
        renamed = client.patch(
            f"/v1/{created.json()['name']}",
            params={"updateMask": "canonical_payer"},
            json={"canonicalPayer": "Northwind Commercial", "etag": created.json()["etag"]},
        )
        stale = client.patch(
            f"/v1/{created.json()['name']}",
            json={"canonicalPayer": "Other", "etag": created.json()["etag"]},
        )
        after_rename = client.get(
            f"/v1/customers/{customer}/claims", params={"filter": 'payer = "Northwind Commercial"'}
        ).json()["claims"]
    assert {c["claimId"]: c["payer"] for c in claims} == {
        "M1": "Northwind",
        "M2": "Northwind",
        "M3": "Contoso Care",
    }
    assert {(s["payer"], s["decidedClaims"], s["deniedClaims"]) for s in stats} == {
        ("Northwind", "2", "1"),
        ("Contoso Care", "1", "0"),
    }
    assert all(p["mapped"] for p in payers if p["rawPayerName"] != "Contoso Care")
    assert renamed.status_code == 200 and renamed.json()["canonicalPayer"] == "Northwind Commercial"
    assert stale.status_code == 409
    assert [c["claimId"] for c in after_rename] == ["M1"]


def test_the_national_payers_many_names_are_one_payer_without_a_mapping(system: System) -> None:
    """Files name a national payer in many words: its claims and statistics are kept under
    one canonical payer from the built-in directory, marked mapped; a line of business or a
    region stays its own payer; a mapping comes first, and once deleted the directory's name
    is back."""
    customer = _fresh_customer()
    body = _csv(
        [
            "N1,AETNA INC,99213,,,2026-07-01,PAID,10,10,10,0,",
            "N2,Aetna Life Insurance Company,99213,,,2026-07-01,DENIED,10,0,0,0,CO-50",
            "N3,UHC,99213,,,2026-07-01,PAID,10,10,10,0,",
            "N4,United Healthcare,99213,,,2026-07-01,PAID,10,10,10,0,",
            "N5,Aetna Better Health,99213,,,2026-07-01,PAID,10,10,10,0,",
        ]
    )
    with system.client(customer, "admin") as client:
        assert _upload(client, customer, body).status_code == 200
        listed = client.get(f"/v1/customers/{customer}/payers").json()["payers"]
        unmapped = client.get(
            f"/v1/customers/{customer}/payers", params={"filter": "mapped = false"}
        ).json()["payers"]
        stats = _daily_stats(client, customer, "2026-07-01", "2026-07-01")
        mapping = client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": "UHC", "canonicalPayer": "UHC Commercial"},
        ).json()
        with_mapping = _payers_of_claims(client, customer)
        assert client.delete(f"/v1/{mapping['name']}").status_code == 200
        without = _payers_of_claims(client, customer)
    assert {p["rawPayerName"]: (p["canonicalPayer"], p.get("mapped", False)) for p in listed} == {
        "AETNA INC": ("Aetna", True),
        "Aetna Life Insurance Company": ("Aetna", True),
        "UHC": ("UnitedHealthcare", True),
        "United Healthcare": ("UnitedHealthcare", True),
        "Aetna Better Health": ("Aetna Better Health", False),
    }
    assert [p["rawPayerName"] for p in unmapped] == ["Aetna Better Health"]
    assert {(s["payer"], s["decidedClaims"], s.get("deniedClaims", "0")) for s in stats} == {
        ("Aetna", "2", "1"),
        ("UnitedHealthcare", "2", "0"),
        ("Aetna Better Health", "1", "0"),
    }
    assert (with_mapping["N3"], with_mapping["N4"]) == ("UHC Commercial", "UnitedHealthcare")
    assert without == {
        "N1": "Aetna",
        "N2": "Aetna",
        "N3": "UnitedHealthcare",
        "N4": "UnitedHealthcare",
        "N5": "Aetna Better Health",
    }


def _payers_of_claims(client: httpx.Client, customer: str) -> dict[str, str]:
    claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
    return {c["claimId"]: c["payer"] for c in claims}


def test_an_835_reversal_cancels_the_claim_it_names(system: System) -> None:
    customer = _fresh_customer()
    original = (FIXTURES / "managed-care.835").read_bytes()
    # The payer takes back claim 5554555444 (CLP02 = 22), naming its claim control number.
    reversal = original.replace(
        b"CLP*5554555444*1*800.00*450.00*300.00*12*94060555410000~",
        b"CLP*5554555444*22*-800.00*-450.00*-300.00*12*94060555410000~",
    ).replace(b"CLP*8765432112*1*", b"CLP*8765432199*1*")
    assert reversal != original
    with system.client(customer, "admin") as client:
        assert _upload(client, customer, original).status_code == 200
        second = _upload(client, customer, reversal)
        claims = client.get(
            f"/v1/customers/{customer}/claims", params={"filter": 'claim_id = "5554555444"'}
        ).json()["claims"]
        stats = _daily_stats(client, customer, "2002-01-01", "2002-12-31")
        by_upload = client.get(
            f"/v1/customers/{customer}/claims",
            params={"filter": f'upload = "{second.json()["name"]}"'},
        ).json()["claims"]
    assert second.status_code == 200, second.text
    assert [c["status"] for c in claims] == ["REVERSED"]
    # The reversed claim no longer counts; the two others (one new) do.
    assert sum(int(s["decidedClaims"]) for s in stats) == 2
    assert {c["claimId"] for c in by_upload} == {"5554555444", "8765432199"}


@pytest.mark.parametrize("unmatched", [1, 2])
def test_reversals_naming_no_stored_claim_are_counted_in_a_warning(
    system: System, unmatched: int
) -> None:
    """A reversal cancels the stored claim whose payer claim number it names; those naming
    none stored (their claims in a file not uploaded yet) are said, counted, once."""
    customer = _fresh_customer()
    header = HEADER.rstrip("\n") + ",payer_claim_control_number\n"
    stored = "M1,Cigna,99213,2026-04-01,2026-04-02,2026-04-10,PAID,100.00,80.00,70.00,10.00,,ICN1"
    reversals = ["R1,Cigna,99213,,,2026-04-21,REVERSED,0,0,0,0,,ICN1"] + [
        f"R{9 + n},Cigna,99213,,,2026-04-21,REVERSED,0,0,0,0,,ICN{9 + n}" for n in range(unmatched)
    ]
    with system.client(customer, "admin") as client:
        first = _upload(client, customer, (header + stored + "\n").encode())
        second = _upload(client, customer, (header + "\n".join(reversals) + "\n").encode())
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
    assert first.status_code == second.status_code == 200, second.text
    assert {c["claimId"]: c["status"] for c in claims}["M1"] == "REVERSED"
    said = "1 reversal names" if unmatched == 1 else f"{unmatched} reversals name"
    assert [(w["code"], w["message"]) for w in second.json()["warnings"]] == [
        ("UNMATCHED_REVERSAL", f"{said} a payer claim number no stored claim has")
    ]
    assert "UNMATCHED_REVERSAL" not in {w["code"] for w in first.json().get("warnings", [])}


def test_statistics_and_payer_counts_stay_exact_through_updates_moves_and_reversals(
    system: System, postgres: PostgresUnderTest
) -> None:
    """Uploads, payer mappings and deletions change the statistics by what they change;
    after any mix of new claims, newer adjudications that move a claim to another payer,
    day, code or outcome, pending claims decided, lines of one claim, reversals, a
    remapped payer and a deleted upload, they equal a recount of the stored claims."""
    customer = _fresh_customer()
    header = HEADER.rstrip("\n") + ",payer_claim_control_number\n"

    def upload(rows: list[str]) -> str:
        body = (header + "".join(r + "\n" for r in rows)).encode()
        with system.client(customer, "admin") as client:
            response = _upload(client, customer, body)
        assert response.status_code == 200, response.text
        return str(response.json()["name"])

    upload(
        [
            f"M{i},{('Aetna', 'Cigna')[i % 2]},9921{i % 3},2026-04-01,2026-04-0{1 + i % 3},"
            f"2026-04-{10 + i % 4},{'DENIED' if i % 5 == 0 else 'PAID'},100.00,80.00,"
            f"{'0.00' if i % 5 == 0 else '70.00'},10.00,"
            f"{'CO-50;CO-97' if i % 5 == 0 else 'CO-45;PR-1'},ICN{i}"
            for i in range(40)
        ]
        + ["M90,Aetna,99213,2026-04-01,2026-04-02,,PENDING,50.00,,,,,ICN90"]
    )
    second = upload(
        [
            # Newer: moves to another day, payer name spelling, outcome and code.
            "M1,Cigna,71045,2026-04-01,2026-04-02,2026-04-20,DENIED,100.00,0,0.00,0,CO-16,ICN1",
            # Older than what is stored: changes nothing.
            "M2,Aetna,99213,2026-04-01,2026-04-02,2026-04-01,PAID,999.00,1,1,0,CO-45,ICN2",
            # Decided at last.
            "M90,Aetna,99213,2026-04-01,2026-04-02,2026-04-25,PAID,50.00,40.00,40.00,0,,ICN90",
            # Two lines of one claim: combined.
            "N1,Humana,99213,2026-04-01,2026-04-03,2026-04-12,PAID,30.00,30.00,30.00,0,,",
            "N1,Humana,99213,2026-04-01,2026-04-03,2026-04-13,DENIED,30.00,0,0,0,CO-50,",
            # Reverses stored claims by their payer claim control number.
            "R3,Cigna,99213,,,2026-04-21,REVERSED,0,0,0,0,,ICN3",
            "R4,Aetna,99213,,,2026-04-21,REVERSED,0,0,0,0,,ICN4",
        ]
    )
    statuses = _assert_statistics_match_a_recount(postgres, customer)
    assert (statuses["M3"], statuses["M4"], statuses["M1"]) == ("REVERSED", "REVERSED", "DENIED")
    assert len(statuses) == 42
    with system.client(customer, "admin") as client:
        mapped = client.post(
            f"/v1/customers/{customer}/payerMappings",
            json={"rawPayerName": "Humana", "canonicalPayer": "Cigna"},
        )
        assert mapped.status_code == 200, mapped.text
    _assert_statistics_match_a_recount(postgres, customer)
    with system.client(customer, "admin") as client:
        assert client.delete(f"/v1/{second}").status_code == 200
    statuses = _assert_statistics_match_a_recount(postgres, customer)
    assert "N1" not in statuses


def _assert_statistics_match_a_recount(
    postgres: PostgresUnderTest, customer: str
) -> dict[str, str]:
    """Compares the customer's daily statistics and payer counts with a recount of the
    stored claims; returns each claim's status."""
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        stored = connection.execute(
            "SELECT payer, code_group, decision_date, decided_claims, denied_claims, "
            "partially_denied_claims, billed_cents, allowed_cents, paid_cents, "
            "denied_billed_cents, decision_days, carc_counts FROM ingest.daily_stats "
            "WHERE customer_id = %s",
            (customer,),
        ).fetchall()
        claims = connection.execute(
            "SELECT payer, code_group, decision_date, denied, partially_denied, billed_cents, "
            "coalesce(allowed_cents, paid_cents + patient_responsibility_cents), paid_cents, "
            "decision_days, denial_codes FROM ingest.claims WHERE customer_id = %s "
            "AND status <> 'REVERSED' AND decision_date IS NOT NULL",
            (customer,),
        ).fetchall()
        counts = connection.execute(
            "SELECT p.payer_uid, p.claim_count, (SELECT count(*) FROM ingest.claims c "
            "WHERE c.customer_id = p.customer_id AND c.payer_uid = p.payer_uid) "
            "FROM ingest.payers p WHERE p.customer_id = %s",
            (customer,),
        ).fetchall()
        statuses = dict(
            connection.execute(
                "SELECT claim_id, status FROM ingest.claims WHERE customer_id = %s", (customer,)
            ).fetchall()
        )
    recount: dict[tuple, list] = {}
    for payer, group, day, denied, partial, billed, allowed, paid, days, codes in claims:
        cell = recount.setdefault((payer, group, day), [0, 0, 0, 0, 0, 0, 0, {}, {}])
        cell[0] += 1
        cell[1] += denied
        cell[2] += partial
        cell[3] += billed
        cell[4] += allowed
        cell[5] += paid
        cell[6] += billed if denied else 0
        if days is not None:
            cell[7][str(days)] = cell[7].get(str(days), 0) + 1
        for code in codes:
            cell[8][code] = cell[8].get(code, 0) + 1
    assert {(r[0], r[1], r[2]): list(r[3:]) for r in stored} == recount
    assert [count for _, count, _ in counts] == [actual for _, _, actual in counts]
    return statuses


def test_how_an_upload_is_cut_into_chunks_and_batches_never_changes_what_is_stored(
    system: System, postgres: PostgresUnderTest
) -> None:
    """The same two files, streamed over gRPC in 40-byte chunks (what is staged written
    every 7 rows while the file streams) and uploaded whole, leave the same claims,
    statistics and counts: lines of one claim across chunks, stored claims updated, and
    reversals included."""
    files = _files_with_updates_claim_lines_and_reversals()
    whole, streamed = _fresh_customer(), _fresh_customer()
    for body in files:
        with system.client(whole, "admin") as client:
            assert _upload(client, whole, body).status_code == 200
        _upload_over_grpc(system, streamed, body, chunk_bytes=40)
    assert _stored(postgres, streamed) == _stored(postgres, whole)
    statuses = _assert_statistics_match_a_recount(postgres, streamed)
    assert (statuses["B1"], statuses["B2"], statuses["C2"]) == ("REVERSED", "REVERSED", "PARTIAL")


def _files_with_updates_claim_lines_and_reversals() -> list[bytes]:
    """Two files: new claims, then newer adjudications of some, new claims of which one
    has a second line late in the file, and reversals of two stored claims (B1 and B2)."""
    header = HEADER.rstrip("\n") + ",payer_claim_control_number\n"
    first = [
        f"B{i},{('Aetna', 'Cigna', 'Humana')[i % 3]},9921{i % 3},2026-05-01,2026-05-02,"
        f"2026-05-{10 + i % 5},{'DENIED' if i % 4 == 0 else 'PAID'},100.00,80.00,"
        f"{'0.00' if i % 4 == 0 else '70.00'},10.00,{'CO-50' if i % 4 == 0 else 'CO-45'},ICN{i}"
        for i in range(30)
    ]
    second = [
        *(
            f"B{i},Aetna,71045,2026-05-01,2026-05-02,2026-05-20,PAID,90.00,90.00,90.00,0,,ICN{i}"
            for i in range(0, 30, 3)
        ),
        *(f"C{i},Cigna,99213,,,2026-05-21,PAID,10.00,10.00,10.00,0,,X{i}" for i in range(12)),
        # A second line of C2, late in the file and in another batch: combined with the
        # first, a paid and a denied line make a partially paid claim.
        "C2,Cigna,99213,,,2026-05-19,DENIED,10.00,0,0,0,CO-97,X2",
        "R1,Cigna,99213,,,2026-05-22,REVERSED,0,0,0,0,,ICN1",
        "R2,Humana,99213,,,2026-05-22,REVERSED,0,0,0,0,,ICN2",
    ]
    return [(header + "".join(r + "\n" for r in rows)).encode() for rows in (first, second)]


def _upload_over_grpc(
    system: System, customer: str, body: bytes, *, chunk_bytes: int, target: str = ""
) -> resources_pb2.Upload:
    """The upload of `body` sent to ingest (the system's, or the one at `target`) in chunks
    of `chunk_bytes`."""

    def requests() -> Iterator[ingest_service_pb2.CreateUploadRequest]:
        yield ingest_service_pb2.CreateUploadRequest(
            parent=f"customers/{customer}", upload=resources_pb2.Upload(file_name="f.csv")
        )
        for at in range(0, len(body), chunk_bytes):
            request = ingest_service_pb2.CreateUploadRequest()
            request.http_body.data = body[at : at + chunk_bytes]
            yield request

    with grpc.insecure_channel(target or system.targets["ingest"]) as channel:
        upload = ingest_service_pb2_grpc.IngestServiceStub(channel).CreateUpload(
            requests(),
            metadata=[("authorization", f"Bearer {system.token(customer)}")],
            timeout=60,
        )
    assert upload.state == resources_pb2.Upload.SUCCEEDED
    return upload


def _stored(postgres: PostgresUnderTest, customer: str) -> tuple[list, list, list]:
    """A customer's claims, statistics and payer counts, without the customer's own ids."""
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        claims = connection.execute(
            "SELECT claim_id, payer, status, denied, decision_date, billed_cents, paid_cents, "
            "denial_codes, source_line FROM ingest.claims WHERE customer_id = %s ORDER BY 1",
            (customer,),
        ).fetchall()
        stats = connection.execute(
            "SELECT payer, code_group, decision_date, decided_claims, denied_claims, "
            "billed_cents, decision_days, carc_counts FROM ingest.daily_stats "
            "WHERE customer_id = %s ORDER BY 1, 2, 3",
            (customer,),
        ).fetchall()
        payers = connection.execute(
            "SELECT raw_name, claim_count FROM ingest.payers WHERE customer_id = %s ORDER BY 1",
            (customer,),
        ).fetchall()
    return claims, stats, payers


async def test_claims_merged_by_key_at_the_end_are_stored_as_claims_copied_directly(
    system: System, postgres: PostgresUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New claims are copied straight into the claims table only when they are certainly
    new; a claim the upload's filter of seen claims calls seen (rarely wrong for a new one)
    is merged by key at the end. With a filter so small that it calls nearly every claim
    seen, the same files leave exactly what they leave through the gateway."""
    files = _files_with_updates_claim_lines_and_reversals()
    through_gateway, merged = _fresh_customer(), _fresh_customer()
    for body in files:
        with system.client(through_gateway, "admin") as client:
            assert _upload(client, through_gateway, body).status_code == 200
    monkeypatch.setattr(SeenClaims, "BITS", 8)
    engine = create_async_engine(postgres.url("ingest"))
    try:
        store = IngestStore(engine)
        for body in files:
            await _write_in_process(store, merged, body)
    finally:
        await engine.dispose()
    assert _stored(postgres, merged) == _stored(postgres, through_gateway)
    statuses = _assert_statistics_match_a_recount(postgres, merged)
    assert (statuses["B1"], statuses["B2"], statuses["C2"]) == ("REVERSED", "REVERSED", "PARTIAL")


async def _write_in_process(store: IngestStore, customer: str, body: bytes) -> None:
    """An upload through the use case in this process, the file sent in small chunks."""

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 100):
            yield body[at : at + 100]

    intake = UploadIntake(store, max_upload_bytes=1 << 20, merge_every=5)
    upload = await intake.create(UploadRequest(customer, "test", "f.csv"), chunks())
    assert upload.state == "SUCCEEDED"


def test_the_migration_packs_stored_statistics_as_uploads_keep_them_packed(
    system: System, postgres: PostgresUnderTest
) -> None:
    """Statistics stored before the packed months existed are packed by the migration that
    adds them exactly as every write packs them since."""
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        for body in _files_with_updates_claim_lines_and_reversals():
            assert _upload(client, customer, body).status_code == 200
    migration = importlib.import_module(
        "services.ingest.migrations.versions.0003_daily_stat_months"
    )
    query = (
        "SELECT payer, code_group, month, days, amounts, histogram, carc_codes, carc, "
        "narrow_histogram, narrow_carc FROM ingest.daily_stat_months WHERE customer_id = %s "
        "ORDER BY 1, 2, 3"
    )
    with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as connection:
        kept = connection.execute(query, (customer,)).fetchall()
        connection.execute(
            "DELETE FROM ingest.daily_stat_months WHERE customer_id = %s", (customer,)
        )
        connection.execute(
            migration._PACK_EVERY_MONTH.replace(
                "AS month) m\n", "AS month) m WHERE s.customer_id = %s\n", 1
            ),
            (customer,),
        )
        packed = connection.execute(query, (customer,)).fetchall()
        connection.rollback()
    assert len(kept) >= 2
    assert [_by_day_and_code(row) for row in packed] == [_by_day_and_code(row) for row in kept]


def _by_day_and_code(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A packed month's row with its entries, triplets and narrow ones, as (day index, days to
    decision or code, claims) in order: readers take a day's CARC entries in any order, and
    the migration leaves it unstated (nor did it know narrow entries)."""
    *key, histogram, codes, carc, narrow_histogram, narrow_carc = row
    carc_entries = sorted(
        (day, codes[code], n) for day, code, n in month_entries(carc, narrow_carc)
    )
    return (*key, month_entries(histogram, narrow_histogram), codes, carc_entries)


def test_a_series_stream_given_up_midway_leaves_the_next_ones_whole(system: System) -> None:
    """A reader that stops after the first message (its call cancelled while ingest reads
    ahead) costs nothing to the streams after it: each still holds every series."""
    customer = _fresh_customer()
    # 60 payers × 2 code groups × 200 days (7 months): more packed months than ingest fetches
    # at once, and more series than one message holds.
    first = dt.date(2026, 1, 1)
    rows = [
        f"M{i},Payer {i % 60:02d},{('99213', '71046')[i // 60 % 2]},2025-12-01,2025-12-01,"
        f"{first + dt.timedelta(days=i // 120 % 200)},PAID,100.00,80,70,10,"
        for i in range(24_000)
    ]
    _upload_over_grpc(system, customer, _csv(rows), chunk_bytes=1 << 16)
    request = ingest_service_pb2.StreamDailyStatSeriesRequest(
        parent=f"customers/{customer}",
        start_date=date_pb2.Date(year=2026, month=1, day=1),
        end_date=date_pb2.Date(year=2026, month=12, day=31),
        encoding=ingest_service_pb2.StreamDailyStatSeriesRequest.PACKED,
        entry_span_starts=[date_pb2.Date(year=2026, month=6, day=1)],
    )
    metadata = [("authorization", f"Bearer {system.token(customer)}")]
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        for _ in range(12):
            call = stub.StreamDailyStatSeries(request, metadata=metadata, timeout=60)
            next(call)
            call.cancel()
            whole = list(stub.StreamDailyStatSeries(request, metadata=metadata, timeout=60))
            assert len(whole) > 1
            cells = [(s.payer, s.code_group) for m in whole for s in m.daily_stat_series]
            assert len(cells) == len(set(cells)) == 120
    # Every call is counted, those given up on midway as CANCELLED (a stream is closed a
    # moment after its call; one that was sent whole before the client gave up is OK).
    deadline = time.monotonic() + 10
    while True:
        metrics = _metrics(system, "ingest")
        started, handled = (
            {
                labels: float(count)
                for labels, count in re.findall(
                    rf"grpc_server_{kind}_total\{{([^}}]*StreamDailyStatSeries[^}}]*)\}} (\S+)",
                    metrics,
                )
            }
            for kind in ("started", "handled")
        )
        done = sum(handled.values()) == sum(started.values()) >= 24
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert done, (started, handled)
    assert any('grpc_code="CANCELLED"' in labels for labels in handled)


def _metrics(system: System, service: str) -> str:
    return httpx.get(f"http://127.0.0.1:{system.metrics_ports[service]}/metrics").text


# --- Line-level CSV exports ----------------------------------------------------------------

LINE_LEVEL_EXPORT = (FIXTURES_DIR / "csv" / "line-level-export.csv").read_bytes()
# The fixture's 18 lines as the 4 claims they make, summed by hand from the file: status,
# denied, partially denied; billed, allowed, paid and patient responsibility in cents; the
# earliest service date, the latest decision date; procedure codes in order of appearance;
# CARCs as (group, reason, cents, line of the claim).
LINE_LEVEL_CLAIMS = {
    "CLM-1001": (
        "PAID", False, False, 220000, 195786, 192286, 3500, dt.date(2026, 2, 3),
        dt.date(2026, 2, 26), ["99215", "93000"],
        [("CO", "45", 15714, 1), ("CO", "45", 8500, 2)],
    ),
    "CLM-1002": (
        "PARTIAL", False, True, 167000, 76950, 72950, 4000, dt.date(2026, 2, 10),
        dt.date(2026, 3, 5),
        ["99223", "99232", "80053", "85025", "71046", "93005", "36415", "J1100", "99238"],
        [
            ("CO", "45", 17000, 1), ("CO", "45", 7000, 2), ("CO", "45", 7000, 3),
            ("CO", "45", 8050, 4), ("CO", "45", 5000, 5), ("CO", "97", 18000, 6),
            ("CO", "97", 12000, 7), ("CO", "45", 2200, 8), ("CO", "45", 3800, 9),
            ("CO", "45", 10000, 10),
        ],
    ),
    "CLM-1003": (
        "DENIED", True, False, 57000, 0, 0, 0, dt.date(2026, 2, 17), dt.date(2026, 3, 10),
        ["97110", "97140", "97112"],
        [("CO", "50", 15000, 1), ("CO", "50", 13000, 2), ("CO", "50", 15000, 3),
         ("CO", "50", 14000, 4)],
    ),
    "CLM-1004": (
        "PAID", False, False, 22500, 11495, 9495, 2000, dt.date(2026, 3, 2),
        dt.date(2026, 3, 20), ["99213", "87880"],
        [("PR", "3", 2000, 1), ("CO", "45", 2845, 2)],
    ),
}  # fmt: skip
# The daily statistics of those claims: (payer, decision date) → decided, denied, partially
# denied, billed and paid cents, days from submission to decision, denial codes.
LINE_LEVEL_STATISTICS = {
    ("Aetna", dt.date(2026, 2, 26)): (1, 0, 0, 220000, 192286, {21: 1}, {}),
    ("Blue Cross Blue Shield", dt.date(2026, 3, 5)): (1, 0, 1, 167000, 72950, {19: 1},
                                                      {"CO-97": 1}),
    ("Cigna", dt.date(2026, 3, 10)): (1, 1, 0, 57000, 0, {18: 1}, {"CO-50": 1}),
    ("Humana", dt.date(2026, 3, 20)): (1, 0, 0, 22500, 9495, {17: 1}, {}),
}  # fmt: skip


def _claims_of(client: httpx.Client, customer: str) -> dict[str, tuple]:
    """The customer's claims through the API, in the shape of LINE_LEVEL_CLAIMS."""
    claims = client.get(f"/v1/customers/{customer}/claims").json().get("claims", [])
    return {
        c["claimId"]: (
            c["status"], c.get("denied", False), c.get("partiallyDenied", False),
            _cents(c["billedAmount"]), _cents(c.get("allowedAmount", {})),
            _cents(c.get("paidAmount", {})), _cents(c.get("patientResponsibility", {})),
            _date(c.get("serviceDate")), _date(c.get("decisionDate")),
            c.get("procedureCodes", []),
            [
                (a["groupCode"], a["reasonCode"], _cents(a["amount"]), a.get("lineNumber", 0))
                for a in c.get("adjustments", [])
            ],
        )
        for c in claims
    }  # fmt: skip


def _date(message: dict | None) -> dt.date | None:
    return None if message is None else dt.date(**message)


def _statistics_of(client: httpx.Client, customer: str) -> dict[tuple[str, dt.date], tuple]:
    """The customer's daily statistics of 2026 through the API, in the shape of
    LINE_LEVEL_STATISTICS (code groups summed)."""
    response = client.get(
        f"/v1/customers/{customer}/dailyStats",
        params={"startDate": "2026-01-01", "endDate": "2026-12-31"},
    )
    assert response.status_code == 200, response.text
    found: dict[tuple[str, dt.date], list] = {}
    for stat in _stats(response.text):
        cell = found.setdefault(
            (stat["payer"], dt.date(**stat["decisionDate"])), [0, 0, 0, 0, 0, {}, {}]
        )
        cell[0] += int(stat["decidedClaims"])
        cell[1] += int(stat.get("deniedClaims", 0))
        cell[2] += int(stat.get("partiallyDeniedClaims", 0))
        cell[3] += _cents(stat["billedAmount"])
        cell[4] += _cents(stat.get("paidAmount", {}))
        for days, n in stat.get("decisionDaysHistogram", {}).items():
            cell[5][int(days)] = cell[5].get(int(days), 0) + int(n)
        for code, n in stat.get("carcCounts", {}).items():
            cell[6][code] = cell[6].get(code, 0) + int(n)
    return {key: tuple(value) for key, value in found.items()}


def test_a_line_level_export_stores_each_claim_once_with_its_lines_combined(
    system: System,
) -> None:
    """18 lines of 4 claims make 4 claims: amounts summed (a claim paid 1,057.86 and 865.00
    on its lines is paid 1,922.86), the earliest service date, the latest decision date,
    every code; the upload says how many lines became how many claims, the statistics count
    4 claims, and sending the file again changes nothing."""
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        response = _upload(client, customer, LINE_LEVEL_EXPORT, key="line-level")
        assert response.status_code == 200, response.text
        upload = response.json()
        stored = _claims_of(client, customer)
        statistics = _statistics_of(client, customer)
        series = client.get(
            f"/v1/customers/{customer}/dailyStatSeries",
            params={"startDate": "2026-01-01", "endDate": "2026-12-31"},
        )
        again = _upload(client, customer, LINE_LEVEL_EXPORT, key="line-level").json()
        same_content = _upload(client, customer, LINE_LEVEL_EXPORT, key="another-key").json()
        stored_after = _claims_of(client, customer)
        statistics_after = _statistics_of(client, customer)
        uploads = client.get(f"/v1/customers/{customer}/uploads").json()["uploads"]
    assert (upload["rowsRead"], upload["rowsAccepted"], upload["claimsAccepted"]) == (
        "18",
        "18",
        "4",
    )
    assert upload.get("rowsRejected", "0") == "0"
    assert ("LINES_COMBINED", "18 lines were combined into 4 claims") in [
        (w["code"], w["message"]) for w in upload["warnings"]
    ]
    assert stored["CLM-1001"][5] == 192286  # 1,057.86 + 865.00
    assert stored == LINE_LEVEL_CLAIMS
    assert statistics == LINE_LEVEL_STATISTICS
    # What drift reads: the same 4 claims (one code group each).
    assert series.status_code == 200, series.text
    by_cell = _series_days(series.text)
    drift_reads = {(payer, day): cell for (payer, _, day), cell in by_cell.items()}
    assert drift_reads == {
        key: (decided, denied, billed, paid, histogram, carc)
        for key, (decided, denied, _, billed, paid, histogram, carc) in (
            LINE_LEVEL_STATISTICS.items()
        )
    }
    assert again["name"] == same_content["name"] == upload["name"]
    assert [u["name"] for u in uploads] == [upload["name"]]
    assert (stored_after, statistics_after) == (stored, statistics)


def _interleaved(export: bytes) -> bytes:
    """The export's rows taken a claim at a time, round-robin: every claim's lines lie apart,
    each claim's own lines still in their order."""
    header, *rows = export.decode().splitlines()
    by_claim: dict[str, list[str]] = {}
    for row in rows:
        by_claim.setdefault(row.split(",")[0], []).append(row)
    queues = list(by_claim.values())
    mixed = [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]
    assert sorted(mixed) == sorted(rows) and mixed != rows
    return ("\n".join([header, *mixed]) + "\n").encode()


def test_lines_of_a_claim_in_different_chunks_and_merge_batches_make_the_same_claim(
    system: System, postgres: PostgresUnderTest
) -> None:
    """Sent in 50-byte chunks to an ingest that writes what it staged every 2 rows, the
    export, and the same rows interleaved claim by claim for a customer who has an older
    adjudication of one of the claims stored, leave the claims the whole file leaves, the
    older one replaced; the statistics stay those of the stored claims."""
    whole, streamed, interleaved = (_fresh_customer() for _ in range(3))
    with system.client(whole, "admin") as client:
        assert _upload(client, whole, LINE_LEVEL_EXPORT).status_code == 200
        expected = _claims_of(client, whole)
    older = _csv(["CLM-1001,Aetna,99215,2026-02-03,2026-02-05,2026-02-20,PAID,10,10,10,0,"])
    with system.client(interleaved, "admin") as client:
        assert _upload(client, interleaved, older).status_code == 200
    with running_service("ingest", postgres.url("ingest", "app"), UPLOAD_MERGE_ROWS="2") as (
        _,
        target,
    ):
        as_is = _upload_over_grpc(
            system, streamed, LINE_LEVEL_EXPORT, chunk_bytes=50, target=target
        )
        mixed = _upload_over_grpc(
            system, interleaved, _interleaved(LINE_LEVEL_EXPORT), chunk_bytes=50, target=target
        )
    assert (as_is.rows_accepted, as_is.claims_accepted) == (18, 4)
    assert (mixed.rows_accepted, mixed.claims_accepted, mixed.rows_updated) == (18, 4, 1)
    with system.client(streamed, "admin") as client:
        assert _claims_of(client, streamed) == expected
    with system.client(interleaved, "admin") as client:
        assert _claims_of(client, interleaved) == expected
        assert _statistics_of(client, interleaved) == LINE_LEVEL_STATISTICS
    assert _stored(postgres, streamed) == _stored(postgres, whole)
    for customer in (streamed, interleaved):
        _assert_statistics_match_a_recount(postgres, customer)


def _upload_sent(
    system: System, client: httpx.Client, customer: str, body: bytes, send: str
) -> dict[str, Any]:
    """The upload of `body`, sent "whole" through the gateway or "in chunks" of 40 bytes
    over gRPC, as the gateway shows it."""
    if send == "whole":
        response = _upload(client, customer, body)
        assert response.status_code == 200, response.text
        return dict(response.json())
    message = _upload_over_grpc(system, customer, body, chunk_bytes=40)
    return dict(client.get(f"/v1/{message.name}").json())


def test_lines_of_one_claim_id_that_name_different_payers_are_rejected_together(
    system: System, postgres: PostgresUnderTest
) -> None:
    """Every line of a claim id whose lines name two payers is rejected, naming the payer
    column and both payers; nothing of it is stored (its claim from an earlier upload stays
    as it was), and the other claims of the file are stored as usual, whether the lines
    come in one chunk or in many."""
    rows = [
        "K1,Aetna,99213,2026-03-01,2026-03-02,2026-03-14,PAID,100.00,80.00,80.00,0,",
        "K2,Aetna,99213,2026-03-01,2026-03-02,2026-03-14,PAID,50.00,40.00,40.00,0,",
        "K1,Cigna,99214,2026-03-01,2026-03-02,2026-03-15,PAID,70.00,60.00,60.00,0,",
        "K3,Cigna,71046,2026-03-01,2026-03-02,2026-03-15,PAID,30.00,30.00,30.00,0,",
        "K3,Cigna,71045,2026-03-01,2026-03-02,2026-03-16,PAID,20.00,20.00,20.00,0,",
        "K1,AETNA,99215,2026-03-01,2026-03-02,2026-03-16,PAID,90.00,90.00,90.00,0,",
    ]
    earlier = _csv(["K1,Aetna,99213,2026-03-01,2026-03-02,2026-03-10,PAID,5.00,5.00,5.00,0,"])
    for send in ("whole", "in chunks"):
        customer = _fresh_customer()
        with system.client(customer, "admin") as client:
            assert _upload(client, customer, earlier).status_code == 200
            upload = _upload_sent(system, client, customer, _csv(rows), send)
            rejections = client.get(f"/v1/{upload['name']}/rejections").json()
            stored = _claims_of(client, customer)
        assert (upload["rowsAccepted"], upload["claimsAccepted"], upload["rowsRejected"]) == (
            "3",
            "2",
            "3",
        ), send
        found = rejections["uploadRejections"]
        assert [(r["lineNumber"], r["column"], r["code"]) for r in found] == [
            ("2", "payer", "CONFLICTING_PAYER"),
            ("4", "payer", "CONFLICTING_PAYER"),
            ("7", "payer", "CONFLICTING_PAYER"),
        ], send
        assert all("'Aetna'" in r["reason"] and "'Cigna'" in r["reason"] for r in found)
        assert [r["rawValue"] for r in found] == ["Aetna", "Cigna", "Aetna"]
        assert {claim_id: claim[3:6] for claim_id, claim in stored.items()} == {
            "K1": (500, 500, 500),  # as the earlier upload stored it
            "K2": (5000, 4000, 4000),
            "K3": (5000, 5000, 5000),
        }, send
        _assert_statistics_match_a_recount(postgres, customer)


def test_an_uploads_dates_and_payers_are_those_of_the_claims_it_keeps(system: System) -> None:
    """Lines refused for naming two payers leave nothing in the upload's decision dates or
    payers, nor a payer only they named in the customer's payer list; a claim whose lines lie
    apart counts with its decision date (its latest line's)."""
    rows = [
        "K9,Humana,99213,2025-12-01,2025-12-02,2026-01-05,PAID,10.00,10.00,10.00,0,",
        "A1,Aetna,99213,2026-03-01,2026-03-02,2026-03-14,PAID,50.00,40.00,40.00,0,",
        "C1,Cigna,71046,2026-03-01,2026-03-02,2026-03-10,PAID,30.00,30.00,30.00,0,",
        *[
            f"A{n},Aetna,99213,2026-03-01,2026-03-02,2026-03-15,PAID,5.00,5.00,5.00,0,"
            for n in range(2, 12)
        ],
        "C1,Cigna,71045,2026-03-01,2026-03-02,2026-03-20,PAID,20.00,20.00,20.00,0,",
        "K9,Kaiser,99214,2026-06-01,2026-06-02,2026-06-30,PAID,70.00,60.00,60.00,0,",
    ]
    for send in ("whole", "in chunks"):
        customer = _fresh_customer()
        with system.client(customer, "admin") as client:
            upload = _upload_sent(system, client, customer, _csv(rows), send)
            payers = client.get(f"/v1/customers/{customer}/payers").json()["payers"]
        assert (upload["rowsAccepted"], upload["claimsAccepted"], upload["rowsRejected"]) == (
            "13",
            "12",
            "2",
        ), send
        assert upload["payers"] == ["Aetna", "Cigna"], send
        assert (upload["firstDecisionDate"], upload["lastDecisionDate"]) == (
            {"year": 2026, "month": 3, "day": 14},
            {"year": 2026, "month": 3, "day": 20},
        ), send
        assert sorted(p["canonicalPayer"] for p in payers) == ["Aetna", "Cigna"], send


def test_an_uploads_first_decision_date_is_one_a_claim_it_keeps_is_decided_on(
    system: System,
) -> None:
    """A claim whose lines lie apart is decided on its latest line's date: the date of its
    earlier line is the upload's first decision date only when another claim the upload
    keeps is decided on it."""
    alone = [
        "L1,Aetna,99213,2026-01-20,2026-01-21,2026-02-01,PAID,10.00,10.00,10.00,0,",
        "M1,Aetna,99213,2026-03-01,2026-03-02,2026-03-10,PAID,10.00,10.00,10.00,0,",
        "M2,Cigna,99213,2026-03-01,2026-03-02,2026-03-12,PAID,10.00,10.00,10.00,0,",
        "L1,Aetna,99214,2026-03-01,2026-03-02,2026-03-18,PAID,20.00,20.00,20.00,0,",
    ]
    shared = [*alone, "M3,Cigna,99213,2026-01-20,2026-01-21,2026-02-01,PAID,9.00,9.00,9.00,0,"]
    for rows, first in ((alone, 10), (shared, 1)):
        for send in ("whole", "in chunks"):
            customer = _fresh_customer()
            with system.client(customer, "admin") as client:
                upload = _upload_sent(system, client, customer, _csv(rows), send)
            assert upload["claimsAccepted"] == str(len(rows) - 1), send
            assert (upload["firstDecisionDate"], upload["lastDecisionDate"]) == (
                {"year": 2026, "month": 3 if first == 10 else 2, "day": first},
                {"year": 2026, "month": 3, "day": 18},
            ), (send, len(rows))


def test_adjustments_in_split_columns_are_the_claims_carcs(system: System) -> None:
    """`adj_N_group` / `adj_N_code` / `adj_N_amount` columns are read as an 835's CAS
    adjustments; a value that is no group code or no amount rejects its row, naming the
    column and line."""
    customer = _fresh_customer()
    body = (
        b"claim_id,payer,decision_date,billed_amount,paid_amount,adj_0_group,adj_0_code,"
        b"adj_0_amount,adj_1_group,adj_1_code,adj_1_amount\n"
        b"A1,Aetna,2026-03-14,100.00,60.00,CO,45,30.00,PR,1,10.00\n"
        b"A2,Aetna,2026-03-14,100.00,0.00,co,B7,100.00,,,\n"
        b"A3,Aetna,2026-03-14,100.00,0.00,CO,45,100.00,XX,50,1.00\n"
        b"A4,Aetna,2026-03-14,100.00,0.00,CO,50,ten,,,\n"
    )
    with system.client(customer, "admin") as client:
        response = _upload(client, customer, body)
        assert response.status_code == 200, response.text
        stored = _claims_of(client, customer)
        rejections = client.get(f"/v1/{response.json()['name']}/rejections").json()
    assert {claim_id: (claim[0], claim[10]) for claim_id, claim in stored.items()} == {
        "A1": ("PAID", [("CO", "45", 3000, 0), ("PR", "1", 1000, 0)]),
        "A2": ("DENIED", [("CO", "B7", 10000, 0)]),
    }
    assert [
        (r["lineNumber"], r["column"], r["code"], r["rawValue"])
        for r in rejections["uploadRejections"]
    ] == [("4", "adj_1_group", "BAD_GROUP_CODE", "XX"), ("5", "adj_0_amount", "BAD_AMOUNT", "ten")]


def test_without_a_status_column_a_claim_paid_nothing_for_a_denial_reason_is_denied(
    system: System,
) -> None:
    """With no status in the file, the status is what the denial rules make of the claim,
    as for an 835: nothing paid for CO-50 is DENIED, a paid claim PAID, nothing paid for the
    patient's deductible (PR-1) PAID."""
    customer = _fresh_customer()
    body = (
        b"Claim Number,Payer,Remit Date,Billed,Paid,CARC\n"
        b"Z1,Aetna,2026-03-14,250.00,0.00,CO-50\n"
        b"Z2,Aetna,2026-03-14,250.00,200.00,CO-45\n"
        b"Z3,Aetna,2026-03-14,250.00,0.00,PR-1\n"
    )
    with system.client(customer, "admin") as client:
        assert _upload(client, customer, body).status_code == 200
        stored = _claims_of(client, customer)
        denied = client.get(
            f"/v1/customers/{customer}/claims", params={"filter": "denied = true"}
        ).json()["claims"]
    assert {claim_id: claim[:2] for claim_id, claim in stored.items()} == {
        "Z1": ("DENIED", True),
        "Z2": ("PAID", False),
        "Z3": ("PAID", False),
    }
    assert [c["claimId"] for c in denied] == ["Z1"]


def test_a_gzip_compressed_file_is_read_as_the_file_inside(system: System) -> None:
    """A file sent with `Content-Encoding: gzip`, or a `.csv.gz` sent as it is, is the CSV it
    holds: the same rows, rejections, size and content digest as the CSV sent plainly."""
    body = _csv(
        [
            "Z1,Aetna,99213,2026-03-01,2026-03-02,2026-03-14,PAID,150.00,100.00,80.00,20.00,",
            "Z2,Aetna,99214,2026-03-01,2026-03-02,2026-03-20,DENIED,1200,0,0,0,CO-50",
            "Z3,Cigna,71046,2026-03-01,2026-03-03,not-a-date,PAID,90,60,60,0,",
        ]
    )
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        sent = client.post(
            f"/v1/customers/{customer}/uploads",
            content=gzip.compress(body),
            headers={"content-type": "text/csv", "content-encoding": "gzip"},
            params={"upload.fileName": "march.csv"},
        )
        assert sent.status_code == 200, sent.text
        upload = sent.json()
        assert (upload["state"], upload["rowsAccepted"], upload["rowsRejected"]) == (
            "SUCCEEDED",
            "2",
            "1",
        )
        assert upload["sizeBytes"] == str(len(body))
        assert upload["sha256"] == hashlib.sha256(body).hexdigest()
        rejections = client.get(f"/v1/{upload['name']}/rejections").json()["uploadRejections"]
        assert [(r["lineNumber"], r["column"], r["code"]) for r in rejections] == [
            ("4", "decision_date", "BAD_DATE")
        ]
        # The same content sent plainly is the same upload, not a second one.
        assert _upload(client, customer, body).json()["name"] == upload["name"]
    # Over gRPC, a gzip file in chunks of a few bytes (the magic number cut in two).
    other = _fresh_customer()
    stored = _upload_over_grpc(system, other, gzip.compress(body), chunk_bytes=7)
    assert (stored.rows_accepted, stored.rows_rejected, stored.sha256) == (
        2,
        1,
        hashlib.sha256(body).hexdigest(),
    )


def test_a_body_in_a_coding_the_route_does_not_read_is_415(system: System) -> None:
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        brotli_file = client.post(
            f"/v1/customers/{customer}/uploads",
            content=b"\x1b\x03\x00\xf8" * 4096,
            headers={"content-type": "text/csv", "content-encoding": "br"},
        )
        gzip_json = client.post(
            f"/v1/customers/{customer}/payerMappings",
            content=gzip.compress(b'{"rawPayerName": "AETNA INC", "canonicalPayer": "Aetna"}'),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        for refused, accepted in ((brotli_file, "gzip"), (gzip_json, "identity")):
            assert refused.status_code == 415
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["accept-encoding"] == accepted
            assert refused.json()["violations"][0]["field"] == "Content-Encoding"
        assert client.get(f"/v1/customers/{customer}/uploads").json().get("uploads", []) == []
        assert (
            client.get(f"/v1/customers/{customer}/payerMappings").json().get("payerMappings", [])
            == []
        )


def test_a_damaged_old_workbook_or_a_cut_short_gzip_file_is_refused_with_what_to_send(
    system: System,
) -> None:
    customer = _fresh_customer()
    old_workbook = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2048)
    packed = gzip.compress(
        _csv([f"W{i},Aetna,99213,,,2026-03-14,PAID,1,1,1,0," for i in range(999)])
    )
    with system.client(customer, "admin") as client:
        refused = _upload(client, customer, old_workbook, **{"upload.fileName": "q1.xls"})
        assert refused.status_code == 400
        assert refused.json()["detail"] == (
            "q1.xls: the Excel 97-2003 workbook (.xls) cannot be read (CompDocError: Expected "
            "\"little-endian\" marker, found b'\\x00\\x00'); save it again, or as CSV"
        )
        cut = _upload(client, customer, packed[: len(packed) // 2])
        assert cut.status_code == 400
        assert "the gzip data ends early" in cut.json()["detail"]
        assert client.get(f"/v1/customers/{customer}/claims").json().get("claims", []) == []


def test_an_excel_workbook_or_a_zipped_export_is_read_as_the_claims_it_holds(
    system: System,
) -> None:
    """A workbook is read as its claims sheet, though it opens on a cover sheet (a title row
    above the header skipped, a rejection's line its row); a ZIP archive of one export as that
    export."""
    book = Workbook()
    sheet = book.active
    sheet.title = "Remits"
    cover = book.create_sheet("Cover", 0)
    cover.append(["Prepared for the March close"])
    book.active = 0
    sheet.append(["Remittances, March 2026"])
    sheet.append(["Claim #", "Payer Name", "CPT", "Remit Date", "Status", "Billed", "Paid"])
    sheet.append([5001, "Aetna", 99213, dt.datetime(2026, 3, 14), "Paid", 150.25, 120])
    sheet.append([5002, "Cigna", 71046, dt.datetime(2026, 3, 16), "Denied", 90, 0])
    sheet.append([5003, "Cigna", 71046, "pending?", "Paid", 90, 90])
    out = io.BytesIO()
    book.save(out)
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        sent = client.post(
            f"/v1/customers/{customer}/uploads",
            files={"file": ("march.xlsx", out.getvalue(), "application/vnd.ms-excel")},
        )
        assert sent.status_code == 200, sent.text
        upload = sent.json()
        assert (upload["fileName"], upload["rowsAccepted"], upload["rowsRejected"]) == (
            "march.xlsx",
            "2",
            "1",
        )
        assert [w["code"] for w in upload["warnings"]] == ["SHEET_CHOSEN", "LINES_ABOVE_HEADER"]
        assert "its sheet 'Remits' was read" in upload["warnings"][0]["message"]
        # Its size and digest are the workbook's, as sent (not those of the text read from it).
        assert (upload["sizeBytes"], upload["sha256"]) == (
            str(len(out.getvalue())),
            hashlib.sha256(out.getvalue()).hexdigest(),
        )
        rejections = client.get(f"/v1/{upload['name']}/rejections").json()["uploadRejections"]
        assert [(r["lineNumber"], r["column"]) for r in rejections] == [("5", "decision_date")]
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
        assert sorted((c["claimId"], c["status"], c["billedAmount"]["units"]) for c in claims) == [
            ("5001", "PAID", "150"),
            ("5002", "DENIED", "90"),
        ]
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(
                "export/april.csv", _csv(["Z9,Aetna,99213,,,2026-04-02,PAID,1,1,1,0,"])
            )
        sent = _upload(client, customer, zipped.getvalue(), **{"upload.fileName": "april.zip"})
        assert sent.status_code == 200, sent.text
        assert sent.json()["rowsAccepted"] == "1"
        assert sent.json()["sha256"] == hashlib.sha256(zipped.getvalue()).hexdigest()
        # An "Export to Excel" that is a web page: its table of claims.
        page = (
            "<html><body><table><tr><th>Claim #</th><th>Payer</th><th>Remit Date</th></tr>"
            "<tr><td>H1</td><td>Humana</td><td>05/02/2026</td></tr></table></body></html>"
        )
        sent = client.post(
            f"/v1/customers/{customer}/uploads",
            files={"file": ("may.xls", page.encode(), "application/vnd.ms-excel")},
        )
        assert sent.status_code == 200, sent.text
        assert (sent.json()["state"], sent.json()["rowsAccepted"]) == ("SUCCEEDED", "1")
        assert (sent.json()["sizeBytes"], sent.json()["sha256"]) == (
            str(len(page.encode())),
            hashlib.sha256(page.encode()).hexdigest(),
        )
        # The same page again is the same file: the upload it made, not a second one.
        again = client.post(
            f"/v1/customers/{customer}/uploads",
            files={"file": ("may.xls", page.encode(), "application/vnd.ms-excel")},
        )
        assert again.json()["name"] == sent.json()["name"]
        # An Excel 97-2003 workbook: its claims sheet, dates and numbers as the cells hold them.
        old_book = xlwt.Workbook()
        june = old_book.add_sheet("June")
        for at, title in enumerate(("Claim #", "Payer", "Remit Date", "Billed", "Paid")):
            june.write(0, at, title)
        june.write(1, 0, 6001)
        june.write(1, 1, "Humana")
        june.write(1, 2, dt.date(2026, 6, 3), xlwt.easyxf(num_format_str="MM/DD/YYYY"))
        june.write(1, 3, 75.5)
        june.write(1, 4, 60)
        old_bytes = io.BytesIO()
        old_book.save(old_bytes)
        sent = client.post(
            f"/v1/customers/{customer}/uploads",
            files={"file": ("june.xls", old_bytes.getvalue(), "application/vnd.ms-excel")},
        )
        assert sent.status_code == 200, sent.text
        assert (sent.json()["state"], sent.json()["rowsAccepted"]) == ("SUCCEEDED", "1")
        assert sent.json()["sha256"] == hashlib.sha256(old_bytes.getvalue()).hexdigest()
        # An Excel 2003 XML workbook: its worksheet of claims.
        xml_book = (
            '<?xml version="1.0"?>\n<?mso-application progid="Excel.Sheet"?>\n'
            '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
            'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet ss:Name="J">'
            "<Table><Row>"
            + "".join(
                f'<Cell><Data ss:Type="String">{title}</Data></Cell>'
                for title in ("Claim #", "Payer", "Remit Date")
            )
            + '</Row><Row><Cell><Data ss:Type="Number">6002</Data></Cell>'
            '<Cell><Data ss:Type="String">Humana</Data></Cell><Cell>'
            '<Data ss:Type="DateTime">2026-06-04T00:00:00.000</Data></Cell></Row>'
            "</Table></Worksheet></Workbook>"
        ).encode()
        sent = client.post(
            f"/v1/customers/{customer}/uploads",
            files={"file": ("june.xml", xml_book, "application/xml")},
        )
        assert sent.status_code == 200, sent.text
        assert (sent.json()["rowsAccepted"], sent.json()["sizeBytes"]) == ("1", str(len(xml_book)))
        [claim] = client.get(
            f"/v1/customers/{customer}/claims", params={"filter": 'claim_id = "6001"'}
        ).json()["claims"]
        assert (claim["payer"], claim["decisionDate"], claim["billedAmount"]["units"]) == (
            "Humana",
            {"year": 2026, "month": 6, "day": 3},
            "75",
        )


def _form(boundary: str, *parts: tuple[str, str | None, bytes], close: bool = True) -> bytes:
    """A multipart/form-data body of (name, filename or None, content) parts."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def test_a_file_sent_as_a_form_is_the_upload_named_as_the_form_names_it(system: System) -> None:
    """`curl -F file=@claims.csv` (and a browser's file form) uploads the file part, streamed,
    named by its filename unless the query names the upload."""
    body = _csv(
        [
            "F1,Aetna,99213,2026-03-01,2026-03-02,2026-03-14,PAID,150.00,100.00,80.00,20.00,",
            "F2,Cigna,71046,2026-03-01,2026-03-03,not-a-date,PAID,90,60,60,0,",
        ]
    )
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        url = f"/v1/customers/{customer}/uploads"
        sent = client.post(url, files={"file": ("march export.csv", body, "text/csv")})
        assert sent.status_code == 200, sent.text
        upload = sent.json()
        assert (upload["fileName"], upload["rowsAccepted"], upload["rowsRejected"]) == (
            "march export.csv",
            "1",
            "1",
        )
        assert (upload["sizeBytes"], upload["sha256"]) == (
            str(len(body)),
            hashlib.sha256(body).hexdigest(),
        )
        claims = client.get(f"/v1/customers/{customer}/claims").json()["claims"]
        assert [c["claimId"] for c in claims] == ["F1"]
    # Named by the query string; a gzip file in a form is read as the file inside.
    other = _fresh_customer()
    with system.client(other, "admin") as client:
        sent = client.post(
            f"/v1/customers/{other}/uploads",
            params={"upload.fileName": "q1.csv"},
            files={"upload": ("export.csv.gz", gzip.compress(body), "application/gzip")},
        )
        assert sent.status_code == 200, sent.text
        assert (sent.json()["fileName"], sent.json()["sha256"]) == (
            "q1.csv",
            hashlib.sha256(body).hexdigest(),
        )


@pytest.mark.parametrize(
    ("form", "detail"),
    [
        (
            _form("b0", ("mode", None, b"ALL_OR_NOTHING"), ("file", "a.csv", _csv([]))),
            "form field 'mode': a form may hold the file only; give options as query parameters"
            " (e.g. ?upload.mode=ALL_OR_NOTHING)",
        ),
        (
            _form(
                "b0",
                ("file", "a.csv", _csv(["G1,Aetna,99213,,,2026-03-14,PAID,1,1,1,0,"])),
                ("note", None, b"march"),
            ),
            "the form goes on after its file: send one file, and give options as query parameters",
        ),
        (
            _form(
                "b0",
                ("file", "a.csv", _csv(["G1,Aetna,99213,,,2026-03-14,PAID,1,1,1,0,"])),
                close=False,
            ),
            "the form ends before its closing boundary: it was cut short",
        ),
        (
            b"--b0--\r\n",
            "the form has no file part: send the file as a part with a filename",
        ),
    ],
    ids=["field-first", "field-after", "cut-short", "no-file"],
)
def test_a_form_with_more_or_less_than_its_file_is_refused_and_nothing_kept(
    system: System, form: bytes, detail: str
) -> None:
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        refused = _upload(client, customer, form, content_type="multipart/form-data; boundary=b0")
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"] == f"body: {detail}"
        assert client.get(f"/v1/customers/{customer}/uploads").json().get("uploads", []) == []
        assert client.get(f"/v1/customers/{customer}/claims").json().get("claims", []) == []


def test_remark_codes_in_an_exports_reason_codes_keep_its_claims(system: System) -> None:
    """A practice-management export lists remark codes (RARCs) beside the reason codes and
    writes a group apart from its code: every claim is kept with its reasons, its denial
    counted, and the upload says once that the remarks were not kept."""
    export = (
        b"Claim #,Primary Payer,Paid Date,Claim Status,Total Charges,Insurance Paid,"
        b"Adj Reason Codes\r\n"
        b'A1,Aetna,11/03/2026,Denied,$300.00,$0.00,"CO-16, N290"\r\n'
        b"A2,Aetna,11/04/2026,Paid,$120.00,$90.00,CO 45 / PR 2\r\n"
        b"A3,Aetna,11/05/2026,Denied,$80.00,$0.00,CO-197 M127 MA130\r\n"
    )
    customer = _fresh_customer()
    with system.client(customer, "admin") as client:
        sent = _upload(client, customer, export)
        assert sent.status_code == 200, sent.text
        upload = sent.json()
        assert (upload["state"], upload["rowsAccepted"], upload.get("rowsRejected", "0")) == (
            "SUCCEEDED",
            "3",
            "0",
        )
        assert [(w["code"], w["lineNumber"], w["message"]) for w in upload["warnings"]] == [
            (
                "REMARK_CODES",
                "2",
                "2 rows list remark codes (RARCs) beside their reason codes, the first 'N290' "
                "on line 2: a remark explains an adjustment and is not kept; the reason codes "
                "and the claims are kept",
            )
        ]
        claims = _claims_of(client, customer)
    assert {claim_id: (c[0], c[1], c[10]) for claim_id, c in claims.items()} == {
        "A1": ("DENIED", True, [("CO", "16", 0, 0)]),
        "A2": ("PAID", False, [("CO", "45", 0, 0), ("PR", "2", 0, 0)]),
        "A3": ("DENIED", True, [("CO", "197", 0, 0)]),
    }


def _decided(payer: str, first: dt.date, days: int, prefix: str) -> list[str]:
    """One paid claim of `payer` decided each day of `days` from `first`."""
    return [
        f"{prefix}{n},{payer},99213,{day - dt.timedelta(days=20)},{day - dt.timedelta(days=18)},"
        f"{day},PAID,100.00,80.00,80.00,0,"
        for n, day in enumerate(first + dt.timedelta(days=i) for i in range(days))
    ]


def test_an_upload_far_past_the_other_payers_claims_says_which_detection_cannot_test(
    system: System,
) -> None:
    """History of three payers to February; then one payer's claims to November: that upload
    warns that the other two have no claims in the weeks detection compares, naming them.
    An upload that brings every payer along, or moves the latest decision only a little,
    does not."""
    customer = "behind" + uuid.uuid4().hex[:8]
    history = [
        *_decided("Aetna", dt.date(2026, 1, 1), 45, "A"),
        *_decided("Cigna", dt.date(2026, 1, 1), 30, "C"),
        *_decided("Humana", dt.date(2026, 1, 1), 45, "H"),
    ]
    with system.client(customer, "admin") as client:
        first = _upload(client, customer, _csv(history)).json()
        ahead = _upload(client, customer, _csv(_decided("Humana", dt.date(2026, 11, 1), 24, "N")))
        a_little = _upload(
            client, customer, _csv(_decided("Humana", dt.date(2026, 11, 25), 10, "L"))
        ).json()
        everyone = _upload(
            client,
            customer,
            _csv(
                [
                    *_decided("Aetna", dt.date(2026, 12, 1), 3, "EA"),
                    *_decided("Cigna", dt.date(2026, 12, 1), 3, "EC"),
                    *_decided("Humana", dt.date(2026, 12, 1), 3, "EH"),
                ]
            ),
        ).json()

    codes = {"first": first, "a_little": a_little, "everyone": everyone}
    assert {name: [w["code"] for w in u.get("warnings", [])] for name, u in codes.items()} == {
        "first": [], "a_little": [], "everyone": []
    }  # fmt: skip
    assert ahead.status_code == 200, ahead.text
    (warning,) = ahead.json()["warnings"]
    assert warning["code"] == "OTHER_PAYERS_BEHIND"
    assert warning["message"].startswith(
        "Its claims were decided up to 2026-11-24, the customer's latest decision, but 2 other "
        "payers have none decided in October 2026 or since"
    )
    assert warning["message"].endswith(
        "until their later claims are uploaded: Cigna (last in Jan 2026), Aetna (last in Feb 2026)"
    )

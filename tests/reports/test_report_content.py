"""What a report contains: exports and documents built from real ingest and drift servers over
gRPC (claims uploaded through the real gateway, drift events found by real detection runs),
read as a person would read them: CSV with the csv module, JSON Lines back into the protos,
the PDF's text with pypdf. And the pure parts on their own: formula neutralising, weeks and
baseline bands."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from devtools.stack import wait_until
from runtime.auth import service_token
from runtime.clients import open_channel
from runtime.messages import money_message, timestamp_message
from services.drift.series import DayStat, Window, cell_series
from services.drift.statistics import histogram
from services.drift.summaries import Metrics
from services.ingest.claims_arrow import SCHEMA as CLAIMS_SCHEMA
from services.reports.content import (
    ReportFailed,
    ReportSpec,
    Sources,
    build,
    content_type,
    file_name,
    supported,
)
from services.reports.content.documents import payer_sentence
from services.reports.content.exports import (
    CLAIM_COLUMNS,
    EVENT_COLUMNS,
    ArrowCsvWriter,
    money_text,
    neutralised,
    time_text,
)
from services.reports.content.weekly import (
    PayerFigures,
    RatioSpread,
    denial_band,
    median_band,
    weeks_of,
)
from tests.scenarios import as_csv, denial_drift, run_as_of
from tests.system import System
from upstream.drift.v1 import drift_service_pb2_grpc
from upstream.drift.v1 import resources_pb2 as drift_resources
from upstream.ingest.v1 import ingest_service_pb2_grpc
from upstream.ingest.v1 import resources_pb2 as ingest_resources
from upstream.reports.v1 import resources_pb2 as reports_resources

PDF, CSV, JSON = reports_resources.PDF, reports_resources.CSV, reports_resources.JSON
SCORECARD, SUMMARY = reports_resources.PAYER_SCORECARD, reports_resources.DRIFT_SUMMARY
CLAIMS, EVENTS = reports_resources.CLAIMS_EXPORT, reports_resources.EVENTS_EXPORT
MARCH = (dt.date(2026, 3, 1), dt.date(2026, 3, 31))
WAIT = 120

CLAIMS_CSV = """\
claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes
A-1,Aetna,99213,2026-02-20,2026-02-21,2026-03-02,paid,200.00,150.00,120.00,30.00,
A-2,Aetna,99213,2026-02-20,2026-02-21,2026-03-09,denied,180.00,0,0,0,CO-50
A-3,Aetna,99214,2026-02-25,2026-02-26,2026-03-31,paid,300.00,250.00,200.00,50.00,
A-OLD,Aetna,99213,2026-01-20,2026-01-21,2026-02-28,paid,200.00,150.00,150.00,0,
A-LATE,Aetna,99213,2026-03-20,2026-03-21,2026-04-01,paid,200.00,150.00,150.00,0,
A-OPEN,Aetna,99213,2026-03-20,2026-03-21,,pending,200.00,,,,
Zoë-7,Mutuelle Générale Santé,99213,2026-02-20,2026-02-21,2026-03-03,paid,100.00,80.00,80.00,0,
-5,Mutuelle Générale Santé,99213,2026-02-20,2026-02-21,2026-03-04,paid,100.00,80.00,80.00,0,
"""
# Remittance files carry what the payer wrote; ingest keeps it, and exports must defuse it.
HOSTILE_835 = (
    "~\n".join(
        [
            "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *260320*1200*^*"
            "00501*000000001*0*P*:",
            "GS*HP*SENDER*RECEIVER*20260320*1200*1*X*005010X221A1",
            "ST*835*0001",
            "BPR*I*102.50*C*ACH*CCP*01*999999999*DA*123456*1234567890**01*999999999*DA*654321"
            "*20260310",
            "TRN*1*12345*1234567890",
            "N1*PR*@Evil Health Plan*XV*-1+1",
            "N1*PE*CLINIC*XX*1234567893",
            'CLP*=HYPERLINK("http://evil.test","x")*1*200.00*92.50*20.00*12*+ICN123',
            "CAS*CO*45*100.00**94*-12.50",
            "CAS*PR*1*20.00",
            "SVC*HC:99213*200.00*92.50",
            "DTM*472*20260301",
            "CLP*-2+3*1*100.00*10.00*10.00*12*@ICN2",
            "CAS*CO*45*80.00",
            "CAS*PR*2*10.00",
            "SVC*HC:99214*100.00*10.00",
            "DTM*472*20260302",
            "SE*16*0001",
            "GE*1*1",
            "IEA*1*000000001",
        ]
    )
    + "~\n"
)
IN_MARCH = {"A-1", "A-2", "A-3", "Zoë-7", "-5", '=HYPERLINK("http://evil.test","x")', "-2+3"}


def upload(client: httpx.Client, customer: str, body: bytes, key: str) -> dict[str, Any]:
    response = client.post(
        f"/v1/customers/{customer}/uploads",
        content=body,
        headers={"Idempotency-Key": key},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "SUCCEEDED", response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def small(system: System) -> str:
    """A customer with a few claims around March 2026, some of them hostile."""
    customer = "content" + uuid.uuid4().hex[:8]
    with system.client(customer) as client:
        upload(client, customer, CLAIMS_CSV.encode(), "claims")
        upload(client, customer, HOSTILE_835.encode(), "remits")
    return customer


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@pytest.fixture(scope="module")
def drifted(system: System) -> tuple[str, dt.date, dt.date]:
    """A customer whose history (ending two months ago) holds a denial-rate drift, found by
    the detection run its upload started; and a period holding the drift's weeks and the
    run."""
    return drifted_customer(system)


def drifted_customer(system: System) -> tuple[str, dt.date, dt.date]:
    """A new customer as `drifted` describes it."""
    customer = "contentdrift" + uuid.uuid4().hex[:8]
    start = today() - dt.timedelta(days=310)
    scenario = denial_drift(customer, start, start + dt.timedelta(days=231))
    with system.client(customer) as client:
        upload(client, customer, as_csv(scenario).encode(), "history")

        def detected() -> bool:
            runs = client.get(f"/v1/customers/{customer}/driftRuns").json().get("driftRuns", [])
            return bool(runs) and runs[0]["state"] in ("SUCCEEDED", "FAILED")

        wait_until("the upload's detection run", detected, timeout=WAIT)
    return customer, start + dt.timedelta(days=190), today()


@asynccontextmanager
async def sources(system: System) -> AsyncIterator[Sources]:
    """Stubs as the reports service makes them: its own channels and service token."""

    def authorization() -> str:
        return f"Bearer {service_token(system.settings)}"

    ingest = open_channel(
        system.targets["ingest"],
        "upstream.ingest.v1.IngestService",
        default_timeout=60,
        authorization=authorization,
    )
    drift = open_channel(
        system.targets["drift"],
        "upstream.drift.v1.DriftService",
        default_timeout=60,
        authorization=authorization,
    )
    try:
        yield Sources(
            ingest_service_pb2_grpc.IngestServiceStub(ingest),
            drift_service_pb2_grpc.DriftServiceStub(drift),
        )
    finally:
        await ingest.close()
        await drift.close()


def spec(
    customer: str,
    kind: int,
    format: int,
    period: tuple[dt.date, dt.date] = MARCH,
    payers: tuple[str, ...] = (),
) -> ReportSpec:
    return ReportSpec(
        customer=customer,
        name=f"customers/{customer}/reports/rpt_test",
        kind=kind,
        format=format,
        start_date=period[0],
        end_date=period[1],
        payers=payers,
        create_time=dt.datetime(2026, 4, 2, 9, 30, tzinfo=dt.UTC),
    )


async def content(system: System, report: ReportSpec) -> bytes:
    async with sources(system) as found:
        chunks = [chunk async for chunk in build(report, found)]
    assert all(len(chunk) <= 1024 * 1024 for chunk in chunks)
    return b"".join(chunks)


def csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def claims_of(client: httpx.Client, customer: str) -> list[dict[str, Any]]:
    listed = client.get(f"/v1/customers/{customer}/claims", params={"pageSize": 1000})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["claims"])


def events_of(client: httpx.Client, customer: str) -> list[dict[str, Any]]:
    listed = client.get(f"/v1/customers/{customer}/driftEvents", params={"pageSize": 1000})
    assert listed.status_code == 200, listed.text
    return list(listed.json().get("driftEvents", []))


def pdf_text(body: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(body))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return len(reader.pages), " ".join(text.split())


# --- Claims export --------------------------------------------------------------------------


async def test_claims_csv_has_a_header_and_one_row_per_claim_decided_in_the_period(
    system: System, small: str
) -> None:
    body = await content(system, spec(small, CLAIMS, CSV))
    rows = csv_rows(body)
    header = body.split(b"\r\n", 1)[0].decode()

    assert header.split(",") == [column.name for column in CLAIM_COLUMNS]
    assert body.endswith(b"\r\n") and b"\n" not in body.replace(b"\r\n", b"")
    ids = [row["claim_id"].removeprefix("'") for row in rows]
    assert sorted(ids) == sorted(IN_MARCH)
    assert [row["decision_date"] for row in rows] == sorted(row["decision_date"] for row in rows)
    assert all("2026-03-01" <= row["decision_date"] <= "2026-03-31" for row in rows)
    by_id = {row["claim_id"]: row for row in rows}
    assert by_id["Zoë-7"]["payer"] == "Mutuelle Générale Santé"
    denied = by_id["A-2"]
    assert (denied["status"], denied["denied"], denied["carc_codes"]) == ("DENIED", "true", "CO-50")
    assert (by_id["A-1"]["billed_amount"], by_id["A-1"]["paid_amount"]) == ("200.00", "120.00")


async def test_cells_that_would_run_as_formulas_come_back_neutralised_and_amounts_stay_numbers(
    system: System, small: str
) -> None:
    rows = csv_rows(await content(system, spec(small, CLAIMS, CSV)))
    by_id = {row["claim_id"]: row for row in rows}

    hyperlink = by_id['\'=HYPERLINK("http://evil.test","x")']
    assert hyperlink["payer_claim_control_number"] == "'+ICN123"
    assert hyperlink["payer_raw_name"] == "'@Evil Health Plan"
    assert hyperlink["payer_raw_id"] == "'-1+1"
    # A negative adjustment is a number we wrote: it stays -12.50, a number to a spreadsheet.
    assert hyperlink["carc_codes"] == "CO-45;CO-94;PR-1"
    assert hyperlink["adjustment_amounts"] == "100.00;-12.50;20.00"
    assert by_id["'-2+3"]["payer_claim_control_number"] == "'@ICN2"
    # A claim id that is a negative number is still text from a file: neutralised too.
    assert "'-5" in by_id
    formula_starts = ("=", "+", "-", "@", "\t", "\r")
    text_columns = ("claim_id", "payer", "payer_raw_name", "payer_raw_id", "code_group",
                    "procedure_codes", "carc_codes", "payer_claim_control_number")  # fmt: skip
    assert not [
        (row["claim_id"], column)
        for row in rows
        for column in text_columns
        if row[column].startswith(formula_starts)
    ]


async def test_claims_export_honours_the_payer_filter_and_an_empty_period_has_only_its_header(
    system: System, small: str
) -> None:
    only = csv_rows(
        await content(system, spec(small, CLAIMS, CSV, payers=("Mutuelle Générale Santé",)))
    )
    nothing = await content(
        system, spec(small, CLAIMS, CSV, period=(dt.date(2020, 1, 1), dt.date(2020, 1, 31)))
    )
    nothing_jsonl = await content(system, spec(small, CLAIMS, JSON, payers=("No Such Payer",)))

    assert sorted(row["claim_id"] for row in only) == ["'-5", "Zoë-7"]
    assert {row["payer"] for row in only} == {"Mutuelle Générale Santé"}
    assert nothing == ",".join(column.name for column in CLAIM_COLUMNS).encode() + b"\r\n"
    assert nothing_jsonl == b""


async def test_claims_json_lines_are_the_claims_in_their_proto3_json_form(
    system: System, small: str
) -> None:
    body = await content(system, spec(small, CLAIMS, JSON))
    with system.client(small, "viewer") as client:
        stored = {
            claim["name"]: json_format.ParseDict(claim, ingest_resources.Claim())
            for claim in claims_of(client, small)
        }

    lines = body.decode("utf-8").split("\n")
    assert lines[-1] == ""
    claims = [
        json_format.ParseDict(json.loads(line), ingest_resources.Claim()) for line in lines[:-1]
    ]
    assert sorted(claim.claim_id for claim in claims) == sorted(IN_MARCH)
    assert all(claim == stored[claim.name] for claim in claims)
    assert "Zoë-7" in body.decode("utf-8")  # UTF-8 as is, not \u escapes


# --- Events export ---------------------------------------------------------------------------


async def test_events_export_lists_the_drift_events_of_the_period_as_csv_and_json_lines(
    system: System, drifted: tuple[str, dt.date, dt.date]
) -> None:
    customer, start, end = drifted
    with system.client(customer, "viewer") as client:
        events = events_of(client, customer)
    rows = csv_rows(await content(system, spec(customer, EVENTS, CSV, (start, end))))
    lines = (
        (await content(system, spec(customer, EVENTS, JSON, (start, end)))).decode().splitlines()
    )
    united = csv_rows(
        await content(
            system, spec(customer, EVENTS, CSV, (start, end), payers=("UnitedHealthcare",))
        )
    )
    before = await content(
        system, spec(customer, EVENTS, CSV, (start, start + dt.timedelta(days=7)))
    )

    assert events, "the drift run found no event"
    assert list(rows[0]) == [name for name, _ in EVENT_COLUMNS]
    assert sorted(row["name"] for row in rows) == sorted(e["name"] for e in events)
    parsed = {
        event.name: event
        for event in (
            json_format.ParseDict(json.loads(line), drift_resources.DriftEvent()) for line in lines
        )
    }
    assert parsed == {
        e["name"]: json_format.ParseDict(e, drift_resources.DriftEvent()) for e in events
    }
    by_name = {row["name"]: row for row in rows}
    for event in events:
        row = by_name[event["name"]]
        assert row["summary"] == event["summary"]
        assert row["metric"] == event["metric"] and row["payer"] == event["payer"]
        assert math.isclose(float(row["current_value"]), event["evidence"]["currentValue"])
        # Open events: no end, no reason; each interval the evidence has, bound by bound.
        assert (row["end_time"], row["end_reason"]) == ("", "")
        for interval in ("baseline", "current", "effect"):
            bounds = event["evidence"].get(f"{interval}Interval", {})
            assert [row[f"{interval}_interval_{b}"] for b in ("lower", "upper")] == [
                repr(float(bounds[b])) if bounds else "" for b in ("lower", "upper")
            ]
        assert row["first_run"] == event["firstRun"] and row["last_run"] == event["lastRun"]
    assert any(row["current_interval_lower"] for row in rows)
    assert united and {row["payer"] for row in united} == {"UnitedHealthcare"}
    # Detected today: nothing overlaps a period that ended months ago.
    assert csv_rows(before) == []


async def test_events_no_run_could_test_since_say_so_in_the_export_and_the_summary(
    system: System,
) -> None:
    """The history ends two months ago: a run as of today compares none of its payers, and
    the events it leaves open say since when in the CSV export and the drift summary PDF."""
    customer, start, end = drifted_customer(system)
    assert run_as_of(system, customer, end)["state"] == "SUCCEEDED"
    with system.client(customer, "viewer") as client:
        events = events_of(client, customer)
    rows = csv_rows(await content(system, spec(customer, EVENTS, CSV, (start, end))))
    _pages, text = pdf_text(await content(system, spec(customer, SUMMARY, PDF, (start, end))))

    assert events and all(e["active"] and "untestedSince" in e for e in events)
    assert {row["name"]: row["untested_since"] for row in rows} == {
        e["name"]: str(dt.date(**e["untestedSince"])) for e in events
    } and all(row["untested_since"] == str(end) for row in rows)
    said = f"not tested since {end.day} {end:%b %Y}, as no run since could compare it"
    assert text.count(said) == len(events)


async def test_events_whose_claims_were_removed_say_so_in_the_export_and_the_summary(
    system: System,
) -> None:
    """The upload that held all the customer's claims is deleted: the run that follows ends
    its events, and the export and the drift summary say when and why."""
    customer, start, end = drifted_customer(system)
    with system.client(customer, "admin") as client:
        (made,) = client.get(f"/v1/customers/{customer}/uploads").json()["uploads"]
        assert client.delete(f"/v1/{made['name']}").status_code == 200

        def rerun() -> bool:
            runs = client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"]
            return (runs[0]["trigger"], runs[0]["state"]) == ("DATA_CHANGE", "SUCCEEDED")

        wait_until("the deletion's detection run", rerun, timeout=WAIT)
        events = events_of(client, customer)
    rows = csv_rows(await content(system, spec(customer, EVENTS, CSV, (start, end))))
    _pages, text = pdf_text(await content(system, spec(customer, SUMMARY, PDF, (start, end))))

    assert events and not any(e["active"] for e in events)
    assert {row["name"]: (row["active"], row["end_reason"], row["end_time"]) for row in rows} == {
        e["name"]: ("false", "CLAIMS_REMOVED", e["endTime"]) for e in events
    }
    assert text.count("ended (none of its claims are left)") == len(events)


async def test_a_history_uploaded_today_has_its_drift_in_the_period_its_claims_were_decided(
    system: System, drifted: tuple[str, dt.date, dt.date]
) -> None:
    customer, start, _ = drifted
    with system.client(customer, "viewer") as client:
        events = events_of(client, customer)
    claims_end = max(dt.date(**e["currentWindow"]["endDate"]) for e in events)
    # The claims' weeks only, months before today's detection run.
    period = (start, claims_end)
    exported = csv_rows(await content(system, spec(customer, EVENTS, CSV, period)))
    summary = json.loads(await content(system, spec(customer, SUMMARY, JSON, period)))
    scorecard = json.loads(await content(system, spec(customer, SCORECARD, JSON, period)))

    assert claims_end < today() - dt.timedelta(days=30)
    assert sorted(row["name"] for row in exported) == sorted(e["name"] for e in events)
    opened = {name for p in summary["payers"] for name in p["eventsOpened"]}
    assert opened == {e["name"] for e in events}
    united = next(p for p in scorecard["payers"] if p["payer"] == "UnitedHealthcare")
    assert united["eventsOpenAtEnd"] and int(united["dollarsAtStake"]["units"]) > 0


# --- Documents -------------------------------------------------------------------------------


async def test_a_scorecard_json_holds_each_payers_weeks_with_the_baseline_band(
    system: System, small: str
) -> None:
    document = json.loads(await content(system, spec(small, SCORECARD, JSON)))
    payers = {p["payer"]: p for p in document["payers"]}
    aetna = payers["Aetna"]

    assert document["kind"] == "PAYER_SCORECARD" and document["customer"] == small
    assert document["period"] == {"startDate": "2026-03-01", "endDate": "2026-03-31"}
    assert document["baselinePeriod"] == {"startDate": "2025-11-30", "endDate": "2026-02-28"}
    assert set(payers) >= {"Aetna", "Mutuelle Générale Santé"}
    assert (aetna["period"]["claims"], aetna["period"]["deniedClaims"]) == (3, 1)
    assert math.isclose(aetna["period"]["denialRate"], 1 / 3)
    assert aetna["baseline"]["claims"] == 1
    weeks = aetna["weeks"]
    assert [w["week"] for w in weeks] == ["2026-W09", "2026-W10", "2026-W11", "2026-W12",
                                          "2026-W13", "2026-W14"]  # fmt: skip
    assert (weeks[0]["startDate"], weeks[-1]["endDate"]) == ("2026-03-01", "2026-03-31")
    assert sum(w["claims"] for w in weeks) == 3
    denied_week = next(w for w in weeks if w["deniedClaims"])
    assert denied_week["startDate"] == "2026-03-09" and denied_week["denialRate"]["value"] == 1.0
    # The baseline denied nothing: its band is 0 to 0, and the denial stands outside it.
    assert (denied_week["denialRate"]["bandLow"], denied_week["denialRate"]["bandHigh"]) == (0, 0)
    quiet = next(w for w in weeks if not w["claims"])
    assert quiet["denialRate"] == {"value": None, "bandLow": None, "bandHigh": None}
    assert "Aetna denied 33.3% of the 3 claims" in aetna["summary"]
    assert not json.dumps(document).count("HYPERLINK")  # no claim-level data


async def test_a_scorecard_pdf_names_the_payers_period_and_open_events_with_their_summaries(
    system: System, drifted: tuple[str, dt.date, dt.date]
) -> None:
    customer, start, end = drifted
    body = await content(system, spec(customer, SCORECARD, PDF, (start, end)))
    document = json.loads(await content(system, spec(customer, SCORECARD, JSON, (start, end))))
    with system.client(customer, "viewer") as client:
        events = events_of(client, customer)
    pages, text = pdf_text(body)

    assert body.startswith(b"%PDF-")
    payers = [p["payer"] for p in document["payers"]]
    assert len(payers) == 5 and pages >= 2 + len(payers)
    assert "Payer scorecard" in text and customer in text
    assert f"{start.day} {start:%b %Y} – {end.day} {end:%b %Y}" in text
    assert all(payer in text for payer in payers)
    open_events = [e for e in events if e["active"]]
    assert open_events and all(" ".join(e["summary"].split()) in text for e in open_events)
    assert all(" ".join(p["summary"].split()) in text for p in document["payers"])
    united = next(p for p in document["payers"] if p["payer"] == "UnitedHealthcare")
    assert united["eventsOpenAtEnd"] and int(united["dollarsAtStake"]["units"]) > 0
    last_weeks = [w for w in united["weeks"] if w["claims"]][-3:]
    assert any(w["denialRate"]["value"] > w["denialRate"]["bandHigh"] for w in last_weeks)


async def test_a_drift_summary_lists_the_events_by_payer_with_their_evidence(
    system: System, drifted: tuple[str, dt.date, dt.date]
) -> None:
    customer, start, end = drifted
    body = await content(system, spec(customer, SUMMARY, PDF, (start, end)))
    document = json.loads(await content(system, spec(customer, SUMMARY, JSON, (start, end))))
    with system.client(customer, "viewer") as client:
        events = events_of(client, customer)
    _pages, text = pdf_text(body)

    assert body.startswith(b"%PDF-") and "Drift summary" in text
    assert {p["payer"] for p in document["payers"]} == {e["payer"] for e in events}
    listed = {e["name"] for p in document["payers"] for e in p["events"]}
    assert listed == {e["name"] for e in events}
    opened = {name for p in document["payers"] for name in p["eventsOpened"]}
    assert opened == {e["name"] for e in events}  # all found by today's run
    for event in events:
        assert " ".join(event["summary"].split()) in text
        assert f"p = {event['evidence']['pValue']:.2g}" in text


async def test_a_document_of_a_period_without_data_says_there_was_nothing(
    system: System, small: str
) -> None:
    quiet = (dt.date(2020, 1, 1), dt.date(2020, 1, 31))
    document = json.loads(await content(system, spec(small, SCORECARD, JSON, quiet)))
    _, text = pdf_text(await content(system, spec(small, SUMMARY, PDF, quiet)))

    assert document["payers"] == []
    assert "No drift event was open during the period." in text


async def test_a_kind_in_a_format_it_does_not_come_in_fails_naming_the_field(
    system: System, small: str
) -> None:
    with pytest.raises(ReportFailed) as failed:
        await content(system, spec(small, CLAIMS, PDF))
    with pytest.raises(ReportFailed) as too_long:
        await content(
            system, spec(small, SCORECARD, PDF, (dt.date(2020, 1, 1), dt.date(2026, 1, 1)))
        )

    assert failed.value.field == "report.format"
    assert "CSV or JSON" in failed.value.message
    assert too_long.value.field == "report.parameters.date_range"
    status = failed.value.to_api_error().to_status()
    assert status.code == 3  # INVALID_ARGUMENT, with the field violation in its details


# --- Pure parts ------------------------------------------------------------------------------


@given(st.text())
def test_neutralised_text_never_starts_a_formula_and_keeps_the_text(text: str) -> None:
    safe = neutralised(text)
    assert not safe.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert safe in (text, "'" + text)


def test_money_is_written_as_plain_decimals() -> None:
    assert [money_text(money_message(c)) for c in (0, 5, -1250, 123456, -7)] == [
        "0.00", "0.05", "-12.50", "1234.56", "-0.07",
    ]  # fmt: skip


def _claims_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """Claims in the columns of ingest's ARROW encoding, defaults where a row leaves them."""
    defaults: dict[str, Any] = {
        "claim_uid": "u1", "claim_id": "c1", "payer": "Aetna", "payer_raw_name": "AETNA",
        "payer_raw_id": "60054", "status": "PAID", "denied": False, "partially_denied": False,
        "procedure_codes": ["99213"], "code_group": "E&M", "service_date": dt.date(2026, 3, 1),
        "submitted_date": dt.date(2026, 3, 2), "decision_date": dt.date(2026, 3, 9),
        "billed_cents": 20000, "allowed_cents": 15000, "paid_cents": 12000,
        "patient_responsibility_cents": 3000, "adjustments": [], "payer_claim_control_number": "",
        "upload_id": "u_1", "update_time": dt.datetime(2026, 3, 9, 14, 5, tzinfo=dt.UTC),
    }  # fmt: skip
    return pa.RecordBatch.from_pylist([{**defaults, **row} for row in rows], schema=CLAIMS_SCHEMA)


def _written(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    writer = ArrowCsvWriter(CLAIM_COLUMNS, "acme")
    return csv_rows(writer.header() + writer.rows(_claims_batch(rows)))


# Text with everything CSV and spreadsheets care about: quotes, separators, line ends,
# formula starts, non-ASCII.
_cell_text = st.text(
    st.sampled_from(
        ["a", "Z", "é", "Ω", "😀", '"', ",", ";", "\r", "\n", "\t", "=", "+", "-", "@", "'", " "]
    ),
    max_size=12,
)


@given(st.lists(st.tuples(_cell_text, _cell_text, _cell_text), min_size=1, max_size=20))
def test_claim_text_comes_back_whole_and_neutralised_from_the_csv(
    texts: list[tuple[str, str, str]],
) -> None:
    rows = [
        {"claim_id": claim_id, "payer_raw_name": raw_name, "payer_claim_control_number": icn,
         "procedure_codes": [claim_id, raw_name]}
        for claim_id, raw_name, icn in texts
    ]  # fmt: skip
    written = _written(rows)

    assert [
        (row["claim_id"], row["payer_raw_name"], row["payer_claim_control_number"],
         row["procedure_codes"])
        for row in written
    ] == [
        (neutralised(claim_id), neutralised(raw_name), neutralised(icn),
         neutralised(f"{claim_id};{raw_name}"))
        for claim_id, raw_name, icn in texts
    ]  # fmt: skip


@given(st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=20))
def test_amounts_in_the_csv_are_the_cents_as_plain_decimals(cents: list[int]) -> None:
    written = _written(
        [
            {"billed_cents": amount, "adjustments": [
                {"group_code": "CO", "reason_code": "45", "amount_cents": amount, "line_number": 1},
                {"group_code": "PR", "reason_code": "1", "amount_cents": -amount, "line_number": 1},
            ]}
            for amount in cents
        ]
    )  # fmt: skip

    assert [row["billed_amount"] for row in written] == [
        money_text(money_message(amount)) for amount in cents
    ]
    assert [row["adjustment_amounts"] for row in written] == [
        f"{money_text(money_message(amount))};{money_text(money_message(-amount))}"
        for amount in cents
    ]
    assert {row["carc_codes"] for row in written} == {"CO-45;PR-1"}


def test_unset_values_are_empty_cells_and_times_and_dates_read_as_the_json_form() -> None:
    times = [
        dt.datetime(2026, 3, 9, 14, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 9, 14, 5, 1, 250_000, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 9, 14, 5, 1, 123_456, tzinfo=dt.UTC),
    ]
    written = _written(
        [
            {"update_time": times[0], "allowed_cents": None, "decision_date": None,
             "payer_raw_id": None, "adjustments": None, "procedure_codes": []},
            {"update_time": times[1], "denied": True},
            {"update_time": times[2], "status": "DENIED"},
        ]
    )  # fmt: skip

    assert [row["update_time"] for row in written] == [
        time_text(timestamp_message(stamp)) for stamp in times
    ]
    first = written[0]
    unset = ("allowed_amount", "decision_date", "payer_raw_id", "carc_codes", "procedure_codes",
             "received_date")  # fmt: skip
    assert [first[name] for name in unset] == [""] * len(unset)
    assert (written[1]["denied"], written[1]["service_date"]) == ("true", "2026-03-01")
    assert (first["upload"], first["name"]) == (
        "customers/acme/uploads/u_1",
        "customers/acme/claims/u1",
    )


def test_a_csv_of_many_rows_parses_whole_with_one_row_per_claim() -> None:
    batch = _claims_batch(
        [{"claim_id": f"=c{n}", "payer": "Aetna ÷ Ünited", "claim_uid": f"u{n}",
          "procedure_codes": ["99213"] * 20} for n in range(20_000)]
    )  # fmt: skip
    writer = ArrowCsvWriter(CLAIM_COLUMNS, "acme")
    body = writer.header() + b"".join(
        writer.rows(batch.slice(at, 3000)) for at in range(0, 20_000, 3000)
    )

    rows = csv_rows(body)
    assert [row["claim_id"] for row in rows] == [f"'=c{n}" for n in range(20_000)]
    assert body.count(b"\r\n") == 20_001


def test_weeks_are_iso_weeks_cut_to_the_period() -> None:
    weeks = weeks_of(Window(dt.date(2026, 3, 1), dt.date(2026, 3, 31)))

    assert [(w.start.isoformat(), w.end.isoformat()) for w in weeks] == [
        ("2026-03-01", "2026-03-01"),
        ("2026-03-02", "2026-03-08"),
        ("2026-03-09", "2026-03-15"),
        ("2026-03-16", "2026-03-22"),
        ("2026-03-23", "2026-03-29"),
        ("2026-03-30", "2026-03-31"),
    ]


def test_a_self_pay_payer_is_said_to_be_the_patients_and_not_compared() -> None:
    """A scorecard's sentence for the patients' own claims says they are not compared, where
    an insurer's says whether a drift event is open."""
    metrics = Metrics(40, 2, 120_000, 400_000, 20_000, 9.0)
    sentences = {
        payer: payer_sentence(PayerFigures(payer, metrics, metrics, []), [], 0)
        for payer in ("Self-Pay", "Aetna")
    }
    assert sentences["Self-Pay"].endswith(
        " Self-pay, the patients themselves: not compared for drift."
    )
    assert sentences["Aetna"].endswith(" No drift event open at the end of the period.")


def test_the_denial_band_narrows_with_the_weeks_volume() -> None:
    narrow, wide = denial_band(0.1, 2500), denial_band(0.1, 25)

    assert narrow is not None and wide is not None
    assert math.isclose(narrow[1] - 0.1, 1.96 * math.sqrt(0.09 / 2500))
    assert wide[0] == 0.0 and wide[1] > narrow[1]  # clipped at zero
    assert denial_band(0.1, 0) is None


def test_the_median_band_is_the_baselines_quantiles_around_its_middle() -> None:
    baseline = histogram({day: 10 for day in range(1, 101)})  # days 1..100, evenly

    narrow, wide = median_band(baseline, 10_000), median_band(baseline, 4)

    assert narrow == (50.0, 51.0)
    assert wide == (2.0, 99.0)
    assert median_band(baseline, 0) is None


def test_the_payment_ratio_band_follows_the_baselines_daily_spread_scaled_to_the_week() -> None:
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=n) for n in range(10)]
    # Settles 90% and 100% of $1,000 on alternate days: 95% with a spread of 5 points a day.
    stats = [
        DayStat("Aetna", "", day, 10, 0, 0, {}, 100_000, 100_000, 90_000 + 10_000 * (n % 2), 0, {})
        for n, day in enumerate(days)
    ]
    (series,) = cell_series(stats)
    spread = RatioSpread.of(series.totals(Window(days[0], days[-1])))

    assert spread is not None
    assert math.isclose(spread.ratio, 0.95) and math.isclose(spread.spread, 0.05)
    one_day, one_week = spread.band(100_000), spread.band(700_000)
    assert one_day is not None and one_week is not None
    assert math.isclose(one_day[1] - 0.95, 1.96 * 0.05)
    assert math.isclose(one_week[1] - 0.95, 1.96 * 0.05 / np.sqrt(7))


@pytest.mark.parametrize(
    ("kind", "format", "supported_", "media", "name"),
    [
        (SCORECARD, PDF, True, "application/pdf", "payer-scorecard_acme_2026-03-01_2026-03-31.pdf"),
        (SUMMARY, JSON, True, "application/json", "drift-summary_acme_2026-03-01_2026-03-31.json"),
        (
            CLAIMS,
            CSV,
            True,
            "text/csv; charset=utf-8",
            "claims-export_acme_2026-03-01_2026-03-31.csv",
        ),
        (
            EVENTS,
            JSON,
            True,
            "application/x-ndjson",
            "events-export_acme_2026-03-01_2026-03-31.jsonl",
        ),
        (CLAIMS, PDF, False, "application/pdf", "claims-export_acme_2026-03-01_2026-03-31.pdf"),
        (
            SCORECARD,
            CSV,
            False,
            "text/csv; charset=utf-8",
            "payer-scorecard_acme_2026-03-01_2026-03-31.csv",
        ),
    ],
)
def test_kinds_formats_media_types_and_file_names(
    kind: int, format: int, supported_: bool, media: str, name: str
) -> None:
    assert supported(kind, format) is supported_
    assert content_type(kind, format) == media
    assert file_name(spec("acme", kind, format)) == name


def test_file_names_are_safe_ascii_whatever_the_customer() -> None:
    assert (
        file_name(spec('ac"me/ü x', CLAIMS, CSV))
        == "claims-export_ac-me-x_2026-03-01_2026-03-31.csv"
    )

"""Reports through the real gateway and the real reports service: asked for, built by the
service's workers from what ingest and drift answer over gRPC, stored in chunks, followed to
SUCCEEDED or FAILED, downloaded with the right headers (HEAD too), listed and deleted; and
builds that die or lose their lease never leave half a file."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from google.type import date_pb2
from sqlalchemy.ext.asyncio import create_async_engine

from devtools.stack import wait_until
from runtime import schemas
from services.reports import content
from services.reports.builds import ReportBuilds
from services.reports.report_api import report_message
from services.reports.report_store import ReportStore
from tests.conftest import PostgresUnderTest, own_database
from tests.system import System, running_service
from tests.test_gateway_api import reason, violations
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc, resources_pb2

WAIT = 60
CSV_HEADER = (
    "claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n"
)


def fresh_customer() -> str:
    return "rpt" + uuid.uuid4().hex[:8]


def claims_csv(rows: list[tuple[str, str, str]]) -> bytes:
    """Claims (id, payer, decision date), paid in full unless the id says DENIED."""
    lines = [CSV_HEADER]
    for claim_id, payer, decided in rows:
        status, paid, carc = (
            ("DENIED", "0.00", "CO-50") if "DENIED" in claim_id else ("PAID", "80.00", "CO-45")
        )
        lines.append(
            f"{claim_id},{payer},99213,{decided},{decided},{decided},{status},"
            f"150.00,100.00,{paid},20.00,{carc}\n"
        )
    return "".join(lines).encode()


def upload(client: httpx.Client, customer: str, rows: list[tuple[str, str, str]]) -> None:
    response = client.post(
        f"/v1/customers/{customer}/uploads",
        content=claims_csv(rows),
        params={"upload.fileName": "claims.csv"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "SUCCEEDED", response.text


def create(client: httpx.Client, customer: str, report: dict[str, Any], **headers: str) -> Any:
    return client.post(f"/v1/customers/{customer}/reports", json=report, headers=headers)


def finished(client: httpx.Client, name: str) -> dict[str, Any]:
    """The report once it is SUCCEEDED or FAILED."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(client.get(f"/v1/{name}").json())
        return seen.get("state") in ("SUCCEEDED", "FAILED")

    wait_until(f"report {name}", done, timeout=WAIT)
    return seen


def period(start: str, end: str) -> dict[str, Any]:
    def date(text: str) -> dict[str, int]:
        year, month, day = (int(p) for p in text.split("-"))
        return {"year": year, "month": month, "day": day}

    return {"dateRange": {"startDate": date(start), "endDate": date(end)}}


@pytest.fixture(scope="module")
def customer_with_claims(system: System) -> str:
    customer = fresh_customer()
    with system.client(customer) as client:
        upload(
            client,
            customer,
            [
                ("C1", "Aetna", "2026-03-02"),
                ("C2-DENIED", "Aetna", "2026-03-03"),
                ("C3", "Cigna", "2026-03-04"),
                ("C4", "Cigna", "2026-04-20"),
            ],
        )
    return customer


def test_an_export_is_built_and_downloads_with_its_name_type_length_and_digest(
    system: System, customer_with_claims: str
) -> None:
    customer = customer_with_claims
    with system.client(customer) as client:
        created = create(
            client,
            customer,
            {
                "kind": "CLAIMS_EXPORT",
                "format": "CSV",
                "parameters": period("2026-03-01", "2026-03-31"),
            },
        )
        assert created.status_code == 200, created.text
        assert created.json()["state"] in ("PENDING", "RUNNING", "SUCCEEDED")
        assert created.json()["creator"] == f"admin@{customer}"
        report = finished(client, created.json()["name"])
        assert report["state"] == "SUCCEEDED", report
        assert report["contentType"] == "text/csv; charset=utf-8"
        assert "expireTime" in report and "finishTime" in report

        download = client.get(f"/v1/{report['name']}:download")
        assert download.status_code == 200, download.text
        assert download.headers["content-type"] == "text/csv; charset=utf-8"
        assert download.headers["content-disposition"] == (
            f'attachment; filename="claims-export_{customer}_2026-03-01_2026-03-31.csv"'
        )
        assert int(download.headers["content-length"]) == len(download.content)
        assert len(download.content) == int(report["sizeBytes"])
        assert hashlib.sha256(download.content).hexdigest() == report["sha256"]
        assert download.headers["etag"] == f'"{report["sha256"]}"'
        rows = list(csv.DictReader(io.StringIO(download.content.decode())))
        # March's three claims; April's is outside the period.
        assert sorted(r["claim_id"] for r in rows) == ["C1", "C2-DENIED", "C3"]

        head = client.head(f"/v1/{report['name']}:download")
        assert head.status_code == 200
        assert head.content == b""
        for header in ("content-type", "content-disposition", "content-length", "etag"):
            assert head.headers[header] == download.headers[header]


def test_a_report_of_some_payers_holds_only_theirs(
    system: System, customer_with_claims: str
) -> None:
    customer = customer_with_claims
    with system.client(customer) as client:
        parameters = {**period("2026-03-01", "2026-04-30"), "payers": ["Cigna"]}
        created = create(
            client, customer, {"kind": "CLAIMS_EXPORT", "format": "JSON", "parameters": parameters}
        )
        report = finished(client, created.json()["name"])
        assert report["contentType"] == "application/x-ndjson"
        assert report["parameters"]["payers"] == ["Cigna"]
        body = client.get(f"/v1/{report['name']}:download").content
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert sorted(line["claimId"] for line in lines) == ["C3", "C4"]


def test_a_rolling_period_is_resolved_to_the_days_before_the_report(
    system: System, customer_with_claims: str
) -> None:
    customer = customer_with_claims
    with system.client(customer) as client:
        created = create(
            client,
            customer,
            {"kind": "EVENTS_EXPORT", "format": "CSV", "parameters": {"lookbackDays": 7}},
        )
        assert created.status_code == 200, created.text
        report = finished(client, created.json()["name"])
    assert report["state"] == "SUCCEEDED", report
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    week_start = yesterday - dt.timedelta(days=6)
    shown = report["parameters"]["dateRange"]
    assert shown["endDate"] == {
        "year": yesterday.year,
        "month": yesterday.month,
        "day": yesterday.day,
    }
    assert shown["startDate"] == {
        "year": week_start.year,
        "month": week_start.month,
        "day": week_start.day,
    }


def test_a_repeated_request_id_returns_the_first_report(system: System) -> None:
    customer = fresh_customer()
    report = {
        "kind": "EVENTS_EXPORT",
        "format": "JSON",
        "parameters": period("2026-01-01", "2026-01-31"),
    }
    with system.client(customer) as client:
        first = create(client, customer, report, **{"Idempotency-Key": "monthly-2026-01"})
        again = create(client, customer, report, **{"Idempotency-Key": "monthly-2026-01"})
        other = create(client, customer, report, **{"Idempotency-Key": "monthly-2026-01b"})
        listed = client.get(f"/v1/customers/{customer}/reports").json()["reports"]
    assert first.status_code == again.status_code == 200
    assert first.json()["name"] == again.json()["name"] != other.json()["name"]
    assert sorted(r["name"] for r in listed) == sorted([first.json()["name"], other.json()["name"]])


@pytest.mark.parametrize(
    ("report", "field"),
    [
        ({"format": "CSV", "parameters": {"lookbackDays": 7}}, "report.kind"),
        ({"kind": "CLAIMS_EXPORT", "parameters": {"lookbackDays": 7}}, "report.format"),
        (
            {"kind": "CLAIMS_EXPORT", "format": "PDF", "parameters": {"lookbackDays": 7}},
            "report.format",
        ),
        (
            {"kind": "PAYER_SCORECARD", "format": "CSV", "parameters": {"lookbackDays": 7}},
            "report.format",
        ),
        ({"kind": "CLAIMS_EXPORT", "format": "CSV", "parameters": {}}, "report.parameters"),
        (
            {
                "kind": "CLAIMS_EXPORT",
                "format": "CSV",
                "parameters": period("2026-03-02", "2026-03-01"),
            },
            "report.parameters.date_range.end_date",
        ),
        (
            {
                "kind": "CLAIMS_EXPORT",
                "format": "CSV",
                "parameters": period("2026-02-30", "2026-03-01"),
            },
            "report.parameters.date_range.start_date",
        ),
        (
            {
                "kind": "CLAIMS_EXPORT",
                "format": "CSV",
                "parameters": {"lookbackDays": 7, "payers": [" "]},
            },
            "report.parameters.payers[0]",
        ),
    ],
)
def test_a_report_that_cannot_be_built_is_refused_naming_the_field(
    system: System, report: dict[str, Any], field: str
) -> None:
    customer = fresh_customer()
    with system.client(customer) as client:
        response = create(client, customer, report)
        listed = client.get(f"/v1/customers/{customer}/reports").json().get("reports", [])
    assert response.status_code == 400, response.text
    assert field in violations(response), response.text
    assert listed == []


def test_reports_are_listed_newest_first_filtered_and_deleted_with_their_content(
    system: System, customer_with_claims: str
) -> None:
    customer = customer_with_claims
    with system.client(customer) as client:
        names = []
        for kind, fmt in (("CLAIMS_EXPORT", "CSV"), ("EVENTS_EXPORT", "JSON")):
            created = create(
                client,
                customer,
                {"kind": kind, "format": fmt, "parameters": period("2026-03-01", "2026-03-31")},
            )
            names.append(finished(client, created.json()["name"])["name"])
        listed = client.get(
            f"/v1/customers/{customer}/reports", params={"filter": "kind = EVENTS_EXPORT"}
        ).json()["reports"]
        assert listed[0]["name"] == names[1]
        assert all(r["kind"] == "EVENTS_EXPORT" for r in listed)
        everything = client.get(f"/v1/customers/{customer}/reports").json()["reports"]
        times = [r["createTime"] for r in everything]
        assert times == sorted(times, reverse=True)

        assert client.delete(f"/v1/{names[0]}").status_code == 200
        assert client.get(f"/v1/{names[0]}").status_code == 404
        gone = client.get(f"/v1/{names[0]}:download")
        assert gone.status_code == 404
        assert reason(gone) == "RESOURCE_NOT_FOUND"
    with system.client("someoneelse") as other:
        assert other.get(f"/v1/{names[1]}").status_code == 404
        assert other.get(f"/v1/{names[1]}:download").status_code == 404


def test_a_viewer_downloads_but_cannot_ask_for_reports(
    system: System, customer_with_claims: str
) -> None:
    customer = customer_with_claims
    with system.client(customer) as admin:
        created = create(
            admin,
            customer,
            {
                "kind": "CLAIMS_EXPORT",
                "format": "CSV",
                "parameters": period("2026-03-01", "2026-03-31"),
            },
        )
        name = finished(admin, created.json()["name"])["name"]
    with system.client(customer, "viewer") as viewer:
        assert viewer.get(f"/v1/{name}:download").status_code == 200
        refused = create(
            viewer,
            customer,
            {"kind": "CLAIMS_EXPORT", "format": "CSV", "parameters": {"lookbackDays": 3}},
        )
        assert refused.status_code == 403
        assert viewer.delete(f"/v1/{name}").status_code == 403


# --- Builds that stop or fail ---------------------------------------------------------------


def test_a_report_waits_for_a_builder_and_cannot_be_downloaded_before(
    postgres: PostgresUnderTest, system: System
) -> None:
    """A reports process with no build slots leaves reports PENDING; one with slots, started
    later on the same database, builds them."""
    customer = fresh_customer()
    metadata = [("authorization", f"Bearer {system.token(customer)}")]
    with own_database(postgres, ("reports",)) as database:
        url = database.url("reports", "app")
        with (
            running_service("reports", url, REPORT_BUILD_CONCURRENCY="0", **_targets(system)) as (
                _,
                target,
            ),
            grpc.insecure_channel(target) as channel,
        ):
            stub = reports_service_pb2_grpc.ReportsServiceStub(channel)
            report = stub.CreateReport(
                reports_service_pb2.CreateReportRequest(
                    parent=f"customers/{customer}",
                    report=resources_pb2.Report(
                        kind=resources_pb2.EVENTS_EXPORT,
                        format=resources_pb2.CSV,
                        parameters=resources_pb2.ReportParameters(lookback_days=30),
                    ),
                ),
                metadata=metadata,
            )
            assert report.state == resources_pb2.Report.PENDING
            with pytest.raises(grpc.RpcError) as refused:
                list(
                    stub.DownloadReport(
                        reports_service_pb2.DownloadReportRequest(name=report.name),
                        metadata=metadata,
                    )
                )
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "PENDING" in (refused.value.details() or "")
        with (
            running_service("reports", url, **_targets(system)) as (_, target),
            grpc.insecure_channel(target) as channel,
        ):
            stub = reports_service_pb2_grpc.ReportsServiceStub(channel)
            request = reports_service_pb2.GetReportRequest(name=report.name)
            wait_until(
                "the report built",
                lambda: (
                    stub.GetReport(request, metadata=metadata).state
                    == resources_pb2.Report.SUCCEEDED
                ),
                timeout=WAIT,
            )
            chunks = list(
                stub.DownloadReport(
                    reports_service_pb2.DownloadReportRequest(name=report.name), metadata=metadata
                )
            )
    assert chunks[0].content_type == "text/csv; charset=utf-8"
    assert b"".join(c.data for c in chunks).startswith(b"name,")


def _targets(system: System) -> dict[str, str]:
    return {f"{s.upper()}_TARGET": t for s, t in system.targets.items()}


class _Builder:
    """Content of a test report: `pieces` pieces of `size` bytes of `fill`; waits on
    `release` after the first `hold_after` pieces."""

    def __init__(self, fill: bytes, pieces: int, size: int, hold_after: int | None = None):
        self.fill, self.pieces, self.size, self.hold_after = fill, pieces, size, hold_after
        self.release = asyncio.Event()
        self.held = asyncio.Event()

    async def __call__(self, spec: content.ReportSpec, sources: Any) -> AsyncIterator[bytes]:
        for number in range(self.pieces):
            if number == self.hold_after:
                self.held.set()
                await self.release.wait()
            yield self.fill * self.size


def _builds(store: ReportStore, builder: _Builder, lease_seconds: float) -> ReportBuilds:
    return ReportBuilds(
        store,
        content.Sources(ingest=None, drift=None),  # type: ignore[arg-type]
        report_message,
        concurrency=1,
        lease_seconds=lease_seconds,
        webhook_max_attempts=1,
        wake_up=asyncio.Event(),
        deliveries_queued=asyncio.Event(),
        builder=builder,
        poll_seconds=0.2,
    )


async def _create(store: ReportStore, customer: str) -> str:
    row = await store.create_report(
        customer,
        "rpt_" + uuid.uuid4().hex[:16],
        kind="CLAIMS_EXPORT",
        format="CSV",
        start_date=dt.date(2026, 3, 1),
        end_date=dt.date(2026, 3, 31),
        payers=[],
        parameters=resources_pb2.ReportParameters(lookback_days=30).SerializeToString(),
        creator="admin@test",
        request_id=None,
        trace_context={},
    )
    return str(row.report_id)


async def _until(check: Any, seconds: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def test_a_build_that_dies_midway_is_built_again_and_no_half_file_is_ever_served(
    postgres: PostgresUnderTest,
) -> None:
    """A builder that stops after writing part of the content (its process died) holds the
    report until its lease ends; then another builds it whole, and only that build's chunks
    are the content. The first build's leftovers are deleted."""

    async def scenario(url: str) -> None:
        engine = create_async_engine(url)
        store = ReportStore(engine)
        try:
            report_id = await _create(store, "lease")
            # 3 MiB and a bit: four chunks, the first three written before the builder dies.
            dying = _Builder(b"a", pieces=4, size=1024 * 1024 + 7, hold_after=3)
            first = _builds(store, dying, lease_seconds=1.5)
            async with first.running():
                await asyncio.wait_for(dying.held.wait(), WAIT)
                stopped_at = await store.get_report("lease", report_id)
                assert stopped_at is not None and stopped_at.state == "RUNNING"
            # Leaving `running` stops the build where it is, like a process that died: the
            # lease is neither renewed nor released.
            whole = _Builder(b"b", pieces=2, size=1000)
            second = _builds(store, whole, lease_seconds=30)
            async with second.running():

                async def succeeded() -> bool:
                    row = await store.get_report("lease", report_id)
                    return row is not None and row.state == "SUCCEEDED"

                await _until(succeeded)
            row = await store.get_report("lease", report_id)
            assert row is not None and row.build_count == 2 and row.size_bytes == 2000
            stored = b"".join([data async for data in store.content(row)])
            assert stored == b"b" * 2000
            assert row.sha256 == hashlib.sha256(stored).hexdigest()
        finally:
            await engine.dispose()

    with own_database(postgres, ("reports",)) as database:
        asyncio.run(scenario(database.url("reports", "app")))
        with psycopg.connect(schemas.libpq_url(database.admin_url)) as connection:
            builds = connection.execute(
                "SELECT DISTINCT build FROM reports.report_chunks"
            ).fetchall()
    assert builds == [(2,)]


def test_a_build_that_lost_its_lease_cannot_finish_the_report(postgres: PostgresUnderTest) -> None:
    """A builder that stalls past its lease (a long pause) is overtaken; when it comes back
    its chunks and its outcome are discarded."""

    async def scenario(url: str) -> None:
        engine = create_async_engine(url)
        store = ReportStore(engine)
        try:
            report_id = await _create(store, "stall")
            claimed = await store.claim_report(uuid.uuid4(), 0.5)
            assert claimed is not None
            await store.write_chunk("stall", report_id, claimed.build_count, 0, b"stale")
            await asyncio.sleep(0.6)
            overtaking = await store.claim_report(uuid.uuid4(), 30)
            assert overtaking is not None and overtaking.build_count == 2
            await store.write_chunk("stall", report_id, overtaking.build_count, 0, b"fresh")
            late = await store.succeed(
                claimed,
                size_bytes=5,
                sha256="x",
                content_type="text/csv",
                file_name="a.csv",
                keep_days=30,
                ready_body=lambda row: b"{}",
                max_attempts=1,
            )
            assert late is None
            assert not await store.fail(claimed, code=13, message="late", keep_days=30)
            done = await store.succeed(
                overtaking,
                size_bytes=5,
                sha256=hashlib.sha256(b"fresh").hexdigest(),
                content_type="text/csv",
                file_name="a.csv",
                keep_days=30,
                ready_body=lambda row: b"{}",
                max_attempts=1,
            )
            assert done is not None and done.state == "SUCCEEDED"
            assert b"".join([d async for d in store.content(done)]) == b"fresh"
        finally:
            await engine.dispose()

    with own_database(postgres, ("reports",)) as database:
        asyncio.run(scenario(database.url("reports", "app")))


def test_a_reports_process_killed_mid_build_leaves_the_report_whole_to_another(
    postgres: PostgresUnderTest, system: System, customer_with_claims: str
) -> None:
    """SIGKILL a reports process while it builds (ingest paused under it, so the build is
    surely in progress): the report stays RUNNING until the lease ends, then a second
    process builds it whole; nothing of the first build is ever served."""
    customer = customer_with_claims
    ingest = dict(system.stack.processes)["ingest"]
    metadata = [("authorization", f"Bearer {system.token(customer)}")]
    settings = {"REPORT_LEASE_SECONDS": "2", **_targets(system)}

    def state() -> tuple[str, int]:
        with psycopg.connect(schemas.libpq_url(database.admin_url)) as connection:
            found = connection.execute(
                "SELECT state, build_count FROM reports.reports WHERE report_id = %s",
                (name.rsplit("/", 1)[1],),
            ).fetchone()
        assert found is not None
        return str(found[0]), int(found[1])

    with own_database(postgres, ("reports",)) as database:
        url = database.url("reports", "app")
        with (
            running_service("reports", url, **settings) as (first, target),
            grpc.insecure_channel(target) as channel,
        ):
            stub = reports_service_pb2_grpc.ReportsServiceStub(channel)
            ingest.send_signal(signal.SIGSTOP)
            try:
                name = stub.CreateReport(
                    reports_service_pb2.CreateReportRequest(
                        parent=f"customers/{customer}",
                        report=resources_pb2.Report(
                            kind=resources_pb2.CLAIMS_EXPORT,
                            format=resources_pb2.CSV,
                            parameters=resources_pb2.ReportParameters(
                                date_range=resources_pb2.DateRange(
                                    start_date=date_pb2.Date(year=2026, month=3, day=1),
                                    end_date=date_pb2.Date(year=2026, month=3, day=31),
                                )
                            ),
                        ),
                    ),
                    metadata=metadata,
                ).name
                wait_until("the build under way", lambda: state() == ("RUNNING", 1), timeout=WAIT)
                first.kill()
                first.wait()
            finally:
                ingest.send_signal(signal.SIGCONT)
        assert state() == ("RUNNING", 1)
        with (
            running_service("reports", url, **settings) as (_, target),
            grpc.insecure_channel(target) as channel,
        ):
            stub = reports_service_pb2_grpc.ReportsServiceStub(channel)
            wait_until("the report built again", lambda: state()[0] == "SUCCEEDED", timeout=WAIT)
            report = stub.GetReport(
                reports_service_pb2.GetReportRequest(name=name), metadata=metadata
            )
            body = b"".join(
                chunk.data
                for chunk in stub.DownloadReport(
                    reports_service_pb2.DownloadReportRequest(name=name), metadata=metadata
                )
            )
        assert state() == ("SUCCEEDED", 2)
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert sorted(r["claim_id"] for r in rows) == ["C1", "C2-DENIED", "C3"]
    assert hashlib.sha256(body).hexdigest() == report.sha256

"""Retention by configuration, per customer: claims decided before the cutoff leave with
their statistics (what stays reads as if the old claims had never been uploaded), audit
entries leave after their own period, a customer whose override keeps everything keeps it,
and each purge is itself in the audit log. The job runs in the real services, in batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from playwright.sync_api import expect
from sqlalchemy.ext.asyncio import create_async_engine

from devtools.stack import wait_until
from runtime.audit import AuditLog
from runtime.schemas import libpq_url
from services.reports.report_store import ReportStore
from tests.browser import chromium, go, signed_in
from tests.conftest import PostgresUnderTest, own_database
from tests.system import SERVICES, running_system

CSV_HEADER = "claim_id,payer,decision_date,status,billed_amount,paid_amount\n"
OLD_DAY, RECENT_DAY = dt.date(2019, 3, 4), dt.date.today() - dt.timedelta(days=20)
# The 20 old claims go in four whole batches; the pass's fifth removes none.
BATCH = 5
TODAY = dt.date.today()
CUTOFF_DAY = dt.date(TODAY.year - 3, TODAY.month, 1)


def _csv(rows: list[tuple[str, str, dt.date]]) -> bytes:
    lines = [
        f"{claim},{payer},{day},{'DENIED' if claim.endswith('D') else 'PAID'},150.00,90.00\n"
        for claim, payer, day in rows
    ]
    return (CSV_HEADER + "".join(lines)).encode()


OLD = [(f"O{n}{'D' if n % 4 == 0 else ''}", ("Aetna", "Cigna")[n % 2], OLD_DAY) for n in range(20)]
RECENT = [(f"R{n}", ("Aetna", "Cigna")[n % 2], RECENT_DAY) for n in range(10)]


def _stats(client: httpx.Client, customer: str, start: dt.date, end: dt.date) -> list[Any]:
    answer = client.get(
        f"/v1/customers/{customer}/dailyStats",
        params={"startDate": start.isoformat(), "endDate": end.isoformat()},
    )
    assert answer.status_code == 200, answer.text
    return sorted((json.loads(line) for line in answer.text.splitlines() if line), key=str)


def _claims(client: httpx.Client, customer: str) -> list[str]:
    listed = client.get(f"/v1/customers/{customer}/claims", params={"pageSize": 1000}).json()
    return sorted(c["claimId"] for c in listed.get("claims", []))


def _runs(client: httpx.Client, customer: str) -> list[Any]:
    listed = client.get(f"/v1/customers/{customer}/driftRuns", params={"pageSize": 100})
    assert listed.status_code == 200, listed.text
    return list(listed.json().get("driftRuns", []))


def _retention_runs(client: httpx.Client, customer: str) -> list[Any]:
    return [r for r in _runs(client, customer) if r["requestId"].startswith("retention:")]


def test_claims_and_audit_entries_past_retention_are_purged_in_audited_batches(
    postgres: PostgresUnderTest,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    purged, keeper, fresh = f"purged{suffix}", f"keeper{suffix}", f"fresh{suffix}"
    settings = {
        "RETENTION_CLAIMS_YEARS": "3",
        "RETENTION_AUDIT_DAYS": "30",
        "RETENTION_OVERRIDES": f"{keeper}:claims_years=0,audit_days=0",
        "RETENTION_INTERVAL_SECONDS": "0.5",
        "RETENTION_BATCH_ROWS": str(BATCH),
    }
    with own_database(postgres) as database:
        urls = {service: database.url(service) for service in SERVICES}
        with running_system(urls, **settings) as system:
            for customer, rows in ((purged, OLD + RECENT), (keeper, OLD + RECENT), (fresh, RECENT)):
                with system.client(customer) as client:
                    made = client.post(f"/v1/customers/{customer}/uploads", content=_csv(rows))
                    assert made.status_code == 200, made.text
            # An audit entry of 40 days ago (written as the schema's owner, which may), and
            # one of today (the upload's own).
            with psycopg.connect(libpq_url(database.url("drift", "owner"))) as owner:
                for customer in (purged, keeper):
                    owner.execute(
                        "INSERT INTO drift.audit_entries (customer_id, entry_id, create_time,"
                        " actor, actor_role, request_id, action, resource, changed_fields)"
                        " VALUES (%s, gen_random_uuid(), now() - interval '40 days', 'jane',"
                        " 'admin', '', 'UPDATE', %s, '{state}')",
                        (customer, f"customers/{customer}/driftConfig"),
                    )

            with system.client(purged) as client:
                wait_until(
                    "the old claims purged",
                    lambda: _claims(client, purged) == sorted(c for c, _, _ in RECENT),
                    system.stack,
                    timeout=60,
                )

                def drift_log(customer: str) -> list[Any]:
                    with system.client(customer) as reader:
                        return list(
                            reader.get(f"/v1/customers/{customer}/auditLogs/drift/entries")
                            .json()
                            .get("entries", [])
                        )

                wait_until(
                    "the old audit entry purged",
                    lambda: all(e["actor"] != "jane" for e in drift_log(purged)),
                    system.stack,
                    timeout=60,
                )
                # One detection run follows the purge (not one a batch): the findings of
                # claims no longer kept must not stand.
                wait_until(
                    "a run after the purge",
                    lambda: [r["state"] for r in _retention_runs(client, purged)] == ["SUCCEEDED"],
                    system.stack,
                    timeout=60,
                )
                # Passes go on (every 0.5 s) with nothing left to purge.
                time.sleep(2)
                purge_runs = _retention_runs(client, purged)
                # One trace runs from the purge to the run it asked for.
                (purge_span,) = [
                    s
                    for s in system.spans.spans
                    if s["name"] == "retention purge"
                    and s["attributes"]["upstream.customer"].string_value == purged
                    and s["attributes"]["upstream.retention.what"].string_value == "claims"
                    and s["attributes"]["upstream.retention.rows_removed"].int_value
                ]
                wait_until(
                    "the run's span",
                    lambda: any(
                        s["name"] == "process drift run"
                        for s in system.spans.trace(purge_span["trace_id"])
                    ),
                    system.stack,
                    timeout=20,
                )
            # The runs page says what started it.
            with chromium() as browser:
                session, page = signed_in(browser, system, purged)
                go(page, "Detection runs")
                runs = page.get_by_role("table", name="Detection runs, newest first")
                expect(runs.get_by_role("row")).to_have_count(3)  # the upload's run, and this
                expect(runs.get_by_role("cell").get_by_text("Retention removed")).to_have_text(
                    "Retention removed the claims decided before "
                    f"{CUTOFF_DAY:%b} 1, {CUTOFF_DAY.year}"
                )
                assert session.errors == []
            with system.client(purged) as client:
                old_stats = _stats(client, purged, OLD_DAY, OLD_DAY)
                recent_stats = _stats(client, purged, RECENT_DAY, RECENT_DAY)
                ingest_log = client.get(
                    f"/v1/customers/{purged}/auditLogs/ingest/entries",
                    params={"filter": f'resource = "customers/{purged}/claims"'},
                ).json()["entries"]
            with system.client(fresh) as client:
                reference = _stats(client, fresh, RECENT_DAY, RECENT_DAY)
            with system.client(keeper) as client:
                kept_claims = _claims(client, keeper)
                kept_old_stats = _stats(client, keeper, OLD_DAY, OLD_DAY)
                kept_runs = _runs(client, keeper)
            kept_log = drift_log(keeper)
            purge_entries = drift_log(purged)

    # What stays reads as if the old claims had never come.
    assert old_stats == []
    assert recent_stats == reference and reference
    # The override keeps everything.
    assert kept_claims == sorted(c for c, _, _ in OLD + RECENT)
    assert kept_old_stats
    assert any(e["actor"] == "jane" for e in kept_log)
    # Each batch is in the audit log, by the service, with what it removed and why.
    assert len(ingest_log) >= len(OLD) // BATCH
    assert {(e["actor"], e["actorRole"], e["action"]) for e in ingest_log} == {
        ("service:ingest", "service", "DELETE")
    }
    assert sum(int(e["before"]["claims_removed"]) for e in ingest_log) == len(OLD)
    cutoff = CUTOFF_DAY.isoformat()
    assert {e["before"]["decided_before"] for e in ingest_log} == {cutoff}
    (run,) = purge_runs
    assert run["trigger"] == "DATA_CHANGE"
    assert run["requestId"].startswith(f"retention:{cutoff}:")
    # A customer whose claims are all kept gets no run but its upload's.
    assert [r["trigger"] for r in kept_runs] == ["UPLOAD"]
    (audit_purge,) = [e for e in purge_entries if e["resource"].endswith("/auditLogs/drift")]
    assert audit_purge["before"]["entries_removed"] == 1


def test_an_expired_report_goes_and_its_purge_is_in_the_audit_log(
    postgres: PostgresUnderTest,
) -> None:
    customer = "expiring" + uuid.uuid4().hex[:6]

    async def scenario(url: str) -> tuple[int, Any, list[Any]]:
        engine = create_async_engine(url)
        store = ReportStore(engine)
        try:
            for report_id in ("rpt_old", "rpt_new"):
                await store.create_report(
                    customer,
                    report_id,
                    kind="EVENTS_EXPORT",
                    format="CSV",
                    start_date=dt.date(2026, 1, 1),
                    end_date=dt.date(2026, 1, 31),
                    payers=[],
                    parameters=b"",
                    creator="admin@x",
                    request_id=None,
                    trace_context={},
                )
            async with engine.begin() as connection:
                await connection.execute(
                    sa.text(
                        "UPDATE reports.reports SET expire_time = now() - interval '1 second'"
                        " WHERE customer_id = :customer AND report_id = 'rpt_old'"
                    ),
                    {"customer": customer},
                )
            removed = await store.delete_expired(100)
            left = await store.get_report(customer, "rpt_new")
            entries = await AuditLog(engine, "reports").list_entries(
                customer, 'action = "DELETE"', 10, None
            )
        finally:
            await engine.dispose()
        return removed, left, entries

    with own_database(postgres, ("reports",)) as database:
        removed, left, entries = asyncio.run(scenario(database.url("reports", "app")))

    assert removed == 1 and left is not None
    ((entry),) = entries
    assert (entry.actor, entry.resource) == ("service:reports", f"customers/{customer}/reports")
    assert entry.before == {"removed": 1, "why": "past their expiry"}

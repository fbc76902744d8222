"""Report schedules: when they run (cron on a time zone's wall clock, across daylight-saving
changes), what the gateway refuses, and that a due run makes one report however many
reports processes run the scheduler and however long they were down."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import zoneinfo
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from devtools.stack import wait_until
from runtime import schemas
from services.reports.report_api import resolve_period
from services.reports.schedules import ScheduleStore, cron_problem, next_run
from tests.conftest import PostgresUnderTest, own_database
from tests.reports.test_alerts import MailServer
from tests.system import System, free_port, metric_value, running_service
from tests.test_gateway_api import error_of, violations
from upstream.reports.v1 import resources_pb2

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # A weekly run in India: Monday 07:00 IST is 01:30 UTC.
        ("0 7 * * MON", "Asia/Kolkata", "2026-12-03T00:00:00+00:00", "2026-12-07T01:30:00+00:00"),
        # Spring forward (8 March 2026): 02:30 does not exist in New York; it runs at 03:30
        # daylight time, then at 02:30 daylight time the next day.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00+00:00",
            "2026-03-08T07:30:00+00:00",
        ),
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-08T07:30:00+00:00",
            "2026-03-09T06:30:00+00:00",
        ),
        # Fall back (1 November 2026): 01:30 happens twice; it runs the first time only...
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00+00:00",
            "2026-11-01T05:30:00+00:00",
        ),
        # ...and next at 01:30 standard time the day after.
        (
            "30 1 * * *",
            "America/New_York",
            "2026-11-01T05:30:00+00:00",
            "2026-11-02T06:30:00+00:00",
        ),
        # 07:00 local is 12:00 UTC in winter and 11:00 UTC in summer.
        ("0 7 * * *", "America/New_York", "2026-03-07T13:00:00+00:00", "2026-03-08T11:00:00+00:00"),
        ("0 9 1 * *", "UTC", "2026-12-01T09:00:00+00:00", "2027-01-01T09:00:00+00:00"),
    ],
)
def test_a_schedule_runs_at_its_wall_clock_time_across_daylight_saving_changes(
    cron: str, zone: str, after: str, expected: str
) -> None:
    assert next_run(cron, zoneinfo.ZoneInfo(zone), at(after)) == at(expected)


def test_an_hourly_schedule_runs_once_per_wall_clock_hour_on_the_day_clocks_go_back() -> None:
    runs = [at("2026-11-01T04:30:00+00:00")]  # 00:30 daylight time
    while len(runs) < 4:
        runs.append(next_run("0 * * * *", NEW_YORK, runs[-1]))
    local = [run.astimezone(NEW_YORK).strftime("%H:%M %Z") for run in runs[1:]]
    assert local == ["01:00 EDT", "02:00 EST", "03:00 EST"]


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 7 * *", "5-field"),
        ("0 0 7 * * MON", "5-field"),
        ("61 * * * *", "5-field"),
        ("0 7 * * FUNDAY", "5-field"),
        ("*/5 * * * *", "at most hourly"),
        ("0,30 * * * *", "at most hourly"),
    ],
)
def test_a_cron_expression_that_is_wrong_or_runs_too_often_is_explained(
    cron: str, problem: str
) -> None:
    found = cron_problem(cron)
    assert found is not None and problem in found
    assert cron_problem("0 7 * * MON") is None


# --- Through the gateway ---------------------------------------------------------------------


def template(kind: str = "DRIFT_SUMMARY", fmt: str = "PDF", **parameters: Any) -> dict[str, Any]:
    return {"kind": kind, "format": fmt, "parameters": parameters or {"lookbackDays": 7}}


def schedule(**fields: Any) -> dict[str, Any]:
    return {
        "displayName": "Monday summary",
        "cron": "0 7 * * MON",
        "timeZone": "America/Chicago",
        "reportTemplate": template(),
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "every monday"}, "report_schedule.cron"),
        ({"cron": "*/15 * * * *"}, "report_schedule.cron"),
        ({"timeZone": "America/Gotham"}, "report_schedule.time_zone"),
        ({"timeZone": "Not/AZone/../x"}, "report_schedule.time_zone"),
        ({"displayName": "  "}, "report_schedule.display_name"),
        (
            {"reportTemplate": template("CLAIMS_EXPORT", "PDF")},
            "report_schedule.report_template.format",
        ),
        (
            {"reportTemplate": {"kind": "CLAIMS_EXPORT", "format": "CSV", "parameters": {}}},
            "report_schedule.report_template.parameters",
        ),
        (
            {"reportTemplate": template(lookbackDays=0)},
            "report_schedule.report_template.parameters.lookback_days",
        ),
        (
            {"emailRecipients": ["ops@example.com", "not an address"]},
            "report_schedule.email_recipients[1]",
        ),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(
    system: System, fields: dict[str, Any], field: str
) -> None:
    customer = "sched" + uuid.uuid4().hex[:8]
    with system.client(customer) as client:
        response = client.post(f"/v1/customers/{customer}/reportSchedules", json=schedule(**fields))
        listed = client.get(f"/v1/customers/{customer}/reportSchedules").json()
    assert response.status_code == 400, response.text
    assert field in violations(response), response.text
    assert listed.get("reportSchedules", []) == []


def test_a_schedule_is_created_paused_updated_and_deleted(system: System) -> None:
    customer = "sched" + uuid.uuid4().hex[:8]
    base = f"/v1/customers/{customer}/reportSchedules"
    with system.client(customer) as client:
        created = client.post(base, json=schedule(emailRecipients=["cfo@example.com"]))
        assert created.status_code == 200, created.text
        made = created.json()
        next_time = dt.datetime.fromisoformat(made["nextRunTime"].replace("Z", "+00:00"))
        chicago = next_time.astimezone(zoneinfo.ZoneInfo("America/Chicago"))
        assert (chicago.weekday(), chicago.hour, chicago.minute) == (0, 7, 0)
        assert next_time > dt.datetime.now(UTC)
        assert made["emailRecipients"] == ["cfo@example.com"]

        paused = client.patch(f"/v1/{made['name']}", json={"paused": True, "etag": made["etag"]})
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True and "nextRunTime" not in paused.json()
        stale = client.patch(f"/v1/{made['name']}", json={"paused": False, "etag": made["etag"]})
        assert stale.status_code == 409
        assert error_of(stale)["code"] == "ABORTED"

        moved = client.patch(
            f"/v1/{made['name']}",
            params={"updateMask": "paused,cron,timeZone"},
            json={"paused": False, "cron": "30 6 * * *", "timeZone": "Europe/Berlin"},
        )
        assert moved.status_code == 200, moved.text
        berlin = dt.datetime.fromisoformat(moved.json()["nextRunTime"].replace("Z", "+00:00"))
        local = berlin.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute) == (6, 30)
        assert moved.json()["reportTemplate"]["kind"] == "DRIFT_SUMMARY"

        listed = client.get(base, params={"filter": "paused = false"}).json()["reportSchedules"]
        assert [s["name"] for s in listed] == [made["name"]]
        assert client.delete(f"/v1/{made['name']}").status_code == 200
        assert client.get(f"/v1/{made['name']}").status_code == 404
    with system.client("someoneelse") as other:
        assert other.get(f"/v1/{made['name']}").status_code == 404


# --- Each run once ---------------------------------------------------------------------------


def test_schedules_are_listed_by_display_name_across_pages(system: System) -> None:
    customer = "sched" + uuid.uuid4().hex[:8]
    base = f"/v1/customers/{customer}/reportSchedules"
    names = ["Weekly denials", "Board pack", "Month end", "Aetna review"]
    listed: list[str] = []
    with system.client(customer) as client:
        for name in names:
            made = client.post(base, json=schedule(displayName=name))
            assert made.status_code == 200, made.text
        token = ""
        while True:
            page = client.get(base, params={"pageSize": 1, "pageToken": token}).json()
            listed.extend(s["displayName"] for s in page["reportSchedules"])
            if not (token := page["nextPageToken"]):
                break

    assert listed == sorted(names)


async def _add_due_schedules(
    url: str, count: int, cron: str, due: dt.datetime, recipients: tuple[str, ...] = ()
) -> list[str]:
    engine = create_async_engine(url)
    store = ScheduleStore(engine)
    made = []
    try:
        for index in range(count):
            row = await store.create(
                f"cust{index % 7}",
                {
                    "display_name": f"schedule {index}",
                    "cron": cron,
                    "time_zone": "America/New_York",
                    "report_template": resources_pb2.ReportTemplate(
                        kind=resources_pb2.EVENTS_EXPORT,
                        format=resources_pb2.CSV,
                        parameters=resources_pb2.ReportParameters(lookback_days=7),
                    ).SerializeToString(),
                    "email_recipients": list(recipients),
                    "paused": False,
                    "next_run_time": due,
                    "creator": "admin@test",
                },
            )
            made.append(row.schedule_id)
    finally:
        await engine.dispose()
    return made


def _reports_per_schedule(admin_url: str) -> dict[str, int]:
    with psycopg.connect(schemas.libpq_url(admin_url)) as connection:
        rows = connection.execute(
            "SELECT schedule_id, count(*) FROM reports.reports"
            " WHERE schedule_id IS NOT NULL GROUP BY schedule_id"
        ).fetchall()
    return {schedule_id: count for schedule_id, count in rows}


def test_two_reports_processes_run_each_of_100_due_schedules_once(
    postgres: PostgresUnderTest,
) -> None:
    """100 schedules, due since three days (an hourly cron: 72 missed ticks each), and two
    reports processes starting together: one report per schedule, and every schedule's
    next run is in the future."""
    with own_database(postgres, ("reports",)) as database:
        due = dt.datetime.now(UTC) - dt.timedelta(days=3)
        made = asyncio.run(
            _add_due_schedules(database.url("reports", "app"), 100, "0 * * * *", due)
        )
        url = database.url("reports", "app")
        metrics_ports = [free_port(), free_port()]
        # No builds: the reports stay PENDING, and nothing needs ingest or drift.
        with (
            running_service(
                "reports", url, metrics_port=metrics_ports[0], REPORT_BUILD_CONCURRENCY="0"
            ),
            running_service(
                "reports", url, metrics_port=metrics_ports[1], REPORT_BUILD_CONCURRENCY="0"
            ),
        ):
            wait_until(
                "every schedule run",
                lambda: len(_reports_per_schedule(database.admin_url)) == 100,
                timeout=60,
            )
            # What an SRE's dashboard shows: 100 runs made a report, over both replicas.
            created = sum(
                metric_value(port, "report_schedule_runs_total", outcome="created")
                for port in metrics_ports
            )
            failures = sum(
                metric_value(port, "report_scheduler_failures_total") for port in metrics_ports
            )
        counts = _reports_per_schedule(database.admin_url)
        with psycopg.connect(schemas.libpq_url(database.admin_url)) as connection:
            waiting = connection.execute(
                "SELECT count(*) FROM reports.report_schedules WHERE next_run_time <= now()"
            ).fetchone()
            periods = connection.execute(
                "SELECT DISTINCT end_date - start_date, state FROM reports.reports"
            ).fetchall()
    assert sorted(counts) == sorted(made)
    assert set(counts.values()) == {1}
    assert waiting == (0,)
    assert periods == [(6, "PENDING")]
    assert (created, failures) == (100, 0)


def test_a_run_already_made_is_not_made_again(postgres: PostgresUnderTest) -> None:
    """Two schedulers claiming the same due runs at the same moment make each run once."""

    async def scenario(url: str) -> tuple[int, int, int]:
        due = dt.datetime(2026, 12, 1, 12, tzinfo=UTC)
        await _add_due_schedules(url, 20, "0 12 * * *", due)
        engines = [create_async_engine(url) for _ in range(2)]
        try:
            stores = [ScheduleStore(engine) for engine in engines]
            now = due + dt.timedelta(minutes=5)

            def resolve(parameters: Any, day: dt.date) -> tuple[dt.date, dt.date]:
                return resolve_period(parameters, "report_template.parameters", today=day)

            first, second = await asyncio.gather(
                *(store.run_due(now, resolve, limit=20) for store in stores)
            )
            again = await stores[0].run_due(now, resolve)
            return first, second, again
        finally:
            for engine in engines:
                await engine.dispose()

    with own_database(postgres, ("reports",)) as database:
        first, second, again = asyncio.run(scenario(database.url("reports", "app")))
        counts = _reports_per_schedule(database.admin_url)
    assert first + second == 20 and again == 0
    assert len(counts) == 20 and set(counts.values()) == {1}


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_scheduled_report_is_built_and_its_recipients_are_emailed_a_link(
    postgres: PostgresUnderTest, system: System, mail_server: MailServer
) -> None:
    """A due schedule's run builds its report; once it is ready, the schedule's recipients
    get one email naming the file and linking to its download."""
    targets = {f"{s.upper()}_TARGET": t for s, t in system.targets.items()}
    with own_database(postgres, ("reports",)) as database:
        due = dt.datetime.now(UTC) - dt.timedelta(minutes=5)
        url = database.url("reports", "app")
        asyncio.run(
            _add_due_schedules(
                url, 1, "0 7 * * *", due, recipients=("cfo@example.com", "ops@example.com")
            )
        )
        with running_service(
            "reports",
            url,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(mail_server.port),
            PUBLIC_BASE_URL="https://upstream.example.com",
            **targets,
        ):
            wait_until(
                "the report's email",
                lambda: any("Report ready" in m.message["subject"] for m in mail_server.received()),
                timeout=60,
            )
        with psycopg.connect(schemas.libpq_url(database.admin_url)) as connection:
            report = connection.execute(
                "SELECT customer_id, report_id, state, file_name FROM reports.reports"
            ).fetchone()
    assert report is not None and report[2] == "SUCCEEDED"
    mails = [m for m in mail_server.received() if "Report ready" in m.message["subject"]]
    assert len(mails) == 1
    assert sorted(mails[0].recipients) == ["cfo@example.com", "ops@example.com"]
    assert report[3] in mails[0].text
    link = f"https://upstream.example.com/v1/customers/{report[0]}/reports/{report[1]}:download"
    assert link in mails[0].text

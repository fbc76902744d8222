"""Every revision of every service goes down and up again on a database holding data, and
the data of the tables that stay is still there: a release can be rolled back to any earlier
schema and forward again without losing rows.

The data is what the real system writes: the services run on a database of their own, an
upload with a drift is detected and its event sent to a webhook, a rejected row, a report,
a schedule and an alert policy are made through the gateway."""

from __future__ import annotations

import psycopg
from alembic.script import ScriptDirectory

from devtools.stack import wait_until
from runtime.schemas import SERVICES, alembic_config, downgrade, libpq_url, migrate
from tests.conftest import PostgresUnderTest, own_database
from tests.reports.test_reports import claims_csv
from tests.reports.test_schedules import schedule
from tests.reports.test_webhook_deliveries import create_webhook
from tests.reports.webhook_receiver import receiving
from tests.scenarios import upload_drifted_history
from tests.system import running_system

CUSTOMER = "roundtrip"


def _fill(database: PostgresUnderTest) -> None:
    """Rows in every table the services write, through the gateway."""
    urls = {service: database.url(service) for service in SERVICES}
    with running_system(urls) as system, receiving() as receiver:
        with system.client(CUSTOMER) as client:
            create_webhook(client, CUSTOMER, receiver.url(), "DRIFT_EVENT_OPENED")
            base = f"/v1/customers/{CUSTOMER}"
            assert client.post(f"{base}/reportSchedules", json=schedule()).status_code == 200
            policy = client.patch(f"{base}/alertPolicy", json={"digestHour": 7})
            assert policy.status_code == 200, policy.text
        upload_drifted_history(system, CUSTOMER)
        with system.client(CUSTOMER) as client:
            bad = claims_csv([("R1", "Aetna", "2026-01-05"), ("R2", "Aetna", "not a date")])
            rejected = client.post(f"{base}/uploads", content=bad)
            assert rejected.status_code == 200, rejected.text
            report = client.post(
                f"{base}/reports",
                json={"kind": "EVENTS_EXPORT", "format": "CSV", "parameters": {"lookbackDays": 7}},
            )
            assert report.status_code == 200, report.text
            wait_until(
                "the report built",
                lambda: client.get(f"/v1/{report.json()['name']}").json()["state"] == "SUCCEEDED",
                timeout=60,
            )
        wait_until("a webhook delivery", receiver.received, timeout=60)


def _row_counts(database: PostgresUnderTest, service: str) -> dict[str, int]:
    """Rows of each of the service's tables (the version table aside)."""
    with psycopg.connect(libpq_url(database.admin_url)) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT relname::text FROM pg_class WHERE relnamespace = %s::regnamespace"
                " AND relkind IN ('r', 'p') AND relname <> 'alembic_version' ORDER BY 1",
                (service,),
            )
        ]
        counts = {}
        for table in tables:
            row = connection.execute(f'SELECT count(*) FROM {service}."{table}"').fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


def test_every_revision_goes_down_and_up_again_keeping_the_data(
    postgres: PostgresUnderTest,
) -> None:
    with own_database(postgres) as database:
        _fill(database)
        for service in SERVICES:
            owner = database.url(service, "owner")
            at_head = _row_counts(database, service)
            # The data reached most of the service's tables.
            filled = [table for table, rows in at_head.items() if rows]
            assert len(filled) >= len(at_head) * 0.6, (service, at_head)
            revisions = [
                r.revision
                for r in ScriptDirectory.from_config(alembic_config(service)).walk_revisions()
            ]  # newest first
            for earlier in [*revisions[1:], "base"]:
                downgrade(service, owner, earlier)
                down = _row_counts(database, service)
                # What an earlier revision has of the data, a downgrade leaves where it was
                # (a table a later revision dropped comes back as that revision made it).
                kept = {table: rows for table, rows in down.items() if table in at_head}
                assert kept == {table: at_head[table] for table in kept}, (service, earlier)
                migrate(service, owner)
                again = _row_counts(database, service)
                # Upgraded again, the schema is head's; the tables that stayed keep their
                # rows, and one made again is empty or, derived data, rebuilt whole.
                assert set(again) == set(at_head), (service, earlier)
                assert {table: again[table] for table in kept} == kept, (service, earlier)
                rebuilt = {table: again[table] for table in again if table not in kept}
                assert all(rows in (0, at_head[table]) for table, rows in rebuilt.items()), (
                    service,
                    earlier,
                    rebuilt,
                )
                at_head = again

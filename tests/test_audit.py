"""Every change a person or a service makes is in its service's audit log: who (the token's
subject and role), what (the resource and its changed fields, secrets named but never
shown), when and in which request. Admins list it over the REST API; viewers cannot; no
service role can change or delete an entry."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from runtime import schemas
from tests.conftest import PostgresUnderTest
from tests.reports.test_schedules import schedule
from tests.reports.test_webhook_deliveries import create_webhook
from tests.reports.test_webhook_rotation import rotate
from tests.scenarios import DRIFTED_PAYER, upload_drifted_history
from tests.system import System

# hooks.example.com resolves to loopback in tests, without asking DNS.
SLACK_URL = "https://hooks.example.com/services/T000/B000/secretpart"


def entries(client: httpx.Client, customer: str, service: str, **params: str) -> list[Any]:
    listed = client.get(f"/v1/customers/{customer}/auditLogs/{service}/entries", params=params)
    assert listed.status_code == 200, listed.text
    return list(listed.json().get("entries", []))


def request_id() -> str:
    return uuid.uuid4().hex


def test_each_service_records_who_changed_what_and_admins_list_it(system: System) -> None:
    customer = "audited" + uuid.uuid4().hex[:6]
    base = f"/v1/customers/{customer}"
    ids = {step: request_id() for step in ("mapping", "remap", "delete", "config", "triage")}
    ids |= {step: request_id() for step in ("webhook", "rotate", "schedule", "policy")}
    events = upload_drifted_history(system, customer)
    with system.client(customer, "admin") as client:
        # ingest: a payer mapping made and changed; the upload deleted.
        mapping = client.post(
            f"{base}/payerMappings",
            json={"rawPayerName": "AETNA INC", "canonicalPayer": "Aetna"},
            headers={"X-Request-ID": ids["mapping"]},
        ).json()
        client.patch(
            f"/v1/{mapping['name']}",
            params={"updateMask": "canonical_payer"},
            json={"canonicalPayer": "Aetna Health"},
            headers={"X-Request-ID": ids["remap"]},
        )
        (upload,) = client.get(f"{base}/uploads").json()["uploads"]
        assert client.delete(
            f"/v1/{upload['name']}", headers={"X-Request-ID": ids["delete"]}
        ).is_success
        # drift: settings and triage.
        client.patch(
            f"{base}/driftConfig",
            params={"updateMask": "current_window_days"},
            json={"currentWindowDays": 21},
            headers={"X-Request-ID": ids["config"]},
        )
        event = next(e for e in events if e["payer"] == DRIFTED_PAYER)
        triaged = client.patch(
            f"/v1/{event['name']}",
            params={"updateMask": "state,triage_note"},
            json={"state": "ACKNOWLEDGED", "triageNote": "asked the payer"},
            headers={"X-Request-ID": ids["triage"]},
        )
        assert triaged.status_code == 200, triaged.text
        # A refused change leaves no entry.
        stale = client.patch(
            f"/v1/{event['name']}", json={"state": "RESOLVED", "etag": event["etag"]}
        )
        assert stale.status_code in (409, 412), stale.text
        # reports: a webhook and its secret rotated, a schedule, the alert policy.
        webhook = create_webhook_with_id(client, customer, ids["webhook"])
        rotated = rotate_with_id(client, webhook, ids["rotate"])
        made = client.post(
            f"{base}/reportSchedules", json=schedule(), headers={"X-Request-ID": ids["schedule"]}
        )
        assert made.status_code == 200, made.text
        policy = client.patch(
            f"{base}/alertPolicy",
            json={"slackWebhookUrl": SLACK_URL, "digestHour": 6},
            headers={"X-Request-ID": ids["policy"]},
        )
        assert policy.status_code == 200, policy.text

        logs = {service: entries(client, customer, service) for service in schemas.SERVICES}

    by_request = {e["requestId"]: e for log in logs.values() for e in log if e["requestId"]}
    admin = f"admin@{customer}"
    for step, rid in ids.items():
        assert rid in by_request, (step, logs)
        assert by_request[rid]["actor"] == admin, step
        assert by_request[rid]["actorRole"] == "admin", step

    created = by_request[ids["mapping"]]
    assert (created["action"], created["resource"]) == ("CREATE", mapping["name"])
    assert created["after"]["canonical_payer"] == "Aetna"
    remapped = by_request[ids["remap"]]
    assert remapped["action"] == "UPDATE"
    assert remapped["changedFields"] == ["canonical_payer"]
    assert (remapped["before"], remapped["after"]) == (
        {"canonical_payer": "Aetna"},
        {"canonical_payer": "Aetna Health"},
    )
    deleted = by_request[ids["delete"]]
    assert (deleted["action"], deleted["resource"]) == ("DELETE", upload["name"])
    assert deleted["before"]["file_name"] == "history.csv"
    assert by_request[ids["config"]]["resource"] == f"{base[4:]}/driftConfig"
    triage = by_request[ids["triage"]]
    assert (triage["resource"], sorted(triage["changedFields"])) == (
        event["name"],
        ["state", "triage_note"],
    )
    assert triage["after"] == {"state": "ACKNOWLEDGED", "triage_note": "asked the payer"}
    # Each entry in the log of the service that owns the resource, newest first.
    drift_triage = [e for e in logs["drift"] if e["resource"] == event["name"]]
    assert len(drift_triage) == 1
    times = [e["createTime"] for e in logs["ingest"]]
    assert times == sorted(times, reverse=True)
    # The upload itself, created by the same admin, and the detection's own changes are
    # the services': neither appears as the admin's.
    assert any(e["action"] == "CREATE" and e["resource"] == upload["name"] for e in logs["ingest"])

    # Secrets: named as changed, their values nowhere in the log.
    rotation = by_request[ids["rotate"]]
    assert "signing_secret" in rotation["changedFields"]
    assert "signing_secret" not in (rotation["before"] or {}) | (rotation["after"] or {})
    policy_entry = by_request[ids["policy"]]
    assert "slack_webhook_url" in policy_entry["changedFields"]
    text = json.dumps(logs)
    for secret in (webhook["signingSecret"], rotated["signingSecret"], SLACK_URL):
        assert secret not in text


def create_webhook_with_id(client: httpx.Client, customer: str, rid: str) -> dict[str, Any]:
    client.headers["X-Request-ID"] = rid
    try:
        return create_webhook(client, customer, "https://hooks.example.com/a", "DRIFT_EVENT_OPENED")
    finally:
        del client.headers["X-Request-ID"]


def rotate_with_id(client: httpx.Client, webhook: dict[str, Any], rid: str) -> dict[str, Any]:
    client.headers["X-Request-ID"] = rid
    try:
        return rotate(client, webhook)
    finally:
        del client.headers["X-Request-ID"]


def test_the_log_is_filtered_paged_and_for_admins_only(system: System) -> None:
    customer = "auditf" + uuid.uuid4().hex[:6]
    base = f"/v1/customers/{customer}"
    with system.client(customer, "admin") as client:
        for name in ("ONE", "TWO", "THREE"):
            made = client.post(
                f"{base}/payerMappings", json={"rawPayerName": name, "canonicalPayer": "Aetna"}
            ).json()
        client.patch(
            f"/v1/{made['name']}",
            params={"updateMask": "canonical_payer"},
            json={"canonicalPayer": "Cigna"},
        )
        updates = entries(client, customer, "ingest", filter='action = "UPDATE"')
        by_field = entries(client, customer, "ingest", filter="changed_fields:canonical_payer")
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        recent = entries(
            client,
            customer,
            "ingest",
            filter=f'create_time >= "{since}" AND actor = "admin@{customer}"',
        )
        first = client.get(f"{base}/auditLogs/ingest/entries", params={"pageSize": 2}).json()
        second = client.get(
            f"{base}/auditLogs/ingest/entries",
            params={"pageSize": 2, "pageToken": first["nextPageToken"]},
        ).json()
        unknown = client.get(f"{base}/auditLogs/ingest/entries", params={"filter": "who = 1"})
    with system.client(customer, "viewer") as viewer:
        refused = viewer.get(f"{base}/auditLogs/ingest/entries")
    with system.client("someoneelse", "admin") as other:
        hidden = other.get(f"{base}/auditLogs/ingest/entries")

    assert [e["resource"] for e in updates] == [made["name"]]
    assert len(by_field) == 4 and len(recent) == 4
    assert len(first["entries"]) == 2 and len(second["entries"]) == 2
    assert not {e["name"] for e in first["entries"]} & {e["name"] for e in second["entries"]}
    assert unknown.status_code == 400
    assert refused.status_code == 403, refused.text
    assert hidden.status_code == 404


@pytest.mark.parametrize("service", schemas.SERVICES)
def test_no_service_role_can_change_or_delete_an_entry(
    postgres: PostgresUnderTest, service: str
) -> None:
    with psycopg.connect(schemas.libpq_url(postgres.url(service, "app"))) as connection:
        for statement in (
            f"UPDATE {service}.audit_entries SET actor = 'someone else'",
            f"DELETE FROM {service}.audit_entries",
            f"TRUNCATE {service}.audit_entries",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
            connection.rollback()
        # Retention's way: only entries older than the given time, through the function.
        purged = connection.execute(
            f"SELECT {service}.purge_audit_entries('nobody', now() - interval '1 day', 10)"
        ).fetchone()
    assert purged == (0,)

"""Reports records the drift events drift hands over, over real gRPC into the real reports
service, read back from its schema: once per batch, each event's change once per version."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import uuid
from typing import Any

import grpc
import psycopg
import pytest

from devtools.stack import wait_until
from runtime.auth import service_token
from tests.drift.test_detection_api import history_csv
from tests.system import System
from tests.test_request_validation import refusal
from upstream.drift.v1 import resources_pb2 as drift_resources
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc

TIMEOUT = 30
DETECTED = dt.datetime(2026, 5, 20, 6, 0, tzinfo=dt.UTC)
LOW, MEDIUM, HIGH = (
    drift_resources.DriftEvent.LOW,
    drift_resources.DriftEvent.MEDIUM,
    drift_resources.DriftEvent.HIGH,
)


def fresh_customer() -> str:
    return "notify" + uuid.uuid4().hex[:8]


def as_service(system: System) -> list[tuple[str, str]]:
    """The credentials drift's outbox relay calls reports with."""
    return [("authorization", f"Bearer {service_token(system.settings)}")]


def drift_event(
    customer: str,
    event_id: str,
    *,
    hours_later: float = 0,
    severity: Any = LOW,
    active: bool = True,
    dollars_at_stake: int = 42_310,
) -> drift_resources.DriftEvent:
    """A drift event as drift's `GetDriftEvent` answers it, last changed `hours_later` hours
    after DETECTED."""
    event = drift_resources.DriftEvent(
        name=f"customers/{customer}/driftEvents/{event_id}",
        payer="Aetna",
        code_group="E&M",
        metric=drift_resources.DENIAL_RATE,
        severity=severity,
        state=drift_resources.DriftEvent.NEW,
        active=active,
        summary=f"Aetna E&M denial rate up ({event_id})",
    )
    event.dollars_at_stake.currency_code = "USD"
    event.dollars_at_stake.units = dollars_at_stake
    event.first_detected_time.FromDatetime(DETECTED)
    event.update_time.FromDatetime(DETECTED + dt.timedelta(hours=hours_later))
    return event


def record(
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    system: System,
    customer: str,
    batch_id: str,
    *events: drift_resources.DriftEvent,
) -> tuple[int, int]:
    response = reports.RecordDriftEvents(
        reports_service_pb2.RecordDriftEventsRequest(
            parent=f"customers/{customer}", batch_id=batch_id, drift_events=events
        ),
        metadata=as_service(system),
        timeout=TIMEOUT,
    )
    return response.events_recorded, response.deliveries_queued


def changes(database: psycopg.Connection[dict[str, Any]], customer: str) -> list[dict[str, Any]]:
    """The customer's recorded changes, in the order they were recorded."""
    return database.execute(
        "SELECT event_id, version, change, severity, escalated, batch_id "
        "FROM reports.drift_event_changes WHERE customer_id = %s ORDER BY change_id",
        (customer,),
    ).fetchall()


def stored_events(
    database: psycopg.Connection[dict[str, Any]], customer: str
) -> dict[str, dict[str, Any]]:
    rows = database.execute(
        "SELECT event_id, version, severity, active, summary, dollars_at_stake_cents, event "
        "FROM reports.drift_events WHERE customer_id = %s",
        (customer,),
    ).fetchall()
    return {row["event_id"]: row for row in rows}


def batches(database: psycopg.Connection[dict[str, Any]], customer: str) -> list[dict[str, Any]]:
    return database.execute(
        "SELECT batch_id, events_recorded, deliveries_queued FROM reports.drift_event_batches "
        "WHERE customer_id = %s ORDER BY batch_id",
        (customer,),
    ).fetchall()


def at(hours_later: float) -> dt.datetime:
    return DETECTED + dt.timedelta(hours=hours_later)


def test_a_batch_opens_its_events_and_a_repeated_batch_returns_its_first_counts(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
) -> None:
    customer = fresh_customer()
    opened = [drift_event(customer, "ev_1"), drift_event(customer, "ev_2", severity=HIGH)]
    first = record(reports, system, customer, "batch-1", *opened)
    recorded_changes = changes(database, customer)
    recorded_events = stored_events(database, customer)
    # Redelivered later, the batch may carry newer states: the batch id alone decides.
    repeated = record(
        reports, system, customer, "batch-1", drift_event(customer, "ev_1", hours_later=1)
    )

    assert first == (2, 0)
    assert recorded_changes == [
        {
            "event_id": "ev_1",
            "version": DETECTED,
            "change": "DRIFT_EVENT_OPENED",
            "severity": "LOW",
            "escalated": False,
            "batch_id": "batch-1",
        },
        {
            "event_id": "ev_2",
            "version": DETECTED,
            "change": "DRIFT_EVENT_OPENED",
            "severity": "HIGH",
            "escalated": False,
            "batch_id": "batch-1",
        },
    ]
    event = recorded_events["ev_1"]
    assert drift_resources.DriftEvent.FromString(event["event"]) == opened[0]
    assert (event["severity"], event["active"], event["dollars_at_stake_cents"]) == (
        "LOW",
        True,
        4_231_000,
    )
    assert repeated == first
    assert changes(database, customer) == recorded_changes
    assert stored_events(database, customer) == recorded_events
    assert batches(database, customer) == [
        {"batch_id": "batch-1", "events_recorded": 2, "deliveries_queued": 0}
    ]


def test_an_older_state_changes_nothing_and_newer_ones_close_or_escalate_the_event(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
) -> None:
    customer = fresh_customer()
    record(
        reports,
        system,
        customer,
        "opened",
        drift_event(customer, "ev_closing", hours_later=2),
        drift_event(customer, "ev_growing", hours_later=2),
    )
    late = record(
        reports,
        system,
        customer,
        "late",
        drift_event(customer, "ev_closing", hours_later=1, active=False),
        drift_event(customer, "ev_growing", hours_later=1, severity=HIGH),
    )
    after_late = changes(database, customer)
    record(
        reports,
        system,
        customer,
        "closed",
        drift_event(customer, "ev_closing", hours_later=3, active=False),
    )
    record(
        reports,
        system,
        customer,
        "escalated",
        drift_event(customer, "ev_growing", hours_later=3, severity=HIGH),
    )
    # Found again with the same severity: an update, not an escalation.
    record(
        reports,
        system,
        customer,
        "found-again",
        drift_event(customer, "ev_growing", hours_later=4, severity=HIGH),
    )

    assert late == (2, 0)
    assert [(c["event_id"], c["change"]) for c in after_late] == [
        ("ev_closing", "DRIFT_EVENT_OPENED"),
        ("ev_growing", "DRIFT_EVENT_OPENED"),
    ]
    assert [
        (c["event_id"], c["version"], c["change"], c["severity"], c["escalated"], c["batch_id"])
        for c in changes(database, customer)[2:]
    ] == [
        ("ev_closing", at(3), "DRIFT_EVENT_CLOSED", "LOW", False, "closed"),
        ("ev_growing", at(3), "DRIFT_EVENT_UPDATED", "HIGH", True, "escalated"),
        ("ev_growing", at(4), "DRIFT_EVENT_UPDATED", "HIGH", False, "found-again"),
    ]
    latest = stored_events(database, customer)
    assert (latest["ev_closing"]["version"], latest["ev_closing"]["active"]) == (at(3), False)
    assert (latest["ev_growing"]["version"], latest["ev_growing"]["severity"]) == (at(4), "HIGH")


def test_the_versions_of_one_event_in_a_batch_are_recorded_in_the_order_they_happened(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
) -> None:
    customer = fresh_customer()
    recorded = record(
        reports,
        system,
        customer,
        "out-of-order",
        drift_event(customer, "ev_1", hours_later=2, severity=MEDIUM, active=False),
        drift_event(customer, "ev_1", hours_later=1, severity=LOW),
    )

    assert recorded == (2, 0)
    assert [(c["version"], c["change"], c["escalated"]) for c in changes(database, customer)] == [
        (at(1), "DRIFT_EVENT_OPENED", False),
        (at(2), "DRIFT_EVENT_CLOSED", True),
    ]
    assert stored_events(database, customer)["ev_1"]["version"] == at(2)


def test_a_full_batch_of_a_thousand_events_is_recorded(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
) -> None:
    customer = fresh_customer()
    events = [drift_event(customer, f"ev_{index}") for index in range(1000)]

    assert record(reports, system, customer, "full", *events) == (1000, 0)
    assert len(stored_events(database, customer)) == 1000


def test_concurrent_calls_with_one_batch_record_it_once(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
) -> None:
    customer = fresh_customer()

    def call(index: int) -> tuple[int, int]:
        # Each call's batch differs, so the rows tell which calls recorded anything.
        events = [drift_event(customer, f"ev_{index}_{n}") for n in range(index + 1)]
        return record(reports, system, customer, "shared", *events)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(8)))

    (batch,) = batches(database, customer)
    first_size = batch["events_recorded"]
    assert answers == [(first_size, 0)] * 8
    recorded = {c["event_id"] for c in changes(database, customer)}
    assert recorded == {f"ev_{first_size - 1}_{n}" for n in range(first_size)}


def test_concurrent_batches_sharing_events_all_record_and_keep_the_newest_state(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
) -> None:
    customer = fresh_customer()
    event_ids = ["ev_a", "ev_b", "ev_c", "ev_d"]

    def call(index: int) -> tuple[int, int]:
        # Each batch lists the shared events in another order.
        ordered = event_ids[index % 4 :] + event_ids[: index % 4]
        events = [drift_event(customer, e, hours_later=index) for e in reversed(ordered)]
        return record(reports, system, customer, f"run-{index}", *events)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(8)))

    assert answers == [(4, 0)] * 8
    latest = stored_events(database, customer)
    assert {e: latest[e]["version"] for e in event_ids} == dict.fromkeys(event_ids, at(7))
    for event_id in event_ids:
        versions = [c["version"] for c in changes(database, customer) if c["event_id"] == event_id]
        # Each change is newer than the one recorded before it: no older state slipped in.
        assert versions == sorted(set(versions)) and versions[-1] == at(7)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("an event of another customer", "drift_events[1].name"),
        ("an event name of the wrong shape", "drift_events[0].name"),
        ("an event without update_time", "drift_events[0].update_time"),
        ("dollars at stake beyond a bigint of cents", "drift_events[0].dollars_at_stake"),
        ("no batch id", "batch_id"),
        ("no events", "drift_events"),
        ("1001 events", "drift_events"),
    ],
)
def test_a_bad_batch_is_refused_naming_the_field_and_leaves_its_batch_id_free(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
    case: str,
    field: str,
) -> None:
    customer = fresh_customer()
    good = [drift_event(customer, "ev_1"), drift_event(customer, "ev_2")]
    events = [drift_event(customer, "ev_1"), drift_event(customer, "ev_2")]
    batch_id = "bad"
    if case == "an event of another customer":
        events[1] = drift_event(fresh_customer(), "ev_2")
    elif case == "an event name of the wrong shape":
        events[0].name = f"customers/{customer}/driftRuns/ev_1"
    elif case == "an event without update_time":
        events[0].ClearField("update_time")
    elif case == "dollars at stake beyond a bigint of cents":
        events[0].dollars_at_stake.units = 2**62
    elif case == "no batch id":
        batch_id = ""
    elif case == "no events":
        events = []
    else:
        events = [drift_event(customer, f"ev_{index}") for index in range(1001)]
    request = reports_service_pb2.RecordDriftEventsRequest(
        parent=f"customers/{customer}", batch_id=batch_id, drift_events=events
    )

    _, violations = refusal(
        lambda: reports.RecordDriftEvents(request, metadata=as_service(system), timeout=TIMEOUT)
    )
    stored_after_refusal = (batches(database, customer), stored_events(database, customer))
    # Sent again once put right, the batch is recorded: a refusal claimed nothing.
    corrected = record(reports, system, customer, "bad", *good)

    assert list(violations) == [field]
    assert stored_after_refusal == ([], {})
    assert corrected == (2, 0)
    assert {c["event_id"] for c in changes(database, customer)} == {"ev_1", "ev_2"}


def test_a_customer_token_may_not_record_drift_events(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
) -> None:
    customer = fresh_customer()
    request = reports_service_pb2.RecordDriftEventsRequest(
        parent=f"customers/{customer}",
        batch_id="from-a-person",
        drift_events=[drift_event(customer, "ev_1")],
    )
    with pytest.raises(grpc.RpcError) as refused:
        reports.RecordDriftEvents(
            request,
            metadata=[("authorization", f"Bearer {system.token(customer, 'admin')}")],
            timeout=TIMEOUT,
        )
    # The same request from a service is recorded: only the caller differs.
    recorded = record(reports, system, customer, "from-a-service", *request.drift_events)

    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert recorded == (1, 0)
    assert [b["batch_id"] for b in batches(database, customer)] == ["from-a-service"]


def test_the_events_of_a_drift_run_reach_reports_through_drifts_outbox(
    system: System, database: psycopg.Connection[dict[str, Any]]
) -> None:
    customer = fresh_customer()
    with system.client(customer, "admin") as client:
        upload = client.post(
            f"/v1/customers/{customer}/uploads",
            content=history_csv(customer),
            headers={"Idempotency-Key": "history"},
            timeout=300,
        )
        assert upload.status_code == 200, upload.text

        def run_finished() -> bool:
            runs = client.get(f"/v1/customers/{customer}/driftRuns").json().get("driftRuns", [])
            return bool(runs) and runs[0]["state"] in ("SUCCEEDED", "FAILED")

        wait_until("the upload's drift run", run_finished, system.stack, timeout=180)
        (run,) = client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"]
        listed = client.get(f"/v1/customers/{customer}/driftEvents", params={"pageSize": 1000})
    assert run["state"] == "SUCCEEDED", run
    event_ids = {e["name"].rsplit("/", 1)[1] for e in listed.json().get("driftEvents", [])}
    assert event_ids, "the run found no drift"

    def outbox_published() -> bool:
        pending = database.execute(
            "SELECT count(*) FILTER (WHERE published_time IS NULL) AS pending, count(*) AS events "
            "FROM drift.outbox WHERE customer_id = %s",
            (customer,),
        ).fetchone()
        return pending is not None and pending["events"] > 0 and pending["pending"] == 0

    wait_until("drift's outbox published to reports", outbox_published, system.stack, timeout=60)
    opened = {c["event_id"] for c in changes(database, customer) if c["change"].endswith("OPENED")}
    assert opened == event_ids

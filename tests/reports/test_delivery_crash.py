"""A reports process SIGKILLed while its webhook attempts are in flight loses no delivery: a
second process on the same database sends every one, the interrupted ones again with the
same `webhook-id` once their lease ends."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import grpc

from devtools.stack import wait_until
from runtime.auth import Role, mint_token, service_token
from runtime.settings import Settings
from tests.conftest import PostgresUnderTest, own_database
from tests.reports.test_drift_events import drift_event, fresh_customer
from tests.reports.webhook_receiver import Received, Receiver, receiving
from tests.system import WEBHOOK_TEST_SETTINGS, base_env, running_service
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc, resources_pb2

EVENTS_PER_CUSTOMER = 4
# Long enough that the kill surely lands inside the attempt; the lease that the second
# process waits out is this plus the margin to record an outcome.
ATTEMPT_TIMEOUT_SECONDS = "5"
LEASE_MARGIN_SECONDS = "3"
# The lease of an interrupted attempt, and time to send after it.
AFTER_RESTART = 60
SETTINGS = Settings.from_env("tests", base_env())


def as_admin(customer: str) -> list[tuple[str, str]]:
    token = mint_token(
        SETTINGS, subject=f"admin@{customer}", customer=customer, role=Role.ADMIN, ttl_seconds=600
    )
    return [("authorization", f"Bearer {token}")]


def subscribe(
    reports: reports_service_pb2_grpc.ReportsServiceStub, customer: str, url: str
) -> resources_pb2.Webhook:
    return reports.CreateWebhook(
        reports_service_pb2.CreateWebhookRequest(
            parent=f"customers/{customer}",
            webhook=resources_pb2.Webhook(url=url, event_types=[resources_pb2.DRIFT_EVENT_OPENED]),
        ),
        metadata=as_admin(customer),
        timeout=10,
    )


def delivery_states(
    reports: reports_service_pb2_grpc.ReportsServiceStub, webhook: resources_pb2.Webhook
) -> list[resources_pb2.WebhookDelivery]:
    customer = webhook.name.split("/")[1]
    return list(
        reports.ListWebhookDeliveries(
            reports_service_pb2.ListWebhookDeliveriesRequest(parent=webhook.name, page_size=100),
            metadata=as_admin(customer),
            timeout=10,
        ).webhook_deliveries
    )


def test_a_reports_process_killed_mid_delivery_loses_nothing_and_resends_with_the_same_id(
    postgres: PostgresUnderTest,
) -> None:
    customers = [fresh_customer(), fresh_customer()]
    released = threading.Event()

    def held_until_the_kill(_: Received) -> tuple[int, bytes, dict[str, str]]:
        released.wait(AFTER_RESTART)
        return 204, b"", {}

    settings = {
        **WEBHOOK_TEST_SETTINGS,
        "WEBHOOK_ATTEMPT_TIMEOUT_SECONDS": ATTEMPT_TIMEOUT_SECONDS,
        "WEBHOOK_LEASE_MARGIN_SECONDS": LEASE_MARGIN_SECONDS,
    }
    with (
        own_database(postgres, ("reports",)) as database,
        receiving(Receiver(held_until_the_kill)) as receiver,
    ):
        url = database.url("reports", "app")
        with (
            running_service("reports", url, **settings) as (first, target),
            grpc.insecure_channel(target) as channel,
        ):
            stub = reports_service_pb2_grpc.ReportsServiceStub(channel)
            webhooks = [subscribe(stub, c, receiver.url(f"/{c}")) for c in customers]
            events = {
                c: [drift_event(c, f"ev_{n}") for n in range(EVENTS_PER_CUSTOMER)]
                for c in customers
            }
            for customer in customers:
                stub.RecordDriftEvents(
                    reports_service_pb2.RecordDriftEventsRequest(
                        parent=f"customers/{customer}",
                        batch_id="crash",
                        drift_events=events[customer],
                    ),
                    metadata=[("authorization", f"Bearer {service_token(SETTINGS)}")],
                    timeout=30,
                )
            # One attempt per webhook at a time: each webhook's first is held by the receiver.
            wait_until("an attempt in flight per webhook", lambda: len(receiver.received()) == 2)
            first.kill()
            first.wait()
            before_restart = receiver.message_ids()
        released.set()
        with (
            running_service("reports", url, **settings) as (_, target),
            grpc.insecure_channel(target) as channel,
        ):
            stub = reports_service_pb2_grpc.ReportsServiceStub(channel)

            def all_succeeded() -> bool:
                listed = [d for w in webhooks for d in delivery_states(stub, w)]
                return len(listed) == 2 * EVENTS_PER_CUSTOMER and all(
                    d.state == resources_pb2.WebhookDelivery.SUCCEEDED for d in listed
                )

            wait_until("every delivery to succeed", all_succeeded, timeout=AFTER_RESTART)
            listed = {w.name: delivery_states(stub, w) for w in webhooks}

    arrivals = Counter(receiver.message_ids())
    delivered_ids = {d.event_id for found in listed.values() for d in found}
    # At least once, always under the delivery's id: a receiver deduping on it sees each once.
    assert set(arrivals) == delivered_ids and len(delivered_ids) == 2 * EVENTS_PER_CUSTOMER
    assert {arrivals[message_id] for message_id in before_restart} == {2}
    assert all(count == 1 for i, count in arrivals.items() if i not in before_restart)
    # The killed attempts left no record; the second process sent each delivery once.
    assert all(d.attempt_count == 1 for found in listed.values() for d in found)
    by_webhook: dict[str, set[str]] = {}
    for webhook in webhooks:
        customer = webhook.name.split("/")[1]
        payloads: list[Any] = [
            r.verified(webhook.signing_secret)
            for r in receiver.received()
            if r.path == f"/{customer}"
        ]
        by_webhook[customer] = {p["data"]["name"] for p in payloads}
    assert by_webhook == {c: {e.name for e in events[c]} for c in customers}

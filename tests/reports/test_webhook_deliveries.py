"""Webhook deliveries end to end: drift events recorded over real gRPC into the real reports
service, sent signed to real HTTP receivers on 127.0.0.1, read back through the real
gateway; and the endpoint checks that keep deliveries off loopback, private and metadata
addresses."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from devtools.stack import wait_until
from runtime.audit import AuditLog
from services.reports.deliveries import WebhookDeliveries
from services.reports.endpoints import EndpointPolicy, WebhookSender, dns_resolver
from services.reports.server import drift_event_state
from services.reports.store import ReportsStore
from tests.conftest import PostgresUnderTest, own_database
from tests.reports.test_drift_events import as_service, drift_event, fresh_customer, record
from tests.reports.webhook_receiver import Received, Receiver, receiving
from tests.system import WEBHOOK_HOST_OVERRIDES, System, free_port, running_service
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc, resources_pb2

WAIT = 20
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# As this Python writes it (3.13 shows the IPv4 part in dotted form).
MAPPED_METADATA = ipaddress.ip_address("::ffff:169.254.169.254")


def create_webhook(
    client: httpx.Client, customer: str, url: str, *event_types: str, disabled: bool = False
) -> dict[str, Any]:
    created = client.post(
        f"/v1/customers/{customer}/webhooks",
        json={"url": url, "eventTypes": list(event_types), "disabled": disabled},
    )
    assert created.status_code == 200, created.text
    return dict(created.json())


def deliveries(client: httpx.Client, webhook: dict[str, Any], **params: Any) -> list[Any]:
    listed = client.get(f"/v1/{webhook['name']}/deliveries", params=params)
    assert listed.status_code == 200, listed.text
    return list(listed.json().get("webhookDeliveries", []))


def settled(client: httpx.Client, webhook: dict[str, Any], count: int) -> list[Any]:
    """The webhook's deliveries once `count` of them are SUCCEEDED or FAILED."""

    def done() -> bool:
        found = deliveries(client, webhook)
        return sum(d["state"] in ("SUCCEEDED", "FAILED") for d in found) >= count

    wait_until(f"{count} deliveries settled", done, timeout=WAIT)
    return deliveries(client, webhook)


def test_drift_event_changes_reach_subscribed_webhooks_signed_and_a_repeated_batch_queues_nothing(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    database: psycopg.Connection[dict[str, Any]],
) -> None:
    customer = fresh_customer()
    with receiving() as receiver, system.client(customer) as client:
        opened_closed = create_webhook(
            client, customer, receiver.url("/a"), "DRIFT_EVENT_OPENED", "DRIFT_EVENT_CLOSED"
        )
        create_webhook(client, customer, receiver.url("/b"), "DRIFT_EVENT_UPDATED")
        create_webhook(client, customer, receiver.url("/off"), "DRIFT_EVENT_OPENED", disabled=True)
        events = [drift_event(customer, "ev_1"), drift_event(customer, "ev_2")]
        first = record(reports, system, customer, "opened", *events)
        repeated = record(reports, system, customer, "opened", *events)
        closed = record(
            reports,
            system,
            customer,
            "closed",
            drift_event(customer, "ev_1", hours_later=1, active=False),
        )
        wait_until("three deliveries", lambda: len(receiver.received()) >= 3, timeout=WAIT)
        listed = settled(client, opened_closed, 3)
        only_closed = deliveries(client, opened_closed, filter="event_type = DRIFT_EVENT_CLOSED")
        first_page = client.get(
            f"/v1/{opened_closed['name']}/deliveries", params={"pageSize": 2}
        ).json()
        second_page = client.get(
            f"/v1/{opened_closed['name']}/deliveries",
            params={"pageSize": 2, "pageToken": first_page["nextPageToken"]},
        ).json()
        one = client.get(f"/v1/{listed[0]['name']}")
        queued_rows = database.execute(
            "SELECT count(*) AS n FROM reports.webhook_deliveries WHERE customer_id = %s",
            (customer,),
        ).fetchone()

    assert first == (2, 2)
    assert repeated == (2, 2)
    assert closed == (1, 1)
    assert queued_rows == {"n": 3}
    payloads = [r.verified(opened_closed["signingSecret"]) for r in receiver.received()]
    assert sorted((p["type"], p["data"]["name"].rsplit("/", 1)[1]) for p in payloads) == [
        ("DRIFT_EVENT_CLOSED", "ev_1"),
        ("DRIFT_EVENT_OPENED", "ev_1"),
        ("DRIFT_EVENT_OPENED", "ev_2"),
    ]
    assert {r.path for r in receiver.received()} == {"/a"}
    assert all(p["data"]["payer"] == "Aetna" and p["timestamp"].endswith("Z") for p in payloads)
    assert len(set(receiver.message_ids())) == 3
    assert {d["state"] for d in listed} == {"SUCCEEDED"}
    assert {d["eventId"] for d in listed} == set(receiver.message_ids())
    assert [d["eventType"] for d in only_closed] == ["DRIFT_EVENT_CLOSED"]
    assert len(first_page["webhookDeliveries"]) == 2 and len(second_page["webhookDeliveries"]) == 1
    assert one.status_code == 200 and one.json()["attempts"][0]["responseCode"] == 200


def test_a_receiver_that_is_down_then_up_gets_every_delivery_once(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    port = free_port()
    receiver = Receiver(port=port)
    with system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        events = [drift_event(customer, f"ev_{n}") for n in range(5)]
        assert record(reports, system, customer, "while-down", *events) == (5, 5)

        def retrying() -> bool:
            return all(d["attemptCount"] >= 1 for d in deliveries(client, webhook)) and bool(
                deliveries(client, webhook)
            )

        wait_until("first attempts to fail", retrying, timeout=WAIT)
        failed_first = deliveries(client, webhook)
        with receiving(receiver, port=port):
            listed = settled(client, webhook, 5)

    assert {d["state"] for d in failed_first} == {"RETRYING"}
    assert all(d["lastError"].startswith("connection failed") for d in failed_first)
    assert {d["state"] for d in listed} == {"SUCCEEDED"}
    assert all(d["attemptCount"] >= 2 for d in listed)
    # A receiver that dedupes on webhook-id sees each delivery exactly once.
    ids = receiver.message_ids()
    assert sorted(set(ids)) == sorted(d["eventId"] for d in listed)
    payloads = [r.verified(webhook["signingSecret"]) for r in receiver.received()]
    assert {p["data"]["name"].rsplit("/", 1)[1] for p in payloads} == {f"ev_{n}" for n in range(5)}


def test_failed_attempts_are_retried_and_each_is_recorded_with_its_status_and_body(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    calls: list[int] = []

    def flaky(_: Received) -> tuple[int, bytes, dict[str, str]]:
        calls.append(1)
        if len(calls) <= 2:
            return 500, b"overloaded " + b"x" * 3000, {}
        return 204, b"", {}

    with receiving(Receiver(flaky)) as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        record(reports, system, customer, "flaky", drift_event(customer, "ev_1"))
        (delivery,) = settled(client, webhook, 1)

    assert delivery["state"] == "SUCCEEDED"
    assert delivery["attemptCount"] == 3
    assert [a.get("responseCode", 0) for a in delivery["attempts"]] == [500, 500, 204]
    assert [a.get("error", "") for a in delivery["attempts"]] == ["HTTP 500", "HTTP 500", ""]
    body = delivery["attempts"][0]["responseBody"]
    assert body.startswith("overloaded xxx") and len(body) == 1024
    assert all(float(a["latency"].rstrip("s")) > 0 for a in delivery["attempts"])
    assert len(set(receiver.message_ids())) == 1


def test_410_gone_disables_the_webhook_with_the_reason_and_enabling_it_clears_the_reason(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    gone = Receiver(lambda _: (410, b"unsubscribed", {}))
    with receiving(gone) as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        record(reports, system, customer, "first", drift_event(customer, "ev_1"))
        (delivery,) = settled(client, webhook, 1)
        disabled = client.get(f"/v1/{webhook['name']}").json()
        while_disabled = record(reports, system, customer, "second", drift_event(customer, "ev_2"))
        enabled = client.patch(
            f"/v1/{webhook['name']}", params={"updateMask": "disabled"}, json={"disabled": False}
        )

    assert (delivery["state"], delivery["lastResponseCode"]) == ("FAILED", 410)
    assert delivery["attemptCount"] == 1
    assert disabled["disabled"] is True
    assert "410" in disabled["disabledReason"]
    assert while_disabled == (1, 0)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["disabled"] is False
    assert enabled.json().get("disabledReason", "") == ""


def test_a_delivery_whose_every_attempt_fails_fails_and_disables_its_webhook(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    down = Receiver(lambda _: (503, b"maintenance", {}))
    with receiving(down) as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        record(reports, system, customer, "doomed", drift_event(customer, "ev_1"))
        (delivery,) = settled(client, webhook, 1)
        after = client.get(f"/v1/{webhook['name']}").json()

    # The test settings retry 7 times, as production does over about a day.
    assert (delivery["state"], delivery["attemptCount"]) == ("FAILED", 8)
    assert [a["responseCode"] for a in delivery["attempts"]] == [503] * 8
    assert "nextAttemptTime" not in delivery and "completeTime" in delivery
    assert after["disabled"] is True
    assert "all 8 attempts" in after["disabledReason"] and "HTTP 503" in after["disabledReason"]
    assert len(receiver.received()) == 8 and len(set(receiver.message_ids())) == 1


def test_test_webhook_sends_a_signed_test_event_now_through_the_gateway(system: System) -> None:
    customer = fresh_customer()
    with receiving() as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "REPORT_READY", disabled=True)
        tested = client.post(f"/v1/{webhook['name']}:test", json={})
        listed = deliveries(client, webhook, filter="event_type = TEST AND state = SUCCEEDED")
        viewer = system.client(customer, "viewer")
        refused = viewer.post(f"/v1/{webhook['name']}:test", json={})
        viewer.close()

    assert tested.status_code == 200, tested.text
    delivery = tested.json()
    assert (delivery["eventType"], delivery["state"], delivery["attemptCount"]) == (
        "TEST",
        "SUCCEEDED",
        1,
    )
    (received,) = receiver.received()
    payload = received.verified(webhook["signingSecret"])
    assert payload["type"] == "TEST" and payload["data"]["name"] == webhook["name"]
    assert "signingSecret" not in payload["data"]
    assert received.headers["webhook-id"] == delivery["eventId"]
    assert [d["name"] for d in listed] == [delivery["name"]]
    assert refused.status_code == 403


def test_redirects_are_not_followed_to_loopback_or_metadata_addresses(system: System) -> None:
    customer = fresh_customer()
    with receiving() as target, system.client(customer) as client:
        locations = [target.url("/internal"), "http://169.254.169.254/latest/meta-data/"]
        tested = []
        for location in locations:
            redirecting = Receiver(lambda _, where=location: (302, b"", {"Location": where}))
            with receiving(redirecting) as receiver:
                webhook = create_webhook(client, customer, receiver.url(), "REPORT_READY")
                tested.append(client.post(f"/v1/{webhook['name']}:test", json={}).json())
                assert len(receiver.received()) == 1

    for delivery, location in zip(tested, locations, strict=True):
        assert (delivery["state"], delivery["lastResponseCode"]) == ("FAILED", 302)
        assert "redirects are not followed" in delivery["lastError"]
        assert location in delivery["lastError"]
    assert target.connections == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://10.0.0.8/hook", "private"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://100.64.7.1/hook", "carrier-grade NAT"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://240.0.0.1/hook", "reserved"),
        ("https://[::ffff:10.0.0.8]/hook", "private"),
        ("https://private.test/hook", "resolves to 10.1.2.3"),
        ("https://metadata.test/hook", "resolves to 169.254.169.254"),
        ("https://metadata6.test/hook", "resolves to fd00:ec2::254"),
        ("http://93.184.215.14/hook", "https://"),
        ("ftp://files.example.com/hook", "https://"),
        ("https://user:secret@10.0.0.8/hook", "user name"),
    ],
)
def test_hostile_webhook_urls_are_refused_with_a_400_naming_the_field(
    system: System, url: str, expected: str
) -> None:
    customer = fresh_customer()
    with system.client(customer) as client:
        created = client.post(
            f"/v1/customers/{customer}/webhooks",
            json={"url": url, "eventTypes": ["DRIFT_EVENT_OPENED"]},
        )
        with receiving() as receiver:
            webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        updated = client.patch(
            f"/v1/{webhook['name']}", params={"updateMask": "url"}, json={"url": url}
        )
        listed = client.get(f"/v1/customers/{customer}/webhooks").json()["webhooks"]

    for refused in (created, updated):
        assert refused.status_code == 400, refused.text
        error = refused.json()
        assert error["detail"].startswith("webhook.url ")
        (violation,) = [v for d in error["details"] for v in d.get("fieldViolations", [])]
        assert violation["field"] == "webhook.url"
        assert expected in violation["description"]
    assert [w["url"] for w in listed] == [receiver.url()]


def test_a_url_that_now_resolves_to_a_metadata_address_is_refused_at_send_time(
    system: System, database: psycopg.Connection[dict[str, Any]]
) -> None:
    customer = fresh_customer()
    with receiving() as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "REPORT_READY")
        # The name the webhook was created with has since come to resolve elsewhere.
        database.execute(
            "UPDATE reports.webhooks SET url = 'https://metadata.test/hook' WHERE customer_id = %s",
            (customer,),
        )
        tested = client.post(f"/v1/{webhook['name']}:test", json={}).json()

    assert (tested["state"], tested["attemptCount"]) == ("FAILED", 1)
    assert tested.get("lastResponseCode", 0) == 0
    assert tested["lastError"].startswith("refused: host 'metadata.test' resolves to")
    assert "169.254.169.254" in tested["lastError"]
    assert receiver.connections == 0


@pytest.fixture(scope="module")
def production_reports(postgres: PostgresUnderTest) -> Iterator[str]:
    """A reports process with production's webhook settings (no loopback receivers), on a
    database of its own; its gRPC target."""
    with (
        own_database(postgres, ("reports",)) as database,
        running_service(
            "reports",
            database.url("reports", "app"),
            WEBHOOK_HOST_OVERRIDES=WEBHOOK_HOST_OVERRIDES,
        ) as (_, target),
    ):
        yield target


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:{port}/hook", "https://"),
        ("https://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
        ("https://[::1]:{port}/hook", "::1 is a loopback address"),
        ("https://loopback.test:{port}/hook", "'loopback.test' resolves to 127.0.0.1"),
    ],
)
def test_loopback_receivers_are_refused_without_the_operator_setting(
    system: System, production_reports: str, url: str, expected: str
) -> None:
    customer = fresh_customer()
    with grpc.insecure_channel(production_reports) as channel, receiving() as receiver:
        stub = reports_service_pb2_grpc.ReportsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateWebhook(
                reports_service_pb2.CreateWebhookRequest(
                    parent=f"customers/{customer}",
                    webhook=resources_pb2.Webhook(
                        url=url.format(port=receiver.port),
                        event_types=[resources_pb2.DRIFT_EVENT_OPENED],
                    ),
                ),
                metadata=[("authorization", f"Bearer {system.token(customer)}")],
                timeout=10,
            )
    error: Any = refused.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = next(
        status_pb2.Status.FromString(value)
        for key, value in error.trailing_metadata()
        if key == "grpc-status-details-bin"
    )
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in status.details)
    (violation,) = bad_request.field_violations
    assert violation.field == "webhook.url" and expected in violation.description
    assert receiver.connections == 0


class ConnectAudit:
    """The addresses this process opens TCP connections to (the `socket.connect` audit
    event), while `watching`."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.watching = threading.Event()
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect" and self.watching.is_set():
            address = args[1]
            self.addresses.append(str(address[0]) if isinstance(address, tuple) else "")


_audit = ConnectAudit()


def test_the_sender_refuses_private_and_metadata_addresses_before_any_connection() -> None:
    """The endpoint check runs on the addresses the connection would use: a name that
    resolved to a public address when checked and to another when connecting (DNS
    rebinding) is refused too. No socket is ever opened to a refused address."""
    answers: dict[str, list[str]] = {
        "metadata.test": ["169.254.169.254"],
        "private.test": ["10.0.0.8"],
        "mixed.test": ["93.184.215.14", "192.168.1.9"],
        "cgnat.test": ["100.100.100.200"],
        "ipv4-mapped.test": ["::ffff:169.254.169.254"],
        "rebinding.test": ["93.184.215.14", "127.0.0.1"],
        "receiver.test": ["127.0.0.1"],
    }
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host == "rebinding.test":
            # Public when checked, loopback when the connection resolves it again.
            return [answers[host][min(asked.count(host), 2) - 1]]
        return answers[host]

    async def send_all(policy: EndpointPolicy, urls: list[str]) -> list[Any]:
        sender = WebhookSender(policy, 3)
        try:
            now = dt.datetime.now(dt.UTC)
            return [await sender.send(u, SECRET, "msg_1", b"{}", now=now) for u in urls]
        finally:
            await sender.close()

    hostile = [f"https://{name}/hook" for name in answers if name != "receiver.test"]
    with receiving() as receiver:
        _audit.addresses.clear()
        _audit.watching.set()
        try:
            refused = asyncio.run(send_all(EndpointPolicy(resolve), hostile))
            refused_connects = list(_audit.addresses)
            # The same sender reaches a loopback receiver where the operator allows it,
            # which shows connections would be seen.
            allowed = asyncio.run(
                send_all(
                    EndpointPolicy(resolve, allow_loopback=True),
                    [f"http://receiver.test:{receiver.port}/hook"],
                )
            )
        finally:
            _audit.watching.clear()

    assert refused_connects == []
    assert all(r.response_code == 0 for r in refused)
    assert [r.error.split(";")[0] for r in refused] == [
        "refused: host 'metadata.test' resolves to 169.254.169.254, a cloud metadata address",
        "refused: host 'private.test' resolves to 10.0.0.8, a private address",
        "refused: host 'mixed.test' resolves to 192.168.1.9, a private address",
        "refused: host 'cgnat.test' resolves to 100.100.100.200, a carrier-grade NAT address",
        f"refused: host 'ipv4-mapped.test' resolves to {MAPPED_METADATA}, a cloud metadata address",
        "refused: host 'rebinding.test' resolves to 127.0.0.1, a loopback address",
    ]
    assert asked.count("rebinding.test") == 2
    assert allowed[0].response_code == 200
    assert _audit.addresses == ["127.0.0.1"]
    (received,) = receiver.received()
    assert received.verified(SECRET) == {}


def test_the_system_resolver_answers_overrides_first_and_literal_addresses_as_they_are() -> None:
    resolve = dns_resolver({"hooks.internal": "10.9.8.7"})

    async def both() -> tuple[list[str], list[str]]:
        return await resolve("HOOKS.internal", 443), await resolve("2001:db8::1", 443)

    assert asyncio.run(both()) == (["10.9.8.7"], ["2001:db8::1"])


def test_deliveries_of_a_slow_receiver_do_not_delay_another_customers(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    """A receiver holds each answer as long as the attempt timeout lets it: while it holds
    its first, another customer's deliveries all arrive."""
    slow_customer, quick_customer = fresh_customer(), fresh_customer()
    quick_arrived = threading.Event()
    held_until_quick_arrived: list[bool] = []

    def slowly(_: Received) -> tuple[int, bytes, dict[str, str]]:
        # Within the attempt timeout (3 s in the test settings), so each attempt succeeds.
        held_until_quick_arrived.append(quick_arrived.wait(2.5))
        return 200, b"", {}

    def quickly(_: Received) -> tuple[int, bytes, dict[str, str]]:
        if len(quick.received()) == 3:
            quick_arrived.set()
        return 200, b"", {}

    with (
        receiving(Receiver(slowly)) as slow,
        receiving(Receiver(quickly)) as quick,
        system.client(slow_customer) as slow_client,
        system.client(quick_customer) as quick_client,
    ):
        create_webhook(slow_client, slow_customer, slow.url(), "DRIFT_EVENT_OPENED")
        create_webhook(quick_client, quick_customer, quick.url(), "DRIFT_EVENT_OPENED")
        slow_events = [drift_event(slow_customer, f"ev_{n}") for n in range(6)]
        record(reports, system, slow_customer, "slow", *slow_events)
        wait_until("the slow receiver to hold", lambda: bool(slow.received()), timeout=WAIT)
        quick_events = [drift_event(quick_customer, f"ev_{n}") for n in range(3)]
        record(reports, system, quick_customer, "quick", *quick_events)
        wait_until("the slow receiver's six", lambda: len(held_until_quick_arrived) == 6)

    # The slow receiver's first answer waited until the other customer's three arrived.
    assert held_until_quick_arrived[0] is True
    assert len(quick.received()) == 3 and len(set(slow.message_ids())) == 6


def test_a_delivery_claimed_by_a_worker_that_died_is_sent_once_its_lease_ends(
    postgres: PostgresUnderTest,
) -> None:
    """A worker that claimed a delivery and died (its claim made here, and never followed
    up) holds it until the lease ends; then a live worker sends it, with the same id."""
    customer = fresh_customer()
    event = drift_event(customer, "ev_1")

    async def scenario(url: str, receiver: Receiver) -> tuple[Any, ...]:
        engine = create_async_engine(url)
        store = ReportsStore(engine)
        try:
            await store.create_webhook(
                customer,
                "wh_1",
                display_name="",
                url=receiver.url(),
                event_types=["DRIFT_EVENT_OPENED"],
                signing_secret=SECRET,
                disabled=False,
            )
            await store.record_drift_events(
                customer, "batch", [drift_event_state(event)], max_attempts=8, trace_context={}
            )
            dead = await store.claim_deliveries(10, uuid.uuid4(), lease_seconds=1.5)
            during_lease = await store.claim_deliveries(10, uuid.uuid4(), lease_seconds=30)
            worker = WebhookDeliveries(
                store,
                WebhookSender(EndpointPolicy(dns_resolver(), allow_loopback=True), 3),
                retry_delays=[0.1],
                attempt_timeout_seconds=3,
                concurrency=4,
                wake_up=asyncio.Event(),
                poll_seconds=0.2,
            )
            started = time.monotonic()
            async with worker.running():
                await asyncio.to_thread(arrived.wait, WAIT)
            waited = time.monotonic() - started
            stored = await store.list_deliveries(customer, "wh_1", "", 10, None)
        finally:
            await engine.dispose()
        return dead, during_lease, waited, stored

    arrived = threading.Event()

    def answer(_: Received) -> tuple[int, bytes, dict[str, str]]:
        arrived.set()
        return 200, b"", {}

    with own_database(postgres, ("reports",)) as database, receiving(Receiver(answer)) as receiver:
        dead, during_lease, waited, stored = asyncio.run(
            scenario(database.url("reports", "app"), receiver)
        )

    assert len(dead) == 1 and during_lease == []
    assert waited > 1.0
    (delivery,) = stored
    assert (delivery.row.state, delivery.row.attempt_count) == ("SUCCEEDED", 1)
    assert receiver.message_ids() == [dead[0].message_id]
    assert receiver.received()[0].verified(SECRET)["data"]["name"] == event.name


def test_each_attempt_continues_the_trace_of_the_call_that_queued_it(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    trace_id = uuid.uuid4().hex
    with receiving() as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        reports.RecordDriftEvents(
            reports_service_pb2.RecordDriftEventsRequest(
                parent=f"customers/{customer}",
                batch_id="traced",
                drift_events=[drift_event(customer, "ev_1")],
            ),
            metadata=[
                *as_service(system),
                ("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"),
            ],
            timeout=10,
        )
        settled(client, webhook, 1)

    def attempt_spans() -> list[dict[str, Any]]:
        return [s for s in system.spans.trace(trace_id) if s["name"] == "process webhook delivery"]

    wait_until("the attempt's span", lambda: bool(attempt_spans()), timeout=WAIT)
    (span,) = attempt_spans()
    assert span["service"] == "upstream-reports"
    assert span["attributes"]["upstream.webhook"].string_value == webhook["name"].rsplit("/")[-1]


def test_completed_deliveries_are_kept_thirty_days(postgres: PostgresUnderTest) -> None:
    customer = fresh_customer()
    events = [drift_event(customer, f"ev_{age}") for age in (29, 31)]

    async def scenario(url: str) -> tuple[list[str], list[Any]]:
        engine = create_async_engine(url)
        store = ReportsStore(engine)
        try:
            await store.create_webhook(
                customer,
                "wh_1",
                display_name="",
                url="http://127.0.0.1:9/unused",
                event_types=["DRIFT_EVENT_OPENED"],
                signing_secret=SECRET,
                disabled=False,
            )
            await store.record_drift_events(
                customer,
                "batch",
                [drift_event_state(e) for e in events],
                max_attempts=8,
                trace_context={},
            )
            async with engine.begin() as connection:
                for age in (29, 31):
                    await connection.execute(
                        text(
                            "UPDATE reports.webhook_deliveries AS d SET state = 'SUCCEEDED', "
                            "complete_time = now() - make_interval(days => :age) "
                            "FROM reports.drift_event_changes AS c "
                            "WHERE c.change_id = d.change_id AND c.event_id = :event"
                        ),
                        {"age": age, "event": f"ev_{age}"},
                    )
            worker = WebhookDeliveries(
                store,
                WebhookSender(EndpointPolicy(dns_resolver(), allow_loopback=True), 3),
                retry_delays=[0.1],
                attempt_timeout_seconds=3,
                concurrency=4,
                wake_up=asyncio.Event(),
            )
            async with worker.running():
                await asyncio.sleep(0.5)
            kept = await store.list_deliveries(customer, "wh_1", "", 10, None)
            purges = await AuditLog(engine, "reports").list_entries(
                customer, 'actor = "service:reports" AND action = "DELETE"', 10, None
            )
        finally:
            await engine.dispose()
        names = [json.loads(d.row.body)["data"]["name"].rsplit("/", 1)[1] for d in kept]
        return names, purges

    with own_database(postgres, ("reports",)) as database:
        kept, purges = asyncio.run(scenario(database.url("reports", "app")))

    assert kept == ["ev_29"]
    # The purge is itself in the customer's audit log.
    ((resource, before),) = [(p.resource, p.before) for p in purges]
    assert resource == f"customers/{customer}/webhooks/-/deliveries"
    assert before == {"removed": 1, "why": "completed more than 30 days ago"}

"""Rotating a webhook's signing secret and sending a delivery again, through the real
gateway to the real reports service and real HTTP receivers on 127.0.0.1 that verify
signatures with the `standardwebhooks` library as any receiver would."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from typing import Any

import httpx
import psycopg
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import WebhookVerificationError

from devtools.stack import wait_until
from services.reports.deliveries import WebhookDeliveries
from services.reports.endpoints import EndpointPolicy, WebhookSender, dns_resolver
from services.reports.store import ReportsStore
from tests.conftest import PostgresUnderTest, own_database
from tests.reports.test_drift_events import drift_event, fresh_customer, record
from tests.reports.test_webhook_deliveries import WAIT, create_webhook, deliveries, settled
from tests.reports.webhook_receiver import Received, Receiver, receiving
from tests.system import System
from upstream.reports.v1 import reports_service_pb2_grpc


class VerifyingReceiver(Receiver):
    """Answers 204 to a request whose signature verifies with the secret it holds now,
    401 to any other, as a receiver that checks signatures does."""

    def __init__(self, secret: str) -> None:
        super().__init__(self._answer)
        self.secret = secret

    def _answer(self, request: Received) -> tuple[int, bytes, dict[str, str]]:
        try:
            request.verified(self.secret)
        except WebhookVerificationError:
            return 401, b"bad signature", {}
        return 204, b"", {}


def verifies(request: Received, secret: str) -> bool:
    try:
        request.verified(secret)
    except WebhookVerificationError:
        return False
    return True


def rotate(client: httpx.Client, webhook: dict[str, Any]) -> dict[str, Any]:
    rotated = client.post(f"/v1/{webhook['name']}:rotateSecret", json={})
    assert rotated.status_code == 200, rotated.text
    return dict(rotated.json())


def send_test(client: httpx.Client, webhook: dict[str, Any]) -> dict[str, Any]:
    tested = client.post(f"/v1/{webhook['name']}:test", json={})
    assert tested.status_code == 200, tested.text
    return dict(tested.json())


def pass_a_day(database: psycopg.Connection[dict[str, Any]], webhook: dict[str, Any]) -> None:
    """What 24 hours do to a rotation: the replaced secret's validity ends."""
    customer, webhook_id = webhook["name"].split("/")[1::2]
    database.execute(
        "UPDATE reports.webhooks SET previous_secret_expire_time = now() - interval '1 second' "
        "WHERE customer_id = %s AND webhook_id = %s",
        (customer, webhook_id),
    )


def test_after_a_rotation_receivers_holding_either_secret_verify_for_a_day_then_only_the_new(
    system: System, database: psycopg.Connection[dict[str, Any]]
) -> None:
    customer = fresh_customer()
    with system.client(customer) as client, receiving(VerifyingReceiver("")) as receiver:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        old_secret = webhook["signingSecret"]
        rotated = rotate(client, webhook)
        new_secret = rotated["signingSecret"]
        got = client.get(f"/v1/{webhook['name']}").json()
        listed = client.get(f"/v1/customers/{customer}/webhooks").json()["webhooks"]

        receiver.secret = old_secret
        old_within_a_day = send_test(client, webhook)
        receiver.secret = new_secret
        new_within_a_day = send_test(client, webhook)
        within_a_day = receiver.received()[-1]

        pass_a_day(database, webhook)
        after_a_day = client.get(f"/v1/{webhook['name']}").json()
        receiver.secret = old_secret
        old_after_a_day = send_test(client, webhook)
        receiver.secret = new_secret
        new_after_a_day = send_test(client, webhook)
        last = receiver.received()[-1]

    assert new_secret.startswith("whsec_") and new_secret != old_secret
    expires = dt.datetime.fromisoformat(rotated["previousSecretExpireTime"])
    day_ahead = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=23) < day_ahead <= dt.timedelta(hours=24)
    # The new secret is shown once: neither Get nor List shows a secret.
    assert [w.get("signingSecret", "") for w in (got, *listed)] == ["", ""]
    assert got["previousSecretExpireTime"] == rotated["previousSecretExpireTime"]
    assert got["etag"] != webhook["etag"]

    assert (old_within_a_day["state"], old_within_a_day["lastResponseCode"]) == ("SUCCEEDED", 204)
    assert (new_within_a_day["state"], new_within_a_day["lastResponseCode"]) == ("SUCCEEDED", 204)
    assert len(within_a_day.headers["webhook-signature"].split(" ")) == 2
    assert verifies(within_a_day, old_secret) and verifies(within_a_day, new_secret)

    assert "previousSecretExpireTime" not in after_a_day
    assert (old_after_a_day["state"], old_after_a_day["lastResponseCode"]) == ("FAILED", 401)
    assert (new_after_a_day["state"], new_after_a_day["lastResponseCode"]) == ("SUCCEEDED", 204)
    assert len(last.headers["webhook-signature"].split(" ")) == 1
    assert verifies(last, new_secret) and not verifies(last, old_secret)


def test_a_delivery_queued_before_a_rotation_and_sent_after_it_is_signed_with_both_secrets(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    rotated = threading.Event()

    def until_rotated(_: Received) -> tuple[int, bytes, dict[str, str]]:
        return (204, b"", {}) if rotated.is_set() else (503, b"not yet", {})

    with receiving(Receiver(until_rotated)) as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        record(reports, system, customer, "before-rotation", drift_event(customer, "ev_1"))
        wait_until("a first attempt", lambda: bool(receiver.received()), timeout=WAIT)
        new_secret = rotate(client, webhook)["signingSecret"]
        rotated.set()
        (delivery,) = settled(client, webhook, 1)

    first, *_, last = receiver.received()
    assert delivery["state"] == "SUCCEEDED" and delivery["attemptCount"] >= 2
    assert len(set(receiver.message_ids())) == 1
    assert verifies(first, webhook["signingSecret"]) and not verifies(first, new_secret)
    assert verifies(last, new_secret) and verifies(last, webhook["signingSecret"])


def test_rotating_again_within_a_day_keeps_only_the_secret_just_replaced(system: System) -> None:
    customer = fresh_customer()
    with receiving() as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "REPORT_READY")
        first = rotate(client, webhook)["signingSecret"]
        second = rotate(client, webhook)["signingSecret"]
        send_test(client, webhook)
        (sent,) = receiver.received()

    assert verifies(sent, second) and verifies(sent, first)
    assert not verifies(sent, webhook["signingSecret"])


def test_rotating_needs_an_admin_and_a_webhook_of_the_callers_customer(system: System) -> None:
    customer, other = fresh_customer(), fresh_customer()
    with system.client(customer) as client, system.client(other) as other_client:
        webhook = create_webhook(client, customer, "https://hooks.example.com/h", "REPORT_READY")
        with system.client(customer, "viewer") as viewer:
            as_viewer = viewer.post(f"/v1/{webhook['name']}:rotateSecret", json={})
        as_other = other_client.post(f"/v1/{webhook['name']}:rotateSecret", json={})
        missing = client.post(f"/v1/customers/{customer}/webhooks/wh_none:rotateSecret", json={})
        after = client.get(f"/v1/{webhook['name']}").json()

    assert as_viewer.status_code == 403
    assert as_other.status_code == 404 and missing.status_code == 404
    assert "wh_none not found" in missing.json()["detail"]
    assert after["etag"] == webhook["etag"] and "previousSecretExpireTime" not in after


def test_an_expired_previous_secret_is_dropped_from_the_webhook(
    postgres: PostgresUnderTest,
) -> None:
    """Sends ignore a replaced secret once it expires; the delivery worker's pruning also
    removes it from the stored webhook."""
    customer = fresh_customer()

    async def scenario(url: str) -> tuple[Any, Any]:
        engine = create_async_engine(url)
        store = ReportsStore(engine)
        try:
            for webhook_id, keep in (("wh_expired", 0.0), ("wh_valid", 3600.0)):
                await store.create_webhook(
                    customer,
                    webhook_id,
                    display_name="",
                    url="http://127.0.0.1:9/unused",
                    event_types=["REPORT_READY"],
                    signing_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    disabled=False,
                )
                await store.rotate_webhook_secret(
                    customer,
                    webhook_id,
                    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                    keep_previous_seconds=keep,
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
                for _ in range(100):
                    expired = await store.get_webhook(customer, "wh_expired")
                    if expired is not None and expired.previous_signing_secret is None:
                        break
                    await asyncio.sleep(0.1)
            return (
                await store.get_webhook(customer, "wh_expired"),
                await store.get_webhook(customer, "wh_valid"),
            )
        finally:
            await engine.dispose()

    with own_database(postgres, ("reports",)) as database:
        expired, valid = asyncio.run(scenario(database.url("reports", "app")))

    assert expired.previous_signing_secret is None
    assert expired.previous_secret_expire_time is None
    assert valid.previous_signing_secret == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_redelivery_sends_the_same_body_and_id_again_and_appends_the_attempt(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    with receiving() as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        record(reports, system, customer, "once", drift_event(customer, "ev_1"))
        (delivered,) = settled(client, webhook, 1)
        redelivered = client.post(f"/v1/{delivered['name']}:redeliver", json={})
        wait_until(
            "the redelivery recorded",
            lambda: client.get(f"/v1/{delivered['name']}").json()["state"] == "SUCCEEDED",
            timeout=WAIT,
        )
        after = client.get(f"/v1/{delivered['name']}").json()

    assert redelivered.status_code == 200, redelivered.text
    queued = redelivered.json()
    assert (queued["state"], queued["redeliveryCount"], queued["attemptCount"]) == ("PENDING", 1, 1)
    assert queued["eventId"] == delivered["eventId"] and "completeTime" not in queued
    first, second = receiver.received()
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivered["eventId"]
    assert second.verified(webhook["signingSecret"])["data"]["name"].endswith("/ev_1")
    assert (after["state"], after["attemptCount"], after["redeliveryCount"]) == ("SUCCEEDED", 2, 1)
    assert [a["responseCode"] for a in after["attempts"]] == [200, 200]
    assert after["attempts"][0] == delivered["attempts"][0]
    finished = [dt.datetime.fromisoformat(d["completeTime"]) for d in (delivered, after)]
    assert finished[1] > finished[0]


def test_a_failed_redelivery_is_not_retried_and_leaves_the_webhook_enabled(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    answers = iter([200, 500])

    def once_then_broken(_: Received) -> tuple[int, bytes, dict[str, str]]:
        return next(answers, 500), b"", {}

    with receiving(Receiver(once_then_broken)) as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        record(reports, system, customer, "once", drift_event(customer, "ev_1"))
        (delivered,) = settled(client, webhook, 1)
        client.post(f"/v1/{delivered['name']}:redeliver", json={}).raise_for_status()
        wait_until(
            "the redelivery to fail",
            lambda: client.get(f"/v1/{delivered['name']}").json()["state"] == "FAILED",
            timeout=WAIT,
        )
        failed = client.get(f"/v1/{delivered['name']}").json()
        still = client.get(f"/v1/{webhook['name']}").json()

    assert (failed["attemptCount"], failed["lastResponseCode"]) == (2, 500)
    assert [a["responseCode"] for a in failed["attempts"]] == [200, 500]
    assert "nextAttemptTime" not in failed
    assert len(receiver.received()) == 2
    assert still.get("disabled", False) is False


def test_redelivery_of_a_delivery_still_in_flight_or_of_a_disabled_webhook_is_refused(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    release = threading.Event()

    def held(_: Received) -> tuple[int, bytes, dict[str, str]]:
        # Holds the first answer (within the attempt timeout) while the test asks.
        release.wait(2)
        return 200, b"", {}

    with receiving(Receiver(held)) as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        record(reports, system, customer, "held", drift_event(customer, "ev_1"))
        wait_until("the first attempt", lambda: bool(receiver.received()), timeout=WAIT)
        (in_flight,) = deliveries(client, webhook)
        while_in_flight = client.post(f"/v1/{in_flight['name']}:redeliver", json={})
        release.set()
        settled(client, webhook, 1)
        client.patch(
            f"/v1/{webhook['name']}", params={"updateMask": "disabled"}, json={"disabled": True}
        ).raise_for_status()
        while_disabled = client.post(f"/v1/{in_flight['name']}:redeliver", json={})
        client.patch(
            f"/v1/{webhook['name']}", params={"updateMask": "disabled"}, json={"disabled": False}
        ).raise_for_status()
        once_enabled = client.post(f"/v1/{in_flight['name']}:redeliver", json={})
        missing = client.post(f"/v1/{webhook['name']}/deliveries/wd_none:redeliver", json={})
        with system.client(customer, "viewer") as viewer:
            as_viewer = viewer.post(f"/v1/{in_flight['name']}:redeliver", json={})
        with system.client(fresh_customer()) as other:
            as_other = other.post(f"/v1/{in_flight['name']}:redeliver", json={})
        wait_until("the redelivery", lambda: len(receiver.received()) == 2, timeout=WAIT)

    for refused, reason, words in (
        (while_in_flight, "DELIVERY_IN_PROGRESS", "is still being delivered (state PENDING)"),
        (while_disabled, "WEBHOOK_DISABLED", "is disabled; enable it first"),
    ):
        assert refused.status_code == 400, refused.text
        error = refused.json()
        assert error["code"] == "FAILED_PRECONDITION"
        assert words in error["detail"]
        assert error["details"][0]["reason"] == reason
    assert webhook["name"] in while_disabled.json()["detail"]
    assert once_enabled.status_code == 200 and once_enabled.json()["redeliveryCount"] == 1
    assert missing.status_code == 404
    assert as_viewer.status_code == 403 and as_other.status_code == 404
    assert len(set(receiver.message_ids())) == 1


def test_deliveries_are_listed_by_state_event_type_and_time(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = fresh_customer()
    with receiving() as receiver, system.client(customer) as client:
        webhook = create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        record(reports, system, customer, "first", drift_event(customer, "ev_1"))
        (first,) = settled(client, webhook, 1)
        tested = send_test(client, webhook)
        since_first = deliveries(client, webhook, filter=f'create_time > "{first["createTime"]}"')
        until_first = deliveries(client, webhook, filter=f'create_time <= "{first["createTime"]}"')
        opened = deliveries(client, webhook, filter="event_type = DRIFT_EVENT_OPENED")
        succeeded = deliveries(client, webhook, filter="state = SUCCEEDED")
        failed = deliveries(client, webhook, filter="state = FAILED")
        bad = client.get(
            f"/v1/{webhook['name']}/deliveries", params={"filter": "status = SUCCEEDED"}
        )

    assert [d["name"] for d in since_first] == [tested["name"]]
    assert [d["name"] for d in until_first] == [first["name"]]
    assert [d["name"] for d in opened] == [first["name"]]
    assert [d["name"] for d in succeeded] == [tested["name"], first["name"]]
    assert failed == []
    assert bad.status_code == 400
    details = bad.json()["details"]
    assert [v["field"] for d in details for v in d.get("fieldViolations", [])] == ["filter"]

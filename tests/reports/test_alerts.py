"""Alerts end to end: a customer's alert policy read and changed through the real gateway,
drift events recorded over real gRPC into a real reports process, alerts sent by email to
a real SMTP server (aiosmtpd) and to Slack's incoming-webhook shape on a real HTTP
receiver, all on 127.0.0.1; digests driven by a worker whose clock the test sets."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import threading
import time
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import create_async_engine

from devtools.stack import Stack, http_ok, wait_until
from runtime.settings import Settings
from services.reports.alert_policy import PolicyValues, next_digest_time
from services.reports.alert_store import AlertStore
from services.reports.alerts import AlertWorker, EmailChannel
from services.reports.endpoints import EndpointPolicy, WebhookSender, dns_resolver
from services.reports.server import drift_event_state
from services.reports.store import ReportsStore
from tests.conftest import PostgresUnderTest, own_database
from tests.reports.test_drift_events import HIGH, LOW, MEDIUM, drift_event, fresh_customer, record
from tests.reports.webhook_receiver import Receiver, receiving
from tests.system import (
    WEBHOOK_HOST_OVERRIDES,
    WEBHOOK_TEST_SETTINGS,
    System,
    base_env,
    free_port,
    running_service,
)
from upstream.drift.v1 import resources_pb2 as drift_resources
from upstream.reports.v1 import reports_service_pb2_grpc

WAIT = 30
PUBLIC_BASE_URL = "https://upstream.example.com"
# Written by people into an event's triage note; no alert may carry it.
TRIAGE_NOTE = "member 123-45-6789 Jane Roe, claim CLM-0042"


# --- real receivers -------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage

    @property
    def text(self) -> str:
        return str(self.message.get_body(("plain",)).get_content())  # type: ignore[union-attr]

    @property
    def html(self) -> str:
        return str(self.message.get_body(("html",)).get_content())  # type: ignore[union-attr]


@dataclass
class MailServer:
    """An SMTP server on 127.0.0.1 (aiosmtpd) keeping every message; it can be stopped and
    started again on its port."""

    port: int = field(default_factory=free_port)
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def received(self, customer: str | None = None) -> list[Mail]:
        """Every message so far (or those about `customer`'s drift events and webhooks)."""
        with self.lock:
            mails = list(self.mails)
        return [m for m in mails if customer is None or f"/customers/{customer}/" in m.text]


@pytest.fixture(scope="module")
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- a reports process behind a gateway -------------------------------------------------------


@dataclass
class Reports:
    """A reports process of the test's own, behind a gateway of its own."""

    target: str
    gateway_url: str
    system: System

    def client(self, customer: str, role: str = "admin") -> httpx.Client:
        token = self.system.token(customer, role)
        return httpx.Client(
            base_url=self.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    @contextmanager
    def stub(self) -> Iterator[reports_service_pb2_grpc.ReportsServiceStub]:
        with grpc.insecure_channel(self.target) as channel:
            yield reports_service_pb2_grpc.ReportsServiceStub(channel)


@contextmanager
def reports_behind_gateway(
    system: System, postgres: PostgresUnderTest, **settings: str
) -> Iterator[Reports]:
    """Reports with `settings` on a database of its own, and a gateway sending it the
    reports routes (ingest and drift are the session's)."""
    with (
        own_database(postgres, ("reports",)) as database,
        running_service("reports", database.url("reports", "app"), **settings) as (_, target),
    ):
        gateway_port = free_port()
        stack = Stack(
            base_env(
                GATEWAY_PORT=str(gateway_port),
                INGEST_TARGET=system.targets["ingest"],
                DRIFT_TARGET=system.targets["drift"],
                REPORTS_TARGET=target,
            )
        )
        try:
            stack.start("gateway", "gateway", {})
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            wait_until("gateway", lambda: http_ok(f"{gateway_url}/readyz"), stack)
            yield Reports(target, gateway_url, system)
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def alerting(
    system: System, postgres: PostgresUnderTest, mail_server: MailServer
) -> Iterator[Reports]:
    """Reports sending alert email to the test's SMTP server, loopback receivers allowed."""
    with reports_behind_gateway(
        system,
        postgres,
        **WEBHOOK_TEST_SETTINGS,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mail_server.port),
        SMTP_FROM="Upstream alerts <alerts@upstream.example.com>",
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
    ) as reports:
        yield reports


@pytest.fixture(scope="module")
def production(system: System, postgres: PostgresUnderTest) -> Iterator[Reports]:
    """Reports with production's endpoint settings: no loopback receivers."""
    with reports_behind_gateway(
        system, postgres, WEBHOOK_HOST_OVERRIDES=WEBHOOK_HOST_OVERRIDES
    ) as reports:
        yield reports


# --- helpers --------------------------------------------------------------------------------


def event(
    customer: str,
    event_id: str,
    *,
    severity: Any = MEDIUM,
    payer: str = "Aetna",
    hours_later: float = 0,
) -> drift_resources.DriftEvent:
    """A drift event with its numbers and a triage note no alert may carry."""
    made = drift_event(customer, event_id, severity=severity, hours_later=hours_later)
    made.payer = payer
    made.code_group = "EVALUATION_MANAGEMENT"
    made.summary = (
        f"{payer} E&M denial rate 8.1% → 14.6% (+6.5 pts) in the 30 days to 2026-05-19; "
        "$42,310 at stake"
    )
    made.triage_note = TRIAGE_NOTE
    made.evidence.baseline_value = 0.081
    made.evidence.current_value = 0.146
    made.evidence.effect_size = 6.5
    made.evidence.effect_unit = "percentage points"
    return made


def set_policy(client: httpx.Client, customer: str, **policy: Any) -> dict[str, Any]:
    updated = client.patch(f"/v1/customers/{customer}/alertPolicy", json=policy)
    assert updated.status_code == 200, updated.text
    return dict(updated.json())


def alerts(client: httpx.Client, customer: str, **params: Any) -> list[dict[str, Any]]:
    listed = client.get(f"/v1/customers/{customer}/alerts", params={"pageSize": 1000, **params})
    assert listed.status_code == 200, listed.text
    return list(listed.json().get("alerts", []))


def settled(client: httpx.Client, customer: str, count: int) -> list[dict[str, Any]]:
    """The customer's alerts once `count` of them are SENT or FAILED."""

    def done() -> bool:
        return sum(a["state"] in ("SENT", "FAILED") for a in alerts(client, customer)) >= count

    wait_until(f"{count} alerts settled", done, timeout=WAIT)
    return alerts(client, customer)


def violations(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 400, response.text
    details = response.json()["details"]
    return {v["field"]: v["description"] for d in details for v in d.get("fieldViolations", [])}


# --- the policy -----------------------------------------------------------------------------


def test_a_customer_without_a_policy_has_the_defaults_and_changes_them_through_the_gateway(
    alerting: Reports,
) -> None:
    customer = fresh_customer()
    with receiving() as slack, alerting.client(customer) as client:
        defaults = client.get(f"/v1/customers/{customer}/alertPolicy").json()
        updated = set_policy(
            client,
            customer,
            emailRecipients=["revenue@clinic.example", "cfo@clinic.example"],
            slackWebhookUrl=slack.url("/services/T0/B0/secret"),
            minimumSeverity="HIGH",
            suppressionWindow="86400s",
            deliveryMode="DAILY_DIGEST",
            digestHour=0,
            timeZone="America/Chicago",
        )
        stale = client.patch(
            f"/v1/customers/{customer}/alertPolicy",
            params={"updateMask": "disabled"},
            json={"disabled": True, "etag": defaults["etag"]},
        )
        disabled = client.patch(
            f"/v1/customers/{customer}/alertPolicy",
            params={"updateMask": "disabled"},
            json={"disabled": True, "etag": updated["etag"]},
        )
        with alerting.client(customer, "viewer") as viewer:
            read = viewer.get(f"/v1/customers/{customer}/alertPolicy")
            refused = viewer.patch(f"/v1/customers/{customer}/alertPolicy", json={"digestHour": 9})
        with alerting.client(fresh_customer()) as stranger:
            hidden = stranger.get(f"/v1/customers/{customer}/alertPolicy")

    assert defaults == {
        "name": f"customers/{customer}/alertPolicy",
        "emailRecipients": [],
        "slackWebhookUrl": "",
        "slackWebhookHost": "",
        "minimumSeverity": "MEDIUM",
        "suppressionWindow": "604800s",
        "deliveryMode": "IMMEDIATE",
        "digestHour": 8,
        "timeZone": "UTC",
        "disabled": False,
        "alertWhenEnded": False,
        "etag": defaults["etag"],
    }
    assert updated["emailRecipients"] == ["revenue@clinic.example", "cfo@clinic.example"]
    assert updated["slackWebhookUrl"] == "" and updated["slackWebhookHost"] == "127.0.0.1"
    assert (updated["minimumSeverity"], updated["suppressionWindow"]) == ("HIGH", "86400s")
    assert (updated["deliveryMode"], updated["digestHour"], updated["timeZone"]) == (
        "DAILY_DIGEST",
        0,
        "America/Chicago",
    )
    assert "updateTime" in updated and updated["etag"] != defaults["etag"]
    assert stale.status_code == 409, stale.text
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert read.status_code == 200 and read.json()["emailRecipients"] == updated["emailRecipients"]
    assert refused.status_code == 403
    assert hidden.status_code == 404


@pytest.mark.parametrize(
    ("policy", "field", "expected"),
    [
        (
            {"emailRecipients": ["ops@clinic.example", "not-an-address"]},
            "email_recipients[1]",
            "email address",
        ),
        (
            {"emailRecipients": ["a@clinic.example", "A@clinic.example"]},
            "email_recipients[1]",
            "repeat",
        ),
        (
            {"emailRecipients": [f"u{n}@clinic.example" for n in range(51)]},
            "email_recipients",
            "at most 50",
        ),
        ({"timeZone": "Mars/Olympus_Mons"}, "time_zone", "IANA time zone"),
        ({"suppressionWindow": "7776001s"}, "suppression_window", "between 0 and 90 days"),
        ({"suppressionWindow": "-1s"}, "suppression_window", "between 0 and 90 days"),
        ({"digestHour": 24}, "digest_hour", "between 0 and 23"),
        ({"slackWebhookUrl": "https://10.0.0.8/services/x"}, "slack_webhook_url", "private"),
        ({"slackWebhookUrl": "https://metadata.test/x"}, "slack_webhook_url", "169.254.169.254"),
    ],
)
def test_bad_policy_values_are_refused_with_a_400_naming_the_field(
    alerting: Reports, policy: dict[str, Any], field: str, expected: str
) -> None:
    customer = fresh_customer()
    with alerting.client(customer) as client:
        refused = client.patch(f"/v1/customers/{customer}/alertPolicy", json=policy)
        after = client.get(f"/v1/customers/{customer}/alertPolicy").json()

    found = violations(refused)
    assert expected in found[f"alert_policy.{field}"], found
    assert refused.json()["detail"].startswith(f"alert_policy.{field}")
    assert "updateTime" not in after


def test_an_http_slack_url_is_refused_in_production_settings(production: Reports) -> None:
    customer = fresh_customer()
    with receiving() as slack, production.client(customer) as client:
        refused = client.patch(
            f"/v1/customers/{customer}/alertPolicy", json={"slackWebhookUrl": slack.url()}
        )
        loopback = client.patch(
            f"/v1/customers/{customer}/alertPolicy",
            json={"slackWebhookUrl": f"https://127.0.0.1:{slack.port}/hook"},
        )

    assert "https://" in violations(refused)["alert_policy.slack_webhook_url"]
    assert "loopback" in violations(loopback)["alert_policy.slack_webhook_url"]
    assert slack.connections == 0


# --- immediate alerts -----------------------------------------------------------------------


def test_an_opened_event_is_alerted_once_to_each_recipient_and_to_slack_and_suppressed_until_it_escalates(  # noqa: E501
    alerting: Reports, mail_server: MailServer
) -> None:
    customer = fresh_customer()
    recipients = ["revenue@clinic.example", "cfo@clinic.example"]
    with receiving() as slack, alerting.client(customer) as client, alerting.stub() as stub:
        set_policy(client, customer, emailRecipients=recipients, slackWebhookUrl=slack.url())
        record(
            stub,
            alerting.system,
            customer,
            "first",
            event(customer, "ev_1", severity=MEDIUM),
            event(customer, "ev_low", severity=LOW, payer="Cigna"),
        )
        first = settled(client, customer, 2)
        # A new episode of the same payer × code group × metric, within the window.
        record(stub, alerting.system, customer, "again", event(customer, "ev_2", severity=MEDIUM))
        after_repeat = alerts(client, customer)
        escalated = event(customer, "ev_1", severity=HIGH, hours_later=24)
        record(stub, alerting.system, customer, "escalated", escalated)
        everything = settled(client, customer, 4)
        slack_posts = slack.received()

    assert {(a["channel"], a["state"], a["attemptCount"]) for a in first} == {
        ("EMAIL", "SENT", 1),
        ("SLACK", "SENT", 1),
    }
    by_channel = {a["channel"]: a for a in first}
    assert by_channel["EMAIL"]["recipients"] == recipients
    assert by_channel["SLACK"]["recipients"] == ["127.0.0.1"]
    assert {a["kind"] for a in first} == {"DRIFT_EVENT"}
    assert all(a["driftEvents"] == [f"customers/{customer}/driftEvents/ev_1"] for a in first)
    assert len(after_repeat) == 2
    assert len(everything) == 4

    opened, raised = sorted(
        mail_server.received(customer), key=lambda m: "escalated" in m.message["Subject"]
    )
    assert sorted(opened.recipients) == sorted(recipients)
    assert opened.sender == "alerts@upstream.example.com"
    assert opened.message["From"] == "Upstream alerts <alerts@upstream.example.com>"
    # Whole, as written: a long subject with non-ASCII text is not folded into extra spaces.
    assert opened.message["Subject"] == (
        "[Upstream] MEDIUM drift opened, Aetna E&M denial rate 8.1% → 14.6% (+6.5 pts) in the "
        "30 days to 2026-05-19; $42,310 at stake"
    )
    link = f"{PUBLIC_BASE_URL}/v1/customers/{customer}/driftEvents/ev_1"
    for expected in (
        "Aetna E&M denial rate 8.1% → 14.6%",
        "Baseline → current: 8.1% → 14.6%",
        "Code group: evaluation and management",
        "Dollars at stake: $42,310",
        "Severity: MEDIUM",
        "Detected since: 2026-05-20",
        link,
    ):
        assert expected in opened.text
    assert link in opened.html and "<table>" in opened.html
    assert raised.message["Subject"].startswith("[Upstream] HIGH drift escalated to Aetna")
    assert "Severity: HIGH" in raised.text
    assert len(mail_server.received(customer)) == 2

    assert len(slack_posts) == 2
    payloads = [json.loads(post.body) for post in slack_posts]
    assert all({"text", "blocks"} <= set(p) for p in payloads)
    assert all(link in json.dumps(p, ensure_ascii=False) for p in payloads)
    assert "8.1% → 14.6%" in json.dumps(payloads[0], ensure_ascii=False)

    everything_sent = "".join(
        [m.message.as_string() for m in mail_server.received(customer)]
        + [post.body.decode() for post in slack_posts]
    )
    assert "Cigna" not in everything_sent and "ev_low" not in everything_sent
    assert "Jane Roe" not in everything_sent and "CLM-0042" not in everything_sent
    assert "ev_2" not in everything_sent


def ended(
    made: drift_resources.DriftEvent, reason: Any = drift_resources.DriftEvent.NO_LONGER_FOUND
) -> drift_resources.DriftEvent:
    """`made` as drift sends it once a run ended it, a day later, for `reason`."""
    done = drift_resources.DriftEvent()
    done.CopyFrom(made)
    done.active = False
    done.end_reason = reason
    done.end_time.FromDatetime(made.update_time.ToDatetime() + dt.timedelta(days=1))
    done.update_time.CopyFrom(done.end_time)
    return done


def test_an_alerted_event_that_ends_is_alerted_when_the_policy_asks_for_it(
    alerting: Reports, mail_server: MailServer
) -> None:
    """Asked for: the end of an event alerted before goes to every channel, with why it
    ended, whatever the quiet period; an event never alerted is not alerted when it ends.
    Not asked for (the default), an end is never alerted."""
    customer, quiet = fresh_customer(), fresh_customer()
    with receiving() as slack, alerting.stub() as stub:
        for each in (customer, quiet):
            with alerting.client(each) as client:
                set_policy(client, each, emailRecipients=["revenue@clinic.example"])
        with alerting.client(customer) as client:
            policy = set_policy(client, customer, slackWebhookUrl=slack.url(), alertWhenEnded=True)
        opened = event(customer, "ev_1", severity=MEDIUM)
        low = event(customer, "ev_low", severity=LOW, payer="Cigna")
        record(stub, alerting.system, customer, "opened", opened, low)
        record(stub, alerting.system, quiet, "opened", event(quiet, "ev_q", severity=MEDIUM))
        with alerting.client(customer) as client:
            settled(client, customer, 2)
        gone = ended(opened, drift_resources.DriftEvent.CLAIMS_REMOVED)
        record(stub, alerting.system, customer, "ended", gone, ended(low))
        record(stub, alerting.system, quiet, "ended", ended(event(quiet, "ev_q", severity=MEDIUM)))
        with alerting.client(customer) as client:
            everything = settled(client, customer, 4)
        with alerting.client(quiet) as client:
            quiet_alerts = settled(client, quiet, 1)
        posts = [json.loads(post.body) for post in slack.received()]

    assert policy["alertWhenEnded"] is True
    assert len(everything) == 4 and {a["state"] for a in everything} == {"SENT"}
    assert [a["driftEvents"] for a in everything] == [
        [f"customers/{customer}/driftEvents/ev_1"]
    ] * 4
    mails = sorted(mail_server.received(customer), key=lambda m: "ended" in m.message["Subject"])
    assert [m.message["Subject"].split(" Aetna")[0] for m in mails] == [
        "[Upstream] MEDIUM drift opened,",
        "[Upstream] MEDIUM drift ended:",
    ]
    assert (
        "Ended: 2026-05-21: none of its claims are left (the uploads that held them were "
        "deleted, or the payer's name was mapped to another payer)"
    ) in mails[1].text
    assert mails[1].message["Subject"] == (
        "[Upstream] MEDIUM drift ended: Aetna, evaluation and management, denial rate "
        "(its claims are gone)"
    )
    assert mails[1].text.startswith(
        "Ended: none of its claims are left (the uploads that held them were deleted, or the "
        "payer's name was mapped to another payer). It was: Aetna E&M denial rate 8.1% → 14.6%"
    )
    assert "none of its claims are left" in json.dumps(posts, ensure_ascii=False)
    assert sorted(p["text"].split(" Aetna")[0] for p in posts) == [
        "[Upstream] MEDIUM drift ended:",
        "[Upstream] MEDIUM drift opened,",
    ]
    assert "Cigna" not in "".join(m.message.as_string() for m in mails)
    assert [a["subject"].split(" Aetna")[0] for a in quiet_alerts] == [
        "[Upstream] MEDIUM drift opened,"
    ]


def test_a_mail_server_that_is_down_then_up_gets_the_alert_once(
    alerting: Reports, mail_server: MailServer
) -> None:
    customer = fresh_customer()
    with alerting.client(customer) as client, alerting.stub() as stub:
        set_policy(client, customer, emailRecipients=["ops@clinic.example"])
        mail_server.stop()
        try:
            record(stub, alerting.system, customer, "down", event(customer, "ev_1"))

            def retrying() -> bool:
                found = alerts(client, customer)
                return bool(found) and found[0]["state"] == "RETRYING"

            wait_until("a failed attempt", retrying, timeout=WAIT)
            (while_down,) = alerts(client, customer)
        finally:
            mail_server.start()
        (sent,) = settled(client, customer, 1)

    assert while_down["lastError"].startswith("SMTP server unreachable")
    assert sent["state"] == "SENT" and sent["attemptCount"] >= 2
    assert [a.get("error", "") for a in sent["attempts"]][-1] == ""
    (mail,) = mail_server.received(customer)
    assert mail.message["Message-ID"] == f"<{sent['name'].rsplit('/', 1)[1]}@upstream.alerts>"


def test_an_end_waits_for_the_alert_of_the_opening_a_mail_outage_delayed(
    alerting: Reports, mail_server: MailServer
) -> None:
    """The mail server is down when an event opens; its alert retries. The event ends
    meanwhile: that alert is not attempted before the opening's is sent, so the recipient
    reads of the drift's opening first."""
    customer = fresh_customer()
    opened = event(customer, "ev_1", severity=MEDIUM)
    with alerting.client(customer) as client, alerting.stub() as stub:
        set_policy(client, customer, emailRecipients=["ops@clinic.example"], alertWhenEnded=True)
        mail_server.stop()
        try:
            record(stub, alerting.system, customer, "opened", opened)
            wait_until(
                "a failed attempt",
                lambda: [a["state"] for a in alerts(client, customer)] == ["RETRYING"],
                timeout=WAIT,
            )
            (first,) = alerts(client, customer)
            record(stub, alerting.system, customer, "ended", ended(opened))
            wait_until(
                "the end's alert queued", lambda: len(alerts(client, customer)) == 2, timeout=WAIT
            )
            time.sleep(0.5)  # time for the end's alert to be attempted, were it not held
            (held,) = [a for a in alerts(client, customer) if a["name"] != first["name"]]
        finally:
            mail_server.start()
        sent = settled(client, customer, 2)

    assert (held["state"], held.get("attemptCount", 0)) == ("PENDING", 0)
    assert {a["state"] for a in sent} == {"SENT"}
    (end,) = [a for a in sent if a["name"] == held["name"]]
    assert end["attemptCount"] == 1 and "drift ended:" in end["subject"]
    assert [m.message["Subject"].split(" Aetna")[0] for m in mail_server.received(customer)] == [
        "[Upstream] MEDIUM drift opened,",
        "[Upstream] MEDIUM drift ended:",
    ]


def test_a_webhook_disabled_after_its_attempts_are_exhausted_is_alerted(
    alerting: Reports, mail_server: MailServer
) -> None:
    customer = fresh_customer()
    down = Receiver(lambda _: (503, b"maintenance", {}))
    with (
        receiving(down) as hook,
        receiving() as slack,
        alerting.client(customer) as client,
        alerting.stub() as stub,
    ):
        set_policy(
            client, customer, emailRecipients=["ops@clinic.example"], slackWebhookUrl=slack.url()
        )
        created = client.post(
            f"/v1/customers/{customer}/webhooks",
            json={"url": hook.url(), "eventTypes": ["DRIFT_EVENT_OPENED"], "displayName": "ERP"},
        )
        webhook = created.json()
        # LOW: below the policy's minimum, so the only alert is the webhook's.
        record(stub, alerting.system, customer, "doomed", event(customer, "ev_1", severity=LOW))
        (alerted, other) = sorted(settled(client, customer, 2), key=lambda a: a["channel"])
        disabled = client.get(f"/v1/{webhook['name']}").json()
        slack_posts = slack.received()

    assert disabled["disabled"] is True
    assert {alerted["kind"], other["kind"]} == {"WEBHOOK_DISABLED"}
    assert {alerted["state"], other["state"]} == {"SENT"}
    assert alerted["webhook"] == webhook["name"]
    (mail,) = mail_server.received(customer)
    assert mail.message["Subject"] == "[Upstream] Webhook disabled: ERP"
    assert webhook["name"] in mail.text and "all 8 attempts" in mail.text
    assert "HTTP 503" in mail.text
    assert f"PATCH {PUBLIC_BASE_URL}/v1/{webhook['name']}?updateMask=disabled" in mail.text
    assert '{"disabled": false}' in mail.text
    (post,) = slack_posts
    assert "Webhook disabled: ERP" in json.loads(post.body)["text"]


def test_a_thousand_events_in_one_batch_are_alerted_as_the_policy_bounds_them(
    alerting: Reports, mail_server: MailServer
) -> None:
    """Ten payers, a hundred events each: one alert per payer, and in digest mode one
    message for all of them; suppressed changes leave no message behind."""
    customer = fresh_customer()
    with alerting.client(customer) as client, alerting.stub() as stub:
        set_policy(client, customer, emailRecipients=["ops@clinic.example"])
        batch = [event(customer, f"ev_{n}", payer=f"Payer {n % 10}") for n in range(1000)]
        assert record(stub, alerting.system, customer, "thousand", *batch) == (1000, 0)
        immediate = alerts(client, customer)
        settled(client, customer, 10)
        set_policy(client, customer, deliveryMode="DAILY_DIGEST")
        higher = [
            event(customer, f"ev_high_{n}", payer=f"Payer {n % 10}", severity=HIGH)
            for n in range(1000)
        ]
        record(stub, alerting.system, customer, "higher", *higher)
        digests = alerts(client, customer, filter="kind = DIGEST")

    assert len(immediate) == 10
    assert sum(a["driftEventChangeCount"] for a in immediate) == 10
    assert len(mail_server.received(customer)) == 10
    (digest,) = digests
    assert (digest["state"], digest["driftEventChangeCount"]) == ("PENDING", 10)
    assert len(digest["driftEvents"]) == 10


# --- digests --------------------------------------------------------------------------------


def test_a_daily_digest_goes_out_once_at_the_local_hour_with_every_change(
    postgres: PostgresUnderTest, mail_server: MailServer
) -> None:
    """Two workers (as two reports processes) share one database; their clock is set. The
    policy alerts ends too: that of an event the digest tells of is in it, that of an event
    never alerted is not."""
    customer = fresh_customer()
    zone = zoneinfo.ZoneInfo("America/Chicago")
    events = [
        event(customer, "ev_high", severity=HIGH, payer="Humana"),
        event(customer, "ev_medium", severity=MEDIUM, payer="Aetna"),
        event(customer, "ev_low", severity=LOW, payer="Cigna"),
    ]
    later = event(customer, "ev_later", severity=MEDIUM, payer="UnitedHealthcare")
    settings = Settings.from_env(
        "reports",
        base_env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(mail_server.port)),
    )
    clock = {"now": dt.datetime.now(dt.UTC)}

    async def scenario(url: str, slack_url: str) -> tuple[Any, ...]:
        engine = create_async_engine(url)
        alert_store = AlertStore(engine)
        store = ReportsStore(engine)
        workers = [
            AlertWorker(
                alert_store,
                EmailChannel(settings, 5),
                WebhookSender(EndpointPolicy(dns_resolver(), allow_loopback=True), 5),
                base_url=PUBLIC_BASE_URL,
                retry_delays=[60],
                attempt_timeout_seconds=5,
                concurrency=4,
                clock=lambda: clock["now"],
            )
            for _ in range(2)
        ]
        try:
            await alert_store.put_policy(
                customer,
                PolicyValues(
                    email_recipients=("ops@clinic.example",),
                    slack_webhook_url=slack_url,
                    delivery_mode="DAILY_DIGEST",
                    digest_hour=8,
                    time_zone="America/Chicago",
                    alert_when_ended=True,
                ),
                "",
            )
            for number, each in enumerate([events, [later], [ended(events[0]), ended(events[2])]]):
                await store.record_drift_events(
                    customer,
                    f"batch-{number}",
                    [drift_event_state(e) for e in each],
                    max_attempts=3,
                    trace_context={},
                )
            pending = await alert_store.list_alerts(customer, "", 10, None)
            (due,) = {each.row.next_attempt_time for each in pending}
            clock["now"] = due - dt.timedelta(minutes=1)
            before = await asyncio.gather(*(w.send_due() for w in workers))
            clock["now"] = due + dt.timedelta(seconds=1)
            at_hour = await asyncio.gather(*(w.send_due() for w in workers))
            again = await asyncio.gather(*(w.send_due() for w in workers))
            sent = await alert_store.list_alerts(customer, "", 10, None)
        finally:
            await engine.dispose()
        return due, before, at_hour, again, sent

    with own_database(postgres, ("reports",)) as database, receiving() as slack:
        due, before, at_hour, again, sent = asyncio.run(
            scenario(database.url("reports", "app"), slack.url())
        )

    local = due.astimezone(zone)
    assert (local.hour, local.minute) == (8, 0)
    assert dt.timedelta(0) < due - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=25)
    assert before == [0, 0]
    assert sum(at_hour) == 2 and again == [0, 0]
    assert {(a.row.channel, a.row.kind, a.row.state, a.change_count) for a in sent} == {
        ("EMAIL", "DIGEST", "SENT", 4),
        ("SLACK", "DIGEST", "SENT", 4),
    }
    (mail,) = mail_server.received(customer)
    assert mail.message["Subject"] == (
        f"[Upstream] Daily drift digest, {local.date().isoformat()}: 4 drift event changes"
    )
    text = mail.text
    assert text.startswith("4 drift event changes opened, escalated or ended since the last")
    assert text.index("HIGH: Humana") < text.index("MEDIUM: Aetna")
    assert "HIGH (ended): Humana" in text
    assert "MEDIUM: UnitedHealthcare" in text and "Cigna" not in text
    assert f"{PUBLIC_BASE_URL}/v1/customers/{customer}/driftEvents/ev_high" in text
    (post,) = slack.received()
    payload = json.loads(post.body)
    assert payload["text"].startswith("[Upstream] Daily drift digest")
    assert len(payload["blocks"]) <= 50
    blocks = json.dumps(payload["blocks"], ensure_ascii=False)
    assert "HIGH: Humana" in blocks and "UnitedHealthcare" in blocks and "Cigna" not in blocks


@pytest.mark.parametrize(
    ("now", "hour", "expected"),
    [
        # 02:00 does not exist in New York on 2026-03-08: the digest goes at 03:00 EDT.
        ("2026-03-08T06:00:00+00:00", 2, "2026-03-08T07:00:00+00:00"),
        # 01:00 happens twice on 2026-11-01: the first time, once.
        ("2026-11-01T04:00:00+00:00", 1, "2026-11-01T05:00:00+00:00"),
        ("2026-11-01T05:00:00+00:00", 1, "2026-11-02T06:00:00+00:00"),
        # Exactly at the hour: that digest is going out, the next change waits a day.
        ("2026-05-20T12:00:00+00:00", 8, "2026-05-21T12:00:00+00:00"),
        ("2026-05-20T11:59:59+00:00", 8, "2026-05-20T12:00:00+00:00"),
    ],
)
def test_the_digest_hour_is_local_and_once_a_day_across_dst_changes(
    now: str, hour: int, expected: str
) -> None:
    found = next_digest_time(dt.datetime.fromisoformat(now), hour, "America/New_York")
    assert found == dt.datetime.fromisoformat(expected)

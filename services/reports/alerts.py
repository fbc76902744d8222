"""Alerts: workers claim due alerts, render each, send it by email (SMTP) or to Slack (its
incoming webhook, through the same SSRF-checked sender as webhooks), and record every
attempt; failures are retried with the webhook deliveries' backoff.

Any number of reports replicas share the work as they share webhook deliveries: a claim
leases rows (`FOR UPDATE SKIP LOCKED`), so a digest is sent by one of them, and a worker
that dies lets go of its alerts when the lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import random
import time
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

import aiosmtplib
from opentelemetry import trace
from prometheus_client import Counter
from sqlalchemy.engine import Row

from runtime.settings import Settings
from runtime.telemetry import continuing
from services.reports.alert_messages import (
    AlertMessage,
    EventChange,
    digest_alert,
    drift_event_alert,
    report_ready_alert,
    webhook_disabled_alert,
)
from services.reports.alert_store import (
    DIGEST,
    DRIFT_EVENT,
    EMAIL,
    FAILED,
    REPORT_READY,
    RETRYING,
    SENT,
    WEBHOOK_DISABLED,
    AlertAttemptRecord,
    AlertStore,
)
from services.reports.endpoints import WebhookSender
from upstream.drift.v1 import resources_pb2 as drift_resources

logger = logging.getLogger("upstream.reports.alerts")
# Headers kept on one line up to RFC 5322's limit: the library's folding of a long subject
# with non-ASCII text around a fold leaves two spaces where the text had one.
_EMAIL_POLICY = SMTP.clone(max_line_length=998)
tracer = trace.get_tracer("upstream.reports.alerts")

POLL_SECONDS = 2.0
# Sent and failed alerts are kept this long (the contract says 30 days), pruned hourly.
KEEP_DAYS = 30
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 1000
LEASE_MARGIN_SECONDS = 30.0
JITTER = (0.8, 1.2)
WEBHOOK_NAME = "customers/{customer}/webhooks/{webhook}"

alert_attempts_total = Counter(
    "alert_attempts_total",
    "Attempts at sending alerts, by channel and outcome.",
    ("channel", "outcome"),
)


@dataclass(frozen=True)
class SendResult:
    """What one send got: the SMTP reply code or HTTP status (0: none) and what went wrong
    ('' when it was sent)."""

    response_code: int
    error: str = ""


class EmailChannel:
    """One message (plain text with an HTML alternative) to a list of recipients, through
    the configured SMTP server, within `timeout_seconds`."""

    def __init__(self, settings: Settings, timeout_seconds: float) -> None:
        if (
            settings.smtp_username
            and not settings.smtp_starttls
            and not _loopback(settings.smtp_host)
        ):
            raise RuntimeError(
                "SMTP_USERNAME is set without SMTP_STARTTLS: the login would cross the network "
                "in clear text"
            )
        self._settings = settings
        self._timeout = timeout_seconds

    async def send(
        self, recipients: Sequence[str], message: AlertMessage, message_id: str
    ) -> SendResult:
        settings = self._settings
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = settings.smtp_from
        email["To"] = ", ".join(recipients)
        email["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        # The same for every attempt, so a mailbox shows a retried alert once.
        email["Message-ID"] = message_id
        email.set_content(message.text)
        email.add_alternative(message.html, subtype="html")
        try:
            # The whole conversation within the timeout, not each of its commands.
            async with asyncio.timeout(self._timeout):
                refused, reply = await aiosmtplib.send(
                    # Flattened here: aiosmtplib's own flattening folds at 78 characters.
                    email.as_bytes(policy=_EMAIL_POLICY),
                    sender=parseaddr(settings.smtp_from)[1],
                    recipients=list(recipients),
                    hostname=settings.smtp_host,
                    port=settings.smtp_port,
                    username=settings.smtp_username or None,
                    password=settings.smtp_password or None,
                    start_tls=settings.smtp_starttls,
                    timeout=self._timeout,
                )
        except TimeoutError:
            return SendResult(0, f"no answer within {self._timeout:g} s")
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [r.code for r in error.recipients]
            return SendResult(max(codes, default=0), f"every recipient refused: {error}")
        except aiosmtplib.SMTPResponseException as error:
            return SendResult(error.code, f"SMTP {error.code}: {error.message}")
        except (aiosmtplib.SMTPException, OSError) as error:
            return SendResult(0, f"SMTP server unreachable: {error or type(error).__name__}")
        # Some recipients refused: sending again would repeat it to the others.
        partly = "; ".join(f"{to} refused ({r.code} {r.message})" for to, r in refused.items())
        code = int(reply.split(" ", 1)[0]) if reply[:3].isdigit() else 250
        return SendResult(code, partly)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def alert_message(
    claimed: Row, changes: list[EventChange], total: int, base_url: str
) -> AlertMessage:
    """The message a claimed alert sends."""
    if claimed.kind == WEBHOOK_DISABLED:
        detail = claimed.detail or {}
        return webhook_disabled_alert(
            WEBHOOK_NAME.format(customer=claimed.customer_id, webhook=claimed.webhook_id),
            detail.get("display_name", ""),
            detail.get("host") or "?",
            detail.get("reason", ""),
            base_url,
        )
    if claimed.kind == REPORT_READY:
        return report_ready_alert(claimed.detail or {}, base_url)
    if claimed.kind == DIGEST:
        zone = zoneinfo.ZoneInfo((claimed.detail or {}).get("time_zone", "UTC"))
        day = claimed.digest_time.astimezone(zone).date()
        return digest_alert(changes, total, day, claimed.customer_id, base_url)
    return drift_event_alert(changes[0], base_url)


class AlertWorker:
    """Sends due alerts, `concurrency` at a time, until stopped. `clock` (default: the
    database's) says what time it is, for what is due and when to retry."""

    def __init__(
        self,
        store: AlertStore,
        email: EmailChannel,
        slack: WebhookSender,
        *,
        base_url: str,
        retry_delays: Sequence[float],
        attempt_timeout_seconds: float,
        concurrency: int,
        clock: Callable[[], dt.datetime] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._store = store
        self._email = email
        self._slack = slack
        self._base_url = base_url
        self._retry_delays = tuple(retry_delays)
        self._lease_seconds = attempt_timeout_seconds + LEASE_MARGIN_SECONDS
        self._concurrency = concurrency
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._stopping = asyncio.Event()

    @property
    def max_attempts(self) -> int:
        return len(self._retry_delays) + 1

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Send for the life of the server; on the way out, claim nothing more and let the
        attempts in flight finish (each ends within its timeout)."""
        worker = asyncio.create_task(self._run(), name="alerts")
        try:
            yield
        finally:
            self._stopping.set()
            await worker
            await self._slack.close()

    async def send_due(self) -> int:
        """Claim what is due now and attempt it; how many alerts were attempted."""
        claimed = await self._store.claim_alerts(
            self._concurrency, uuid.uuid4(), self._lease_seconds, self._now()
        )
        await asyncio.gather(*(self._attempt(row) for row in claimed))
        return len(claimed)

    def _now(self) -> dt.datetime | None:
        return None if self._clock is None else self._clock()

    async def _run(self) -> None:
        next_prune = time.monotonic()
        while not self._stopping.is_set():
            wait = self._poll_seconds
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    while await self._store.delete_expired(KEEP_DAYS, PRUNE_BATCH) == PRUNE_BATCH:
                        pass
                if await self.send_due():
                    continue
                due_in = await self._store.next_alert_due_in(self._now())
                if due_in is not None:
                    wait = min(wait, due_in)
            except Exception:
                logger.exception("sending alerts failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(wait, 0.25))

    async def _attempt(self, claimed: Row) -> None:
        """One attempt, in the trace of the call that queued the alert."""
        try:
            with continuing(
                claimed.trace_context,
                tracer,
                "process alert",
                kind=trace.SpanKind.CONSUMER,
                operation="process",
                destination="alerts",
                message_id=claimed.alert_id,
                attributes={
                    "upstream.customer": claimed.customer_id,
                    "upstream.alert": claimed.alert_id,
                    "upstream.alert_channel": claimed.channel,
                    "upstream.attempt": claimed.attempt_count + 1,
                },
            ):
                await self._attempt_traced(claimed)
        except Exception:
            # Its lease ends and the alert is attempted again.
            logger.exception("recording an alert attempt failed")

    async def _attempt_traced(self, claimed: Row) -> None:
        if claimed.kind == DRIFT_EVENT and await self._store.hold_behind_earlier(
            claimed, self._now()
        ):
            return
        started = self._clock() if self._clock is not None else dt.datetime.now(dt.UTC)
        began = time.monotonic()
        subject = ""
        try:
            message = await self._message(claimed)
            subject = message.subject
            if claimed.channel == EMAIL:
                result = await self._email.send(
                    claimed.recipients, message, f"<{claimed.alert_id}@upstream.alerts>"
                )
            else:
                sent = await self._slack.post(
                    claimed.slack_webhook_url, json.dumps(message.slack).encode()
                )
                result = SendResult(sent.response_code, sent.error)
        except Exception as error:  # a bug must not leave the row leased forever
            logger.exception("alert attempt failed unexpectedly")
            result = SendResult(0, f"internal error: {type(error).__name__}")
        attempt_number = claimed.attempt_count + 1
        if not result.error or result.response_code // 100 == 2:
            state, retry_in = SENT, None
        elif attempt_number < claimed.max_attempts and attempt_number <= len(self._retry_delays):
            state = RETRYING
            retry_in = self._retry_delays[attempt_number - 1] * random.uniform(*JITTER)
        else:
            state, retry_in = FAILED, None
        recorded = await self._store.record_attempt(
            claimed,
            AlertAttemptRecord(
                started, result.response_code, time.monotonic() - began, result.error
            ),
            state=state,
            subject=subject,
            retry_in_seconds=retry_in,
            now=self._now(),
        )
        if recorded:
            alert_attempts_total.labels(claimed.channel, state).inc()
        else:
            logger.warning(
                "alert lease ended before its attempt was recorded",
                extra={"alert": claimed.alert_id},
            )

    async def _message(self, claimed: Row) -> AlertMessage:
        changes: list[EventChange] = []
        total = 0
        if claimed.kind not in (WEBHOOK_DISABLED, REPORT_READY):
            content = await self._store.alert_content(claimed)
            changes = [
                EventChange(drift_resources.DriftEvent.FromString(event), escalated)
                for event, escalated in content.listed
            ]
            total = content.change_count
            if not changes:
                raise LookupError(f"alert {claimed.alert_id} tells of no drift event change")
        return alert_message(claimed, changes, total, self._base_url)

"""Webhook deliveries: workers claim due deliveries, send each signed, and record every
attempt; failures are retried with exponential backoff and jitter over about a day.

Any number of reports replicas share the work: a claim leases rows (`FOR UPDATE SKIP
LOCKED`), and a worker that dies lets go of them when the lease ends, so a delivery is sent
at least once, with the same `webhook-id` every time. A webhook has at most one attempt in
flight and every attempt has a timeout, so a slow endpoint never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from prometheus_client import Counter
from sqlalchemy.engine import Row

from runtime.telemetry import continuing, trace_carrier
from services.reports.endpoints import AttemptResult, WebhookSender
from services.reports.payloads import webhook_body
from services.reports.store import (
    FAILED,
    RETRYING,
    SUCCEEDED,
    TEST,
    AttemptRecord,
    ReportsStore,
    StoredDelivery,
)

logger = logging.getLogger("upstream.reports.deliveries")
tracer = trace.get_tracer("upstream.reports.deliveries")

POLL_SECONDS = 5.0
# Completed deliveries are kept this long (the contract says 30 days), pruned hourly.
KEEP_DAYS = 30
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 1000
# Beyond one attempt at its timeout: the claim and the outcome writes.
LEASE_MARGIN_SECONDS = 30.0
JITTER = (0.8, 1.2)

webhook_delivery_attempts_total = Counter(
    "webhook_delivery_attempts_total",
    "Attempts at sending webhook deliveries, by event type and outcome.",
    ("event_type", "outcome"),
)


@dataclass(frozen=True)
class NextStep:
    """What follows an attempt: the delivery's state, when to retry, and why the webhook is
    disabled (None: it is not)."""

    state: str
    retry_in_seconds: float | None = None
    disable_reason: str | None = None


def next_step(
    result: AttemptResult,
    attempt_number: int,
    max_attempts: int,
    retry_delays: Sequence[float],
    *,
    jitter: float = 1.0,
    one_off: bool = False,
) -> NextStep:
    """2xx delivers; 410 Gone disables the webhook; anything else is retried after the
    attempt's delay (× `jitter`) until the attempts run out, which disables the webhook too
    (a test delivery, or a `one_off` attempt such as a manual redelivery, is not retried and
    disables nothing)."""
    if result.delivered:
        return NextStep(SUCCEEDED)
    if result.response_code == 410:
        return NextStep(FAILED, disable_reason="the endpoint answered 410 Gone")
    if one_off or max_attempts == 1:
        return NextStep(FAILED)
    if attempt_number < max_attempts and attempt_number <= len(retry_delays):
        return NextStep(RETRYING, retry_in_seconds=retry_delays[attempt_number - 1] * jitter)
    return NextStep(
        FAILED,
        disable_reason=f"all {attempt_number} attempts of a delivery failed; the last: "
        + result.error,
    )


class WebhookDeliveries:
    """Sends due deliveries, `concurrency` at a time, until stopped."""

    def __init__(
        self,
        store: ReportsStore,
        sender: WebhookSender,
        *,
        retry_delays: Sequence[float],
        attempt_timeout_seconds: float,
        concurrency: int,
        wake_up: asyncio.Event,
        poll_seconds: float = POLL_SECONDS,
        lease_margin_seconds: float = LEASE_MARGIN_SECONDS,
    ) -> None:
        self._store = store
        self._sender = sender
        self._retry_delays = tuple(retry_delays)
        # An attempt's lease: its timeout, and time to record its outcome after it.
        self._lease_seconds = attempt_timeout_seconds + lease_margin_seconds
        self._attempt_timeout = attempt_timeout_seconds
        self._concurrency = concurrency
        self._wake_up = wake_up
        self._poll_seconds = poll_seconds
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def max_attempts(self) -> int:
        return len(self._retry_delays) + 1

    async def test_now(
        self, customer: str, webhook_id: str, webhook: Mapping[str, Any]
    ) -> StoredDelivery | None:
        """Send a TEST event carrying `webhook` (its proto3 JSON form) to the webhook now,
        once; the delivery as recorded, or None if the webhook is not there."""
        body = webhook_body(TEST, dt.datetime.now(dt.UTC), webhook)
        claimed = await self._store.create_test_delivery(
            customer,
            webhook_id,
            body,
            trace_context=trace_carrier(),
            lease_token=uuid.uuid4(),
            lease_seconds=self._lease_seconds,
        )
        if claimed is None:
            return None
        await self._attempt(claimed)
        return await self._store.get_delivery(customer, webhook_id, claimed.delivery_id)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Deliver for the life of the server; on the way out, claim nothing more and let
        the attempts in flight finish (each ends within its timeout)."""
        worker = asyncio.create_task(self._run(), name="webhook-deliveries")
        try:
            yield
        finally:
            self._stopping = True
            self._wake_up.set()
            await worker
            await self._sender.close()

    async def _prune(self) -> None:
        while await self._store.delete_expired_deliveries(KEEP_DAYS, PRUNE_BATCH) == PRUNE_BATCH:
            pass
        # Sends ignore an expired secret already; this drops it from the row.
        await self._store.forget_expired_secrets()

    async def _run(self) -> None:
        next_prune = time.monotonic()
        while not self._stopping:
            self._wake_up.clear()
            wait = self._poll_seconds
            free = self._concurrency - len(self._in_flight)
            if free <= 0:
                # Every slot is busy: a finished attempt wakes the loop.
                await self._wake_up.wait()
                continue
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    await self._prune()
                claimed = await self._store.claim_deliveries(
                    free, uuid.uuid4(), self._lease_seconds
                )
                for row in claimed:
                    task = asyncio.create_task(self._attempt(row))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                if claimed:
                    continue
                due_in = await self._store.next_delivery_due_in()
                if due_in is not None:
                    wait = min(wait, due_in)
            except Exception:
                logger.exception("claiming webhook deliveries failed; retrying")
            with contextlib.suppress(TimeoutError):
                # A due delivery of a webhook with an attempt in flight waits for that
                # attempt (whose end wakes this loop), so a short pause is no loss.
                await asyncio.wait_for(self._wake_up.wait(), max(wait, 0.25))
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self._attempt_timeout + 1)
        for task in self._in_flight:
            task.cancel()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Its lease ends and the delivery is attempted again.
            logger.error("recording a webhook attempt failed", exc_info=task.exception())
        # A free slot: claim what waits, without waiting for the poll.
        self._wake_up.set()

    async def _attempt(self, claimed: Row) -> None:
        """One attempt, in the trace of the call that queued the delivery."""
        attempt_number = claimed.attempt_count + 1
        with continuing(
            claimed.trace_context,
            tracer,
            "process webhook delivery",
            kind=trace.SpanKind.CONSUMER,
            operation="process",
            destination="webhook deliveries",
            message_id=claimed.message_id,
            attributes={
                "upstream.customer": claimed.customer_id,
                "upstream.webhook": claimed.webhook_id,
                "upstream.event_type": claimed.event_type,
                "upstream.attempt": attempt_number,
            },
        ) as span:
            started = dt.datetime.now(dt.UTC)
            try:
                result = await self._sender.send(
                    claimed.url,
                    claimed.signing_secret,
                    claimed.message_id,
                    claimed.body,
                    now=started,
                    previous_secret=claimed.previous_signing_secret,
                )
            except Exception as error:  # a bug must not leave the row leased forever
                logger.exception("webhook attempt failed unexpectedly")
                result = AttemptResult(0, 0.0, "", f"internal error: {type(error).__name__}")
            step = next_step(
                result,
                attempt_number,
                int(claimed.max_attempts),
                self._retry_delays,
                jitter=random.uniform(*JITTER),
                one_off=claimed.redelivery_count > 0,
            )
            span.set_attribute("upstream.delivery_state", step.state)
            recorded = await self._store.record_attempt(
                claimed,
                AttemptRecord(
                    started,
                    result.response_code,
                    result.latency_seconds,
                    result.response_body,
                    result.error,
                ),
                state=step.state,
                retry_in_seconds=step.retry_in_seconds,
                disable_reason=step.disable_reason,
            )
        if not recorded:
            logger.warning(
                "webhook delivery lease ended before its attempt was recorded",
                extra={"webhook": claimed.webhook_id, "delivery": claimed.delivery_id},
            )
            return
        webhook_delivery_attempts_total.labels(claimed.event_type, step.state).inc()
        if step.disable_reason is not None:
            logger.warning(
                "webhook disabled",
                extra={
                    "customer": claimed.customer_id,
                    "webhook": claimed.webhook_id,
                    "reason": step.disable_reason,
                },
            )

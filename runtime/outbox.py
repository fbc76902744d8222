"""Transactional outbox relay: work that follows a commit is never lost.

A producer writes an event row in the same transaction as its data. The relay, running in
the producer's process, claims due rows (`FOR UPDATE SKIP LOCKED`, so several replicas share
the work), publishes each, and marks it published; a failure is retried later with
exponential backoff and jitter, across restarts. Consumers are idempotent on the event id.
The publish call continues the producer's trace from the context stored in the row.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.server import work_forever

logger = logging.getLogger("upstream.outbox")
tracer = trace.get_tracer("upstream.outbox")

BATCH_SIZE = 20
POLL_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class OutboxEvent:
    customer: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int


def backoff_seconds(attempts: int) -> float:
    """1 s, 2 s, 4 s … capped at 5 minutes, with ±20 % jitter so replicas spread out."""
    base = min(MAX_BACKOFF_SECONDS, 2.0 ** max(attempts - 1, 0))
    return base * random.uniform(0.8, 1.2)


class OutboxRelay:
    """Publishes the rows of `<schema>.outbox` with `publish`, until cancelled."""

    def __init__(
        self,
        engine: AsyncEngine,
        schema: str,
        publish: Callable[[OutboxEvent], Awaitable[None]],
        wake_up: asyncio.Event,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._engine = engine
        self._table = f"{schema}.outbox"
        self._publish = publish
        self._wake_up = wake_up
        self._poll_seconds = poll_seconds

    async def run(self) -> None:
        async def step() -> bool:
            return await self.relay_due() == BATCH_SIZE

        await work_forever("outbox relay", step, self._wake_up, self._poll_seconds)

    async def relay_due(self) -> int:
        """Publish the events that are due now; returns how many it tried."""
        async with self._engine.connect() as connection, connection.begin():
            rows = (
                await connection.execute(
                    text(
                        f"SELECT customer_id, event_id, event_type, payload, trace_context, "
                        f"attempts FROM {self._table} WHERE published_time IS NULL "
                        f"AND next_attempt_time <= now() ORDER BY next_attempt_time "
                        f"LIMIT {BATCH_SIZE} FOR UPDATE SKIP LOCKED"
                    )
                )
            ).all()
            for row in rows:
                event = OutboxEvent(
                    row.customer_id, str(row.event_id), row.event_type, row.payload, row.attempts
                )
                error = await self._publish_linked(event, row.trace_context or {})
                if error is None:
                    await connection.execute(
                        text(
                            f"UPDATE {self._table} SET published_time = now(), "
                            "attempts = attempts + 1, last_error = NULL "
                            "WHERE customer_id = :customer AND event_id = :event"
                        ),
                        {"customer": event.customer, "event": row.event_id},
                    )
                else:
                    delay = backoff_seconds(event.attempts + 1)
                    logger.warning(
                        "outbox publish failed; will retry",
                        extra={
                            "event_type": event.event_type,
                            "event_id": event.event_id,
                            "attempts": event.attempts + 1,
                            "retry_in_seconds": round(delay, 1),
                            "error": error,
                        },
                    )
                    await connection.execute(
                        text(
                            f"UPDATE {self._table} SET attempts = attempts + 1, "
                            "last_error = :error, "
                            "next_attempt_time = now() + make_interval(secs => :delay) "
                            "WHERE customer_id = :customer AND event_id = :event"
                        ),
                        {
                            "customer": event.customer,
                            "event": row.event_id,
                            "error": error[:1000],
                            "delay": delay,
                        },
                    )
            return len(rows)

    async def _publish_linked(self, event: OutboxEvent, carrier: dict[str, str]) -> str | None:
        """Publish within the producer's trace; the error text on failure, else None."""
        token = otel_context.attach(propagate.extract(carrier))
        try:
            with tracer.start_as_current_span(
                f"outbox publish {event.event_type}",
                kind=trace.SpanKind.PRODUCER,
                attributes={"messaging.message.id": event.event_id},
            ):
                await self._publish(event)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            otel_context.detach(token)
        return None

"""Transactional outbox relay: work that follows a commit is never lost.

A producer writes an event row in the same transaction as its data. The relay, running in
the producer's process, leases due rows in one short transaction (`FOR UPDATE SKIP LOCKED`,
so several replicas share the work), publishes each with no transaction open, and records
the outcome only while its lease holds: published, or retried later with exponential
backoff and jitter, across restarts. The rows of a relay that dies are due again when its
lease ends. An event that keeps failing is parked: counted, logged, and left for an operator,
who lists and replays parked events with

    python -m runtime.outbox parked --service ingest
    python -m runtime.outbox replay --service ingest EVENT_ID|all

Consumers are idempotent on the event id. The publish call continues the producer's trace
from the context stored in the row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import trace
from prometheus_client import Counter, Gauge
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.auth import ServiceAuthorization
from runtime.clients import open_channel
from runtime.db import create_engine
from runtime.server import running_task, work_forever
from runtime.settings import Settings
from runtime.telemetry import continuing, error_text
from runtime.words import counted

logger = logging.getLogger("upstream.outbox")
tracer = trace.get_tracer("upstream.outbox")

# The services whose schema holds an outbox table.
OUTBOX_SERVICES = ("ingest", "drift")
BATCH_SIZE = 20
POLL_SECONDS = 5.0
# Beyond a batch of publishes at their timeout: the claim and the outcome writes.
LEASE_MARGIN_SECONDS = 30.0

# The same request gets these again until someone changes the consumer, its configuration or
# the event (gRPC's status code guide): retried for hours, they would only add load.
PERMANENT_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
    }
)

EVENT_LABELS = ("schema", "event_type")
outbox_events_published_total = Counter(
    "outbox_events_published_total", "Outbox events their consumer accepted.", EVENT_LABELS
)
outbox_publish_failures_total = Counter(
    "outbox_publish_failures_total",
    "Failed attempts to publish outbox events, by the gRPC code of the failure.",
    (*EVENT_LABELS, "grpc_code"),
)
outbox_events_parked_total = Counter(
    "outbox_events_parked_total",
    "Outbox events the relay gave up on, left for an operator to replay.",
    EVENT_LABELS,
)
# Whole-table figures: every replica reports the same, so dashboards take the max.
outbox_pending_events = Gauge(
    "outbox_pending_events", "Outbox events neither published nor parked.", ("schema",)
)
outbox_parked_events = Gauge(
    "outbox_parked_events", "Parked outbox events, waiting for an operator.", ("schema",)
)
outbox_oldest_pending_age_seconds = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox event neither published nor parked; 0 when there is none.",
    ("schema",),
)


@dataclass(frozen=True)
class OutboxEvent:
    customer: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed event is tried again, and when the relay gives up on it (parks it)."""

    first_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    # Ten tries span about eight minutes: longer than a consumer's rollout, during which a
    # replica may still answer UNIMPLEMENTED for a method it does not have yet.
    permanent_attempts: int = 10
    # About eight hours at the five-minute cap: an outage heals by itself, while an event
    # that fails for longer (one that trips a consumer's bug) goes to an operator.
    transient_attempts: int = 100

    def backoff_seconds(self, attempts: int) -> float:
        """first, 2 × first, 4 × first … capped, with ±20 % jitter so replicas spread out."""
        doublings = min(max(attempts - 1, 0), 32)
        base = min(self.max_backoff_seconds, self.first_backoff_seconds * 2.0**doublings)
        return base * random.uniform(0.8, 1.2)

    def parks(self, code: grpc.StatusCode, attempts: int) -> bool:
        """Whether an event that has failed `attempts` times, the last with `code`, is parked."""
        limit = self.permanent_attempts if code in PERMANENT_CODES else self.transient_attempts
        return attempts >= limit


@dataclass(frozen=True)
class PublishFailure:
    code: grpc.StatusCode
    message: str


def publish_failure(error: Exception) -> PublishFailure:
    """The gRPC code and a message for an operator, of what a publish raised."""
    if isinstance(error, grpc.aio.AioRpcError):
        return PublishFailure(error.code(), f"{error.code().name}: {error.details()}")
    if isinstance(error, TimeoutError):
        code = grpc.StatusCode.DEADLINE_EXCEEDED
        return PublishFailure(code, f"{code.name}: the publish took longer than its timeout")
    # Not an answer of the consumer (a payload the publisher cannot read, a database error):
    # UNKNOWN, so only the long bound parks it. Logged and kept in `last_error`, the text
    # holds no value a database error would echo.
    return PublishFailure(grpc.StatusCode.UNKNOWN, error_text(error))


@dataclass(frozen=True)
class _Claim:
    token: uuid.UUID
    # time.monotonic() at which the lease ends, read before claiming: never later than the
    # database's own end of the lease.
    lease_end: float
    rows: Sequence[Row[Any]]


class OutboxRelay:
    """Publishes the rows of `<schema>.outbox` with `publish`, until cancelled."""

    def __init__(
        self,
        engine: AsyncEngine,
        schema: str,
        publish: Callable[[OutboxEvent], Awaitable[None]],
        wake_up: asyncio.Event,
        *,
        publish_timeout_seconds: float,
        policy: RetryPolicy = RetryPolicy(),
        batch_size: int = BATCH_SIZE,
        lease_seconds: float | None = None,
        poll_seconds: float = POLL_SECONDS,
        destination: str = "",
    ) -> None:
        # Longer than a whole batch of publishes at their timeout, so a lease never ends
        # mid-batch and needs no renewing.
        lease = batch_size * publish_timeout_seconds + LEASE_MARGIN_SECONDS
        self._lease_seconds = lease if lease_seconds is None else lease_seconds
        if self._lease_seconds <= publish_timeout_seconds:
            raise ValueError("the lease must outlast one publish")
        self._engine = engine
        self._schema = schema
        self._table = f"{schema}.outbox"
        self._publish = publish
        self._wake_up = wake_up
        self._publish_timeout = publish_timeout_seconds
        self._policy = policy
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        # The consumer, as traces name it (`messaging.destination.name`).
        self._destination = destination or f"{schema} outbox consumer"

    async def run(self) -> None:
        """Relay while there is work, then sleep until the next event is due, a producer
        wakes the relay, or the poll interval passes (events another replica will retry)."""

        async def step() -> bool:
            return await self.relay_due() == self._batch_size

        await work_forever(
            f"{self._schema} outbox relay",
            step,
            self._wake_up,
            self._poll_seconds,
            next_due=self.observe_backlog,
        )

    async def relay_due(self) -> int:
        """Publish the events that are due now; returns how many it claimed."""
        claim = await self._claim()
        for row in claim.rows:
            # A publish starts only if it ends within the lease, so no other relay can
            # claim the row meanwhile; the rest are due again when the lease ends.
            if time.monotonic() + self._publish_timeout > claim.lease_end:
                break
            event = OutboxEvent(
                row.customer_id, str(row.event_id), row.event_type, row.payload, row.attempts
            )
            failure = await self._publish_linked(event, row.trace_context or {})
            if failure is None:
                await self._record_published(claim, event)
            else:
                await self._record_failure(claim, event, failure)
        return len(claim.rows)

    async def observe_backlog(self) -> float:
        """Set the backlog gauges; returns the seconds until the next event is due."""
        async with self._engine.connect() as connection:
            backlog = (
                await connection.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE parked_time IS NULL) AS pending, "
                        "count(*) FILTER (WHERE parked_time IS NOT NULL) AS parked, "
                        "extract(epoch FROM now() - min(create_time) "
                        "  FILTER (WHERE parked_time IS NULL)) AS oldest_pending_age, "
                        "extract(epoch FROM min(greatest(next_attempt_time, lease_expire_time)) "
                        "  FILTER (WHERE parked_time IS NULL) - now()) AS next_due_in "
                        f"FROM {self._table} WHERE published_time IS NULL"
                    )
                )
            ).one()
        outbox_pending_events.labels(self._schema).set(backlog.pending)
        outbox_parked_events.labels(self._schema).set(backlog.parked)
        outbox_oldest_pending_age_seconds.labels(self._schema).set(
            float(backlog.oldest_pending_age or 0)
        )
        if backlog.next_due_in is None:
            return self._poll_seconds
        return max(float(backlog.next_due_in), 0.0)

    async def _claim(self) -> _Claim:
        """Lease the due rows, oldest due first, in one short transaction."""
        token = uuid.uuid4()
        lease_end = time.monotonic() + self._lease_seconds
        async with self._engine.begin() as connection:
            rows = (
                await connection.execute(
                    text(
                        f"WITH due AS (SELECT customer_id, event_id FROM {self._table} "
                        "WHERE published_time IS NULL AND parked_time IS NULL "
                        "AND next_attempt_time <= now() "
                        "AND (lease_expire_time IS NULL OR lease_expire_time <= now()) "
                        "ORDER BY next_attempt_time LIMIT :batch FOR UPDATE SKIP LOCKED) "
                        f"UPDATE {self._table} AS o SET lease_token = :token, "
                        "lease_owner = :owner, "
                        "lease_expire_time = now() + make_interval(secs => :lease) "
                        "FROM due WHERE o.customer_id = due.customer_id "
                        "AND o.event_id = due.event_id "
                        "RETURNING o.customer_id, o.event_id, o.event_type, o.payload, "
                        "o.trace_context, o.attempts, o.next_attempt_time"
                    ),
                    {
                        "batch": self._batch_size,
                        "token": token,
                        "owner": self._owner,
                        "lease": self._lease_seconds,
                    },
                )
            ).all()
        return _Claim(token, lease_end, sorted(rows, key=lambda row: row.next_attempt_time))

    async def _record_published(self, claim: _Claim, event: OutboxEvent) -> None:
        recorded = await self._record(
            claim,
            event,
            "published_time = now(), last_error = NULL",
            {},
        )
        if recorded:
            outbox_events_published_total.labels(self._schema, event.event_type).inc()

    async def _record_failure(
        self, claim: _Claim, event: OutboxEvent, failure: PublishFailure
    ) -> None:
        attempts = event.attempts + 1
        parked = self._policy.parks(failure.code, attempts)
        delay = self._policy.backoff_seconds(attempts)
        recorded = await self._record(
            claim,
            event,
            "last_error = :error, "
            "next_attempt_time = now() + make_interval(secs => :delay), "
            "parked_time = CASE WHEN CAST(:parked AS boolean) THEN now() END",
            {"error": failure.message[:1000], "delay": delay, "parked": parked},
        )
        if not recorded:
            return
        outbox_publish_failures_total.labels(
            self._schema, event.event_type, failure.code.name
        ).inc()
        details = {
            "schema": self._schema,
            "event_type": event.event_type,
            "event_id": event.event_id,
            "attempts": attempts,
            "grpc_code": failure.code.name,
            "error": failure.message,
        }
        if parked:
            outbox_events_parked_total.labels(self._schema, event.event_type).inc()
            logger.error(
                "outbox event parked; `python -m runtime.outbox replay` publishes it again",
                extra=details,
            )
        else:
            logger.warning(
                "outbox publish failed; will retry",
                extra={**details, "retry_in_seconds": round(delay, 1)},
            )

    async def _record(
        self, claim: _Claim, event: OutboxEvent, assignments: str, values: dict[str, Any]
    ) -> bool:
        """Record an attempt's outcome if this claim still holds the row; whether it did.

        The token decides, not the lease's end: a late outcome still counts while no other
        relay has claimed the row, and never overwrites the outcome of one that has."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                text(
                    f"UPDATE {self._table} SET {assignments}, attempts = attempts + 1, "
                    "last_attempt_time = now(), lease_token = NULL, lease_owner = NULL, "
                    "lease_expire_time = NULL "
                    "WHERE customer_id = :customer AND event_id = :event AND lease_token = :token"
                ),
                {
                    **values,
                    "customer": event.customer,
                    "event": uuid.UUID(event.event_id),
                    "token": claim.token,
                },
            )
        if result.rowcount == 0:
            logger.warning(
                "outbox lease lost before the outcome was recorded; the relay holding the "
                "event records it",
                extra={"schema": self._schema, "event_id": event.event_id},
            )
        return bool(result.rowcount)

    async def _publish_linked(
        self, event: OutboxEvent, carrier: dict[str, str]
    ) -> PublishFailure | None:
        """Publish within the producer's trace; what failed, or None."""
        try:
            with continuing(
                carrier,
                tracer,
                f"send {event.event_type}",
                kind=trace.SpanKind.PRODUCER,
                operation="send",
                destination=self._destination,
                message_id=event.event_id,
                attributes={"messaging.message.type": event.event_type},
            ):
                async with asyncio.timeout(self._publish_timeout):
                    await self._publish(event)
        except Exception as exc:
            return publish_failure(exc)
        return None


Publish = Callable[[grpc.aio.Channel, OutboxEvent], Awaitable[None]]


def outbox_relay(
    settings: Settings,
    engine: AsyncEngine,
    wake_up: asyncio.Event,
    *,
    target: str,
    full_service_name: str,
    publish: Publish,
) -> Callable[[], AbstractAsyncContextManager[None]]:
    """The service's outbox relay as background work of its server (`ServiceDefinition`),
    publishing through a channel to the consumer at `target` with the service's own
    credentials; `wake_up` is set by the producer after it commits an event."""

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[None]:
        channel = open_channel(
            target,
            full_service_name,
            default_timeout=settings.client_timeout_seconds,
            authorization=ServiceAuthorization(settings),
        )
        relay = OutboxRelay(
            engine,
            settings.service,
            functools.partial(publish, channel),
            wake_up,
            publish_timeout_seconds=settings.client_timeout_seconds,
            destination=full_service_name,
            policy=RetryPolicy(first_backoff_seconds=settings.outbox_first_backoff_seconds),
        )
        try:
            async with running_task(f"{settings.service}-outbox-relay", relay.run):
                yield
        finally:
            await channel.close()

    return running


@dataclass(frozen=True)
class ParkedEvent:
    customer: str
    event_id: str
    event_type: str
    attempts: int
    parked_time: dt.datetime
    replay_count: int
    last_error: str | None


async def parked_events(engine: AsyncEngine, schema: str) -> list[ParkedEvent]:
    """The events the relay of `schema` gave up on, oldest parked first."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT customer_id, event_id, event_type, attempts, parked_time, replay_count, "
                f"last_error FROM {schema}.outbox "
                "WHERE published_time IS NULL AND parked_time IS NOT NULL ORDER BY parked_time"
            )
        )
        return [
            ParkedEvent(
                row.customer_id,
                str(row.event_id),
                row.event_type,
                row.attempts,
                row.parked_time,
                row.replay_count,
                row.last_error,
            )
            for row in rows
        ]


async def replay_parked(engine: AsyncEngine, schema: str, event_id: uuid.UUID | None) -> int:
    """Make a parked event (every parked event when `event_id` is None) due now with its
    attempts reset, counting the replay on the row; returns how many."""
    async with engine.begin() as connection:
        result = await connection.execute(
            text(
                f"UPDATE {schema}.outbox SET parked_time = NULL, attempts = 0, "
                "next_attempt_time = now(), replay_count = replay_count + 1, "
                "last_replay_time = now() "
                "WHERE published_time IS NULL AND parked_time IS NOT NULL "
                "AND (CAST(:event AS uuid) IS NULL OR event_id = :event)"
            ),
            {"event": event_id},
        )
    return int(result.rowcount)


def database_url(service: str) -> str:
    """The database the service itself uses: DATABASE_URL as the service reads it, else the
    local cluster as the service's app role, as `make run` starts it."""
    url = Settings.from_env(service).database_url
    if url:
        return url
    from runtime import schemas

    app = schemas.role_name(service, "app")
    password = schemas.local_passwords([service])[app]
    return schemas.service_url(schemas.local_admin_url(), service, "app", password)


async def _administer(service: str, command: str, event_id: uuid.UUID | None) -> int:
    settings = dataclasses.replace(Settings.from_env(service), database_url=database_url(service))
    engine = create_engine(settings)
    try:
        if command == "parked":
            events = await parked_events(engine, service)
            print(f"{counted(len(events), 'parked event')} in {service}.outbox")
            for event in events:
                print(
                    f"{event.event_id}  {event.customer}  {event.event_type}  "
                    f"attempts={event.attempts}  parked={event.parked_time.isoformat()}  "
                    f"replays={event.replay_count}  {event.last_error or ''}"
                )
            return 0
        replayed = await replay_parked(engine, service, event_id)
        if event_id is not None and not replayed:
            print(f"no parked event {event_id} in {service}.outbox", file=sys.stderr)
            return 1
        print(
            f"replayed {counted(replayed, 'event')} of {service}.outbox; "
            "the relay publishes them next"
        )
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Command line: `parked` lists the parked events, `replay` makes them due again."""
    parser = argparse.ArgumentParser(
        prog="python -m runtime.outbox", description="List and replay parked outbox events."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    parked = commands.add_parser("parked", help="list the events the relay gave up on")
    replay = commands.add_parser("replay", help="make parked events due again, attempts reset")
    replay.add_argument("event", help="the event id, or `all` for every parked event")
    for command in (parked, replay):
        command.add_argument("--service", choices=OUTBOX_SERVICES, required=True)
    args = parser.parse_args(argv)
    event_id = None
    if args.command == "replay" and args.event != "all":
        try:
            event_id = uuid.UUID(args.event)
        except ValueError:
            parser.error(f"{args.event!r} is neither an event id nor `all`")
    return asyncio.run(_administer(args.service, args.command, event_id))


if __name__ == "__main__":
    sys.exit(main())

"""Reports' tables (schema `reports`) and the queries the service runs on them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime.audit import record_purges
from runtime.db import for_reads
from runtime.filtering import FilterField, parse_filter
from runtime.pagination import after_position
from services.reports.alert_policy import SEVERITY_RANKS
from services.reports.alert_store import queue_drift_event_alerts, queue_webhook_disabled_alert
from services.reports.payloads import webhook_body

metadata = sa.MetaData(schema="reports")

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("webhook_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_types", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("signing_secret", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("previous_signing_secret", sa.Text),
    sa.Column("previous_secret_expire_time", sa.DateTime(timezone=True)),
)

drift_events = sa.Table(
    "drift_events",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("version", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payer", sa.Text, nullable=False),
    sa.Column("code_group", sa.Text, nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("dollars_at_stake_cents", sa.BigInteger, nullable=False),
    sa.Column("event", sa.LargeBinary, nullable=False),
    sa.Column("first_recorded_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)

drift_event_changes = sa.Table(
    "drift_event_changes",
    metadata,
    sa.Column("change_id", sa.BigInteger, sa.Identity(always=True)),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("version", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("escalated", sa.Boolean, nullable=False),
    sa.Column("batch_id", sa.Text, nullable=False),
    sa.Column("record_time", sa.DateTime(timezone=True), nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("webhook_id", sa.Text, primary_key=True),
    sa.Column("delivery_id", sa.Text, primary_key=True),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("change_id", sa.BigInteger),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("trace_context", postgresql.JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempt_count", sa.BigInteger, nullable=False),
    sa.Column("max_attempts", sa.BigInteger, nullable=False),
    sa.Column("next_attempt_time", sa.DateTime(timezone=True)),
    sa.Column("lease_token", sa.Uuid),
    sa.Column("lease_expire_time", sa.DateTime(timezone=True)),
    sa.Column("last_response_code", sa.BigInteger),
    sa.Column("last_error", sa.Text),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("complete_time", sa.DateTime(timezone=True)),
    sa.Column("redelivery_count", sa.BigInteger, nullable=False),
)

webhook_delivery_attempts = sa.Table(
    "webhook_delivery_attempts",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("webhook_id", sa.Text, primary_key=True),
    sa.Column("delivery_id", sa.Text, primary_key=True),
    sa.Column("attempt_number", sa.BigInteger, primary_key=True),
    sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("response_code", sa.BigInteger),
    sa.Column("latency_seconds", sa.Float, nullable=False),
    sa.Column("response_body", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
)

drift_event_batches = sa.Table(
    "drift_event_batches",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("batch_id", sa.Text, primary_key=True),
    sa.Column("events_recorded", sa.BigInteger, nullable=False),
    sa.Column("deliveries_queued", sa.BigInteger, nullable=False),
    sa.Column("record_time", sa.DateTime(timezone=True), nullable=False),
)

# The EventType names of reports' contract a drift event's change is recorded as.
DRIFT_EVENT_OPENED = "DRIFT_EVENT_OPENED"
DRIFT_EVENT_UPDATED = "DRIFT_EVENT_UPDATED"
DRIFT_EVENT_CLOSED = "DRIFT_EVENT_CLOSED"
TEST = "TEST"
# Delivery states, as the WebhookDelivery.State names of the contract.
PENDING, RETRYING, SUCCEEDED, FAILED = "PENDING", "RETRYING", "SUCCEEDED", "FAILED"
UNDELIVERED = (PENDING, RETRYING)
EVENT_TYPES = (DRIFT_EVENT_OPENED, DRIFT_EVENT_UPDATED, DRIFT_EVENT_CLOSED, "REPORT_READY", TEST)

WEBHOOK_FILTERS = {
    "disabled": FilterField(webhooks.c.disabled, "bool"),
    "event_types": FilterField(webhooks.c.event_types, "text_array"),
}

DELIVERY_FILTERS = {
    "state": FilterField(
        webhook_deliveries.c.state,
        "enum",
        {state: state for state in (PENDING, RETRYING, SUCCEEDED, FAILED)},
    ),
    "event_type": FilterField(webhook_deliveries.c.event_type, "enum", {t: t for t in EVENT_TYPES}),
    "event_id": FilterField(webhook_deliveries.c.message_id),
    "create_time": FilterField(webhook_deliveries.c.create_time, "timestamp"),
}


@dataclass(frozen=True)
class DriftEventState:
    """One drift event as drift stored it after a change; `version` is its `update_time`."""

    event_id: str
    version: dt.datetime
    payer: str
    code_group: str
    metric: str
    severity: str
    active: bool
    summary: str
    dollars_at_stake_cents: int
    # The serialized upstream.drift.v1.DriftEvent.
    event: bytes
    # The same event in its proto3 JSON form, as webhook deliveries carry it.
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftEventChange:
    change: str
    escalated: bool


def drift_event_change(stored: Row | None, incoming: DriftEventState) -> DriftEventChange | None:
    """What `incoming` changes against the `stored` state (None: not seen before); None when
    it is no newer (a repeat, or an older state arriving late)."""
    if stored is None:
        return DriftEventChange(DRIFT_EVENT_OPENED, escalated=False)
    if incoming.version <= stored.version:
        return None
    closed = stored.active and not incoming.active
    escalated = SEVERITY_RANKS.get(incoming.severity, 0) > SEVERITY_RANKS.get(stored.severity, 0)
    return DriftEventChange(DRIFT_EVENT_CLOSED if closed else DRIFT_EVENT_UPDATED, escalated)


class ReportsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = for_reads(engine)

    async def create_webhook(
        self,
        customer: str,
        webhook_id: str,
        *,
        display_name: str,
        url: str,
        event_types: Sequence[str],
        signing_secret: str,
        disabled: bool,
    ) -> Row:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.insert(webhooks)
                .values(
                    customer_id=customer,
                    webhook_id=webhook_id,
                    display_name=display_name,
                    url=url,
                    event_types=list(event_types),
                    signing_secret=signing_secret,
                    disabled=disabled,
                    create_time=sa.func.now(),
                    update_time=sa.func.now(),
                )
                .returning(webhooks)
            )
            return result.one()

    async def get_webhook(self, customer: str, webhook_id: str) -> Row | None:
        async with self._reads.connect() as connection:
            result = await connection.execute(
                sa.select(webhooks).where(
                    webhooks.c.customer_id == customer, webhooks.c.webhook_id == webhook_id
                )
            )
            return result.first()

    async def delete_webhook(
        self, customer: str, webhook_id: str, *, expected_update_time: dt.datetime | None = None
    ) -> bool:
        """False when there is no such webhook, or (with `expected_update_time`) it changed."""
        conditions = [webhooks.c.customer_id == customer, webhooks.c.webhook_id == webhook_id]
        if expected_update_time is not None:
            conditions.append(webhooks.c.update_time == expected_update_time)
        async with self._engine.begin() as connection:
            result = await connection.execute(sa.delete(webhooks).where(*conditions))
            return bool(result.rowcount)

    async def list_webhooks(
        self, customer: str, filter_text: str, limit: int, after: Sequence[str] | None
    ) -> list[Row]:
        """Oldest first; `after` is the (create_time, webhook_id) the last page ended on."""
        query = (
            sa.select(webhooks)
            .where(webhooks.c.customer_id == customer, parse_filter(filter_text, WEBHOOK_FILTERS))
            .order_by(webhooks.c.create_time, webhooks.c.webhook_id)
            .limit(limit)
        )
        if after is not None:
            created = dt.datetime.fromisoformat(after[0])
            query = query.where(
                after_position(
                    (webhooks.c.create_time, webhooks.c.webhook_id),
                    (created, after[1]),
                    descending=False,
                )
            )
        async with self._reads.connect() as connection:
            return list((await connection.execute(query)).all())

    async def update_webhook(
        self,
        customer: str,
        webhook_id: str,
        changes: Mapping[str, Any],
        *,
        expected_update_time: dt.datetime | None,
    ) -> Row | None:
        """Apply `changes` (columns of `webhooks`); None if the webhook is not there, or (with
        `expected_update_time`) was changed since. Enabling clears the reason it was disabled
        for; disabling drops its undelivered deliveries (tests aside)."""
        values = dict(changes, update_time=sa.func.now())
        if changes.get("disabled") is False:
            values["disabled_reason"] = None
        condition = [webhooks.c.customer_id == customer, webhooks.c.webhook_id == webhook_id]
        if expected_update_time is not None:
            condition.append(webhooks.c.update_time == expected_update_time)
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(
                    sa.update(webhooks).where(*condition).values(values).returning(webhooks)
                )
            ).first()
            if row is not None and changes.get("disabled"):
                await _drop_undelivered(connection, customer, webhook_id, "the webhook is disabled")
            return row

    async def rotate_webhook_secret(
        self, customer: str, webhook_id: str, new_secret: str, *, keep_previous_seconds: float
    ) -> Row | None:
        """Sign with `new_secret` from now on, and with the secret it replaces for
        `keep_previous_seconds` more (a secret replaced before is forgotten); None if the
        webhook is not there."""
        async with self._engine.begin() as connection:
            return (
                await connection.execute(
                    sa.update(webhooks)
                    .where(webhooks.c.customer_id == customer, webhooks.c.webhook_id == webhook_id)
                    .values(
                        previous_signing_secret=webhooks.c.signing_secret,
                        previous_secret_expire_time=sa.func.now() + _seconds(keep_previous_seconds),
                        signing_secret=new_secret,
                        update_time=sa.func.now(),
                    )
                    .returning(webhooks)
                )
            ).first()

    async def forget_expired_secrets(self) -> int:
        """Drop the replaced secrets no longer signed with; returns how many."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.update(webhooks)
                .where(webhooks.c.previous_secret_expire_time <= sa.func.now())
                .values(previous_signing_secret=None, previous_secret_expire_time=None)
            )
            return int(result.rowcount)

    async def create_test_delivery(
        self,
        customer: str,
        webhook_id: str,
        body: bytes,
        *,
        trace_context: Mapping[str, str],
        lease_token: uuid.UUID,
        lease_seconds: float,
    ) -> Row | None:
        """Queue a TEST delivery (one attempt), already claimed under `lease_token`: the
        caller attempts it now, and a worker does if the caller dies first. None if the
        webhook is not there."""
        async with self._engine.begin() as connection:
            found = (
                await connection.execute(
                    postgresql.insert(webhook_deliveries)
                    .from_select(
                        [
                            "customer_id",
                            "webhook_id",
                            "delivery_id",
                            "message_id",
                            "event_type",
                            "body",
                            "trace_context",
                            "state",
                            "max_attempts",
                            "next_attempt_time",
                            "lease_token",
                            "lease_expire_time",
                        ],
                        sa.select(
                            webhooks.c.customer_id,
                            webhooks.c.webhook_id,
                            _new_id("wd_"),
                            _new_id("msg_"),
                            sa.literal(TEST),
                            sa.literal(body, sa.LargeBinary),
                            sa.literal(dict(trace_context), postgresql.JSONB),
                            sa.literal(PENDING),
                            sa.literal(1, sa.BigInteger),
                            sa.func.now(),
                            sa.literal(lease_token, sa.Uuid),
                            sa.func.now() + _seconds(lease_seconds),
                        ).where(
                            webhooks.c.customer_id == customer,
                            webhooks.c.webhook_id == webhook_id,
                        ),
                    )
                    .returning(
                        webhook_deliveries.c.customer_id,
                        webhook_deliveries.c.webhook_id,
                        webhook_deliveries.c.delivery_id,
                    )
                )
            ).first()
            if found is None:
                return None
            return (
                await connection.execute(
                    _claimed_query().where(
                        webhook_deliveries.c.customer_id == customer,
                        webhook_deliveries.c.webhook_id == webhook_id,
                        webhook_deliveries.c.delivery_id == found.delivery_id,
                    )
                )
            ).one()

    async def claim_deliveries(
        self, limit: int, lease_token: uuid.UUID, lease_seconds: float
    ) -> list[Row]:
        """Lease up to `limit` due deliveries, oldest due first and at most one per webhook,
        skipping webhooks with an attempt in flight: a slow endpoint holds one worker slot,
        never all of them. Rows come with their webhook's URL and secret."""
        d = webhook_deliveries
        busy = d.alias("busy")
        due = (
            sa.select(d.c.customer_id, d.c.webhook_id, d.c.delivery_id)
            .join(
                webhooks,
                sa.and_(
                    webhooks.c.customer_id == d.c.customer_id,
                    webhooks.c.webhook_id == d.c.webhook_id,
                ),
            )
            .where(
                d.c.state.in_(UNDELIVERED),
                d.c.next_attempt_time <= sa.func.now(),
                sa.or_(d.c.lease_expire_time.is_(None), d.c.lease_expire_time <= sa.func.now()),
                sa.or_(sa.not_(webhooks.c.disabled), d.c.event_type == TEST),
                ~sa.exists().where(
                    busy.c.customer_id == d.c.customer_id,
                    busy.c.webhook_id == d.c.webhook_id,
                    busy.c.state.in_(UNDELIVERED),
                    busy.c.lease_expire_time > sa.func.now(),
                ),
            )
            .order_by(d.c.next_attempt_time)
            .limit(limit * 4)
            .with_for_update(of=d, skip_locked=True)
        )
        async with self._engine.begin() as connection:
            chosen: dict[tuple[str, str], str] = {}
            for row in (await connection.execute(due)).all():
                if len(chosen) < limit:
                    chosen.setdefault((row.customer_id, row.webhook_id), row.delivery_id)
            if not chosen:
                return []
            keys = [(c, w, delivery) for (c, w), delivery in chosen.items()]
            await connection.execute(
                sa.update(d)
                .where(sa.tuple_(d.c.customer_id, d.c.webhook_id, d.c.delivery_id).in_(keys))
                .values(
                    lease_token=lease_token,
                    lease_expire_time=sa.func.now() + _seconds(lease_seconds),
                )
            )
            rows = await connection.execute(
                _claimed_query()
                .where(sa.tuple_(d.c.customer_id, d.c.webhook_id, d.c.delivery_id).in_(keys))
                .order_by(d.c.next_attempt_time)
            )
            return list(rows.all())

    async def record_attempt(
        self,
        claimed: Row,
        attempt: AttemptRecord,
        *,
        state: str,
        retry_in_seconds: float | None,
        disable_reason: str | None,
    ) -> bool:
        """Record one attempt at a claimed delivery and the delivery's new state, if the
        claim still holds (False: the lease ended and another worker owns the row now).
        `disable_reason` disables the webhook too, dropping its other undelivered
        deliveries."""
        d = webhook_deliveries
        key = (
            d.c.customer_id == claimed.customer_id,
            d.c.webhook_id == claimed.webhook_id,
            d.c.delivery_id == claimed.delivery_id,
        )
        done = state in (SUCCEEDED, FAILED)
        async with self._engine.begin() as connection:
            updated = (
                await connection.execute(
                    sa.update(d)
                    .where(*key, d.c.lease_token == claimed.lease_token)
                    .values(
                        attempt_count=d.c.attempt_count + 1,
                        state=state,
                        last_response_code=attempt.response_code,
                        last_error=attempt.error or None,
                        next_attempt_time=None
                        if retry_in_seconds is None
                        else sa.func.now() + _seconds(retry_in_seconds),
                        complete_time=sa.func.now() if done else None,
                        lease_token=None,
                        lease_expire_time=None,
                    )
                    .returning(d.c.attempt_count)
                )
            ).first()
            if updated is None:
                return False
            await connection.execute(
                sa.insert(webhook_delivery_attempts).values(
                    customer_id=claimed.customer_id,
                    webhook_id=claimed.webhook_id,
                    delivery_id=claimed.delivery_id,
                    attempt_number=updated.attempt_count,
                    start_time=attempt.start_time,
                    response_code=attempt.response_code or None,
                    latency_seconds=attempt.latency_seconds,
                    response_body=attempt.response_body,
                    error=attempt.error,
                )
            )
            if disable_reason is not None:
                disabled = await connection.execute(
                    sa.update(webhooks)
                    .where(
                        webhooks.c.customer_id == claimed.customer_id,
                        webhooks.c.webhook_id == claimed.webhook_id,
                        sa.not_(webhooks.c.disabled),
                    )
                    .values(
                        disabled=True, disabled_reason=disable_reason, update_time=sa.func.now()
                    )
                    .returning(webhooks.c.display_name, webhooks.c.url)
                )
                await _drop_undelivered(
                    connection,
                    claimed.customer_id,
                    claimed.webhook_id,
                    f"the webhook was disabled: {disable_reason}",
                )
                newly_disabled = disabled.first()
                if newly_disabled is not None:
                    await queue_webhook_disabled_alert(
                        connection,
                        claimed.customer_id,
                        claimed.webhook_id,
                        display_name=newly_disabled.display_name,
                        url=newly_disabled.url,
                        reason=disable_reason,
                        max_attempts=int(claimed.max_attempts),
                    )
            return True

    async def delete_expired_deliveries(self, keep_days: float, limit: int) -> int:
        """Delete up to `limit` deliveries completed more than `keep_days` ago (with their
        attempts); returns how many."""
        d = webhook_deliveries
        expired = (
            sa.select(d.c.customer_id, d.c.webhook_id, d.c.delivery_id)
            .where(d.c.complete_time < sa.func.now() - _seconds(keep_days * 86400))
            .limit(limit)
        )
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.delete(d)
                .where(sa.tuple_(d.c.customer_id, d.c.webhook_id, d.c.delivery_id).in_(expired))
                .returning(d.c.customer_id)
            )
            removed = list(result.scalars())
            await record_purges(
                connection,
                "reports",
                removed,
                "webhooks/-/deliveries",
                f"completed more than {keep_days:g} days ago",
            )
            return len(removed)

    async def next_delivery_due_in(self) -> float | None:
        """Seconds until the next delivery is due (0 if one is); None if none waits."""
        d = webhook_deliveries
        async with self._reads.connect() as connection:
            due = (
                await connection.execute(
                    sa.select(
                        sa.func.extract(
                            "epoch",
                            sa.func.min(
                                sa.func.greatest(
                                    d.c.next_attempt_time,
                                    sa.func.coalesce(d.c.lease_expire_time, d.c.next_attempt_time),
                                )
                            )
                            - sa.func.now(),
                        )
                    ).where(d.c.state.in_(UNDELIVERED))
                )
            ).scalar()
        return None if due is None else max(float(due), 0.0)

    async def get_delivery(
        self, customer: str, webhook_id: str, delivery_id: str
    ) -> StoredDelivery | None:
        d = webhook_deliveries
        async with self._reads.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(d).where(
                        d.c.customer_id == customer,
                        d.c.webhook_id == webhook_id,
                        d.c.delivery_id == delivery_id,
                    )
                )
            ).first()
            if row is None:
                return None
            return (await _with_attempts(connection, [row]))[0]

    async def redeliver(
        self,
        customer: str,
        webhook_id: str,
        delivery_id: str,
        *,
        trace_context: Mapping[str, str],
    ) -> Redelivery:
        """Queue one more attempt at a delivery in a final state of an enabled webhook, due
        now and in the trace of `trace_context`; what was found says why not otherwise."""
        d = webhook_deliveries
        key = (
            d.c.customer_id == customer,
            d.c.webhook_id == webhook_id,
            d.c.delivery_id == delivery_id,
        )
        async with self._engine.begin() as connection:
            found = (
                await connection.execute(
                    sa.select(d, webhooks.c.disabled)
                    .join(
                        webhooks,
                        sa.and_(
                            webhooks.c.customer_id == d.c.customer_id,
                            webhooks.c.webhook_id == d.c.webhook_id,
                        ),
                    )
                    .where(*key)
                    .with_for_update(of=d)
                )
            ).first()
            if found is None:
                return Redelivery(None, queued=False)
            if found.state in UNDELIVERED or found.disabled:
                (stored,) = await _with_attempts(connection, [found])
                return Redelivery(stored, queued=False)
            row = (
                await connection.execute(
                    sa.update(d)
                    .where(*key)
                    .values(
                        state=PENDING,
                        # One attempt more, not retried (see `redelivery_count`).
                        max_attempts=d.c.attempt_count + 1,
                        redelivery_count=d.c.redelivery_count + 1,
                        next_attempt_time=sa.func.now(),
                        complete_time=None,
                        lease_token=None,
                        lease_expire_time=None,
                        trace_context=dict(trace_context),
                    )
                    .returning(d)
                )
            ).one()
            (stored,) = await _with_attempts(connection, [row])
            return Redelivery(stored, queued=True)

    async def list_deliveries(
        self,
        customer: str,
        webhook_id: str,
        filter_text: str,
        limit: int,
        after: Sequence[str] | None,
    ) -> list[StoredDelivery]:
        """Newest first; `after` is the (create_time, delivery_id) the last page ended on."""
        d = webhook_deliveries
        query = (
            sa.select(d)
            .where(
                d.c.customer_id == customer,
                d.c.webhook_id == webhook_id,
                parse_filter(filter_text, DELIVERY_FILTERS),
            )
            .order_by(d.c.create_time.desc(), d.c.delivery_id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(
                after_position(
                    (d.c.create_time, d.c.delivery_id),
                    (dt.datetime.fromisoformat(after[0]), after[1]),
                    descending=True,
                )
            )
        async with self._reads.connect() as connection:
            rows = list((await connection.execute(query)).all())
            return await _with_attempts(connection, rows)

    async def record_drift_events(
        self,
        customer: str,
        batch_id: str,
        events: Sequence[DriftEventState],
        *,
        max_attempts: int,
        trace_context: Mapping[str, str],
    ) -> tuple[int, int]:
        """Record a batch of drift event states once per batch id, each event's change once
        per version, and queue a delivery of each change to every enabled webhook subscribed
        to it; returns (events recorded, deliveries queued), the first call's counts for a
        batch recorded already."""
        async with self._engine.begin() as connection:
            # The batch row comes first: of two calls with one batch, the second waits on its
            # key here and then reads the first's counts.
            claimed = await connection.execute(
                postgresql.insert(drift_event_batches)
                .values(
                    customer_id=customer,
                    batch_id=batch_id,
                    events_recorded=len(events),
                    deliveries_queued=0,
                    record_time=sa.func.now(),
                )
                .on_conflict_do_nothing()
                .returning(drift_event_batches.c.batch_id)
            )
            if claimed.first() is None:
                stored = (
                    await connection.execute(
                        sa.select(
                            drift_event_batches.c.events_recorded,
                            drift_event_batches.c.deliveries_queued,
                        ).where(
                            drift_event_batches.c.customer_id == customer,
                            drift_event_batches.c.batch_id == batch_id,
                        )
                    )
                ).one()
                return stored.events_recorded, stored.deliveries_queued
            # Events locked in one order, so batches sharing events cannot deadlock; the
            # versions of one event in the order they happened.
            queued = 0
            for event in sorted(events, key=lambda e: (e.event_id, e.version)):
                queued += await _record_drift_event(
                    connection, customer, batch_id, event, max_attempts, trace_context
                )
            await connection.execute(
                sa.update(drift_event_batches)
                .where(
                    drift_event_batches.c.customer_id == customer,
                    drift_event_batches.c.batch_id == batch_id,
                )
                .values(deliveries_queued=queued)
            )
            return len(events), queued


async def _record_drift_event(
    connection: AsyncConnection,
    customer: str,
    batch_id: str,
    event: DriftEventState,
    max_attempts: int,
    trace_context: Mapping[str, str],
) -> int:
    """Store `event` as the latest state of its event unless a newer one is stored, with the
    change it makes and its deliveries; returns how many deliveries it queued. The event's
    row stays locked until the transaction ends."""
    state = {
        "version": event.version,
        "payer": event.payer,
        "code_group": event.code_group,
        "metric": event.metric,
        "severity": event.severity,
        "active": event.active,
        "summary": event.summary,
        "dollars_at_stake_cents": event.dollars_at_stake_cents,
        "event": event.event,
        "update_time": sa.func.now(),
    }
    key = (drift_events.c.customer_id == customer, drift_events.c.event_id == event.event_id)
    opened = await connection.execute(
        postgresql.insert(drift_events)
        .values(
            customer_id=customer,
            event_id=event.event_id,
            first_recorded_time=sa.func.now(),
            **state,
        )
        .on_conflict_do_nothing()
        .returning(drift_events.c.event_id)
    )
    stored = None
    if opened.first() is None:
        stored = (
            await connection.execute(
                sa.select(drift_events.c.version, drift_events.c.severity, drift_events.c.active)
                .where(*key)
                .with_for_update()
            )
        ).one()
    change = drift_event_change(stored, event)
    if change is None:
        return 0
    if stored is not None:
        await connection.execute(sa.update(drift_events).where(*key).values(**state))
    recorded = await connection.execute(
        postgresql.insert(drift_event_changes)
        .values(
            customer_id=customer,
            event_id=event.event_id,
            version=event.version,
            change=change.change,
            severity=event.severity,
            escalated=change.escalated,
            batch_id=batch_id,
            record_time=sa.func.now(),
        )
        .on_conflict_do_nothing()
        .returning(drift_event_changes.c.change_id)
    )
    change_id = recorded.scalar()
    if change_id is None:
        return 0
    await queue_drift_event_alerts(
        connection,
        customer,
        change_id,
        event,
        change,
        max_attempts=max_attempts,
        trace_context=trace_context,
    )
    body = webhook_body(change.change, event.version, event.data)
    return await queue_deliveries(
        connection, customer, change.change, body, max_attempts, trace_context, change_id=change_id
    )


async def queue_deliveries(
    connection: AsyncConnection,
    customer: str,
    event_type: str,
    body: bytes,
    max_attempts: int,
    trace_context: Mapping[str, str],
    *,
    change_id: int | None = None,
) -> int:
    """Queue `body` for every enabled webhook of `customer` subscribed to `event_type`, once
    per webhook and change (`change_id`); returns how many deliveries it queued."""
    subscribed = sa.select(
        webhooks.c.customer_id,
        webhooks.c.webhook_id,
        _new_id("wd_"),
        _new_id("msg_"),
        sa.literal(event_type),
        sa.literal(change_id, sa.BigInteger),
        sa.literal(body, sa.LargeBinary),
        sa.literal(dict(trace_context), postgresql.JSONB),
        sa.literal(PENDING),
        sa.literal(max_attempts, sa.BigInteger),
        sa.func.now(),
    ).where(
        webhooks.c.customer_id == customer,
        sa.not_(webhooks.c.disabled),
        webhooks.c.event_types.any(event_type),
    )
    queued = await connection.execute(
        postgresql.insert(webhook_deliveries)
        .from_select(
            [
                "customer_id",
                "webhook_id",
                "delivery_id",
                "message_id",
                "event_type",
                "change_id",
                "body",
                "trace_context",
                "state",
                "max_attempts",
                "next_attempt_time",
            ],
            subscribed,
        )
        .on_conflict_do_nothing(index_elements=["customer_id", "webhook_id", "change_id"])
        .returning(webhook_deliveries.c.delivery_id)
    )
    return len(queued.all())


@dataclass(frozen=True)
class AttemptRecord:
    """One try at sending a delivery, as recorded."""

    start_time: dt.datetime
    response_code: int
    latency_seconds: float
    response_body: str
    error: str


@dataclass(frozen=True)
class StoredDelivery:
    """A delivery's row and its attempts, oldest first."""

    row: Row
    attempts: list[Row]


@dataclass(frozen=True)
class Redelivery:
    """What asking to send a delivery again found: the delivery (None: it is not there) and
    whether the attempt was queued (if not, the delivery is in flight or its webhook off)."""

    delivery: StoredDelivery | None
    queued: bool


def _seconds(value: float) -> Any:
    return sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.literal(value, sa.Float))


def _claimed_query() -> sa.Select[Any]:
    """A delivery with what sending it needs: its webhook's URL and secret, and the secret
    a rotation replaced while that is still valid (else NULL)."""
    d = webhook_deliveries
    previous_secret = sa.case(
        (
            webhooks.c.previous_secret_expire_time > sa.func.now(),
            webhooks.c.previous_signing_secret,
        ),
        else_=sa.null(),
    )
    return sa.select(
        d,
        webhooks.c.url,
        webhooks.c.signing_secret,
        previous_secret.label("previous_signing_secret"),
    ).join(
        webhooks,
        sa.and_(webhooks.c.customer_id == d.c.customer_id, webhooks.c.webhook_id == d.c.webhook_id),
    )


async def _drop_undelivered(
    connection: AsyncConnection, customer: str, webhook_id: str, reason: str
) -> None:
    """Fail a webhook's undelivered deliveries not in flight (tests aside): events that
    occur while a webhook is disabled are not delivered later."""
    d = webhook_deliveries
    await connection.execute(
        sa.update(d)
        .where(
            d.c.customer_id == customer,
            d.c.webhook_id == webhook_id,
            d.c.state.in_(UNDELIVERED),
            d.c.event_type != TEST,
            sa.or_(d.c.lease_expire_time.is_(None), d.c.lease_expire_time <= sa.func.now()),
        )
        .values(
            state=FAILED,
            last_error=reason,
            next_attempt_time=None,
            complete_time=sa.func.now(),
        )
    )


async def _with_attempts(connection: AsyncConnection, rows: list[Row]) -> list[StoredDelivery]:
    if not rows:
        return []
    a = webhook_delivery_attempts
    keys = [(r.customer_id, r.webhook_id, r.delivery_id) for r in rows]
    found: dict[tuple[str, str, str], list[Row]] = {key: [] for key in keys}
    attempts = await connection.execute(
        sa.select(a)
        .where(sa.tuple_(a.c.customer_id, a.c.webhook_id, a.c.delivery_id).in_(keys))
        .order_by(a.c.attempt_number)
    )
    for attempt in attempts.all():
        found[(attempt.customer_id, attempt.webhook_id, attempt.delivery_id)].append(attempt)
    return [StoredDelivery(row, found[key]) for row, key in zip(rows, keys, strict=True)]


def _new_id(prefix: str) -> Any:
    """A random id made by the database, e.g. `wd_3f2a…` (32 hex digits)."""
    return sa.literal(prefix) + sa.func.replace(
        sa.cast(sa.func.gen_random_uuid(), sa.Text), "-", ""
    )

"""Reports' tables (schema `reports`) and the queries the service runs on them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime.filtering import FilterField, parse_filter
from runtime.pagination import after_position

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
SEVERITY_RANKS = {"LOW": 1, "MEDIUM": 2, "HIGH": 3}

WEBHOOK_FILTERS = {
    "disabled": FilterField(webhooks.c.disabled, "bool"),
    "event_types": FilterField(webhooks.c.event_types, "text_array"),
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
        async with self._engine.connect() as connection:
            result = await connection.execute(
                sa.select(webhooks).where(
                    webhooks.c.customer_id == customer, webhooks.c.webhook_id == webhook_id
                )
            )
            return result.first()

    async def delete_webhook(self, customer: str, webhook_id: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                sa.delete(webhooks).where(
                    webhooks.c.customer_id == customer, webhooks.c.webhook_id == webhook_id
                )
            )
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
        async with self._engine.connect() as connection:
            return list((await connection.execute(query)).all())

    async def record_drift_events(
        self, customer: str, batch_id: str, events: Sequence[DriftEventState]
    ) -> tuple[int, int]:
        """Record a batch of drift event states once per batch id, each event's change once
        per version; returns (events recorded, deliveries queued), the first call's counts
        for a batch recorded already."""
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
            for event in sorted(events, key=lambda e: (e.event_id, e.version)):
                await _record_drift_event(connection, customer, batch_id, event)
            return len(events), 0


async def _record_drift_event(
    connection: AsyncConnection, customer: str, batch_id: str, event: DriftEventState
) -> None:
    """Store `event` as the latest state of its event unless a newer one is stored, with the
    change it makes; the event's row stays locked until the transaction ends."""
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
        return
    if stored is not None:
        await connection.execute(sa.update(drift_events).where(*key).values(**state))
    await connection.execute(
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
    )

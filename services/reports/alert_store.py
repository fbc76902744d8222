"""Alert policies and alerts (schema `reports`): the queries of the API and the alert
workers, and the queueing that runs inside the transactions recording what is alerted.

An alert is queued in the transaction that records its cause (a drift event change, a
webhook disabled), so a crash never loses or doubles one; workers claim due alerts with
`FOR UPDATE SKIP LOCKED` and a lease, as webhook deliveries are claimed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime.audit import record_purges
from runtime.db import for_reads
from runtime.filtering import FilterField, parse_filter
from runtime.pagination import after_position
from services.reports.alert_policy import (
    DAILY_DIGEST,
    DRIFT_EVENT_CLOSED,
    PolicyValues,
    is_alerted_change,
    next_digest_time,
    severity_rank,
)

if TYPE_CHECKING:
    from services.reports.store import DriftEventChange, DriftEventState

metadata = sa.MetaData(schema="reports")

alert_policies = sa.Table(
    "alert_policies",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("email_recipients", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("slack_webhook_url", sa.Text),
    sa.Column("minimum_severity", sa.Text, nullable=False),
    sa.Column("suppression_window_seconds", sa.BigInteger, nullable=False),
    sa.Column("delivery_mode", sa.Text, nullable=False),
    sa.Column("digest_hour", sa.BigInteger, nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("alert_when_ended", sa.Boolean, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("alert_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("recipients", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("slack_webhook_url", sa.Text),
    sa.Column("change_id", sa.BigInteger),
    sa.Column("digest_time", sa.DateTime(timezone=True)),
    sa.Column("webhook_id", sa.Text),
    sa.Column("detail", postgresql.JSONB),
    sa.Column("subject", sa.Text, nullable=False),
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
)

alert_items = sa.Table(
    "alert_items",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("alert_id", sa.Text, primary_key=True),
    sa.Column("change_id", sa.BigInteger, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("escalated", sa.Boolean, nullable=False),
    sa.Column("severity_rank", sa.BigInteger, nullable=False),
    sa.Column("dollars_at_stake_cents", sa.BigInteger, nullable=False),
    sa.Column("event", sa.LargeBinary, nullable=False),
)

alert_attempts = sa.Table(
    "alert_attempts",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("alert_id", sa.Text, primary_key=True),
    sa.Column("attempt_number", sa.BigInteger, primary_key=True),
    sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("response_code", sa.BigInteger),
    sa.Column("latency_seconds", sa.Float, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
)

alert_suppressions = sa.Table(
    "alert_suppressions",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("payer", sa.Text, primary_key=True),
    sa.Column("code_group", sa.Text, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("severity_rank", sa.BigInteger, nullable=False),
    sa.Column("alert_time", sa.DateTime(timezone=True), nullable=False),
)

# Kinds, channels and states, as the Alert enums of the contract name them.
DRIFT_EVENT, DIGEST, WEBHOOK_DISABLED = "DRIFT_EVENT", "DIGEST", "WEBHOOK_DISABLED"
REPORT_READY = "REPORT_READY"
EMAIL, SLACK = "EMAIL", "SLACK"
PENDING, SENT, RETRYING, FAILED = "PENDING", "SENT", "RETRYING", "FAILED"
UNSENT = (PENDING, RETRYING)
# How long after an earlier alert's next attempt one held behind it looks again.
HOLD_SECONDS = 1.0
# The changes a digest (or an alert's `drift_events`) lists; the rest are counted.
LISTED_CHANGES = 25

ALERT_FILTERS = {
    "state": FilterField(alerts.c.state, "enum", {s: s for s in (PENDING, SENT, RETRYING, FAILED)}),
    "channel": FilterField(alerts.c.channel, "enum", {c: c for c in (EMAIL, SLACK)}),
    "kind": FilterField(
        alerts.c.kind,
        "enum",
        {k: k for k in (DRIFT_EVENT, DIGEST, WEBHOOK_DISABLED, REPORT_READY)},
    ),
    "create_time": FilterField(alerts.c.create_time, "timestamp"),
}


@dataclass(frozen=True)
class StoredPolicy:
    """A customer's policy; `update_time` is None while it holds the defaults."""

    values: PolicyValues
    update_time: dt.datetime | None

    @property
    def etag(self) -> str:
        return policy_etag(self.values)


def policy_etag(values: PolicyValues) -> str:
    canonical = json.dumps(dataclasses.asdict(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertAttemptRecord:
    """One try at sending an alert, as recorded: its SMTP reply code or HTTP status (0: no
    answer) and what went wrong ('' when it was sent)."""

    start_time: dt.datetime
    response_code: int
    latency_seconds: float
    error: str


@dataclass(frozen=True)
class StoredAlert:
    """An alert's row, the drift events it lists and counts, and its attempts (oldest
    first)."""

    row: Row
    event_ids: list[str]
    change_count: int
    attempts: list[Row]


@dataclass(frozen=True)
class AlertContent:
    """What a claimed alert's message is made of: the changes it lists (serialized
    DriftEvents with whether each escalated, most severe first) and how many it holds."""

    listed: list[tuple[bytes, bool]]
    change_count: int


class AlertStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = for_reads(engine)

    async def get_policy(self, customer: str) -> StoredPolicy:
        async with self._reads.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(alert_policies).where(alert_policies.c.customer_id == customer)
                )
            ).first()
        return _stored_policy(row)

    async def put_policy(
        self, customer: str, values: PolicyValues, expected_etag: str
    ) -> StoredPolicy | None:
        """Store `values`; None when `expected_etag` is given and no longer current."""
        columns = {
            "email_recipients": list(values.email_recipients),
            "slack_webhook_url": values.slack_webhook_url or None,
            "minimum_severity": values.minimum_severity,
            "suppression_window_seconds": values.suppression_window_seconds,
            "delivery_mode": values.delivery_mode,
            "digest_hour": values.digest_hour,
            "time_zone": values.time_zone,
            "disabled": values.disabled,
            "alert_when_ended": values.alert_when_ended,
            "update_time": sa.func.now(),
        }
        p = alert_policies
        async with self._engine.begin() as connection:
            current = (
                await connection.execute(
                    sa.select(p).where(p.c.customer_id == customer).with_for_update()
                )
            ).first()
            if expected_etag and expected_etag != _stored_policy(current).etag:
                return None
            insert = postgresql.insert(p).values(customer_id=customer, **columns)
            stored = await connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[p.c.customer_id],
                    set_={name: insert.excluded[name] for name in columns},
                ).returning(p)
            )
            return _stored_policy(stored.one())

    async def claim_alerts(
        self,
        limit: int,
        lease_token: uuid.UUID,
        lease_seconds: float,
        now: dt.datetime | None = None,
    ) -> list[Row]:
        """Lease up to `limit` alerts due at `now` (default: the database's clock), oldest
        due first."""
        a = alerts
        due = (
            sa.select(a.c.customer_id, a.c.alert_id)
            .where(
                a.c.state.in_(UNSENT),
                a.c.next_attempt_time <= _now(now),
                sa.or_(a.c.lease_expire_time.is_(None), a.c.lease_expire_time <= sa.func.now()),
            )
            .order_by(a.c.next_attempt_time)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._engine.begin() as connection:
            claimed = await connection.execute(
                sa.update(a)
                .where(sa.tuple_(a.c.customer_id, a.c.alert_id).in_(due))
                .values(
                    lease_token=lease_token,
                    lease_expire_time=sa.func.now() + _seconds(lease_seconds),
                )
                .returning(a)
            )
            return list(claimed.all())

    async def hold_behind_earlier(self, claimed: Row, now: dt.datetime | None = None) -> bool:
        """Postpone a claimed drift event alert while an earlier alert on its channel about
        the same event is still to be sent (an outage delays it, retrying): a person hears
        of a drift's opening before its escalation or end. Whether it was postponed (until
        the earlier one's next attempt, then it looks again)."""
        a, mine, theirs = alerts, alert_items.alias("mine"), alert_items.alias("theirs")
        earlier = alerts.alias("earlier")
        due = (
            sa.select(sa.func.max(earlier.c.next_attempt_time))
            .select_from(
                mine.join(
                    theirs,
                    sa.and_(
                        theirs.c.customer_id == mine.c.customer_id,
                        theirs.c.event_id == mine.c.event_id,
                        theirs.c.change_id < mine.c.change_id,
                    ),
                ).join(
                    earlier,
                    sa.and_(
                        earlier.c.customer_id == theirs.c.customer_id,
                        earlier.c.alert_id == theirs.c.alert_id,
                    ),
                )
            )
            .where(
                mine.c.customer_id == claimed.customer_id,
                mine.c.alert_id == claimed.alert_id,
                earlier.c.channel == claimed.channel,
                earlier.c.kind == DRIFT_EVENT,
                earlier.c.state.in_(UNSENT),
            )
            .scalar_subquery()
        )
        async with self._engine.begin() as connection:
            held = await connection.execute(
                sa.update(a)
                .where(
                    a.c.customer_id == claimed.customer_id,
                    a.c.alert_id == claimed.alert_id,
                    a.c.lease_token == claimed.lease_token,
                    due.is_not(None),
                )
                .values(
                    next_attempt_time=sa.func.greatest(due, _now(now)) + _seconds(HOLD_SECONDS),
                    lease_token=None,
                    lease_expire_time=None,
                )
                .returning(a.c.alert_id)
            )
            return held.first() is not None

    async def alert_content(self, claimed: Row) -> AlertContent:
        """The changes `claimed` tells of, the most severe (then costly) first."""
        i = alert_items
        key = (i.c.customer_id == claimed.customer_id, i.c.alert_id == claimed.alert_id)
        async with self._reads.connect() as connection:
            listed = await connection.execute(
                sa.select(i.c.event, i.c.escalated)
                .where(*key)
                .order_by(
                    i.c.severity_rank.desc(), i.c.dollars_at_stake_cents.desc(), i.c.change_id
                )
                .limit(LISTED_CHANGES)
            )
            rows = [(row.event, row.escalated) for row in listed.all()]
            count = (
                await connection.execute(sa.select(sa.func.count()).select_from(i).where(*key))
            ).scalar_one()
        return AlertContent(rows, int(count))

    async def record_attempt(
        self,
        claimed: Row,
        attempt: AlertAttemptRecord,
        *,
        state: str,
        subject: str,
        retry_in_seconds: float | None,
        now: dt.datetime | None = None,
    ) -> bool:
        """Record an attempt at a claimed alert and its new state; False (and nothing
        recorded) if the lease was lost meanwhile."""
        a = alerts
        done = state in (SENT, FAILED)
        async with self._engine.begin() as connection:
            updated = (
                await connection.execute(
                    sa.update(a)
                    .where(
                        a.c.customer_id == claimed.customer_id,
                        a.c.alert_id == claimed.alert_id,
                        a.c.lease_token == claimed.lease_token,
                    )
                    .values(
                        attempt_count=a.c.attempt_count + 1,
                        state=state,
                        subject=subject,
                        last_response_code=attempt.response_code or None,
                        last_error=attempt.error or None,
                        next_attempt_time=None
                        if retry_in_seconds is None
                        else _now(now) + _seconds(retry_in_seconds),
                        complete_time=_now(now) if done else None,
                        lease_token=None,
                        lease_expire_time=None,
                    )
                    .returning(a.c.attempt_count)
                )
            ).first()
            if updated is None:
                return False
            await connection.execute(
                sa.insert(alert_attempts).values(
                    customer_id=claimed.customer_id,
                    alert_id=claimed.alert_id,
                    attempt_number=updated.attempt_count,
                    start_time=attempt.start_time,
                    response_code=attempt.response_code or None,
                    latency_seconds=attempt.latency_seconds,
                    error=attempt.error,
                )
            )
            return True

    async def next_alert_due_in(self, now: dt.datetime | None = None) -> float | None:
        """Seconds until the next alert is due (0 if one is); None if none waits."""
        a = alerts
        async with self._reads.connect() as connection:
            due = (
                await connection.execute(
                    sa.select(
                        sa.func.extract("epoch", sa.func.min(a.c.next_attempt_time) - _now(now))
                    ).where(a.c.state.in_(UNSENT))
                )
            ).scalar()
        return None if due is None else max(float(due), 0.0)

    async def delete_expired(self, keep_days: float, limit: int) -> int:
        """Delete up to `limit` alerts completed more than `keep_days` ago (with their items
        and attempts), and suppressions older than any window; returns how many alerts."""
        a = alerts
        expired = (
            sa.select(a.c.customer_id, a.c.alert_id)
            .where(a.c.complete_time < sa.func.now() - _seconds(keep_days * 86400))
            .limit(limit)
        )
        s = alert_suppressions
        async with self._engine.begin() as connection:
            deleted = await connection.execute(
                sa.delete(a)
                .where(sa.tuple_(a.c.customer_id, a.c.alert_id).in_(expired))
                .returning(a.c.customer_id)
            )
            removed = list(deleted.scalars())
            await record_purges(
                connection,
                "reports",
                removed,
                "alerts",
                f"completed more than {keep_days:g} days ago",
            )
            await connection.execute(
                sa.delete(s).where(s.c.alert_time < sa.func.now() - _seconds(91 * 86400))
            )
            return len(removed)

    async def get_alert(self, customer: str, alert_id: str) -> StoredAlert | None:
        a = alerts
        async with self._reads.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(a).where(a.c.customer_id == customer, a.c.alert_id == alert_id)
                )
            ).first()
            if row is None:
                return None
            return (await _with_details(connection, [row]))[0]

    async def list_alerts(
        self, customer: str, filter_text: str, limit: int, after: Sequence[str] | None
    ) -> list[StoredAlert]:
        """Newest first; `after` is the (create_time, alert_id) the last page ended on."""
        a = alerts
        query = (
            sa.select(a)
            .where(a.c.customer_id == customer, parse_filter(filter_text, ALERT_FILTERS))
            .order_by(a.c.create_time.desc(), a.c.alert_id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(
                after_position(
                    (a.c.create_time, a.c.alert_id),
                    (dt.datetime.fromisoformat(after[0]), after[1]),
                    descending=True,
                )
            )
        async with self._reads.connect() as connection:
            rows = list((await connection.execute(query)).all())
            return await _with_details(connection, rows)


async def queue_drift_event_alerts(
    connection: AsyncConnection,
    customer: str,
    change_id: int,
    event: DriftEventState,
    change: DriftEventChange,
    *,
    max_attempts: int,
    trace_context: Mapping[str, str],
) -> int:
    """Queue the alerts the customer's policy asks for about one recorded change, in the
    transaction that records it: an event opened or escalated at or above the minimum
    severity, unless its payer × code group × metric was alerted within the window at the
    same or a higher severity; and, when the policy asks for it, an event alerted before
    that ended. Immediate alerts are one per channel; in digest mode the change joins the
    channels' next digest. Returns how many alerts it queued."""
    ended = change.change == DRIFT_EVENT_CLOSED
    if not ended and not is_alerted_change(change.change, change.escalated, event.active):
        return 0
    found = (
        await connection.execute(
            sa.select(alert_policies, sa.func.now().label("now")).where(
                alert_policies.c.customer_id == customer
            )
        )
    ).first()
    if found is None:
        return 0
    policy = _stored_policy(found).values
    rank = severity_rank(event.severity)
    if not policy.alerts_anyone:
        return 0
    if ended:
        if not policy.alert_when_ended or not await _alerted_before(
            connection, customer, event.event_id
        ):
            return 0
    elif rank < severity_rank(policy.minimum_severity) or not await _claim_suppression(
        connection, customer, event, rank, policy
    ):
        return 0
    digest_time = (
        next_digest_time(found.now, policy.digest_hour, policy.time_zone)
        if policy.delivery_mode == DAILY_DIGEST
        else None
    )
    queued = await _queue(
        connection,
        customer,
        policy,
        kind=DRIFT_EVENT if digest_time is None else DIGEST,
        max_attempts=max_attempts,
        trace_context=trace_context,
        change_id=change_id if digest_time is None else None,
        digest_time=digest_time,
        detail=None if digest_time is None else {"time_zone": policy.time_zone},
    )
    if queued:
        await connection.execute(
            postgresql.insert(alert_items)
            .values(
                [
                    {
                        "customer_id": customer,
                        "alert_id": alert_id,
                        "change_id": change_id,
                        "event_id": event.event_id,
                        "change": change.change,
                        "escalated": change.escalated,
                        "severity_rank": rank,
                        "dollars_at_stake_cents": event.dollars_at_stake_cents,
                        "event": event.event,
                    }
                    for alert_id in queued
                ]
            )
            .on_conflict_do_nothing()
        )
    return len(queued) if digest_time is None else 0


async def queue_webhook_disabled_alert(
    connection: AsyncConnection,
    customer: str,
    webhook_id: str,
    *,
    display_name: str,
    url: str,
    reason: str,
    max_attempts: int,
) -> int:
    """Queue, in the transaction that disables a webhook, an alert on each of the policy's
    channels saying so: at once, whatever the policy's severity, window and mode."""
    found = (
        await connection.execute(
            sa.select(alert_policies).where(alert_policies.c.customer_id == customer)
        )
    ).first()
    if found is None:
        return 0
    policy = _stored_policy(found).values
    if not policy.alerts_anyone:
        return 0
    detail = {"reason": reason, "display_name": display_name, "host": urlsplit(url).hostname}
    queued = await _queue(
        connection,
        customer,
        policy,
        kind=WEBHOOK_DISABLED,
        max_attempts=max_attempts,
        trace_context={},
        webhook_id=webhook_id,
        detail=detail,
    )
    return len(queued)


async def queue_report_ready_email(
    connection: AsyncConnection,
    customer: str,
    recipients: Sequence[str],
    *,
    detail: Mapping[str, Any],
    max_attempts: int,
) -> int:
    """Queue, in the transaction that finishes a scheduled report, one email telling the
    schedule's recipients it is ready (`detail`: what to name and link)."""
    if not recipients:
        return 0
    queued = await _queue(
        connection,
        customer,
        PolicyValues(email_recipients=tuple(recipients)),
        kind=REPORT_READY,
        max_attempts=max_attempts,
        trace_context={},
        detail=detail,
    )
    return len(queued)


async def _alerted_before(connection: AsyncConnection, customer: str, event_id: str) -> bool:
    """Whether an alert (or a digest) told of the event's opening or escalation."""
    i = alert_items
    return bool(
        await connection.scalar(
            sa.select(
                sa.exists().where(
                    i.c.customer_id == customer,
                    i.c.event_id == event_id,
                    i.c.change != DRIFT_EVENT_CLOSED,
                )
            )
        )
    )


async def _claim_suppression(
    connection: AsyncConnection,
    customer: str,
    event: DriftEventState,
    rank: int,
    policy: PolicyValues,
) -> bool:
    """Whether this payer × code group × metric may be alerted now (not alerted within the
    window at this severity or above); if so, it counts as alerted from now."""
    s = alert_suppressions
    insert = postgresql.insert(s).values(
        customer_id=customer,
        payer=event.payer,
        code_group=event.code_group,
        metric=event.metric,
        severity_rank=rank,
        alert_time=sa.func.now(),
    )
    claimed = await connection.execute(
        insert.on_conflict_do_update(
            index_elements=[s.c.customer_id, s.c.payer, s.c.code_group, s.c.metric],
            set_={"severity_rank": insert.excluded.severity_rank, "alert_time": sa.func.now()},
            where=sa.or_(
                s.c.alert_time <= sa.func.now() - _seconds(policy.suppression_window_seconds),
                s.c.severity_rank < insert.excluded.severity_rank,
            ),
        ).returning(s.c.customer_id)
    )
    return claimed.first() is not None


async def _queue(
    connection: AsyncConnection,
    customer: str,
    policy: PolicyValues,
    *,
    kind: str,
    max_attempts: int,
    trace_context: Mapping[str, str],
    change_id: int | None = None,
    digest_time: dt.datetime | None = None,
    webhook_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> list[str]:
    """An alert per channel of `policy`; a digest's rows are found or made (and take the
    policy's current recipients), and only while no attempt has begun. Returns the ids."""
    channels: list[tuple[str, list[str], str | None]] = []
    if policy.email_recipients:
        channels.append((EMAIL, list(policy.email_recipients), None))
    if policy.slack_webhook_url:
        channels.append((SLACK, [], policy.slack_webhook_url))
    a = alerts
    insert = postgresql.insert(a).values(
        [
            {
                "customer_id": customer,
                "alert_id": "al_" + uuid.uuid4().hex,
                "kind": kind,
                "channel": channel,
                "recipients": recipients,
                "slack_webhook_url": slack_url,
                "change_id": change_id,
                "digest_time": digest_time,
                "webhook_id": webhook_id,
                "detail": detail,
                "subject": "",
                "trace_context": dict(trace_context),
                "state": PENDING,
                "attempt_count": 0,
                "max_attempts": max_attempts,
                "next_attempt_time": digest_time or sa.func.now(),
                "create_time": sa.func.now(),
            }
            for channel, recipients, slack_url in channels
        ]
    )
    if digest_time is not None:
        statement = insert.on_conflict_do_update(
            index_elements=[a.c.customer_id, a.c.channel, a.c.digest_time],
            set_={
                "recipients": insert.excluded.recipients,
                "slack_webhook_url": insert.excluded.slack_webhook_url,
            },
            where=sa.and_(a.c.state == PENDING, a.c.attempt_count == 0),
        )
    else:
        statement = insert.on_conflict_do_nothing()
    queued = await connection.execute(statement.returning(a.c.alert_id))
    return [row.alert_id for row in queued.all()]


def _stored_policy(row: Row | None) -> StoredPolicy:
    if row is None:
        return StoredPolicy(PolicyValues(), None)
    values = PolicyValues(
        email_recipients=tuple(row.email_recipients),
        slack_webhook_url=row.slack_webhook_url or "",
        minimum_severity=row.minimum_severity,
        suppression_window_seconds=int(row.suppression_window_seconds),
        delivery_mode=row.delivery_mode,
        digest_hour=int(row.digest_hour),
        time_zone=row.time_zone,
        disabled=row.disabled,
        alert_when_ended=row.alert_when_ended,
    )
    return StoredPolicy(values, row.update_time)


async def _with_details(connection: AsyncConnection, rows: list[Row]) -> list[StoredAlert]:
    """The rows with the events they list, how many changes they hold, and their attempts."""
    if not rows:
        return []
    keys = [(r.customer_id, r.alert_id) for r in rows]
    i, t = alert_items, alert_attempts
    ranked = (
        sa.select(
            i.c.customer_id,
            i.c.alert_id,
            i.c.event_id,
            sa.func.row_number()
            .over(
                partition_by=(i.c.customer_id, i.c.alert_id),
                order_by=(
                    i.c.severity_rank.desc(),
                    i.c.dollars_at_stake_cents.desc(),
                    i.c.change_id,
                ),
            )
            .label("position"),
            sa.func.count().over(partition_by=(i.c.customer_id, i.c.alert_id)).label("total"),
        )
        .where(sa.tuple_(i.c.customer_id, i.c.alert_id).in_(keys))
        .subquery()
    )
    listed = await connection.execute(
        sa.select(ranked).where(ranked.c.position <= LISTED_CHANGES).order_by(ranked.c.position)
    )
    events: dict[tuple[str, str], list[str]] = {key: [] for key in keys}
    totals: dict[tuple[str, str], int] = dict.fromkeys(keys, 0)
    for item in listed.all():
        key = (item.customer_id, item.alert_id)
        events[key].append(item.event_id)
        totals[key] = int(item.total)
    attempts: dict[tuple[str, str], list[Row]] = {key: [] for key in keys}
    for attempt in await connection.execute(
        sa.select(t)
        .where(sa.tuple_(t.c.customer_id, t.c.alert_id).in_(keys))
        .order_by(t.c.attempt_number)
    ):
        attempts[(attempt.customer_id, attempt.alert_id)].append(attempt)
    return [
        StoredAlert(row, events[key], totals[key], attempts[key])
        for row, key in zip(rows, keys, strict=True)
    ]


def _now(now: dt.datetime | None) -> Any:
    return sa.func.now() if now is None else sa.literal(now, sa.DateTime(timezone=True))


def _seconds(value: float) -> Any:
    return sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.literal(value, sa.Float))

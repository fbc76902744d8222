"""Drift's tables (schema `drift`) and the queries the service runs on them."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import secrets
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime import ordering
from runtime.db import for_reads, kept_row, row_by_key
from runtime.filtering import FilterField, parse_filter
from runtime.notified_cache import NotifiedCache, notify
from runtime.ordering import Order, SortKey, kept_page, ordered
from runtime.pagination import after_position
from services.drift.config import DetectionConfig
from services.drift.detection import Detection, Finding

metadata = sa.MetaData(schema="drift")

drift_configs = sa.Table(
    "drift_configs",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("config", postgresql.JSONB, nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("etag", sa.Text, nullable=False),
)
drift_runs = sa.Table(
    "drift_runs",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("state", sa.Text),
    sa.Column("trigger", sa.Text),
    sa.Column("request_id", sa.Text),
    sa.Column("creator", sa.Text),
    sa.Column("as_of", sa.Date),
    sa.Column("cells_tested", sa.BigInteger),
    sa.Column("cells_skipped", sa.BigInteger),
    sa.Column("events_created", sa.BigInteger),
    sa.Column("events_updated", sa.BigInteger),
    sa.Column("events_closed", sa.BigInteger),
    sa.Column("events_untested", sa.BigInteger),
    sa.Column("error", postgresql.JSONB),
    sa.Column("create_time", sa.DateTime(timezone=True)),
    sa.Column("start_time", sa.DateTime(timezone=True)),
    sa.Column("finish_time", sa.DateTime(timezone=True)),
    sa.Column("baseline_start", sa.Date),
    sa.Column("baseline_end", sa.Date),
    sa.Column("current_start", sa.Date),
    sa.Column("current_end", sa.Date),
    sa.Column("lease_expire_time", sa.DateTime(timezone=True)),
    # W3C trace context of the call that asked for the run: the run continues its trace.
    sa.Column("trace_context", postgresql.JSONB),
)
drift_events = sa.Table(
    "drift_events",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("payer", sa.Text),
    sa.Column("code_group", sa.Text),
    sa.Column("metric", sa.Text),
    sa.Column("severity", sa.Text),
    sa.Column("state", sa.Text),
    sa.Column("triage_note", sa.Text),
    sa.Column("triaged_by", sa.Text),
    sa.Column("triage_time", sa.DateTime(timezone=True)),
    sa.Column("active", sa.Boolean),
    sa.Column("baseline_start", sa.Date),
    sa.Column("baseline_end", sa.Date),
    sa.Column("current_start", sa.Date),
    sa.Column("current_end", sa.Date),
    sa.Column("evidence", postgresql.JSONB),
    sa.Column("dollars_at_stake_cents", sa.BigInteger),
    sa.Column("summary", sa.Text),
    sa.Column("first_detected_time", sa.DateTime(timezone=True)),
    sa.Column("last_seen_time", sa.DateTime(timezone=True)),
    sa.Column("end_time", sa.DateTime(timezone=True)),
    sa.Column("first_run", sa.Text),
    sa.Column("last_run", sa.Text),
    sa.Column("update_time", sa.DateTime(timezone=True)),
    sa.Column("version", sa.BigInteger),
    # While active: the as-of day of the first run since the event was last found that could
    # not make its comparison (NULL while runs make it).
    sa.Column("untested_since", sa.Date),
    # Why an ended event ended (DriftEvent.EndReason's name); NULL while active, and for
    # events ended before the column: they were no longer found.
    sa.Column("end_reason", sa.Text),
)
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("event_type", sa.Text),
    sa.Column("payload", postgresql.JSONB),
    sa.Column("trace_context", postgresql.JSONB),
)

SEVERITIES = ("LOW", "MEDIUM", "HIGH")
EVENT_STATES = ("NEW", "ACKNOWLEDGED", "RESOLVED", "DISMISSED")
METRICS = ("DENIAL_RATE", "DECISION_DAYS", "PAYMENT_RATIO", "DENIAL_REASON_MIX")
RUN_STATES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED")
RUN_TRIGGERS = ("MANUAL", "UPLOAD", "SCHEDULE", "DATA_CHANGE")
EVENT_FILTERS = {
    "payer": FilterField(drift_events.c.payer),
    "code_group": FilterField(drift_events.c.code_group),
    "metric": FilterField(drift_events.c.metric, "enum", {m: m for m in METRICS}),
    # Severity compares by rank, so `severity >= MEDIUM` works.
    "severity": FilterField(
        sa.case({s: i for i, s in enumerate(SEVERITIES)}, value=drift_events.c.severity),
        "enum",
        {s: i for i, s in enumerate(SEVERITIES)},
        ordered=True,
    ),
    "state": FilterField(drift_events.c.state, "enum", {s: s for s in EVENT_STATES}),
    "active": FilterField(drift_events.c.active, "bool"),
    # The days of claims the latest evidence was measured on.
    "current_window.start_date": FilterField(drift_events.c.current_start, "date"),
    "current_window.end_date": FilterField(drift_events.c.current_end, "date"),
    "first_detected_time": FilterField(drift_events.c.first_detected_time, "timestamp"),
    "last_seen_time": FilterField(drift_events.c.last_seen_time, "timestamp"),
    "update_time": FilterField(drift_events.c.update_time, "timestamp"),
}
EVENT_ORDERS = {
    "last_seen_time": ordering.time_key(drift_events.c.last_seen_time),
    "first_detected_time": ordering.time_key(drift_events.c.first_detected_time),
    "severity": ordering.rank_key(drift_events.c.severity, SEVERITIES),
    "dollars_at_stake": ordering.number_key(drift_events.c.dollars_at_stake_cents),
    "update_time": ordering.time_key(drift_events.c.update_time),
}
# Payer summaries are kept (see `services.drift.kept_summaries`): one set per customer, for
# the data etag and settings it was computed from, and read with the live count of each
# payer's open events, so they read the same filter language as every other list.
payer_summary_sets = sa.Table(
    "payer_summary_sets",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("data_etag", sa.Text, nullable=False),
    sa.Column("config_etag", sa.Text, nullable=False),
    sa.Column("as_of", sa.Date),
    sa.Column("compute_time", sa.DateTime(timezone=True), nullable=False),
)
payer_summaries = sa.Table(
    "payer_summaries",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("payer", sa.Text, primary_key=True),
    sa.Column("current_claims", sa.BigInteger, nullable=False),
    sa.Column("current_denial_rate", sa.Float, nullable=False),
    sa.Column("current_denied_billed_cents", sa.BigInteger, nullable=False),
    # The `PayerSummary` message without its open event count.
    sa.Column("message", sa.LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class KeptSummary:
    """One payer's summary as it is kept: the columns lists filter and sort on, and the
    serialized message."""

    payer: str
    current_claims: int
    current_denial_rate: float
    current_denied_billed_cents: int
    message: bytes


# What a summaries filter or order names: the columns of `_summaries_of(customer)`.
_summary: dict[str, sa.ColumnClause[Any]] = {
    name: sa.column(name, kind)
    for name, kind in {
        "payer": sa.Text,
        "open_event_count": sa.Integer,
        "current_claims": sa.BigInteger,
        "current_denial_rate": sa.Float,
        "current_denied_billed_cents": sa.BigInteger,
    }.items()
}
SUMMARY_FILTERS = {
    "payer": FilterField(_summary["payer"]),
    "open_event_count": FilterField(_summary["open_event_count"], "int"),
    "current.claims": FilterField(_summary["current_claims"], "int"),
}
SUMMARY_ORDERS = {
    "payer": ordering.text_key(_summary["payer"]),
    "open_event_count": ordering.number_key(_summary["open_event_count"]),
    "current.claims": ordering.number_key(_summary["current_claims"]),
    "current.denial_rate": ordering.SortKey(_summary["current_denial_rate"]),
    "current.denied_billed_amount": ordering.number_key(_summary["current_denied_billed_cents"]),
}
RUN_FILTERS = {
    "state": FilterField(drift_runs.c.state, "enum", {s: s for s in RUN_STATES}),
    "trigger": FilterField(drift_runs.c.trigger, "enum", {t: t for t in RUN_TRIGGERS}),
    "request_id": FilterField(drift_runs.c.request_id),
    "create_time": FilterField(drift_runs.c.create_time, "timestamp"),
}
LEASE = dt.timedelta(minutes=10)
# A run a worker may take: not taken yet, or taken by a worker whose lease ran out (it died).
_WAITING_FOR_A_WORKER = (drift_runs.c.state == "PENDING") | (
    (drift_runs.c.state == "RUNNING") & (drift_runs.c.lease_expire_time < sa.func.now())
)


@dataclass(frozen=True)
class StoredConfig:
    config: DetectionConfig
    update_time: dt.datetime | None
    updated_by: str
    etag: str


# A customer's settings, or its drift events, changed (payload: the customer); see
# runtime.notified_cache.
CONFIG_CHANNEL = "drift_configs"
EVENTS_CHANNEL = "drift_events"


@functools.cache
def default_config() -> StoredConfig:
    """What a customer that never changed its settings has."""
    defaults = DetectionConfig()
    return StoredConfig(defaults, None, "", config_etag(defaults))


@dataclass(frozen=True)
class RunOutcome:
    opened: int
    updated: int
    closed: int
    # The metric of each event opened.
    opened_metrics: tuple[str, ...] = ()


def config_etag(config: DetectionConfig) -> str:
    digest = hashlib.sha256(json.dumps(config.to_json(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


_EVENT_BY_ID = row_by_key(drift_events, "customer_id", "event_id")


class DriftStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = for_reads(engine)
        # What reads keep while a `ChangeListener` follows their channels (services.drift.
        # server); without one, every read goes to the database.
        self.config_reads: NotifiedCache[StoredConfig] = NotifiedCache(
            "drift_config", CONFIG_CHANNEL
        )
        self.event_reads: NotifiedCache[Any] = NotifiedCache("drift_events", EVENTS_CHANNEL)

    # --- configuration ----------------------------------------------------------------------

    async def get_config(self, customer: str) -> StoredConfig:
        """The customer's config, or the defaults when it never changed them; kept between
        reads (`config_reads`)."""
        return await self.config_reads.get(customer, None, lambda: self.read_config(customer))

    async def read_config(self, customer: str) -> StoredConfig:
        """`get_config` from the database."""
        async with self._reads.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(drift_configs).where(drift_configs.c.customer_id == customer)
                )
            ).first()
        if row is None:
            return default_config()
        return StoredConfig(
            DetectionConfig.from_json(row.config), row.update_time, row.updated_by, row.etag
        )

    async def put_config(
        self, customer: str, config: DetectionConfig, updated_by: str, expected_etag: str
    ) -> StoredConfig | None:
        """Store a new config; None when `expected_etag` is given and no longer current."""
        etag = config_etag(config)
        values: dict[str, Any] = {
            "customer_id": customer,
            "config": config.to_json(),
            "update_time": sa.func.now(),
            "updated_by": updated_by,
            "etag": etag,
        }
        async with self._engine.begin() as connection:
            current = (
                await connection.execute(
                    sa.select(drift_configs.c.etag)
                    .where(drift_configs.c.customer_id == customer)
                    .with_for_update()
                )
            ).scalar()
            if expected_etag and expected_etag != (current or default_config().etag):
                return None
            insert = postgresql.insert(drift_configs).values(values)
            upsert = insert.on_conflict_do_update(
                index_elements=[drift_configs.c.customer_id],
                set_={k: insert.excluded[k] for k in values if k != "customer_id"},
            ).returning(drift_configs.c.update_time)
            update_time = (await connection.execute(upsert)).scalar_one()
            await notify(connection, CONFIG_CHANNEL, customer)
        self.config_reads.forget(customer)
        return StoredConfig(config, update_time, updated_by, etag)

    # --- runs -------------------------------------------------------------------------------

    async def create_run(
        self,
        customer: str,
        *,
        request_id: str | None,
        trigger: str,
        creator: str,
        as_of: dt.date,
        trace_context: Mapping[str, str],
    ) -> Row:
        """A PENDING run, or the existing run with the same request id."""
        async with self._engine.begin() as connection:
            inserted = (
                await connection.execute(
                    postgresql.insert(drift_runs)
                    .values(
                        customer_id=customer,
                        run_id="run_" + secrets.token_hex(8),
                        state="PENDING",
                        trigger=trigger,
                        request_id=request_id,
                        creator=creator,
                        as_of=as_of,
                        create_time=sa.func.now(),
                        trace_context=dict(trace_context),
                    )
                    .on_conflict_do_nothing()
                    .returning(drift_runs)
                )
            ).first()
            if inserted is not None:
                return inserted
            return (
                await connection.execute(
                    sa.select(drift_runs).where(
                        drift_runs.c.customer_id == customer,
                        drift_runs.c.request_id == request_id,
                    )
                )
            ).one()

    async def get_run(self, customer: str, run_id: str) -> Row | None:
        async with self._reads.connect() as connection:
            return (
                await connection.execute(
                    sa.select(drift_runs).where(
                        drift_runs.c.customer_id == customer, drift_runs.c.run_id == run_id
                    )
                )
            ).first()

    async def list_runs(
        self, customer: str, filter_text: str, limit: int, after: Sequence[Any] | None
    ) -> list[Row]:
        query = (
            sa.select(drift_runs)
            .where(drift_runs.c.customer_id == customer, parse_filter(filter_text, RUN_FILTERS))
            .order_by(drift_runs.c.create_time.desc(), drift_runs.c.run_id.desc())
            .limit(limit)
        )
        if after is not None:
            position = (dt.datetime.fromisoformat(after[0]), after[1])
            query = query.where(
                after_position(
                    (drift_runs.c.create_time, drift_runs.c.run_id), position, descending=True
                )
            )
        async with self._reads.connect() as connection:
            return list((await connection.execute(query)).all())

    async def claim_next_run(self) -> Row | None:
        """Take the oldest PENDING run (or one whose worker died) and lease it."""
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(
                    sa.select(drift_runs)
                    .where(_WAITING_FOR_A_WORKER)
                    .order_by(drift_runs.c.create_time)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if row is None:
                return None
            return (
                await connection.execute(
                    sa.update(drift_runs)
                    .where(
                        drift_runs.c.customer_id == row.customer_id,
                        drift_runs.c.run_id == row.run_id,
                    )
                    .values(
                        state="RUNNING",
                        start_time=sa.func.now(),
                        lease_expire_time=sa.func.now() + LEASE,
                    )
                    .returning(drift_runs)
                )
            ).one()

    async def waiting_runs(self) -> tuple[int, float]:
        """How many runs of every customer wait for a worker (PENDING, or RUNNING on a lease
        that expired: its worker died), and the seconds the oldest of them has waited since
        it was asked for (0 when none waits)."""
        async with self._engine.connect() as connection:
            count, oldest = (
                await connection.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.coalesce(
                            sa.func.extract(
                                "epoch", sa.func.now() - sa.func.min(drift_runs.c.create_time)
                            ),
                            0,
                        ),
                    ).where(_WAITING_FOR_A_WORKER)
                )
            ).one()
        return int(count), float(oldest)

    async def fail_run(self, customer: str, run_id: str, message: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                sa.update(drift_runs)
                .where(drift_runs.c.customer_id == customer, drift_runs.c.run_id == run_id)
                .values(
                    state="FAILED",
                    error={"code": 13, "message": message},
                    finish_time=sa.func.now(),
                    lease_expire_time=None,
                )
            )

    async def record_detection(
        self,
        customer: str,
        run: Row,
        detection: Detection,
        trace_context: dict[str, str],
        cells_gone: Collection[tuple[str, str]],
    ) -> RunOutcome:
        """Upsert the run's findings into episodes, close the episodes it no longer finds
        (and those of the payer × code groups in `cells_gone`: none of their claims are left),
        queue the changes for reports, and finish the run: one transaction, one customer at
        a time."""
        async with self._engine.begin() as connection:
            # Runs of one customer take turns, so concurrent runs cannot both open an event.
            await connection.execute(
                sa.select(
                    sa.func.pg_advisory_xact_lock(
                        sa.func.hashtext("drift.run"), sa.func.hashtext(customer)
                    )
                )
            )
            opened_metrics, updated, changed = await self._upsert_findings(
                connection, customer, run, detection
            )
            closed, untested, not_compared = await self._close_episodes(
                connection, customer, run, detection, cells_gone
            )
            changed += closed
            if changed:
                await connection.execute(
                    sa.insert(outbox).values(
                        customer_id=customer,
                        event_id=uuid.uuid4(),
                        event_type="DriftEventsChanged",
                        payload={
                            "customer": customer,
                            "run_id": run.run_id,
                            "event_ids": changed,
                        },
                        trace_context=trace_context,
                    )
                )
            await connection.execute(
                sa.update(drift_runs)
                .where(drift_runs.c.customer_id == customer, drift_runs.c.run_id == run.run_id)
                .values(
                    state="SUCCEEDED",
                    cells_tested=detection.cells_tested,
                    cells_skipped=detection.cells_skipped,
                    events_created=len(opened_metrics),
                    events_updated=updated,
                    events_closed=len(closed),
                    events_untested=not_compared,
                    baseline_start=detection.windows.baseline.start,
                    baseline_end=detection.windows.baseline.end,
                    current_start=detection.windows.current.start,
                    current_end=detection.windows.current.end,
                    finish_time=sa.func.now(),
                    lease_expire_time=None,
                )
            )
            if changed or untested:
                await notify(connection, EVENTS_CHANNEL, customer)
        if changed or untested:
            self.event_reads.forget(customer)
        return RunOutcome(len(opened_metrics), updated, len(closed), tuple(opened_metrics))

    async def _upsert_findings(
        self, connection: AsyncConnection, customer: str, run: Row, detection: Detection
    ) -> tuple[list[str], int, list[str]]:
        opened: list[str] = []
        updated = 0
        changed: list[str] = []
        windows = detection.windows
        for finding in detection.findings:
            values = _finding_values(finding, run.run_id, windows)
            episode = (
                await connection.execute(
                    sa.select(drift_events.c.event_id)
                    .where(
                        drift_events.c.customer_id == customer,
                        drift_events.c.payer == finding.cell.payer,
                        drift_events.c.code_group == finding.cell.code_group,
                        drift_events.c.metric == finding.metric,
                        drift_events.c.active,
                    )
                    .with_for_update()
                )
            ).first()
            if episode is None:
                event_id = "ev_" + secrets.token_hex(8)
                await connection.execute(
                    sa.insert(drift_events).values(
                        customer_id=customer,
                        event_id=event_id,
                        payer=finding.cell.payer,
                        code_group=finding.cell.code_group,
                        metric=finding.metric,
                        state="NEW",
                        active=True,
                        first_run=run.run_id,
                        **values,
                    )
                )
                opened.append(finding.metric)
            else:
                event_id = episode.event_id
                # New numbers, never a new triage state: a dismissed episode stays dismissed.
                await connection.execute(
                    sa.update(drift_events)
                    .where(
                        drift_events.c.customer_id == customer,
                        drift_events.c.event_id == event_id,
                    )
                    .values(version=drift_events.c.version + 1, **values)
                )
                updated += 1
            changed.append(event_id)
        return opened, updated, changed

    async def _close_episodes(
        self,
        connection: AsyncConnection,
        customer: str,
        run: Row,
        detection: Detection,
        cells_gone: Collection[tuple[str, str]],
    ) -> tuple[list[str], list[str], int]:
        """End the open episodes whose comparison this run made and did not flag, and those
        of the cells none of whose claims are left (`cells_gone`: every upload that held them
        deleted, or their payer mapped to another: nothing is left to show a drift), and
        mark those whose comparison it could not make (untested since its as-of day, unless
        they were already): the ended ones, the newly untested ones, and how many it could not
        compare in all. An untested episode stays
        open, as nothing says its drift ended: the cell has too few decided claims in the
        run's windows, or none (a payer whose claims stopped coming)."""
        found = {(f.cell.payer, f.cell.code_group, f.metric) for f in detection.findings}
        still_open = (
            await connection.execute(
                sa.select(
                    drift_events.c.event_id,
                    drift_events.c.payer,
                    drift_events.c.code_group,
                    drift_events.c.metric,
                    drift_events.c.untested_since,
                ).where(drift_events.c.customer_id == customer, drift_events.c.active)
            )
        ).all()
        gone = set(cells_gone)
        removed = [row.event_id for row in still_open if (row.payer, row.code_group) in gone]
        no_longer_found = [
            row.event_id
            for row in still_open
            if (row.payer, row.code_group, row.metric) in detection.tested
            and (row.payer, row.code_group, row.metric) not in found
        ]
        not_compared = [
            row
            for row in still_open
            if (row.payer, row.code_group, row.metric) not in detection.tested
            and (row.payer, row.code_group) not in gone
        ]
        untested = [row.event_id for row in not_compared if row.untested_since is None]
        if untested:
            await connection.execute(
                sa.update(drift_events)
                .where(
                    drift_events.c.customer_id == customer, drift_events.c.event_id.in_(untested)
                )
                .values(
                    untested_since=run.as_of,
                    update_time=sa.func.now(),
                    version=drift_events.c.version + 1,
                )
            )
        for ended, reason in ((no_longer_found, "NO_LONGER_FOUND"), (removed, "CLAIMS_REMOVED")):
            if ended:
                await connection.execute(
                    sa.update(drift_events)
                    .where(
                        drift_events.c.customer_id == customer,
                        drift_events.c.event_id.in_(ended),
                    )
                    .values(
                        active=False,
                        end_time=sa.func.now(),
                        end_reason=reason,
                        last_run=run.run_id,
                        update_time=sa.func.now(),
                        version=drift_events.c.version + 1,
                        untested_since=None,
                    )
                )
        return no_longer_found + removed, untested, len(not_compared)

    # --- events -----------------------------------------------------------------------------

    async def open_event_cells(self, customer: str) -> set[tuple[str, str]]:
        """The payer × code groups the customer's open events are of."""
        async with self._reads.connect() as connection:
            rows = await connection.execute(
                sa.select(drift_events.c.payer, drift_events.c.code_group)
                .where(drift_events.c.customer_id == customer, drift_events.c.active)
                .distinct()
            )
            return {(row.payer, row.code_group) for row in rows}

    async def get_event(self, customer: str, event_id: str) -> Row | None:
        """The event, kept between reads (`event_reads`)."""
        row: Row | None = await kept_row(
            self.event_reads, self._reads, _EVENT_BY_ID, customer, "event_id", event_id
        )
        return row

    async def list_events(
        self,
        customer: str,
        filter_text: str,
        order: Order[SortKey],
        limit: int,
        after: Sequence[Any] | None,
    ) -> list[Row]:
        """One page of the customer's events, kept between reads (`event_reads`)."""
        return await kept_page(
            self.event_reads,
            self._reads,
            drift_events,
            EVENT_FILTERS,
            drift_events.c.event_id,
            customer,
            filter_text,
            order,
            limit,
            after,
        )

    # --- payer summaries --------------------------------------------------------------------

    async def summary_set(self, customer: str) -> Row | None:
        """The etags of the data and settings the customer's kept summaries were computed
        from (None when none are kept)."""
        async with self._reads.connect() as connection:
            return (
                await connection.execute(
                    sa.select(payer_summary_sets).where(
                        payer_summary_sets.c.customer_id == customer
                    )
                )
            ).first()

    async def keep_summaries(
        self,
        customer: str,
        data_etag: str,
        config_etag: str,
        as_of: dt.date | None,
        summaries: Sequence[KeptSummary],
    ) -> None:
        """Replace the customer's kept summaries with `summaries`, computed from the data of
        `data_etag` and the settings of `config_etag`, in one transaction."""
        s = payer_summary_sets
        async with self._engine.begin() as connection:
            await connection.execute(
                postgresql.insert(s)
                .values(
                    customer_id=customer,
                    data_etag=data_etag,
                    config_etag=config_etag,
                    as_of=as_of,
                    compute_time=sa.func.now(),
                )
                .on_conflict_do_update(
                    index_elements=[s.c.customer_id],
                    set_={
                        "data_etag": data_etag,
                        "config_etag": config_etag,
                        "as_of": as_of,
                        "compute_time": sa.func.now(),
                    },
                )
            )
            await connection.execute(
                sa.delete(payer_summaries).where(payer_summaries.c.customer_id == customer)
            )
            if summaries:
                await connection.execute(
                    sa.insert(payer_summaries),
                    [{"customer_id": customer, **vars(summary)} for summary in summaries],
                )

    def _summaries_of(self, customer: str) -> sa.Subquery:
        """The customer's kept summaries with each payer's open events counted now."""
        e, p = drift_events, payer_summaries
        counts = (
            sa.select(e.c.payer, sa.func.count().label("open_event_count"))
            .where(e.c.customer_id == customer, e.c.active, e.c.state != "DISMISSED")
            .group_by(e.c.payer)
            .subquery("open_events")
        )
        return (
            sa.select(
                p.c.payer,
                sa.func.coalesce(counts.c.open_event_count, 0).label("open_event_count"),
                p.c.current_claims,
                p.c.current_denial_rate,
                p.c.current_denied_billed_cents,
                p.c.message,
            )
            .select_from(p.outerjoin(counts, counts.c.payer == p.c.payer))
            .where(p.c.customer_id == customer)
            .subquery("payer_summaries")
        )

    async def list_summaries(
        self,
        customer: str,
        filter_text: str,
        order: Order[SortKey],
        offset: int,
        limit: int,
        kept_for: tuple[str, str] | None = None,
    ) -> list[Row]:
        """Up to `limit` of the customer's kept summaries from `offset` that `filter_text`
        matches, in `order` (the payer name breaking ties): `message` and
        `open_event_count`. With `kept_for` (a data etag and a settings etag), none unless
        they are the summaries of that data and those settings."""

        async def read() -> list[Row] | None:
            condition = parse_filter(filter_text, SUMMARY_FILTERS)
            kept = self._summaries_of(customer)
            query = sa.select(kept.c.message, kept.c.open_event_count).where(condition)
            if kept_for is not None:
                s = payer_summary_sets
                query = query.where(
                    sa.exists().where(
                        s.c.customer_id == customer,
                        s.c.data_etag == kept_for[0],
                        s.c.config_etag == kept_for[1],
                    )
                )
            async with self._reads.connect() as connection:
                result = await connection.execute(
                    ordered(query, order, _summary["payer"], None).offset(offset).limit(limit)
                )
                return list(result.all()) or None

        if kept_for is None:
            return await read() or []
        # The summaries of one data etag and one settings etag are computed once; what
        # changes under them is the open events counted, which notify `event_reads`. None
        # found (not yet computed) is never kept.
        key = ("payer summaries", kept_for, filter_text, order.field, order.descending)
        return list(await self.event_reads.get(customer, (*key, offset, limit), read) or [])

    async def triage_event(
        self,
        customer: str,
        event_id: str,
        changes: dict[str, Any],
        actor: str,
        expected_version: int | None,
    ) -> Row | None:
        """Apply a person's triage; None when the event changed since `expected_version`."""
        async with self._engine.begin() as connection:
            current = (
                await connection.execute(
                    sa.select(drift_events.c.version)
                    .where(
                        drift_events.c.customer_id == customer,
                        drift_events.c.event_id == event_id,
                    )
                    .with_for_update()
                )
            ).first()
            if current is None:
                raise LookupError(event_id)
            if expected_version is not None and expected_version != current.version:
                return None
            changed = (
                await connection.execute(
                    sa.update(drift_events)
                    .where(
                        drift_events.c.customer_id == customer,
                        drift_events.c.event_id == event_id,
                    )
                    .values(
                        triaged_by=actor,
                        triage_time=sa.func.now(),
                        update_time=sa.func.now(),
                        version=drift_events.c.version + 1,
                        **changes,
                    )
                    .returning(drift_events)
                )
            ).one()
            await notify(connection, EVENTS_CHANNEL, customer)
        self.event_reads.forget(customer)
        return changed

    async def open_event_counts(self, customer: str) -> dict[str, int]:
        """Open (active, not dismissed) events per payer."""
        async with self._reads.connect() as connection:
            rows = (
                await connection.execute(
                    sa.select(drift_events.c.payer, sa.func.count())
                    .where(
                        drift_events.c.customer_id == customer,
                        drift_events.c.active,
                        drift_events.c.state != "DISMISSED",
                    )
                    .group_by(drift_events.c.payer)
                )
            ).all()
        return {row[0]: int(row[1]) for row in rows}


def _finding_values(finding: Finding, run_id: str, windows: Any) -> dict[str, Any]:
    evidence = finding.evidence

    def interval(value: Any) -> dict[str, float] | None:
        if value is None:
            return None
        return {"lower": value.lower, "upper": value.upper, "level": value.level}

    return {
        "severity": finding.severity,
        "baseline_start": windows.baseline.start,
        "baseline_end": windows.baseline.end,
        "current_start": windows.current.start,
        "current_end": windows.current.end,
        "evidence": {
            "baseline_count": evidence.baseline_count,
            "current_count": evidence.current_count,
            "baseline_events": evidence.baseline_events,
            "current_events": evidence.current_events,
            "baseline_value": evidence.baseline_value,
            "current_value": evidence.current_value,
            "effect_size": evidence.effect_size,
            "effect_unit": evidence.effect_unit,
            "p_value": evidence.p_value,
            "q_value": evidence.q_value,
            "test": evidence.test,
            "baseline_interval": interval(evidence.baseline_interval),
            "current_interval": interval(evidence.current_interval),
            "effect_interval": interval(evidence.effect_interval),
            "carc_shifts": [list(shift) for shift in evidence.carc_shifts],
            "expected_value": evidence.expected_value,
        },
        "dollars_at_stake_cents": finding.dollars_at_stake_cents,
        "summary": finding.summary,
        "last_seen_time": sa.func.now(),
        "last_run": run_id,
        "update_time": sa.func.now(),
        "untested_since": None,
    }

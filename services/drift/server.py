"""DriftService over gRPC: a thin adapter between the contract and the use cases
(`services/drift/runs.py`) and store: messages in and out, errors mapped."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import errors, names, ordering
from runtime.audit import AuditLog, AuditMethods
from runtime.auth import Role, ServiceAuthorization, require_identity
from runtime.clients import open_channel
from runtime.messages import (
    MessagesByVersion,
    date_message,
    money_message,
    set_fields,
    timestamp_message,
)
from runtime.notified_cache import ChangeListener
from runtime.outbox import OutboxEvent, outbox_relay
from runtime.retention import RetentionJob, audit_purge
from runtime.server import ServiceDefinition, running_task
from runtime.settings import Settings
from runtime.standard_methods import (
    customer_of,
    get_resource,
    list_resources,
    offset_page,
    sign_page_tokens_with,
)
from runtime.updates import mask_paths
from services.drift.config import DetectionConfig, violations
from services.drift.ingest_client import IngestClient
from services.drift.kept_summaries import KeptSummaries, date_range
from services.drift.runs import DetectionRuns
from services.drift.store import EVENT_ORDERS, SUMMARY_ORDERS, DriftStore, StoredConfig
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc, resources_pb2
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc

CONFIG_NAME = "customers/{customer}/driftConfig"
RUN_NAME = "customers/{customer}/driftRuns/{run}"
EVENT_NAME = "customers/{customer}/driftEvents/{event}"
SUMMARY_NAME = "customers/{customer}/payerSummaries/{payer}"
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(DetectionConfig))
TRIAGE_FIELDS = ("state", "triage_note")
_CALLER_TRIGGERS = (resources_pb2.DriftRun.TRIGGER_UNSPECIFIED, resources_pb2.DriftRun.MANUAL)


def config_message(customer: str, stored: StoredConfig) -> resources_pb2.DriftConfig:
    values = dataclasses.asdict(stored.config)
    metrics = [resources_pb2.Metric.Value(m) for m in values.pop("enabled_metrics")]
    config = resources_pb2.DriftConfig(
        name=CONFIG_NAME.format(customer=customer),
        enabled_metrics=metrics,
        updated_by=stored.updated_by,
        etag=stored.etag,
        **values,
    )
    return set_fields(config, update_time=timestamp_message(stored.update_time))


def run_message(row: Row) -> resources_pb2.DriftRun:
    run = resources_pb2.DriftRun(
        name=RUN_NAME.format(customer=row.customer_id, run=row.run_id),
        state=resources_pb2.DriftRun.State.Value(row.state),
        trigger=resources_pb2.DriftRun.Trigger.Value(row.trigger),
        request_id=row.request_id or "",
        cells_tested=row.cells_tested,
        cells_skipped=row.cells_skipped,
        events_opened=row.events_created,
        events_updated=row.events_updated,
        events_closed=row.events_closed,
        events_untested=row.events_untested or 0,
    )
    if row.error:
        run.error.code = row.error.get("code", 13)
        run.error.message = row.error.get("message", "")
    if row.start_time and row.finish_time:
        run.duration.FromTimedelta(row.finish_time - row.start_time)
    return set_fields(
        run,
        as_of=date_message(row.as_of),
        baseline_window=date_range(row.baseline_start, row.baseline_end),
        current_window=date_range(row.current_start, row.current_end),
        create_time=timestamp_message(row.create_time),
        start_time=timestamp_message(row.start_time),
        end_time=timestamp_message(row.finish_time),
    )


def event_message(row: Row) -> resources_pb2.DriftEvent:
    evidence = row.evidence
    if row.metric == "DECISION_DAYS" and "effect_interval" not in evidence:
        # Stored before effect intervals had their field: the shift's was kept as the
        # current value's.
        evidence = {
            **evidence,
            "effect_interval": evidence.get("current_interval"),
            "current_interval": None,
        }

    def interval(value: dict[str, float] | None) -> resources_pb2.ConfidenceInterval | None:
        if not value:
            return None
        return resources_pb2.ConfidenceInterval(**value)

    proof = set_fields(
        resources_pb2.DriftEvidence(
            baseline_count=evidence["baseline_count"],
            current_count=evidence["current_count"],
            baseline_events=evidence["baseline_events"],
            current_events=evidence["current_events"],
            baseline_value=evidence["baseline_value"],
            current_value=evidence["current_value"],
            effect_size=evidence["effect_size"],
            effect_unit=evidence["effect_unit"],
            p_value=evidence["p_value"],
            q_value=evidence["q_value"],
            test=evidence["test"],
            carc_codes_moved=[
                resources_pb2.CarcShift(code=code, baseline_share=base, current_share=current)
                for code, base, current in evidence["carc_shifts"]
            ],
        ),
        baseline_interval=interval(evidence.get("baseline_interval")),
        current_interval=interval(evidence.get("current_interval")),
        effect_interval=interval(evidence.get("effect_interval")),
        seasonal_expected_value=evidence.get("expected_value"),
    )
    event = resources_pb2.DriftEvent(
        name=EVENT_NAME.format(customer=row.customer_id, event=row.event_id),
        payer=row.payer,
        code_group=row.code_group,
        metric=resources_pb2.Metric.Value(row.metric),
        severity=resources_pb2.DriftEvent.Severity.Value(row.severity),
        state=resources_pb2.DriftEvent.State.Value(row.state),
        triage_note=row.triage_note,
        triaged_by=row.triaged_by,
        active=row.active,
        evidence=proof,
        dollars_at_stake=money_message(row.dollars_at_stake_cents),
        summary=row.summary,
        first_run=RUN_NAME.format(customer=row.customer_id, run=row.first_run),
        last_run=RUN_NAME.format(customer=row.customer_id, run=row.last_run),
        etag=str(row.version),
        end_reason=_end_reason(row),
    )
    return set_fields(
        event,
        triage_time=timestamp_message(row.triage_time),
        baseline_window=date_range(row.baseline_start, row.baseline_end),
        current_window=date_range(row.current_start, row.current_end),
        first_detected_time=timestamp_message(row.first_detected_time),
        last_seen_time=timestamp_message(row.last_seen_time),
        end_time=timestamp_message(row.end_time),
        update_time=timestamp_message(row.update_time),
        untested_since=date_message(row.untested_since),
    )


def _end_reason(row: Row) -> Any:
    """Why an ended event ended; an event ended before reasons were kept was no longer
    found, the only way one ended then."""
    if row.active:
        return resources_pb2.DriftEvent.END_REASON_UNSPECIFIED
    return resources_pb2.DriftEvent.EndReason.Value(row.end_reason or "NO_LONGER_FOUND")


class DriftServicer(AuditMethods, drift_service_pb2_grpc.DriftServiceServicer):
    def __init__(
        self,
        store: DriftStore,
        ingest: IngestClient,
        runs: DetectionRuns,
        summaries: KeptSummaries,
    ) -> None:
        self._store = store
        self._ingest = ingest
        self._runs = runs
        self._summaries = summaries
        # Every change to an event moves its version (its etag) on: reads and lists of events
        # share each version's message.
        self._event_messages = MessagesByVersion(
            event_message, lambda row: (row.customer_id, row.event_id, row.version)
        )

    # --- configuration ----------------------------------------------------------------------

    async def GetDriftConfig(
        self, request: drift_service_pb2.GetDriftConfigRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.DriftConfig:
        customer = names.parse(request.name, CONFIG_NAME)["customer"]
        return config_message(customer, await self._store.get_config(customer))

    async def UpdateDriftConfig(
        self,
        request: drift_service_pb2.UpdateDriftConfigRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.DriftConfig:
        change = request.drift_config
        customer = names.parse(change.name, CONFIG_NAME, field="drift_config.name")["customer"]
        paths = mask_paths(request.update_mask, change, CONFIG_FIELDS)
        current = await self._store.read_config(customer)
        updates: dict[str, object] = {}
        for path in paths:
            value = getattr(change, path)
            if path == "enabled_metrics":
                value = tuple(resources_pb2.Metric.Name(m) for m in value)
            updates[path] = value
        config = dataclasses.replace(current.config, **updates)  # type: ignore[arg-type]
        problems = violations(config)
        if problems:
            raise errors.invalid_argument(
                "drift_config has invalid values",
                *(errors.FieldViolation(f"drift_config.{f}", d) for f, d in problems),
            )
        stored = await self._store.put_config(
            customer, config, require_identity().subject, change.etag
        )
        if stored is None:
            raise errors.stale(change.name)
        return config_message(customer, stored)

    # --- runs -------------------------------------------------------------------------------

    async def RunDetection(
        self, request: drift_service_pb2.RunDetectionRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.DriftRun:
        customer = customer_of(request.parent)
        # UPLOAD, DATA_CHANGE and SCHEDULE runs are started by Upstream's own services, never by
        # people.
        from_service = require_identity().role is Role.SUPERUSER
        if request.trigger not in _CALLER_TRIGGERS and not from_service:
            raise errors.invalid_argument(
                "trigger must be MANUAL: other triggers are for Upstream's own services",
                errors.FieldViolation("trigger", "must be MANUAL or unset"),
            )
        # Lengths, characters and calendar dates are checked where requests enter
        # (runtime.validation, from the limits in the protos).
        as_of = None
        if request.HasField("as_of"):
            as_of = dt.date(request.as_of.year, request.as_of.month, request.as_of.day)
            today = dt.datetime.now(dt.UTC).date()
            if as_of > today:
                raise errors.invalid_argument(
                    f"as_of {as_of.isoformat()} is in the future (today is {today.isoformat()})",
                    errors.FieldViolation("as_of", "must not be after today (UTC)"),
                )
        row = await self._runs.request(
            customer,
            as_of=as_of,
            request_id=request.request_id or None,
            trigger=resources_pb2.DriftRun.Trigger.Name(
                request.trigger or resources_pb2.DriftRun.MANUAL
            ),
            creator=require_identity().subject,
        )
        return run_message(row)

    async def GetDriftRun(
        self, request: drift_service_pb2.GetDriftRunRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.DriftRun:
        return await get_resource(request.name, RUN_NAME, self._store.get_run, run_message)

    async def ListDriftRuns(
        self, request: drift_service_pb2.ListDriftRunsRequest, context: grpc.aio.ServicerContext
    ) -> drift_service_pb2.ListDriftRunsResponse:
        return await list_resources(
            request,
            drift_service_pb2.ListDriftRunsResponse,
            "drift_runs",
            self._store.list_runs,
            lambda last: [last.create_time.isoformat(), last.run_id],
            run_message,
        )

    # --- events -----------------------------------------------------------------------------

    async def ListDriftEvents(
        self,
        request: drift_service_pb2.ListDriftEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> drift_service_pb2.ListDriftEventsResponse:
        order = ordering.parse_order_by(request.order_by, EVENT_ORDERS, "last_seen_time desc")
        return await list_resources(
            request,
            drift_service_pb2.ListDriftEventsResponse,
            "drift_events",
            lambda customer, filter_text, limit, after: self._store.list_events(
                customer, filter_text, order, limit, after
            ),
            lambda last: ordering.position(order, last, "event_id"),
            self._event_messages,
        )

    async def GetDriftEvent(
        self, request: drift_service_pb2.GetDriftEventRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.DriftEvent:
        return await get_resource(
            request.name, EVENT_NAME, self._store.get_event, self._event_messages
        )

    async def UpdateDriftEvent(
        self,
        request: drift_service_pb2.UpdateDriftEventRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.DriftEvent:
        change = request.drift_event
        parsed = names.parse(change.name, EVENT_NAME, field="drift_event.name")
        paths = mask_paths(request.update_mask, change, TRIAGE_FIELDS)
        if not paths:
            raise errors.invalid_argument(
                "nothing to update: set state and/or triage_note",
                errors.FieldViolation("update_mask", "must name state or triage_note"),
            )
        updates: dict[str, Any] = {}
        if "state" in paths:
            if change.state == resources_pb2.DriftEvent.STATE_UNSPECIFIED:
                raise errors.invalid_argument(
                    "state must be NEW, ACKNOWLEDGED, RESOLVED or DISMISSED",
                    errors.FieldViolation("drift_event.state", "required when in update_mask"),
                )
            updates["state"] = resources_pb2.DriftEvent.State.Name(change.state)
        if "triage_note" in paths:
            updates["triage_note"] = change.triage_note
        expected = None
        if change.etag:
            if not change.etag.isdigit():
                raise errors.invalid_argument(
                    "etag is not one this API issued",
                    errors.FieldViolation("drift_event.etag", "use the etag of a GetDriftEvent"),
                )
            expected = int(change.etag)
        try:
            row = await self._store.triage_event(
                parsed["customer"], parsed["event"], updates, require_identity().subject, expected
            )
        except LookupError:
            raise errors.not_found(change.name) from None
        if row is None:
            raise errors.stale(change.name)
        return event_message(row)

    # --- summaries --------------------------------------------------------------------------

    async def ListPayerSummaries(
        self,
        request: drift_service_pb2.ListPayerSummariesRequest,
        context: grpc.aio.ServicerContext,
    ) -> drift_service_pb2.ListPayerSummariesResponse:
        customer = customer_of(request.parent)
        page = offset_page(request)
        order = ordering.parse_order_by(request.order_by, SUMMARY_ORDERS, "current.claims desc")
        rows = await self._summaries.read(
            customer,
            lambda kept_for: self._store.list_summaries(
                customer, request.filter, order, page.offset, page.size + 1, kept_for
            ),
        )
        found = page.of_window(rows)
        response = drift_service_pb2.ListPayerSummariesResponse(
            next_page_token=found.next_page_token
        )
        for row in found.rows:
            summary = response.payer_summaries.add()
            summary.ParseFromString(row.message)
            summary.open_event_count = row.open_event_count
        return response


def build(settings: Settings, engine: AsyncEngine) -> ServiceDefinition:
    sign_page_tokens_with(settings.page_token_keys)
    store = DriftStore(engine)
    published = asyncio.Event()

    authorization = ServiceAuthorization(settings)

    # `build` runs on the server's event loop, which the channels belong to.
    ingest_channel = open_channel(
        settings.ingest_target,
        "upstream.ingest.v1.IngestService",
        default_timeout=settings.client_timeout_seconds,
        authorization=authorization,
    )
    ingest = IngestClient(ingest_channel)
    # Settings and events kept in memory between reads, each change forgotten as it commits.
    changes = ChangeListener(
        settings.database_url, (store.config_reads, store.event_reads), "upstream-drift-listener"
    )
    summaries = KeptSummaries(store, ingest)
    runs = DetectionRuns(store, ingest, published, summaries)

    async def notify_reports(channel: grpc.aio.Channel, event: OutboxEvent) -> None:
        customer = event.payload["customer"]
        rows = [await store.get_event(customer, e) for e in event.payload["event_ids"]]
        await reports_service_pb2_grpc.ReportsServiceStub(channel).RecordDriftEvents(
            reports_service_pb2.RecordDriftEventsRequest(
                parent=f"customers/{customer}",
                batch_id=event.event_id,
                drift_events=[event_message(row) for row in rows if row is not None],
            )
        )

    @asynccontextmanager
    async def background() -> AsyncIterator[None]:
        async with (
            running_task("drift-change-listener", changes.listen_forever),
            running_task("drift-run-worker", runs.run_forever),
        ):
            yield
        await ingest_channel.close()

    reports_notifier = outbox_relay(
        settings,
        engine,
        published,
        target=settings.reports_target,
        full_service_name="upstream.reports.v1.ReportsService",
        publish=notify_reports,
    )

    servicer = DriftServicer(store, ingest, runs, summaries)
    audit_log = AuditLog(engine, "drift")
    servicer.serve_audit(audit_log)
    retention = RetentionJob(settings, [audit_purge(audit_log)])
    return ServiceDefinition(
        full_name="upstream.drift.v1.DriftService",
        servicer=servicer,
        add_to_server=drift_service_pb2_grpc.add_DriftServiceServicer_to_server,
        background=[background, reports_notifier, retention.running],
    )

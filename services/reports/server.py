"""ReportsService over gRPC: a thin adapter between the contract and the domain and store."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterator, Sequence

import grpc
import pyarrow as pa
from google.protobuf import duration_pb2, empty_pb2, json_format
from google.type import money_pb2
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import errors, names
from runtime.audit import AuditLog, AuditMethods
from runtime.auth import ServiceAuthorization
from runtime.clients import open_channel
from runtime.messages import set_fields, timestamp_message
from runtime.retention import RetentionJob, audit_purge
from runtime.server import ServiceDefinition
from runtime.settings import Settings
from runtime.standard_methods import (
    customer_of,
    etag_precondition,
    get_resource,
    list_resources,
    sign_page_tokens_with,
)
from runtime.telemetry import trace_carrier
from runtime.updates import mask_paths
from runtime.validation import MAX_VIOLATIONS
from services.reports import content
from services.reports.alert_api import AlertPolicyMethods
from services.reports.alert_store import AlertStore
from services.reports.alerts import AlertWorker, EmailChannel
from services.reports.builds import ReportBuilds
from services.reports.deliveries import WebhookDeliveries
from services.reports.endpoints import (
    EndpointPolicy,
    RefusedEndpointError,
    WebhookSender,
    dns_resolver,
)
from services.reports.report_api import ReportMethods, report_message, resolve_period
from services.reports.report_store import ReportStore
from services.reports.schedule_api import ScheduleMethods
from services.reports.schedules import Scheduler, ScheduleStore
from services.reports.store import (
    UNDELIVERED,
    DriftEventState,
    ReportsStore,
    StoredDelivery,
)
from upstream.drift.v1 import drift_service_pb2_grpc
from upstream.drift.v1 import resources_pb2 as drift_resources_pb2
from upstream.ingest.v1 import ingest_service_pb2_grpc
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc, resources_pb2

logger = logging.getLogger("upstream.reports")

WEBHOOK_NAME = "customers/{customer}/webhooks/{webhook}"
DELIVERY_NAME = "customers/{customer}/webhooks/{webhook}/deliveries/{delivery}"
DRIFT_EVENT_NAME = "customers/{customer}/driftEvents/{event}"
WEBHOOK_FIELDS = ("display_name", "url", "event_types", "disabled")
# Standard Webhooks secrets: "whsec_" and base64 of random bytes (24–64 of them).
SECRET_BYTES = 32
# After a rotation, sends are signed with the replaced secret too for this long.
PREVIOUS_SECRET_VALID_SECONDS = 24 * 3600
# The range of a PostgreSQL bigint, which holds the dollars at stake in cents.
CENTS_RANGE = range(-(2**63), 2**63)
NANOS_PER_CENT = 10_000_000


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_message(row: Row, *, with_secret: bool = False) -> resources_pb2.Webhook:
    previous_expires = row.previous_secret_expire_time
    if previous_expires is not None and previous_expires <= dt.datetime.now(dt.UTC):
        previous_expires = None  # expired, not yet dropped from the row
    webhook = resources_pb2.Webhook(
        name=WEBHOOK_NAME.format(customer=row.customer_id, webhook=row.webhook_id),
        display_name=row.display_name,
        url=row.url,
        event_types=[resources_pb2.EventType.Value(t) for t in row.event_types],
        signing_secret=row.signing_secret if with_secret else "",
        disabled=row.disabled,
        create_time=timestamp_message(row.create_time),
        update_time=timestamp_message(row.update_time),
        etag=webhook_etag(row),
        disabled_reason=row.disabled_reason or "",
    )
    return set_fields(webhook, previous_secret_expire_time=timestamp_message(previous_expires))


def webhook_etag(row: Row) -> str:
    return format(int(row.update_time.timestamp() * 1_000_000), "x")


def delivery_message(stored: StoredDelivery) -> resources_pb2.WebhookDelivery:
    row = stored.row
    delivery = resources_pb2.WebhookDelivery(
        name=DELIVERY_NAME.format(
            customer=row.customer_id, webhook=row.webhook_id, delivery=row.delivery_id
        ),
        event_id=row.message_id,
        event_type=resources_pb2.EventType.Value(row.event_type),
        state=resources_pb2.WebhookDelivery.State.Value(row.state),
        attempt_count=row.attempt_count,
        redelivery_count=row.redelivery_count,
        last_response_code=row.last_response_code or 0,
        last_error=row.last_error or "",
    )
    for attempt in stored.attempts:
        latency = duration_pb2.Duration()
        latency.FromNanoseconds(int(attempt.latency_seconds * 1e9))
        delivery.attempts.append(
            resources_pb2.WebhookDelivery.Attempt(
                start_time=timestamp_message(attempt.start_time),
                response_code=attempt.response_code or 0,
                latency=latency,
                response_body=attempt.response_body,
                error=attempt.error,
            )
        )
    return set_fields(
        delivery,
        next_attempt_time=timestamp_message(row.next_attempt_time),
        create_time=timestamp_message(row.create_time),
        complete_time=timestamp_message(row.complete_time),
    )


def event_type_violations(event_types: Sequence[int]) -> list[errors.FieldViolation]:
    if not event_types:
        return [errors.FieldViolation("webhook.event_types", "name at least one")]
    if resources_pb2.EVENT_TYPE_UNSPECIFIED in event_types:
        return [
            errors.FieldViolation("webhook.event_types", "must not hold EVENT_TYPE_UNSPECIFIED")
        ]
    if len(set(event_types)) != len(event_types):
        return [errors.FieldViolation("webhook.event_types", "must not hold duplicates")]
    return []


def cents(money: money_pb2.Money) -> int:
    """A google.type.Money amount in cents (a fraction of a cent rounded down)."""
    return (money.units * 100 * NANOS_PER_CENT + money.nanos) // NANOS_PER_CENT


def drift_event_violations(
    event: drift_resources_pb2.DriftEvent, customer: str, field: str
) -> list[errors.FieldViolation]:
    """What makes `event` (the request's `field`) unfit to record under `customer`."""
    problems: list[errors.FieldViolation] = []
    try:
        owner = names.parse(event.name, DRIFT_EVENT_NAME, field=f"{field}.name")["customer"]
    except errors.ApiError as error:
        problems.extend(error.violations)
    else:
        if owner != customer:
            problems.append(
                errors.FieldViolation(f"{field}.name", f"must be under customers/{customer}")
            )
    if not event.HasField("update_time"):
        problems.append(errors.FieldViolation(f"{field}.update_time", "required field is unset"))
    if cents(event.dollars_at_stake) not in CENTS_RANGE:
        problems.append(
            errors.FieldViolation(f"{field}.dollars_at_stake", "must be within ±2^63 cents")
        )
    return problems


def drift_event_state(event: drift_resources_pb2.DriftEvent) -> DriftEventState:
    """What reports keeps of an event that has no violations."""
    return DriftEventState(
        event_id=names.parse(event.name, DRIFT_EVENT_NAME)["event"],
        version=event.update_time.ToDatetime(tzinfo=dt.UTC),
        payer=event.payer,
        code_group=event.code_group,
        metric=drift_resources_pb2.Metric.Name(event.metric),
        severity=drift_resources_pb2.DriftEvent.Severity.Name(event.severity),
        active=event.active,
        summary=event.summary,
        dollars_at_stake_cents=cents(event.dollars_at_stake),
        event=event.SerializeToString(deterministic=True),
        data=json_format.MessageToDict(event),
    )


def _invalid_webhook(problems: list[errors.FieldViolation]) -> errors.ApiError:
    first = problems[0]
    return errors.invalid_argument(f"{first.field} {first.description}", *problems)


def _stale(name: str) -> errors.ApiError:
    return errors.ApiError(
        grpc.StatusCode.ABORTED,
        f"{errors.client_text(name)} changed since its etag was read",
        reason="ETAG_MISMATCH",
    )


def _not_redeliverable(name: str, delivery: StoredDelivery) -> errors.ApiError:
    """Why `delivery`, which was not queued again, cannot be: in flight, or its webhook off."""
    state = delivery.row.state
    shown = errors.client_text(name)
    if state in UNDELIVERED:
        message = (
            f"{shown} is still being delivered (state {state}); redeliver it once it has "
            "SUCCEEDED or FAILED"
        )
        reason = "DELIVERY_IN_PROGRESS"
    else:
        webhook = WEBHOOK_NAME.format(
            customer=delivery.row.customer_id, webhook=delivery.row.webhook_id
        )
        message = (
            f"{webhook} is disabled; enable it first (update it with `disabled` false), "
            "then redeliver"
        )
        reason = "WEBHOOK_DISABLED"
    return errors.ApiError(
        grpc.StatusCode.FAILED_PRECONDITION, message, reason=reason, metadata={"resource": shown}
    )


class ReportsServicer(
    AuditMethods,
    ReportMethods,
    ScheduleMethods,
    AlertPolicyMethods,
    reports_service_pb2_grpc.ReportsServiceServicer,
):
    def __init__(
        self,
        store: ReportsStore,
        endpoints: EndpointPolicy,
        deliveries: WebhookDeliveries,
        queued: asyncio.Event,
        reports: ReportStore,
        builds_wake_up: asyncio.Event,
        schedules: ScheduleStore,
        scheduler_wake_up: asyncio.Event,
    ) -> None:
        self._store = store
        self._endpoints = endpoints
        self._deliveries = deliveries
        self._queued = queued
        self._reports = reports
        self._builds_wake_up = builds_wake_up
        self._schedules = schedules
        self._scheduler_wake_up = scheduler_wake_up

    async def _url_violations(self, url: str) -> list[errors.FieldViolation]:
        """Whether deliveries may go to `url`, resolving its host now."""
        try:
            await self._endpoints.check(url)
        except RefusedEndpointError as refused:
            return [errors.FieldViolation("webhook.url", str(refused))]
        return []

    async def CreateWebhook(
        self,
        request: reports_service_pb2.CreateWebhookRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.Webhook:
        customer = customer_of(request.parent)
        webhook = request.webhook
        problems = event_type_violations(webhook.event_types)
        problems += await self._url_violations(webhook.url)
        if problems:
            raise _invalid_webhook(problems)
        secret = new_signing_secret()
        row = await self._store.create_webhook(
            customer,
            "wh_" + secrets.token_hex(8),
            display_name=webhook.display_name,
            url=webhook.url,
            event_types=[resources_pb2.EventType.Name(t) for t in webhook.event_types],
            signing_secret=secret,
            disabled=webhook.disabled,
        )
        return webhook_message(row, with_secret=True)

    async def GetWebhook(
        self, request: reports_service_pb2.GetWebhookRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Webhook:
        return await get_resource(
            request.name, WEBHOOK_NAME, self._store.get_webhook, webhook_message
        )

    async def UpdateWebhook(
        self,
        request: reports_service_pb2.UpdateWebhookRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.Webhook:
        change = request.webhook
        parsed = names.parse(change.name, WEBHOOK_NAME, field="webhook.name")
        paths = mask_paths(request.update_mask, change, WEBHOOK_FIELDS)
        current = await self._store.get_webhook(parsed["customer"], parsed["webhook"])
        if current is None:
            raise errors.not_found(change.name)
        if change.etag and change.etag != webhook_etag(current):
            raise _stale(change.name)
        problems: list[errors.FieldViolation] = []
        if "event_types" in paths:
            problems += event_type_violations(change.event_types)
        if "url" in paths:
            problems += await self._url_violations(change.url)
        if problems:
            raise _invalid_webhook(problems)
        values = {
            path: [resources_pb2.EventType.Name(t) for t in change.event_types]
            if path == "event_types"
            else getattr(change, path)
            for path in paths
        }
        row = await self._store.update_webhook(
            parsed["customer"],
            parsed["webhook"],
            values,
            expected_update_time=current.update_time if change.etag else None,
        )
        if row is None:
            raise _stale(change.name) if change.etag else errors.not_found(change.name)
        return webhook_message(row)

    async def TestWebhook(
        self,
        request: reports_service_pb2.TestWebhookRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.WebhookDelivery:
        parsed = names.parse(request.name, WEBHOOK_NAME)
        webhook = await self._store.get_webhook(parsed["customer"], parsed["webhook"])
        if webhook is None:
            raise errors.not_found(request.name)
        data = json_format.MessageToDict(webhook_message(webhook))
        delivery = await self._deliveries.test_now(parsed["customer"], parsed["webhook"], data)
        if delivery is None:
            raise errors.not_found(request.name)
        return delivery_message(delivery)

    async def ListWebhookDeliveries(
        self,
        request: reports_service_pb2.ListWebhookDeliveriesRequest,
        context: grpc.aio.ServicerContext,
    ) -> reports_service_pb2.ListWebhookDeliveriesResponse:
        return await list_resources(
            request,
            reports_service_pb2.ListWebhookDeliveriesResponse,
            "webhook_deliveries",
            self._store.list_deliveries,
            lambda last: [last.row.create_time.isoformat(), last.row.delivery_id],
            delivery_message,
            parent=WEBHOOK_NAME,
        )

    async def RotateWebhookSecret(
        self,
        request: reports_service_pb2.RotateWebhookSecretRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.Webhook:
        parsed = names.parse(request.name, WEBHOOK_NAME)
        row = await self._store.rotate_webhook_secret(
            parsed["customer"],
            parsed["webhook"],
            new_signing_secret(),
            keep_previous_seconds=PREVIOUS_SECRET_VALID_SECONDS,
        )
        if row is None:
            raise errors.not_found(request.name)
        return webhook_message(row, with_secret=True)

    async def GetWebhookDelivery(
        self,
        request: reports_service_pb2.GetWebhookDeliveryRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.WebhookDelivery:
        return await get_resource(
            request.name, DELIVERY_NAME, self._store.get_delivery, delivery_message
        )

    async def RedeliverWebhookDelivery(
        self,
        request: reports_service_pb2.RedeliverWebhookDeliveryRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.WebhookDelivery:
        parsed = names.parse(request.name, DELIVERY_NAME)
        found = await self._store.redeliver(
            parsed["customer"],
            parsed["webhook"],
            parsed["delivery"],
            trace_context=trace_carrier(),
        )
        if found.delivery is None:
            raise errors.not_found(request.name)
        if not found.queued:
            raise _not_redeliverable(request.name, found.delivery)
        self._queued.set()
        return delivery_message(found.delivery)

    async def DeleteWebhook(
        self,
        request: reports_service_pb2.DeleteWebhookRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        parsed = names.parse(request.name, WEBHOOK_NAME)
        customer, webhook_id = parsed["customer"], parsed["webhook"]
        expected = await etag_precondition(
            request.etag,
            request.name,
            lambda: self._store.get_webhook(customer, webhook_id),
            webhook_etag,
        )
        if not await self._store.delete_webhook(
            customer, webhook_id, expected_update_time=expected
        ):
            raise errors.stale(request.name) if request.etag else errors.not_found(request.name)
        return empty_pb2.Empty()

    async def ListWebhooks(
        self,
        request: reports_service_pb2.ListWebhooksRequest,
        context: grpc.aio.ServicerContext,
    ) -> reports_service_pb2.ListWebhooksResponse:
        return await list_resources(
            request,
            reports_service_pb2.ListWebhooksResponse,
            "webhooks",
            self._store.list_webhooks,
            lambda last: [last.create_time.isoformat(), last.webhook_id],
            webhook_message,
        )

    async def RecordDriftEvents(
        self,
        request: reports_service_pb2.RecordDriftEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> reports_service_pb2.RecordDriftEventsResponse:
        customer = customer_of(request.parent)
        problems: list[errors.FieldViolation] = []
        if not request.batch_id:
            problems.append(errors.FieldViolation("batch_id", "required field is empty"))
        if not request.drift_events:
            problems.append(errors.FieldViolation("drift_events", "name 1–1000 drift events"))
        for index, event in enumerate(request.drift_events):
            if len(problems) >= MAX_VIOLATIONS:
                break
            problems.extend(drift_event_violations(event, customer, f"drift_events[{index}]"))
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise errors.invalid_argument(f"{first.field} {first.description}{more}", *problems)
        recorded, queued = await self._store.record_drift_events(
            customer,
            request.batch_id,
            [drift_event_state(e) for e in request.drift_events],
            max_attempts=self._deliveries.max_attempts,
            trace_context=trace_carrier(),
        )
        if queued:
            self._queued.set()
        return reports_service_pb2.RecordDriftEventsResponse(
            events_recorded=recorded, deliveries_queued=queued
        )


def build(settings: Settings, engine: AsyncEngine) -> ServiceDefinition:
    sign_page_tokens_with(settings.page_token_keys)
    # Arrow's own allocator (mimalloc) keeps freed pages for reuse: ~90 MB more resident
    # memory after a large export for no gain in speed. The C library's gives them back.
    pa.set_memory_pool(pa.system_memory_pool())
    store = ReportsStore(engine)
    endpoints = EndpointPolicy(
        dns_resolver(settings.webhook_host_overrides),
        allow_loopback=settings.webhook_allow_loopback,
    )
    if settings.webhook_allow_loopback:
        logger.warning(
            "webhooks may deliver to loopback addresses (WEBHOOK_ALLOW_LOOPBACK): a setting "
            "for local runs and tests, never for production"
        )
    queued = asyncio.Event()
    deliveries = WebhookDeliveries(
        store,
        WebhookSender(endpoints, settings.webhook_attempt_timeout_seconds),
        retry_delays=settings.webhook_retry_delays_seconds,
        attempt_timeout_seconds=settings.webhook_attempt_timeout_seconds,
        concurrency=settings.webhook_concurrency,
        wake_up=queued,
        lease_margin_seconds=settings.webhook_lease_margin_seconds,
    )

    report_store = ReportStore(engine)
    builds_wake_up = asyncio.Event()

    authorization = ServiceAuthorization(settings)

    # `build` runs on the server's event loop, which the channels belong to. Reports reads
    # ingest and drift over their contracts only, on the service's own behalf.
    channels = [
        open_channel(
            target,
            service,
            default_timeout=settings.client_timeout_seconds,
            authorization=authorization,
        )
        for target, service in (
            (settings.ingest_target, "upstream.ingest.v1.IngestService"),
            (settings.drift_target, "upstream.drift.v1.DriftService"),
        )
    ]
    builds = ReportBuilds(
        report_store,
        content.Sources(
            ingest=ingest_service_pb2_grpc.IngestServiceStub(channels[0]),
            drift=drift_service_pb2_grpc.DriftServiceStub(channels[1]),
        ),
        report_message,
        concurrency=settings.report_build_concurrency,
        lease_seconds=settings.report_lease_seconds,
        webhook_max_attempts=deliveries.max_attempts,
        wake_up=builds_wake_up,
        deliveries_queued=queued,
    )

    schedule_store = ScheduleStore(engine)
    scheduler_wake_up = asyncio.Event()
    scheduler = Scheduler(
        schedule_store,
        lambda parameters, day: resolve_period(parameters, "report_template.parameters", today=day),
        reports_created=builds_wake_up,
        wake_up=scheduler_wake_up,
    )

    @contextlib.asynccontextmanager
    async def close_sources() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.gather(*(channel.close() for channel in channels))

    servicer = ReportsServicer(
        store,
        endpoints,
        deliveries,
        queued,
        report_store,
        builds_wake_up,
        schedule_store,
        scheduler_wake_up,
    )
    alert_store = AlertStore(engine)
    servicer.serve_alerts(alert_store, endpoints)
    audit_log = AuditLog(engine, "reports")
    servicer.serve_audit(audit_log)
    retention = RetentionJob(settings, [audit_purge(audit_log)])
    alerts = AlertWorker(
        alert_store,
        EmailChannel(settings, settings.webhook_attempt_timeout_seconds),
        WebhookSender(endpoints, settings.webhook_attempt_timeout_seconds),
        base_url=settings.public_base_url,
        retry_delays=settings.webhook_retry_delays_seconds,
        attempt_timeout_seconds=settings.webhook_attempt_timeout_seconds,
        concurrency=settings.webhook_concurrency,
    )

    return ServiceDefinition(
        full_name="upstream.reports.v1.ReportsService",
        servicer=servicer,
        add_to_server=reports_service_pb2_grpc.add_ReportsServiceServicer_to_server,
        service_only_methods=frozenset({"/upstream.reports.v1.ReportsService/RecordDriftEvents"}),
        background=[
            deliveries.running,
            builds.running,
            scheduler.running,
            alerts.running,
            retention.running,
            close_sources,
        ],
    )

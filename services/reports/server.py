"""ReportsService over gRPC: a thin adapter between the contract and the domain and store."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from urllib.parse import urlsplit

import grpc
from google.protobuf import empty_pb2
from google.type import money_pb2
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import errors, names
from runtime.messages import timestamp_message
from runtime.server import ServiceDefinition
from runtime.settings import Settings
from runtime.standard_methods import (
    customer_of,
    get_resource,
    list_resources,
    sign_page_tokens_with,
)
from runtime.validation import MAX_VIOLATIONS
from services.reports.store import DriftEventState, ReportsStore
from upstream.drift.v1 import resources_pb2 as drift_resources_pb2
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc, resources_pb2

WEBHOOK_NAME = "customers/{customer}/webhooks/{webhook}"
DRIFT_EVENT_NAME = "customers/{customer}/driftEvents/{event}"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
# The range of a PostgreSQL bigint, which holds the dollars at stake in cents.
CENTS_RANGE = range(-(2**63), 2**63)
NANOS_PER_CENT = 10_000_000


def webhook_message(row: Row, *, with_secret: bool = False) -> resources_pb2.Webhook:
    return resources_pb2.Webhook(
        name=WEBHOOK_NAME.format(customer=row.customer_id, webhook=row.webhook_id),
        display_name=row.display_name,
        url=row.url,
        event_types=[resources_pb2.EventType.Value(t) for t in row.event_types],
        signing_secret=row.signing_secret if with_secret else "",
        disabled=row.disabled,
        create_time=timestamp_message(row.create_time),
        update_time=timestamp_message(row.update_time),
        etag=format(int(row.update_time.timestamp() * 1_000_000), "x"),
    )


def url_violations(url: str) -> list[errors.FieldViolation]:
    """Deliveries go over HTTPS; plain HTTP only to this machine (for local receivers)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return []
    if parts.scheme == "http" and parts.hostname in LOCAL_HOSTS:
        return []
    return [
        errors.FieldViolation("webhook.url", "must be an https:// URL (http:// only for localhost)")
    ]


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
    )


class ReportsServicer(reports_service_pb2_grpc.ReportsServiceServicer):
    def __init__(self, store: ReportsStore) -> None:
        self._store = store

    async def CreateWebhook(
        self,
        request: reports_service_pb2.CreateWebhookRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.Webhook:
        customer = customer_of(request.parent)
        webhook = request.webhook
        problems = url_violations(webhook.url)
        if not webhook.event_types:
            problems.append(errors.FieldViolation("webhook.event_types", "name at least one"))
        if problems:
            raise errors.invalid_argument("webhook is not valid", *problems)
        # Standard Webhooks secret format: "whsec_" and base64 of random bytes.
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
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

    async def DeleteWebhook(
        self,
        request: reports_service_pb2.DeleteWebhookRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        parsed = names.parse(request.name, WEBHOOK_NAME)
        if not await self._store.delete_webhook(parsed["customer"], parsed["webhook"]):
            raise errors.not_found(request.name)
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
            customer, request.batch_id, [drift_event_state(e) for e in request.drift_events]
        )
        return reports_service_pb2.RecordDriftEventsResponse(
            events_recorded=recorded, deliveries_queued=queued
        )


def build(settings: Settings, engine: AsyncEngine) -> ServiceDefinition:
    sign_page_tokens_with(settings.page_token_keys)
    return ServiceDefinition(
        full_name="upstream.reports.v1.ReportsService",
        servicer=ReportsServicer(ReportsStore(engine)),
        add_to_server=reports_service_pb2_grpc.add_ReportsServiceServicer_to_server,
        service_only_methods=frozenset({"/upstream.reports.v1.ReportsService/RecordDriftEvents"}),
    )

"""ReportsService over gRPC: a thin adapter between the contract and the domain and store."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import urlsplit

import grpc
from google.protobuf import empty_pb2
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
from services.reports.store import ReportsStore
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc, resources_pb2

WEBHOOK_NAME = "customers/{customer}/webhooks/{webhook}"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


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


def build(settings: Settings, engine: AsyncEngine) -> ServiceDefinition:
    sign_page_tokens_with(settings.page_token_keys)
    return ServiceDefinition(
        full_name="upstream.reports.v1.ReportsService",
        servicer=ReportsServicer(ReportsStore(engine)),
        add_to_server=reports_service_pb2_grpc.add_ReportsServiceServicer_to_server,
        service_only_methods=frozenset({"/upstream.reports.v1.ReportsService/RecordDriftEvents"}),
    )

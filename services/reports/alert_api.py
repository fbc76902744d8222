"""The alert methods of ReportsService over gRPC: the customer's alert policy (a singleton,
AIP-156) and the alerts it sent, as a mixin of the servicer."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.protobuf import duration_pb2

from runtime import errors, names
from runtime.messages import set_fields, timestamp_message
from runtime.standard_methods import get_resource, list_resources
from runtime.updates import mask_paths
from services.reports.alert_policy import (
    DEFAULT_SUPPRESSION_SECONDS,
    IMMEDIATE,
    PolicyValues,
    value_problems,
)
from services.reports.alert_store import SLACK, AlertStore, StoredAlert, StoredPolicy
from services.reports.endpoints import EndpointPolicy, RefusedEndpointError
from upstream.drift.v1 import resources_pb2 as drift_resources
from upstream.reports.v1 import reports_service_pb2, resources_pb2

POLICY_NAME = "customers/{customer}/alertPolicy"
ALERT_NAME = "customers/{customer}/alerts/{alert}"
POLICY_FIELDS = (
    "email_recipients",
    "slack_webhook_url",
    "minimum_severity",
    "suppression_window",
    "delivery_mode",
    "digest_hour",
    "time_zone",
    "disabled",
    "alert_when_ended",
)
_DEFAULTS = PolicyValues()


def policy_message(customer: str, stored: StoredPolicy) -> resources_pb2.AlertPolicy:
    values = stored.values
    window = duration_pb2.Duration(seconds=values.suppression_window_seconds)
    policy = resources_pb2.AlertPolicy(
        name=POLICY_NAME.format(customer=customer),
        email_recipients=values.email_recipients,
        slack_webhook_host=urlsplit(values.slack_webhook_url).hostname or "",
        minimum_severity=drift_resources.DriftEvent.Severity.Value(values.minimum_severity),
        suppression_window=window,
        delivery_mode=resources_pb2.AlertPolicy.DeliveryMode.Value(values.delivery_mode),
        digest_hour=values.digest_hour,
        time_zone=values.time_zone,
        disabled=values.disabled,
        alert_when_ended=values.alert_when_ended,
        etag=stored.etag,
    )
    return set_fields(policy, update_time=timestamp_message(stored.update_time))


def alert_message(stored: StoredAlert) -> resources_pb2.Alert:
    row = stored.row
    recipients = (
        [urlsplit(row.slack_webhook_url).hostname or ""]
        if row.channel == SLACK
        else list(row.recipients)
    )
    alert = resources_pb2.Alert(
        name=ALERT_NAME.format(customer=row.customer_id, alert=row.alert_id),
        kind=resources_pb2.Alert.Kind.Value(row.kind),
        channel=resources_pb2.Alert.Channel.Value(row.channel),
        recipients=recipients,
        subject=row.subject,
        drift_events=[
            f"customers/{row.customer_id}/driftEvents/{event}" for event in stored.event_ids
        ],
        drift_event_change_count=stored.change_count,
        webhook=f"customers/{row.customer_id}/webhooks/{row.webhook_id}" if row.webhook_id else "",
        state=resources_pb2.Alert.State.Value(row.state),
        attempt_count=row.attempt_count,
        last_error=row.last_error or "",
    )
    for attempt in stored.attempts:
        alert.attempts.append(
            set_fields(
                resources_pb2.Alert.Attempt(
                    response_code=attempt.response_code or 0, error=attempt.error
                ),
                start_time=timestamp_message(attempt.start_time),
            )
        )
    return set_fields(
        alert,
        next_attempt_time=timestamp_message(row.next_attempt_time),
        create_time=timestamp_message(row.create_time),
        complete_time=timestamp_message(row.complete_time),
    )


def policy_value(change: resources_pb2.AlertPolicy, path: str) -> Any:
    """The stored form of field `path` of `change`; an unset field is its default."""
    if path == "email_recipients":
        return tuple(change.email_recipients)
    if path == "minimum_severity":
        severity = change.minimum_severity
        return (
            drift_resources.DriftEvent.Severity.Name(severity)
            if severity
            else _DEFAULTS.minimum_severity
        )
    if path == "suppression_window":
        if not change.HasField("suppression_window"):
            return DEFAULT_SUPPRESSION_SECONDS
        return change.suppression_window.seconds
    if path == "delivery_mode":
        mode = change.delivery_mode
        return resources_pb2.AlertPolicy.DeliveryMode.Name(mode) if mode else IMMEDIATE
    if path == "digest_hour":
        return change.digest_hour if change.HasField("digest_hour") else _DEFAULTS.digest_hour
    if path == "time_zone":
        return change.time_zone or _DEFAULTS.time_zone
    return getattr(change, path)


class AlertPolicyMethods:
    """GetAlertPolicy, UpdateAlertPolicy, ListAlerts and GetAlert; `serve_alerts` gives
    them their store and the endpoint policy Slack URLs are checked with."""

    _alert_store: AlertStore
    _slack_endpoints: EndpointPolicy

    def serve_alerts(self, store: AlertStore, endpoints: EndpointPolicy) -> None:
        self._alert_store = store
        self._slack_endpoints = endpoints

    async def GetAlertPolicy(
        self,
        request: reports_service_pb2.GetAlertPolicyRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.AlertPolicy:
        customer = names.parse(request.name, POLICY_NAME)["customer"]
        return policy_message(customer, await self._alert_store.get_policy(customer))

    async def UpdateAlertPolicy(
        self,
        request: reports_service_pb2.UpdateAlertPolicyRequest,
        context: grpc.aio.ServicerContext,
    ) -> resources_pb2.AlertPolicy:
        change = request.alert_policy
        customer = names.parse(change.name, POLICY_NAME, field="alert_policy.name")["customer"]
        paths = mask_paths(request.update_mask, change, POLICY_FIELDS)
        current = await self._alert_store.get_policy(customer)
        if change.etag and change.etag != current.etag:
            raise _stale(change.name)
        problems: list[errors.FieldViolation] = []
        window = change.suppression_window
        if "suppression_window" in paths and window.nanos:
            problems.append(
                errors.FieldViolation("alert_policy.suppression_window", "must be whole seconds")
            )
        updates = {
            "suppression_window_seconds" if path == "suppression_window" else path: policy_value(
                change, path
            )
            for path in paths
        }
        values = dataclasses.replace(current.values, **updates)
        problems += [
            errors.FieldViolation(f"alert_policy.{field}", description)
            for field, description in value_problems(values)
        ]
        if "slack_webhook_url" in paths and values.slack_webhook_url:
            try:
                await self._slack_endpoints.check(values.slack_webhook_url)
            except RefusedEndpointError as refused:
                problems.append(
                    errors.FieldViolation("alert_policy.slack_webhook_url", str(refused))
                )
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise errors.invalid_argument(f"{first.field} {first.description}{more}", *problems)
        stored = await self._alert_store.put_policy(customer, values, change.etag)
        if stored is None:
            raise _stale(change.name)
        return policy_message(customer, stored)

    async def ListAlerts(
        self,
        request: reports_service_pb2.ListAlertsRequest,
        context: grpc.aio.ServicerContext,
    ) -> reports_service_pb2.ListAlertsResponse:
        return await list_resources(
            request,
            reports_service_pb2.ListAlertsResponse,
            "alerts",
            self._alert_store.list_alerts,
            lambda last: [last.row.create_time.isoformat(), last.row.alert_id],
            alert_message,
        )

    async def GetAlert(
        self, request: reports_service_pb2.GetAlertRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Alert:
        return await get_resource(
            request.name, ALERT_NAME, self._alert_store.get_alert, alert_message
        )


def _stale(name: str) -> errors.ApiError:
    return errors.ApiError(
        grpc.StatusCode.ABORTED,
        f"{errors.client_text(name)} changed since its etag was read",
        reason="ETAG_MISMATCH",
    )

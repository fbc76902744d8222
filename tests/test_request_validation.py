"""Hostile requests over real gRPC to the real services: each is refused with
INVALID_ARGUMENT and a BadRequest violation naming the field, and nothing is written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from google.type import date_pb2
from grpc_status import rpc_status

from tests.system import System
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc
from upstream.drift.v1 import resources_pb2 as drift_resources
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc
from upstream.ingest.v1 import resources_pb2 as ingest_resources
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc
from upstream.reports.v1 import resources_pb2 as reports_resources

TIMEOUT = 10
# An enum number no enum of the contract defines (typed Any: the stubs accept only members).
UNDEFINED: Any = 99


def metadata(system: System, customer: str, role: str = "admin") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {system.token(customer, role)}")]


def refusal(call: Callable[[], Any]) -> tuple[str, dict[str, str]]:
    """The status message and the field violations (field → description) of a refused call."""
    with pytest.raises(grpc.RpcError) as refused:
        call()
    error: Any = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad_request) for d in status.details if d.Is(bad_request.DESCRIPTOR))
    return status.message, {v.field: v.description for v in bad_request.field_violations}


# --- reports ------------------------------------------------------------------------------

GOOD_WEBHOOK: dict[str, Any] = {"url": "https://hooks.example.com/upstream", "event_types": [1]}


@pytest.mark.parametrize(
    ("case", "webhook", "field"),
    [
        ("nul", {"display_name": "ops\x00hook"}, "webhook.display_name"),
        ("long-name", {"display_name": "A" * 5 * 1024 * 1024}, "webhook.display_name"),
        ("long-url", {"url": "https://hooks.example.com/" + "p" * 2987}, "webhook.url"),
        ("enum", {"event_types": [1, 99]}, "webhook.event_types[1]"),
    ],
)
def test_a_bad_webhook_is_refused_and_not_created(
    system: System,
    reports: reports_service_pb2_grpc.ReportsServiceStub,
    case: str,
    webhook: dict[str, Any],
    field: str,
) -> None:
    customer = f"hostile-webhook-{case}"
    auth = metadata(system, customer)
    request = reports_service_pb2.CreateWebhookRequest(
        parent=f"customers/{customer}", webhook=reports_resources.Webhook(**GOOD_WEBHOOK | webhook)
    )
    _, found = refusal(lambda: reports.CreateWebhook(request, metadata=auth, timeout=TIMEOUT))
    assert list(found) == [field]
    listed = reports.ListWebhooks(
        reports_service_pb2.ListWebhooksRequest(parent=f"customers/{customer}"),
        metadata=auth,
        timeout=TIMEOUT,
    )
    assert list(listed.webhooks) == []


def test_a_webhook_secret_sent_by_the_client_is_not_kept(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    customer = "hostile-webhook-secret"
    created = reports.CreateWebhook(
        reports_service_pb2.CreateWebhookRequest(
            parent=f"customers/{customer}",
            webhook=reports_resources.Webhook(
                **GOOD_WEBHOOK, signing_secret="whsec_chosen_by_the_client"
            ),
        ),
        metadata=metadata(system, customer),
        timeout=TIMEOUT,
    )
    assert created.signing_secret.startswith("whsec_")
    assert created.signing_secret != "whsec_chosen_by_the_client"


def test_an_over_long_name_is_a_field_violation_not_a_transport_error(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    auth = metadata(system, "acme")
    name = "customers/acme/webhooks/" + "w" * 20_000
    message, found = refusal(
        lambda: reports.GetWebhook(
            reports_service_pb2.GetWebhookRequest(name=name), metadata=auth, timeout=TIMEOUT
        )
    )
    assert found == {"name": "must be at most 500 characters, got 20024"}
    assert message == "name must be at most 500 characters, got 20024"


def test_not_found_quotes_a_long_name_cut_short(
    system: System, reports: reports_service_pb2_grpc.ReportsServiceStub
) -> None:
    name = "customers/acme/webhooks/" + "w" * 470
    with pytest.raises(grpc.RpcError) as missing:
        reports.GetWebhook(
            reports_service_pb2.GetWebhookRequest(name=name),
            metadata=metadata(system, "acme"),
            timeout=TIMEOUT,
        )
    error: Any = missing.value
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == name[:99] + "… not found"


# --- ingest -------------------------------------------------------------------------------


def upload_stream(
    *messages: ingest_service_pb2.CreateUploadRequest,
) -> Iterator[ingest_service_pb2.CreateUploadRequest]:
    yield from messages


CSV = (
    b"claim_id,payer,status,decision_date,billed_amount,paid_amount\n"
    b"C1,Aetna,PAID,2026-03-02,100,80\n"
)


@pytest.mark.parametrize(
    ("case", "first", "later", "field"),
    [
        ("nul-file-name", {"upload": {"file_name": "claims\x00.csv"}}, [], "upload.file_name"),
        ("mode", {"upload": {"mode": 99}}, [], "upload.mode"),
        ("request-id", {"request_id": "k\x00"}, [], "request_id"),
        (
            "column-map",
            {"upload": {"column_map": {"claim_id": "Claim\x00"}}},
            [],
            "upload.column_map[claim_id]",
        ),
        # The first chunk is good; a later message of the stream is not.
        (
            "later-chunk",
            {},
            [{"http_body": {"content_type": "text/csv\x00", "data": CSV}}],
            "http_body.content_type",
        ),
    ],
)
def test_a_bad_upload_is_refused_and_stores_nothing(
    system: System,
    ingest: ingest_service_pb2_grpc.IngestServiceStub,
    case: str,
    first: dict[str, Any],
    later: list[dict[str, Any]],
    field: str,
) -> None:
    customer = f"hostile-upload-{case}"
    auth = metadata(system, customer)
    opening = ingest_service_pb2.CreateUploadRequest(
        parent=f"customers/{customer}", http_body={"data": CSV}, **first
    )
    rest = [ingest_service_pb2.CreateUploadRequest(**message) for message in later]
    _, found = refusal(
        lambda: ingest.CreateUpload(upload_stream(opening, *rest), metadata=auth, timeout=TIMEOUT)
    )
    assert list(found) == [field]
    listed = ingest.ListUploads(
        ingest_service_pb2.ListUploadsRequest(parent=f"customers/{customer}"),
        metadata=auth,
        timeout=TIMEOUT,
    )
    assert list(listed.uploads) == []
    claims = ingest.ListClaims(
        ingest_service_pb2.ListClaimsRequest(parent=f"customers/{customer}"),
        metadata=auth,
        timeout=TIMEOUT,
    )
    assert list(claims.claims) == []


def test_nul_in_a_filter_a_name_or_a_mapping_is_a_field_violation(
    system: System, ingest: ingest_service_pb2_grpc.IngestServiceStub
) -> None:
    customer = "hostile-ingest-reads"
    parent = f"customers/{customer}"
    auth = metadata(system, customer)
    _, found = refusal(
        lambda: ingest.ListClaims(
            ingest_service_pb2.ListClaimsRequest(parent=parent, filter='payer = "Ae\x00tna"'),
            metadata=auth,
            timeout=TIMEOUT,
        )
    )
    assert list(found) == ["filter"]
    _, found = refusal(
        lambda: ingest.GetUpload(
            ingest_service_pb2.GetUploadRequest(name=f"{parent}/uploads/u_\x00"),
            metadata=auth,
            timeout=TIMEOUT,
        )
    )
    assert list(found) == ["name"]
    mapping = ingest_resources.PayerMapping(raw_payer_name="AETNA\x00INC", canonical_payer="Aetna")
    _, found = refusal(
        lambda: ingest.CreatePayerMapping(
            ingest_service_pb2.CreatePayerMappingRequest(parent=parent, payer_mapping=mapping),
            metadata=auth,
            timeout=TIMEOUT,
        )
    )
    assert list(found) == ["payer_mapping.raw_payer_name"]
    listed = ingest.ListPayerMappings(
        ingest_service_pb2.ListPayerMappingsRequest(parent=parent), metadata=auth, timeout=TIMEOUT
    )
    assert list(listed.payer_mappings) == []


# --- drift --------------------------------------------------------------------------------


def list_runs(
    drift: drift_service_pb2_grpc.DriftServiceStub, auth: list[tuple[str, str]], customer: str
) -> list[drift_resources.DriftRun]:
    listed = drift.ListDriftRuns(
        drift_service_pb2.ListDriftRunsRequest(parent=f"customers/{customer}"),
        metadata=auth,
        timeout=TIMEOUT,
    )
    return list(listed.drift_runs)


def _days_from_today(days: int) -> date_pb2.Date:
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


@pytest.mark.parametrize(
    ("case", "fields", "field"),
    [
        ("year-one", {"as_of": date_pb2.Date(year=1, month=1, day=1)}, "as_of"),
        ("not-a-day", {"as_of": date_pb2.Date(year=2026, month=2, day=30)}, "as_of"),
        ("future", {"as_of": _days_from_today(2)}, "as_of"),
        ("nul-request-id", {"request_id": "run\x00"}, "request_id"),
        ("trigger-99", {"trigger": 99}, "trigger"),
        ("trigger-upload", {"trigger": drift_resources.DriftRun.UPLOAD}, "trigger"),
        ("trigger-schedule", {"trigger": drift_resources.DriftRun.SCHEDULE}, "trigger"),
    ],
)
def test_a_bad_drift_run_is_refused_and_never_queued(
    system: System,
    drift: drift_service_pb2_grpc.DriftServiceStub,
    case: str,
    fields: dict[str, Any],
    field: str,
) -> None:
    customer = f"hostile-run-{case}"
    auth = metadata(system, customer)
    request = drift_service_pb2.RunDetectionRequest(parent=f"customers/{customer}", **fields)
    _, found = refusal(lambda: drift.RunDetection(request, metadata=auth, timeout=TIMEOUT))
    assert list(found) == [field]
    assert list_runs(drift, auth, customer) == []


def test_only_a_service_starts_a_run_with_another_trigger_than_manual(
    system: System, drift: drift_service_pb2_grpc.DriftServiceStub
) -> None:
    customer = "hostile-run-triggers"
    parent = f"customers/{customer}"
    person = drift.RunDetection(
        drift_service_pb2.RunDetectionRequest(
            parent=parent, trigger=drift_resources.DriftRun.MANUAL
        ),
        metadata=metadata(system, customer),
        timeout=TIMEOUT,
    )
    service = drift.RunDetection(
        drift_service_pb2.RunDetectionRequest(
            parent=parent, trigger=drift_resources.DriftRun.UPLOAD
        ),
        metadata=metadata(system, customer, "superuser"),
        timeout=TIMEOUT,
    )
    assert person.trigger == drift_resources.DriftRun.MANUAL
    assert service.trigger == drift_resources.DriftRun.UPLOAD


def test_unknown_enum_numbers_change_no_config_and_no_event(
    system: System, drift: drift_service_pb2_grpc.DriftServiceStub
) -> None:
    customer = "hostile-drift-enums"
    auth = metadata(system, customer)
    name = f"customers/{customer}/driftConfig"
    before = drift.GetDriftConfig(
        drift_service_pb2.GetDriftConfigRequest(name=name), metadata=auth, timeout=TIMEOUT
    )
    _, found = refusal(
        lambda: drift.UpdateDriftConfig(
            drift_service_pb2.UpdateDriftConfigRequest(
                drift_config=drift_resources.DriftConfig(
                    name=name, enabled_metrics=[drift_resources.DENIAL_RATE, UNDEFINED]
                ),
                update_mask={"paths": ["enabled_metrics"]},
            ),
            metadata=auth,
            timeout=TIMEOUT,
        )
    )
    assert list(found) == ["drift_config.enabled_metrics[1]"]
    after = drift.GetDriftConfig(
        drift_service_pb2.GetDriftConfigRequest(name=name), metadata=auth, timeout=TIMEOUT
    )
    assert after == before
    _, found = refusal(
        lambda: drift.UpdateDriftEvent(
            drift_service_pb2.UpdateDriftEventRequest(
                drift_event=drift_resources.DriftEvent(
                    name=f"customers/{customer}/driftEvents/ev_1", state=UNDEFINED
                )
            ),
            metadata=auth,
            timeout=TIMEOUT,
        )
    )
    assert list(found) == ["drift_event.state"]

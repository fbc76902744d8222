"""The services as internal callers see them: gRPC with reflection, health, rich errors."""

from __future__ import annotations

import time
import uuid

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from tests.system import System
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc, resources_pb2
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc

SERVICE_NAMES = {
    "ingest": "upstream.ingest.v1.IngestService",
    "drift": "upstream.drift.v1.DriftService",
    "reports": "upstream.reports.v1.ReportsService",
}


def test_reflection_and_health_on_every_service(system: System) -> None:
    for service, target in system.targets.items():
        with grpc.insecure_channel(target) as channel:
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            replies = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            listed = {s.name for reply in replies for s in reply.list_services_response.service}
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAMES[service]), timeout=5
            )
        assert SERVICE_NAMES[service] in listed
        assert "grpc.health.v1.Health" in listed
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_errors_carry_google_rpc_status_details(system: System) -> None:
    token = system.token("acme", "admin")
    with grpc.insecure_channel(system.targets["ingest"]) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListUploads(
                ingest_service_pb2.ListUploadsRequest(parent="customers/acme", page_size=-5),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=5,
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
    assert status is not None
    details = {d.TypeName(): d for d in status.details}
    info = error_details_pb2.ErrorInfo()
    details["google.rpc.ErrorInfo"].Unpack(info)
    bad_request = error_details_pb2.BadRequest()
    details["google.rpc.BadRequest"].Unpack(bad_request)
    assert info.domain == "upstream.dev" and info.reason == "INVALID_ARGUMENT"
    assert [v.field for v in bad_request.field_violations] == ["page_size"]


def test_calls_without_a_token_are_unauthenticated(system: System) -> None:
    with grpc.insecure_channel(system.targets["drift"]) as channel:
        stub = drift_service_pb2_grpc.DriftServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetDriftConfig(
                drift_service_pb2.GetDriftConfigRequest(name="customers/acme/driftConfig"),
                timeout=5,
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


def test_a_bad_resource_name_is_a_field_violation(system: System) -> None:
    token = system.token("acme", "admin")
    with grpc.insecure_channel(system.targets["drift"]) as channel:
        stub = drift_service_pb2_grpc.DriftServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.UpdateDriftConfig(
                drift_service_pb2.UpdateDriftConfigRequest(
                    drift_config=resources_pb2.DriftConfig(name="acme/driftConfig")
                ),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=5,
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad_request.DESCRIPTOR)).Unpack(bad_request)
    assert bad_request.field_violations[0].field == "drift_config.name"


def test_prometheus_metrics_count_rpcs_by_code(system: System) -> None:
    with system.client("acme", "viewer") as client:
        client.get("/v1/customers/acme/driftConfig")
    # Straight to ingest: the gateway itself refuses a negative page size before forwarding.
    with grpc.insecure_channel(system.targets["ingest"]) as channel, pytest.raises(grpc.RpcError):
        ingest_service_pb2_grpc.IngestServiceStub(channel).ListUploads(
            ingest_service_pb2.ListUploadsRequest(parent="customers/acme", page_size=-1),
            metadata=[("authorization", f"Bearer {system.token('acme', 'viewer')}")],
            timeout=5,
        )
    port = system.metrics_ports["drift"]
    drift_metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="GetDriftConfig",'
        'grpc_service="upstream.drift.v1.DriftService",grpc_type="unary"}'
    ) in drift_metrics
    assert "grpc_server_handling_seconds_bucket" in drift_metrics
    ingest_port = system.metrics_ports["ingest"]
    ingest_metrics = httpx.get(f"http://127.0.0.1:{ingest_port}/metrics").text
    assert 'grpc_code="INVALID_ARGUMENT",grpc_method="ListUploads"' in ingest_metrics


def _sample(metrics: str, name: str) -> float:
    """The value of one series (`name` with its labels, as exported); 0 when absent."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_uploads_and_detection_runs_are_counted_for_dashboards(system: System) -> None:
    ingest = f"http://127.0.0.1:{system.metrics_ports['ingest']}/metrics"
    drift = f"http://127.0.0.1:{system.metrics_ports['drift']}/metrics"
    before_ingest, before_drift = httpx.get(ingest).text, httpx.get(drift).text
    customer = "metrics" + uuid.uuid4().hex[:8]
    rows = (
        "claim_id,payer,procedure_code,decision_date,status,billed_amount,paid_amount\n"
        "M1,Aetna,99213,2026-03-02,PAID,100.00,80.00\n"
        "M2,Aetna,99214,2026-03-03,PAID,120.00,90.00\n"
        "M3,Aetna,99214,not a date,PAID,120.00,90.00\n"
    )
    with system.client(customer, "admin") as client:
        made = client.post(f"/v1/customers/{customer}/uploads", content=rows.encode())
        assert made.status_code == 200, made.text
        deadline = time.monotonic() + 60
        while not client.get(f"/v1/customers/{customer}/driftRuns").json().get("driftRuns"):
            assert time.monotonic() < deadline, "no detection run after the upload"
            time.sleep(0.2)
        run = client.get(f"/v1/customers/{customer}/driftRuns").json()["driftRuns"][0]
        while run["state"] not in ("SUCCEEDED", "FAILED"):
            assert time.monotonic() < deadline, "the detection run did not end"
            time.sleep(0.2)
            run = client.get(f"/v1/{run['name']}").json()
        assert run["state"] == "SUCCEEDED", run
    after_ingest, after_drift = httpx.get(ingest).text, httpx.get(drift).text

    def grew(before: str, after: str, name: str) -> float:
        return _sample(after, name) - _sample(before, name)

    # A run's counters move on just after its outcome is committed: a scrape in between
    # (the client saw the state first) finds them on the next one.
    while grew(before_drift, after_drift, 'drift_runs_total{outcome="succeeded"}') < 1:
        assert time.monotonic() < deadline, "the run was not counted"
        time.sleep(0.1)
        after_drift = httpx.get(drift).text

    assert grew(before_ingest, after_ingest, 'ingest_rows_total{outcome="accepted"}') >= 2
    assert grew(before_ingest, after_ingest, 'ingest_rows_total{outcome="rejected"}') >= 1
    assert (
        grew(before_ingest, after_ingest, 'ingest_uploads_total{format="CSV",state="SUCCEEDED"}')
        >= 1
    )
    assert grew(before_ingest, after_ingest, 'ingest_upload_seconds_count{format="CSV"}') >= 1
    # Where an upload's time went: reading the file, and what follows until the commit.
    for phase in ("read", "finish"):
        name = f'ingest_upload_phase_seconds_count{{phase="{phase}"}}'
        assert grew(before_ingest, after_ingest, name) >= 1
        assert grew(before_ingest, after_ingest, name.replace("_count", "_sum")) > 0
    assert grew(before_drift, after_drift, 'drift_runs_total{outcome="succeeded"}') >= 1
    assert grew(before_drift, after_drift, "drift_run_seconds_count") >= 1
    assert _sample(after_ingest, "db_pool_size") > 0
    assert "db_pool_connections_in_use " in after_ingest

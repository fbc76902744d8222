"""One REST request is one trace across the gateway, gRPC and SQL, as an SRE sees it."""

from __future__ import annotations

import time

from tests.system import System

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3


def test_one_request_yields_one_trace_across_every_hop(system: System) -> None:
    traceparent_trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with system.client("acme", "viewer") as client:
        response = client.get(
            "/v1/customers/acme/driftConfig",
            # The caller's own trace continues through Upstream (W3C trace context).
            headers={"traceparent": f"00-{traceparent_trace_id}-00f067aa0ba902b7-01"},
        )
    assert response.status_code == 200
    deadline = time.monotonic() + 15
    spans: list[dict] = []
    while time.monotonic() < deadline:
        spans = system.spans.trace(traceparent_trace_id)
        services = {s["service"] for s in spans}
        if {"upstream-gateway", "upstream-drift"} <= services and any(
            "db.statement" in s["attributes"] or "db.query.text" in s["attributes"] for s in spans
        ):
            break
        time.sleep(0.2)
    by_id = {s["span_id"]: s for s in spans}
    gateway_server = [
        s for s in spans if s["service"] == "upstream-gateway" and s["kind"] == SPAN_KIND_SERVER
    ]
    grpc_client = [
        s
        for s in spans
        if s["service"] == "upstream-gateway"
        and s["kind"] == SPAN_KIND_CLIENT
        and "GetDriftConfig" in s["name"]
    ]
    grpc_server = [
        s
        for s in spans
        if s["service"] == "upstream-drift"
        and s["kind"] == SPAN_KIND_SERVER
        and "GetDriftConfig" in s["name"]
    ]
    sql = [s for s in spans if s["service"] == "upstream-drift" and s["kind"] == SPAN_KIND_CLIENT]
    assert gateway_server, spans
    assert grpc_client and grpc_server and sql, [(s["service"], s["name"]) for s in spans]
    # The hops are nested: HTTP server → gRPC client → gRPC server → SQL.
    assert grpc_server[0]["parent_span_id"] == grpc_client[0]["span_id"]
    assert any(by_id.get(s["parent_span_id"], {}).get("span_id") for s in sql)
    assert all(s["trace_id"] == traceparent_trace_id for s in spans)
    assert any("drift_configs" in str(s["attributes"]) for s in sql)


def test_the_asynchronous_hop_through_the_outbox_stays_in_the_upload_trace(
    system: System,
) -> None:
    trace_id = "7bf92f3577b34da6a3ce929d0e0e4799"
    with system.client("tracer", "admin") as client:
        response = client.post(
            "/v1/customers/tracer/uploads",
            content=b"claim_id,payer,decision_date,status\nT1,Aetna,2026-01-05,PAID\n",
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 20
    names: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        names = {(s["service"], s["name"]) for s in system.spans.trace(trace_id)}
        if ("upstream-drift", "/upstream.drift.v1.DriftService/RunDetection") in names:
            break
        time.sleep(0.2)
    # HTTP request → upload RPC → commit → outbox relay → drift, all one trace.
    assert ("upstream-ingest", "/upstream.ingest.v1.IngestService/CreateUpload") in names
    assert ("upstream-ingest", "outbox publish UploadCompleted") in names
    assert ("upstream-drift", "/upstream.drift.v1.DriftService/RunDetection") in names

"""One REST request is one trace across the gateway, gRPC and SQL, as an SRE sees it."""

from __future__ import annotations

from typing import Any

from devtools.stack import wait_until
from tests.system import System

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3


def _ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    """The ids of `span`'s parent, its parent's parent, … as far as the trace holds them."""
    ids = []
    parent = span["parent_span_id"]
    while parent in by_id:
        ids.append(parent)
        parent = by_id[parent]["parent_span_id"]
    return ids


def test_one_request_yields_one_trace_across_every_hop(system: System) -> None:
    traceparent_trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with system.client("acme", "viewer") as client:
        response = client.get(
            "/v1/customers/acme/driftConfig",
            # The caller's own trace continues through Upstream (W3C trace context).
            headers={"traceparent": f"00-{traceparent_trace_id}-00f067aa0ba902b7-01"},
        )
    assert response.status_code == 200

    def hops(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return {
            "gateway server": [
                s
                for s in spans
                if s["service"] == "upstream-gateway" and s["kind"] == SPAN_KIND_SERVER
            ],
            "gRPC client": [
                s
                for s in spans
                if s["service"] == "upstream-gateway"
                and s["kind"] == SPAN_KIND_CLIENT
                and "GetDriftConfig" in s["name"]
            ],
            "gRPC server": [
                s
                for s in spans
                if s["service"] == "upstream-drift"
                and s["kind"] == SPAN_KIND_SERVER
                and "GetDriftConfig" in s["name"]
            ],
            "SQL on drift_configs": [
                s
                for s in spans
                if s["service"] == "upstream-drift"
                and s["kind"] == SPAN_KIND_CLIENT
                and "drift_configs" in str(s["attributes"])
            ],
        }

    wait_until(
        "a span of every hop",
        lambda: all(hops(system.spans.trace(traceparent_trace_id)).values()),
        timeout=15,
    )
    spans = system.spans.trace(traceparent_trace_id)
    by_id = {s["span_id"]: s for s in spans}
    found = hops(spans)
    (gateway_server,) = found["gateway server"]
    (grpc_client,) = found["gRPC client"]
    (grpc_server,) = found["gRPC server"]
    # The hops are nested: HTTP server → gRPC client → gRPC server → SQL.
    assert gateway_server["span_id"] in _ancestors(grpc_client, by_id)
    assert grpc_server["parent_span_id"] == grpc_client["span_id"]
    assert all(
        grpc_server["span_id"] in _ancestors(sql, by_id) for sql in found["SQL on drift_configs"]
    )
    assert all(s["trace_id"] == traceparent_trace_id for s in spans)


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
    # HTTP request → upload RPC → commit → outbox relay → drift, all one trace.
    hops = {
        ("upstream-ingest", "/upstream.ingest.v1.IngestService/CreateUpload"),
        ("upstream-ingest", "outbox publish UploadCompleted"),
        ("upstream-drift", "/upstream.drift.v1.DriftService/RunDetection"),
    }
    wait_until(
        "a span of every hop of the upload",
        lambda: hops <= {(s["service"], s["name"]) for s in system.spans.trace(trace_id)},
        timeout=20,
    )

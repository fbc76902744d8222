"""One REST request is one trace across the gateway, gRPC and SQL, as an SRE sees it."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from devtools.stack import wait_until
from tests.reports.test_webhook_deliveries import create_webhook
from tests.reports.webhook_receiver import receiving
from tests.scenarios import DETECTION_SECONDS, drifted_history
from tests.system import System

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
STATUS_UNSET, STATUS_ERROR = 0, 2


def _ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    """The ids of `span`'s parent, its parent's parent, … as far as the trace holds them."""
    ids = []
    parent = span["parent_span_id"]
    while parent in by_id:
        ids.append(parent)
        parent = by_id[parent]["parent_span_id"]
    return ids


def _get_in_trace(system: System, customer: str, path: str, trace_id: str) -> int:
    """GET `path` as a viewer of `customer`, continuing the caller's trace `trace_id` (W3C
    trace context); the answer's status."""
    with system.client(customer, "viewer") as client:
        response = client.get(path, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    return response.status_code


def test_one_request_yields_one_trace_across_every_hop(system: System) -> None:
    traceparent_trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    # A customer whose settings nothing has read yet, so drift reads them from PostgreSQL
    # (later reads are answered from its memory, with no SQL hop).
    customer = "hops" + uuid.uuid4().hex[:8]
    path = f"/v1/customers/{customer}/driftConfig"
    assert _get_in_trace(system, customer, path, traceparent_trace_id) == 200

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
    # Named by the route's template (never the path, which holds the customer), with the
    # HTTP and gRPC conventions' attributes; nothing failed, so no span is an error.
    assert gateway_server["name"] == "GET /v1/{name=customers/*/driftConfig}"
    attributes = gateway_server["attributes"]
    assert attributes["http.route"].string_value == "/v1/{name=customers/*/driftConfig}"
    assert attributes["http.request.method"].string_value == "GET"
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["url.path"].string_value == f"/v1/customers/{customer}/driftConfig"
    assert grpc_client["name"] == "/upstream.drift.v1.DriftService/GetDriftConfig"
    assert grpc_client["attributes"]["rpc.system"].string_value == "grpc"
    assert grpc_client["attributes"]["rpc.method"].string_value == "GetDriftConfig"
    assert grpc_client["attributes"]["rpc.grpc.status_code"].int_value == 0
    assert {s["status"] for s in (gateway_server, grpc_client, grpc_server)} == {STATUS_UNSET}


def test_a_refused_call_is_an_error_on_the_grpc_span_not_on_the_http_one(system: System) -> None:
    trace_id = uuid.uuid4().hex
    customer = "hops" + uuid.uuid4().hex[:8]
    path = f"/v1/customers/{customer}/driftEvents/no-such-event"
    assert _get_in_trace(system, customer, path, trace_id) == 404

    def spans() -> dict[tuple[str, int], dict[str, Any]]:
        return {(s["service"], s["kind"]): s for s in system.spans.trace(trace_id)}

    hops = {
        ("upstream-gateway", SPAN_KIND_SERVER),
        ("upstream-gateway", SPAN_KIND_CLIENT),
        ("upstream-drift", SPAN_KIND_SERVER),
    }
    wait_until("the gateway's and drift's spans", lambda: hops <= spans().keys(), timeout=15)
    found = spans()
    server = found["upstream-gateway", SPAN_KIND_SERVER]
    client_span = found["upstream-gateway", SPAN_KIND_CLIENT]
    drift = found["upstream-drift", SPAN_KIND_SERVER]
    # A 4xx is the client's error, not the server's (HTTP conventions); NOT_FOUND is the
    # call's outcome, an error for its client but not for the server that answered it
    # (gRPC conventions).
    assert server["attributes"]["http.response.status_code"].int_value == 404
    assert server["name"] == "GET /v1/{name=customers/*/driftEvents/*}"
    assert server["status"] == STATUS_UNSET
    assert client_span["attributes"]["rpc.grpc.status_code"].int_value == 5
    assert client_span["status"] == STATUS_ERROR
    assert client_span["parent_span_id"] == server["span_id"]
    assert drift["name"] == "/upstream.drift.v1.DriftService/GetDriftEvent"
    assert drift["parent_span_id"] == client_span["span_id"]
    assert drift["attributes"]["rpc.grpc.status_code"].int_value == 5
    assert drift["attributes"]["rpc.service"].string_value == "upstream.drift.v1.DriftService"
    assert drift["status"] == STATUS_UNSET


def test_one_trace_runs_from_a_rest_upload_to_the_webhook_its_drift_sends(
    system: System,
) -> None:
    customer = "tracer"
    trace_id = uuid.uuid4().hex
    with receiving() as receiver, system.client(customer, "admin") as client:
        create_webhook(client, customer, receiver.url(), "DRIFT_EVENT_OPENED")
        response = client.post(
            f"/v1/customers/{customer}/uploads",
            content=drifted_history(customer).encode(),
            headers={
                "Content-Type": "text/csv",
                "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
            },
        )
        assert response.status_code == 200, response.text
        wait_until("a webhook delivery", receiver.received, timeout=DETECTION_SECONDS)
    # The receiver can continue the trace: the POST carried it (W3C trace context).
    version, sent_trace_id, sent_parent, _flags = (
        receiver.received()[0].headers["traceparent"].split("-")
    )
    assert (version, sent_trace_id) == ("00", trace_id)

    def named(service: str, name: str, kind: int) -> list[dict[str, Any]]:
        return [
            s
            for s in system.spans.trace(trace_id)
            if s["service"] == f"upstream-{service}" and s["name"] == name and s["kind"] == kind
        ]

    # HTTP request → upload RPC → its outbox → detection run → drift's outbox → reports →
    # the webhook delivery's POST, all one trace.
    hops = {
        "upload RPC": ("ingest", "/upstream.ingest.v1.IngestService/CreateUpload", SERVER),
        "ingest outbox": ("ingest", "send UploadCompleted", PRODUCER),
        "detection RPC": ("drift", "/upstream.drift.v1.DriftService/RunDetection", SERVER),
        "detection run": ("drift", "process drift run", CONSUMER),
        "drift outbox": ("drift", "send DriftEventsChanged", PRODUCER),
        "events RPC": ("reports", "/upstream.reports.v1.ReportsService/RecordDriftEvents", SERVER),
        "delivery": ("reports", "process webhook delivery", CONSUMER),
        "POST": ("reports", "POST", CLIENT),
    }
    wait_until(
        "a span of every hop",
        lambda: all(named(*hop) for hop in hops.values()),
        timeout=20,
    )
    found = {hop: named(*where)[0] for hop, where in hops.items()}
    by_id = {s["span_id"]: s for s in system.spans.trace(trace_id)}
    assert found["POST"]["span_id"] == sent_parent
    # Each hop descends from the one before it.
    order = list(found.values())
    for earlier, later in itertools.pairwise(order):
        assert earlier["span_id"] in _ancestors(later, by_id), (earlier["name"], later["name"])
    # The asynchronous hops (a row written, then read by another task) also link back to
    # where their message was created, with the messaging attributes.
    for hop in ("ingest outbox", "detection run", "drift outbox", "delivery"):
        span = found[hop]
        ((linked_trace, linked_span),) = span["links"]
        assert linked_trace == trace_id
        assert linked_span in _ancestors(span, by_id)
        assert span["attributes"]["messaging.system"].string_value == "upstream_outbox"
        assert span["attributes"]["messaging.message.id"].string_value
    assert found["POST"]["attributes"]["http.response.status_code"].int_value == 200

    # The run's read of the daily statistics, fetched in a worker thread of ingest, is a
    # database span of the same trace, under the run.
    def series_reads() -> list[dict[str, Any]]:
        return [
            s
            for s in system.spans.trace(trace_id)
            if s["service"] == "upstream-ingest"
            and s["kind"] == CLIENT
            and "FROM ingest.daily_stat_months"
            in s["attributes"].get("db.statement", AnyValue()).string_value
        ]

    wait_until("the span of the run's series read", series_reads, timeout=20)
    read = series_reads()[0]
    by_id = {s["span_id"]: s for s in system.spans.trace(trace_id)}
    assert found["detection run"]["span_id"] in _ancestors(read, by_id)
    assert read["attributes"]["db.system"].string_value == "postgresql"

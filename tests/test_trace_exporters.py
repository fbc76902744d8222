"""Spans leave each process by the exporter its environment names, and a request still makes
one trace across processes: OTLP over HTTP to a collector, and Datadog's own format to an
agent (ddtrace as the OpenTelemetry provider). Each receiver here is a real HTTP server on
127.0.0.1 that decodes what it is sent."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import msgpack

from devtools.stack import wait_until
from tests.conftest import PostgresUnderTest
from tests.system import System, extra_gateway, http_span_sink, running_service, serving_http

SERVER, CLIENT = 2, 3
# ddtrace talks to nothing but the agent here: no remote configuration, no telemetry, no
# crash tracker process.
DATADOG_QUIET = {
    "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    "DD_CRASHTRACKING_ENABLED": "false",
    "DD_TRACE_STARTUP_LOGS": "false",
    "DD_TRACE_WRITER_INTERVAL_SECONDS": "0.2",
}


@contextmanager
def drift_behind_a_gateway(
    system: System, postgres: PostgresUnderTest, exporter: dict[str, str]
) -> Iterator[str]:
    """A drift replica and a gateway in front of it, both exporting spans as `exporter`
    says; the gateway's URL."""
    with (
        running_service("drift", postgres.url("drift"), **exporter) as (_, target),
        extra_gateway(system, DRIFT_TARGET=target, **exporter) as url,
    ):
        yield url


def get_drift_config(system: System, gateway_url: str, customer: str, trace_id: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        response = client.get(
            f"/v1/customers/{customer}/driftConfig",
            headers={
                "Authorization": f"Bearer {system.token(customer, 'viewer')}",
                "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
            },
        )
    assert response.status_code == 200, response.text


def test_spans_reach_an_otlp_http_collector_as_one_trace(
    system: System, postgres: PostgresUnderTest
) -> None:
    trace_id = uuid.uuid4().hex
    with http_span_sink() as (sink, endpoint):
        exporter = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        with drift_behind_a_gateway(system, postgres, exporter) as url:
            get_drift_config(system, url, "otlphttp", trace_id)

            def rpc(service: str, kind: int) -> list[dict[str, Any]]:
                return [
                    s
                    for s in sink.trace(trace_id)
                    if s["service"] == service
                    and s["kind"] == kind
                    and s["name"].endswith("/GetDriftConfig")
                ]

            wait_until(
                "the gRPC call's spans from both processes",
                lambda: rpc("upstream-gateway", CLIENT) and rpc("upstream-drift", SERVER),
                timeout=15,
            )
    ((client_span,), (server_span,)) = (
        rpc("upstream-gateway", CLIENT),
        rpc("upstream-drift", SERVER),
    )
    assert server_span["parent_span_id"] == client_span["span_id"]
    assert server_span["attributes"]["rpc.system"].string_value == "grpc"


@dataclass
class DatadogAgent:
    """What a Datadog agent's trace intake was sent: spans decoded from the msgpack of
    `/v0.5/traces` (or `/v0.4/traces`), each with its full 128-bit trace id."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, path: str, body: bytes) -> None:
        payload = msgpack.unpackb(body, strict_map_key=False)
        if path.startswith("/v0.5/"):
            strings, chunks = payload
            decoded = [[_v05_span(strings, span) for span in chunk] for chunk in chunks]
        else:
            decoded = [[dict(span) for span in chunk] for chunk in payload]
        with self.lock:
            for chunk in decoded:
                # The trace id's high 64 bits travel once per chunk, as a tag.
                high = next(s["meta"]["_dd.p.tid"] for s in chunk if "_dd.p.tid" in s["meta"])
                for span in chunk:
                    span["trace_id_128"] = f"{high}{span['trace_id']:016x}"
                    self.spans.append(span)

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["trace_id_128"] == trace_id]


_V05_FIELDS = ("service", "name", "resource", "trace_id", "span_id", "parent_id")


def _v05_span(strings: list[str], span: list[Any]) -> dict[str, Any]:
    return {
        **{name: strings[span[i]] for i, name in enumerate(_V05_FIELDS[:3])},
        **{name: span[i] for i, name in enumerate(_V05_FIELDS[3:], 3)},
        "meta": {strings[k]: strings[v] for k, v in span[9].items()},
    }


@contextmanager
def datadog_agent() -> Iterator[tuple[DatadogAgent, str]]:
    agent = DatadogAgent()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.endswith("/traces"):
                agent.keep(self.path, body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_POST = do_PUT  # noqa: N815 (http.server's name)

        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving_http(Handler) as url:
        yield agent, url


def test_spans_reach_a_datadog_agent_with_their_services_and_one_trace_id(
    system: System, postgres: PostgresUnderTest
) -> None:
    trace_id = uuid.uuid4().hex
    with datadog_agent() as (agent, agent_url):
        exporter = {
            "OTEL_TRACES_EXPORTER": "datadog",
            "DD_TRACE_AGENT_URL": agent_url,
            "DD_ENV": "test",
            **DATADOG_QUIET,
        }
        with drift_behind_a_gateway(system, postgres, exporter) as url:
            get_drift_config(system, url, "datadog", trace_id)

            def grpc_spans(service: str, kind: str) -> list[dict[str, Any]]:
                return [
                    s
                    for s in agent.trace(trace_id)
                    if s["service"] == service
                    and s["meta"].get("span.kind") == kind
                    and s["resource"].endswith("/GetDriftConfig")
                ]

            wait_until(
                "the gRPC call's spans from both processes",
                lambda: (
                    grpc_spans("upstream-gateway", "client")
                    and grpc_spans("upstream-drift", "server")
                ),
                timeout=15,
            )
    spans = agent.trace(trace_id)
    assert {s["service"] for s in spans} == {"upstream-gateway", "upstream-drift"}
    assert all(s["meta"].get("env") == "test" for s in spans)
    ((client_span,), (server_span,)) = (
        grpc_spans("upstream-gateway", "client"),
        grpc_spans("upstream-drift", "server"),
    )
    # Across the process boundary, the server's span is the client's child.
    assert server_span["parent_id"] == client_span["span_id"]
    # The gateway's HTTP span is the root, continuing the caller's trace.
    http_server = [s for s in spans if s["meta"].get("span.kind") == "server"]
    assert any(s["service"] == "upstream-gateway" for s in http_server)

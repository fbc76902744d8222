"""Tracing, metrics and logs, set up in one place for every process.

Code elsewhere uses only the OpenTelemetry API (`trace.get_tracer`). The exporter is chosen
by `OTEL_TRACES_EXPORTER` (`none` by default, `otlp`, or `console`); the OTLP exporter and the
resource read the other standard `OTEL_*` variables themselves. Datadog takes spans through
the agent's OTLP intake.
"""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import Counter, Histogram
from pythonjsonlogger.json import JsonFormatter

_provider: TracerProvider | None = None

GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
# Names as go-grpc-prometheus exports them, which existing dashboards query.
grpc_server_started_total = Counter(
    "grpc_server_started_total", "RPCs started on the server.", GRPC_LABELS
)
grpc_server_handled_total = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, regardless of success or failure.",
    (*GRPC_LABELS, "grpc_code"),
)
grpc_server_handling_seconds = Histogram(
    "grpc_server_handling_seconds",
    "Response latency of RPCs handled by the server, in seconds.",
    GRPC_LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def _exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    if name in ("", "none"):
        return None
    raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported (otlp, console, none)")


def setup_tracing(service: str) -> TracerProvider:
    """Install the process's tracer provider once; spans of every library go through it."""
    global _provider
    if _provider is not None:
        return _provider
    resource = Resource.create({"service.name": f"upstream-{service}"})
    provider = TracerProvider(resource=resource)
    exporter = _exporter(os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower())
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flush spans still buffered (called on the way out, after the server drained)."""
    if _provider is not None:
        _provider.shutdown()


class _TraceContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def setup_logging(service: str, level: str) -> None:
    """JSON lines on stderr, each with the trace and span ids of the call that logged it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(_TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

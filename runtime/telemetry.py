"""Tracing, metrics and logs, set up in one place for every process.

Code elsewhere uses only the OpenTelemetry API (`trace.get_tracer`). The exporter is chosen
by `OTEL_TRACES_EXPORTER` (`none` by default, `otlp`, or `console`); the OTLP exporter and the
resource read the other standard `OTEL_*` variables themselves. Datadog takes spans through
the agent's OTLP intake.

Logs are JSON lines on stderr. A database error in them shows its shape (classes, SQLSTATE,
constraint, statement), never the values it carries (`error_text`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import psycopg
from opentelemetry import baggage, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import Counter, Histogram
from pythonjsonlogger.json import JsonEncoder, JsonFormatter
from sqlalchemy.exc import StatementError

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
# Enough of a statement to find it in the code; a bulk statement's text can run to pages.
MAX_STATEMENT_CHARS = 2000
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


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


# The baggage entry naming the HTTP request a call serves (set by the gateway).
REQUEST_ID_BAGGAGE = "request_id"


class _TraceContextFilter(logging.Filter):
    """Each record of a traced call gets its trace and span ids, and the id of the HTTP
    request it serves (the gateway's `X-Request-ID`, carried as baggage across services)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        request_id = baggage.get_baggage(REQUEST_ID_BAGGAGE)
        if request_id is not None:
            record.request_id = str(request_id)
        return True


def is_database_error(error: BaseException) -> bool:
    return isinstance(error, (StatementError, psycopg.Error))


def error_text(error: BaseException) -> str:
    """What a log line or an operator may read of `error`.

    A database error is its class, the driver's class, SQLSTATE, constraint, table and column,
    and the statement without its values; never the driver's message, whose DETAIL (and often
    the message itself) echoes values: `Key (customer_id, claim_id)=(acme, C1) already
    exists`, `Failing row contains (…)`. Anything else is its class and message."""
    if isinstance(error, StatementError):
        return _database_error_text(error, error.orig, error.statement)
    if isinstance(error, psycopg.Error):
        return _database_error_text(error, error, None)
    try:
        message = str(error)
    except Exception:
        message = "<the message could not be read>"
    return f"{_class_name(type(error))}: {message}" if message else _class_name(type(error))


def _database_error_text(
    error: BaseException, driver_error: BaseException | None, statement: str | None
) -> str:
    parts = [_class_name(type(error))]
    if driver_error is not None and driver_error is not error:
        parts.append(f"({_class_name(type(driver_error))})")
    if isinstance(driver_error, psycopg.Error):
        diag = driver_error.diag
        table = ".".join(name for name in (diag.schema_name, diag.table_name) if name)
        for label, value in (
            ("SQLSTATE", driver_error.sqlstate),
            ("constraint", diag.constraint_name),
            ("table", table),
            ("column", diag.column_name),
        ):
            if value:
                parts.append(f"{label} {value}")
    if statement:
        shape = " ".join(statement.split())
        if len(shape) > MAX_STATEMENT_CHARS:
            shape = shape[:MAX_STATEMENT_CHARS] + " …"
        parts.append(f"[SQL: {shape}]")
    return " ".join(parts)


def _class_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def exception_text(error: BaseException) -> str:
    """The traceback of `error` and of the exceptions it was raised from, as Python prints
    them, each exception shown by `error_text`."""
    # Newest first, each with how it follows from the next older one.
    chain: list[tuple[str, BaseException]] = []
    seen: set[int] = set()
    link, current = "", error
    while id(current) not in seen:
        seen.add(id(current))
        chain.append((link, current))
        if current.__cause__ is not None:
            link, current = _CAUSE, current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            link, current = _CONTEXT, current.__context__
        else:
            break
    lines: list[str] = []
    for link, shown in reversed(chain):
        if shown.__traceback__ is not None:
            lines.append("Traceback (most recent call last):\n")
            lines.extend(traceback.format_tb(shown.__traceback__))
        lines.append(error_text(shown) + "\n")
        if isinstance(shown, BaseExceptionGroup):
            for number, member in enumerate(shown.exceptions, 1):
                nested = exception_text(member).replace("\n", "\n  | ")
                lines.append(f"  +---------------- {number} ----------------\n  | {nested}\n")
        lines.append(link)
    return "".join(lines).rstrip("\n")


def _loggable(value: Any) -> Any:
    return (
        error_text(value)
        if isinstance(value, BaseException) and is_database_error(value)
        else value
    )


class _LogEncoder(JsonEncoder):
    """Extra fields of a log record as JSON; an exception among them by `error_text`."""

    def default(self, o: Any) -> Any:
        if isinstance(o, BaseException):
            return error_text(o)
        return super().default(o)


class _LogFormatter(JsonFormatter):
    """One JSON object per record. Exceptions, in the traceback and among the message's
    arguments, are shown by `error_text`, so no logger (ours, uvicorn's, alembic's, gRPC's)
    writes the values a database error carries."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, BaseException) or record.args:
            record = logging.makeLogRecord(record.__dict__)
            record.msg = _loggable(record.msg)
            if isinstance(record.args, Mapping):
                record.args = {key: _loggable(value) for key, value in record.args.items()}
            elif record.args:
                record.args = tuple(_loggable(value) for value in record.args)
        return super().format(record)

    def formatException(  # noqa: N802 (logging.Formatter's name)
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        return exception_text(ei[1]) if ei[1] is not None else "NoneType: None"


def log_formatter(service: str) -> logging.Formatter:
    """A record as one JSON object: time, level, logger, message, `service`, extra fields."""
    return _LogFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
        json_encoder=_LogEncoder,
    )


def setup_logging(service: str, level: str) -> None:
    """JSON lines on stderr, each with the trace and span ids of the call that logged it;
    exceptions no one caught are logged there too, rather than printed raw."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(service))
    handler.addFilter(_TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    sys.excepthook = lambda _kind, error, _traceback: _log_uncaught(error)
    threading.excepthook = lambda uncaught: _log_uncaught(uncaught.exc_value)


def _log_uncaught(error: BaseException | None) -> None:
    logging.getLogger("upstream.uncaught").critical("uncaught exception", exc_info=error)

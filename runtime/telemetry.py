"""Tracing, metrics and logs, set up in one place for every process.

Code elsewhere uses only the OpenTelemetry API (`trace.get_tracer`). The exporter is chosen
by `OTEL_TRACES_EXPORTER`: `none` (the default), `console`, `otlp` (gRPC or HTTP, by
`OTEL_EXPORTER_OTLP_PROTOCOL`; the exporter and the resource read the other standard
`OTEL_*` variables themselves), or `datadog` (ddtrace as the provider, `DD_*` variables).
Which traces are kept: `OTEL_TRACES_SAMPLER`, the standard samplers or
`parentbased_rate_limited` (`RateLimitedSampler`); with no exporter, none begun here.

Logs are JSON lines on stderr. A database error in them shows its shape (classes, SQLSTATE,
constraint, statement), never the values it carries (`error_text`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import psycopg
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.util.types import Attributes
from prometheus_client import Counter, Histogram
from pythonjsonlogger.json import JsonEncoder, JsonFormatter
from sqlalchemy.exc import StatementError

_provider: trace.TracerProvider | None = None

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


EXPORTERS = ("none", "console", "otlp", "datadog")


def _otlp_exporter() -> SpanExporter:
    """OTLP over gRPC (the default) or HTTP, as `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` says;
    the exporter reads its endpoint, headers and TLS from the other `OTEL_EXPORTER_OTLP_*`."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as OTLPHttpSpanExporter,
        )

        return OTLPHttpSpanExporter()
    raise ValueError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported (grpc, http/protobuf)"
    )


RATE_LIMITED_SAMPLER = "parentbased_rate_limited"


class RateLimitedSampler(Sampler):
    """At most `per_second` new traces a second, by a token bucket holding one second's worth:
    every trace while fewer begin, that many a second however many more do. So a quiet
    deployment keeps all its traces, and tracing a busy one costs a fixed amount of CPU
    instead of a share of every request. Decides for root spans only; `ParentBased` makes
    every other span follow its parent."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not per_second > 0:
            raise ValueError(f"{RATE_LIMITED_SAMPLER} needs a rate above 0, not {per_second!r}")
        self._per_second = per_second
        self._capacity = max(per_second, 1.0)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        with self._lock:
            now = self._clock()
            elapsed, self._last = now - self._last, now
            self._tokens = min(self._capacity, self._tokens + elapsed * self._per_second)
            sampled = self._tokens >= 1.0
            if sampled:
                self._tokens -= 1.0
        if sampled:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
        return SamplingResult(Decision.DROP, None, trace_state)

    def get_description(self) -> str:
        return f"RateLimited{{{self._per_second:g}/s}}"


def sampler_from_env() -> Sampler | None:
    """`OTEL_TRACES_SAMPLER=parentbased_rate_limited` with `OTEL_TRACES_SAMPLER_ARG` traces a
    second (each process's own); None for the standard samplers, which the SDK reads itself."""
    if os.environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() != RATE_LIMITED_SAMPLER:
        return None
    argument = os.environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        per_second = float(argument)
    except ValueError:
        raise ValueError(
            f"OTEL_TRACES_SAMPLER_ARG={argument!r}: {RATE_LIMITED_SAMPLER} needs the traces a"
            " second to keep, a number above 0"
        ) from None
    return ParentBased(root=RateLimitedSampler(per_second))


def unsampled_parents_have_unsampled_children() -> bool:
    """Whether the process's sampler drops every span begun under a span that was not
    sampled, as OpenTelemetry's ParentBased does with its default delegates (every sampler
    `setup_tracing` installs is one): such a span would record nothing, so a caller may
    leave it unmade and pass the parent's context on instead."""
    sampler = getattr(trace.get_tracer_provider(), "sampler", None)
    if not isinstance(sampler, ParentBased):
        return False
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(trace_id=1, span_id=1, is_remote=False, trace_flags=trace.TraceFlags(0))
    )
    probe = sampler.should_sample(trace.set_span_in_context(unsampled), 1, "probe")
    return probe.decision is Decision.DROP


def _datadog_provider(service_name: str) -> trace.TracerProvider:
    """ddtrace as the OpenTelemetry provider: every span (ours and the gRPC, SQL and ASGI
    instrumentations') goes to the Datadog agent in its own format, configured by the
    `DD_*` variables (`DD_TRACE_AGENT_URL` or `DD_AGENT_HOST`, `DD_ENV`, `DD_VERSION`).
    ddtrace's own integrations stay off: they would trace each call a second time."""
    os.environ.setdefault("DD_SERVICE", service_name)
    os.environ.setdefault("DD_TRACE_OTEL_ENABLED", "true")
    from ddtrace.opentelemetry import TracerProvider as DatadogTracerProvider

    return DatadogTracerProvider()


def sdk_provider(service_name: str, exporter: str) -> TracerProvider:
    """OpenTelemetry's own provider with the named exporter (`none`, `console`, `otlp`).

    With no exporter nothing reads a span, so a trace begun here is not recorded; its spans
    still get their ids, which log lines carry and calls pass on, and a trace a caller chose
    to keep is still recorded, for a next hop that exports. Otherwise the sampler is
    `OTEL_TRACES_SAMPLER`'s."""
    sampler = ParentBased(root=ALWAYS_OFF) if exporter == "none" else sampler_from_env()
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), sampler=sampler
    )
    if exporter != "none":
        spans = ConsoleSpanExporter() if exporter == "console" else _otlp_exporter()
        provider.add_span_processor(BatchSpanProcessor(spans))
    return provider


def setup_tracing(service: str) -> trace.TracerProvider:
    """Install the process's tracer provider once; spans of every library go through it.
    `OTEL_TRACES_EXPORTER` chooses where they go: nowhere (`none`, the default), stdout
    (`console`), an OpenTelemetry collector (`otlp`), or a Datadog agent (`datadog`)."""
    global _provider
    if _provider is not None:
        return _provider
    name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower() or "none"
    if name not in EXPORTERS:
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported ({', '.join(EXPORTERS)})")
    service_name = f"upstream-{service}"
    provider: trace.TracerProvider
    if name == "datadog":
        provider = _datadog_provider(service_name)
    else:
        provider = sdk_provider(service_name, name)
        if name != "none":
            logging.getLogger("upstream.telemetry").info(
                "tracing",
                extra={"exporter": name, "sampler": provider.sampler.get_description()},
            )
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flush spans still buffered (called on the way out, after the server drained)."""
    if isinstance(_provider, TracerProvider):
        _provider.shutdown()
    elif _provider is not None:
        from ddtrace.trace import tracer as datadog_tracer

        datadog_tracer.shutdown(timeout=5)


# `messaging.system` of the hops that go through a table: the outbox, and the queues of
# webhook deliveries, alerts and report builds.
MESSAGING_SYSTEM = "upstream_outbox"


# The headers (or gRPC metadata) the trace context and baggage propagators read.
PROPAGATED = frozenset(("traceparent", "tracestate", "baggage"))


class _Lists(Getter[Mapping[str, list[str]]]):
    def get(self, carrier: Mapping[str, list[str]], key: str) -> list[str] | None:
        return carrier.get(key)

    def keys(self, carrier: Mapping[str, list[str]]) -> list[str]:
        return list(carrier)


_LISTS = _Lists()


def extract_context(pairs: Iterable[tuple[str, str]]) -> otel_context.Context:
    """The trace context and baggage that lower-case header or metadata pairs carry (only the
    PROPAGATED ones are read), in a context of their own: nothing current is carried over."""
    carrier: dict[str, list[str]] = {}
    for key, value in pairs:
        if key in PROPAGATED:
            carrier.setdefault(key, []).append(value)
    return propagate.extract(carrier, getter=_LISTS)


def trace_carrier() -> dict[str, str]:
    """The W3C trace context (and baggage) of the current span, as a queued message keeps it
    so the work that follows continues the trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextlib.contextmanager
def continuing(
    carrier: Mapping[str, str] | None,
    tracer: trace.Tracer,
    name: str,
    *,
    kind: trace.SpanKind,
    operation: str,
    destination: str,
    message_id: str,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A span for the asynchronous hop of a queued message: a child of the context the
    message was created in (so the request and what follows from it are one trace) that
    also links to it, as the messaging conventions ask of a hop whose two ends are apart
    in time. `operation` is `send` (publishing on) or `process` (doing the work)."""
    parent = propagate.extract(dict(carrier or {}))
    created = trace.get_current_span(parent).get_span_context()
    token = otel_context.attach(parent)
    try:
        with tracer.start_as_current_span(
            name,
            kind=kind,
            links=[trace.Link(created)] if created.is_valid else (),
            attributes={
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": operation,
                "messaging.destination.name": destination,
                "messaging.message.id": message_id,
                **(attributes or {}),
            },
        ) as span:
            yield span
    finally:
        otel_context.detach(token)


# The baggage entry naming the HTTP request a call serves (set by the gateway).
REQUEST_ID_BAGGAGE = "request_id"


class _TraceContextFilter(logging.Filter):
    """Each record of a traced call gets its trace and span ids, whether that trace is kept
    (`trace_sampled`: under a sampler, false for the traces no span of which is exported), and
    the id of the HTTP request it serves (the gateway's `X-Request-ID`, carried as baggage
    across services)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
            record.trace_sampled = context.trace_flags.sampled
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


# Where the name of a database error's module begins: its message carries the values.
_DATABASE_MODULES = ("psycopg", "sqlalchemy")
_WITHHELD = "<withheld: a database error's message carries the values of the statement>"


def setup_error_reporting(service: str) -> bool:
    """Send errors to Sentry when `SENTRY_DSN` is set (`SENTRY_ENVIRONMENT`,
    `SENTRY_RELEASE` as the SDK reads them); whether it does.

    What is logged at ERROR or above, and what no one caught, becomes an event. None carries
    claim data: no local variables, no breadcrumbs, no request bodies or users, and a
    database error's message (which echoes the statement's values) is replaced by its
    shape, as in the logs."""
    dsn = os.environ.get("SENTRY_DSN", "").strip()
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    sentry_sdk.init(
        dsn=dsn,
        send_default_pii=False,
        include_local_variables=False,
        include_source_context=True,
        max_breadcrumbs=0,
        max_request_body_size="never",
        auto_enabling_integrations=False,
        integrations=[LoggingIntegration(level=None, event_level=logging.ERROR)],
        before_send=_without_claim_data,  # type: ignore[arg-type]
    )
    sentry_sdk.get_global_scope().set_tag("service", f"upstream-{service}")
    return True


def _without_claim_data(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """`event` as Sentry may keep it: database errors by their shape, no request or user."""
    for key in ("request", "user", "breadcrumbs"):
        event.pop(key, None)
    shapes: dict[str, str] = {}
    exc_info = hint.get("exc_info")
    error = exc_info[1] if exc_info else None
    while isinstance(error, BaseException) and len(shapes) < 50:
        if is_database_error(error):
            shapes.setdefault(type(error).__name__, error_text(error))
        error = error.__cause__ or error.__context__
    for value in (event.get("exception") or {}).get("values") or []:
        if str(value.get("module") or "").startswith(_DATABASE_MODULES):
            value["value"] = shapes.get(str(value.get("type")), _WITHHELD)
    entry = event.get("logentry")
    if entry and entry.get("params"):
        params = entry["params"]
        shown = (
            {key: _loggable(param) for key, param in params.items()}
            if isinstance(params, Mapping)
            else tuple(_loggable(param) for param in params)
        )
        entry["params"] = shown
        try:
            entry["formatted"] = str(entry.get("message", "")) % shown
        except (TypeError, ValueError):
            entry["formatted"] = str(entry.get("message", ""))
    if isinstance(event.get("extra"), dict):
        event["extra"] = {key: _loggable(value) for key, value in event["extra"].items()}
    return event


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

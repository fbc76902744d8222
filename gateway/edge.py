"""The gateway's outermost layer: every HTTP request's id, its server span, and the headers
every answer gets, in one ASGI layer with one wrapped `send`.

- The request id: the client's `X-Request-ID` when it is a plain token of up to 128
  characters, else a new one; kept in `scope["state"]` (`problems.request_id_of`), carried as
  OpenTelemetry baggage to every service the call reaches, and returned.
- The span: a SERVER span continuing the W3C trace context the request carries, named
  `{method} {route template}` once the route is known (`http.route`; never the path, which
  holds customer and resource ids), with the stable HTTP semantic conventions' attributes;
  a 5xx answer or an exception marks it an error. Health and metrics paths get none.
- The answer headers: `X-Request-ID`, `API-Version`, `X-Content-Type-Options: nosniff`,
  `Referrer-Policy: no-referrer`, a `Content-Security-Policy` that allows nothing unless the
  answer set its own, and HSTS over TLS.

This is OpenTelemetry's API used directly rather than its ASGI middleware: that middleware,
measured under `make bench`, cost about 0.2 ms a request here (its semantic-convention
helpers for both attribute generations, metric instruments and a `send` wrapper of its own),
more than the rest of the gateway's work on a small read.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.problems import API_VERSION, REQUEST_ID
from runtime.telemetry import PROPAGATED, extract_context

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=63072000; includeSubDomains"
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# The answer headers set whatever the answer had, and those an answer may set itself.
_SET = (b"x-request-id", b"api-version")
_DEFAULTS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", API_POLICY.encode()),
)
_HSTS = (b"strict-transport-security", HSTS.encode())
_API_VERSION = API_VERSION.encode()
# Where the gateway's handler leaves the template of the route it matched, in `scope["state"]`.
ROUTE_TEMPLATE = "route_template"
_PROPAGATED = frozenset(name.encode() for name in PROPAGATED)

tracer = trace.get_tracer("upstream.gateway")


def new_request_id() -> str:
    """32 random hex digits: an id to find a request by, not a secret, so drawn from the
    process's generator rather than the kernel's (a system call a request)."""
    return f"{random.getrandbits(128):032x}"


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def _request_attributes(scope: Scope) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "http.request.method": scope["method"],
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope.get("path", ""),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if query := scope.get("query_string"):
        attributes["url.query"] = query.decode("latin-1")
    if server := scope.get("server"):
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    if client := scope.get("client"):
        attributes["client.address"] = client[0]
    if agent := _header(scope["headers"], b"user-agent"):
        attributes["user_agent.original"] = agent
    return attributes


def _answer_headers(
    headers: Iterable[tuple[bytes, bytes]], request_id: bytes, over_tls: bool
) -> list[tuple[bytes, bytes]]:
    answer = [(name, value) for name, value in headers if name.lower() not in _SET]
    present = {name.lower() for name, _ in answer}
    answer.append((b"x-request-id", request_id))
    answer.append((b"api-version", _API_VERSION))
    answer.extend(header for header in _DEFAULTS if header[0] not in present)
    if over_tls and _HSTS[0] not in present:
        answer.append(_HSTS)
    return answer


class Edge:
    """The layer the module docstring describes; `untraced` paths get no span."""

    def __init__(self, app: ASGIApp, untraced: Iterable[str] = ()) -> None:
        self._app = app
        self._untraced = frozenset(untraced)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        # One pass over the fields: the first X-Request-ID, and the trace context's.
        given: str | None = None
        propagated = []
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if given is None:
                    given = value.decode("latin-1")
            elif name in _PROPAGATED:
                propagated.append((name.decode("latin-1"), value.decode("latin-1")))
        request_id = given if given and _ACCEPTED_ID.match(given) else new_request_id()
        state = scope.setdefault("state", {})
        state[REQUEST_ID] = request_id
        traced = scope.get("path") not in self._untraced
        parent = extract_context(propagated) if propagated else otel_context.Context()
        context = baggage.set_baggage(REQUEST_ID, request_id, context=parent)
        span = (
            tracer.start_span(scope["method"], context=context, kind=SpanKind.SERVER)
            if traced
            else trace.INVALID_SPAN
        )
        # Read from the request only for a span that is kept (no sampler of ours reads them).
        traced = traced and span.is_recording()
        if traced:
            span.set_attributes(_request_attributes(scope))
        token = otel_context.attach(trace.set_span_in_context(span, context))
        id_bytes = request_id.encode("latin-1")
        over_tls = scope.get("scheme") == "https"

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                if traced:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_attribute("error.type", str(status))
                        span.set_status(Status(StatusCode.ERROR))
                message = {
                    **message,
                    "headers": _answer_headers(message.get("headers", ()), id_bytes, over_tls),
                }
            await send(message)

        try:
            await self._app(scope, receive, answer)
        except BaseException as exc:
            if traced:
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            if traced:
                if route := state.get(ROUTE_TEMPLATE):
                    span.set_attribute("http.route", route)
                    span.update_name(f"{scope['method']} {route}")
                span.end()
            otel_context.detach(token)

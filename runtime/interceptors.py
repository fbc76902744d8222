"""Server interceptors: the cross-cutting work of every RPC, kept out of the handlers.

Order, outermost first: observation (a SERVER span continuing the caller's trace, metrics and
one JSON log line per call), errors (exceptions become `google.rpc.Status`), identity (token,
tenant, role), validation (every request message against its contract, before any handler sees it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import Any

import grpc
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy.exc import DBAPIError, OperationalError

from runtime import auth, errors, validation
from runtime.methods import MethodInfo, customer_of, field_value, method_info
from runtime.telemetry import (
    extract_context,
    grpc_server_handled_total,
    grpc_server_handling_seconds,
    grpc_server_started_total,
)

logger = logging.getLogger("upstream.rpc")

# Absolute `time.monotonic()` deadline of the call being served; outgoing calls inherit it.
current_deadline: ContextVar[float | None] = ContextVar("current_deadline", default=None)

tracer = trace.get_tracer("upstream.rpc")
# A server span is an error for these codes only: the others are the caller's (OpenTelemetry's
# gRPC conventions).
_SERVER_ERRORS = frozenset(
    (
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    )
)


def _server_span(
    method: MethodInfo, context: grpc.aio.ServicerContext
) -> tuple[trace.Span, otel_context.Context]:
    """The call's SERVER span, a child of the trace context its metadata carries, and the
    context to make current: the span, and the metadata's baggage (the gateway's request id
    among it)."""
    parent = extract_context(
        (key, value) for key, value in context.invocation_metadata() or () if isinstance(value, str)
    )
    attributes: dict[str, str | int] = {
        "rpc.system": "grpc",
        "rpc.service": method.service,
        "rpc.method": method.method,
    }
    peer = context.peer() or ""  # "ipv4:127.0.0.1:54321", "ipv6:[::1]:54321"
    if peer.startswith(("ipv4:", "ipv6:")):
        address, _, port = peer[5:].rpartition(":")
        attributes["client.address"] = address.strip("[]")
        if port.isdigit():
            attributes["client.port"] = int(port)
    span = tracer.start_span(
        method.full_name, context=parent, kind=SpanKind.SERVER, attributes=attributes
    )
    return span, trace.set_span_in_context(span, parent)


class _WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Runs `around()` as a context manager around the handler, for all four RPC kinds,
    and `on_request()` on each request message (the first of a stream included)."""

    def around(
        self, method: MethodInfo, context: grpc.aio.ServicerContext
    ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    def on_request(self, method: MethodInfo, request: Any, index: int) -> None:
        """Called for each request message; `index` is its position in the stream."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = method_info(handler_call_details.method)
        return self._wrap(handler, method)

    def _requests(self, method: MethodInfo, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async def checked() -> AsyncIterator[Any]:
            index = 0
            async for request in requests:
                self.on_request(method, request, index)
                index += 1
                yield request

        return checked()

    def _wrap(self, handler: grpc.RpcMethodHandler, method: MethodInfo) -> grpc.RpcMethodHandler:
        around = self.around
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with around(method, context):
                    self.on_request(method, request, 0)
                    return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream
            if not method.is_api and not inspect.isasyncgenfunction(inner_us):
                # Health's Watch answers with `context.write()`, and stays such a handler.
                async def unary_writer(request: Any, context: grpc.aio.ServicerContext) -> None:
                    async with around(method, context):
                        self.on_request(method, request, 0)
                        await inner_us(request, context)

                return grpc.unary_stream_rpc_method_handler(
                    unary_writer, handler.request_deserializer, handler.response_serializer
                )

            async def unary_stream(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                async with around(method, context):
                    self.on_request(method, request, 0)
                    async for response in _responses(inner_us(request, context)):
                        yield response

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
            ) -> Any:
                async with around(method, context):
                    return await inner_su(self._requests(method, requests), context)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer
            )
        inner_ss = handler.stream_stream
        if not method.is_api and not inspect.isasyncgenfunction(inner_ss):

            async def stream_writer(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
            ) -> None:
                async with around(method, context):
                    await inner_ss(self._requests(method, requests), context)

            return grpc.stream_stream_rpc_method_handler(
                stream_writer, handler.request_deserializer, handler.response_serializer
            )

        async def stream_stream(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async with around(method, context):
                responses = inner_ss(self._requests(method, requests), context)
                async for response in _responses(responses):
                    yield response

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, handler.request_deserializer, handler.response_serializer
        )


async def _responses(answer: Any) -> AsyncIterator[Any]:
    """The messages of a server-streaming handler's answer: an async generator's, or, from a
    handler that writes with `context.write()` (a coroutine), none: it is awaited."""
    if inspect.isawaitable(answer):
        await answer
        return
    async for response in answer:
        yield response


class InFlight:
    """Counts API calls being served, so shutdown can wait for exactly those (health watch
    streams never end on their own and must not hold the drain for the whole grace period)."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self, quiet_seconds: float = 0.0) -> None:
        """Until no call is being served, and none has begun for `quiet_seconds`: a call the
        server accepted just before it stopped accepting is still on its way here."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(quiet_seconds)
            if self._idle.is_set():
                return


class ObservationInterceptor(_WrappingInterceptor):
    """Prometheus RPC metrics for every call, and one JSON log line per call (no request
    content logged): every failed call and every call of `slow_ms` or more, and a random
    `sample_rate` share of the others, each such line saying the rate (`log_sample_rate`) so
    counts read from logs can be scaled back; the metrics count every call."""

    def __init__(
        self, in_flight: InFlight, *, sample_rate: float = 1.0, slow_ms: float = 500.0
    ) -> None:
        self._in_flight = in_flight
        self._sample_rate = sample_rate
        self._slow_seconds = slow_ms / 1000

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = method_info(handler_call_details.method)
        if not method.is_api:
            return await super().intercept_service(continuation, handler_call_details)
        # Counted in flight from its arrival, not from when its handler starts: shutdown then
        # never cuts short a call gRPC accepted (`around` ends the count).
        self._in_flight.enter()
        try:
            handler = await continuation(handler_call_details)
        except BaseException:
            self._in_flight.leave()
            raise
        if handler is None:
            self._in_flight.leave()
            return handler
        return self._wrap(handler, method)

    @asynccontextmanager
    async def around(
        self, method: MethodInfo, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        labels = (method.rpc_type, method.service, method.method)
        grpc_server_started_total.labels(*labels).inc()
        span, attached = None, None
        if method.is_api:
            span, current = _server_span(method, context)
            attached = otel_context.attach(current)
        remaining = context.time_remaining()
        token = current_deadline.set(
            time.monotonic() + remaining if remaining is not None else None
        )
        started = time.perf_counter()
        # A call its client gave up on ends in the handler with one of these.
        given_up = False
        failure: BaseException | None = None
        try:
            yield
        except (asyncio.CancelledError, GeneratorExit):
            given_up = True
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if method.is_api:
                self._in_flight.leave()
            # A stream whose client gave up is closed from another context, which holds no
            # deadline (nor span) of this call; the call is still counted and logged.
            own_context = True
            try:
                current_deadline.reset(token)
            except ValueError:
                own_context = False
            elapsed = time.perf_counter() - started
            code = (
                grpc.StatusCode.CANCELLED
                if given_up or context.cancelled()
                else _status_code(context.code())
            )
            grpc_server_handled_total.labels(*labels, code.name).inc()
            grpc_server_handling_seconds.labels(*labels).observe(elapsed)
            sampled = (
                self._sample_rate < 1
                and code is grpc.StatusCode.OK
                and elapsed < self._slow_seconds
            )
            if method.is_api and (not sampled or random.random() < self._sample_rate):
                identity = auth.current_identity.get()
                extra = {
                    "grpc_method": method.full_name,
                    "grpc_code": code.name,
                    "duration_ms": round(elapsed * 1000, 2),
                    "subject": identity.subject if identity else None,
                    "customer": identity.customer if identity else None,
                }
                if sampled:
                    extra["log_sample_rate"] = self._sample_rate
                logger.info("rpc handled", extra=extra)
            if span is not None:
                _end_span(span, code, context, failure)
            if attached is not None and own_context:
                otel_context.detach(attached)


def _end_span(
    span: trace.Span,
    code: grpc.StatusCode,
    context: grpc.aio.ServicerContext,
    failure: BaseException | None,
) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        details = context.details() if hasattr(context, "details") else None
        span.set_status(Status(StatusCode.ERROR, str(details or code.name)))
    if failure is not None and not isinstance(failure, grpc.aio.AbortError):
        span.record_exception(failure)
    span.end()


class ErrorInterceptor(_WrappingInterceptor):
    """`ApiError` becomes its status; anything unexpected becomes INTERNAL, logged once."""

    @asynccontextmanager
    async def around(
        self, method: MethodInfo, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        try:
            yield
        except errors.ApiError as exc:
            await context.abort_with_status(rpc_status.to_status(exc.to_status()))
        except grpc.aio.AbortError:
            raise
        except NotImplementedError:
            # The generated base servicer raises this for a method the service lacks.
            unimplemented = errors.ApiError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{method.method} is not implemented yet",
                reason="UNIMPLEMENTED",
            )
            await context.abort_with_status(rpc_status.to_status(unimplemented.to_status()))
        except grpc.aio.AioRpcError as exc:
            # A downstream call failed: pass its code on rather than hiding it as INTERNAL.
            logger.warning("downstream call failed", extra={"grpc_code": exc.code().name})
            status = errors.status_from_metadata(
                exc.code(), exc.details() or "", exc.trailing_metadata() or ()
            )
            await context.abort_with_status(rpc_status.to_status(status))
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc, OperationalError):
                # PostgreSQL closed the connection or cannot be reached (a restart, a
                # failover): the pool has dropped the connection, and the same call made
                # again gets a new one once the database answers.
                logger.warning("database unavailable in %s", method.full_name)
                lost = errors.unavailable("the database is unavailable; retry the call")
            else:
                logger.exception("unhandled error in %s", method.full_name)
                lost = errors.internal()
            await context.abort_with_status(rpc_status.to_status(lost.to_status()))
        except Exception:
            logger.exception("unhandled error in %s", method.full_name)
            await context.abort_with_status(rpc_status.to_status(errors.internal().to_status()))


class IdentityInterceptor(_WrappingInterceptor):
    """Every API call needs a valid token; a resource of another tenant is NOT_FOUND, and a
    viewer's write is PERMISSION_DENIED. Health and reflection stay open."""

    def __init__(self, verifier: auth.TokenVerifier, service_only_methods: frozenset[str]) -> None:
        self._verifier = verifier
        self._service_only = service_only_methods

    @asynccontextmanager
    async def around(
        self, method: MethodInfo, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        if not method.is_api:
            yield
            return
        metadata = dict(context.invocation_metadata() or ())
        # Each RPC runs in its own task, so the identity stays with this call; it is left set
        # for the outer interceptors, which log who made the call.
        auth.current_identity.set(
            self._verifier.verify_header(_text(metadata.get("authorization")))
        )
        yield

    def on_request(self, method: MethodInfo, request: Any, index: int) -> None:
        if not method.is_api or index > 0:
            return
        identity = auth.require_identity()
        for path in method.resource_fields:
            name = field_value(request, path)
            if not name:
                raise errors.invalid_argument(
                    f"{path} is required", errors.FieldViolation(path, "required field is empty")
                )
            customer = customer_of(name)
            if customer is None:
                raise errors.invalid_argument(
                    f"{path} must be a resource name under customers/{{customer}}",
                    errors.FieldViolation(
                        path, f"'{errors.client_text(name)}' is not customers/{{customer}}/..."
                    ),
                )
            if not identity.can_read(customer):
                raise errors.not_found(name)
        if method.full_name in self._service_only and identity.role is not auth.Role.SUPERUSER:
            raise errors.permission_denied(
                f"{method.method} is for Upstream's own services", role=identity.role.value
            )
        if not method.is_read_only and not identity.can_write:
            raise errors.permission_denied(
                f"role {identity.role.value!r} is read-only; {method.method} needs admin",
                role=identity.role.value,
            )


class ValidationInterceptor(_WrappingInterceptor):
    """Each request message of our API, stream messages included, is checked against its
    contract (`runtime.validation`) once the caller is known and before the handler reads
    it, so a bad request never reaches a handler or the database."""

    @asynccontextmanager
    async def around(
        self, method: MethodInfo, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        yield

    def on_request(self, method: MethodInfo, request: Any, index: int) -> None:
        if method.is_api:
            validation.check_request(request)


def _status_code(code: grpc.StatusCode | int | None) -> grpc.StatusCode:
    """The aio context reports the code set by abort as an enum member or a number."""
    if code is None:
        return grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value

"""Client channels to our services: round_robin over healthy replicas, retries, deadlines,
identity, tracing.

Retries on UNAVAILABLE apply to idempotent methods only, read from the contract: GET routes
and methods marked `option idempotency_level = IDEMPOTENT` (they carry a request id).
Every call gets a deadline: the remaining budget of the call being served, else the default.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtime.interceptors import current_deadline
from runtime.methods import http_bindings
from runtime.telemetry import unsampled_parents_have_unsampled_children

_IDEMPOTENT_LEVELS = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)
RECONNECT_WITHIN_MS = 2000
# Keep clients from pinging more often than the servers allow (`min_ping_interval`).
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
    # A replica back from a restart is reached again within seconds, not gRPC's default of up
    # to two minutes of backoff: rolling restarts take replicas away one after the other.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_WITHIN_MS),
]


def is_idempotent(method: descriptor.MethodDescriptor) -> bool:
    if method.client_streaming:
        return False
    if method.GetOptions().idempotency_level in _IDEMPOTENT_LEVELS:
        return True
    bindings = http_bindings(method)
    return bool(bindings) and all(b.verb == "get" for b in bindings)


def service_config(full_service_name: str) -> str:
    """The JSON service config for one of our services."""
    service = descriptor_pool.Default().FindServiceByName(full_service_name)
    idempotent = [
        {"service": full_service_name, "method": m.name}
        for m in service.methods
        if is_idempotent(m)
    ]
    # Each replica's health is watched: one that answers NOT_SERVING (stopping, or its
    # database gone) gets no new calls while the others take them.
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
    }
    if idempotent:
        config["methodConfig"] = [
            {
                "name": idempotent,
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


tracer = trace.get_tracer("upstream.clients")
# A stream's client left before it ended: its span's status.
_STOPPED_READING = "the caller stopped before the call ended"
# Tasks ending the spans of calls that ended (see Outgoing.finish_when_done).
_ENDING: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Outgoing:
    """One call as it leaves: its CLIENT span, and the timeout and metadata it is sent with."""

    span: trace.Span
    timeout: float
    metadata: tuple[tuple[str, str | bytes], ...]

    def finished(self, code: grpc.StatusCode, details: str | None = None) -> None:
        """Ends the span with the call's status code (OpenTelemetry's gRPC conventions)."""
        self.span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            self.span.set_status(Status(StatusCode.ERROR, details))
        self.span.end()

    def failed(self, exc: BaseException) -> None:
        """Ends the span of a call that raised `exc` instead of answering."""
        if isinstance(exc, grpc.aio.AioRpcError):
            self.finished(exc.code(), exc.details())
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.finished(grpc.StatusCode.CANCELLED, _STOPPED_READING)
        else:
            self.span.record_exception(exc)
            self.finished(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")

    def finish_when_done(self, call: grpc.aio.Call) -> None:
        """Ends the span when the call ends, however it does: for streams."""

        def done(ended: grpc.aio.Call) -> None:
            task = asyncio.get_running_loop().create_task(self._end(ended))
            # The loop keeps only a weak reference to a task.
            _ENDING.add(task)
            task.add_done_callback(_ENDING.discard)

        call.add_done_callback(done)

    async def _end(self, call: grpc.aio.Call) -> None:
        self.finished(await call.code(), await call.details())


class CallPolicy:
    """What every call to one of our services gets: a deadline (the remaining budget of the
    call being served, else the default), the service's own credentials when the caller sent
    none, and a CLIENT span whose W3C trace context and baggage the metadata carries.

    Channels apply it in their interceptors; the gateway applies it itself, on a channel
    without any (grpc.aio's interceptor machinery, a task and futures a call, cost its calls
    about 0.15 ms of CPU each under `make bench`).
    """

    def __init__(self, default_timeout: float, authorization: Callable[[], str] | None = None):
        self._default_timeout = default_timeout
        self._authorization = authorization
        # Whether a call under a span not sampled needs no span of its own, as the tracer
        # provider it was found for says (found again if the process's provider changes:
        # one used before tracing is set up then knows the provider set up).
        self._unsampled_unspanned = False
        self._probed: object = None

    def start(
        self,
        method: str | bytes,
        metadata: Iterable[tuple[str, str | bytes]] | None = None,
        timeout: float | None = None,
    ) -> Outgoing:
        if isinstance(method, bytes):  # grpc.aio hands interceptors bytes (grpc/grpc#31092)
            method = method.decode()
        if timeout is None:
            deadline = current_deadline.get()
            remaining = deadline - time.monotonic() if deadline is not None else None
            timeout = (
                min(remaining, self._default_timeout)
                if remaining is not None
                else self._default_timeout
            )
            timeout = max(timeout, 0.0)
        pairs = list(metadata or ())
        if self._authorization is not None and all(key != "authorization" for key, _ in pairs):
            pairs.append(("authorization", self._authorization()))
        carrier: dict[str, str] = {}
        if (provider := trace.get_tracer_provider()) is not self._probed:
            self._probed = provider
            self._unsampled_unspanned = unsampled_parents_have_unsampled_children()
        parent = trace.get_current_span().get_span_context()
        if self._unsampled_unspanned and parent.is_valid and not parent.trace_flags.sampled:
            # Its span would record nothing: the call carries its caller's trace context,
            # the same trace, equally not sampled.
            propagate.inject(carrier)
            pairs.extend(carrier.items())
            return Outgoing(trace.INVALID_SPAN, timeout, tuple(pairs))
        service, _, name = method.lstrip("/").partition("/")
        span = tracer.start_span(
            method,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        pairs.extend(carrier.items())
        return Outgoing(span, timeout, tuple(pairs))


class _Intercepting:
    def __init__(self, policy: CallPolicy) -> None:
        self._policy = policy

    def _start(
        self, details: grpc.aio.ClientCallDetails
    ) -> tuple[Outgoing, grpc.aio.ClientCallDetails]:
        outgoing = self._policy.start(details.method, details.metadata, details.timeout)
        sent = grpc.aio.ClientCallDetails(
            details.method,
            outgoing.timeout,
            grpc.aio.Metadata(*outgoing.metadata),
            details.credentials,
            details.wait_for_ready,
        )
        return outgoing, sent

    async def _unary(self, outgoing: Outgoing, started: Awaitable[Any]) -> Any:
        try:
            call = await started
            code = await call.code()
        except BaseException as exc:
            outgoing.failed(exc)
            raise
        outgoing.finished(code, await call.details())
        return call

    async def _stream(self, outgoing: Outgoing, started: Awaitable[Any]) -> Any:
        try:
            call = await started
        except BaseException as exc:
            outgoing.failed(exc)
            raise
        outgoing.finish_when_done(call)
        return call


# grpc.aio files each interceptor under one call type only, so there is one class per type.
class _UnaryUnaryPolicy(_Intercepting, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        outgoing, sent = self._start(client_call_details)
        return await self._unary(outgoing, continuation(sent, request))


class _UnaryStreamPolicy(_Intercepting, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        outgoing, sent = self._start(client_call_details)
        return await self._stream(outgoing, continuation(sent, request))


class _StreamUnaryPolicy(_Intercepting, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        outgoing, sent = self._start(client_call_details)
        return await self._unary(outgoing, continuation(sent, request_iterator))


class _StreamStreamPolicy(_Intercepting, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        outgoing, sent = self._start(client_call_details)
        return await self._stream(outgoing, continuation(sent, request_iterator))


def open_channel(
    target: str,
    full_service_name: str,
    *,
    default_timeout: float,
    authorization: Callable[[], str] | None = None,
) -> grpc.aio.Channel:
    """An insecure channel (TLS is the mesh's job) whose interceptors apply a `CallPolicy`.

    `authorization` supplies a `Bearer` value for calls made on the service's own behalf;
    calls that carry the end user's token in their metadata keep it.
    """
    policy = CallPolicy(default_timeout, authorization)
    kinds = (_UnaryUnaryPolicy, _UnaryStreamPolicy, _StreamUnaryPolicy, _StreamStreamPolicy)
    return plain_channel(target, full_service_name, interceptors=[kind(policy) for kind in kinds])


def plain_channel(
    target: str,
    full_service_name: str,
    *,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A channel with the balancing, retries and keepalive of our services, and no call
    policy unless `interceptors` apply one: its caller applies a `CallPolicy` to each call."""
    return grpc.aio.insecure_channel(
        target,
        options=[*CHANNEL_OPTIONS, ("grpc.service_config", service_config(full_service_name))],
        interceptors=interceptors or None,
    )

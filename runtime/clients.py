"""Client channels to our services: round_robin over healthy replicas, retries, deadlines,
identity, tracing.

Retries on UNAVAILABLE apply to idempotent methods only, read from the contract: GET routes
and methods marked `option idempotency_level = IDEMPOTENT` (they carry a request id).
Every call gets a deadline: the remaining budget of the call being served, else the default.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from runtime.interceptors import current_deadline
from runtime.methods import http_bindings

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


class _CallPolicy:
    """Sets the deadline and, when the caller set none, the service's own credentials."""

    def __init__(self, default_timeout: float, authorization: Callable[[], str] | None) -> None:
        self._default_timeout = default_timeout
        self._authorization = authorization

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        timeout = details.timeout
        if timeout is None:
            deadline = current_deadline.get()
            remaining = deadline - time.monotonic() if deadline is not None else None
            timeout = (
                min(remaining, self._default_timeout)
                if remaining is not None
                else self._default_timeout
            )
            timeout = max(timeout, 0.0)
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if self._authorization is not None and "authorization" not in metadata:
            metadata["authorization"] = self._authorization()
        return grpc.aio.ClientCallDetails(
            details.method, timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files each interceptor under one call type only, so there is one class per type.
class _UnaryUnaryPolicy(_CallPolicy, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class _UnaryStreamPolicy(_CallPolicy, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class _StreamUnaryPolicy(_CallPolicy, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStreamPolicy(_CallPolicy, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request_iterator)


def open_channel(
    target: str,
    full_service_name: str,
    *,
    default_timeout: float,
    authorization: Callable[[], str] | None = None,
) -> grpc.aio.Channel:
    """An insecure channel (TLS is the mesh's job) with our policy and tracing interceptors.

    `authorization` supplies a `Bearer` value for calls made on the service's own behalf;
    calls that carry the end user's token in their metadata keep it.
    """
    policies = (_UnaryUnaryPolicy, _UnaryStreamPolicy, _StreamUnaryPolicy, _StreamStreamPolicy)
    interceptors = [
        *aio_client_interceptors(),
        *(policy(default_timeout, authorization) for policy in policies),
    ]
    return grpc.aio.insecure_channel(
        target,
        options=[*CHANNEL_OPTIONS, ("grpc.service_config", service_config(full_service_name))],
        interceptors=interceptors,
    )

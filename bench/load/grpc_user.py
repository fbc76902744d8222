"""gRPC calls as locust requests: a client interceptor that reports every call on
`environment.events.request` (request type "grpc", the full method name, milliseconds,
the size of the answer, the error), as locust's HTTP clients report theirs.

Sync gRPC only: its blocking calls cooperate with gevent once `init_gevent()` has run, which
must happen before any channel exists (the locustfile calls it at import).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from locust import User
from locust.env import Environment

# gRPC status names as ghz writes them (Go's codes.Code.String()).
GHZ_STATUS_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


def ghz_status(error: BaseException | None) -> str:
    if error is None:
        return "OK"
    if isinstance(error, grpc.RpcError):
        return GHZ_STATUS_NAMES.get(error.code(), "Unknown")  # type: ignore[attr-defined]
    return "Unknown"


class _ReportedStream:
    """A server stream that reports its call once it has been read to the end (or failed)."""

    def __init__(self, call: Any, report: Callable[[int, BaseException | None], None]) -> None:
        self._call = call
        self._report = report
        self._length = 0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            message = next(self._call)
        except StopIteration:
            self._report(self._length, None)
            raise
        except grpc.RpcError as error:
            self._report(self._length, error)
            raise
        self._length += message.ByteSize()
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Fires `environment.events.request` for every unary and server-streaming call."""

    def __init__(self, environment: Environment, context: dict[str, Any]) -> None:
        self._environment = environment
        self._context = context

    def _reporter(
        self, details: grpc.ClientCallDetails
    ) -> Callable[[int, BaseException | None], None]:
        started, start_time = time.perf_counter(), time.time()
        method = details.method
        name = method.decode() if isinstance(method, bytes) else method

        def report(length: int, error: BaseException | None) -> None:
            self._environment.events.request.fire(
                request_type="grpc",
                name=name,
                response_time=(time.perf_counter() - started) * 1000,
                response_length=length,
                response=None,
                context=self._context,
                exception=error,
                start_time=start_time,
                url=None,
            )

        return report

    def intercept_unary_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        report = self._reporter(client_call_details)
        call = continuation(client_call_details, request)
        error = call.exception()  # waits for the answer
        report(0 if error else call.result().ByteSize(), error)
        return call

    def intercept_unary_stream(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        report = self._reporter(client_call_details)
        return _ReportedStream(continuation(client_call_details, request), report)


_channels: dict[str, grpc.Channel] = {}


class GrpcUser(User):
    """A locust user calling the services over gRPC: one channel per target for the whole
    locust process (as a service keeps one), each user's calls reported through its own
    interceptor."""

    abstract = True

    def channel(self, target: str) -> grpc.Channel:
        if target not in _channels:
            _channels[target] = grpc.insecure_channel(target)
        return grpc.intercept_channel(
            _channels[target], LocustInterceptor(self.environment, self.context())
        )

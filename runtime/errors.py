"""One way to fail an RPC: a `google.rpc.Status` with a canonical code and details.

Every error carries `ErrorInfo` (reason, domain, metadata); bad input adds `BadRequest`
field violations and retryable failures add `RetryInfo`. Handlers raise `ApiError`; the
server's error interceptor turns it into the status trailer, so no handler talks to the
gRPC context about errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "upstream.dev"
# A status travels in gRPC trailers, which peers refuse beyond a few KiB (8 KiB by default):
# client text quoted in an error is cut to MAX_QUOTED_CHARS, and every text of a status to
# MAX_TEXT_BYTES of UTF-8, whatever a message embeds.
MAX_QUOTED_CHARS = 100
MAX_TEXT_BYTES = 1024
ELLIPSIS = "…"
# Control characters a client sent are shown escaped, never written into a message as is.
_ESCAPED_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


def client_text(value: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """Text a client sent, as an error may quote it: control characters escaped, and cut to
    `limit` characters with "…"."""
    shown = value.translate(_ESCAPED_CONTROLS)
    return shown if len(shown) <= limit else shown[: limit - 1] + ELLIPSIS


def _bounded(text: str) -> str:
    encoded = text.encode()
    if len(encoded) <= MAX_TEXT_BYTES:
        return text
    room = MAX_TEXT_BYTES - len(ELLIPSIS.encode())
    return encoded[:room].decode(errors="ignore") + ELLIPSIS


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. `page_size`, `drift_config.q`) and why."""

    field: str
    description: str
    reason: str = ""


class ApiError(Exception):
    """An error the caller should see, with a canonical code and structured details."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str,
        metadata: Mapping[str, str] | None = None,
        violations: Iterable[FieldViolation] = (),
        retry_after_seconds: float | None = None,
    ) -> None:
        message = _bounded(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = {key: _bounded(value) for key, value in (metadata or {}).items()}
        self.violations = tuple(
            replace(v, field=_bounded(v.field), description=_bounded(v.description))
            for v in violations
        )
        self.retry_after_seconds = retry_after_seconds

    def to_status(self) -> status_pb2.Status:
        details = [
            error_details_pb2.ErrorInfo(
                reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
            )
        ]
        if self.violations:
            details.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description, reason=v.reason
                        )
                        for v in self.violations
                    ]
                )
            )
        if self.retry_after_seconds is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_seconds * 1e9))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        packed = []
        for detail in details:
            any_detail = any_pb2.Any()
            any_detail.Pack(detail)
            packed.append(any_detail)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)


def invalid_argument(message: str, *violations: FieldViolation) -> ApiError:
    """Bad input: INVALID_ARGUMENT with one field violation per problem."""
    return ApiError(
        grpc.StatusCode.INVALID_ARGUMENT, message, reason="INVALID_ARGUMENT", violations=violations
    )


def invalid_fields(problems: Sequence[FieldViolation]) -> ApiError:
    """INVALID_ARGUMENT for one or more field violations, its message the first of them."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return invalid_argument(f"{first.field} {first.description}{more}", *problems)


def stale(resource_name: str) -> ApiError:
    """A conditional change whose etag no longer matches the resource (AIP-154)."""
    return ApiError(
        grpc.StatusCode.ABORTED,
        f"{client_text(resource_name)} changed since its etag was read; get it again and retry",
        reason="ETAG_MISMATCH",
        metadata={"resource": resource_name},
    )


def not_found(resource_name: str) -> ApiError:
    """The resource does not exist, or belongs to a tenant the caller cannot see."""
    shown = client_text(resource_name)
    return ApiError(
        grpc.StatusCode.NOT_FOUND,
        f"{shown} not found",
        reason="RESOURCE_NOT_FOUND",
        metadata={"resource": shown},
    )


def permission_denied(message: str, *, role: str) -> ApiError:
    return ApiError(
        grpc.StatusCode.PERMISSION_DENIED,
        message,
        reason="PERMISSION_DENIED",
        metadata={"role": role},
    )


def unauthenticated(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, message, reason="UNAUTHENTICATED")


def internal(message: str = "internal error") -> ApiError:
    return ApiError(grpc.StatusCode.INTERNAL, message, reason="INTERNAL")


def unavailable(message: str, *, retry_after_seconds: float = 1.0) -> ApiError:
    return ApiError(
        grpc.StatusCode.UNAVAILABLE,
        message,
        reason="UNAVAILABLE",
        retry_after_seconds=retry_after_seconds,
    )


def status_from_metadata(
    code: grpc.StatusCode, message: str, trailing_metadata: Iterable[tuple[str, str | bytes]]
) -> status_pb2.Status:
    """The rich status a server sent (its `grpc-status-details-bin` trailer), or a bare one."""
    for key, value in trailing_metadata:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return status_pb2.Status(code=code.value[0], message=message)


HTTP_STATUS_BY_CODE: dict[int, int] = {
    # googleapis google/rpc/code.proto, "HTTP Mapping" of each code.
    code_pb2.OK: 200,
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
}


def http_status(code: int) -> int:
    return HTTP_STATUS_BY_CODE.get(code, 500)

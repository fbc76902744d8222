"""The rich status every failed call carries, and the HTTP status the gateway maps it to."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from runtime import errors
from runtime.errors import ApiError, FieldViolation


def unpack(status: status_pb2.Status) -> list[object]:
    kinds = [error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo]
    details: list[object] = []
    for packed in status.details:
        kind = next(k for k in kinds if packed.Is(k.DESCRIPTOR))
        detail = kind()
        packed.Unpack(detail)
        details.append(detail)
    return details


def test_every_status_carries_error_info_in_our_domain() -> None:
    error = ApiError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "upload is still processing",
        reason="UPLOAD_PROCESSING",
        metadata={"upload": "customers/a/uploads/u1"},
    )
    status = error.to_status()
    assert status.code == code_pb2.FAILED_PRECONDITION
    assert status.message == "upload is still processing"
    assert unpack(status) == [
        error_details_pb2.ErrorInfo(
            reason="UPLOAD_PROCESSING",
            domain="upstream.dev",
            metadata={"upload": "customers/a/uploads/u1"},
        )
    ]


def test_bad_input_lists_every_field_violation_in_order() -> None:
    error = errors.invalid_argument(
        "2 problems",
        FieldViolation("page_size", "must be between 0 and 1000"),
        FieldViolation("drift_config.current_window_days", "too small", reason="OUT_OF_RANGE"),
    )
    status = error.to_status()
    assert status.code == code_pb2.INVALID_ARGUMENT
    info, bad_request = unpack(status)
    assert info == error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain="upstream.dev")
    assert bad_request == error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="page_size", description="must be between 0 and 1000"
            ),
            error_details_pb2.BadRequest.FieldViolation(
                field="drift_config.current_window_days",
                description="too small",
                reason="OUT_OF_RANGE",
            ),
        ]
    )


def test_a_retryable_failure_says_when_to_retry() -> None:
    status = errors.unavailable("database is restarting", retry_after_seconds=1.5).to_status()
    assert status.code == code_pb2.UNAVAILABLE
    info, retry = unpack(status)
    assert info.reason == "UNAVAILABLE"  # type: ignore[attr-defined]
    assert retry.retry_delay.seconds == 1  # type: ignore[attr-defined]
    assert retry.retry_delay.nanos == 500_000_000  # type: ignore[attr-defined]


def test_unavailable_defaults_to_retry_after_one_second() -> None:
    _, retry = unpack(errors.unavailable("busy").to_status())
    assert retry.retry_delay.ToTimedelta().total_seconds() == 1.0  # type: ignore[attr-defined]


def test_a_status_without_violations_or_retry_has_only_error_info() -> None:
    status = errors.internal().to_status()
    assert status.code == code_pb2.INTERNAL
    assert status.message == "internal error"
    assert len(status.details) == 1


def test_not_found_names_the_resource() -> None:
    status = errors.not_found("customers/a/uploads/u9").to_status()
    assert status.code == code_pb2.NOT_FOUND
    assert status.message == "customers/a/uploads/u9 not found"
    (info,) = unpack(status)
    assert info.reason == "RESOURCE_NOT_FOUND"  # type: ignore[attr-defined]
    assert dict(info.metadata) == {"resource": "customers/a/uploads/u9"}  # type: ignore[attr-defined]


def test_permission_denied_names_the_role() -> None:
    status = errors.permission_denied("viewers cannot upload", role="viewer").to_status()
    assert status.code == code_pb2.PERMISSION_DENIED
    (info,) = unpack(status)
    assert dict(info.metadata) == {"role": "viewer"}  # type: ignore[attr-defined]


def test_unauthenticated_has_its_reason() -> None:
    status = errors.unauthenticated("missing token").to_status()
    assert status.code == code_pb2.UNAUTHENTICATED
    assert unpack(status)[0].reason == "UNAUTHENTICATED"  # type: ignore[attr-defined]


def test_the_rich_status_travels_in_the_trailer() -> None:
    sent = errors.not_found("customers/a").to_status()
    trailer = [("other", "x"), ("grpc-status-details-bin", sent.SerializeToString())]
    received = errors.status_from_metadata(grpc.StatusCode.NOT_FOUND, "ignored", trailer)
    assert received == sent


def test_without_a_details_trailer_the_status_is_bare() -> None:
    received = errors.status_from_metadata(grpc.StatusCode.UNAVAILABLE, "connection refused", [])
    assert received == status_pb2.Status(code=code_pb2.UNAVAILABLE, message="connection refused")


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (code_pb2.OK, 200),
        (code_pb2.INVALID_ARGUMENT, 400),
        (code_pb2.FAILED_PRECONDITION, 400),
        (code_pb2.OUT_OF_RANGE, 400),
        (code_pb2.UNAUTHENTICATED, 401),
        (code_pb2.PERMISSION_DENIED, 403),
        (code_pb2.NOT_FOUND, 404),
        (code_pb2.ABORTED, 409),
        (code_pb2.ALREADY_EXISTS, 409),
        (code_pb2.RESOURCE_EXHAUSTED, 429),
        (code_pb2.CANCELLED, 499),
        (code_pb2.UNKNOWN, 500),
        (code_pb2.INTERNAL, 500),
        (code_pb2.DATA_LOSS, 500),
        (code_pb2.UNIMPLEMENTED, 501),
        (code_pb2.UNAVAILABLE, 503),
        (code_pb2.DEADLINE_EXCEEDED, 504),
    ],
)
def test_http_status_follows_googleapis_code_proto(code: int, http: int) -> None:
    assert errors.http_status(code) == http


def test_every_grpc_code_has_an_http_status() -> None:
    for status_code in grpc.StatusCode:
        assert status_code.value[0] in errors.HTTP_STATUS_BY_CODE


@pytest.mark.parametrize("code", [-1, 17, 99])
def test_an_unknown_code_maps_to_500(code: int) -> None:
    assert errors.http_status(code) == 500

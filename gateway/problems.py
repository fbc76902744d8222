"""Request ids and errors as RFC 9457 problem details.

Every request gets an id (gateway.edge): the client's `X-Request-ID`, when it is a plain
token of up to 128 characters; else a new one. The id rides with the call as OpenTelemetry
baggage (`request_id`), so every service's log lines of the call, and of the calls it makes in
turn, carry it.

An error is `application/problem+json`: `type` (`about:blank`: the status says what
happened), `title` (the HTTP status phrase), `status`, `detail` (what is wrong, in words),
`instance` (the path asked for), and as extension members `code` (the gRPC status name),
`violations` (each bad field and what is wrong with it), `details` (the gRPC error details
in their JSON form), `request_id` and `trace_id`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry import trace
from starlette.types import Scope

from runtime import errors
from runtime.telemetry import REQUEST_ID_BAGGAGE as REQUEST_ID

PROBLEM_JSON = "application/problem+json"
API_VERSION = "v1"


def request_id_of(scope: Scope) -> str | None:
    state = scope.get("state") or {}
    value = state.get(REQUEST_ID)
    return str(value) if value else None


CLIENT_CLOSED_REQUEST = "Client Closed Request"


def _trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def problem(
    status: status_pb2.Status, instance: str | None, request_id: str | None
) -> dict[str, Any]:
    """The problem details of a gRPC status."""
    number = errors.http_status(status.code)
    try:
        title = HTTPStatus(number).phrase
    except ValueError:
        # 499, googleapis' mapping of CANCELLED (nginx's "client closed request").
        title = CLIENT_CLOSED_REQUEST
    violations: list[dict[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend(
                {"field": v.field, "description": v.description} for v in bad.field_violations
            )
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": number,
        "detail": status.message,
        "code": code_pb2.Code.Name(status.code),
    }
    if instance:
        body["instance"] = instance
    if violations:
        body["violations"] = violations
    body["details"] = [json_format.MessageToDict(detail) for detail in status.details]
    if request_id:
        body["request_id"] = request_id
    if trace_id := _trace_id():
        body["trace_id"] = trace_id
    return body


def http_problem(status: HTTPStatus, detail: str) -> dict[str, Any]:
    """Problem details of a refusal that no gRPC status describes (a slow or oversized
    request, refused before it reaches the API)."""
    return {
        "type": "about:blank",
        "title": status.phrase,
        "status": status.value,
        "detail": detail,
        "code": _GRPC_NAMES.get(status, "UNKNOWN"),
    }


_GRPC_NAMES = {
    HTTPStatus.REQUEST_TIMEOUT: "DEADLINE_EXCEEDED",
    HTTPStatus.REQUEST_URI_TOO_LONG: "INVALID_ARGUMENT",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "INVALID_ARGUMENT",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "INVALID_ARGUMENT",
    HTTPStatus.BAD_REQUEST: "INVALID_ARGUMENT",
    HTTPStatus.NOT_FOUND: "NOT_FOUND",
    HTTPStatus.METHOD_NOT_ALLOWED: "UNIMPLEMENTED",
}

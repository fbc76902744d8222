"""The REST gateway: routes built from the protos at start-up, no route written by hand.

Owns no data. Authenticates the caller, forwards the bearer token to the service (which
enforces it again), transcodes HTTP/JSON to gRPC and back, maps gRPC status codes to HTTP as
googleapis' `code.proto` does, and reports its own and its backends' health.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import grpc
from google.api import httpbody_pb2
from google.protobuf import descriptor, message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute
from starlette.routing import request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import conditional as conditional_requests
from gateway import dashboard, docs, forms, http_policy, transcoding
from gateway.edge import ROUTE_TEMPLATE, Edge
from gateway.problems import (
    PROBLEM_JSON,
    http_problem,
    problem,
    request_id_of,
)
from gateway.rate_limits import RateLimitedError, RateLimits, emptier
from gateway.transcoding import Route
from runtime import auth, errors, validation
from runtime.clients import CallPolicy, plain_channel
from runtime.methods import API_SERVICES
from runtime.server import freeze_startup_heap
from runtime.settings import Settings
from runtime.streams import prepended

logger = logging.getLogger("upstream.gateway")

UPLOAD_CHUNK_BYTES = 256 * 1024
HEALTH_TIMEOUT_SECONDS = 2.0
# Idempotency-Key (the IETF draft header) fills the AIP-155 `request_id` field.
IDEMPOTENCY_HEADER = "idempotency-key"
REQUEST_ID_FIELD = "request_id"
# The longest value of each header that reaches a service, checked before anything is
# forwarded: as gRPC metadata (credentials, trace context; gRPC's default limit on metadata
# received is 8 KiB in all) or in the request (Idempotency-Key's 128 are the contract's).
AUTHORIZATION_HEADER = "Authorization"
MAX_AUTHORIZATION_CHARS = 4096
MAX_FORWARDED_HEADER_CHARS = {
    "Idempotency-Key": 128,
    "traceparent": 128,
    "tracestate": 512,
    "baggage": 1024,
    "Content-Type": 256,
}
# Initial metadata a service sends with a download (see ReportsService.DownloadReport).
DISPOSITION_METADATA = "content-disposition"
LENGTH_METADATA = "x-content-length"
DIGEST_METADATA = "x-content-sha256"
# JSON bodies are requests of a few fields; files are uploaded as streamed bodies instead.
MAX_JSON_BODY_BYTES = 1024 * 1024
# A refused request's body is still read so its client can read the answer; past this, the
# connection is closed instead.
DRAIN_BYTES = 64 * 1024 * 1024
# How much of the answers printed as JSON the gateway keeps (wire bytes and JSON together):
# some twenty-five pages of payer summaries or claims. Measured in a soak, the memory they hold
# is about twice that: at 8 MB the gateway grew about 15 MB more than with none.
PRINTED_ANSWERS_BYTES = 4 * 1024 * 1024
# Every path of the API begins so (the protos' `google.api.http` templates).
API_PREFIX = "/v1/"


# The names prometheus-fastapi-instrumentator exports, which HTTP dashboards already query.
UNMATCHED = "none"
http_requests_total = Counter(
    "http_requests_total",
    "REST requests the gateway answered, by route template, method and status.",
    ("handler", "method", "status"),
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "Seconds from a REST request to its answer (a stream's: to its start), by route template.",
    ("handler", "method"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


@functools.lru_cache(maxsize=4096)
def _request_metrics(handler: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter and duration histogram of a route template, method and status
    (looked up once: prometheus_client takes a lock for every lookup)."""
    return (
        http_requests_total.labels(handler, method, str(status)),
        http_request_duration_seconds.labels(handler, method),
    )


def error_response(
    status: status_pb2.Status, request: Request, http_status: HTTPStatus | None = None
) -> JSONResponse:
    body = problem(status, _path(request), request_id_of(request.scope))
    if http_status is not None:
        body.update(status=http_status.value, title=http_status.phrase)
    return _problem_response(body)


def _problem_response(body: dict[str, Any]) -> JSONResponse:
    headers = {"Cache-Control": conditional_requests.NOT_STORED}
    for detail in body.get("details", []):
        if detail.get("@type", "").endswith("google.rpc.RetryInfo"):
            # "1.500s" in the proto3 JSON form; Retry-After takes whole seconds.
            seconds = float(str(detail.get("retryDelay", "1s")).rstrip("s"))
            headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    return transcoding.JSONBody(
        body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers
    )


async def _drain(request: Request) -> None:
    """Read what is left of the request's body, up to DRAIN_BYTES, and drop it."""
    read = 0
    try:
        async for chunk in request.stream():
            read += len(chunk)
            if read > DRAIN_BYTES:
                return
    except (RuntimeError, ClientDisconnect):
        # Read already (a stream is read once), or its client went away.
        return


def _is_stale(status: status_pb2.Status) -> bool:
    """The service refused a change for its etag (`errors.stale`)."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.reason == "ETAG_MISMATCH":
                return True
    return False


def _path(request: Request) -> str:
    raw_path = request.scope.get("raw_path")
    return raw_path.decode("latin-1") if raw_path else request.url.path


def _rpc_status(exc: grpc.aio.AioRpcError) -> status_pb2.Status:
    return errors.status_from_metadata(
        exc.code(), exc.details() or "", exc.trailing_metadata() or ()
    )


class Gateway:
    """Holds one channel per backend service and the routes built from their contracts."""

    def __init__(self, settings: Settings, services: Sequence[descriptor.ServiceDescriptor]):
        self.settings = settings
        self.verifier = auth.TokenVerifier(settings)
        self.rate_limits = RateLimits(
            settings.rate_limit_tenant_per_second,
            settings.rate_limit_tenant_burst,
            settings.rate_limit_client_per_second,
            settings.rate_limit_client_burst,
        )
        self.routes = transcoding.build_routes(services)
        targets = {
            "upstream.ingest.v1": settings.ingest_target,
            "upstream.drift.v1": settings.drift_target,
            "upstream.reports.v1": settings.reports_target,
        }
        self.policy = CallPolicy(settings.client_timeout_seconds)
        self.printed = transcoding.PrintedAnswers(PRINTED_ANSWERS_BYTES)
        self.channels = {
            service.full_name: plain_channel(targets[service.file.package], service.full_name)
            for service in services
        }
        # Each unary method's callable on its channel, made at its first call.
        self._unary_unary: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def handle(self, request: Request) -> Response:
        """One REST call, its answer; when the call was refused before its body was read,
        the body is read first (up to DRAIN_BYTES), so a client still sending it gets the
        answer instead of a reset connection."""
        started = time.perf_counter()
        response = await self._handle(request)
        if response.status_code >= 400 and request.method in ("POST", "PATCH", "PUT"):
            await _drain(request)
        # By route template, never by path: a path holds customer and resource ids.
        handler = request.scope.get("state", {}).get(ROUTE_TEMPLATE, UNMATCHED)
        count, duration = _request_metrics(handler, request.method, response.status_code)
        count.inc()
        duration.observe(time.perf_counter() - started)
        return response

    async def _handle(self, request: Request) -> Response:
        """Match, authenticate, transcode, call, transcode back. Every failure is a JSON
        error body with the mapped HTTP status, never a bare 500."""
        # The path as sent: `match` decodes each bound variable once, as the spec says.
        path = _path(request)
        # HEAD is GET without the body (RFC 9110 §9.3.2): the same call, status and headers.
        head = request.method == "HEAD"
        found = transcoding.match(self.routes, "GET" if head else request.method, path)
        if found is None:
            return _no_route(request, path, transcoding.path_exists(self.routes, path))
        route, path_values = found
        request.scope.setdefault("state", {})[ROUTE_TEMPLATE] = route.binding.template
        conditional = False
        standing = None
        try:
            client = request.client.host if request.client else ""
            by_address = self.rate_limits.client(client)
            # Each field as the request first gave it, by its lower-case name: looked up
            # several times below.
            sent = first_fields(request.scope["headers"])
            _check_authorization_length(sent)
            identity = self.verifier.verify_header(sent.get("authorization"))
            standing = emptier(by_address, self.rate_limits.tenant(identity.customer))
            _check_forwarded_header_lengths(request.scope["headers"])
            _check_content_encoding(route, sent)
            metadata = (("authorization", sent["authorization"]),)
            query = request.query_params.multi_items()
            body = await _json_body(route, request)
            fields = transcoding.request_dict(route, path_values, query, body)
            key = sent.get(IDEMPOTENCY_HEADER)
            if key and REQUEST_ID_FIELD in route.method.input_type.fields_by_name:
                fields.setdefault(REQUEST_ID_FIELD, key)
            conditional = conditional_requests.apply_if_match(route, sent, fields)
            grpc_request = transcoding.parse_request(route, fields)
            # Before forwarding: services name a bad value in their errors, and gRPC refuses
            # error trailers past 16 KiB (which reached clients as a 429).
            validation.check_request(grpc_request)
            response, reply = await self._call(route, grpc_request, metadata, request)
            response = conditional_requests.finish(route, sent, reply, response)
            if standing is not None:
                # No answer has them yet: added as they are, not looked for first.
                response.raw_headers.extend(standing.headers())
            # A stream's answer to HEAD was made without its body already.
            return (
                _without_body(response) if head and not route.method.server_streaming else response
            )
        except UnsupportedEncodingError as refused_coding:
            refused = error_response(
                refused_coding.error.to_status(),
                request,
                http_status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            )
            refused.headers["Accept-Encoding"] = refused_coding.accepted
            return refused
        except RateLimitedError as limited:
            refused = error_response(limited.error.to_status(), request)
            refused.raw_headers.extend(limited.standing.headers())
            return refused
        except errors.ApiError as exc:
            return error_response(exc.to_status(), request)
        except grpc.aio.AioRpcError as exc:
            status = _rpc_status(exc)
            if status.code == code_pb2.CANCELLED:
                # The HTTP client is still here (its leaving is ClientDisconnect): the service
                # ended the call, stopping. Made again, it reaches another replica.
                return error_response(
                    errors.unavailable("the service stopped while answering; retry").to_status(),
                    request,
                )
            if conditional and _is_stale(status):
                # The precondition the client set failed: HTTP's own answer for it.
                return error_response(status, request, http_status=HTTPStatus.PRECONDITION_FAILED)
            return error_response(status, request)
        except ClientDisconnect:
            # Nobody is left to answer (the client went, or its body stalled and was refused).
            return Response(status_code=499)
        except Exception:
            # The route's RPC, not the path: the path holds customer and resource ids.
            logger.exception("gateway failed on %s", route.grpc_path)
            return error_response(errors.internal().to_status(), request)

    async def _call(
        self,
        route: Route,
        grpc_request: message.Message,
        metadata: tuple[tuple[str, str], ...],
        request: Request,
    ) -> tuple[Response, message.Message | None]:
        """The answer, and the reply message it was made of (None for streams)."""
        channel = self.channels[route.method.containing_service.full_name]
        serialize = type(grpc_request).SerializeToString
        deserialize = route.response_class.FromString
        method = route.method
        timeout = (
            self.settings.stream_timeout_seconds
            if method.client_streaming or method.server_streaming
            else None
        )
        if method.client_streaming:
            # A form is read up to its file before the call starts (its file name goes first).
            body, content_type = await _file_body(grpc_request, request)
        outgoing = self.policy.start(route.grpc_path, metadata, timeout)
        if method.client_streaming:
            # What was wrong with the body, found while it was sent on (the call is cancelled).
            problems: list[errors.ApiError] = []
            stream_unary = channel.stream_unary(route.grpc_path, serialize, deserialize)
            call = stream_unary(
                _body_chunks(route, grpc_request, content_type, body, problems),
                metadata=outgoing.metadata,
                timeout=outgoing.timeout,
            )
            outgoing.finish_when_done(call)
            try:
                reply = await call
            except grpc.aio.AioRpcError:
                if problems:
                    raise problems[0] from None
                raise
            except asyncio.CancelledError:
                # gRPC cancels the call when reading the body fails: the body was found wrong,
                # the client left, or it was refused for stalling. Any other cancellation of
                # this task goes on up.
                if problems:
                    raise problems[0] from None
                task = asyncio.current_task()
                if (task is not None and task.cancelling()) or not await request.is_disconnected():
                    raise
                raise ClientDisconnect from None
            return _unary_response(reply, self.printed), reply
        if method.server_streaming:
            unary_stream = channel.unary_stream(route.grpc_path, serialize, deserialize)
            call = unary_stream(grpc_request, metadata=outgoing.metadata, timeout=outgoing.timeout)
            outgoing.finish_when_done(call)
            return await _streaming_response(route, call, request), None
        unary_unary = self._unary_unary.get(route.grpc_path)
        if unary_unary is None:
            unary_unary = self._unary_unary[route.grpc_path] = channel.unary_unary(
                route.grpc_path, serialize, deserialize
            )
        try:
            reply = await unary_unary(
                grpc_request, metadata=outgoing.metadata, timeout=outgoing.timeout
            )
        except BaseException as exc:
            outgoing.failed(exc)
            raise
        outgoing.finished(grpc.StatusCode.OK)
        return _unary_response(reply, self.printed), reply

    async def ready(self) -> dict[str, str]:
        """The health of every backend: SERVING, NOT_SERVING or why it could not be asked."""

        async def check(name: str, channel: grpc.aio.Channel) -> tuple[str, str]:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(
                    health_pb2.HealthCheckRequest(service=name), timeout=HEALTH_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as exc:
                return name, exc.code().name
            return name, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        results = await asyncio.gather(*(check(n, c) for n, c in self.channels.items()))
        return dict(results)


def _no_route(request: Request, path: str, path_exists: bool) -> JSONResponse:
    status = HTTPStatus.METHOD_NOT_ALLOWED if path_exists else HTTPStatus.NOT_FOUND
    body = http_problem(status, f"{request.method} {path} is not a route of this API")
    body.update(instance=path, request_id=request_id_of(request.scope))
    return _problem_response(body)


def first_fields(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The value each header field first has in `raw` (an ASGI scope's: lower-case names),
    by name."""
    fields: dict[str, str] = {}
    for name, value in raw:
        fields.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return fields


def _check_authorization_length(sent: Mapping[str, str]) -> None:
    """An over-long credential is a malformed token (RFC 6750 `invalid_token`): 401, like
    any other token that cannot be verified."""
    if len(sent.get("authorization", "")) > MAX_AUTHORIZATION_CHARS:
        raise errors.unauthenticated(
            f"{AUTHORIZATION_HEADER} header: the bearer token is longer than "
            f"{MAX_AUTHORIZATION_CHARS} characters"
        )


_FORWARDED_LIMITS = {
    name.lower().encode(): limit for name, limit in MAX_FORWARDED_HEADER_CHARS.items()
}


def _check_forwarded_header_lengths(raw: Iterable[tuple[bytes, bytes]]) -> None:
    # One pass over the fields as sent (a byte a character: they are read as Latin-1).
    too_long = {
        name
        for name, value in raw
        if name in _FORWARDED_LIMITS and len(value) > _FORWARDED_LIMITS[name]
    }
    for name, limit in MAX_FORWARDED_HEADER_CHARS.items():
        if name.lower().encode() in too_long:
            description = f"is longer than {limit} characters"
            raise errors.invalid_argument(
                f"{name} header: {description}", errors.FieldViolation(name, description)
            )


# Request bodies the gateway takes compressed: an uploaded file may come gzip-compressed (the
# service reads gzip files, however they are sent); a JSON body comes as it is.
_FILE_CODINGS = frozenset({"gzip", "x-gzip"})


class UnsupportedEncodingError(Exception):
    """A request body in a content coding the route does not read (HTTP 415)."""

    def __init__(self, error: errors.ApiError, accepted: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.accepted = accepted


def _check_content_encoding(route: Route, sent: Mapping[str, str]) -> None:
    """A route that takes a body takes it uncompressed, or a file gzip-compressed too
    (RFC 9110 §15.5.16: 415, with the codings it reads in `Accept-Encoding`)."""
    coding = sent.get("content-encoding", "").strip().lower()
    if coding in ("", "identity") or not route.binding.body:
        return
    if route.streams_request_body and coding in _FILE_CODINGS:
        return
    accepted = "gzip" if route.streams_request_body else "identity"
    description = f"{coding!r} is not read here; send the body " + (
        "as it is or compressed with gzip" if route.streams_request_body else "uncompressed"
    )
    raise UnsupportedEncodingError(
        errors.invalid_argument(
            f"Content-Encoding header: {description}",
            errors.FieldViolation("Content-Encoding", description),
        ),
        accepted,
    )


async def _json_body(route: Route, request: Request) -> Any:
    if route.streams_request_body or not route.binding.body:
        return None
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > MAX_JSON_BODY_BYTES:
        raise _body_too_large()
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > MAX_JSON_BODY_BYTES:
            raise _body_too_large()
    if not raw.strip():
        return None
    return transcoding.parse_json_body(bytes(raw))


def _body_too_large() -> errors.ApiError:
    description = f"is larger than {MAX_JSON_BODY_BYTES} bytes"
    return errors.invalid_argument(
        f"body: {description}", errors.FieldViolation("body", description)
    )


async def _file_body(first: message.Message, request: Request) -> tuple[AsyncIterator[bytes], str]:
    """The file a request sends, and its content type: the body itself, or the file part of
    a form (read up to where it begins; its file name is the upload's unless the query
    string named one)."""
    content_type = request.headers.get("content-type", "application/octet-stream")
    boundary = forms.form_boundary(content_type)
    if boundary is None:
        return request.stream(), content_type
    form = forms.FileForm(boundary)
    head, rest = await forms.file_of_form(form, request.stream())
    resource = getattr(first, FILE_RESOURCE, None)
    if resource is not None and not resource.file_name:
        resource.file_name = form.file_name
    return prepended(head, rest), form.content_type or "application/octet-stream"


# The message of a client-streamed request whose `file_name` a form's file name fills.
FILE_RESOURCE = "upload"


async def _body_chunks(
    route: Route,
    first: message.Message,
    content_type: str,
    body: AsyncIterator[bytes],
    problems: list[errors.ApiError],
) -> AsyncIterator[message.Message]:
    """The fields from the path and query string in a first message, sent at once so the
    service can start (and show the upload as PROCESSING) while the body still arrives; then
    the file in chunks, each in the request's HttpBody field. A problem found in the body is
    put in `problems` (raising here cancels the call)."""
    body_field = route.binding.body
    message_class = type(first)
    getattr(first, body_field).CopyFrom(httpbody_pb2.HttpBody(content_type=content_type))
    yield first
    buffer = bytearray()
    try:
        async for chunk in body:
            buffer.extend(chunk)
            while len(buffer) >= UPLOAD_CHUNK_BYTES:
                part = bytes(buffer[:UPLOAD_CHUNK_BYTES])
                del buffer[:UPLOAD_CHUNK_BYTES]
                yield _body_message(message_class, body_field, content_type, part)
    except errors.ApiError as problem:
        problems.append(problem)
        raise
    if buffer:
        yield _body_message(message_class, body_field, content_type, bytes(buffer))


def _body_message(
    message_class: type[message.Message], body_field: str, content_type: str, data: bytes
) -> message.Message:
    chunk = message_class()
    getattr(chunk, body_field).CopyFrom(httpbody_pb2.HttpBody(content_type=content_type, data=data))
    return chunk


def _download_headers(metadata: Any) -> dict[str, str]:
    """The HTTP headers a download's service sends in its initial metadata: the file name to
    save as, the length and the SHA-256 (as a strong ETag)."""
    found = dict(metadata or ())
    headers = {}
    if isinstance(disposition := found.get(DISPOSITION_METADATA), str):
        headers["content-disposition"] = disposition
    if isinstance(length := found.get(LENGTH_METADATA), str) and length.isdigit():
        headers["content-length"] = length
    if isinstance(digest := found.get(DIGEST_METADATA), str) and digest.isalnum():
        headers["etag"] = f'"{digest}"'
    return headers


def _without_body(response: Response) -> Response:
    """The answer to HEAD: the GET's status and headers, no body (its length kept)."""
    headers = dict(response.headers)
    headers["content-length"] = str(len(response.body))
    return Response(b"", status_code=response.status_code, headers=headers)


def _unary_response(reply: message.Message, printed: transcoding.PrintedAnswers) -> Response:
    if isinstance(reply, httpbody_pb2.HttpBody):
        return Response(reply.data, media_type=reply.content_type or "application/octet-stream")
    return Response(printed.json(reply), media_type="application/json")


async def _streaming_response(route: Route, call: Any, request: Request) -> Response:
    """HttpBody streams as raw bytes; other messages as newline-delimited JSON, each line
    `{"result": ...}` or, if the stream fails midway, `{"error": ...}` (grpc-gateway's shape).
    For HEAD, the first message gives the headers and the call is cancelled."""
    head = request.method == "HEAD"
    iterator = call.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    # Errors before the first message still get a proper HTTP status.
    if route.returns_http_body:
        media_type = (first.content_type if first is not None else "") or "application/octet-stream"
        headers = _download_headers(await call.initial_metadata())
        if head:
            call.cancel()
            return Response(b"", media_type=media_type, headers=headers)

        async def raw() -> AsyncIterator[bytes]:
            if first is not None:
                yield first.data
            async for reply in iterator:
                yield reply.data

        return StreamingResponse(raw(), media_type=media_type, headers=headers)

    if head:
        call.cancel()
        return Response(b"", media_type="application/x-ndjson")

    async def lines() -> AsyncIterator[bytes]:
        if first is not None:
            yield transcoding.json_bytes({"result": transcoding.to_json(first)}) + b"\n"
        try:
            async for reply in iterator:
                yield transcoding.json_bytes({"result": transcoding.to_json(reply)}) + b"\n"
        except grpc.aio.AioRpcError as exc:
            failed = problem(_rpc_status(exc), _path(request), request_id_of(request.scope))
            yield transcoding.json_bytes({"error": failed}) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def create_app(settings: Settings) -> ASGIApp:
    """The gateway's ASGI app. With `gateway_metrics_port` set, `/metrics` is served only on
    that port (kept off the public network) and the public port has no such route."""
    # grpc.aio channels belong to the event loop they are made on: uvicorn's, in lifespan.
    gateways: list[Gateway] = []

    async def handle(request: Request) -> Response:
        return await gateways[0].handle(request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        backends = await gateways[0].ready()
        ready = all(state == "SERVING" for state in backends.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "backends": backends},
            status_code=200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        gateways.append(Gateway(settings, API_SERVICES))
        freeze_startup_heap()
        yield
        await gateways.pop().close()

    metrics_route = StarletteRoute("/metrics", metrics)
    metrics_port = settings.gateway_metrics_port
    public = Starlette(
        routes=[
            StarletteRoute("/healthz", healthz),
            StarletteRoute("/readyz", readyz),
            *docs.routes(transcoding.build_routes(API_SERVICES)),
            *dashboard.routes(),
            *([metrics_route] if metrics_port is None else []),
        ],
        lifespan=lifespan,
    )
    # Every other request is the API's to route (or refuse in JSON), whatever its method or
    # path: a route pattern would miss paths holding an escaped line break.
    api = request_response(handle)
    public.router.default = api

    async def routed(scope: Scope, receive: Receive, send: Send) -> None:
        # The API's own paths go straight to it: Starlette's router would first try each of
        # the pages' and files' routes on them.
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            await api(scope, receive, send)
        else:
            await public(scope, receive, send)

    public_app = Edge(
        http_policy.wrap(routed, settings), untraced=("/healthz", "/readyz", "/metrics")
    )
    if metrics_port is None:
        return public_app
    internal = Starlette(routes=[metrics_route])

    async def by_port(scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        on_metrics_port = (
            scope["type"] == "http" and server is not None and server[1] == metrics_port
        )
        await (internal if on_metrics_port else public_app)(scope, receive, send)

    return by_port

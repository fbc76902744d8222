"""The gateway as a server on the open network, over real sockets: what it refuses before
anything is forwarded (over-long values, deep or ambiguous JSON), how it reads slow and large
requests, and where it serves /metrics."""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gateway.transcoding import MAX_JSON_DEPTH
from tests.system import System, extra_gateway, free_port
from tests.test_gateway_api import error_of, violations

# The strict gateway's read timeouts: short, so that the tests that wait them out stay fast.
HEADER_TIMEOUT_SECONDS = 1.0
BODY_TIMEOUT_SECONDS = 1.0
# Every raw-socket exchange ends by then, whatever the gateway does.
EXCHANGE_SECONDS = 10.0
CSV_HEADER = (
    "claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n"
)


@dataclass(frozen=True)
class StrictGateway:
    """A second gateway on the same services, with short read timeouts and /metrics on an
    internal port."""

    url: str
    port: int
    metrics_port: int


@pytest.fixture(scope="module")
def strict_gateway(system: System) -> Iterator[StrictGateway]:
    port, metrics_port = free_port(), free_port()
    with extra_gateway(
        system,
        port,
        GATEWAY_METRICS_PORT=str(metrics_port),
        GATEWAY_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT_SECONDS),
        GATEWAY_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT_SECONDS),
    ) as url:
        yield StrictGateway(url, port, metrics_port)


def _fresh_customer() -> str:
    return "c" + uuid.uuid4().hex[:10]


def _csv_rows(count: int) -> list[bytes]:
    return [
        f"C{i},Aetna,99213,2026-03-01,2026-03-02,2026-03-14,PAID,150.00,100.00,80.00,20.00,"
        "CO-45\n".encode()
        for i in range(count)
    ]


def _read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything the gateway sends, and whether it closed the connection by `deadline`."""
    received = bytearray()
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return bytes(received), True
        received.extend(chunk)
    return bytes(received), False


def _status_and_error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


# --- JSON bodies ------------------------------------------------------------------------


def test_json_nested_deeper_than_the_limit_is_400_naming_the_body(system: System) -> None:
    customer = _fresh_customer()
    path = f"/v1/customers/{customer}/driftConfig"
    with system.client(customer, "admin") as client:
        ten_thousand_deep = client.patch(
            path,
            content=b"[" * 10_000 + b"]" * 10_000,
            headers={"content-type": "application/json"},
        )
        # The body's own object and MAX_JSON_DEPTH more inside it: one level too many.
        just_too_deep = client.patch(
            path, json={"currentWindowDays": 45, "etag": _nested({}, MAX_JSON_DEPTH)}
        )
    for response in (ten_thousand_deep, just_too_deep):
        assert response.status_code == 400, response.text
        assert f"nested deeper than {MAX_JSON_DEPTH}" in violations(response)["body"]


def _nested(innermost: object, depth: int) -> object:
    value = innermost
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        (b'{"currentWindowDays": 45, "currentWindowDays": 46}', "body", "more than once"),
        (b'{"falseDiscoveryRate": NaN}', "body", "NaN is not JSON"),
        (b'{"etag": "\xff\xfe"}', "body", "not valid JSON"),
        (b'{"currentWindowDays": 1' + b"0" * 5000 + b"}", "body", "not valid JSON"),
        (b'{"currentWindowDays": 1e999}', "drift_config.current_window_days", "integer"),
        (b'{"currentWindowDays": "many"}', "drift_config.current_window_days", "'many'"),
        (b'{"enabledMetrics": "DENIAL_RATE"}', "drift_config.enabled_metrics", "repeated"),
        (b'{"updateTime": 5}', "drift_config.update_time", "not a string"),
    ],
    ids=[
        "duplicate-key",
        "bare-nan",
        "bad-utf8",
        "5001-digit-number",
        "number-too-large",
        "string-for-int",
        "string-for-list",
        "number-for-timestamp",
    ],
)
def test_a_body_that_cannot_be_read_is_400_naming_the_field_and_changes_nothing(
    system: System, content: bytes, field: str, words: str
) -> None:
    customer = _fresh_customer()
    path = f"/v1/customers/{customer}/driftConfig"
    with system.client(customer, "admin") as client:
        before = client.get(path).json()
        response = client.patch(path, content=content, headers={"content-type": "application/json"})
        after = client.get(path).json()
    assert response.status_code == 400, response.text
    assert words in violations(response)[field]
    assert error_of(response)["detail"].startswith(f"{field}: ")
    assert after == before


def test_a_json_body_over_a_mebibyte_is_refused(system: System) -> None:
    customer = _fresh_customer()
    huge = json.dumps({"etag": "x" * (1024 * 1024)}).encode()
    with system.client(customer, "admin") as client:
        response = client.patch(
            f"/v1/customers/{customer}/driftConfig",
            content=huge,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert "larger than 1048576 bytes" in violations(response)["body"]


# --- lengths, before anything is forwarded ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params", "headers", "field"),
    [
        ("GET", "/uploads/" + "u" * 600, {}, {}, "name"),
        ("GET", "/uploads", {"filter": 'payer = "' + "x" * 7000 + '"'}, {}, "filter"),
        ("GET", "/uploads", {"pageToken": "t" * 7000}, {}, "page_token"),
        ("GET", "/uploads", {"orderBy": "create_time desc" + " " * 7000}, {}, "order_by"),
        ("POST", "/uploads", {"upload.fileName": "f" * 7000}, {}, "upload.file_name"),
        ("POST", "/uploads", {}, {"Idempotency-Key": "k" * 129}, "Idempotency-Key"),
        ("POST", "/webhooks", {}, {"Idempotency-Key": "k" * 129}, "Idempotency-Key"),
        ("GET", "/uploads", {}, {"tracestate": "vendor=" + "v" * 510}, "tracestate"),
        ("GET", "/uploads", {}, {"baggage": "tenant=" + "b" * 1020}, "baggage"),
    ],
    ids=[
        "resource-id",
        "filter",
        "page-token",
        "order-by",
        "file-name",
        "upload-idempotency-key",
        "webhook-idempotency-key",
        "tracestate",
        "baggage",
    ],
)
def test_over_long_values_are_400_naming_the_field_and_change_nothing(
    system: System,
    method: str,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    field: str,
) -> None:
    customer = _fresh_customer()
    parent = f"/v1/customers/{customer}"
    with system.client(customer, "admin") as client:
        if path == "/webhooks":
            webhook = {"url": "https://hooks.example.com/long", "eventTypes": ["TEST"]}
            response = client.post(parent + path, json=webhook, headers=headers)
        elif method == "POST":
            upload = CSV_HEADER.encode() + b"".join(_csv_rows(2))
            response = client.post(parent + path, content=upload, params=params, headers=headers)
        else:
            response = client.get(parent + path, params=params, headers=headers)
        webhooks = client.get(f"{parent}/webhooks").json().get("webhooks", [])
        uploads = client.get(f"{parent}/uploads").json().get("uploads", [])
    assert response.status_code == 400, response.text
    assert field in violations(response)
    assert error_of(response)["detail"].startswith(field)
    assert webhooks == [] and uploads == []


def test_an_over_long_bearer_token_is_401_naming_the_header(system: System) -> None:
    token = system.token("acme", "admin")
    response = httpx.get(
        f"{system.gateway_url}/v1/customers/acme/uploads",
        headers={"Authorization": f"Bearer {token}.{'a' * 5000}"},
    )
    assert response.status_code == 401, response.text
    assert error_of(response)["code"] == "UNAUTHENTICATED"
    assert "Authorization" in error_of(response)["detail"]


def test_a_url_over_8_kib_is_414_and_one_under_reaches_the_route(system: System) -> None:
    with system.client() as client:
        over = client.get("/v1/customers/acme/uploads", params={"filter": "x" * 8200})
        under = client.get("/v1/customers/acme/uploads", params={"filter": "x" * 8000})
    assert over.status_code == 414, over.text
    assert error_of(over)["status"] == 414
    assert under.status_code == 400 and "filter" in violations(under)


def test_headers_over_16_kib_are_431(system: System) -> None:
    many = {f"x-padding-{i}": "p" * 1000 for i in range(17)}
    one_big = {"x-padding": "p" * (17 * 1024)}
    for headers in (many, one_big):
        response = httpx.get(f"{system.gateway_url}/healthz", headers=headers)
        assert response.status_code == 431, response.text
        assert error_of(response)["status"] == 431
    fits = httpx.get(f"{system.gateway_url}/healthz", headers={"x-padding": "p" * 15000})
    assert fits.status_code == 200


def test_a_header_field_that_never_ends_is_431_while_it_is_still_arriving(
    system: System,
) -> None:
    address = ("127.0.0.1", int(system.gateway_url.rsplit(":", 1)[1]))
    chunk, sent, answer = b"h" * 4096, 0, b""
    with socket.create_connection(address, timeout=EXCHANGE_SECONDS) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Endless: ")
        # Up to 4 MiB, a piece at a time, until the gateway answers.
        while sent < 4 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        answer, _ = _read_until_closed(sock, time.monotonic() + EXCHANGE_SECONDS)
    status, error = _status_and_error(answer)
    assert status == 431 and "headers" in error["detail"], answer[:300]
    # Answered once the field was past the limit, not after reading all that was sent.
    assert sent < 512 * 1024, f"{sent} bytes of one header field were read before the answer"


def test_odd_paths_and_methods_are_answered_in_the_api_s_json(system: System) -> None:
    with system.client() as client:
        line_break_in_id = client.get("/v1/customers/acme/claims/%0A0")
        line_break_in_path = client.get("/v1/customers/acme/%0Aclaims")
        options = client.options("/v1/customers/acme/uploads")
    assert line_break_in_id.status_code == 400 and "name" in violations(line_break_in_id)
    assert line_break_in_path.status_code == 404
    assert error_of(line_break_in_path)["code"] == "NOT_FOUND"
    assert options.status_code == 405
    assert error_of(options)["status"] == 405


def test_a_request_that_is_not_http_is_answered_400_then_closed(system: System) -> None:
    address = ("127.0.0.1", int(system.gateway_url.rsplit(":", 1)[1]))
    with socket.create_connection(address, timeout=EXCHANGE_SECONDS) as sock:
        sock.sendall(b"HELLO THERE\r\n\r\n")
        answer, closed = _read_until_closed(sock, time.monotonic() + EXCHANGE_SECONDS)
    assert closed
    assert _status_and_error(answer)[0] == 400


# --- slow requests --------------------------------------------------------------------------


def test_headers_trickled_in_get_408_and_the_connection_closed_unserved(
    strict_gateway: StrictGateway,
) -> None:
    # Sent whole, one byte every quarter second, it would take about 10 s: far past the
    # gateway's header timeout, and served at the end if nothing cut it short.
    request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
    with socket.create_connection(("127.0.0.1", strict_gateway.port)) as sock:
        started = time.monotonic()
        for byte in request:
            sock.sendall(bytes([byte]))
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                break
        answer, closed = _read_until_closed(sock, started + EXCHANGE_SECONDS)
    status, error = _status_and_error(answer)
    assert status == 408 and error["status"] == 408, answer
    assert "headers" in error["detail"]
    assert closed


def test_a_body_that_stops_arriving_gets_408_and_nothing_is_uploaded(
    system: System, strict_gateway: StrictGateway
) -> None:
    customer = _fresh_customer()
    body = CSV_HEADER.encode() + b"".join(_csv_rows(20))
    head = (
        f"POST /v1/customers/{customer}/uploads?upload.fileName=stalled.csv HTTP/1.1\r\n"
        "Host: gateway\r\n"
        f"Authorization: Bearer {system.token(customer, 'admin')}\r\n"
        "Content-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", strict_gateway.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
        answer, closed = _read_until_closed(sock, time.monotonic() + EXCHANGE_SECONDS)
    status, error = _status_and_error(answer)
    assert status == 408 and "body paused" in error["detail"], answer
    assert closed
    with system.client(customer, "admin") as client:
        assert client.get(f"/v1/customers/{customer}/uploads").json().get("uploads", []) == []


def test_a_body_trickled_a_byte_at_a_time_gets_408_though_it_never_pauses_long(
    system: System, strict_gateway: StrictGateway
) -> None:
    customer = _fresh_customer()
    head = (
        f"POST /v1/customers/{customer}/uploads?upload.fileName=trickled.csv HTTP/1.1\r\n"
        "Host: gateway\r\n"
        f"Authorization: Bearer {system.token(customer, 'admin')}\r\n"
        "Content-Type: text/csv\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", strict_gateway.port)) as sock:
        started = time.monotonic()
        sock.sendall(head)
        while time.monotonic() - started < EXCHANGE_SECONDS:
            sock.sendall(b"x")
            readable, _, _ = select.select([sock], [], [], BODY_TIMEOUT_SECONDS / 4)
            if readable:
                break
        answer, closed = _read_until_closed(sock, started + EXCHANGE_SECONDS)
    status, error = _status_and_error(answer)
    assert status == 408 and "slower than 500 bytes a second" in error["detail"], answer
    assert closed


def test_an_upload_that_keeps_arriving_slowly_is_served(
    system: System, strict_gateway: StrictGateway
) -> None:
    customer = _fresh_customer()
    rows = _csv_rows(40)

    def slowly() -> Iterator[bytes]:
        # Each pause is well under the body timeout, the rate above the minimum, and all of
        # them together outlast the timeout several times over.
        yield CSV_HEADER.encode()
        for row in rows:
            time.sleep(BODY_TIMEOUT_SECONDS / 10)
            yield row

    started = time.monotonic()
    response = httpx.post(
        f"{strict_gateway.url}/v1/customers/{customer}/uploads",
        content=slowly(),
        params={"upload.fileName": "slow.csv"},
        headers={
            "Authorization": f"Bearer {system.token(customer, 'admin')}",
            "Content-Type": "text/csv",
        },
        timeout=EXCHANGE_SECONDS * 3,
    )
    assert time.monotonic() - started > 3 * BODY_TIMEOUT_SECONDS
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "SUCCEEDED"
    assert response.json()["rowsAccepted"] == str(len(rows))


# --- /metrics ---------------------------------------------------------------------------


def test_metrics_are_on_the_public_port_unless_an_internal_one_is_set(
    system: System, strict_gateway: StrictGateway
) -> None:
    internal = f"http://127.0.0.1:{strict_gateway.metrics_port}"
    public_default = httpx.get(f"{system.gateway_url}/metrics")
    public_strict = httpx.get(f"{strict_gateway.url}/metrics")
    on_internal = httpx.get(f"{internal}/metrics")
    api_on_internal = httpx.get(f"{internal}/v1/customers/acme/uploads")
    assert public_default.status_code == 200 and "# TYPE" in public_default.text
    assert public_strict.status_code == 404
    assert on_internal.status_code == 200 and "# TYPE" in on_internal.text
    assert api_on_internal.status_code == 404


def _counted(metrics: str, handler: str, method: str, status: str) -> float:
    labels = f'handler="{handler}",method="{method}",status="{status}"'
    found = [
        line for line in metrics.splitlines() if line.startswith(f"http_requests_total{{{labels}}}")
    ]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def test_requests_are_counted_by_route_template_never_by_path(system: System) -> None:
    customer = "metrics" + uuid.uuid4().hex[:8]
    template = "/v1/{name=customers/*/uploads/*}"
    before = httpx.get(f"{system.gateway_url}/metrics").text
    with system.client(customer, "viewer") as client:
        for _ in range(3):
            assert client.get(f"/v1/customers/{customer}/uploads/u_missing").status_code == 404
        assert client.get("/v1/nothing/here").status_code == 404
    after = httpx.get(f"{system.gateway_url}/metrics").text

    assert _counted(after, template, "GET", "404") - _counted(before, template, "GET", "404") == 3
    assert _counted(after, "none", "GET", "404") > _counted(before, "none", "GET", "404")
    assert f'http_request_duration_seconds_count{{handler="{template}",method="GET"}}' in after
    assert customer not in after and "u_missing" not in after

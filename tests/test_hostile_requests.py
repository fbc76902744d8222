"""Hostile requests, as an attacker sends them, against the real gateway (HTTP) and the real
services (gRPC): nothing answers 5xx, every refusal is a 4xx whose message says what is wrong
and, for a bad request, a field violation names the field, and a refused request writes
nothing. Known attacks first, then requests generated from every request message of the
three services."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import psycopg
import pytest
from google.protobuf import descriptor, message, message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from psycopg import sql

from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.methods import API_SERVICES, HttpBinding, http_bindings
from tests.conftest import PostgresUnderTest
from tests.drift.test_detection_api import history_csv
from tests.system import System
from upstream.drift.v1 import drift_service_pb2
from upstream.ingest.v1 import ingest_service_pb2
from upstream.reports.v1 import reports_service_pb2

# gRPC codes a client reads as the server's fault (HTTP 5xx), and RESOURCE_EXHAUSTED (429):
# the services set no quota, so it can only be gRPC's own limits (an error message that
# outgrew the metadata limit), never a right answer.
WRONG_CODES = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
CALL_TIMEOUT_SECONDS = 30.0
SETTLE_SECONDS = 60.0
# A head trickling in a byte every 3 s was once still served after 30 s.
TRICKLE_SECONDS = 3.0
STALL_LIMIT_SECONDS = 30.0
NESTING_DEPTH = 10_000
# Examples per generated test, per method or route: the whole file stays around a minute.
EXAMPLES = 5
GENERATED = settings(
    max_examples=EXAMPLES,
    # The same examples on every run, so a run after a fix is compared with the one before.
    derandomize=True,
    database=None,
    # No shrinking: a failing example is reported as drawn, and the file stays quick.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# --- what a customer has stored ---------------------------------------------------------------


class StoredRows:
    """Every row a customer owns in any schema, as one comparable digest per table. The
    outbox tables are left out: their relays update rows on their own schedule; so are the
    kept payer summaries, which a run that has ended (`settled`) brings up to date just
    after."""

    def __init__(self, admin_url: str) -> None:
        self._connection = psycopg.connect(schemas.libpq_url(admin_url), autocommit=True)
        tables = self._connection.execute(
            "SELECT table_schema, table_name FROM information_schema.columns "
            "WHERE column_name = 'customer_id' AND table_schema = ANY(%s) "
            "AND table_name <> ALL(%s) ORDER BY table_schema, table_name",
            (list(schemas.SERVICES), ["outbox", "payer_summary_sets", "payer_summaries"]),
        ).fetchall()
        self._query = sql.SQL(" UNION ALL ").join(
            sql.SQL(
                "SELECT {label}, count(*), "
                "md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                "FROM {table} AS t WHERE t.customer_id = %(customer)s"
            ).format(label=sql.Literal(f"{schema}.{name}"), table=sql.Identifier(schema, name))
            for schema, name in tables
        )

    def settled(self, *customers: str) -> dict[tuple[str, str], tuple[int, str]]:
        """`of(customers)` once none of their drift runs is still queued or running: a run
        an earlier request started changes their rows by itself."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while self._connection.execute(
            "SELECT count(*) FROM drift.drift_runs "
            "WHERE customer_id = ANY(%s) AND state IN ('PENDING', 'RUNNING')",
            (list(customers),),
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, f"drift runs of {customers} still running"
            time.sleep(0.2)
        return self.of(*customers)

    def of(self, *customers: str) -> dict[tuple[str, str], tuple[int, str]]:
        digest = {}
        for customer in customers:
            for table, count, rows in self._connection.execute(self._query, {"customer": customer}):
                digest[customer, table] = (count, rows)
        return digest

    def close(self) -> None:
        self._connection.close()


@pytest.fixture(scope="module")
def stored(postgres: PostgresUnderTest) -> Iterator[StoredRows]:
    rows = StoredRows(postgres.admin_url)
    yield rows
    rows.close()


def fresh_customer() -> str:
    return "hostile" + uuid.uuid4().hex[:10]


# --- how a refusal must look ------------------------------------------------------------------


def _normal(path: str) -> str:
    """A field path in one spelling: proto or JSON names, indexes and map keys dropped."""
    return re.sub(r"\[[^\]]*\]", "", path).replace("_", "").lower()


def names_field(violation: str, expected: str) -> bool:
    return _normal(violation) == _normal(expected)


def http_error(response: httpx.Response) -> dict[str, Any]:
    """The error of a 4xx answer, which says in words what is wrong."""
    assert response.headers.get("content-type") == "application/problem+json", (
        f"{response.status_code} without problem details: {response.text[:300]!r}"
    )
    error: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code", "request_id"} <= set(error), error
    assert error["status"] == response.status_code, error
    assert error["request_id"] == response.headers["x-request-id"], error
    assert str(error["detail"]).strip(), error
    return error


def http_violations(error: dict[str, Any]) -> list[str]:
    return [
        violation["field"]
        for detail in error.get("details", [])
        if detail.get("@type", "").endswith("google.rpc.BadRequest")
        for violation in detail.get("fieldViolations", [])
    ]


def assert_bad_request(response: httpx.Response, *fields: str) -> dict[str, Any]:
    """400 with a field violation naming one of `fields`."""
    assert response.status_code == 400, f"{response.status_code}: {response.text[:500]}"
    error = http_error(response)
    named = http_violations(error)
    assert any(names_field(v, f) for v in named for f in fields), (
        f"no violation names {' or '.join(fields)}: {error}"
    )
    return error


def rich_status(error: grpc.RpcError) -> Any:
    """The `google.rpc.Status` a refusal carries, if its code is the one the client got."""
    try:
        return rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:  # the status says another code than the call ended with
        return None


def grpc_violations(error: grpc.RpcError) -> list[str]:
    status = rich_status(error)
    if status is None:
        return []
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found += [violation.field for violation in bad_request.field_violations]
    return found


def field_exists(request: descriptor.Descriptor, path: str) -> bool:
    """Whether `path` (proto or JSON names, with indexes or map keys) is a field of
    `request`."""
    current: descriptor.Descriptor | None = request
    for part in re.sub(r"\[[^\]]*\]", "", path).split("."):
        if current is None:
            return False
        found = next(
            (f for f in current.fields if part in (f.name, f.json_name)),
            None,
        )
        if found is None:
            return False
        current = found.message_type
    return True


# Rejected rows of an uploaded file are named by where they are in the file (a field of the
# file, not of the request).
FILE_POSITION = re.compile(r"^line \d+( \S.*)?$")
# An upload whose file holds nothing valid is refused and kept, FAILED, with its rejected
# rows for the client to read (the error names it): the one refusal that writes.
KEPT_FAILURE = "UPLOAD_REJECTED"


def _reason(status: Any) -> str:
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def _http_reason(error: dict[str, Any]) -> str:
    return next(
        (
            str(detail.get("reason", ""))
            for detail in error.get("details", [])
            if detail.get("@type", "").endswith("google.rpc.ErrorInfo")
        ),
        "",
    )


def assert_clean_grpc_refusal(
    error: grpc.RpcError, method: descriptor.MethodDescriptor, unbuilt: bool
) -> None:
    code = error.code()  # type: ignore[attr-defined]
    details = error.details()  # type: ignore[attr-defined]
    assert code not in WRONG_CODES, f"{method.name} answered {code.name}: {details}"
    assert code is not grpc.StatusCode.UNIMPLEMENTED or unbuilt, f"{method.name}: {details}"
    assert (details or "").strip(), f"{method.name} answered {code.name} without a message"
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        violations = grpc_violations(error)
        assert any(
            field_exists(method.input_type, v)
            or (method.client_streaming and FILE_POSITION.match(v))
            for v in violations
        ), f"{method.name}: INVALID_ARGUMENT {details!r} names no field: {violations}"


# --- a customer with something of everything, for the known attacks ---------------------------


@dataclass(frozen=True)
class Victim:
    """A customer with claims, drift events, payer mappings and webhooks."""

    customer: str
    upload: str
    event: str
    mapping: str
    webhooks: list[str]


def _wait_for(what: str, ready: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"no {what} after {timeout:g} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def victim(system: System) -> Victim:
    customer = fresh_customer()
    base = f"/v1/customers/{customer}"
    with system.client(customer, "admin") as client:
        upload = client.post(f"{base}/uploads", content=history_csv(customer), timeout=300)
        assert upload.status_code == 200, upload.text

        def detected() -> bool:
            runs = client.get(f"{base}/driftRuns").json().get("driftRuns", [])
            return bool(runs) and all(r["state"] in ("SUCCEEDED", "FAILED") for r in runs)

        _wait_for("drift run after the upload", detected)
        events = client.get(f"{base}/driftEvents").json().get("driftEvents", [])
        assert events, "the history's drift raised no event"
        mapping = client.post(
            f"{base}/payerMappings",
            json={"rawPayerName": "AETNA LIFE INSURANCE", "canonicalPayer": "Aetna"},
        )
        assert mapping.status_code == 200, mapping.text
        webhooks = [
            client.post(
                f"{base}/webhooks",
                json={"url": f"https://hooks.example.com/{i}", "eventTypes": ["TEST"]},
            ).json()["name"]
            for i in range(3)
        ]
    return Victim(
        customer, upload.json()["name"], events[0]["name"], mapping.json()["name"], webhooks
    )


# --- every bad input is a 4xx that names the field --------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile request; `{upload}`, `{event}` and `{mapping}` in its path are the
    victim's."""

    verb: str
    path: str
    fields: tuple[str, ...]
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content: bytes | None = None
    content_type: str = "application/json"


def upload_case(fields: tuple[str, ...], params: dict[str, str]) -> Case:
    return Case("POST", "/uploads", fields, params, content=CSV, content_type="text/csv")


NUL = "\x00"
CSV = b"claim_id,payer,decision_date,status,paid_amount\nC1,Aetna,2026-03-01,PAID,10\n"
DEEP_ARRAY = "[" * NESTING_DEPTH + "]" * NESTING_DEPTH
DEEP_OBJECT = '{"a":' * NESTING_DEPTH + "1" + "}" * NESTING_DEPTH
HOOK = {"url": "https://hooks.example.com/h", "eventTypes": ["TEST"]}
# A filter of each list on one of its text fields.
TEXT_FILTERS = {
    "uploads": 'file_name = "{}"',
    "claims": 'claim_id = "{}"',
    "payers": 'raw_payer_name = "{}"',
    "payerMappings": 'raw_payer_name = "{}"',
    "driftRuns": 'create_time >= "{}"',
    "driftEvents": 'payer = "{}"',
    "webhooks": 'event_types:"{}"',
}
COLLECTIONS_WITH_FILTERS = tuple(TEXT_FILTERS)

BAD_INPUT = {
    # A NUL byte in any string.
    **{
        f"NUL in the filter of {collection}": Case(
            "GET", f"/{collection}", ("filter",), params={"filter": text.format(f"a{NUL}b")}
        )
        for collection, text in TEXT_FILTERS.items()
    },
    "NUL in the filter of rejections": Case(
        "GET", "/{upload}/rejections", ("filter",), params={"filter": f'code = "{NUL}"'}
    ),
    **{
        f"NUL in the id of {collection}": Case("GET", f"/{collection}/x%00y", ("name",))
        for collection in (
            "uploads",
            "claims",
            "payerMappings",
            "driftRuns",
            "driftEvents",
            "webhooks",
        )
    },
    "NUL in the upload id of its rejections": Case("GET", "/uploads/u%00/rejections", ("parent",)),
    "NUL in the id of a deleted upload": Case("DELETE", "/uploads/u%00", ("name",)),
    "NUL in the id of a deleted webhook": Case("DELETE", "/webhooks/w%00", ("name",)),
    "NUL in a file name": upload_case(("upload.file_name",), {"upload.fileName": f"a{NUL}.csv"}),
    "NUL in an upload's request id": upload_case(("request_id",), {"requestId": f"k{NUL}"}),
    "NUL in a column map": upload_case(("upload.column_map",), {"upload.columnMap[claim_id]": NUL}),
    "NUL in a webhook's display name": Case(
        "POST", "/webhooks", ("webhook.display_name",), body={**HOOK, "displayName": NUL}
    ),
    "NUL in a webhook's url": Case(
        "POST", "/webhooks", ("webhook.url",), body={**HOOK, "url": f"https://a{NUL}.example"}
    ),
    "NUL in a raw payer name": Case(
        "POST",
        "/payerMappings",
        ("payer_mapping.raw_payer_name",),
        body={"rawPayerName": f"A{NUL}", "canonicalPayer": "Aetna"},
    ),
    "NUL in a canonical payer": Case(
        "POST",
        "/payerMappings",
        ("payer_mapping.canonical_payer",),
        body={"rawPayerName": "Z", "canonicalPayer": f"A{NUL}"},
    ),
    "NUL in a mapping update": Case(
        "PATCH",
        "/{mapping}",
        ("payer_mapping.canonical_payer",),
        params={"updateMask": "canonical_payer"},
        body={"canonicalPayer": f"B{NUL}"},
    ),
    "NUL in a triage note": Case(
        "PATCH", "/{event}", ("drift_event.triage_note",), body={"triageNote": f"x{NUL}"}
    ),
    "NUL in a drift run's request id": Case(
        "POST", "/driftRuns", ("request_id",), body={"requestId": f"r{NUL}"}
    ),
    # An enum number the proto does not define.
    "unknown event state": Case("PATCH", "/{event}", ("drift_event.state",), body={"state": 99}),
    "unknown upload mode": upload_case(("upload.mode",), {"upload.mode": "99"}),
    "unknown upload format": upload_case(("upload.format",), {"upload.format": "99"}),
    "unknown webhook event type": Case(
        "POST", "/webhooks", ("webhook.event_types",), body={**HOOK, "eventTypes": [99]}
    ),
    "unknown metric": Case(
        "PATCH", "/driftConfig", ("drift_config.enabled_metrics",), body={"enabledMetrics": [99]}
    ),
    "unknown trigger": Case("POST", "/driftRuns", ("trigger",), body={"trigger": 99}),
    # JSON of another shape than the message it stands for, and nested 10,000 deep.
    "a JSON list for a webhook": Case("POST", "/webhooks", ("webhook",), content=b"[null]"),
    "a JSON string for a webhook": Case("POST", "/webhooks", ("webhook",), content=b'"x"'),
    "a JSON list for a payer mapping": Case(
        "POST", "/payerMappings", ("payer_mapping",), content=b"[1]"
    ),
    "deeply nested array": Case("PATCH", "/driftConfig", ("body",), content=DEEP_ARRAY.encode()),
    "deeply nested object": Case("POST", "/webhooks", ("body",), content=DEEP_OBJECT.encode()),
    "deeply nested field": Case(
        "POST", "/driftRuns", ("body", "as_of"), content=f'{{"asOf": {DEEP_ARRAY}}}'.encode()
    ),
    # Over-long names, ids, filters and tokens, refused before they are forwarded.
    "over-long upload id": Case("GET", "/uploads/" + "u" * 2_000, ("name",)),
    "over-long event id": Case("GET", "/driftEvents/" + "e" * 2_000, ("name",)),
    "over-long filter": Case("GET", "/claims", ("filter",), params={"filter": "x" * 2_500}),
    "over-long page token": Case("GET", "/webhooks", ("page_token",), {"pageToken": "t" * 5_000}),
    "over-long idempotency key": upload_case(("request_id",), {"requestId": "k" * 129}),
    "over-long file name": upload_case(("upload.file_name",), {"upload.fileName": "f" * 256}),
    # Dates out of range, and fields that are not the client's to set.
    "a drift run as of year 1": Case(
        "POST", "/driftRuns", ("as_of",), body={"asOf": {"year": 1, "month": 1, "day": 1}}
    ),
    "a drift run as of February 30": Case(
        "POST", "/driftRuns", ("as_of",), body={"asOf": {"year": 2026, "month": 2, "day": 30}}
    ),
    "a client claiming an upload trigger": Case(
        "POST", "/driftRuns", ("trigger",), body={"trigger": "UPLOAD"}
    ),
    "daily stats of year 1": Case(
        "GET",
        "/dailyStats",
        ("start_date",),
        {"startDate.year": "1", "startDate.month": "1", "startDate.day": "1"}
        | {"endDate.year": "2026", "endDate.month": "3", "endDate.day": "31"},
    ),
    # The contract's own limits.
    "display name of 101 characters": Case(
        "POST", "/webhooks", ("webhook.display_name",), body={**HOOK, "displayName": "d" * 101}
    ),
    "display name of 200,000 characters": Case(
        "POST", "/webhooks", ("webhook.display_name",), body={**HOOK, "displayName": "d" * 200_000}
    ),
    # A 5 MB display name: past the size of any JSON request, so the body is named.
    "display name of 5 MB": Case(
        "POST",
        "/webhooks",
        ("webhook.display_name", "body"),
        body={**HOOK, "displayName": "d" * 5_000_000},
    ),
    "url of 3,013 characters": Case(
        "POST",
        "/webhooks",
        ("webhook.url",),
        body={**HOOK, "url": "https://hooks.example.com/" + "p" * 2_987},
    ),
    "raw payer name of 201 characters": Case(
        "POST",
        "/payerMappings",
        ("payer_mapping.raw_payer_name",),
        body={"rawPayerName": "A" * 201, "canonicalPayer": "Aetna"},
    ),
    "triage note of 4,001 characters": Case(
        "PATCH", "/{event}", ("drift_event.triage_note",), body={"triageNote": "n" * 4_001}
    ),
}


def _send(client: httpx.Client, victim: Victim, case: Case) -> httpx.Response:
    path = case.path.format(
        upload=victim.upload.split("/", 2)[2],
        event=victim.event.split("/", 2)[2],
        mapping=victim.mapping.split("/", 2)[2],
    )
    content = case.content if case.body is None else json.dumps(case.body).encode()
    return client.request(
        case.verb,
        f"/v1/customers/{victim.customer}{path}",
        params=case.params,
        content=content,
        headers={"content-type": case.content_type},
    )


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(
    system: System, stored: StoredRows, victim: Victim, case: Case
) -> None:
    before = stored.settled(victim.customer)
    with system.client(victim.customer, "admin") as client:
        response = _send(client, victim, case)
    assert_bad_request(response, *case.fields)
    assert stored.of(victim.customer) == before


@pytest.mark.parametrize(
    "content",
    [b"", b" \r\n\r\n", b"claim_id\x00payer\n"],
    ids=["empty", "blank lines", "binary"],
)
def test_a_file_refused_as_a_whole_is_a_400_naming_the_file(system: System, content: bytes) -> None:
    customer = fresh_customer()
    with system.client(customer, "admin") as client:
        response = client.post(
            f"/v1/customers/{customer}/uploads",
            content=content,
            headers={"content-type": "text/csv"},
        )
    error = assert_bad_request(response, "http_body")
    assert _http_reason(error) == KEPT_FAILURE


def test_the_services_refuse_what_the_gateway_would_never_forward(
    system: System, stored: StoredRows, victim: Victim
) -> None:
    """Over gRPC, where no gateway checks lengths first: a 20,000-character name once came
    back as RESOURCE_EXHAUSTED (the error's message outgrew gRPC's metadata limit)."""
    prefix = f"customers/{victim.customer}"
    long_upload = prefix + "/uploads/" + "u" * 20_000
    long_event = prefix + "/driftEvents/" + "e" * 20_000
    long_filter = ingest_service_pb2.ListClaimsRequest(parent=prefix, filter="x" * 20_000)
    long_token = ingest_service_pb2.ListUploadsRequest(parent=prefix, page_token="t" * 20_000)
    nul_name = reports_service_pb2.GetWebhookRequest(name=prefix + "/webhooks/" + NUL)
    calls: list[tuple[str, str, message.Message]] = [
        ("ingest", "GetUpload", ingest_service_pb2.GetUploadRequest(name=long_upload)),
        ("ingest", "ListClaims", long_filter),
        ("ingest", "ListUploads", long_token),
        ("drift", "GetDriftEvent", drift_service_pb2.GetDriftEventRequest(name=long_event)),
        ("reports", "GetWebhook", nul_name),
    ]
    token = system.token(victim.customer, "admin")
    before = stored.settled(victim.customer)
    for service, method, request in calls:
        with grpc.insecure_channel(system.targets[service]) as channel:
            call = channel.unary_unary(
                f"/upstream.{service}.v1.{service.capitalize()}Service/{method}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=lambda data: data,
            )
            with pytest.raises(grpc.RpcError) as raised:
                call(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (
            f"{method}: {raised.value.code()} {raised.value.details()[:300]}"
        )
        assert raised.value.details().strip()
        assert grpc_violations(raised.value), f"{method}: {raised.value.details()[:300]}"
    assert stored.of(victim.customer) == before


def test_a_stream_that_fails_before_its_first_message_says_why(
    system: System, victim: Victim
) -> None:
    """A server-streaming method that fails before its first message once answered UNKNOWN
    (the call broke in the interceptors), and the gateway 500."""
    report = f"customers/{victim.customer}/reports/r1"
    token = system.token(victim.customer, "admin")
    with grpc.insecure_channel(system.targets["reports"]) as channel:
        download = channel.unary_stream(
            "/upstream.reports.v1.ReportsService/DownloadReport",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda data: data,
        )
        with pytest.raises(grpc.RpcError) as raised:
            list(
                download(
                    reports_service_pb2.DownloadReportRequest(name=report),
                    metadata=(("authorization", f"Bearer {token}"),),
                    timeout=30,
                )
            )
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND, raised.value.details()
    assert report in (raised.value.details() or "")
    with system.client(victim.customer, "admin") as client:
        response = client.get(f"/v1/{report}:download")
    assert response.status_code == 404, response.text[:300]
    assert http_error(response)["code"] == "NOT_FOUND"


# --- page tokens --------------------------------------------------------------------------------

INVALID_TOKEN = "page_token is not valid"


def _first_token(client: httpx.Client, path: str, **params: str) -> str:
    page = client.get(path, params={"pageSize": "1", **params})
    assert page.status_code == 200, page.text
    token = page.json().get("nextPageToken", "")
    assert token, page.text
    return str(token)


def assert_invalid_token(response: httpx.Response) -> None:
    error = assert_bad_request(response, "page_token")
    assert error["detail"] == INVALID_TOKEN, error


def test_a_token_of_one_list_is_refused_on_every_other_list(system: System, victim: Victim) -> None:
    base = f"/v1/customers/{victim.customer}"
    with system.client(victim.customer, "admin") as client:
        token = _first_token(client, f"{base}/webhooks")
        answers = {
            collection: client.get(f"{base}/{collection}", params={"pageToken": token})
            for collection in COLLECTIONS_WITH_FILTERS
            if collection != "webhooks"
        }
        other_filter = client.get(
            f"{base}/webhooks", params={"pageToken": token, "filter": "disabled = false"}
        )
    for collection, response in {**answers, "webhooks, another filter": other_filter}.items():
        assert response.status_code == 400, f"{collection}: {response.text[:300]}"
        assert_invalid_token(response)


def test_a_token_of_another_customer_is_refused(system: System, victim: Victim) -> None:
    other = fresh_customer()
    with system.client(other, "admin") as client:
        for i in range(2):
            created = client.post(
                f"/v1/customers/{other}/webhooks",
                json={"url": f"https://hooks.example.com/{i}", "eventTypes": ["TEST"]},
            )
            assert created.status_code == 200, created.text
        token = _first_token(client, f"/v1/customers/{other}/webhooks")
    with system.client(victim.customer, "admin") as client:
        response = client.get(
            f"/v1/customers/{victim.customer}/webhooks", params={"pageToken": token}
        )
    assert_invalid_token(response)


# What an attacker writes in place of the position a token shows (the last webhook's id).
FORGED_POSITIONS = {
    "null": "null",
    "a number": "123",
    "an object": '{"x": 1}',
    "a list": "[]",
    "NUL": '"\\u0000"',
    "an injection": "\"' OR '1'='1\"",
    "another webhook": '"wh_0000000000000000"',
    "a long text": json.dumps("w" * 500),
}


def _readable(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


@pytest.mark.parametrize("forged", FORGED_POSITIONS.values(), ids=FORGED_POSITIONS.keys())
def test_a_token_whose_position_was_altered_is_refused(
    system: System, victim: Victim, forged: str
) -> None:
    base = f"/v1/customers/{victim.customer}"
    with system.client(victim.customer, "admin") as client:
        token = _first_token(client, f"{base}/webhooks")
        page = client.get(f"{base}/webhooks", params={"pageSize": "1"}).json()
        last_id = json.dumps(page["webhooks"][0]["name"].rsplit("/", 1)[1]).encode()
        readable = _readable(token)
        assert last_id in readable, "the token no longer shows its position; forge another way"
        tampered = base64.urlsafe_b64encode(readable.replace(last_id, forged.encode())).decode()
        response = client.get(f"{base}/webhooks", params={"pageToken": tampered.rstrip("=")})
    assert_invalid_token(response)


def _json_token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


# Tokens an attacker makes up that look like ours (URL-safe base64): random bytes, JSON of
# the shape unsigned tokens had, nested JSON.
LOOKALIKE_TOKENS = st.one_of(
    st.binary(min_size=1, max_size=80).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    st.builds(
        lambda position, fingerprint: _json_token({"a": position, "f": fingerprint}),
        st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=8)), max_size=3),
        st.text(max_size=16),
    ),
    st.builds(_json_token, st.recursive(st.none() | st.text(max_size=4), st.lists, max_leaves=6)),
)
MADE_UP_TOKENS = st.one_of(LOOKALIKE_TOKENS, st.text(min_size=1, max_size=40))


def test_a_made_up_token_is_refused(system: System, victim: Victim) -> None:
    """One that looks like a token gets the one message every unusable token gets; any
    other text at least a 400 naming page_token."""

    @GENERATED
    @given(
        collection=st.sampled_from(COLLECTIONS_WITH_FILTERS),
        token=st.one_of(
            LOOKALIKE_TOKENS.map(lambda token: (token, True)),
            st.text(min_size=1, max_size=40).map(lambda token: (token, False)),
        ),
    )
    def check(collection: str, token: tuple[str, bool]) -> None:
        text, looks_like_ours = token
        with system.client(victim.customer, "viewer") as client:
            response = client.get(
                f"/v1/customers/{victim.customer}/{collection}", params={"pageToken": text}
            )
        if looks_like_ours:
            assert_invalid_token(response)
        else:
            assert_bad_request(response, "page_token")

    check()


# --- slow and large requests --------------------------------------------------------------------


def _gateway_address(system: System) -> tuple[str, int]:
    host, port = system.gateway_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _trickle(system: System, head: bytes, trickled: bytes) -> tuple[float, bytes]:
    """Send `head` at once, then a byte of `trickled` every TRICKLE_SECONDS, for a little
    longer than STALL_LIMIT_SECONDS; the seconds until the gateway answered or closed, and
    its answer (b"" when it closed without one)."""
    started = time.monotonic()
    with socket.create_connection(_gateway_address(system), timeout=TRICKLE_SECONDS) as sock:
        sock.sendall(head)
        for byte in trickled:
            if time.monotonic() - started > STALL_LIMIT_SECONDS + TRICKLE_SECONDS:
                break
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return time.monotonic() - started, b""
                continue
            except OSError:
                answer = b""
            return time.monotonic() - started, answer
    return time.monotonic() - started, b"(no answer while the request trickled in)"


def test_requests_trickling_in_are_cut_off(system: System) -> None:
    token = system.token("acme", "viewer").encode()
    never_ending = b"a" * 100
    slow_head = b"GET /v1/customers/acme/uploads HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
    slow_body = (
        b"POST /v1/customers/acme/driftRuns HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer " + token + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
    )
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda h: _trickle(system, h, never_ending), (slow_head, slow_body))
        )
    for (seconds, answer), what in zip(results, ("head", "body"), strict=True):
        assert seconds < STALL_LIMIT_SECONDS, f"a trickled {what} was read for {seconds:.0f} s"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), (
            f"a trickled {what} was answered {answer[:200]!r}"
        )


def _raw_exchange(system: System, request: bytes) -> bytes:
    """Send `request` as it is; the answer, as far as the gateway sent one."""
    with socket.create_connection(_gateway_address(system), timeout=10) as sock:
        # The gateway may answer and stop reading before the request is all sent.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        answer = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            answer.extend(chunk)
            head, separator, body = bytes(answer).partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if separator and length and len(body) >= int(length.group(1)):
                break
    return bytes(answer)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/customers/acme/uploads?filter=" + b"x" * 100_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /v1/customers/acme/" + b"u" * 100_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /v1/customers/acme/uploads HTTP/1.1\r\nX-Big: " + b"h" * 100_000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-Many: h\r\n" * 20_000 + b"\r\n", 431),
    ],
    ids=["long query", "long path", "large header", "many headers"],
)
def test_over_long_urls_and_headers_are_refused_with_their_status(
    system: System, request_bytes: bytes, status: int
) -> None:
    answer = _raw_exchange(system, request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:300]
    body = answer.partition(b"\r\n\r\n")[2]
    assert json.loads(body)["detail"], answer[:500]


# --- generated requests: strategies from the request messages' descriptors ---------------------

CONTROL_CHARACTERS = st.characters(min_codepoint=0, max_codepoint=0x1F)
PAST_LIMITS = (101, 129, 201, 256, 501, 1_001, 2_001, 2_049, 4_001, 20_000)
NASTY_TEXTS = (
    NUL,
    f"a{NUL}b",
    "' OR '1'='1",
    "'; DROP TABLE ingest.claims; --",
    "%00",
    "../../etc/passwd",
    "\u202e",
    "\ufeff",
    "customers/",
    "*",
    "null",
    "NaN",
    "-1",
    "9" * 40,
    "\r\nX-Injected: 1",
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.one_of(CONTROL_CHARACTERS, st.characters(codec="utf-8")), min_size=1, max_size=12),
    st.sampled_from(NASTY_TEXTS),
    st.builds(
        lambda text, times: text * times,
        st.sampled_from(["x", "é", NUL, "😀", "/"]),
        st.sampled_from(PAST_LIMITS),
    ),
)
FILTER_FIELDS = (
    "state",
    "payer",
    "claim_id",
    "decision_date",
    "create_time",
    "disabled",
    "event_types",
    "severity",
    "active",
    "mapped",
    "metric",
)
FILTERS = st.one_of(
    HOSTILE_TEXT,
    st.builds(
        lambda name, operator, value: f"{name} {operator} {value}",
        st.one_of(st.sampled_from(FILTER_FIELDS), HOSTILE_TEXT),
        st.sampled_from(["=", "!=", "<", ">=", ":", "AND", "OR", "NOT", ""]),
        st.one_of(HOSTILE_TEXT.map(lambda text: f'"{text}"'), HOSTILE_TEXT),
    ),
)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
RANDOM_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
INTEGER_RANGES = {
    descriptor.FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    descriptor.FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    descriptor.FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    descriptor.FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
MAX_DEPTH = 3
_VARIABLE = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class Tenants:
    """The customer a generated request is for (the token's), and another one."""

    own: str
    other: str


CUSTOMERS = st.uuids().map(lambda drawn: "hostile" + drawn.hex[:10])
TENANTS = st.builds(Tenants, CUSTOMERS, CUSTOMERS)


def _resource_patterns(method: descriptor.MethodDescriptor) -> dict[str, str]:
    """Each path variable of the method's routes and its pattern (`customers/*/uploads/*`)."""
    patterns: dict[str, str] = {}
    for binding in http_bindings(method):
        for match in _VARIABLE.finditer(binding.template):
            patterns.setdefault(match.group(1), match.group(2) or "*")
    return patterns


COLLECTIONS = sorted(
    {
        part
        for service in API_SERVICES
        for method in service.methods
        for pattern in _resource_patterns(method).values()
        for part in pattern.split("/")
        if part not in ("*", "customers")
    }
)


def resource_names(pattern: str, tenants: Tenants) -> st.SearchStrategy[str]:
    """Names of the method's own shape for the caller's customer, with hostile ids, and
    names of other shapes, customers and none."""

    def filled(ids: list[str]) -> str:
        parts = pattern.split("/")
        stars = iter([tenants.own, *ids])
        return "/".join(next(stars, "x") if part == "*" else part for part in parts)

    own_shape = st.lists(
        st.one_of(HOSTILE_TEXT, st.uuids().map(lambda drawn: "x" + drawn.hex[:8])),
        min_size=pattern.count("*"),
        max_size=pattern.count("*"),
    ).map(filled)
    return st.one_of(
        own_shape,
        own_shape,
        st.builds(
            lambda collection, name: f"customers/{tenants.own}/{collection}/{name}",
            st.sampled_from(COLLECTIONS),
            HOSTILE_TEXT,
        ),
        st.sampled_from([f"customers/{tenants.other}", f"customers/{tenants.other}/uploads/u1"]),
        HOSTILE_TEXT,
    )


def scalar_values(
    field: descriptor.FieldDescriptor, path: str, patterns: dict[str, str], tenants: Tenants
) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == descriptor.FieldDescriptor.TYPE_STRING:
        if path in patterns:
            return resource_names(patterns[path], tenants)
        if field.name in ("name", "parent"):
            return resource_names("customers/*", tenants)
        if field.name == "page_token":
            return st.one_of(MADE_UP_TOKENS, HOSTILE_TEXT)
        if field.name == "filter":
            return FILTERS
        return HOSTILE_TEXT
    if kind == descriptor.FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.just(CSV), HOSTILE_TEXT.map(str.encode))
    if kind == descriptor.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == descriptor.FieldDescriptor.TYPE_ENUM:
        defined = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(defined), st.integers(-(2**31), 2**31 - 1))
    if kind == descriptor.FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == descriptor.FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    low, high = INTEGER_RANGES[field.cpp_type]
    return st.one_of(st.sampled_from([low, high, 0, 1, low + 1, high - 1]), st.integers(low, high))


def field_values(
    field: descriptor.FieldDescriptor,
    path: str,
    patterns: dict[str, str],
    tenants: Tenants,
    depth: int,
) -> st.SearchStrategy[Any]:
    """Values of one field: a list for a repeated field, a dict for a map."""
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        return st.dictionaries(
            scalar_values(key, path, patterns, tenants),
            field_values(value, path, patterns, tenants, depth),
            max_size=3,
        )
    if entry is not None:
        one: st.SearchStrategy[Any] = messages(entry, patterns, tenants, f"{path}.", depth + 1)
    else:
        one = scalar_values(field, path, patterns, tenants)
    if not field.is_repeated:
        return one
    if entry is not None:
        return st.lists(one, max_size=3)
    # Past any item limit sometimes (1001 short items: the request stays far below gRPC's
    # message size limit), else a few.
    short = st.text(max_size=8) if field.type == descriptor.FieldDescriptor.TYPE_STRING else one
    return st.one_of(st.lists(one, max_size=3), short.map(lambda item: [item] * 1_001))


def messages(
    message_type: descriptor.Descriptor,
    patterns: dict[str, str],
    tenants: Tenants,
    prefix: str = "",
    depth: int = 0,
) -> st.SearchStrategy[message.Message]:
    """Messages of `message_type` with hostile values; resource names always set (else the
    request stops at "name is required"), every other field half the time."""
    fields = [
        (each, f"{prefix}{each.name}")
        for each in message_type.fields
        if each.message_type is None or depth < MAX_DEPTH
    ]

    @st.composite
    def build(draw: st.DrawFn) -> message.Message:
        built = message_factory.GetMessageClass(message_type)()
        for each, path in fields:
            if path not in patterns and not draw(st.booleans()):
                continue
            _set(built, each, draw(field_values(each, path, patterns, tenants, depth)))
        return built

    return build()


def _set(target: message.Message, each: descriptor.FieldDescriptor, value: Any) -> None:
    entry = each.message_type
    if entry is not None and entry.GetOptions().map_entry:
        mapping = getattr(target, each.name)
        for key, item in value.items():
            if isinstance(item, message.Message):
                mapping[key].CopyFrom(item)
            else:
                mapping[key] = item
    elif each.is_repeated:
        repeated = getattr(target, each.name)
        for item in value:
            if entry is None:
                repeated.append(item)
            else:
                repeated.add().CopyFrom(item)
    elif entry is not None:
        getattr(target, each.name).CopyFrom(value)
    else:
        setattr(target, each.name, value)


def _method_key(method: descriptor.MethodDescriptor) -> str:
    return f"{method.containing_service.name}.{method.name}"


API_METHODS = {
    _method_key(method): method for service in API_SERVICES for method in service.methods
}


def _stub(
    channel: grpc.Channel, method: descriptor.MethodDescriptor
) -> Callable[[Any, tuple[tuple[str, str], ...]], Any]:
    """A call of `method` that returns when its answer (every message of a stream) is in."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    kinds = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    multicallable = kinds[method.client_streaming, method.server_streaming](
        path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=bytes
    )

    def call(request: Any, metadata: tuple[tuple[str, str], ...]) -> Any:
        answer = multicallable(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        return list(answer) if method.server_streaming else answer

    return call


@pytest.fixture(scope="module")
def channels(system: System) -> Iterator[dict[str, grpc.Channel]]:
    opened = {
        f"upstream.{service}.v1": grpc.insecure_channel(target)
        for service, target in system.targets.items()
    }
    yield opened
    for channel in opened.values():
        channel.close()


def _tokens(system: System, customer: str) -> dict[str, str]:
    return {
        role: mint_token(
            system.settings,
            subject=f"{role}@{customer}",
            customer=customer,
            role=Role(role),
            ttl_seconds=600,
        )
        for role in ("admin", "superuser")
    }


def _with_names(
    method: descriptor.MethodDescriptor, name_of: Callable[[str, str], str]
) -> message.Message:
    """A request of `method` whose resource fields (path by pattern) hold `name_of(path,
    pattern)`, and nothing else."""
    request = message_factory.GetMessageClass(method.input_type)()
    for path, pattern in _resource_patterns(method).items():
        *parents, leaf = path.split(".")
        target = request
        for part in parents:
            target = getattr(target, part)
        setattr(target, leaf, name_of(path, pattern))
    return request


@pytest.fixture(scope="module")
def unbuilt(system: System, channels: dict[str, grpc.Channel]) -> frozenset[str]:
    """The methods that answer UNIMPLEMENTED to a plain request of theirs (not built yet)."""
    customer = fresh_customer()
    token = _tokens(system, customer)["superuser"]
    found = set()
    for key, method in API_METHODS.items():
        request = _with_names(
            method, lambda _path, pattern: pattern.replace("*", customer, 1).replace("*", "x1")
        )
        call = _stub(channels[method.containing_service.file.package], method)
        try:
            call(iter([request]) if method.client_streaming else request, _auth(token))
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
                found.add(key)
    return frozenset(found)


def _auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.mark.parametrize(
    "key", [key for key, method in API_METHODS.items() if _resource_patterns(method)]
)
def test_a_name_of_the_wrong_shape_is_refused_naming_the_field_it_is_in(
    system: System, channels: dict[str, grpc.Channel], unbuilt: frozenset[str], key: str
) -> None:
    """The caller's own customer, so only the name's shape is wrong: the violation names the
    request's field (`parent` of ListUploadRejections once came back as `name`)."""
    method = API_METHODS[key]
    customer = fresh_customer()
    request = _with_names(
        method,
        lambda _path, pattern: pattern.replace("*", customer, 1).replace("*", "x1") + "/extra",
    )
    call = _stub(channels[method.containing_service.file.package], method)
    with pytest.raises(grpc.RpcError) as raised:
        call(
            iter([request]) if method.client_streaming else request,
            _auth(_tokens(system, customer)["superuser"]),
        )
    code = raised.value.code()  # type: ignore[attr-defined]
    if code is grpc.StatusCode.UNIMPLEMENTED and key in unbuilt:
        return
    assert code is grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()  # type: ignore[attr-defined]
    assert grpc_violations(raised.value) == list(_resource_patterns(method)), (
        raised.value.details()  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("key", API_METHODS)
def test_generated_grpc_requests_are_answered_or_refused_cleanly(
    system: System,
    stored: StoredRows,
    channels: dict[str, grpc.Channel],
    unbuilt: frozenset[str],
    key: str,
) -> None:
    method = API_METHODS[key]
    patterns = _resource_patterns(method)
    call = _stub(channels[method.containing_service.file.package], method)

    @GENERATED
    @given(data=st.data(), tenants=TENANTS, role=st.sampled_from(["admin", "superuser"]))
    def check(data: st.DataObject, tenants: Tenants, role: str) -> None:
        requests = messages(method.input_type, patterns, tenants)
        if method.client_streaming:
            stream = [data.draw(requests), *data.draw(st.lists(requests, max_size=2))]
            request: Any = iter(stream)
        else:
            request = data.draw(requests)
        before = stored.settled(tenants.own, tenants.other)
        try:
            call(request, _auth(_tokens(system, tenants.own)[role]))
        except grpc.RpcError as error:
            assert_clean_grpc_refusal(error, method, key in unbuilt)
            if _reason(rich_status(error)) != KEPT_FAILURE:
                assert stored.of(tenants.own, tenants.other) == before, "a refused request wrote"

    check()


# --- generated HTTP requests: the same strategies, sent through the gateway ---------------------


@dataclass(frozen=True)
class HttpRoute:
    method: descriptor.MethodDescriptor
    binding: HttpBinding


HTTP_ROUTES = {
    f"{binding.verb.upper()} {binding.template}": HttpRoute(method, binding)
    for method in API_METHODS.values()
    for binding in http_bindings(method)
}


def _json_of(value: Any) -> Any:
    """A drawn value as JSON; a message as a dict with its fields' JSON names."""
    if isinstance(value, message.Message):
        return {each.json_name: _json_of(item) for each, item in value.ListFields()}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list | tuple) or type(value).__name__.startswith("Repeated"):
        return [_json_of(item) for item in value]
    if hasattr(value, "items"):
        return {str(key): _json_of(item) for key, item in value.items()}
    return value


def http_requests(
    route: HttpRoute, tenants: Tenants
) -> st.SearchStrategy[tuple[str, dict[str, str], bytes]]:
    """A path, query parameters and a body for `route`: the request message drawn as above,
    sent as the gateway reads it, or with a body of random or deeply nested JSON."""
    method, binding = route.method, route.binding
    patterns = _resource_patterns(method)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
        request = draw(messages(method.input_type, patterns, tenants))
        fields = _json_of(request)
        path = binding.template
        for match in _VARIABLE.finditer(binding.template):
            value = request
            for part in match.group(1).split("."):
                value = getattr(value, part)
            segments = "/".join(quote(segment, safe="") for segment in str(value).split("/"))
            path = path.replace(match.group(0), segments)
            _drop(fields, match.group(1), method.input_type)
        query: dict[str, str] = {}
        body: bytes = b""
        body_field = binding.body
        if body_field == "*":
            body = json.dumps(fields).encode()
        elif body_field:
            name = method.input_type.fields_by_name[body_field]
            carried = fields.pop(name.json_name, {})
            body = (
                base64.b64decode(carried.get("data", ""))
                if name.message_type.full_name == "google.api.HttpBody"
                else json.dumps(carried).encode()
            )
        if body_field != "*":
            query = {key: str(value) for key, value in _leaves(fields)}
        if body_field and body_field != "http_body":
            body = draw(
                st.one_of(
                    st.just(body),
                    RANDOM_JSON.map(lambda value: json.dumps(value).encode()),
                    st.integers(50, NESTING_DEPTH).map(lambda n: ("[" * n + "]" * n).encode()),
                )
            )
        return path, query, body

    return build()


def _drop(fields: dict[str, Any], path: str, request: descriptor.Descriptor) -> None:
    """Remove a path variable's field from the fields sent in the body or query."""
    *parents, leaf = path.split(".")
    current: Any = fields
    message_type = request
    for part in parents:
        each = message_type.fields_by_name[part]
        current = current.get(each.json_name, {})
        message_type = each.message_type
    if isinstance(current, dict):
        current.pop(message_type.fields_by_name[leaf].json_name, None)


def _leaves(fields: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in fields.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            for item in value[:3]:
                if not isinstance(item, dict | list):
                    yield f"{prefix}{key}", item
        else:
            yield f"{prefix}{key}", value


def _path_pattern(template: str) -> re.Pattern[str]:
    """The raw paths a route template matches: each `*` one segment, `**` any."""
    pattern, end = "", 0
    for match in _VARIABLE.finditer(template):
        pattern += re.escape(template[end : match.start()])
        pattern += "/".join(
            {"*": "[^/]+", "**": ".+"}.get(part, re.escape(part))
            for part in (match.group(2) or "*").split("/")
        )
        end = match.end()
    return re.compile(pattern + re.escape(template[end:]) + "$")


def _routes_serving(verb: str, path: str) -> list[HttpRoute]:
    """The routes a drawn path may have reached (a hostile id can make it another route's)."""
    return [
        route
        for route in HTTP_ROUTES.values()
        if route.binding.verb == verb and _path_pattern(route.binding.template).match(path)
    ]


def _keys_sent(body: bytes) -> list[str]:
    """The key paths of a JSON body (`a`, `a.b`), as far as it is a JSON object."""
    try:
        sent = json.loads(body)
    except ValueError:
        return []

    def paths(value: Any, prefix: str) -> Iterator[str]:
        if isinstance(value, dict):
            for key, item in value.items():
                yield f"{prefix}{key}"
                yield from paths(item, f"{prefix}{key}.")

    return list(paths(sent, ""))


# How an error quotes a control character a client sent: escaped (`\x12`).
_CONTROL = re.compile(r"\\x[0-9a-f]{2}|[\x00-\x1f\x7f]")


def _names_key(violation: str, key: str) -> bool:
    """Whether `violation` names the sent JSON key path `key`, under a body field or not,
    control characters escaped or not."""
    shown, sent = _CONTROL.sub("", violation), _CONTROL.sub("", key)
    return shown == sent or shown.endswith("." + sent)


def _names_something_sent(
    violation: str, served: list[HttpRoute], query: dict[str, str], body: bytes
) -> bool:
    return (
        any(field_exists(route.method.input_type, violation) for route in served)
        or violation in ("body", "Idempotency-Key")
        or any(names_field(violation, name) for name in query)
        or any(_names_key(violation, key) for key in _keys_sent(body))
        or (
            any(route.method.client_streaming for route in served)
            and bool(FILE_POSITION.match(violation))
        )
    )


@pytest.mark.parametrize("key", HTTP_ROUTES)
def test_generated_http_requests_are_answered_or_refused_cleanly(
    system: System, stored: StoredRows, unbuilt: frozenset[str], key: str
) -> None:
    route = HTTP_ROUTES[key]

    @GENERATED
    @given(data=st.data(), tenants=TENANTS)
    def check(data: st.DataObject, tenants: Tenants) -> None:
        path, query, body = data.draw(http_requests(route, tenants))
        before = stored.settled(tenants.own, tenants.other)
        with system.client(tenants.own, "admin") as client:
            try:
                request = client.build_request(
                    route.binding.verb.upper(),
                    path,
                    params=query,
                    content=body or None,
                    headers={"content-type": "application/json"},
                )
            except httpx.InvalidURL:  # longer than the client sends; raw tests send those
                reject()
            response = client.send(request)
        served = _routes_serving(route.binding.verb, path) or [route]
        status = response.status_code
        not_built = any(_method_key(each.method) in unbuilt for each in served)
        assert status < 500 or (status == 501 and not_built), (
            f"{key} answered {status}: {response.text[:500]}"
        )
        assert status != 429, f"{key} answered 429 (gRPC's own limits): {response.text[:500]}"
        if status < 400:
            return
        error = http_error(response)
        if status == 400:
            violations = http_violations(error)
            assert any(_names_something_sent(v, served, query, body) for v in violations), (
                f"{key}: 400 names no field that was sent: {error}"
            )
        if _http_reason(error) != KEPT_FAILURE:
            assert stored.of(tenants.own, tenants.other) == before, "a refused request wrote"

    check()

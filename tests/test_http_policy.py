"""What every answer of the real gateway gets: brotli or gzip when asked for and worth it
(never on a download, streams still streaming, ETags kept usable), security headers, and
CORS for the configured origins only (a second gateway on the same services, with one
origin allowed)."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Callable, Iterator

import brotli
import httpx
import pytest

from tests.system import System, extra_gateway

ALLOWED = "https://app.example.com"
ROWS = "".join(
    f"C{i},Aetna,99213,2026-03-01,2026-03-02,2026-03-{1 + i % 28:02d},PAID,150.00,100.00,"
    "80.00,20.00,CO-45\n"
    for i in range(60)
)
CSV = (
    "claim_id,payer,procedure_code,service_date,submitted_date,decision_date,status,"
    "billed_amount,allowed_amount,paid_amount,patient_responsibility,carc_codes\n" + ROWS
).encode()


@pytest.fixture(scope="module")
def customer(system: System) -> str:
    name = "http" + uuid.uuid4().hex[:8]
    with system.client(name) as client:
        uploaded = client.post(
            f"/v1/customers/{name}/uploads", content=CSV, headers={"content-type": "text/csv"}
        )
    assert uploaded.status_code == 200, uploaded.text
    return name


@pytest.fixture(scope="module")
def cors_gateway(system: System) -> Iterator[str]:
    with extra_gateway(system, CORS_ALLOWED_ORIGINS=ALLOWED) as url:
        yield url


def raw_get(
    system: System, customer: str, path: str, **headers: str
) -> tuple[httpx.Response, bytes]:
    """A GET and its body as sent (httpx would undo the gzip)."""
    with httpx.Client(base_url=system.gateway_url, timeout=30) as client:
        request = client.build_request(
            "GET",
            path,
            headers={"Authorization": f"Bearer {system.token(customer)}", **headers},
        )
        response = client.send(request, stream=True)
        try:
            return response, b"".join(response.iter_raw())
        finally:
            response.close()


@pytest.mark.parametrize(
    ("accepted", "encoding", "decompress"),
    [("gzip", "gzip", gzip.decompress), ("gzip, deflate, br", "br", brotli.decompress)],
)
def test_large_answers_are_compressed_when_asked_and_their_etag_still_works(
    system: System,
    customer: str,
    accepted: str,
    encoding: str,
    decompress: Callable[[bytes], bytes],
) -> None:
    path = f"/v1/customers/{customer}/claims?pageSize=50"
    packed, packed_body = raw_get(system, customer, path, **{"Accept-Encoding": accepted})
    plain, plain_body = raw_get(system, customer, path, **{"Accept-Encoding": "identity"})
    current, current_body = raw_get(
        system,
        customer,
        path,
        **{"Accept-Encoding": accepted, "If-None-Match": packed.headers["etag"]},
    )
    small, small_body = raw_get(
        system, customer, f"/v1/customers/{customer}/webhooks", **{"Accept-Encoding": accepted}
    )

    assert packed.headers["content-encoding"] == encoding
    assert "accept-encoding" in packed.headers["vary"].lower()
    assert json.loads(decompress(packed_body)) == json.loads(plain_body)
    assert len(packed_body) < len(plain_body) / 3
    assert "content-encoding" not in plain.headers
    assert "accept-encoding" in plain.headers["vary"].lower()
    # Another representation, another strong tag; either one revalidates the copy.
    assert packed.headers["etag"] == plain.headers["etag"][:-1] + f'-{encoding}"'
    assert current.status_code == 304 and current_body == b""
    assert "content-encoding" not in current.headers
    assert len(small_body) < 500 and "content-encoding" not in small.headers


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_compressed_stream_still_arrives_line_by_line(
    system: System, customer: str, encoding: str
) -> None:
    with (
        system.client(customer, "viewer") as client,
        client.stream(
            "GET",
            f"/v1/customers/{customer}/claims:stream",
            params={"startDate": "2026-03-01", "endDate": "2026-03-31"},
            headers={"Accept-Encoding": encoding},
        ) as response,
    ):
        sent_as = response.headers.get("content-encoding")
        lines = [json.loads(line) for line in response.iter_lines() if line]

    assert sent_as == encoding
    assert sum(len(line["result"]["claims"]) for line in lines) == 60


def test_a_download_is_never_compressed(system: System, customer: str) -> None:
    with system.client(customer) as client:
        created = client.post(
            f"/v1/customers/{customer}/reports",
            json={
                "kind": "CLAIMS_EXPORT",
                "format": "CSV",
                "parameters": {
                    "dateRange": {
                        "startDate": {"year": 2026, "month": 3, "day": 1},
                        "endDate": {"year": 2026, "month": 3, "day": 31},
                    }
                },
            },
        ).json()
        deadline = time.monotonic() + 60
        while client.get(f"/v1/{created['name']}").json()["state"] != "SUCCEEDED":
            assert time.monotonic() < deadline, "the export was not built"
            time.sleep(0.2)
    downloaded, body = raw_get(
        system, customer, f"/v1/{created['name']}:download", **{"Accept-Encoding": "gzip"}
    )

    assert downloaded.status_code == 200
    assert "content-encoding" not in downloaded.headers
    assert int(downloaded.headers["content-length"]) == len(body) > 500
    assert body.count(b"\r\n") == 61


def test_answers_carry_security_headers_and_a_page_keeps_its_own_policy(
    system: System, customer: str
) -> None:
    answer, _ = raw_get(system, customer, f"/v1/customers/{customer}/driftConfig")
    refused, _ = raw_get(system, customer, "/v1/customers/other/driftConfig")
    page = httpx.get(f"{system.gateway_url}/docs", timeout=30)

    for response in (answer, refused):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        # Plain HTTP here: HSTS is for answers over TLS only.
        assert "strict-transport-security" not in response.headers
    assert refused.status_code == 404
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_cors_answers_the_allowed_origin_only(system: System, cors_gateway: str) -> None:
    customer = "cors" + uuid.uuid4().hex[:8]
    path = f"{cors_gateway}/v1/customers/{customer}/driftConfig"
    preflight = httpx.options(
        path,
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, if-match, content-type",
        },
    )
    stranger = httpx.options(
        path, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    read = httpx.get(
        path, headers={"Origin": ALLOWED, "Authorization": f"Bearer {system.token(customer)}"}
    )
    elsewhere = httpx.get(
        f"{system.gateway_url}/v1/customers/{customer}/driftConfig",
        headers={"Origin": ALLOWED, "Authorization": f"Bearer {system.token(customer)}"},
    )

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    assert "if-match" in preflight.headers["access-control-allow-headers"].lower()
    assert stranger.status_code == 400
    assert "access-control-allow-origin" not in stranger.headers
    assert read.status_code == 200 and read.headers["access-control-allow-origin"] == ALLOWED
    exposed = read.headers["access-control-expose-headers"].lower()
    assert {"etag", "x-request-id", "api-version", "retry-after"} <= set(exposed.split(", "))
    # The default: no origin is allowed.
    assert "access-control-allow-origin" not in elsewhere.headers

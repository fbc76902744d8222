"""Rate limits, deadlines and early refusals through real gateways: second gateways on the
session's services with tight limits, their buckets per tenant and per client address seen
from outside (429 with Retry-After and the RateLimit headers, other tenants unaffected,
allowed again after the wait), a deadline no call meets (504); and a refused upload still
answered to a client sending a large body."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.system import System, extra_gateway


@pytest.fixture(scope="module")
def tenant_limited(system: System) -> Iterator[str]:
    limits = {"RATE_LIMIT_TENANT_PER_SECOND": "1", "RATE_LIMIT_TENANT_BURST": "3"}
    with extra_gateway(system, RATE_LIMIT_CLIENT_PER_SECOND="0", **limits) as url:
        yield url


@pytest.fixture(scope="module")
def client_limited(system: System) -> Iterator[str]:
    limits = {"RATE_LIMIT_CLIENT_PER_SECOND": "1", "RATE_LIMIT_CLIENT_BURST": "3"}
    with extra_gateway(system, RATE_LIMIT_TENANT_PER_SECOND="0", **limits) as url:
        yield url


def get(system: System, url: str, customer: str) -> httpx.Response:
    return httpx.get(
        f"{url}/v1/customers/{customer}/driftConfig",
        headers={"Authorization": f"Bearer {system.token(customer, 'viewer')}"},
        timeout=30,
    )


def test_a_tenant_past_its_burst_is_told_to_wait_and_others_are_not(
    system: System, tenant_limited: str
) -> None:
    busy, other = ("rl" + uuid.uuid4().hex[:8] for _ in range(2))
    answers = [get(system, tenant_limited, busy) for _ in range(4)]
    neighbour = get(system, tenant_limited, other)
    refused = answers[-1]
    time.sleep(int(refused.headers["retry-after"]))
    again = get(system, tenant_limited, busy)

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert (problem["status"], problem["code"]) == (429, "RESOURCE_EXHAUSTED")
    assert "customer" in problem["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert refused.headers["ratelimit-remaining"] == "0"
    assert neighbour.status_code == 200
    assert again.status_code == 200


def test_a_client_address_is_limited_whoever_it_claims_to_be(
    system: System, client_limited: str
) -> None:
    answers = [get(system, client_limited, "rl" + uuid.uuid4().hex[:8]) for _ in range(3)]
    anonymous = httpx.get(f"{client_limited}/v1/customers/acme/driftConfig", timeout=30)

    assert [a.status_code for a in answers] == [200, 200, 200]
    # No credentials: held by the same bucket before the token is even read.
    assert anonymous.status_code == 429
    assert "client address" in anonymous.json()["detail"]


@pytest.mark.parametrize(
    ("query", "bearer", "status", "code"),
    [
        ("", "not-a-token", 401, "UNAUTHENTICATED"),
        ("?upload.fileName=" + "a" * 2000, None, 400, "INVALID_ARGUMENT"),
    ],
)
def test_an_upload_refused_before_its_body_is_read_is_still_answered(
    system: System, query: str, bearer: str | None, status: int, code: str
) -> None:
    body = b"claim_id,payer\n" + b"x" * (40 * 1024 * 1024)
    request = urllib.request.Request(
        f"{system.gateway_url}/v1/customers/acme/uploads{query}",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {bearer or system.token('acme')}",
            "Content-Type": "text/csv",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)

    assert refused.value.code == status
    assert json.loads(refused.value.read())["code"] == code


def test_a_call_past_its_deadline_is_504(system: System) -> None:
    # A deadline no service can meet: every call through this gateway runs out of time.
    with extra_gateway(system, GRPC_CLIENT_TIMEOUT_SECONDS="0.000001") as url:
        late = get(system, url, "rl" + uuid.uuid4().hex[:8])

    assert late.status_code == 504, late.text
    problem = late.json()
    assert (problem["title"], problem["code"]) == ("Gateway Timeout", "DEADLINE_EXCEEDED")

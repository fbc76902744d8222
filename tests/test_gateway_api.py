"""The REST API through the real gateway and real services: routes, auth, tenancy, errors."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.system import TEST_JWT_SECRET, System


def error_of(response: httpx.Response) -> dict:
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict = response.json()
    assert body["status"] == response.status_code and body["detail"], body
    return body


def violations(response: httpx.Response) -> dict[str, str]:
    for detail in error_of(response)["details"]:
        if detail["@type"].endswith("google.rpc.BadRequest"):
            return {v["field"]: v["description"] for v in detail["fieldViolations"]}
    return {}


def reason(response: httpx.Response) -> str:
    for detail in error_of(response)["details"]:
        if detail["@type"].endswith("google.rpc.ErrorInfo"):
            return str(detail["reason"])
    return ""


def test_each_service_answers_a_get_route_through_the_gateway(system: System) -> None:
    with system.client("acme", "viewer") as client:
        config = client.get("/v1/customers/acme/driftConfig")
        uploads = client.get("/v1/customers/acme/uploads")
        webhooks = client.get("/v1/customers/acme/webhooks")
    assert config.status_code == 200
    assert config.json()["name"] == "customers/acme/driftConfig"
    assert config.json()["currentWindowDays"] == 30
    assert config.json()["enabledMetrics"] == [
        "DENIAL_RATE",
        "DECISION_DAYS",
        "PAYMENT_RATIO",
        "DENIAL_REASON_MIX",
    ]
    assert uploads.status_code == 200 and uploads.headers["content-type"] == "application/json"
    assert webhooks.status_code == 200 and webhooks.json().get("webhooks", []) == []


def test_health_and_readiness(system: System) -> None:
    assert httpx.get(f"{system.gateway_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{system.gateway_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "backends": {
            "upstream.ingest.v1.IngestService": "SERVING",
            "upstream.drift.v1.DriftService": "SERVING",
            "upstream.reports.v1.ReportsService": "SERVING",
        },
    }


def test_another_tenants_resources_are_not_found_and_lists_too(system: System) -> None:
    with system.client("acme", "admin") as acme:
        created = acme.post(
            "/v1/customers/acme/webhooks",
            json={"url": "https://hooks.example.com/a", "eventTypes": ["DRIFT_EVENT_OPENED"]},
        )
        assert created.status_code == 200, created.text
        name = created.json()["name"]
        assert acme.get(f"/v1/{name}").status_code == 200
    with system.client("beta", "admin") as beta:
        for path in (
            f"/v1/{name}",
            "/v1/customers/acme/webhooks",
            "/v1/customers/acme/uploads",
            "/v1/customers/acme/driftConfig",
        ):
            response = beta.get(path)
            assert response.status_code == 404, (path, response.text)
            assert reason(response) == "RESOURCE_NOT_FOUND"
        # Writing into another tenant is also NOT_FOUND, not PERMISSION_DENIED.
        assert beta.delete(f"/v1/{name}").status_code == 404
        assert beta.get("/v1/customers/beta/webhooks").json().get("webhooks", []) == []
    with system.client("ops", "superuser") as ops:
        assert ops.get(f"/v1/{name}").status_code == 200


def test_viewer_reads_but_cannot_write(system: System) -> None:
    with system.client("acme", "viewer") as viewer:
        assert viewer.get("/v1/customers/acme/driftConfig").status_code == 200
        response = viewer.patch("/v1/customers/acme/driftConfig", json={"currentWindowDays": 45})
        assert response.status_code == 403
        assert error_of(response)["code"] == "PERMISSION_DENIED"
        created = viewer.post(
            "/v1/customers/acme/webhooks",
            json={"url": "https://hooks.example.com/v", "eventTypes": ["TEST"]},
        )
        assert created.status_code == 403


def _token(**overrides: object) -> str:
    now = int(time.time())
    claims = {
        "sub": "someone",
        "customer": "acme",
        "role": "admin",
        "iss": "upstream-local",
        "aud": "upstream",
        "exp": now + 300,
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, TEST_JWT_SECRET)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic YWRtaW46YWRtaW4=",
        "Bearer not-a-jwt",
        f"Bearer {_token(exp=int(time.time()) - 60)}",
        f"Bearer {_token(aud='someone-else')}",
        f"Bearer {_token(iss='evil')}",
        f"Bearer {_token(role='owner')}",
        f"Bearer {_token(customer=None)}",
        "Bearer " + jwt.encode({"sub": "x", "customer": "acme", "role": "admin"}, None, "none"),
        "Bearer "
        + jwt.encode(
            {"sub": "x", "customer": "acme", "role": "admin"},
            "a-different-secret-of-thirty-two-bytes!",
        ),
    ],
    ids=[
        "missing",
        "basic",
        "garbage",
        "expired",
        "wrong-audience",
        "wrong-issuer",
        "unknown-role",
        "no-customer",
        "alg-none",
        "wrong-key",
    ],
)
def test_bad_or_missing_tokens_are_unauthenticated(system: System, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{system.gateway_url}/v1/customers/acme/uploads", headers=headers)
    assert response.status_code == 401, response.text
    assert error_of(response)["code"] == "UNAUTHENTICATED"


def test_bad_page_size_is_400_with_a_field_violation(system: System) -> None:
    with system.client() as client:
        too_big = client.get("/v1/customers/acme/uploads", params={"page_size": 5000})
        negative = client.get("/v1/customers/acme/webhooks", params={"pageSize": -1})
        not_a_number = client.get("/v1/customers/acme/uploads", params={"pageSize": "ten"})
    assert too_big.status_code == 400
    assert "page_size" in violations(too_big)
    assert error_of(too_big)["code"] == "INVALID_ARGUMENT"
    assert negative.status_code == 400 and "page_size" in violations(negative)
    assert not_a_number.status_code == 400
    assert "pageSize" in violations(not_a_number)


def test_bad_input_is_explained(system: System) -> None:
    with system.client() as client:
        unknown_parameter = client.get("/v1/customers/acme/uploads", params={"colour": "red"})
        bad_filter = client.get("/v1/customers/acme/uploads", params={"filter": "state = NOPE"})
        bad_json = client.patch(
            "/v1/customers/acme/driftConfig",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        bad_values = client.patch(
            "/v1/customers/acme/driftConfig",
            json={"falseDiscoveryRate": 0.9, "currentWindowDays": 3},
        )
        bad_url = client.post(
            "/v1/customers/acme/webhooks",
            json={"url": "ftp://hooks.example.com", "eventTypes": ["TEST"]},
        )
    assert unknown_parameter.status_code == 400 and "colour" in violations(unknown_parameter)
    assert bad_filter.status_code == 400 and "NOPE" in violations(bad_filter)["filter"]
    assert bad_json.status_code == 400 and "body" in violations(bad_json)
    assert bad_values.status_code == 400
    assert set(violations(bad_values)) == {
        "drift_config.false_discovery_rate",
        "drift_config.current_window_days",
    }
    assert bad_url.status_code == 400 and "webhook.url" in violations(bad_url)


def test_routes_that_do_not_exist(system: System) -> None:
    with system.client() as client:
        assert client.get("/v1/customers/acme/nothing").status_code == 404
        assert client.delete("/v1/customers/acme/driftConfig").status_code == 405


def test_drift_config_update_is_kept_and_conditional_on_etag(system: System) -> None:
    with system.client("gamma", "admin") as client:
        before = client.get("/v1/customers/gamma/driftConfig").json()
        changed = client.patch(
            "/v1/customers/gamma/driftConfig",
            params={"updateMask": "current_window_days"},
            json={"currentWindowDays": 45, "baselineWindowDays": 200},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["currentWindowDays"] == 45
        assert changed.json()["baselineWindowDays"] == 180  # not in the mask: the default
        assert changed.json()["updatedBy"] == "admin@gamma"
        assert client.get("/v1/customers/gamma/driftConfig").json()["currentWindowDays"] == 45
        stale = client.patch(
            "/v1/customers/gamma/driftConfig",
            json={"currentWindowDays": 60, "etag": before["etag"]},
        )
        assert stale.status_code == 409
        assert error_of(stale)["code"] == "ABORTED"


def test_lists_page_through_everything_once(system: System) -> None:
    with system.client("delta", "admin") as client:
        made = {
            client.post(
                "/v1/customers/delta/webhooks",
                json={"url": f"https://hooks.example.com/{i}", "eventTypes": ["TEST"]},
            ).json()["name"]
            for i in range(5)
        }
        seen: list[str] = []
        token = ""
        while True:
            page = client.get(
                "/v1/customers/delta/webhooks", params={"pageSize": 2, "pageToken": token}
            ).json()
            seen += [w["name"] for w in page.get("webhooks", [])]
            assert len(page.get("webhooks", [])) <= 2
            token = page.get("nextPageToken", "")
            if not token:
                break
        assert sorted(seen) == sorted(made)
        foreign = client.get("/v1/customers/delta/uploads", params={"pageToken": "garbage"})
        assert foreign.status_code == 400 and "page_token" in violations(foreign)

"""What the gateway says and logs when handling a request fails unexpectedly."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from google.rpc import code_pb2, status_pb2
from starlette.requests import Request

from gateway import app, problems
from runtime import validation
from runtime.auth import Role, mint_token
from runtime.methods import API_SERVICES
from runtime.settings import Settings
from tests.system import base_env

CUSTOMER = "acme7c2e91"
UPLOAD = "u_5f0e4d2b9a1c"


async def test_an_unexpected_failure_is_a_500_logged_by_its_rpc_not_its_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(_: Any) -> None:
        raise RuntimeError("a fault in the gateway")

    # A failure no request can cause on purpose, injected where every request passes.
    monkeypatch.setattr(validation, "check_request", fail)
    settings = Settings.from_env("gateway", base_env())
    token = mint_token(
        settings, subject=f"admin@{CUSTOMER}", customer=CUSTOMER, role=Role.ADMIN, ttl_seconds=60
    )
    path = f"/v1/customers/{CUSTOMER}/uploads/{UPLOAD}"
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    gateway = app.Gateway(settings, API_SERVICES)
    try:
        with caplog.at_level(logging.ERROR, logger="upstream.gateway"):
            response = await gateway.handle(Request(scope))
    finally:
        await gateway.close()
    assert response.status_code == 500
    assert json.loads(bytes(response.body))["code"] == "INTERNAL"
    (record,) = [r for r in caplog.records if r.name == "upstream.gateway"]
    logged = record.getMessage()
    assert "/upstream.ingest.v1.IngestService/GetUpload" in logged
    assert CUSTOMER not in logged and UPLOAD not in logged


def test_a_cancelled_call_is_problem_details_with_499_not_an_error() -> None:
    cancelled = status_pb2.Status(code=code_pb2.CANCELLED, message="the call was cancelled")

    body = problems.problem(cancelled, "/v1/customers/acme/uploads", "rid-1")

    assert (body["status"], body["title"], body["code"]) == (
        499,
        "Client Closed Request",
        "CANCELLED",
    )

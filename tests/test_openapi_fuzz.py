"""Schemathesis against the real gateway: requests generated from the OpenAPI document the
gateway serves (built from the same protos, here in-process so pytest can collect one test
per operation), sent over HTTP with a customer's admin token. No answer is a 5xx, and every
answer matches the document's schema for its status and content type. Examples per
operation are bounded (and derandomized, so a run is repeatable); writes land in a customer
of their own."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from gateway import openapi, transcoding
from runtime.methods import API_SERVICES
from tests.system import System

EXAMPLES_PER_OPERATION = 6
CUSTOMER = "fuzz" + uuid.uuid4().hex[:8]

schema = schemathesis.openapi.from_dict(openapi.build_spec(transcoding.build_routes(API_SERVICES)))


@pytest.fixture(scope="module")
def token(system: System) -> str:
    return system.token(CUSTOMER, "admin")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_answer_is_a_server_error_or_off_the_document(
    case: Any, system: System, token: str
) -> None:
    # Every path's customer is the test's own: the token's, so calls reach the services.
    if "customer" in (case.path_parameters or {}):
        case.path_parameters["customer"] = CUSTOMER
    case.call_and_validate(
        base_url=system.gateway_url,
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        timeout=30,
    )

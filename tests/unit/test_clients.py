"""Outgoing calls: the deadline is the caller's remaining budget, capped by the default."""

from __future__ import annotations

import json
import time

import grpc

from runtime.clients import _UnaryUnaryPolicy as _CallPolicy
from runtime.clients import service_config
from runtime.interceptors import current_deadline


def _details(timeout: float | None = None) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        "/upstream.drift.v1.DriftService/GetDriftRun", timeout, None, None, None
    )


def test_outgoing_calls_inherit_the_remaining_budget_of_the_incoming_one() -> None:
    policy = _CallPolicy(default_timeout=10.0, authorization=None)
    token = current_deadline.set(time.monotonic() + 2.0)
    try:
        timeout = policy._details(_details()).timeout
    finally:
        current_deadline.reset(token)
    assert timeout is not None and 1.5 < timeout <= 2.0


def test_without_an_incoming_call_the_default_deadline_applies() -> None:
    policy = _CallPolicy(default_timeout=10.0, authorization=None)
    assert policy._details(_details()).timeout == 10.0
    # A longer incoming budget is capped; a caller's explicit timeout is kept.
    token = current_deadline.set(time.monotonic() + 600)
    try:
        assert policy._details(_details()).timeout == 10.0
        assert policy._details(_details(timeout=3.0)).timeout == 3.0
    finally:
        current_deadline.reset(token)
    expired = current_deadline.set(time.monotonic() - 1)
    try:
        assert policy._details(_details()).timeout == 0.0
    finally:
        current_deadline.reset(expired)


def test_service_credentials_are_added_only_when_the_caller_has_none() -> None:
    policy = _CallPolicy(default_timeout=5.0, authorization=lambda: "Bearer service")
    own = policy._details(_details()).metadata
    assert own is not None and own["authorization"] == "Bearer service"
    forwarded = grpc.aio.ClientCallDetails(
        "/x/y", None, grpc.aio.Metadata(("authorization", "Bearer user")), None, None
    )
    metadata = policy._details(forwarded).metadata
    assert metadata is not None and metadata["authorization"] == "Bearer user"


def test_service_config_balances_per_call_and_retries_only_idempotent_methods() -> None:
    config = json.loads(service_config("upstream.drift.v1.DriftService"))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method_config,) = config["methodConfig"]
    retried = {entry["method"] for entry in method_config["name"]}
    assert {"GetDriftRun", "ListDriftEvents", "RunDetection"} <= retried
    assert "UpdateDriftEvent" not in retried and "UpdateDriftConfig" not in retried
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    ingest = json.loads(service_config("upstream.ingest.v1.IngestService"))
    ingest_retried = {e["method"] for e in ingest["methodConfig"][0]["name"]}
    assert "CreateUpload" not in ingest_retried  # a client stream is never replayed

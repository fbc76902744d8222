"""Outgoing calls: the deadline is the caller's remaining budget, capped by the default."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc

from runtime.clients import CallPolicy, Outgoing, service_config
from runtime.interceptors import current_deadline

METHOD = "/upstream.drift.v1.DriftService/GetDriftRun"


def _start(
    policy: CallPolicy,
    timeout: float | None = None,
    metadata: tuple[tuple[str, str], ...] | None = None,
) -> Outgoing:
    outgoing = policy.start(METHOD, metadata, timeout)
    outgoing.finished(grpc.StatusCode.OK)
    return outgoing


def test_outgoing_calls_inherit_the_remaining_budget_of_the_incoming_one() -> None:
    policy = CallPolicy(default_timeout=10.0, authorization=None)
    token = current_deadline.set(time.monotonic() + 2.0)
    try:
        timeout = _start(policy).timeout
    finally:
        current_deadline.reset(token)
    assert timeout is not None and 1.5 < timeout <= 2.0


def test_without_an_incoming_call_the_default_deadline_applies() -> None:
    policy = CallPolicy(default_timeout=10.0, authorization=None)
    assert _start(policy).timeout == 10.0
    # A longer incoming budget is capped; a caller's explicit timeout is kept.
    token = current_deadline.set(time.monotonic() + 600)
    try:
        assert _start(policy).timeout == 10.0
        assert _start(policy, timeout=3.0).timeout == 3.0
    finally:
        current_deadline.reset(token)
    expired = current_deadline.set(time.monotonic() - 1)
    try:
        assert _start(policy).timeout == 0.0
    finally:
        current_deadline.reset(expired)


def test_service_credentials_are_added_only_when_the_caller_has_none() -> None:
    policy = CallPolicy(default_timeout=5.0, authorization=lambda: "Bearer service")
    own = dict(_start(policy).metadata)
    assert own["authorization"] == "Bearer service"
    forwarded = _start(policy, metadata=(("authorization", "Bearer user"),)).metadata
    assert [value for key, value in forwarded if key == "authorization"] == ["Bearer user"]


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


_BEFORE_AND_AFTER_SETUP = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, ALWAYS_ON
from runtime.clients import CallPolicy

policy = CallPolicy(default_timeout=5.0)
unsampled = trace.NonRecordingSpan(trace.SpanContext(
    trace_id=7, span_id=9, is_remote=False, trace_flags=trace.TraceFlags(0)))

def call():
    with trace.use_span(unsampled):
        outgoing = policy.start("/upstream.drift.v1.DriftService/GetDriftRun")
    carried = dict(outgoing.metadata).get("traceparent", "")
    return outgoing.span is trace.INVALID_SPAN, carried

print(call())
trace.set_tracer_provider(TracerProvider(sampler=ParentBased(ALWAYS_ON)))
print(call())
"""


def test_a_policy_used_before_tracing_is_set_up_follows_the_provider_set_up_after() -> None:
    """Under a trace that is not kept, a call makes no span of its own once the process's
    provider drops such children (it would record nothing) and carries the caller's trace
    context instead; a policy first used before that provider was set knows it after."""
    ran = subprocess.run(
        [sys.executable, "-c", _BEFORE_AND_AFTER_SETUP],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    before, after = ran.stdout.splitlines()
    carried = "'00-00000000000000000000000000000007-0000000000000009-00'"
    assert before.startswith("(False, ")  # a span of its own (the proxy provider's)
    assert after == f"(True, {carried})"

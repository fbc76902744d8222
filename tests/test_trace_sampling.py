"""Under a sampler (`OTEL_TRACES_SAMPLER`; here `parentbased_rate_limited`, as the production
overlay runs), a service keeps the traces its sampler chooses, follows the caller's decision
when the call carries one, and says on every log line whether that line's trace was kept, so
a trace id read in the logs is never looked for in vain (drift as its own process,
exporting over OTLP/HTTP to a real receiver)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import grpc

from devtools.stack import wait_until
from tests.conftest import PostgresUnderTest
from tests.system import http_span_sink, service_logging_to, token_for
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc

ROOT_CALLS = 200
PER_SECOND = 10


def test_sampled_traces_are_exported_whole_and_every_log_line_says_whether_its_trace_was(
    postgres: PostgresUnderTest, tmp_path: Path
) -> None:
    customer = "sampled" + uuid.uuid4().hex[:8]
    log_path = tmp_path / "drift.log"
    kept_by_caller, dropped_by_caller = uuid.uuid4().hex, uuid.uuid4().hex
    with (
        http_span_sink() as (sink, endpoint),
        service_logging_to(
            log_path,
            "drift",
            postgres.url("drift"),
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_TRACES_SAMPLER="parentbased_rate_limited",
            OTEL_TRACES_SAMPLER_ARG=str(PER_SECOND),
        ) as (target, _),
    ):
        authorization = ("authorization", f"Bearer {token_for(customer)}")
        request = drift_service_pb2.GetDriftConfigRequest(name=f"customers/{customer}/driftConfig")
        with grpc.insecure_channel(target) as channel:
            stub = drift_service_pb2_grpc.DriftServiceStub(channel)
            began = time.monotonic()
            for _ in range(ROOT_CALLS):
                stub.GetDriftConfig(request, metadata=(authorization,), timeout=10)
            seconds = time.monotonic() - began
            # A caller's decision wins over the sampler's, either way.
            for trace_id, flags in ((dropped_by_caller, "00"), (kept_by_caller, "01")):
                traceparent = f"00-{trace_id}-00f067aa0ba902b7-{flags}"
                stub.GetDriftConfig(
                    request, metadata=(authorization, ("traceparent", traceparent)), timeout=10
                )
        # Spans leave in the order they ended: once the last call's is in, all are.
        wait_until("the last call's span", lambda: sink.trace(kept_by_caller), timeout=15)

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    handled = [
        r for r in records if r.get("message") == "rpc handled" and r.get("customer") == customer
    ]
    exported = {span["trace_id"] for span in sink.spans if span["service"] == "upstream-drift"}

    assert len(handled) == ROOT_CALLS + 2
    # Each line says whether its trace was exported, and it was exactly when it says so.
    assert all((r["trace_id"] in exported) is r["trace_sampled"] for r in handled)
    by_trace = {r["trace_id"]: r["trace_sampled"] for r in handled}
    assert by_trace[kept_by_caller] is True and by_trace[dropped_by_caller] is False
    # The calls that began here: at most a second's worth at once (the health checks before
    # them spent some), then the rate while they lasted.
    roots = sum(r["trace_sampled"] for r in handled) - 1
    assert 1 <= roots <= PER_SECOND * (1 + seconds) + 1, (roots, seconds)
    (started,) = [r for r in records if r.get("message") == "tracing"]
    assert started["exporter"] == "otlp" and f"RateLimited{{{PER_SECOND}/s}}" in started["sampler"]

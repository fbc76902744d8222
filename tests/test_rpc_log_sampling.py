"""With `RPC_LOG_SAMPLE_RATE` below 1, a service writes the "rpc handled" line of only that
share of its quick successful calls, each such line saying the rate, and still logs every
failed call; its metrics count every call (drift as its own process)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import grpc
import httpx

from tests.conftest import PostgresUnderTest
from tests.system import service_logging_to, token_for
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc

CALLS = 300
FAILURES = 5


def test_quick_successful_calls_are_logged_at_the_sampled_rate_and_failures_always(
    postgres: PostgresUnderTest, tmp_path: Path
) -> None:
    customer = "logs" + uuid.uuid4().hex[:8]
    log_path = tmp_path / "drift.log"
    with service_logging_to(
        log_path,
        "drift",
        postgres.url("drift"),
        RPC_LOG_SAMPLE_RATE="0.1",
        RPC_LOG_SLOW_MS="10000",
    ) as (target, metrics_port):
        metadata = (("authorization", f"Bearer {token_for(customer)}"),)
        with grpc.insecure_channel(target) as channel:
            stub = drift_service_pb2_grpc.DriftServiceStub(channel)
            config = drift_service_pb2.GetDriftConfigRequest(
                name=f"customers/{customer}/driftConfig"
            )
            for _ in range(CALLS):
                stub.GetDriftConfig(config, metadata=metadata, timeout=10)
            missing = drift_service_pb2.GetDriftEventRequest(
                name=f"customers/{customer}/driftEvents/ev_none"
            )
            for _ in range(FAILURES):
                try:
                    stub.GetDriftEvent(missing, metadata=metadata, timeout=10)
                except grpc.RpcError as error:
                    assert error.code() is grpc.StatusCode.NOT_FOUND
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text

    handled = [
        record
        for record in map(json.loads, filter(None, log_path.read_text().splitlines()))
        if record.get("message") == "rpc handled" and record.get("customer") == customer
    ]
    quick = [r for r in handled if r["grpc_method"].endswith("/GetDriftConfig")]
    failed = [r for r in handled if r["grpc_method"].endswith("/GetDriftEvent")]
    # 300 calls at 10 %: 30 expected; 5 and 75 are each further out than one in a million.
    assert 5 <= len(quick) <= 75, len(quick)
    assert all(r["log_sample_rate"] == 0.1 and r["grpc_code"] == "OK" for r in quick)
    assert len(failed) == FAILURES
    assert all("log_sample_rate" not in r and r["grpc_code"] == "NOT_FOUND" for r in failed)
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("grpc_server_handled_total{")
        and 'grpc_method="GetDriftConfig"' in line
        and 'grpc_code="OK"' in line
    ]
    assert len(counted) == 1 and float(counted[0].rsplit(" ", 1)[1]) == CALLS, counted

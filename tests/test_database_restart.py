"""PostgreSQL restarts under a running service (an upgrade, a failover): the connections in
the service's pool die with it. A connection idle past `DATABASE_PING_AFTER_IDLE_SECONDS` is
checked before it is handed out, so the calls after a restart succeed; a call that still
meets a closed connection is UNAVAILABLE (retry it), and the one after it succeeds."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from runtime.postgres import LocalPostgres
from tests.system import free_port, running_service, service_on_own_cluster, token_for
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc

CUSTOMER = "restarted"


@pytest.mark.parametrize(("ping_after_idle", "failures"), [(0.5, 0), (3600.0, 1)])
def test_calls_after_postgresql_restarts_under_the_service(
    pg_scratch_folder: Path, ping_after_idle: float, failures: int
) -> None:
    cluster = LocalPostgres(pg_scratch_folder / "data", free_port())
    app_url = service_on_own_cluster(cluster, "drift")
    token = token_for(CUSTOMER)
    request = drift_service_pb2.GetDriftConfigRequest(name=f"customers/{CUSTOMER}/driftConfig")
    metadata = (("authorization", f"Bearer {token}"),)
    refused: list[grpc.StatusCode] = []

    with (
        running_service(
            "drift",
            app_url,
            DATABASE_POOL_SIZE="4",
            DATABASE_PING_AFTER_IDLE_SECONDS=str(ping_after_idle),
        ) as (_, target),
        grpc.insecure_channel(target) as channel,
    ):
        stub = drift_service_pb2_grpc.DriftServiceStub(channel)
        before = [stub.GetDriftConfig(request, metadata=metadata, timeout=10) for _ in range(20)]
        cluster.stop()
        cluster.start()
        time.sleep(1)
        after = []
        for _ in range(20):
            try:
                after.append(stub.GetDriftConfig(request, metadata=metadata, timeout=10))
            except grpc.RpcError as error:
                refused.append(error.code())

    assert refused == [grpc.StatusCode.UNAVAILABLE] * failures
    assert len(after) == 20 - failures
    assert {reply.etag for reply in after} == {before[0].etag}

"""Production turns gRPC reflection off (GRPC_REFLECTION=false): the service then describes
nothing to an anonymous caller, and still answers health checks."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import PostgresUnderTest
from tests.system import running_service


def test_a_service_without_reflection_still_serves_health(postgres: PostgresUnderTest) -> None:
    with (
        running_service("reports", postgres.url("reports", "app"), GRPC_REFLECTION="false") as (
            _,
            target,
        ),
        grpc.insecure_channel(target) as channel,
    ):
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            replies = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            list(replies)
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="upstream.reports.v1.ReportsService"), timeout=5
        )
    error: Any = refused.value
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert health.status == health_pb2.HealthCheckResponse.SERVING

"""PostgreSQL stopped for 10 s under load: the service answers NOT_SERVING (readiness) while
staying alive (liveness), its calls fail as UNAVAILABLE (retry), never as INTERNAL; once the
database is back it serves again without a restart, and every write it acknowledged is
there."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools.stack import wait_until
from runtime.postgres import LocalPostgres
from runtime.server import LIVENESS
from tests.system import free_port, running_service, service_on_own_cluster, token_for
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc, resources_pb2

CUSTOMER = "outage"
OUTAGE_SECONDS = 10
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_a_database_outage_is_not_serving_then_recovers_losing_no_acknowledged_write(
    pg_scratch_folder: Path,
) -> None:
    cluster = LocalPostgres(pg_scratch_folder / "data", free_port())
    app_url = service_on_own_cluster(cluster, "drift")
    token = token_for(CUSTOMER)
    metadata = (("authorization", f"Bearer {token}"),)
    name = f"customers/{CUSTOMER}/driftConfig"
    acknowledged: list[int] = []
    refused: list[grpc.StatusCode] = []
    stopping = threading.Event()

    with (
        running_service("drift", app_url) as (process, target),
        grpc.insecure_channel(target) as channel,
    ):
        drift = drift_service_pb2_grpc.DriftServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        def status(service: str = "") -> int:
            return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

        def write() -> None:
            """Set the current window to 7, 8, … 60, 7, …; each answer is an acknowledgement."""
            days = 7
            while not stopping.is_set():
                change = drift_service_pb2.UpdateDriftConfigRequest(
                    drift_config=resources_pb2.DriftConfig(name=name, current_window_days=days),
                    update_mask=field_mask_pb2.FieldMask(paths=["current_window_days"]),
                )
                try:
                    drift.UpdateDriftConfig(change, metadata=metadata, timeout=5)
                    acknowledged.append(days)
                    days = 7 + (days - 6) % 54
                except grpc.RpcError as error:
                    refused.append(error.code())
                time.sleep(0.05)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        wait_until("writes acknowledged", lambda: len(acknowledged) >= 5)
        cluster.stop()
        stopped_at = time.monotonic()
        wait_until("NOT_SERVING", lambda: status() == NOT_SERVING, timeout=OUTAGE_SECONDS)
        during = (status(), status(LIVENESS), status("upstream.drift.v1.DriftService"))
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        cluster.start()
        wait_until("SERVING again", lambda: status() == SERVING, timeout=30)
        acknowledged_before = len(acknowledged)
        wait_until("writes again", lambda: len(acknowledged) >= acknowledged_before + 5)
        stopping.set()
        writer.join(timeout=10)
        final = drift.GetDriftConfig(
            drift_service_pb2.GetDriftConfigRequest(name=name), metadata=metadata, timeout=5
        )
        alive = process.poll() is None

    assert during == (NOT_SERVING, SERVING, NOT_SERVING)
    assert alive
    assert refused, "no write was made during the outage"
    assert set(refused) == {grpc.StatusCode.UNAVAILABLE}, refused
    assert final.current_window_days == acknowledged[-1]

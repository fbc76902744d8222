"""SIGTERM while a slow call is in flight: health goes NOT_SERVING first, the call completes,
new calls are turned away, and the process exits 0."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devtools.stack import wait_until
from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.server import DRAIN_NOTICE_SECONDS
from runtime.settings import Settings
from tests.conftest import PostgresUnderTest
from tests.system import TEST_JWT_SECRET, running_service
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


def test_sigterm_drains_in_flight_calls_then_exits_zero(postgres: PostgresUnderTest) -> None:
    with running_service("drift", postgres.url("drift", "app"), SHUTDOWN_GRACE_SECONDS="30") as (
        process,
        target,
    ):
        settings = Settings.from_env("tests", {"JWT_SECRET": TEST_JWT_SECRET})
        token = mint_token(
            settings, subject="slow@acme", customer="acme", role=Role.VIEWER, ttl_seconds=300
        )
        channel = grpc.insecure_channel(target)
        statuses: list[tuple[float, int]] = []

        def watch() -> None:
            try:
                for reply in health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest()
                ):
                    statuses.append((time.monotonic(), reply.status))
            except grpc.RpcError:
                pass  # the server closes the stream as it stops

        threading.Thread(target=watch, daemon=True).start()
        wait_until("health SERVING", lambda: bool(statuses) and statuses[-1][1] == SERVING)

        admin = psycopg.connect(schemas.libpq_url(postgres.admin_url))
        # Hold the config table so the call below waits in the database: a real slow call.
        admin.execute("LOCK TABLE drift.drift_configs IN ACCESS EXCLUSIVE MODE")
        stub = drift_service_pb2_grpc.DriftServiceStub(channel)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(
                stub.GetDriftConfig,
                drift_service_pb2.GetDriftConfigRequest(name="customers/acme/driftConfig"),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=60,
            )

            def waiting_in_database() -> bool:
                with psycopg.connect(schemas.libpq_url(postgres.admin_url)) as probe:
                    row = probe.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = 'upstream-drift' AND wait_event_type = 'Lock'"
                    ).fetchone()
                return bool(row and row[0])

            wait_until("the call waiting on the lock", waiting_in_database)
            process.send_signal(signal.SIGTERM)
            wait_until("health NOT_SERVING", lambda: statuses[-1][1] == NOT_SERVING)
            not_serving_at = statuses[-1][0]
            assert not slow.done(), "the slow call must still be in flight"

            # New calls are refused while the old one drains, once clients have had the
            # notice (DRAIN_NOTICE_SECONDS) to move their calls elsewhere.
            refused: list[grpc.StatusCode] = []

            def refuses_new_calls() -> bool:
                with grpc.insecure_channel(target) as fresh:
                    try:
                        health_pb2_grpc.HealthStub(fresh).Check(
                            health_pb2.HealthCheckRequest(), timeout=2
                        )
                    except grpc.RpcError as error:
                        refused.append(error.code())
                        return True
                return False

            wait_until("new calls refused", refuses_new_calls, timeout=DRAIN_NOTICE_SECONDS + 5)
            assert not slow.done(), "the slow call must still be in flight"

            admin.rollback()  # release the lock: the in-flight call can finish
            reply = slow.result(timeout=30)
            finished_at = time.monotonic()
        assert reply.name == "customers/acme/driftConfig"
        assert not_serving_at < finished_at
        assert refused == [grpc.StatusCode.UNAVAILABLE]
        assert process.wait(timeout=30) == 0
        admin.close()
        channel.close()

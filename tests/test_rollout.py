"""A rolling restart rehearsed with real processes: two replicas each of ingest and drift (on a
database of their own) behind the gateway's round-robin channels, under constant REST and
gRPC load; each replica in turn gets SIGTERM, drains, exits 0 and starts again, and not one
call fails."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import grpc
import httpx
import pytest

from devtools.stack import Stack, http_ok, wait_until
from runtime.clients import CHANNEL_OPTIONS, RECONNECT_WITHIN_MS, service_config
from tests.conftest import PostgresUnderTest, own_database
from tests.system import UNLIMITED, Load, base_env, free_port, token_for
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc

CUSTOMER = "rolling"
REPLICAS = ("ingest", "drift")
HANDLED = re.compile(
    r'^grpc_server_handled_total\{[^}]*grpc_service="upstream\.[^"]*"[^}]*\} (\S+)$'
)


@dataclass
class Replica:
    service: str
    database_url: str
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, stack: Stack) -> None:
        self.process = stack.start_service(
            self.service, self.database_url, self.target, self.metrics_port
        )

    def stop(self, stack: Stack) -> int:
        """SIGTERM, and the exit code once it has drained; the stack forgets the process."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        stack.processes = [(n, p) for n, p in stack.processes if p is not self.process]
        return code

    def served(self) -> float:
        """API calls this process has answered (its Prometheus counter)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        return sum(float(m[1]) for line in text.splitlines() if (m := HANDLED.match(line)))


@pytest.fixture
def cluster(postgres: PostgresUnderTest) -> Iterator[tuple[Stack, dict[str, list[Replica]], str]]:
    with own_database(postgres) as database:
        replicas = {
            service: [Replica(service, database.url(service, "app")) for _ in range(2)]
            for service in REPLICAS
        }
        reports = Replica("reports", database.url("reports", "app"))
        gateway_port = free_port()
        env = base_env(
            INGEST_TARGET="ipv4:" + ",".join(r.target for r in replicas["ingest"]),
            DRIFT_TARGET="ipv4:" + ",".join(r.target for r in replicas["drift"]),
            REPORTS_TARGET=reports.target,
            GATEWAY_PORT=str(gateway_port),
            SHUTDOWN_GRACE_SECONDS="10",
            **UNLIMITED,
        )
        stack = Stack(env)
        try:
            for replica in [*replicas["ingest"], *replicas["drift"], reports]:
                replica.start(stack)
            for replica in [*replicas["ingest"], *replicas["drift"], reports]:
                stack.wait_serving(replica.service, replica.target)
            stack.start("gateway", "gateway", {})
            url = f"http://127.0.0.1:{gateway_port}"
            wait_until("the gateway", lambda: http_ok(f"{url}/readyz"), stack)
            yield stack, replicas, url
        finally:
            stack.stop()


def serves(replica: Replica) -> bool:
    return replica.served() >= 5


def test_each_replica_restarted_in_turn_under_load_fails_no_call(
    cluster: tuple[Stack, dict[str, list[Replica]], str],
) -> None:
    stack, replicas, url = cluster
    token = token_for(CUSTOMER)
    headers = {"Authorization": f"Bearer {token}"}
    drift_targets = "ipv4:" + ",".join(r.target for r in replicas["drift"])
    options = [
        *CHANNEL_OPTIONS,
        ("grpc.service_config", service_config("upstream.drift.v1.DriftService")),
    ]
    load = Load()
    restarted: list[tuple[str, int]] = []

    with (
        httpx.Client(base_url=url, headers=headers, timeout=30) as rest,
        grpc.insecure_channel(drift_targets, options=options) as channel,
    ):
        drift = drift_service_pb2_grpc.DriftServiceStub(channel)
        config = drift_service_pb2.GetDriftConfigRequest(name=f"customers/{CUSTOMER}/driftConfig")
        metadata = (("authorization", f"Bearer {token}"),)

        def rest_get(path: str) -> Callable[[], None]:
            def call() -> None:
                answer = rest.get(f"/v1/customers/{CUSTOMER}/{path}")
                if answer.status_code != 200:
                    raise AssertionError(f"{path}: {answer.status_code} {answer.text[:200]}")

            return call

        threads = [
            load.run("REST driftConfig", rest_get("driftConfig")),
            load.run("REST uploads", rest_get("uploads")),
            load.run("REST driftEvents", rest_get("driftEvents")),
            load.run(
                "gRPC GetDriftConfig",
                lambda: drift.GetDriftConfig(config, metadata=metadata, timeout=10) and None,
            ),
        ]
        every = [*replicas["ingest"], *replicas["drift"]]
        # Each replica takes its share before any is restarted (round_robin, per call).
        for replica in every:
            wait_until(f"{replica.target} serving calls", partial(serves, replica), stack)
        for replica in every:
            code = replica.stop(stack)
            replica.start(stack)
            stack.wait_serving(replica.service, replica.target)
            # Back in rotation: the gateway's channel sends it calls again, and every client
            # has reconnected (they retry a lost replica at least every RECONNECT_WITHIN_MS).
            wait_until(f"{replica.target} serving calls", partial(serves, replica), stack)
            time.sleep(2 * RECONNECT_WITHIN_MS / 1000)
            restarted.append((replica.target, code))
        load.stopping.set()
        for thread in threads:
            thread.join(timeout=30)

    assert [code for _, code in restarted] == [0, 0, 0, 0], restarted
    assert load.failures == [], load.failures[:10]
    assert load.calls > 200

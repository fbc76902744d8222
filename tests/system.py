"""The whole system as real processes for tests: three services and the gateway, on free
ports, against the test PostgreSQL, exporting spans to an in-test OTLP receiver."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from devtools.stack import Stack, grpc_serving, http_ok, wait_until
from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.postgres import LocalPostgres
from runtime.settings import REPO_ROOT, Settings

SERVICES = ("ingest", "drift", "reports")
TEST_JWT_SECRET = "test-secret-with-enough-entropy-for-hs256"
TEST_PAGE_TOKEN_KEY = "test-page-token-key-with-enough-entropy"
# Webhook receivers of tests listen on 127.0.0.1, and no test delivery leaves the machine:
# hooks.example.com (the URL of tests that never receive) resolves to loopback, and the
# `.test` names to addresses no delivery may reach, all without asking DNS. Retries come
# within seconds, not hours.
WEBHOOK_HOST_OVERRIDES = (
    "hooks.example.com=127.0.0.1,loopback.test=127.0.0.1,private.test=10.1.2.3,"
    "metadata.test=169.254.169.254,metadata6.test=fd00:ec2::254"
)
WEBHOOK_TEST_SETTINGS = {
    "WEBHOOK_ALLOW_LOOPBACK": "true",
    "WEBHOOK_HOST_OVERRIDES": WEBHOOK_HOST_OVERRIDES,
    "WEBHOOK_RETRY_DELAYS_SECONDS": "0.2,0.4,0.6,0.8,1,1,1",
    "WEBHOOK_ATTEMPT_TIMEOUT_SECONDS": "3",
}


# Settings for constant load from one client: no rate limit it could reach.
UNLIMITED = {
    "RATE_LIMIT_TENANT_PER_SECOND": "100000",
    "RATE_LIMIT_TENANT_BURST": "100000",
    "RATE_LIMIT_CLIENT_PER_SECOND": "100000",
    "RATE_LIMIT_CLIENT_BURST": "100000",
}
# Between one load thread's calls: steady load that leaves the two cores to the processes.
LOAD_PAUSE_SECONDS = 0.01


@dataclass
class Load:
    """Calls made over and over from threads until stopped; every failure kept."""

    calls: int = 0
    failures: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def run(self, name: str, call: Callable[[], None]) -> threading.Thread:
        def loop() -> None:
            while not self.stopping.is_set():
                try:
                    call()
                except Exception as error:  # every failure is the finding
                    with self.lock:
                        self.failures.append(f"{name}: {error!r}")
                with self.lock:
                    self.calls += 1
                time.sleep(LOAD_PAUSE_SECONDS)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


_handed_out: set[int] = set()


def _listening_ports() -> range:
    """Ports below the machine's ephemeral range: the kernel gives an outgoing connection
    its local port from that range, so a port handed out from it could be taken by any
    client between the handing out and the bind of the process it is for."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    return range(max(1024, first - 12_000), first)


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on, from below the ephemeral range, never handed
    out twice in this test session."""
    ports = _listening_ports()
    for _ in range(1000):
        port = random.choice(ports)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port of 127.0.0.1 in {ports.start}–{ports.stop - 1}")


@dataclass
class SpanSink(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP trace receiver that keeps every span it is sent: over gRPC (`span_sink`)
    or HTTP (`http_span_sink`)."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def Export(self, request: Any, context: Any) -> Any:
        self.keep(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def keep(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            {
                                "service": service,
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "kind": span.kind,
                                # 0 unset, 1 ok, 2 error (OTLP's StatusCode).
                                "status": span.status.code,
                                "attributes": {a.key: a.value for a in span.attributes},
                                "links": [
                                    (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                                ],
                            }
                        )

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


@contextmanager
def span_sink() -> Iterator[tuple[SpanSink, str]]:
    sink = SpanSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield sink, f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)


@contextmanager
def http_span_sink() -> Iterator[tuple[SpanSink, str]]:
    """An OTLP/HTTP receiver (`POST /v1/traces`, protobuf) on 127.0.0.1; its base URL."""
    sink = SpanSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            sink.keep(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving_http(Handler) as url:
        yield sink, url


@contextmanager
def serving_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on a free port of 127.0.0.1 in a thread; the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class System:
    """A running Upstream: where to reach it and how to get tokens for it."""

    gateway_url: str
    targets: dict[str, str]
    metrics_ports: dict[str, int]
    env: dict[str, str]
    stack: Stack
    spans: SpanSink
    settings: Settings

    def token(self, customer: str = "acme", role: str = "admin", ttl: int = 600) -> str:
        return mint_token(
            self.settings,
            subject=f"{role}@{customer}",
            customer=customer,
            role=Role(role),
            ttl_seconds=ttl,
        )

    def client(self, customer: str = "acme", role: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway_url,
            headers={"Authorization": f"Bearer {self.token(customer, role)}"},
            timeout=30,
        )


def base_env(**settings: str) -> dict[str, str]:
    """What every process under test starts from: this process's environment without its
    database or telemetry settings, the test JWT secret and page token key, and `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DATABASE_URL"))}
    env.update(JWT_SECRET=TEST_JWT_SECRET, PAGE_TOKEN_KEYS=TEST_PAGE_TOKEN_KEY)
    env.update(SHUTDOWN_GRACE_SECONDS="10", LOG_LEVEL="INFO")
    env.update(settings)
    return env


@contextmanager
def running_service(
    service: str,
    database_url: str,
    *,
    port: int | None = None,
    metrics_port: int | None = None,
    **extra_env: str,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """One service as its own process, on `port` or a free one (for tests that stop or kill
    it), its metrics on `metrics_port` or a free one; `extra_env` overrides its settings."""
    target = f"127.0.0.1:{port or free_port()}"
    stack = Stack(base_env(**extra_env))
    try:
        process = stack.start_service(service, database_url, target, metrics_port or free_port())
        stack.wait_serving(service, target)
        yield process, target
    finally:
        stack.stop()


@contextmanager
def service_logging_to(
    log_path: Path, service: str, database_url: str, **settings: str
) -> Iterator[tuple[str, int]]:
    """`service` as its own process, every line it writes (its JSON log) into `log_path`,
    `settings` added to its environment; its gRPC target and its metrics port, once serving."""
    port, metrics_port = free_port(), free_port()
    env = base_env(
        DATABASE_URL=database_url, GRPC_PORT=str(port), METRICS_PORT=str(metrics_port), **settings
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            target = f"127.0.0.1:{port}"
            wait_until(service, lambda: grpc_serving(target))
            yield target, metrics_port
        finally:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def running_system(
    database_urls: dict[str, str], output: IO[bytes] | None = None, /, **settings: str
) -> Iterator[System]:
    """Start the services (each with its own app-role URL) and the gateway, `settings` added
    to their environment, their logs to `output` if given; stop them after."""
    with span_sink() as (sink, endpoint):
        targets = {service: f"127.0.0.1:{free_port()}" for service in SERVICES}
        # `settings` may override any of these (a load run turns tracing off, say).
        env = base_env(
            **{
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                # Small batches, so uploads of a few rows already take the streaming merge's path.
                "UPLOAD_MERGE_ROWS": "7",
                **WEBHOOK_TEST_SETTINGS,
                "GATEWAY_PORT": str(free_port()),
                **{f"{service.upper()}_TARGET": target for service, target in targets.items()},
                **settings,
            }
        )
        metrics_ports = {service: free_port() for service in SERVICES}
        stack = Stack(env, output=output)
        try:
            for service in SERVICES:
                stack.start_service(
                    service, database_urls[service], targets[service], metrics_ports[service]
                )
            stack.start("gateway", "gateway", {})
            for service in SERVICES:
                stack.wait_serving(service, targets[service])
            gateway_url = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
            wait_until("gateway", lambda: http_ok(f"{gateway_url}/readyz"), stack)
            yield System(
                gateway_url,
                targets,
                metrics_ports,
                env,
                stack,
                sink,
                Settings.from_env("tests", env),
            )
        finally:
            stack.stop()


@contextmanager
def extra_gateway(system: System, port: int | None = None, **settings: str) -> Iterator[str]:
    """A second gateway process on `system`'s services, with `settings` added to its
    environment; its URL. Stopped afterwards."""
    port = port or free_port()
    stack = Stack({**system.env, "GATEWAY_PORT": str(port), **settings})
    try:
        stack.start("gateway", "gateway", {})
        url = f"http://127.0.0.1:{port}"
        wait_until("a second gateway", lambda: http_ok(f"{url}/readyz"), stack)
        yield url
    finally:
        stack.stop()


def metric_value(port: int, name: str, **labels: str) -> float:
    """The sum of the samples of `name` with `labels` on the Prometheus endpoint at `port`."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def service_on_own_cluster(cluster: LocalPostgres, service: str) -> str:
    """`service`'s roles and schema on `cluster` (started here), migrated to head; the URL of
    its app role. For tests that stop or restart PostgreSQL under a running service."""
    cluster.start()
    admin_url = cluster.admin_url()
    passwords = schemas.local_passwords((service,))
    schemas.bootstrap(admin_url, passwords, (service,))
    owner, app = schemas.role_name(service, "owner"), schemas.role_name(service, "app")
    schemas.migrate(service, schemas.service_url(admin_url, service, "owner", passwords[owner]))
    return schemas.service_url(admin_url, service, "app", passwords[app])


def token_for(customer: str, role: Role = Role.ADMIN, ttl: int = 900) -> str:
    """A token the services under test accept (signed with TEST_JWT_SECRET)."""
    settings = Settings.from_env("tests", {"JWT_SECRET": TEST_JWT_SECRET})
    return mint_token(
        settings, subject=f"{role}@{customer}", customer=customer, role=role, ttl_seconds=ttl
    )

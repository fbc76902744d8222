"""`make run`: the whole system on one machine.

Starts the local PostgreSQL (or uses `DATABASE_URL`), creates roles and migrates, starts
ingest, drift, reports and the gateway as separate processes, waits until all are healthy,
prints where they are, and on Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.postgres import DEFAULT_DATA_DIR, DEFAULT_PORT, LocalPostgres
from runtime.settings import DEFAULT_GRPC_PORTS, DEFAULT_METRICS_PORTS, REPO_ROOT, Settings
from runtime.telemetry import setup_logging

READY_TIMEOUT_SECONDS = 60.0


class NotReadyError(Exception):
    """A process exited while it was awaited, or what was awaited did not happen in time."""


@dataclass
class Stack:
    """The processes of a running system, started in order and stopped in reverse."""

    env: dict[str, str]
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    # Where the processes write their logs (both streams); None: this process's own.
    output: IO[bytes] | None = None
    # How each process was started: its module and the environment added for it.
    launches: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    def start(
        self, name: str, module: str, extra_env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        process = self._launch(module, extra_env)
        self.processes.append((name, process))
        self.launches[name] = (module, dict(extra_env))
        return process

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Stop the process `name` (SIGTERM, its drain awaited) and start it again as it was
        started, in its place; the new process (the caller waits until it serves)."""
        at, old = next((i, p) for i, (n, p) in enumerate(self.processes) if n == name)
        if old.poll() is None:
            old.send_signal(signal.SIGTERM)
        wait_or_kill(old, 30)
        module, extra_env = self.launches[name]
        process = self._launch(module, extra_env)
        self.processes[at] = (name, process)
        return process

    def _launch(self, module: str, extra_env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO_ROOT,
            env={**self.env, **extra_env},
            stdout=self.output,
            stderr=None if self.output is None else subprocess.STDOUT,
        )

    def start_service(
        self, service: str, database_url: str, target: str, metrics_port: int
    ) -> subprocess.Popen[bytes]:
        """`services.<service>` serving gRPC on `target`'s port, logged in with
        `database_url`."""
        return self.start(
            service,
            f"services.{service}",
            {
                "DATABASE_URL": database_url,
                "GRPC_PORT": target.rsplit(":", 1)[1],
                "METRICS_PORT": str(metrics_port),
            },
        )

    def wait_serving(self, service: str, target: str) -> None:
        """Until `service` answers SERVING on `target`, while every process is alive."""
        wait_until(service, lambda: grpc_serving(target), self)

    def stop(self) -> int:
        """SIGTERM each process (gateway first) and wait for its drain; the worst exit code."""
        worst = 0
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in reversed(self.processes):
            code = wait_or_kill(process, 30)
            if code not in (0, -signal.SIGTERM):
                print(f"{name} exited with {code}", file=sys.stderr)
                worst = worst or 1
        return worst

    def dead(self) -> list[str]:
        return [name for name, process in self.processes if process.poll() is not None]


def wait_or_kill(process: subprocess.Popen[bytes], timeout: float) -> int:
    """The process's exit code once it ends; killed if it is still running after `timeout`
    seconds."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def wait_until(
    what: str,
    ready: Callable[[], bool],
    stack: Stack | None = None,
    timeout: float = READY_TIMEOUT_SECONDS,
) -> None:
    """Poll `ready` until it holds; NotReadyError after `timeout` seconds, or as soon as a
    process of `stack` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack is not None and (dead := stack.dead()):
            raise NotReadyError(f"{', '.join(dead)} exited while waiting for {what}")
        if ready():
            return
        time.sleep(0.2)
    raise NotReadyError(f"{what} not ready after {timeout:g} s")


def grpc_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _load_demo(base: str, settings: Settings) -> str:
    """Upload the demo files (once: re-running finds the same uploads)."""
    from devtools import demo

    print("loading demo data…", flush=True)
    webhook = demo.subscribe(base, settings)
    demo.alert_by_email(base, settings)
    lines = [
        f"  {u['name']}  {u['fileName']}: {u['rowsAccepted']} claims"
        for u in demo.load(base, settings)
    ]
    report = demo.scorecard(base, settings)
    return (
        "Demo data (tokens for customers acme and globex see it):\n"
        + "\n".join(lines)
        + f"\n  {webhook} sends acme's drift events to {demo.WEBHOOK_URL}"
        + f" and emails {demo.ALERT_RECIPIENT} through SMTP 127.0.0.1:1025"
        + " (`make receivers` in another terminal shows both)"
        + f"\n  {report}: acme's payer scorecard (PDF); download it with\n"
        + f"    curl -OJ -H \"Authorization: Bearer $TOKEN\" '{base}/v1/{report}:download'\n"
    )


def _webhook_note(env: Mapping[str, str]) -> str:
    if Settings.from_env("reports", env).webhook_allow_loopback:
        return (
            "  webhooks  may go to receivers on loopback (http://127.0.0.1:PORT/...): a local\n"
            "            development setting (WEBHOOK_ALLOW_LOOPBACK); production refuses them\n"
        )
    return ""


def _first_call(settings: Settings, base: str) -> str:
    """A call to paste. Its token is shown only on a terminal: output that goes to a file or a
    log collector (the services' logs share it) must hold no credential."""
    url = f"{base}/v1/customers/acme/driftEvents?filter=active%3Dtrue"
    if not sys.stdout.isatty():
        return (
            "Try it (`make token` prints a token; this output is not a terminal, so none here):\n"
            "  TOKEN=$(make -s token CUSTOMER=acme ROLE=admin | tail -1)\n"
            f"  curl -H \"Authorization: Bearer $TOKEN\" '{url}'\n"
            "  (the dashboard's sign-in takes the same token; ROLE=viewer for a read-only one)"
        )
    token = mint_token(
        settings, subject="admin@acme", customer="acme", role=Role.ADMIN, ttl_seconds=12 * 3600
    )
    return (
        "Try it (an admin token for customer acme, valid 12 h; `make token` makes more;\n"
        "the dashboard's sign-in takes it too):\n"
        f"  curl -H 'Authorization: Bearer {token}' '{url}'"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep-database", action="store_true", help="leave PostgreSQL running")
    parser.add_argument("--no-demo", action="store_true", help="do not load the demo data")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    settings = Settings.from_env("gateway", env)
    # Migrations log (and may fail) in this process: as JSON, scrubbed, like the services.
    setup_logging("stack", settings.log_level)

    cluster: LocalPostgres | None = None
    if "DATABASE_URL" in os.environ:
        admin_url = os.environ["DATABASE_URL"]
    else:
        cluster = LocalPostgres(
            DEFAULT_DATA_DIR, int(os.environ.get("UPSTREAM_PG_PORT", DEFAULT_PORT))
        )
        cluster.start()
        admin_url = cluster.admin_url()
    passwords = schemas.local_passwords()
    schemas.bootstrap(admin_url, passwords)
    for service in schemas.SERVICES:
        owner = schemas.role_name(service, "owner")
        schemas.migrate(service, schemas.service_url(admin_url, service, "owner", passwords[owner]))

    for service in schemas.SERVICES:
        env.setdefault(f"{service.upper()}_TARGET", f"127.0.0.1:{DEFAULT_GRPC_PORTS[service]}")
    # Local receivers (http://127.0.0.1:PORT/...) may take webhooks; production refuses them.
    env.setdefault("WEBHOOK_ALLOW_LOOPBACK", "true")
    # Alert emails go to `make receivers`' catcher; links in them to this gateway.
    env.setdefault("SMTP_HOST", "127.0.0.1")
    env.setdefault("SMTP_PORT", "1025")
    env.setdefault("PUBLIC_BASE_URL", f"http://{settings.host}:{settings.gateway_port}")
    stack = Stack(env)
    # Ctrl-C and SIGTERM both stop the stack, also when started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for service in schemas.SERVICES:
            app = schemas.role_name(service, "app")
            stack.start_service(
                service,
                schemas.service_url(admin_url, service, "app", passwords[app]),
                env[f"{service.upper()}_TARGET"],
                int(env.get(f"{service.upper()}_METRICS_PORT", DEFAULT_METRICS_PORTS[service])),
            )
        stack.start("gateway", "gateway", {})
        for service in schemas.SERVICES:
            stack.wait_serving(service, env[f"{service.upper()}_TARGET"])
        base = f"http://{settings.host}:{settings.gateway_port}"
        wait_until("gateway", lambda: http_ok(f"{base}/readyz"), stack)
        demo = "" if args.no_demo else _load_demo(base, settings)
        print(
            f"""
Upstream is running.
  dashboard {base}/   (sign in with a token from `make token`, below)
  gateway   {base}   (healthz, readyz, metrics; REST under /v1)
  API docs  {base}/docs   (OpenAPI 3.1 at {base}/openapi.json)
  ingest    grpc://{env["INGEST_TARGET"]}
  drift     grpc://{env["DRIFT_TARGET"]}
  reports   grpc://{env["REPORTS_TARGET"]}
{_webhook_note(env)}
{_first_call(settings, base)}

{demo}
Ctrl-C stops everything.""",
            flush=True,
        )
        while not stack.dead():
            time.sleep(0.5)
        print(f"{', '.join(stack.dead())} exited; stopping the rest", file=sys.stderr)
        return 1
    except NotReadyError as error:
        print(f"{error}; see the log above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    finally:
        code = stack.stop()
        if cluster is not None and not args.keep_database:
            cluster.stop()
        if code:
            print("a process did not stop cleanly", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

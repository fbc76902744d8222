"""`make bench`: what the REST gateway adds to a gRPC call, against a bare pass-through.

On a throwaway PostgreSQL, the three services and a gateway run as real processes (every
middleware on: tracing, request ids, problem details, conditional requests, compression,
security headers; rate limits on with limits no client reaches). In the same run:

- `GetDriftConfig` called 2,000 times one after another: straight to drift over gRPC (one
  channel), through the gateway (one keep-alive HTTP connection), and through the bare
  pass-through of `bench.passthrough` (Starlette + grpc.aio, nothing else): p50 and p99 of
  each, the gateway's overhead over direct gRPC;
- throughput: 32 keep-alive connections calling as fast as they can for 10 s, through the
  gateway and through the pass-through (requests a second).

The figures are printed beside the targets; nothing is asserted, and the exit status is 0
unless something broke.

    python -m bench.gateway_bench [--calls 2000] [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import httpx
import numpy as np

from bench.export_bench import migrate
from bench.ingest_bench import log, throwaway_cluster, verdict
from devtools.stack import http_ok, wait_until
from runtime import schemas
from tests.system import System, extra_gateway, free_port, running_system
from upstream.drift.v1 import drift_service_pb2, drift_service_pb2_grpc

CUSTOMER = "bench"
# The targets: overhead over direct gRPC at p50 and p99, the direct call itself, and the
# gateway's throughput against the bare pass-through.
OVERHEAD_P50_MS = 0.5
OVERHEAD_P99_MS = 1.0
DIRECT_P50_MS = 1.5
THROUGHPUT_RATIO = 0.8
NO_LIMIT = {
    "RATE_LIMIT_TENANT_PER_SECOND": "1000000",
    "RATE_LIMIT_TENANT_BURST": "1000000",
    "RATE_LIMIT_CLIENT_PER_SECOND": "1000000",
    "RATE_LIMIT_CLIENT_BURST": "1000000",
    "LOG_LEVEL": "WARNING",
}


@dataclass(frozen=True)
class Latencies:
    name: str
    seconds: list[float]

    def quantile(self, share: float) -> float:
        return float(np.quantile(np.array(self.seconds), share)) * 1000


def sequential(name: str, call: Callable[[], object], calls: int) -> Latencies:
    for _ in range(min(200, calls)):  # warm: connections, caches
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return Latencies(name, times)


async def throughput(url: str, token: str, seconds: float, connections: int) -> float:
    """Requests a second `connections` keep-alive clients get through `url`. A connection
    the server closed under a request is opened again, as a client retries an idempotent
    GET; such retries are printed."""
    done = retried = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, limits=limits
    ) as client:

        async def worker() -> None:
            nonlocal done
            nonlocal retried
            while time.monotonic() < deadline:
                try:
                    response = await client.get(url)
                except httpx.TransportError:
                    retried += 1
                    continue
                response.raise_for_status()
                done += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    if retried:
        log(f"  {url}: {retried} requests retried on a closed connection")
    return done / seconds


@contextmanager
def passthrough(drift_target: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.passthrough:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env={**os.environ, "DRIFT_TARGET": drift_target},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until("the pass-through", lambda: http_ok(f"{url}/healthz"))
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(system: System, calls: int, seconds: float, connections: int) -> None:
    token = system.token(CUSTOMER, "admin")
    path = f"/v1/customers/{CUSTOMER}/driftConfig"
    with (
        extra_gateway(system, None, **NO_LIMIT) as gateway,
        passthrough(system.targets["drift"]) as bare,
        grpc.insecure_channel(system.targets["drift"]) as channel,
        httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client,
    ):
        stub = drift_service_pb2_grpc.DriftServiceStub(channel)
        request = drift_service_pb2.GetDriftConfigRequest(name=f"customers/{CUSTOMER}/driftConfig")
        metadata = (("authorization", f"Bearer {token}"),)
        log(f"{calls:,} sequential GetDriftConfig calls each way …")
        direct = sequential(
            "direct gRPC",
            lambda: stub.GetDriftConfig(request, metadata=metadata, timeout=10),
            calls,
        )
        through = sequential(
            "through the gateway", lambda: client.get(gateway + path).raise_for_status(), calls
        )
        plain = sequential(
            "bare pass-through", lambda: client.get(bare + path).raise_for_status(), calls
        )
        log(f"throughput, {connections} connections × {seconds:g} s each …")
        gateway_rate = asyncio.run(throughput(gateway + path, token, seconds, connections))
        bare_rate = asyncio.run(throughput(bare + path, token, seconds, connections))

    log("\n                         p50 ms   p99 ms")
    for row in (direct, through, plain):
        log(f"  {row.name:22s} {row.quantile(0.5):7.2f}  {row.quantile(0.99):7.2f}")
    over50 = through.quantile(0.5) - direct.quantile(0.5)
    over99 = through.quantile(0.99) - direct.quantile(0.99)
    bare50 = plain.quantile(0.5) - direct.quantile(0.5)
    log(
        f"\ngateway overhead over direct gRPC: p50 {over50:+.2f} ms (target ≤ {OVERHEAD_P50_MS}: "
        f"{verdict(over50 <= OVERHEAD_P50_MS)}), p99 {over99:+.2f} ms (target ≤ "
        f"{OVERHEAD_P99_MS}: {verdict(over99 <= OVERHEAD_P99_MS)}); the bare pass-through adds "
        f"{bare50:+.2f} ms at p50\n"
        f"direct gRPC p50 {direct.quantile(0.5):.2f} ms (target ≤ {DIRECT_P50_MS}: "
        f"{verdict(direct.quantile(0.5) <= DIRECT_P50_MS)})\n"
        f"throughput: gateway {gateway_rate:,.0f}/s, bare pass-through {bare_rate:,.0f}/s: "
        f"{gateway_rate / bare_rate:.2f}× (target ≥ {THROUGHPUT_RATIO}: "
        f"{verdict(gateway_rate / bare_rate >= THROUGHPUT_RATIO)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_bench", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with throwaway_cluster(keep=False) as admin_url:
        urls = migrate(admin_url, schemas.SERVICES)
        with running_system(urls) as system:
            measure(system, args.calls, args.seconds, args.connections)
    log(f"(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

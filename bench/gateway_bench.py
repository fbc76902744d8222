"""`make bench`: what the REST gateway adds to a gRPC call, against a bare pass-through.

On a throwaway PostgreSQL, the three services and a gateway run as real processes (every
middleware on: tracing, request ids, problem details, conditional requests, compression,
security headers; rate limits on with limits no client reaches), tracing to a real OTLP
receiver and sampled as the production overlay samples (`parentbased_rate_limited`, 100 new
traces a second a process). In the same run:

- `GetDriftConfig` called one after another for 10 s each: straight to drift over gRPC (one
  channel), through the gateway and through the bare pass-through of `bench.passthrough`
  (Starlette + grpc.aio, nothing else), each over one keep-alive HTTP connection: p50 and
  p99 of each, the gateway's overhead over direct gRPC. Each is timed as long as the others,
  so each p99 has had the same chance to meet the machine's other work (a checkpoint, an
  export of spans, another process's turn on a core);
- throughput: 32 keep-alive connections calling as fast as they can for 10 s, through the
  gateway and through the pass-through (requests a second); and through a second gateway
  that traces every request, for what tracing them all costs.

HTTP is measured with `wrk` (`bench.wrk`), a C client as gRPC's is: a Python HTTP client
(httpx) adds about 0.6 ms of its own to every call and tops out near 450 calls a second on
these two cores, so its figures would be the client's. Without `wrk` installed, httpx is used
and the run says so.

The figures are printed beside the targets; nothing is asserted, and the exit status is 0
unless something broke.

    python -m bench.gateway_bench [--seconds 10] [--connections 32]
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

from bench import wrk
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
# Tracing as the production overlay samples it (k8s/overlays/prod): every trace up to 100 a
# second a process, then 100 a second. The run also gives the throughput with every request
# traced, for comparison.
PRODUCTION_SAMPLING = {
    "OTEL_TRACES_SAMPLER": "parentbased_rate_limited",
    "OTEL_TRACES_SAMPLER_ARG": "100",
}
EVERY_TRACE = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
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
    p50_ms: float
    p99_ms: float


def sequential(name: str, call: Callable[[], object], seconds: float) -> Latencies:
    """`call` made one after another for `seconds`, after a second of warming up."""
    times = []
    for warming, duration in ((True, 1.0), (False, seconds)):
        deadline = time.perf_counter() + duration
        while (started := time.perf_counter()) < deadline:
            call()
            if not warming:
                times.append(time.perf_counter() - started)
    p50, p99 = np.quantile(np.array(times), [0.5, 0.99]) * 1000
    return Latencies(name, float(p50), float(p99))


def by_wrk(url: str, token: str, seconds: float, connections: int) -> wrk.Load:
    """`wrk.under_wrk`, every answer a 2xx (a refusal is no measure of the gateway)."""
    load = wrk.under_wrk(url, token, seconds, connections)
    if load.errors:
        raise RuntimeError(f"{url}: {load.errors} answers under wrk were not 2xx")
    return load


def one_after_another(name: str, url: str, token: str, seconds: float) -> Latencies:
    """Calls of `url` one after another over one keep-alive connection, by `wrk`."""
    by_wrk(url, token, 1.0, 1)  # warm: connections, caches
    load = by_wrk(url, token, seconds, 1)
    return Latencies(name, load.p50_ms, load.p99_ms)


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


def measure(system: System, seconds: float, connections: int) -> None:
    token = system.token(CUSTOMER, "admin")
    path = f"/v1/customers/{CUSTOMER}/driftConfig"
    with (
        extra_gateway(system, None, **NO_LIMIT) as gateway,
        extra_gateway(system, None, **NO_LIMIT, **EVERY_TRACE) as tracing_all,
        passthrough(system.targets["drift"]) as bare,
        grpc.insecure_channel(system.targets["drift"]) as channel,
        httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client,
    ):
        stub = drift_service_pb2_grpc.DriftServiceStub(channel)
        request = drift_service_pb2.GetDriftConfigRequest(name=f"customers/{CUSTOMER}/driftConfig")
        metadata = (("authorization", f"Bearer {token}"),)
        log(f"GetDriftConfig called one after another over gRPC for {seconds:g} s …")
        direct = sequential(
            "direct gRPC",
            lambda: stub.GetDriftConfig(request, metadata=metadata, timeout=10),
            seconds,
        )
        if wrk.installed():
            log(f"the same over HTTP, one connection × {seconds:g} s each (wrk) …")
            through = one_after_another("through the gateway", gateway + path, token, seconds)
            plain = one_after_another("bare pass-through", bare + path, token, seconds)
            log(f"throughput, {connections} connections × {seconds:g} s each (wrk) …")
            gateway_rate = by_wrk(gateway + path, token, seconds, connections).rate
            bare_rate = by_wrk(bare + path, token, seconds, connections).rate
            log(f"the gateway with every request traced, {connections} connections …")
            all_traced_rate = by_wrk(tracing_all + path, token, seconds, connections).rate
        else:
            log("wrk is not installed (apt install wrk): HTTP measured with httpx, whose own")
            log("time per call and ceiling of calls a second the figures include")
            through = sequential(
                "through the gateway",
                lambda: client.get(gateway + path).raise_for_status(),
                seconds,
            )
            plain = sequential(
                "bare pass-through", lambda: client.get(bare + path).raise_for_status(), seconds
            )
            gateway_rate = asyncio.run(throughput(gateway + path, token, seconds, connections))
            bare_rate = asyncio.run(throughput(bare + path, token, seconds, connections))
            all_traced_rate = asyncio.run(
                throughput(tracing_all + path, token, seconds, connections)
            )

    log("\n                         p50 ms   p99 ms")
    for row in (direct, through, plain):
        log(f"  {row.name:22s} {row.p50_ms:7.2f}  {row.p99_ms:7.2f}")
    over50 = through.p50_ms - direct.p50_ms
    over99 = through.p99_ms - direct.p99_ms
    bare50 = plain.p50_ms - direct.p50_ms
    log(
        f"\ngateway overhead over direct gRPC: p50 {over50:+.2f} ms (target ≤ {OVERHEAD_P50_MS}: "
        f"{verdict(over50 <= OVERHEAD_P50_MS)}), p99 {over99:+.2f} ms (target ≤ "
        f"{OVERHEAD_P99_MS}: {verdict(over99 <= OVERHEAD_P99_MS)}); the bare pass-through adds "
        f"{bare50:+.2f} ms at p50\n"
        f"direct gRPC p50 {direct.p50_ms:.2f} ms (target ≤ {DIRECT_P50_MS}: "
        f"{verdict(direct.p50_ms <= DIRECT_P50_MS)})\n"
        f"throughput: gateway {gateway_rate:,.0f}/s, bare pass-through {bare_rate:,.0f}/s: "
        f"{gateway_rate / bare_rate:.2f}× (target ≥ {THROUGHPUT_RATIO}: "
        f"{verdict(gateway_rate / bare_rate >= THROUGHPUT_RATIO)})\n"
        f"  (traces sampled as in production, {PRODUCTION_SAMPLING['OTEL_TRACES_SAMPLER_ARG']}"
        f" a second a process; with every request traced the gateway serves "
        f"{all_traced_rate:,.0f}/s, {all_traced_rate / bare_rate:.2f}×)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with throwaway_cluster(keep=False) as admin_url:
        urls = migrate(admin_url, schemas.SERVICES)
        with running_system(urls, **PRODUCTION_SAMPLING) as system:
            measure(system, args.seconds, args.connections)
    log(f"(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

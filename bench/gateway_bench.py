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
from functools import partial
from typing import TypeVar

import grpc
import httpx
import numpy as np

from bench import wrk
from bench.export_bench import migrate
from bench.ingest_bench import log, throwaway_cluster, verdict
from devtools.stack import http_ok, wait_until
from runtime import schemas
from runtime.settings import LOCAL_DIR, REPO_ROOT
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


# Each figure is the median of this many turns, the compared ones taking turns.
ROUNDS = 5
T = TypeVar("T")


@dataclass(frozen=True)
class Latencies:
    p50_ms: float
    p99_ms: float


def sequential(call: Callable[[], object], seconds: float) -> Latencies:
    """`call` made one after another for `seconds`."""
    times = []
    deadline = time.perf_counter() + seconds
    while (started := time.perf_counter()) < deadline:
        call()
        times.append(time.perf_counter() - started)
    p50, p99 = np.quantile(np.array(times), [0.5, 0.99]) * 1000
    return Latencies(float(p50), float(p99))


def by_wrk(url: str, token: str, seconds: float, connections: int) -> wrk.Load:
    """`wrk.under_wrk`, every answer a 2xx (a refusal is no measure of the gateway)."""
    load = wrk.under_wrk(url, token, seconds, connections)
    if load.errors:
        raise RuntimeError(f"{url}: {load.errors} answers under wrk were not 2xx")
    return load


def one_after_another(url: str, token: str, seconds: float) -> Latencies:
    """Calls of `url` one after another over one keep-alive connection, by `wrk`."""
    load = by_wrk(url, token, seconds, 1)
    return Latencies(load.p50_ms, load.p99_ms)


def _get(client: httpx.Client, url: str) -> object:
    return client.get(url).raise_for_status()


def _wrk_rate(url: str, token: str, connections: int, seconds: float) -> float:
    return by_wrk(url, token, seconds, connections).rate


def _httpx_rate(url: str, token: str, connections: int, seconds: float) -> float:
    return asyncio.run(throughput(url, token, seconds, connections))


def in_turns(timers: dict[str, Callable[[float], T]], seconds: float) -> dict[str, list[T]]:
    """Each timer run ROUNDS times for its share of `seconds`, the timers taking turns (in
    a new order each round), after a second each of warming up: a slow spell of the machine
    falls on all of them alike rather than on whichever ran then."""
    for timer in timers.values():
        timer(1.0)  # warm: connections, caches
    results: dict[str, list[T]] = {name: [] for name in timers}
    names = list(timers)
    for round_ in range(ROUNDS):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            results[name].append(timers[name](seconds / ROUNDS))
    return results


def median_latencies(rounds: list[Latencies]) -> Latencies:
    return Latencies(
        float(np.median([r.p50_ms for r in rounds])), float(np.median([r.p99_ms for r in rounds]))
    )


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

        def direct_call() -> object:
            return stub.GetDriftConfig(request, metadata=metadata, timeout=10)

        one: dict[str, Callable[[float], Latencies]] = {
            "direct gRPC": partial(sequential, direct_call)
        }
        many: dict[str, Callable[[float], float]] = {}
        plain_http = not wrk.installed()
        if plain_http:
            log("wrk is not installed (apt install wrk): HTTP measured with httpx, whose own")
            log("time per call and ceiling of calls a second the figures include")
        for name, url in (("through the gateway", gateway), ("bare pass-through", bare)):
            one[name] = (
                partial(sequential, partial(_get, client, url + path))
                if plain_http
                else partial(one_after_another, url + path, token)
            )
        for name, url in (("gateway", gateway), ("bare", bare), ("all traced", tracing_all)):
            rate = _httpx_rate if plain_http else _wrk_rate
            many[name] = partial(rate, url + path, token, connections)
        log(
            f"GetDriftConfig one call after another, {seconds:g} s each way in {ROUNDS} turns:"
            " direct over gRPC, through the gateway and through the pass-through (one HTTP"
            " connection) …"
        )
        latencies = {
            name: median_latencies(rounds) for name, rounds in in_turns(one, seconds).items()
        }
        log(f"throughput, {connections} connections, {seconds:g} s each in {ROUNDS} turns …")
        rates = {name: float(np.median(r)) for name, r in in_turns(many, seconds).items()}

    direct = latencies["direct gRPC"]
    through = latencies["through the gateway"]
    plain = latencies["bare pass-through"]
    gateway_rate, bare_rate, all_traced_rate = rates["gateway"], rates["bare"], rates["all traced"]
    log(f"\n  (medians of {ROUNDS} turns)       p50 ms   p99 ms")
    for name, row in latencies.items():
        log(f"  {name:30s} {row.p50_ms:7.2f}  {row.p99_ms:7.2f}")
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
    # The services log every call, as in production; to a file, not between the figures.
    LOCAL_DIR.mkdir(exist_ok=True)
    services_log = LOCAL_DIR / "gateway-bench-services.log"
    with (
        throwaway_cluster(keep=False) as admin_url,
        services_log.open("wb") as output,
    ):
        urls = migrate(admin_url, schemas.SERVICES)
        with running_system(urls, output, **PRODUCTION_SAMPLING) as system:
            measure(system, args.seconds, args.connections)
    log(f"(the services' log: {services_log.relative_to(REPO_ROOT)})")
    log(f"(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

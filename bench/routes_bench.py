"""`make bench`: the REST routes analysts read most, one call at a time and under `wrk`,
beside a bare pass-through of the same small read measured in the same run.

On a fresh system with `make run`'s demo data (`bench.load.harness`: a throwaway PostgreSQL,
the three services and the gateway as real processes, rate limits no client reaches), each
route is called 200 times one after another (p50 of one call), then by `wrk` with 16
keep-alive connections for 10 s (requests a second, p50 and p99), while the CPU seconds of
every process are read from /proc: what one request costs each of them. `wrk` comes from
apt; without it only the single-call figures are printed.

The reference is `bench.passthrough` (Starlette + grpc.aio, nothing else) forwarding
`GetDriftConfig`, under the same `wrk`. The figures are printed beside the targets; nothing
is asserted.

    python -m bench.routes_bench [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg

from bench.gateway_bench import passthrough
from bench.ingest_bench import log, verdict
from bench.load.harness import fresh_system, load_demo, webhook_receiver
from bench.wrk import Load, Processes, installed, under_wrk, wait_quiet
from runtime import schemas
from tests.system import System

CUSTOMER = "acme"
# route → (target requests a second, target p99 ms, target ms for one call)
SMALL, LIST = (1500, 50, None), (800, 100, None)


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    targets: tuple[int | None, int | None, int | None]


def routes(system: System) -> list[Route]:
    with system.client(CUSTOMER, "viewer") as client:
        event = client.get(f"/v1/customers/{CUSTOMER}/driftEvents?pageSize=1").json()
        upload = client.get(f"/v1/customers/{CUSTOMER}/uploads?pageSize=1").json()
    base = f"/v1/customers/{CUSTOMER}"
    return [
        Route("driftConfig", f"{base}/driftConfig", SMALL),
        Route("a drift event", f"/v1/{event['driftEvents'][0]['name']}", SMALL),
        Route("an upload", f"/v1/{upload['uploads'][0]['name']}", SMALL),
        Route("driftEvents ×20", f"{base}/driftEvents?pageSize=20", LIST),
        Route("uploads ×20", f"{base}/uploads?pageSize=20", LIST),
        Route("payerSummaries ×20", f"{base}/payerSummaries?pageSize=20", (200, 200, 20)),
        Route("claims ×100", f"{base}/claims?pageSize=100", (None, None, 20)),
    ]


def one_call_ms(client: httpx.Client, url: str, calls: int = 200) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        client.get(url).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _one(process: psutil.Process) -> Callable[[], list[psutil.Process]]:
    return lambda: [process]


def system_processes(system: System, admin_url: str) -> Processes:
    """Each process of the system, and PostgreSQL's (the server and its backends)."""
    found: Processes = {
        name: _one(psutil.Process(process.pid)) for name, process in system.stack.processes
    }
    with psycopg.connect(schemas.libpq_url(admin_url)) as connection:
        row = connection.execute("SHOW data_directory").fetchone()
    assert row is not None
    postmaster = psutil.Process(int((Path(str(row[0])) / "postmaster.pid").read_text().split()[0]))
    found["postgres"] = lambda: [postmaster, *postmaster.children()]
    return found


def measure(system: System, admin_url: str, seconds: float, connections: int) -> None:
    token = system.token(CUSTOMER, "viewer")
    pids = system_processes(system, admin_url)
    have_wrk = installed()
    if not have_wrk:
        log("wrk is not installed (apt install wrk): single calls only")
    quiet = wait_quiet(pids)
    log(f"  (measured once the system was quiet: {quiet:.0f} s after the demo was loaded)")
    rows = []
    with httpx.Client(
        base_url=system.gateway_url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for route in routes(system):
            single = one_call_ms(client, route.path)
            load = (
                under_wrk(system.gateway_url + route.path, token, seconds, connections, pids)
                if have_wrk
                else None
            )
            rows.append((route, single, load))
            log(
                f"  {route.name}: one call {single:.1f} ms"
                + (f", {load.rate:,.0f}/s" if load else "")
            )
    reference = None
    if have_wrk:
        with passthrough(system.targets["drift"]) as bare:
            path = f"/v1/customers/{CUSTOMER}/driftConfig"
            reference = under_wrk(bare + path, token, seconds, connections)
    report(rows, reference, pids)


def report(
    rows: list[tuple[Route, float, Load | None]], reference: Load | None, pids: Processes
) -> None:
    log(
        f"\n{'route':20s} {'1 call ms':>9s} {'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} "
        f"{'errors':>6s}  CPU ms a request ({', '.join(pids)})  targets"
    )
    for route, single, load in rows:
        rate_target, p99_target, single_target = route.targets
        checks = []
        if single_target is not None:
            checks.append(f"1 call < {single_target} ms: {verdict(single < single_target)}")
        if load is not None and rate_target is not None and p99_target is not None:
            met = load.rate >= rate_target and load.p99_ms < p99_target and not load.errors
            checks.append(f"≥ {rate_target}/s, p99 < {p99_target} ms: {verdict(met)}")
        figures = (
            f"{load.rate:7,.0f} {load.p50_ms:7.1f} {load.p99_ms:7.1f} {load.errors:6d}  "
            + " ".join(f"{load.cpu_ms[name]:.2f}" for name in pids)
            if load
            else f"{'—':>7s} {'—':>7s} {'—':>7s} {'—':>6s}"
        )
        log(f"{route.name:20s} {single:9.1f} {figures}  {'; '.join(checks)}")
    if reference is not None:
        log(
            f"{'bare pass-through':20s} {'':9s} {reference.rate:7,.0f} {reference.p50_ms:7.1f} "
            f"{reference.p99_ms:7.1f} {reference.errors:6d}  (Starlette + grpc.aio → drift's "
            "GetDriftConfig: the reference)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routes_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with webhook_receiver() as (webhook_url, _), fresh_system() as (system, admin_url):
        load_demo(system, webhook_url)
        measure(system, admin_url, args.seconds, args.connections)
    log(f"(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

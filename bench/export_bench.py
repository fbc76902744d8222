"""`make bench`: a CLAIMS_EXPORT CSV built by a real reports process against a plain
`psql \\copy (SELECT …) TO STDOUT` of the same rows.

A customer is filled with a synthetic claims file (the one `bench.ingest_bench` caches under
`.local/bench-data/`) through a real ingest process. In the same run and on the same
throwaway PostgreSQL, the period's claims are copied out with `psql \\copy`, then a real
reports process builds the export (created over gRPC, polled until SUCCEEDED, downloaded),
its resident memory sampled every 50 ms, after a month's export has warmed it up. The
figures are printed beside the targets; nothing is asserted, and the exit status is 0
unless something broke.

    python -m bench.export_bench [--claims 1000000] [--seed 7] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
import psycopg

from bench.ingest_bench import (
    BENCH_JWT_SECRET,
    DEFAULT_SEED,
    MB,
    RunningIngest,
    checkpoint,
    dataset,
    log,
    throwaway_cluster,
    timed_psql,
    timed_upload,
)
from devtools.stack import Stack
from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.messages import date_message
from runtime.settings import Settings
from tests.system import free_port
from upstream.reports.v1 import reports_service_pb2, reports_service_pb2_grpc
from upstream.reports.v1 import resources_pb2 as reports_resources_pb2

DEFAULT_CLAIMS = 1_000_000
SERVICES = ("ingest", "reports")
SAMPLE_SECONDS = 0.05
POLL_SECONDS = 0.1
BUILD_TIMEOUT_SECONDS = 3600
# The target: the export at half the plain \copy rate or better, reports' memory flat.
TARGET_RATIO = 0.5
# Sampling noise and allocator slack: a peak within this of the RSS at rest is flat.
FLAT_TOLERANCE = 0.25

# The export's columns (services/reports/content/exports.py) as SQL over ingest.claims: the
# same rows and about the same text, written by PostgreSQL itself.
_EXPORT_COLUMNS = """
    claim_id, payer, payer_raw_name, payer_raw_id, status, denied, partially_denied,
    code_group, array_to_string(procedure_codes, ';'), service_date, submitted_date,
    NULL AS received_date, decision_date,
    billed_cents / 100.0, allowed_cents / 100.0, paid_cents / 100.0,
    patient_responsibility_cents / 100.0,
    (SELECT string_agg((a->>'group') || '-' || (a->>'reason'), ';')
       FROM jsonb_array_elements(adjustments) AS a),
    (SELECT string_agg(((a->>'cents')::bigint / 100.0)::text, ';')
       FROM jsonb_array_elements(adjustments) AS a),
    payer_claim_control_number,
    'customers/' || customer_id || '/uploads/' || upload_id,
    update_time,
    'customers/' || customer_id || '/claims/' || claim_uid
"""


def migrate(admin_url: str, services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """Create the services' schemas and roles (ingest's and reports' by default), migrate
    them; their app roles' URLs."""
    passwords = schemas.local_passwords(services)
    schemas.bootstrap(admin_url, passwords, services)
    urls = {}
    for service in services:
        owner, app = schemas.role_name(service, "owner"), schemas.role_name(service, "app")
        schemas.migrate(service, schemas.service_url(admin_url, service, "owner", passwords[owner]))
        urls[service] = schemas.service_url(admin_url, service, "app", passwords[app])
    return urls


@dataclass(frozen=True)
class RunningServices:
    ingest: RunningIngest
    reports_target: str
    reports_pid: int


@contextmanager
def services(urls: dict[str, str]) -> Iterator[RunningServices]:
    """`python -m services.ingest` and `python -m services.reports` on free ports, serving;
    stopped (drained) afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DATABASE_URL"))}
    env.update(
        JWT_SECRET=BENCH_JWT_SECRET,
        OTEL_TRACES_EXPORTER="none",
        # Nothing listens there: ingest's outbox relay just retries, off the measured path.
        DRIFT_TARGET=f"127.0.0.1:{free_port()}",
        LOG_LEVEL="ERROR",
        # One report at a time: the export alone is measured.
        REPORT_BUILD_CONCURRENCY="1",
    )
    env.setdefault("GRPC_MAX_CONNECTION_AGE_SECONDS", str(BUILD_TIMEOUT_SECONDS))
    targets = {service: f"127.0.0.1:{free_port()}" for service in SERVICES}
    env["INGEST_TARGET"] = targets["ingest"]
    stack = Stack(env)
    try:
        processes = {
            service: stack.start_service(service, urls[service], targets[service], free_port())
            for service in SERVICES
        }
        for service in SERVICES:
            stack.wait_serving(service, targets[service])
        yield RunningServices(
            RunningIngest(
                targets["ingest"], processes["ingest"].pid, Settings.from_env("bench", env)
            ),
            targets["reports"],
            processes["reports"].pid,
        )
    finally:
        stack.stop()


def decision_period(admin_url: str, customer: str) -> tuple[dt.date, dt.date, int]:
    """First and last decision date of the customer's claims, and how many were decided."""
    with psycopg.connect(schemas.libpq_url(admin_url)) as connection:
        found = connection.execute(
            "SELECT min(decision_date), max(decision_date), count(decision_date) "
            "FROM ingest.claims WHERE customer_id = %s",
            (customer,),
        ).fetchone()
    assert found is not None and found[0] is not None, "the upload decided no claim"
    return found[0], found[1], int(found[2])


def timed_copy_out(
    admin_url: str, customer: str, start: dt.date, end: dt.date, *, ordered: bool
) -> float:
    """Seconds for `psql \\copy (SELECT <the export's columns> …) TO STDOUT WITH CSV`."""
    where = f"customer_id = '{customer}' AND decision_date BETWEEN '{start}' AND '{end}'"
    if ordered:
        where += " ORDER BY decision_date, claim_uid"
    select = " ".join(f"SELECT {_EXPORT_COLUMNS} FROM ingest.claims WHERE {where}".split())
    return timed_psql(
        admin_url,
        f"\\copy ({select}) TO STDOUT WITH (FORMAT csv, HEADER true)",
        quiet_output=True,
    )


def vm_status(pid: int, field: str) -> int:
    """A size from /proc/<pid>/status (`VmHWM`, `VmRSS`), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


class BuildObserver:
    """Samples, every 50 ms on a thread, the resident set size of a reports process (keeping
    the peak), and the CPU time it and an ingest process (when one is named) spend meanwhile."""

    def __init__(self, reports_pid: int, ingest_pid: int | None = None) -> None:
        self._reports = psutil.Process(reports_pid)
        self._ingest = psutil.Process(ingest_pid) if ingest_pid is not None else None
        self.rss_at_start = self._reports.memory_info().rss
        self.hwm_at_start = vm_status(reports_pid, "VmHWM")
        self.peak_rss = self.rss_at_start
        self.rss_at_end = self.rss_at_start
        self._cpu_at_start = (_cpu(self._reports), _cpu(self._ingest))
        self.reports_cpu = self.ingest_cpu = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="build-observer", daemon=True)

    def __enter__(self) -> BuildObserver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self.rss_at_end = self._reports.memory_info().rss
        self.reports_cpu = _cpu(self._reports) - self._cpu_at_start[0]
        self.ingest_cpu = _cpu(self._ingest) - self._cpu_at_start[1]

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            try:
                self.peak_rss = max(self.peak_rss, self._reports.memory_info().rss)
            except psutil.NoSuchProcess:
                return


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class ExportRun:
    build_seconds: float
    download_seconds: float
    size_bytes: int
    rows: int
    rss_at_start: int
    peak_rss: int
    rss_at_end: int
    hwm_at_start: int
    hwm_at_end: int
    reports_cpu: float
    ingest_cpu: float


def timed_export(
    running: RunningServices, customer: str, start: dt.date, end: dt.date
) -> ExportRun:
    """A CLAIMS_EXPORT CSV of the period: created, polled until SUCCEEDED, downloaded."""
    settings = running.ingest.settings
    token = mint_token(
        settings, subject="bench", customer=customer, role=Role.ADMIN, ttl_seconds=86_400
    )
    metadata = [("authorization", f"Bearer {token}")]
    report = reports_resources_pb2.Report(
        kind=reports_resources_pb2.CLAIMS_EXPORT,
        format=reports_resources_pb2.CSV,
        parameters=reports_resources_pb2.ReportParameters(
            date_range=reports_resources_pb2.DateRange(
                start_date=date_message(start), end_date=date_message(end)
            )
        ),
    )
    with grpc.insecure_channel(running.reports_target) as channel:
        stub = reports_service_pb2_grpc.ReportsServiceStub(channel)
        with BuildObserver(running.reports_pid, running.ingest.pid) as observer:
            started = time.monotonic()
            created = stub.CreateReport(
                reports_service_pb2.CreateReportRequest(
                    parent=f"customers/{customer}", report=report, request_id=str(uuid.uuid4())
                ),
                metadata=metadata,
                timeout=30,
            )
            while True:
                built = stub.GetReport(
                    reports_service_pb2.GetReportRequest(name=created.name),
                    metadata=metadata,
                    timeout=30,
                )
                if built.state in (built.SUCCEEDED, built.FAILED):
                    break
                if time.monotonic() - started > BUILD_TIMEOUT_SECONDS:
                    raise TimeoutError(f"{created.name} still {built.State.Name(built.state)}")
                time.sleep(POLL_SECONDS)
            build_seconds = time.monotonic() - started
        if built.state == built.FAILED:
            raise RuntimeError(f"the export failed: {built.error.message}")
        hwm_at_end = vm_status(running.reports_pid, "VmHWM")
        started = time.monotonic()
        size = rows = 0
        tail = b""
        for body in stub.DownloadReport(
            reports_service_pb2.DownloadReportRequest(name=created.name),
            metadata=metadata,
            timeout=BUILD_TIMEOUT_SECONDS,
        ):
            size += len(body.data)
            # A line end split across two chunks is counted once.
            rows += (tail + body.data[:1]).count(b"\r\n") + body.data.count(b"\r\n")
            tail = body.data[-1:]
        download_seconds = time.monotonic() - started
    return ExportRun(
        build_seconds,
        download_seconds,
        size,
        rows - 1,  # the header
        observer.rss_at_start,
        observer.peak_rss,
        observer.rss_at_end,
        observer.hwm_at_start,
        hwm_at_end,
        observer.reports_cpu,
        observer.ingest_cpu,
    )


def verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def measure(claims: int, seed: int, keep: bool) -> None:
    path = dataset(claims, seed)
    with throwaway_cluster(keep) as admin_url:
        urls = migrate(admin_url)
        customer = f"bench-{claims}-{uuid.uuid4().hex[:8]}"
        with services(urls) as running:
            log(f"\nfilling {customer} with {path.name} through ingest …")
            upload = timed_upload(running.ingest, admin_url, path, customer)
            log(f"  uploaded in {upload.seconds:.1f} s ({upload.upload.claims_accepted:,} claims)")
            start, end, decided = decision_period(admin_url, customer)
            with psycopg.connect(schemas.libpq_url(admin_url), autocommit=True) as connection:
                connection.execute("VACUUM ANALYZE ingest.claims")
            checkpoint(admin_url)
            log(f"\nexport of the {decided:,} claims decided from {start} to {end}")
            # Once unmeasured, so every run below reads the same warm cache.
            timed_copy_out(admin_url, customer, start, end, ordered=False)
            plain = timed_copy_out(admin_url, customer, start, end, ordered=False)
            ordered = timed_copy_out(admin_url, customer, start, end, ordered=True)
            log(f"  psql \\copy (SELECT …) TO STDOUT: {plain:.1f} s, {decided / plain:,.0f} rows/s")
            log(
                f"  the same ORDER BY decision_date, claim_uid (the export's order): "
                f"{ordered:.1f} s, {decided / ordered:,.0f} rows/s"
            )
            # A month's export first: what reports takes on once (Arrow's kernels and memory
            # pool, worker threads) is in its memory before the measured one starts, so
            # growth over it is what the export's size costs.
            warm_up = timed_export(running, customer, start, start + dt.timedelta(days=30))
            log(
                f"  a month's export first ({warm_up.rows:,} rows): reports RSS "
                f"{warm_up.rss_at_start / MB:.0f} → {warm_up.rss_at_end / MB:.0f} MB"
            )
            run = timed_export(running, customer, start, end)
    rate = run.rows / run.build_seconds
    ratio = plain / run.build_seconds
    growth = run.peak_rss / run.rss_at_start - 1
    log(
        f"  CLAIMS_EXPORT CSV by reports: built in {run.build_seconds:.1f} s, {rate:,.0f} claims/s "
        f"({run.rows:,} rows, {run.size_bytes / MB:,.0f} MB); downloaded in "
        f"{run.download_seconds:.1f} s\n"
        f"    CPU while it built: reports {run.reports_cpu:.1f} s, ingest {run.ingest_cpu:.1f} s\n"
        f"    reports RSS {run.rss_at_start / MB:.0f} MB at the start, {run.peak_rss / MB:.0f} MB "
        f"peak, {run.rss_at_end / MB:.0f} MB at the end (VmHWM {run.hwm_at_start / MB:.0f} → "
        f"{run.hwm_at_end / MB:.0f} MB)"
    )
    if run.rows != decided:
        log(f"    note: the export has {run.rows:,} rows, the period {decided:,} claims")
    log(
        f"\nratio export/\\copy: {ratio:.2f} (ordered \\copy: {ordered / run.build_seconds:.2f}) "
        f"target >= {TARGET_RATIO:.2f}: {verdict(ratio >= TARGET_RATIO)}\n"
        f"reports peak RSS {growth:+.0%} over its start, flat within {FLAT_TOLERANCE:.0%}: "
        f"{verdict(growth <= FLAT_TOLERANCE)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_bench", description=__doc__)
    parser.add_argument("--claims", type=int, default=DEFAULT_CLAIMS, help="claims to export")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="synthetic data seed")
    parser.add_argument("--keep", action="store_true", help="leave the PostgreSQL cluster running")
    args = parser.parse_args(argv)
    if args.claims < 1:
        parser.error("--claims must be positive")
    started = time.monotonic()
    try:
        measure(args.claims, args.seed, args.keep)
    except (grpc.RpcError, RuntimeError) as failure:
        print(f"\nthe export failed: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    log(f"(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

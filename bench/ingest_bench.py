"""`make bench`: ingest's upload path against a plain `psql \\copy` of the same rows.

For each size, a synthetic claims CSV (canonical columns, cached under `.local/bench-data/`)
is streamed over gRPC into a real ingest process in 1 MiB chunks, the whole `CreateUpload`
call timed (parse, validate, stage, merge, statistics, commit) while the process's resident
memory is sampled every 50 ms. In the same run and on the same throwaway PostgreSQL, the same
file is loaded with `psql \\copy` into a table with ingest's claim keys and indexes, and into
one with no index. The figures are printed with their targets beside them; nothing
is asserted, and the exit status is 0 unless something broke.

    python -m bench.ingest_bench [--rows 1000000 5000000] [--seed 7] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
import psycopg
from google.api import httpbody_pb2
from psycopg import sql
from sqlalchemy import make_url

from devtools.stack import Stack, grpc_serving, wait_until
from devtools.synthetic import CSV_HEADER, Scenario, write_csv
from runtime import schemas
from runtime.auth import Role, mint_token
from runtime.postgres import LocalPostgres, bin_dir
from runtime.settings import LOCAL_DIR, Settings
from tests.system import free_port
from upstream.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc, resources_pb2

DEFAULT_ROWS = (1_000_000, 5_000_000)
DEFAULT_SEED = 7
DATA_DIR = LOCAL_DIR / "bench-data"
CHUNK_BYTES = 1024 * 1024
SAMPLE_SECONDS = 0.05
BENCH_JWT_SECRET = "bench-secret-with-enough-entropy-for-hs256"
# A 5M-row upload runs for many minutes; past this it is a finding, not a figure.
UPLOAD_TIMEOUT_SECONDS = 3600
MB = 1_000_000

# The targets: the upload path at half the plain \copy rate or better, and a peak
# RSS under 300 MB that does not grow with the file.
TARGET_RATIO = 0.8
TARGET_PEAK_RSS = 300 * MB
# Sampling noise and allocator slack: peak RSS within this of the smallest size's is flat.
FLAT_TOLERANCE = 0.15

REFERENCE_SCHEMA = "bench"
INDEXED_TABLE = "claims_copy"
UNINDEXED_TABLE = "claims_copy_unindexed"
# The CSV's canonical columns typed as ingest stores them, plus the columns ingest's keys and
# indexes use: customer and upload are constant for one load (as in one upload), claim_uid
# is computed from payer and claim id as ingest computes it, so the raw file loads directly.
# The customer whose claims both loads hold: the upload's and the reference rows' customer_id,
# so that every index, each led by it, holds the same keys in both.
CUSTOMER = "bench"
_REFERENCE_COLUMNS = f"""
    customer_id text NOT NULL DEFAULT '{CUSTOMER}',
    claim_id text NOT NULL,
    payer text NOT NULL,
    procedure_code text,
    service_date date,
    submitted_date date,
    decision_date date,
    status text NOT NULL,
    billed_amount numeric(14, 2),
    allowed_amount numeric(14, 2),
    paid_amount numeric(14, 2),
    patient_responsibility numeric(14, 2),
    carc_codes text,
    upload_id text NOT NULL DEFAULT 'u_bench',
    payer_claim_control_number text NOT NULL DEFAULT '',
    claim_uid text GENERATED ALWAYS AS (substr(md5(upper(payer) || '|' || claim_id), 1, 20))
        STORED
"""
# ingest.claims' primary key and secondary indexes (migrations 0002, 0010 and 0012), on the
# columns above.
_REFERENCE_KEYS = (
    "ALTER TABLE {table} ADD PRIMARY KEY (customer_id, claim_uid)",
    "CREATE INDEX ON {table} (customer_id, payer, decision_date)",
    "CREATE INDEX ON {table} (customer_id, upload_id)",
    "CREATE INDEX ON {table} (customer_id, payer, payer_claim_control_number)"
    " WHERE payer_claim_control_number <> ''",
    "CREATE INDEX ON {table} (customer_id, coalesce(decision_date, '0001-01-01'::date), claim_uid)",
)


def log(message: str) -> None:
    print(message, flush=True)


# --- Data ----------------------------------------------------------------------------------


def dataset(rows: int, seed: int) -> Path:
    """The CSV of `rows` synthetic claims, written once and reused (1M rows take ~20 s)."""
    return cached_csv(Scenario(claims=rows, seed=seed), DATA_DIR / f"claims-{rows}-seed{seed}.csv")


def cached_csv(scenario: Scenario, path: Path) -> Path:
    """The scenario's claims as CSV at `path`, written the first time and reused after."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    log(f"generating {scenario.claims:,} rows into {path} …")
    started = time.monotonic()
    write_csv(scenario, partial)
    # Renamed only when complete: an interrupted run must not leave a short file to reuse.
    partial.rename(path)
    log(f"  generated in {time.monotonic() - started:.1f} s")
    return path


# --- PostgreSQL and the ingest process -----------------------------------------------------


@contextmanager
def throwaway_cluster(keep: bool) -> Iterator[str]:
    """A new cluster under `.local/bench-pg-*`; yields its admin URL. Removed afterwards
    unless `keep`, then left running for inspection."""
    LOCAL_DIR.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-", dir=LOCAL_DIR))
    # mkdtemp makes it 0700, closed to the PostgreSQL system user that runs the server.
    folder.chmod(0o755)
    cluster = LocalPostgres(folder / "data", free_port())
    try:
        cluster.start()
        yield cluster.admin_url()
    finally:
        if keep:
            log(
                f"\nkept the cluster in {cluster.data_dir} on port {cluster.port}; stop it with\n"
                f"  python -m runtime.postgres stop --data-dir {cluster.data_dir}"
            )
        else:
            cluster.stop()
            shutil.rmtree(folder)


def migrate_ingest(admin_url: str) -> str:
    """Create ingest's schema and roles, migrate it to head; return the app role's URL."""
    passwords = schemas.local_passwords(("ingest",))
    schemas.bootstrap(admin_url, passwords, ("ingest",))
    owner, app = schemas.role_name("ingest", "owner"), schemas.role_name("ingest", "app")
    schemas.migrate("ingest", schemas.service_url(admin_url, "ingest", "owner", passwords[owner]))
    return schemas.service_url(admin_url, "ingest", "app", passwords[app])


@dataclass(frozen=True)
class RunningIngest:
    target: str
    pid: int
    settings: Settings


@contextmanager
def ingest_process(database_url: str) -> Iterator[RunningIngest]:
    """`python -m services.ingest` on free ports, serving; stopped (drained) afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DATABASE_URL"))}
    env.update(
        JWT_SECRET=BENCH_JWT_SECRET,
        OTEL_TRACES_EXPORTER="none",
        # Nothing listens there: the outbox relay just retries, off the measured path.
        DRIFT_TARGET=f"127.0.0.1:{free_port()}",
        # Else the relay's retry warnings would fill the figures.
        LOG_LEVEL="ERROR",
    )
    # The server ends a connection at max connection age + grace, an upload still streaming
    # included (UNAVAILABLE "max connection age"): raised, so long uploads can be measured.
    env.setdefault("GRPC_MAX_CONNECTION_AGE_SECONDS", str(UPLOAD_TIMEOUT_SECONDS))
    port = free_port()
    stack = Stack(env)
    try:
        stack.start(
            "ingest",
            "services.ingest",
            {
                "DATABASE_URL": database_url,
                "GRPC_PORT": str(port),
                "METRICS_PORT": str(free_port()),
            },
        )
        target = f"127.0.0.1:{port}"
        wait_until("ingest", lambda: grpc_serving(target), stack)
        yield RunningIngest(target, stack.processes[0][1].pid, Settings.from_env("bench", env))
    finally:
        stack.stop()


# What ingest's database sessions are doing: a statement PostgreSQL runs, or idle inside the
# upload's transaction while ingest's Python parses and encodes the next rows.
_INGEST_ACTIVITY = (
    "SELECT state, wait_event, query FROM pg_stat_activity "
    "WHERE application_name = 'upstream-ingest' AND state IN ('active', 'idle in transaction')"
)
_PYTHON_SIDE = "ingest's Python (session idle in transaction)"
# An open COPY waiting for rows: PostgreSQL has loaded all it was sent so far.
_COPY_WAITING = "ingest's Python (COPY waiting for the next rows)"
TOP_ACTIVITIES = 6


class UploadObserver:
    """Samples, every 50 ms on a thread, the ingest process's resident set size (keeping the
    peak) and what its database sessions do (time per statement), so the figures say where
    the time goes without a profiler attached."""

    def __init__(self, pid: int, admin_url: str) -> None:
        self._process = psutil.Process(pid)
        self._database = psycopg.connect(schemas.libpq_url(admin_url), autocommit=True)
        self.rss_at_rest = self._process.memory_info().rss
        self.peak_rss = self.rss_at_rest
        self._cpu_at_start = self._cpu_seconds()
        self.cpu_seconds = 0.0
        self.seconds_by_activity: defaultdict[str, float] = defaultdict(float)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="upload-observer", daemon=True)

    def __enter__(self) -> UploadObserver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self._database.close()
        self.cpu_seconds = self._cpu_seconds() - self._cpu_at_start

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def _sample(self) -> None:
        last = time.monotonic()
        while not self._done.wait(SAMPLE_SECONDS):
            try:
                self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            activities = self._database.execute(_INGEST_ACTIVITY).fetchall()
            now = time.monotonic()
            for state, wait_event, query in activities:
                self.seconds_by_activity[_activity(state, wait_event, query)] += now - last
            last = now


def _activity(state: str, wait_event: str | None, query: str) -> str:
    if state != "active":
        return _PYTHON_SIDE
    if wait_event == "ClientRead":
        return _COPY_WAITING
    return "PostgreSQL: " + " ".join(query.split())[:60]


# --- The measured loads --------------------------------------------------------------------


@dataclass(frozen=True)
class UploadRun:
    seconds: float
    rss_at_rest: int
    # CPU time the ingest process spent (all its threads), against the upload's wall time.
    cpu_seconds: float
    peak_rss: int
    seconds_by_activity: dict[str, float]
    upload: resources_pb2.Upload


def upload_requests(path: Path, customer: str) -> Iterator[ingest_service_pb2.CreateUploadRequest]:
    """The metadata message, then the file in 1 MiB chunks."""
    yield ingest_service_pb2.CreateUploadRequest(
        parent=f"customers/{customer}",
        upload=resources_pb2.Upload(file_name=path.name, format=resources_pb2.Upload.CSV),
        request_id=str(uuid.uuid4()),
    )
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield ingest_service_pb2.CreateUploadRequest(
                http_body=httpbody_pb2.HttpBody(content_type="text/csv", data=chunk)
            )


def timed_upload(ingest: RunningIngest, admin_url: str, path: Path, customer: str) -> UploadRun:
    """One `CreateUpload` of the whole file for `customer`, timed and observed."""
    token = mint_token(
        ingest.settings, subject="bench", customer=customer, role=Role.ADMIN, ttl_seconds=86_400
    )
    with (
        grpc.insecure_channel(ingest.target) as channel,
        UploadObserver(ingest.pid, admin_url) as observer,
    ):
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        started = time.monotonic()
        # A future, because Ctrl-C cannot interrupt a blocking client-streaming call.
        call = stub.CreateUpload.future(
            upload_requests(path, customer),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=UPLOAD_TIMEOUT_SECONDS,
        )
        try:
            upload = call.result()
        except KeyboardInterrupt:
            call.cancel()
            raise
        seconds = time.monotonic() - started
    return UploadRun(
        seconds,
        observer.rss_at_rest,
        observer.cpu_seconds,
        observer.peak_rss,
        observer.seconds_by_activity,
        upload,
    )


def create_reference_table(admin_url: str, name: str, *, indexed: bool) -> None:
    """An empty `bench.<name>`, with ingest.claims' keys and indexes when `indexed`."""
    table = sql.Identifier(REFERENCE_SCHEMA, name)
    with psycopg.connect(schemas.libpq_url(admin_url), autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(REFERENCE_SCHEMA))
        )
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        connection.execute(sql.SQL("CREATE TABLE {} (" + _REFERENCE_COLUMNS + ")").format(table))
        for statement in _REFERENCE_KEYS if indexed else ():
            connection.execute(sql.SQL(statement).format(table=table))


def checkpoint(admin_url: str) -> None:
    """Flush dirty pages, so one load's checkpoint does not land in the next one's timing."""
    with psycopg.connect(schemas.libpq_url(admin_url), autocommit=True) as connection:
        connection.execute("CHECKPOINT")


def row_count(admin_url: str, name: str) -> int:
    with psycopg.connect(schemas.libpq_url(admin_url)) as connection:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(REFERENCE_SCHEMA, name))
        found = connection.execute(query).fetchone()
    return int(found[0]) if found else 0


def timed_copy(admin_url: str, name: str, path: Path) -> float:
    """Seconds for `psql \\copy` of the CSV into `bench.<name>` (one transaction)."""
    literal = str(path).replace("'", "''")
    command = (
        f"\\copy {REFERENCE_SCHEMA}.{name} ({', '.join(CSV_HEADER)}) "
        f"FROM '{literal}' WITH (FORMAT csv, HEADER true)"
    )
    return timed_psql(admin_url, command)


def timed_psql(admin_url: str, command: str, *, quiet_output: bool = False) -> float:
    """Seconds `psql` takes to run one command (a `\\copy`) on the database of `admin_url`;
    with `quiet_output`, what it writes to stdout is dropped."""
    url = make_url(admin_url)
    psql = [
        str(bin_dir() / "psql"),
        "--no-psqlrc",
        "--quiet",
        "--set=ON_ERROR_STOP=1",
        f"--host={url.host}",
        f"--port={url.port}",
        f"--username={url.username}",
        f"--dbname={url.database}",
        f"--command={command}",
    ]
    # The password goes by environment, not argv, where `ps` would show it.
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    started = time.monotonic()
    subprocess.run(psql, env=env, check=True, stdout=subprocess.DEVNULL if quiet_output else None)
    return time.monotonic() - started


# --- One size, and the report --------------------------------------------------------------


@dataclass(frozen=True)
class SizeResult:
    rows: int
    file_bytes: int
    upload: UploadRun
    copy_indexed_seconds: float
    copy_unindexed_seconds: float

    @property
    def upload_rate(self) -> float:
        return self.rows / self.upload.seconds

    @property
    def copy_indexed_rate(self) -> float:
        return self.rows / self.copy_indexed_seconds

    @property
    def copy_unindexed_rate(self) -> float:
        return self.rows / self.copy_unindexed_seconds

    @property
    def ratio(self) -> float:
        return self.upload_rate / self.copy_indexed_rate


def measure_size(rows: int, seed: int, keep: bool) -> SizeResult:
    """Both loads of one size, on a cluster of its own: no figure depends on an earlier size's
    data, statistics, cache or WAL."""
    path = dataset(rows, seed)
    with throwaway_cluster(keep) as admin_url:
        return measure_loads(admin_url, path, rows)


def measure_loads(admin_url: str, path: Path, rows: int) -> SizeResult:
    ingest_url = migrate_ingest(admin_url)
    size = path.stat().st_size
    log(f"\n{rows:,} rows, {size / MB:,.0f} MB ({path.name})")
    copies: dict[str, float] = {}
    for name, indexed in ((INDEXED_TABLE, True), (UNINDEXED_TABLE, False)):
        create_reference_table(admin_url, name, indexed=indexed)
        checkpoint(admin_url)
        copies[name] = timed_copy(admin_url, name, path)
        log(
            f"  \\copy into bench.{name}: {copies[name]:.1f} s, "
            f"{rows / copies[name]:,.0f} rows/s ({row_count(admin_url, name):,} rows loaded)"
        )
    checkpoint(admin_url)
    # A fresh process per size, so its peak RSS is this upload's alone.
    with ingest_process(ingest_url) as ingest:
        run = timed_upload(ingest, admin_url, path, CUSTOMER)
    upload = run.upload
    log(
        f"  CreateUpload for {CUSTOMER}: {run.seconds:.1f} s, {rows / run.seconds:,.0f} rows/s "
        f"({resources_pb2.Upload.State.Name(upload.state)}; read {upload.rows_read:,}, "
        f"accepted {upload.rows_accepted:,}, rejected {upload.rows_rejected:,})\n"
        f"    ingest RSS {run.rss_at_rest / MB:.0f} MB at rest, {run.peak_rss / MB:.0f} MB peak; "
        f"ingest CPU {run.cpu_seconds:.1f} s"
    )
    cutoff = connection_cutoff_seconds()
    if run.seconds > cutoff:
        log(
            f"    note: longer than ingest's max connection age + grace by default (about "
            f"{cutoff:.0f} s); with the default settings this upload fails with UNAVAILABLE"
        )
    log("    where the upload's time went (sampled):")
    by_time = sorted(run.seconds_by_activity.items(), key=lambda item: item[1], reverse=True)
    for activity, seconds in by_time[:TOP_ACTIVITIES]:
        log(f"    {seconds:7.1f} s  {activity}")
    return SizeResult(rows, size, run, copies[INDEXED_TABLE], copies[UNINDEXED_TABLE])


def connection_cutoff_seconds() -> float:
    """How long a call can last before ingest, as configured by default, ends its connection."""
    defaults = Settings.from_env("ingest", {"JWT_SECRET": BENCH_JWT_SECRET})
    return defaults.max_connection_age_seconds + defaults.shutdown_grace_seconds


def verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def report(results: list[SizeResult]) -> str:
    titles = (
        "rows", "upload s", "rows/s", "MB/s", "peak RSS", "\\copy idx rows/s",
        "\\copy no-idx rows/s", "ratio", "ratio target", "RSS target", "RSS flat",
    )  # fmt: skip
    table = [titles]
    smallest = min(results, key=lambda r: r.rows)
    for result in sorted(results, key=lambda r: r.rows):
        run = result.upload
        growth = run.peak_rss / smallest.upload.peak_rss - 1
        table.append(
            (
                f"{result.rows}",
                f"{run.seconds:.1f}",
                f"{result.upload_rate:,.0f}",
                f"{result.file_bytes / MB / run.seconds:.1f}",
                f"{run.peak_rss / MB:.0f} MB",
                f"{result.copy_indexed_rate:,.0f}",
                f"{result.copy_unindexed_rate:,.0f}",
                f"{result.ratio:.2f}",
                verdict(result.ratio >= TARGET_RATIO),
                verdict(run.peak_rss <= TARGET_PEAK_RSS),
                "(base)"
                if result is smallest
                else f"{growth:+.0%} {verdict(growth <= FLAT_TOLERANCE)}",
            )
        )
    widths = [max(len(row[column]) for row in table) for column in range(len(titles))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in table
    ]
    lines.append(
        f"target: ratio upload/\\copy(indexed) >= {TARGET_RATIO:.2f}; peak RSS <= "
        f"{TARGET_PEAK_RSS / MB:.0f} MB and flat (within {FLAT_TOLERANCE:.0%} of the smallest "
        "size's)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_bench", description=__doc__)
    parser.add_argument(
        "--rows", type=int, nargs="+", default=list(DEFAULT_ROWS), help="sizes to measure"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="synthetic data seed")
    parser.add_argument(
        "--keep", action="store_true", help="leave each size's PostgreSQL cluster running"
    )
    args = parser.parse_args(argv)
    if any(rows < 1 for rows in args.rows):
        parser.error("--rows must be positive")
    started = time.monotonic()
    results: list[SizeResult] = []
    try:
        for rows in sorted(set(args.rows)):
            results.append(measure_size(rows, args.seed, args.keep))
    except grpc.RpcError as failure:
        print(f"\nthe upload failed: {failure.code().name}: {failure.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if results:
            log(f"\n{report(results)}\n(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

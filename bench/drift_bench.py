"""`make bench`: one drift detection run over daily statistics, against a GROUP BY over the
raw claims they summarise.

On a throwaway PostgreSQL with every service migrated, N synthetic claims of one customer
are written set-wise (`generate_series`, about 200 payers × 5 code groups, so about 1,000
payer × code-group cells over the days a run reads (its windows and the persistence days
before them, and the same weeks a year earlier: about 580) and a month more, a few payers
drifting in the current window), and `ingest.daily_stats` is built from them by ingest's own
counting (`services.ingest.daily_statistics`).
Then, timed in the same run:

- five times, what a drift run does: read the daily statistics its windows cover
  (baseline, current, the persistence days and their seasons a year earlier) as one series
  per payer × code group,
  histogram and CARC entries summed over the spans its windows begin, and run `detect` with
  the default `DetectionConfig`. The statistics are read two ways: with ingest's query and
  message building on a psycopg connection as the admin user (no gRPC, no ingest process),
  and the real way, `IngestClient.daily_stat_series` over gRPC from a running
  `python -m services.ingest`;
- three times, the reference: the same window aggregated from `ingest.claims` with one
  GROUP BY.

A run's figure is the median of its five: the first, in a process that has not yet read
anything this large (ingest's or the bench's own, as a service after a restart), is
the slowest, and a median of three would rest on the second alone.

The figures are printed with the target (≤ 1 s per run) beside them; nothing is
asserted, and the exit status is 0 unless something broke.

    python -m bench.drift_bench [--claims 10000000] [--cells 1000] [--keep] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
from psycopg import sql

from bench.ingest_bench import ingest_process, log, throwaway_cluster, verdict
from runtime import schemas
from runtime.auth import service_token
from runtime.clients import open_channel
from runtime.memory import keep_freed_memory
from runtime.server import freeze_startup_heap
from runtime.settings import Settings
from services.drift.config import DetectionConfig
from services.drift.detection import (
    Detection,
    Windows,
    detect,
    first_day_read,
    span_starts_read,
    windows_for,
)
from services.drift.ingest_client import (
    IngestClient,
    entry_spans,
    joined,
    series_from_message,
)
from services.drift.series import CellSeries
from services.ingest.daily_statistics import COUNT_TABLES, apply_counts, count_in, version
from services.ingest.months import series_of_rows, span_starts
from services.ingest.server import daily_stat_series_messages
from services.ingest.store import SERIES_QUERY, series_parameters

DEFAULT_CLAIMS = 10_000_000
DEFAULT_CELLS = 1000
CUSTOMER = "bench-drift"
# A fixed date, so that every run draws the same days and windows.
AS_OF = dt.date(2026, 6, 30)
# A month longer than what a run reads with the default windows (baseline, current and the
# persistence days): the read must select, not take everything.
HISTORY_DAYS = (AS_OF - first_day_read(AS_OF, DetectionConfig())).days + 1 + 30
# Detection runs timed (the median is the figure), and runs of each GROUP BY.
RUNS = 5
REPEATS = 3
# Each batch commits on its own, so the fill reports progress and never holds 10M rows of WAL.
BATCH_CLAIMS = 500_000
SEED = 0.42
TARGET_SECONDS = 1.0
# How many functions --profile lists.
PROFILE_TOP = 30

# (code group, a procedure code of it): five clinical areas per payer.
CODE_GROUPS = (
    ("EVALUATION_MANAGEMENT", "99213"),
    ("SURGERY", "27447"),
    ("RADIOLOGY", "71046"),
    ("LABORATORY", "80053"),
    ("MEDICINE", "90471"),
)
DENIAL_CODES = ("CO-50", "CO-97", "CO-16", "CO-197", "CO-4", "PR-204")
# One payer in DRIFT_EVERY drifts in the current window, each on one metric in turn (denial
# rate, days to decision, payment ratio, denial reasons), so `detect` finds something to report.
DRIFT_EVERY = 25

# Layered, because PostgreSQL evaluates every random() call apart and a column can only use
# the layer below: draw, then drift and denial rate per payer, then the claim, then its row.
_FILL = """
INSERT INTO ingest.claims (customer_id, claim_uid, claim_id, payer_key, payer_uid, payer,
    payer_raw_name, payer_raw_id, status, denied, partially_denied, procedure_codes,
    code_group, service_date, submitted_date, decision_date, decision_days, billed_cents,
    allowed_cents, paid_cents, patient_responsibility_cents, adjustments, denial_codes,
    payer_claim_control_number, upload_id, source_line)
SELECT %(customer)s, substr(md5(payer_key || '|' || claim_id), 1, 20), claim_id, payer_key,
       substr(md5(payer_key || '|'), 1, 16), payer_key, payer_key, '',
       CASE WHEN denied THEN 'DENIED' ELSE 'PAID' END, denied, partially_denied,
       ARRAY[(%(procedure_codes)s::text[])[group_no]], (%(code_groups)s::text[])[group_no],
       decision_date - decision_days - 2, decision_date - decision_days, decision_date,
       decision_days, billed, allowed, paid, allowed - paid, '[]'::jsonb,
       CASE WHEN denied OR partially_denied THEN ARRAY[denial_code] ELSE '{}' END,
       'PCN' || claim_no, 'u_bench', claim_no
FROM (
    SELECT claim_no, 'C' || claim_no AS claim_id,
           'PAYER ' || lpad(payer_no::text, 4, '0') AS payer_key, group_no, decision_date,
           decision_days + CASE WHEN drift = 1 THEN 12 ELSE 0 END AS decision_days,
           billed, denied, partially_denied,
           CASE WHEN denied THEN 0 ELSE round(billed * 0.7)::bigint END AS allowed,
           CASE WHEN denied THEN 0
                ELSE round(billed * 0.7 * (pay_share - CASE WHEN drift = 2 THEN 0.1 ELSE 0 END))
           END::bigint AS paid,
           CASE WHEN drift = 3 THEN 'CO-197'
                ELSE (%(denial_codes)s::text[])[1 + floor(code_draw * %(denial_code_count)s)::int]
           END AS denial_code
    FROM (
        SELECT *, denial_draw < denial_rate AS denied,
               denial_draw >= denial_rate AND partial_draw < 0.05 AS partially_denied
        FROM (
            SELECT *, 0.04 + 0.16 * mod(payer_no * 7, 13) / 12.0
                      + CASE WHEN drift = 0 THEN 0.1 ELSE 0 END AS denial_rate
            FROM (
                SELECT *, CASE WHEN decision_date >= %(current_start)s
                               THEN mod(payer_no, %(drift_every)s) ELSE -1 END AS drift
                FROM (
                    SELECT claim_no,
                           floor(random() * %(payers)s)::int AS payer_no,
                           1 + floor(random() * %(group_count)s)::int AS group_no,
                           %(as_of)s::date - floor(random() * %(history_days)s)::int
                               AS decision_date,
                           1 + floor(random() * 60)::int AS decision_days,
                           5000 + floor(random() * 195000)::bigint AS billed,
                           0.75 + 0.1 * random() AS pay_share,
                           random() AS denial_draw, random() AS partial_draw,
                           random() AS code_draw
                    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS claim_no
                ) drawn
            ) drifting
        ) rated
    ) decided
) claims
"""


# The scope of claims the daily statistics count, restricted to the detection window.
_WINDOW_CLAIMS = """
FROM ingest.claims
WHERE customer_id = %(customer)s AND status <> 'REVERSED'
  AND decision_date BETWEEN %(start)s AND %(end)s
"""
_CLAIM_SUMS = """
count(*) AS decided, count(*) FILTER (WHERE denied) AS denied,
count(*) FILTER (WHERE partially_denied) AS partially_denied,
sum(billed_cents) AS billed,
sum(coalesce(allowed_cents, paid_cents + patient_responsibility_cents)) AS allowed,
sum(paid_cents) AS paid, coalesce(sum(billed_cents) FILTER (WHERE denied), 0) AS denied_billed
"""
# The denial-rate comparison's numbers straight from the claims: per payer × code group ×
# window. A plain GROUP BY, so PostgreSQL may aggregate in parallel.
GROUP_BY_COUNTS = (
    "SELECT payer, code_group, decision_date >= %(current_start)s AS is_current, "
    + _CLAIM_SUMS
    + _WINDOW_CLAIMS
    + "GROUP BY payer, code_group, is_current"
)
# Everything `detect` reads, from the claims in one scan: per-day sums (window totals and the
# daily paid/allowed of the payment ratio), the days-to-decision histogram and the denial
# codes per window. Code arrays are grouped as they are; counting each code is the client's.
GROUP_BY_ALL_INPUTS = (
    "SELECT payer, code_group, decision_date, decision_days, denial_codes, "
    "decision_date >= %(current_start)s AS is_current, "
    + _CLAIM_SUMS
    + _WINDOW_CLAIMS
    + "GROUP BY GROUPING SETS ((payer, code_group, decision_date), "
    "(payer, code_group, is_current, decision_days), "
    "(payer, code_group, is_current, denial_codes))"
)


def seconds_since(started: float) -> float:
    return time.perf_counter() - started


# --- Database and data ----------------------------------------------------------------------


def migrate_all(admin_url: str) -> str:
    """Every service's schema and roles, migrated to head; returns ingest's app-role URL."""
    passwords = schemas.local_passwords()
    schemas.bootstrap(admin_url, passwords)
    for service in schemas.SERVICES:
        owner = schemas.role_name(service, "owner")
        schemas.migrate(service, schemas.service_url(admin_url, service, "owner", passwords[owner]))
    app = schemas.role_name("ingest", "app")
    return schemas.service_url(admin_url, "ingest", "app", passwords[app])


def fill_claims(admin_url: str, claims: int, payers: int, windows: Windows) -> None:
    """`claims` synthetic claims of CUSTOMER, set-wise in batches, as the admin user."""
    log(f"filling ingest.claims with {claims:,} claims of {payers} payers …")
    parameters: dict[str, Any] = {
        "customer": CUSTOMER,
        "payers": payers,
        "code_groups": [group for group, _ in CODE_GROUPS],
        "procedure_codes": [code for _, code in CODE_GROUPS],
        "group_count": len(CODE_GROUPS),
        "denial_codes": list(DENIAL_CODES),
        "denial_code_count": len(DENIAL_CODES),
        "as_of": AS_OF,
        "history_days": HISTORY_DAYS,
        "current_start": windows.current.start,
        "drift_every": DRIFT_EVERY,
    }
    started = time.perf_counter()
    with psycopg.connect(schemas.libpq_url(admin_url), autocommit=True) as connection:
        # Set-up, not the measured path: a crash would lose a throwaway cluster's last commits.
        connection.execute("SET synchronous_commit = off")
        connection.execute("SELECT setseed(%s)", (SEED,))
        for first in range(1, claims + 1, BATCH_CLAIMS):
            last = min(first + BATCH_CLAIMS - 1, claims)
            connection.execute(_FILL, {**parameters, "first": first, "last": last})
            elapsed = seconds_since(started)
            log(f"  {last:>12,} claims  {elapsed:7.1f} s  ({last / elapsed:,.0f} claims/s)")


async def _refresh_every_day(admin_url: str) -> None:
    url = schemas.libpq_url(admin_url)
    async with (
        await psycopg.AsyncConnection.connect(url) as connection,
        connection.cursor() as cursor,
    ):
        # Every stored claim counted in once, as ingest counts in an upload's new claims.
        await cursor.execute(
            sql.SQL(
                "CREATE TEMPORARY VIEW every_claim AS SELECT 1 AS sign, {} FROM ingest.claims c "
                "WHERE c.customer_id = {}"
            ).format(sql.SQL(version("c")), sql.Literal(CUSTOMER))
        )
        for statement in COUNT_TABLES:
            await cursor.execute(statement)
        await count_in(cursor, "every_claim")
        # Months packed as ingest packs them (`NARROW_MONTH_ENTRIES`).
        narrow = Settings.from_env("ingest").narrow_month_entries
        await apply_counts(cursor, CUSTOMER, narrow=narrow)


def build_daily_stats(admin_url: str) -> int:
    """ingest.daily_stats of every day, by ingest's own SQL; returns its row count."""
    log("building ingest.daily_stats with ingest's counting (every claim) …")
    started = time.perf_counter()
    asyncio.run(_refresh_every_day(admin_url))
    log(f"  built in {seconds_since(started):.1f} s")
    with psycopg.connect(schemas.libpq_url(admin_url)) as connection:
        found = connection.execute(
            "SELECT count(*) FROM ingest.daily_stats WHERE customer_id = %s", (CUSTOMER,)
        ).fetchone()
    return int(found[0]) if found else 0


def settle(admin_url: str) -> None:
    """VACUUM ANALYZE and CHECKPOINT: the first scan after a bulk load would otherwise set hint
    bits and write pages, and whichever timing came first would pay for it."""
    started = time.perf_counter()
    with psycopg.connect(schemas.libpq_url(admin_url), autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) ingest.claims, ingest.daily_stats")
        connection.execute("CHECKPOINT")
    log(f"VACUUM ANALYZE + CHECKPOINT in {seconds_since(started):.1f} s")


# --- Part A: a drift run --------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionRun:
    read_seconds: float
    detect_seconds: float
    series: int
    days: int
    detection: Detection

    @property
    def seconds(self) -> float:
        return self.read_seconds + self.detect_seconds


def timed_detection(read: Callable[[], list[CellSeries]], config: DetectionConfig) -> DetectionRun:
    started = time.perf_counter()
    series = read()
    read_seconds = seconds_since(started)
    started = time.perf_counter()
    detection = detect(series, AS_OF, config)
    days = sum(one.days.size for one in series)
    return DetectionRun(read_seconds, seconds_since(started), len(series), days, detection)


def median_run(name: str, read: Callable[[], list[CellSeries]]) -> DetectionRun:
    """RUNS timed runs, each printed; returns the one with the median total."""
    config = DetectionConfig()
    runs = []
    for repeat in range(1, RUNS + 1):
        run = timed_detection(read, config)
        runs.append(run)
        log(
            f"  {name} #{repeat}: read {run.read_seconds:.2f} s ({run.series:,} series, "
            f"{run.days:,} days) "
            f"+ detect {run.detect_seconds:.2f} s = {run.seconds:.2f} s; cells tested "
            f"{run.detection.cells_tested:,}, skipped {run.detection.cells_skipped:,}, "
            f"findings {len(run.detection.findings)}"
        )
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def _first_day(windows: Windows) -> dt.date:
    """The first day a run reads: its baseline, and the days its findings must have held."""
    return first_day_read(windows.current.end, DetectionConfig())


def _span_starts(windows: Windows) -> set[dt.date]:
    """The spans a run sums its histogram and CARC entries over."""
    return span_starts_read(windows.current.end, DetectionConfig())


@contextmanager
def direct_reader(admin_url: str, windows: Windows) -> Iterator[Callable[[], list[CellSeries]]]:
    """Reads the window from ingest.daily_stats as the admin user, with ingest's own query
    and message building, on one open connection (as ingest's pool keeps its own)."""
    with psycopg.connect(schemas.libpq_url(admin_url), autocommit=True) as connection:

        def read() -> list[CellSeries]:
            start, end = _first_day(windows), windows.current.end
            edges = _span_starts(windows)
            spans = span_starts(edges, start, end)
            months = connection.execute(
                SERIES_QUERY, series_parameters(CUSTOMER, [], start, end), binary=True
            ).fetchall()
            # Once for every series, as the client does.
            read_spans = entry_spans(start, end, edges)
            return joined(
                [
                    series_from_message(message, read_spans)
                    for series in series_of_rows(months, start, end, spans)
                    for message in daily_stat_series_messages(series, packed=True)
                ]
            )

        yield read


@contextmanager
def grpc_reader(
    target: str, settings: Settings, windows: Windows
) -> Iterator[Callable[[], list[CellSeries]]]:
    """Reads the window as drift does: `IngestClient.daily_stat_series` on a channel opened like
    drift's (service token, same interceptors), kept open across runs like drift's."""
    with asyncio.Runner() as runner:

        async def connect() -> grpc.aio.Channel:
            return open_channel(
                target,
                "upstream.ingest.v1.IngestService",
                default_timeout=settings.client_timeout_seconds,
                authorization=lambda: f"Bearer {service_token(settings)}",
            )

        channel = runner.run(connect())
        client = IngestClient(channel)
        try:
            yield lambda: runner.run(
                client.daily_stat_series(
                    CUSTOMER, _first_day(windows), windows.current.end, _span_starts(windows)
                )
            )
        finally:
            runner.run(channel.close())


def profile_detect(read: Callable[[], list[CellSeries]]) -> str:
    """cProfile of one `detect` over the window, the top functions by cumulative time and by
    their own time."""
    stats = read()
    profiler = cProfile.Profile()
    profiler.runcall(detect, stats, AS_OF, DetectionConfig())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(PROFILE_TOP)
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(PROFILE_TOP)
    return out.getvalue()


# --- Part B: the GROUP BY over raw claims --------------------------------------------------


def median_group_by(admin_url: str, name: str, query: str, windows: Windows) -> float:
    """REPEATS runs of `query` with every row fetched, each printed; the median seconds."""
    parameters = {
        "customer": CUSTOMER,
        "start": windows.baseline.start,
        "end": windows.current.end,
        "current_start": windows.current.start,
    }
    times = []
    with psycopg.connect(schemas.libpq_url(admin_url), autocommit=True) as connection:
        for repeat in range(1, REPEATS + 1):
            started = time.perf_counter()
            rows = connection.execute(query, parameters).fetchall()
            times.append(seconds_since(started))
            log(f"  {name} #{repeat}: {times[-1]:.2f} s ({len(rows):,} rows)")
    return statistics.median(times)


# --- The report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    claims: int
    daily_stats_rows: int
    direct: DetectionRun
    grpc: DetectionRun
    group_by_counts_seconds: float
    group_by_all_seconds: float
    # One-minute load averages when the timings began and ended: on a shared machine the
    # figures mean little without them.
    load_before: float
    load_after: float


def _detection_line(run: DetectionRun) -> str:
    return (
        f"{run.seconds:.2f} s (read {run.read_seconds:.2f} + detect {run.detect_seconds:.2f})  "
        f"{verdict(run.seconds <= TARGET_SECONDS)}"
    )


def report(figures: Figures) -> str:
    direct, grpc_run = figures.direct, figures.grpc
    detection = direct.detection
    counts, everything = figures.group_by_counts_seconds, figures.group_by_all_seconds
    stats_rows = f"{figures.daily_stats_rows:,} / {direct.days:,} in {direct.series:,} series"
    load = f"{figures.load_before:.1f} → {figures.load_after:.1f} on {os.cpu_count()} CPUs"
    rows = (
        ("claims", f"{figures.claims:,}"),
        ("daily_stats rows (all / in window)", stats_rows),
        ("cells tested / skipped", f"{detection.cells_tested:,} / {detection.cells_skipped:,}"),
        ("findings", f"{len(detection.findings)}"),
        ("detection run, psycopg read (admin)", _detection_line(direct)),
        ("detection run, gRPC read (ingest)", _detection_line(grpc_run)),
        ("GROUP BY raw claims, denial counts", f"{counts:.2f} s"),
        ("GROUP BY raw claims, every input", f"{everything:.2f} s"),
        ("ratio GROUP BY counts / run (gRPC)", f"{counts / grpc_run.seconds:.2f}"),
        ("ratio GROUP BY inputs / run (gRPC)", f"{everything / grpc_run.seconds:.2f}"),
        ("load average during timings", load),
        ("target", f"detection run ≤ {TARGET_SECONDS:.0f} s (read + detect, median of {RUNS})"),
    )  # fmt: skip
    width = max(len(title) for title, _ in rows)
    return "\n".join(f"{title.ljust(width)}  {value}" for title, value in rows)


def measure(admin_url: str, claims: int, cells: int, profile: bool) -> Figures:
    windows = windows_for(AS_OF, DetectionConfig())
    ingest_url = migrate_all(admin_url)
    payers = max(1, cells // len(CODE_GROUPS))
    started = time.perf_counter()
    fill_claims(admin_url, claims, payers, windows)
    log(f"  filled in {seconds_since(started):.1f} s")
    daily_stats_rows = build_daily_stats(admin_url)
    log(f"  {daily_stats_rows:,} daily_stats rows")
    settle(admin_url)
    load_before = os.getloadavg()[0]
    log(
        f"\nA. drift runs as of {AS_OF}: baseline {windows.baseline.start}..{windows.baseline.end}"
        f", current {windows.current.start}..{windows.current.end}, default DetectionConfig"
    )
    with direct_reader(admin_url, windows) as read:
        direct = median_run("psycopg read from ingest.daily_stats as admin", read)
        if profile:
            log(profile_detect(read))
    with (
        ingest_process(ingest_url) as ingest,
        grpc_reader(ingest.target, ingest.settings, windows) as read,
    ):
        grpc_run = median_run("gRPC IngestClient.daily_stat_series from services.ingest", read)
    log("\nB. the same window as one GROUP BY over ingest.claims (every row fetched)")
    counts = median_group_by(
        admin_url, "per payer × code group × window: counts and sums", GROUP_BY_COUNTS, windows
    )
    everything = median_group_by(
        admin_url,
        "grouping sets: per-day sums, days histogram, denial codes",
        GROUP_BY_ALL_INPUTS,
        windows,
    )
    return Figures(
        claims,
        daily_stats_rows,
        direct,
        grpc_run,
        counts,
        everything,
        load_before,
        os.getloadavg()[0],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_bench", description=__doc__)
    parser.add_argument("--claims", type=int, default=DEFAULT_CLAIMS, help="synthetic claims")
    parser.add_argument(
        "--cells",
        type=int,
        default=DEFAULT_CELLS,
        help=f"payer × code-group cells (payers × {len(CODE_GROUPS)})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the PostgreSQL cluster running afterwards"
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one detect run")
    args = parser.parse_args(argv)
    if args.claims < 1 or args.cells < 1:
        parser.error("--claims and --cells must be positive")
    # This process reads and detects as the drift process does: with its allocator settings,
    # and what starting made out of the cyclic collector's sight.
    keep_freed_memory()
    freeze_startup_heap()
    started = time.perf_counter()
    with throwaway_cluster(args.keep) as admin_url:
        figures = measure(admin_url, args.claims, args.cells, args.profile)
    log(f"\n{report(figures)}\n(whole run {seconds_since(started):.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make soak`: half the knee for a long time (20 minutes by default), sampling every few
seconds the memory of every process of the system, the database connections and the outbox
backlog of each service that has one. Prints first, last, lowest and highest of each, and
whether memory stayed within ±10 % after the warm-up and connections and backlogs stayed
level. The figures are printed, never asserted.

The soak's uploads add claims (a million in 20 minutes), and a process's memory follows the
data it works on (a drift run holds the customer's statistics, a report build the period's).
So memory is also judged against a reference of the same run: every process restarted over
the data the soak left and given the same mix for a short while (an upload, a report of
each kind, the reads); a process that kept more than fresh ones need for the same work has
accumulated something."""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import json
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from bench.ingest_bench import log
from bench.load import harness
from bench.load.plan import Plan
from devtools.stack import grpc_serving, http_ok, wait_until
from runtime import schemas
from runtime.outbox import OUTBOX_SERVICES
from tests.system import SERVICES, System

SOAK_SECONDS = 1200.0
SAMPLE_SECONDS = 5.0
# Memory is judged from the first sample after this long: caches, pools and the first
# upload have grown by then.
WARMUP_SECONDS = 120.0
# The fresh processes' run: one upload at its start, a report of every kind (one every 30 s,
# from the 5th second), the interactive users at the soak's rate throughout.
REFERENCE_SECONDS = 150.0
REFERENCE_REPORT_EVERY_SECONDS = 30.0
RSS_TOLERANCE = 0.10
MB = 1024 * 1024


@dataclass
class Samples:
    """Time series sampled together: seconds since the start, then one value per series."""

    seconds: list[float] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)

    def add(self, at: float, values: dict[str, float]) -> None:
        self.seconds.append(at)
        for name, value in values.items():
            self.series.setdefault(name, []).append(value)

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["seconds", *self.series])
            for i, at in enumerate(self.seconds):
                writer.writerow([f"{at:.1f}", *(values[i] for values in self.series.values())])


def _postgres_processes(connection: psycopg.Connection[tuple[object, ...]]) -> list[psutil.Process]:
    row = connection.execute("SHOW data_directory").fetchone()
    assert row is not None
    postmaster = int((Path(str(row[0])) / "postmaster.pid").read_text().split()[0])
    process = psutil.Process(postmaster)
    return [process, *process.children()]


def _sample(system: System, connection: psycopg.Connection[tuple[object, ...]]) -> dict[str, float]:
    values = {}
    for name, process in system.stack.processes:
        values[f"{name} RSS MB"] = psutil.Process(process.pid).memory_info().rss / MB
    # PostgreSQL's processes share their buffers: the proportional set sizes add up to what
    # the server holds, where RSS would count the shared pages once per process.
    pss = 0.0
    for process in _postgres_processes(connection):
        with contextlib.suppress(psutil.NoSuchProcess):  # a backend that ended meanwhile
            pss += process.memory_full_info().pss
    values["postgres PSS MB"] = pss / MB
    row = connection.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    ).fetchone()
    assert row is not None
    values["database connections"] = float(row[0])  # type: ignore[arg-type]
    for service in OUTBOX_SERVICES:
        row = connection.execute(
            sql.SQL("SELECT count(*) FROM {}.outbox WHERE published_time IS NULL").format(
                sql.Identifier(service)
            )
        ).fetchone()
        assert row is not None
        values[f"{service} outbox unpublished"] = float(row[0])  # type: ignore[arg-type]
    return values


@contextmanager
def sampling(system: System, admin_url: str, every: float) -> Iterator[Samples]:
    """Samples taken every `every` seconds in a thread while the block runs."""
    samples = Samples()
    stopping = threading.Event()
    started = time.monotonic()

    def sample_until_stopped() -> None:
        with psycopg.connect(schemas.libpq_url(admin_url), autocommit=True) as connection:
            while not stopping.is_set():
                samples.add(time.monotonic() - started, _sample(system, connection))
                stopping.wait(every)

    thread = threading.Thread(target=sample_until_stopped, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stopping.set()
        thread.join(timeout=30)


def _quarter_means(values: Sequence[float]) -> tuple[float, float]:
    """The means of the first and the last quarter of `values`: a trend, where the first and
    last samples may fall anywhere in a cycle of uploads and reports."""
    quarter = max(len(values) // 4, 1)
    return statistics.fmean(values[:quarter]), statistics.fmean(values[-quarter:])


def _memory_verdict(values: Sequence[float]) -> str:
    if not values:
        return "no sample after the warm-up"
    reference = values[0]
    low, high = min(values) / reference - 1, max(values) / reference - 1
    within = low >= -RSS_TOLERANCE and high <= RSS_TOLERANCE
    first, last = _quarter_means(values)
    return (
        f"{'within' if within else 'OUTSIDE'} ±10 % ({low:+.1%} … {high:+.1%}); "
        f"quarter means {first:,.1f} → {last:,.1f}"
    )


def _level_verdict(values: Sequence[float]) -> str:
    """Level when the last quarter's mean is no higher than the first quarter's (with a
    tenth and one unit of slack); growing otherwise."""
    first, last = _quarter_means(values)
    level = last <= first * (1 + RSS_TOLERANCE) + 1
    return f"{'level' if level else 'GROWING'}; quarter means {first:.1f} → {last:.1f}"


def _fresh_verdict(values: Sequence[float], fresh: Sequence[float]) -> str:
    """The last quarter's mean against the most fresh processes took for the same mix."""
    if not values or not fresh:
        return "no reference"
    _, last = _quarter_means(values)
    reference = max(fresh)
    level = last <= reference * (1 + RSS_TOLERANCE)
    return (
        f"{'level with' if level else 'ABOVE'} fresh processes ({last:,.1f} against "
        f"{reference:,.1f}, {last / reference - 1:+.1%})"
    )


def figures(samples: Samples, warmup_seconds: float, fresh: Samples | None = None) -> str:
    """A Markdown table: each series' first, last, lowest and highest sample and a verdict
    judged on the samples after the warm-up; with `fresh` (the reference run's samples),
    each memory series also against the most the fresh processes took."""
    after = [i for i, at in enumerate(samples.seconds) if at >= warmup_seconds]
    lines = [
        f"{len(samples.seconds)} samples over {samples.seconds[-1]:.0f} s; verdicts from "
        f"{warmup_seconds:g} s on ({len(after)} samples)"
        + (
            f"; fresh processes: {len(fresh.seconds)} samples over {fresh.seconds[-1]:.0f} s"
            if fresh and fresh.seconds
            else ""
        ),
        "",
        "| series | first | last | min | max | |" + (" against fresh processes |" if fresh else ""),
        "|:--|--:|--:|--:|--:|:--|" + (":--|" if fresh else ""),
    ]
    for name, values in samples.series.items():
        judged = [values[i] for i in after]
        memory = "MB" in name
        verdict = _memory_verdict(judged) if memory else _level_verdict(judged or values)
        line = (
            f"| {name} | {values[0]:,.1f} | {values[-1]:,.1f} | {min(values):,.1f} "
            f"| {max(values):,.1f} | {verdict} |"
        )
        if fresh:
            # The processes restarted (PostgreSQL is not: it holds the data).
            restarted = name.endswith(" RSS MB")
            reference = fresh.series.get(name, []) if restarted else []
            line += f" {_fresh_verdict(judged, reference) if restarted else ''} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def fresh_reference(
    plan: Plan, system: System, admin_url: str, every: float
) -> tuple[Samples, Path]:
    """Every service and the gateway restarted over the data the soak left, then the same
    mix for REFERENCE_SECONDS (one upload, a report of every kind, the interactive users at
    the soak's rate), sampled as the soak was; the samples and the run's folder."""
    for service in SERVICES:
        system.stack.restart(service)
    for service in SERVICES:
        wait_until(service, functools.partial(grpc_serving, system.targets[service]), system.stack)
    system.stack.restart("gateway")
    wait_until("gateway", lambda: http_ok(f"{system.gateway_url}/readyz"), system.stack)
    reference = dataclasses.replace(
        plan,
        seconds=REFERENCE_SECONDS,
        upload_first_seconds=5.0,
        upload_every_seconds=REFERENCE_SECONDS * 10,
        report_every_seconds=REFERENCE_REPORT_EVERY_SECONDS,
        output=str(Path(plan.output) / "fresh"),
    )
    with sampling(system, admin_url, every) as samples:
        harness.run_locust(reference, system.env["JWT_SECRET"])
    return samples, Path(reference.output)


def _known_knee() -> tuple[float, Path] | None:
    """The knee of the newest step run here, else that of the step run kept as the baseline
    (`bench/baselines/steps.json`), and where it was read."""
    folder = harness.latest_run("steps")
    candidates = [folder / "summary.json"] if folder is not None else []
    for path in [*candidates, harness.baseline_path("steps")]:
        if path.exists() and (found := json.loads(path.read_text()).get("knee")):
            return float(found), path
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=SOAK_SECONDS)
    parser.add_argument(
        "--knee", type=float, help="requests a second (default: the latest step run's knee)"
    )
    parser.add_argument("--sample-seconds", type=float, default=SAMPLE_SECONDS)
    parser.add_argument("--warmup-seconds", type=float, default=WARMUP_SECONDS)
    parser.add_argument("--upload-rows", type=int, default=harness.UPLOAD_ROWS)


def main(args: argparse.Namespace) -> int:
    knee = args.knee
    if not knee:
        known = _known_knee()
        if known is None:
            log("no knee: give one (make soak KNEE=60) or find it first (make load PROFILE=steps)")
            return 2
        knee, source = known
        log(f"the knee of {source}: {knee:g} requests a second")
    plan = Plan(
        profile="fixed",
        rate=knee / 2,
        seconds=args.seconds,
        output=str(harness.new_run_folder("soak")),
    )
    log(f"soak: {knee / 2:g} requests a second (half the knee, {knee:g}) for {args.seconds:g} s")
    with harness.demo_system(plan, args.upload_rows) as (plan, system, admin_url, deliveries):
        with sampling(system, admin_url, args.sample_seconds) as samples:
            harness.run_locust(plan, system.env["JWT_SECRET"])
        harness.finish(plan, deliveries)
        log(
            f"\nthe reference: every process restarted over the data the soak left, the same "
            f"mix for {REFERENCE_SECONDS:g} s …"
        )
        fresh, fresh_folder = fresh_reference(plan, system, admin_url, args.sample_seconds)
    folder = Path(plan.output)
    samples.write(folder / "samples.csv")
    fresh.write(fresh_folder / "samples.csv")
    table = figures(samples, args.warmup_seconds, fresh)
    (folder / "soak.md").write_text(table)
    log(f"\n{table}\nsamples: {folder}/samples.csv; figures: {folder}/soak.md")
    return 0

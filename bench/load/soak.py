"""`make soak`: half the knee for a long time (20 minutes by default), sampling every few
seconds the memory of every process of the system, the database connections and the outbox
backlog of each service that has one. Prints first, last, lowest and highest of each, and
whether memory stayed within ±10 % after the warm-up and connections and backlogs stayed
level. The figures are printed, never asserted."""

from __future__ import annotations

import argparse
import contextlib
import csv
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
from runtime import schemas
from runtime.outbox import OUTBOX_SERVICES
from tests.system import System

SOAK_SECONDS = 1200.0
SAMPLE_SECONDS = 5.0
# Memory is judged from the first sample after this long: caches, pools and the first
# upload have grown by then.
WARMUP_SECONDS = 120.0
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


def figures(samples: Samples, warmup_seconds: float) -> str:
    """A Markdown table: each series' first, last, lowest and highest sample and a verdict
    judged on the samples after the warm-up."""
    after = [i for i, at in enumerate(samples.seconds) if at >= warmup_seconds]
    lines = [
        f"{len(samples.seconds)} samples over {samples.seconds[-1]:.0f} s; verdicts from "
        f"{warmup_seconds:g} s on ({len(after)} samples)",
        "",
        "| series | first | last | min | max | |",
        "|:--|--:|--:|--:|--:|:--|",
    ]
    for name, values in samples.series.items():
        judged = [values[i] for i in after]
        verdict = _memory_verdict(judged) if "MB" in name else _level_verdict(judged or values)
        lines.append(
            f"| {name} | {values[0]:,.1f} | {values[-1]:,.1f} | {min(values):,.1f} "
            f"| {max(values):,.1f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


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
    with (
        harness.demo_system(plan, args.upload_rows) as (plan, system, admin_url, deliveries),
        sampling(system, admin_url, args.sample_seconds) as samples,
    ):
        harness.run_locust(plan, system.env["JWT_SECRET"])
    harness.finish(plan, deliveries)
    folder = Path(plan.output)
    samples.write(folder / "samples.csv")
    table = figures(samples, args.warmup_seconds)
    (folder / "soak.md").write_text(table)
    log(f"\n{table}\nsamples: {folder}/samples.csv; figures: {folder}/soak.md")
    return 0

"""A load run from start to end: a fresh system with the demo data, locust as a subprocess
with the plan, then the summary of what it measured, kept under `.local/load/`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.export_bench import migrate
from bench.ingest_bench import DATA_DIR, cached_csv, log, throwaway_cluster
from bench.load.machine import probe_ms
from bench.load.plan import Plan
from bench.load.summary import (
    knee,
    latency_samples,
    markdown,
    read_requests,
    route_reports,
    step_result,
    steps_summary,
    within,
)
from devtools import demo
from runtime import schemas
from runtime.settings import LOCAL_DIR, REPO_ROOT
from tests.reports.webhook_receiver import Received, Receiver, receiving
from tests.system import UNLIMITED, System, running_system

LOAD_DIR = LOCAL_DIR / "load"
BASELINE_DIR = REPO_ROOT / "bench" / "baselines"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# The system as it runs in production, but for rate limits no client of one machine could
# reach (they would measure the limiter, not the system) and no tracing (its spans would
# pile up in this process).
SYSTEM_SETTINGS = {
    **UNLIMITED,
    "OTEL_TRACES_EXPORTER": "none",
    "UPLOAD_MERGE_ROWS": "100000",
    "LOG_LEVEL": "WARNING",
}
UPLOAD_ROWS = 100_000
LOCUST_STOP_TIMEOUT_SECONDS = 30


@dataclass
class Deliveries:
    """What the webhook receiver got: deliveries by event type, repeated ids."""

    by_type: Counter[str] = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)
    repeated: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, message_id: str, event_type: str) -> None:
        with self.lock:
            self.by_type[event_type] += 1
            self.repeated += message_id in self.ids
            self.ids.add(message_id)

    def as_json(self) -> dict[str, Any]:
        with self.lock:
            return {"byType": dict(self.by_type), "repeated": self.repeated}


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, Deliveries]]:
    """A webhook receiver on 127.0.0.1 (the tests' one) answering every delivery with 204,
    counting them; its URL and counts."""
    deliveries = Deliveries()

    def count(request: Received) -> tuple[int, bytes, dict[str, str]]:
        try:
            event_type = str(json.loads(request.body).get("type", "?"))
        except ValueError:
            event_type = "?"
        deliveries.add(request.headers.get("webhook-id", ""), event_type)
        return 204, b"", {}

    with receiving(Receiver(answer=count)) as receiver:
        yield receiver.url("/hooks"), deliveries


@contextmanager
def fresh_system() -> Iterator[tuple[System, str]]:
    """A new PostgreSQL under `.local/bench-pg-*`, migrated, the three services and the
    gateway on free ports of 127.0.0.1; the system and the database's admin URL. Everything
    is stopped and removed afterwards."""
    with throwaway_cluster(keep=False) as admin_url:
        urls = migrate(admin_url, schemas.SERVICES)
        with running_system(urls, **SYSTEM_SETTINGS) as system:
            yield system, admin_url


def load_demo(system: System, webhook_url: str) -> str:
    """`make run`'s demo customer: its webhook to `webhook_url`, its uploads, the detection
    they start and a first scorecard. The webhook's name."""
    webhook = demo.subscribe(
        system.gateway_url, system.settings, webhook_url, display_name="load receiver"
    )
    for upload in demo.load(system.gateway_url, system.settings):
        log(f"  {upload['name']}: {upload['rowsAccepted']} claims")
    demo.scorecard(system.gateway_url, system.settings)
    return webhook


def claims_to_upload(rows: int) -> Path:
    """A claims CSV of the demo customer's payers and period, `rows` rows, written once."""
    scenario = dataclasses.replace(demo.SCENARIO, claims=rows)
    name = f"{scenario.customer}-claims-{rows}-seed{scenario.seed}.csv"
    return cached_csv(scenario, DATA_DIR / name)


def run_locust(plan: Plan, jwt_secret: str) -> None:
    """Locust, headless, with `plan`, until its shape ends; its output in `locust.log`."""
    folder = Path(plan.output)
    folder.mkdir(parents=True, exist_ok=True)
    plan.write(folder / "plan.json")
    command = [
        str(Path(sys.executable).with_name("locust")),
        "-f", str(LOCUSTFILE),
        "--headless",
        "--host", plan.gateway_url,
        "--plan", str(folder / "plan.json"),
        "--only-summary",
        "--stop-timeout", str(LOCUST_STOP_TIMEOUT_SECONDS),
        "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "JWT_SECRET": jwt_secret}
    with (folder / "locust.log").open("wb") as output:
        # Locust's exit status says whether any request failed; the summary says which.
        subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    if not (folder / "requests.csv").exists():
        tail = (folder / "locust.log").read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError("locust wrote no requests.csv:\n" + "\n".join(tail))


def summarise(plan: Plan, **extra: Any) -> dict[str, Any]:
    """The run's summary from the requests locust recorded: per route a ghz report over the
    measured window (a step run's: its knee's step, else its first), a step run's steps and
    knee, and `extra`. Written to `summary.json` and `summary.md` in the run's folder."""
    folder = Path(plan.output)
    requests = read_requests(folder / "requests.csv")
    run = json.loads((folder / "run.json").read_text())
    stages = plan.stages()[: max(run["stagesRun"], 1)]
    summary: dict[str, Any] = {
        "profile": plan.profile,
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "plan": dataclasses.asdict(plan),
        **extra,
    }
    window = stages[0]
    if plan.profile == "steps":
        steps = [step_result(requests, run["start"], s, plan.p99_target_ms) for s in stages]
        summary.update(steps_summary(steps, plan.p99_target_ms))
        rate = knee(steps)
        window = next((s for s in stages if s.rate == rate), stages[0])
    start = run["start"] + window.measured_from
    end = min(run["start"] + window.end, run["end"])
    summary["measuredSeconds"] = end - start
    measured = within(requests, start, end)
    summary["routes"] = route_reports(measured, end - start, plan.targets, plan.gateway_url)
    summary["latencySamplesMs"] = latency_samples(measured)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (folder / "summary.md").write_text(markdown(summary))
    return summary


def new_run_folder(profile: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return (LOAD_DIR / f"{profile}-{stamp}").relative_to(REPO_ROOT)


def latest_run(profile: str) -> Path | None:
    """The folder of the newest run of `profile` that has a summary."""
    runs = sorted(LOAD_DIR.glob(f"{profile}-*/summary.json"))
    return runs[-1].parent if runs else None


def baseline_path(profile: str) -> Path:
    return BASELINE_DIR / f"{profile}.json"


def save_baseline(summary: dict[str, Any]) -> Path:
    BASELINE_DIR.mkdir(exist_ok=True)
    path = baseline_path(summary["profile"])
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


@contextmanager
def demo_system(plan: Plan, upload_rows: int) -> Iterator[tuple[Plan, System, str, Deliveries]]:
    """A fresh system with the demo data and a webhook receiver; `plan` completed with
    where they are, the system, the database's admin URL and the receiver's counts."""
    upload_file = claims_to_upload(upload_rows) if upload_rows else None
    log("starting PostgreSQL, the services and the gateway …")
    with fresh_system() as (system, admin_url), webhook_receiver() as (receiver, deliveries):
        log("loading the demo data …")
        webhook = load_demo(system, receiver)
        plan = dataclasses.replace(
            plan,
            gateway_url=system.gateway_url,
            targets=dict(system.targets),
            webhook=webhook,
            upload_file=str(upload_file.relative_to(REPO_ROOT)) if upload_file else "",
        )
        stages = plan.stages()
        log(
            f"locust: {plan.profile} profile, {stages[0].rate:g}"
            + (f" to {stages[-1].rate:g}" if len(stages) > 1 else "")
            + f" requests a second, up to {stages[-1].end:g} s; output in {plan.output}/"
        )
        yield plan, system, admin_url, deliveries


def finish(plan: Plan, deliveries: Deliveries, **extra: Any) -> dict[str, Any]:
    """The run's summary with the webhook deliveries received and `extra`, written and
    printed."""
    summary = summarise(plan, webhookDeliveries=deliveries.as_json(), **extra)
    log("\n" + markdown(summary))
    log(f"webhook deliveries received: {summary['webhookDeliveries']}")
    log(f"summary: {plan.output}/summary.json and summary.md")
    return summary


def run(plan: Plan, upload_rows: int, baseline: bool) -> dict[str, Any]:
    """`make load`: a fresh system with the demo data, the plan's load, the summary. The
    machine is probed before the system starts and after it stops (see `bench.load.machine`),
    so that a comparison can tell a slower hour from a slower system."""
    before = probe_ms()
    with demo_system(plan, upload_rows) as (plan, system, _, deliveries):
        run_locust(plan, system.env["JWT_SECRET"])
    after = probe_ms()
    machine = {"probeMs": round((before + after) / 2, 2), "beforeMs": before, "afterMs": after}
    summary = finish(plan, deliveries, machine=machine)
    log(f"machine probe: {before:.1f} ms before the run, {after:.1f} ms after")
    if baseline:
        log(f"baseline written: {save_baseline(summary).relative_to(REPO_ROOT)}")
    return summary

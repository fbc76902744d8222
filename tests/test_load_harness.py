"""The load harness (`make load`, `make load-compare`) against the session's running system:
a short run of every kind of user summarises REST and gRPC routes in ghz's format without
an error, and the comparison with a baseline flags a regression and passes the same run.
No latency or rate is asserted: those are figures, for `make load` to print."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from bench.load.__main__ import main as load_command
from bench.load.harness import run_locust, summarise, webhook_receiver
from bench.load.plan import Plan
from bench.load.summary import COMPARED_MIN_COUNT, PERCENTAGES
from devtools import demo
from devtools.synthetic import Scenario, write_csv
from tests.scenarios import upload_drifted_history
from tests.system import System

GHZ_FIELDS = {
    "count",
    "total",
    "average",
    "fastest",
    "slowest",
    "rps",
    "errorDistribution",
    "statusCodeDistribution",
    "latencyDistribution",
    "histogram",
}


def write_summary(folder: Path, summary: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_a_short_load_run_summarises_rest_and_grpc_routes_and_compares_with_a_baseline(
    system: System, tmp_path: Path
) -> None:
    customer = "load" + uuid.uuid4().hex[:8]
    upload_drifted_history(system, customer)
    today = dt.date.today()
    claims = tmp_path / "claims.csv"
    write_csv(
        Scenario(customer=customer, start=today - dt.timedelta(days=59), days=60, claims=1_000),
        claims,
    )
    with webhook_receiver() as (receiver, deliveries):
        plan = Plan(
            rate=15,
            seconds=15,
            warmup_seconds=3,
            customer=customer,
            gateway_url=system.gateway_url,
            targets=dict(system.targets),
            period_end=today.isoformat(),
            upload_file=str(claims),
            upload_first_seconds=4,
            report_every_seconds=6,
            webhook=demo.subscribe(system.gateway_url, system.settings, receiver, customer),
            output=str(tmp_path / "run"),
        )
        run_locust(plan, system.env["JWT_SECRET"])
        summary = summarise(plan)

    routes = summary["routes"]
    for route in (
        "GET /v1/customers/{customer}/driftEvents",
        "PATCH /v1/customers/{customer}/driftEvents/{driftEvent}",
        "GET /v1/customers/{customer}/payerSummaries",
        "GET /v1/customers/{customer}/claims",
        "POST /v1/customers/{customer}/uploads",
        "GET /v1/customers/{customer}/reports/{report}:download",
        "grpc /upstream.drift.v1.DriftService/ListDriftEvents",
        "grpc /upstream.drift.v1.DriftService/ListPayerSummaries",
        "grpc /upstream.ingest.v1.IngestService/ListClaims",
        "grpc /upstream.ingest.v1.IngestService/StreamDailyStatSeries",
    ):
        assert routes.get(route, {}).get("count", 0) > 0, (route, sorted(routes))
    for route, report in routes.items():
        assert report.keys() >= GHZ_FIELDS, route
        assert report["errorDistribution"] == {}, (route, report["statusCodeDistribution"])
        assert [p["percentage"] for p in report["latencyDistribution"]] == list(PERCENTAGES)
        # Durations in nanoseconds, as ghz writes them; histogram marks in seconds.
        assert report["fastest"] <= report["average"] <= report["slowest"], route
        assert sum(b["count"] for b in report["histogram"]) == report["count"], route
        assert abs(report["histogram"][-1]["mark"] * 1e9 - report["slowest"]) < 1, route
    statuses = {status for r in routes.values() for status in r["statusCodeDistribution"]}
    assert {"200", "OK"} <= statuses
    assert sum(deliveries.as_json()["byType"].values()) > 0

    # The same run passes against itself; one route three times as slow or failing one
    # call in ten is flagged.
    latest = write_summary(tmp_path / "latest", summary)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(summary))
    assert load_command(["compare", "--run", str(latest), "--baseline", str(baseline)]) == 0

    busiest = max(routes, key=lambda route: routes[route]["count"])
    assert routes[busiest]["count"] >= COMPARED_MIN_COUNT  # enough for its p95 to be compared
    slower = copy.deepcopy(summary)
    for entry in slower["routes"][busiest]["latencyDistribution"]:
        entry["latency"] = int(entry["latency"] * 3)
    slower["latencySamplesMs"][busiest] = [ms * 3 for ms in summary["latencySamplesMs"][busiest]]
    failing = copy.deepcopy(summary)
    report = failing["routes"]["GET /v1/customers/{customer}/claims"]
    report["errorDistribution"] = {"503 Service Unavailable": max(report["count"] // 10, 1)}
    for name, doctored in (("slower", slower), ("failing", failing)):
        folder = write_summary(tmp_path / name, doctored)
        assert load_command(["compare", "--run", str(folder), "--baseline", str(baseline)]) == 1

"""`make load-compare` on runs whose requests' latencies are drawn as a loaded system's are
(log-normal, each route its own median): it flags a route that became slower, and a system
slower everywhere, but not the spread two runs of the same system show, nor a machine that
was slower in the latest run's hour."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.load.summary import Request, compare, latency_samples, route_reports

# Ten routes, as a fixed run's mix: (route, requests in 180 s, median ms).
ROUTES = [
    ("GET /v1/customers/{customer}/driftEvents", 560, 35.0),
    ("GET /v1/customers/{customer}/driftEvents/{driftEvent}", 600, 42.0),
    ("PATCH /v1/customers/{customer}/driftEvents/{driftEvent}", 330, 50.0),
    ("GET /v1/customers/{customer}/claims", 300, 50.0),
    ("GET /v1/customers/{customer}/payerSummaries", 280, 55.0),
    ("GET /v1/customers/{customer}/uploads", 140, 28.0),
    ("GET /v1/customers/{customer}/driftConfig", 120, 30.0),
    ("grpc /upstream.drift.v1.DriftService/ListDriftEvents", 280, 18.0),
    ("grpc /upstream.drift.v1.DriftService/GetDriftConfig", 70, 9.0),
    ("grpc /upstream.reports.v1.ReportsService/ListReports", 60, 16.0),
]
SLOWEST = ROUTES[3][0]


def run(
    seed: int,
    *,
    slower: float = 1.0,
    route_slower: tuple[str, float] = ("", 1.0),
    probe_ms: float | None = 28.0,
) -> dict[str, Any]:
    """A fixed run's summary: every route `slower` times its usual latency, one route more."""
    random = np.random.default_rng(seed)
    requests = []
    for route, count, median in ROUTES:
        kind, name = route.split(" ", 1)
        factor = slower * (route_slower[1] if route == route_slower[0] else 1.0)
        for ms in random.lognormal(np.log(median * factor), 0.45, count):
            requests.append(Request(0.0, kind, name, float(ms), 100, "200", "", False))
    summary: dict[str, Any] = {
        "routes": route_reports(requests, 180.0, {}, "http://127.0.0.1"),
        "latencySamplesMs": latency_samples(requests),
    }
    if probe_ms is not None:
        summary["machine"] = {"probeMs": probe_ms}
    return summary


def flagged(latest: dict[str, Any], baseline: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    return {c.route: c.regressions for c in compare(latest, baseline) if c.regressions}


def test_two_runs_of_the_same_system_are_not_told_apart() -> None:
    for seed in range(1, 9):
        assert flagged(run(seed + 100), run(seed)) == {}, seed


def test_a_route_half_as_slow_again_is_flagged_and_no_other() -> None:
    said = flagged(run(2, route_slower=(SLOWEST, 1.5)), run(1))
    assert list(said) == [SLOWEST]
    (regression,) = said[SLOWEST]
    assert regression.startswith("p95 +")


def test_a_slower_hour_of_the_machine_is_not_a_regression() -> None:
    """Every route 40 % slower, and the machine's probe as much: nothing flagged; a route
    slower still is."""
    assert flagged(run(2, slower=1.4, probe_ms=28.0 * 1.4), run(1)) == {}
    said = flagged(run(2, slower=1.4, route_slower=(SLOWEST, 1.6), probe_ms=28.0 * 1.4), run(1))
    assert list(said) == [SLOWEST]
    assert "beyond the run's shift" in said[SLOWEST][0]


def test_a_system_slower_everywhere_on_the_same_machine_is_flagged() -> None:
    said = flagged(run(2, slower=1.5), run(1))
    assert list(said) == ["every route"]
    assert said["every route"][0].endswith("beyond the machine's change")


def test_a_run_without_a_machine_probe_is_compared_route_by_route() -> None:
    """A baseline written before runs probed the machine: the routes are compared, the run
    as a whole is not judged."""
    unprobed = run(1, probe_ms=None)
    assert flagged(run(2, slower=1.5), unprobed) == {}
    (whole,) = [c for c in compare(run(2, slower=1.5), unprobed) if c.route == "every route"]
    assert whole.baseline == "machine not probed"
    assert list(flagged(run(2, route_slower=(SLOWEST, 1.5)), unprobed)) == [SLOWEST]


def test_a_baseline_without_samples_compares_p95_beyond_the_run_s_shift() -> None:
    """An older baseline has the reports only: a route's p95 is compared with the run's shift
    taken out, without the test of chance."""
    old = run(1)
    del old["latencySamplesMs"]
    assert flagged(run(1, slower=1.3, probe_ms=28.0 * 1.3), old) == {}
    assert list(flagged(run(1, route_slower=(SLOWEST, 1.5)), old)) == [SLOWEST]

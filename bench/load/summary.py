"""What a load run measured, from the raw latency of every request: per route a summary in
ghz's JSON format, a Markdown table, the knee of a step run, and the comparison with a
baseline.

ghz's format (`runner/reporter.go`): durations in nanoseconds (`total`, `average`,
`fastest`, `slowest`, `latencyDistribution[].latency`), histogram marks in seconds;
`fastest`, `slowest`, the percentiles and the histogram over the requests without error,
`average` over all; percentiles by nearest rank. A route's `total` is the measured window,
so `rps` is its requests a second in that window.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, astuple, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.load.plan import Stage

PERCENTAGES = (10, 25, 50, 75, 90, 95, 99)
HISTOGRAM_BUCKETS = 10
NANOSECONDS = 1_000_000_000
# A baseline comparison flags a route whose p95 grew by more than this share, or whose
# error rate grew by more than this many points; p95 only where both runs have at least
# COMPARED_MIN_COUNT requests of the route (the p95 of a handful is their maximum).
P95_TOLERANCE = 0.20
ERROR_RATE_TOLERANCE = 0.01
COMPARED_MIN_COUNT = 20
KNEE_TOLERANCE = 0.20
# A route's p95 is flagged only if it grew beyond what chance in the requests measured
# explains, with this confidence over all the routes compared; the run's shift (the median
# of the routes' p95 changes) is taken from at least RUN_WIDE_MIN_ROUTES routes.
COMPARED_CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 4000
RUN_WIDE_MIN_ROUTES = 5


@dataclass(frozen=True)
class Request:
    """One request as locust's request event reported it."""

    start: float  # epoch seconds it began
    kind: str  # the HTTP method, or "grpc"
    name: str  # the route's path template, or the full gRPC method name
    latency_ms: float
    length: int
    status: str  # the HTTP status, or the gRPC status name as ghz writes it ("OK", …)
    error: str  # empty when it succeeded
    background: bool  # made by the uploads and report builds, not by the rate-held users

    @property
    def route(self) -> str:
        return f"{self.kind} {self.name}"


def write_requests(path: Path, requests: Iterable[Request]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(f.name for f in fields(Request))
        writer.writerows(astuple(r) for r in requests)


def read_requests(path: Path) -> list[Request]:
    with path.open(newline="") as file:
        return [
            Request(
                float(row["start"]),
                row["kind"],
                row["name"],
                float(row["latency_ms"]),
                int(row["length"]),
                row["status"],
                row["error"],
                row["background"] == "True",
            )
            for row in csv.DictReader(file)
        ]


def within(requests: Iterable[Request], start: float, end: float) -> list[Request]:
    return [r for r in requests if start <= r.start < end]


def latency_samples(requests: Iterable[Request]) -> dict[str, list[float]]:
    """Per route, the milliseconds of each request without error (to 0.01 ms), ascending:
    what a comparison resamples to tell a slower route from chance."""
    samples: dict[str, list[float]] = {}
    for request in requests:
        if not request.error:
            samples.setdefault(request.route, []).append(round(request.latency_ms, 2))
    return {route: sorted(values) for route, values in sorted(samples.items())}


# --- ghz's report ------------------------------------------------------------------------


def _ns(seconds: float) -> int:
    return int(seconds * NANOSECONDS)  # Go's time.Duration(x * float64(time.Second))


def _latency_distribution(ok: Sequence[float]) -> list[dict[str, int]]:
    distribution = []
    for percentage in PERCENTAGES:
        rank = (percentage / 100.0) * len(ok)
        index = int(rank)
        if rank == index:
            index -= 1
        latency = ok[max(index, 0)]
        distribution.append(
            {"percentage": percentage, "latency": _ns(latency)}
            if latency > 0
            else {"percentage": 0, "latency": 0}
        )
    return distribution


def _histogram(ok: Sequence[float]) -> list[dict[str, Any]]:
    fastest, slowest = ok[0], ok[-1]
    width = (slowest - fastest) / HISTOGRAM_BUCKETS
    marks = [fastest + width * i for i in range(HISTOGRAM_BUCKETS)] + [slowest]
    counts = [0] * len(marks)
    bucket = 0
    for latency in ok:
        while latency > marks[bucket] and bucket < len(marks) - 1:
            bucket += 1
        counts[bucket] += 1
    return [
        {"mark": mark, "count": count, "frequency": count / len(ok)}
        for mark, count in zip(marks, counts, strict=True)
    ]


def ghz_report(
    name: str, requests: Sequence[Request], total_seconds: float, options: dict[str, Any]
) -> dict[str, Any]:
    """`requests` of one route over a window of `total_seconds`, as ghz reports a run."""
    ok = sorted(r.latency_ms / 1000 for r in requests if not r.error)
    report: dict[str, Any] = {
        "name": name,
        "endReason": "timeout",
        "options": options,
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "count": len(requests),
        "total": _ns(total_seconds),
        "average": 0,
        "fastest": 0,
        "slowest": 0,
        "rps": 0.0,
        "errorDistribution": dict(Counter(r.error for r in requests if r.error)),
        "statusCodeDistribution": dict(Counter(r.status for r in requests)),
        "latencyDistribution": None,
        "histogram": None,
    }
    if requests:
        report["average"] = _ns(sum(r.latency_ms for r in requests) / 1000 / len(requests))
        report["rps"] = len(requests) / total_seconds
    if ok:
        report["fastest"], report["slowest"] = _ns(ok[0]), _ns(ok[-1])
        report["histogram"] = _histogram(ok)
        report["latencyDistribution"] = _latency_distribution(ok)
    return report


def route_reports(
    requests: Sequence[Request], total_seconds: float, plan_targets: dict[str, str], host: str
) -> dict[str, dict[str, Any]]:
    """A ghz report per route, REST routes first, each list in name order."""
    by_route: dict[str, list[Request]] = {}
    for request in requests:
        by_route.setdefault(request.route, []).append(request)
    reports = {}
    for route in sorted(by_route, key=lambda r: (r.startswith("grpc "), r.split(" ", 1)[1])):
        kind, name = route.split(" ", 1)
        options: dict[str, Any] = {"host": host, "call": route}
        if kind == "grpc":
            service = name.split(".")[1] if name.count(".") >= 2 else ""
            options = {"host": plan_targets.get(service, ""), "call": name.strip("/")}
        options.update(insecure=True, binary=False, CPUs=os.cpu_count() or 1)
        reports[route] = ghz_report(route, by_route[route], total_seconds, options)
    return reports


def percentile_ns(report: dict[str, Any], percentage: int) -> int:
    for entry in report.get("latencyDistribution") or ():
        if entry["percentage"] == percentage:
            return int(entry["latency"])
    return 0


def error_count(report: dict[str, Any]) -> int:
    return sum(report["errorDistribution"].values())


def error_rate(report: dict[str, Any]) -> float:
    return error_count(report) / report["count"] if report["count"] else 0.0


# --- Steps and the knee ------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    """One step of a step run: its interactive requests' latency, every request's errors."""

    rate: float
    count: int
    rps: float
    p50: int  # nanoseconds
    p95: int
    p99: int
    errors: int
    passed: bool


def step_result(
    requests: Sequence[Request], run_start: float, stage: Stage, p99_target_ms: float
) -> StepResult:
    measured = within(requests, run_start + stage.measured_from, run_start + stage.end)
    interactive = [r for r in measured if not r.background]
    seconds = stage.end - stage.measured_from
    report = ghz_report("step", interactive, seconds, {})
    p99 = percentile_ns(report, 99)
    errors = sum(1 for r in measured if r.error)
    return StepResult(
        rate=stage.rate,
        count=len(interactive),
        rps=report["rps"],
        p50=percentile_ns(report, 50),
        p95=percentile_ns(report, 95),
        p99=p99,
        errors=errors,
        passed=bool(interactive) and errors == 0 and p99 <= p99_target_ms * 1_000_000,
    )


def knee(steps: Sequence[StepResult]) -> float | None:
    """The rate of the last step that passed before the first that did not."""
    found = None
    for step in steps:
        if not step.passed:
            break
        found = step.rate
    return found


# --- The run's summary and its table ------------------------------------------------------


def _ms(nanoseconds: int) -> str:
    return f"{nanoseconds / 1_000_000:,.1f}"


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| route | count | rps | p50 ms | p95 ms | p99 ms | errors |",
        "|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for route, report in summary["routes"].items():
        errors = error_count(report)
        share = f" ({errors / report['count']:.1%})" if errors else ""
        lines.append(
            f"| `{route}` | {report['count']:,} | {report['rps']:.2f} "
            f"| {_ms(percentile_ns(report, 50))} | {_ms(percentile_ns(report, 95))} "
            f"| {_ms(percentile_ns(report, 99))} | {errors}{share} |"
        )
    if "steps" in summary:
        lines += [
            "",
            f"Steps (interactive requests; p99 target {summary['p99TargetMs']:g} ms):",
            "",
            "| target req/s | count | rps | p50 ms | p95 ms | p99 ms | errors | |",
            "|--:|--:|--:|--:|--:|--:|--:|:--|",
        ]
        for step in summary["steps"]:
            lines.append(
                f"| {step['rate']:g} | {step['count']:,} | {step['rps']:.1f} | {_ms(step['p50'])} "
                f"| {_ms(step['p95'])} | {_ms(step['p99'])} | {step['errors']} "
                f"| {'ok' if step['passed'] else 'over'} |"
            )
        rate = summary["knee"]
        if rate and all(step["passed"] for step in summary["steps"]):
            said = f"past {rate:g} requests a second (every step passed: raise --max-rate)"
        else:
            said = f"{rate:g} requests a second" if rate else "below the first step"
        lines += ["", f"Knee: {said}."]
    return "\n".join(lines) + "\n"


def steps_summary(steps: Sequence[StepResult], p99_target_ms: float) -> dict[str, Any]:
    return {
        "p99TargetMs": p99_target_ms,
        "steps": [asdict(step) for step in steps],
        "knee": knee(steps),
    }


# --- Against a baseline --------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One route (or a step run's knee) then and now, and what regressed."""

    route: str
    baseline: str
    latest: str
    regressions: tuple[str, ...]


def _p95_and_errors(report: dict[str, Any]) -> str:
    return f"p95 {_ms(percentile_ns(report, 95))} ms, errors {error_rate(report):.2%}"


def compare(latest: dict[str, Any], baseline: dict[str, Any]) -> list[Comparison]:
    """Per route of the baseline: p95 and error rate now against then; the run as a whole
    against the machine's own speed; a step run's knee.

    Two runs of the same system differ at p95 by more than 20 % on many routes (a route's
    p95 is a handful of its slowest requests, and the machine is slower in some hours than
    others, every route with it), so a route is flagged only when its own p95 grew by more
    than P95_TOLERANCE beyond the run's shift (the median of every compared route's p95
    change), and by more than the requests measured explain (the lower bound of a bootstrap
    of its p95 ratio, at COMPARED_CONFIDENCE over all the routes compared, still above that
    shift). The shift itself is flagged when it exceeds, by P95_TOLERANCE, how much slower
    the machine was (its probe before and after each run, `bench.load.machine`): a system
    slower everywhere, not a slower hour."""
    compared = {
        route: (then, latest["routes"][route])
        for route, then in baseline["routes"].items()
        if route in latest["routes"]
        and min(then["count"], latest["routes"][route]["count"]) >= COMPARED_MIN_COUNT
        and percentile_ns(then, 95)
        and percentile_ns(latest["routes"][route], 95)
    }
    growth = {
        route: percentile_ns(now, 95) / percentile_ns(then, 95)
        for route, (then, now) in compared.items()
    }
    shift = float(np.median(list(growth.values()))) if len(growth) >= RUN_WIDE_MIN_ROUTES else 1.0
    samples = (baseline.get("latencySamplesMs") or {}, latest.get("latencySamplesMs") or {})
    random = np.random.default_rng(0)  # the same verdict each time the same runs are compared
    comparisons = []
    for route, then in baseline["routes"].items():
        now = latest["routes"].get(route)
        if now is None:
            comparisons.append(Comparison(route, _p95_and_errors(then), "no request", ("gone",)))
            continue
        regressions = []
        # Slower than it was, and by more than the run as a whole.
        if route in growth and min(growth[route], growth[route] / shift) > 1 + P95_TOLERANCE:
            then_ms, now_ms = samples[0].get(route), samples[1].get(route)
            lowest = (
                _lowest_p95_ratio(then_ms, now_ms, len(growth), random)
                if then_ms and now_ms
                else growth[route]
            )
            if lowest / shift > 1:
                said = f"p95 {growth[route] - 1:+.0%}"
                if shift != 1.0:
                    said += f", {growth[route] / shift - 1:+.0%} beyond the run's shift"
                regressions.append(said)
        errors_then, errors_now = error_rate(then), error_rate(now)
        if errors_now > errors_then + ERROR_RATE_TOLERANCE:
            regressions.append(f"errors {(errors_now - errors_then) * 100:+.1f} points")
        comparisons.append(
            Comparison(route, _p95_and_errors(then), _p95_and_errors(now), tuple(regressions))
        )
    machine = _machine_change(latest, baseline)
    if len(growth) >= RUN_WIDE_MIN_ROUTES:
        comparisons.append(_run_wide(shift, len(growth), machine, latest, baseline))
    if baseline.get("knee"):
        then_knee, now_knee = float(baseline["knee"]), float(latest.get("knee") or 0)
        # A slower machine reaches a lower knee: the latest as the baseline's machine would.
        dropped = now_knee * (machine or 1.0) < then_knee * (1 - KNEE_TOLERANCE)
        comparisons.append(
            Comparison(
                "knee",
                f"{then_knee:g} req/s",
                f"{now_knee:g} req/s" + (f" (machine ×{machine:.2f})" if machine else ""),
                (f"knee {now_knee / then_knee - 1:+.0%}",) if dropped else (),
            )
        )
    return comparisons


def _lowest_p95_ratio(
    then_ms: Sequence[float], now_ms: Sequence[float], routes: int, random: np.random.Generator
) -> float:
    """The lower bound of now's p95 ÷ then's, one-sided at COMPARED_CONFIDENCE shared by
    `routes` comparisons (Bonferroni), from BOOTSTRAP_RESAMPLES resamples of each run's
    requests (p95 by nearest rank, as the reports)."""
    then, now = np.asarray(then_ms), np.asarray(now_ms)

    def p95s(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        drawn = values[random.integers(0, values.size, (BOOTSTRAP_RESAMPLES, values.size))]
        return np.quantile(drawn, 0.95, axis=1, method="inverted_cdf")

    ratios = p95s(now) / p95s(then)
    return float(np.quantile(ratios, (1 - COMPARED_CONFIDENCE) / routes))


def _machine_change(latest: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    """How much slower the machine was for the latest run than for the baseline's (×), from
    their probes; None if either run has none."""
    then, now = baseline.get("machine"), latest.get("machine")
    if not (then and now):
        return None
    return float(now["probeMs"]) / float(then["probeMs"])


def _run_wide(
    shift: float,
    routes: int,
    machine: float | None,
    latest: dict[str, Any],
    baseline: dict[str, Any],
) -> Comparison:
    """Every route's p95 together (the median change) against the machine's change (×, None
    when either run has no probe)."""
    said = f"p95 ×{shift:.2f} (the median of {routes} routes)"
    if machine is None:
        return Comparison("every route", "machine not probed", said, ())
    regressed = shift / machine > 1 + P95_TOLERANCE
    return Comparison(
        "every route",
        f"machine probe {float(baseline['machine']['probeMs']):.1f} ms",
        f"{said}; machine probe {float(latest['machine']['probeMs']):.1f} ms (×{machine:.2f})",
        (f"p95 {shift / machine - 1:+.0%} beyond the machine's change",) if regressed else (),
    )


def comparison_table(comparisons: Sequence[Comparison]) -> str:
    lines = ["| route | baseline | latest | |", "|:--|:--|:--|:--|"]
    for c in comparisons:
        verdict = f"**REGRESSED**: {', '.join(c.regressions)}" if c.regressions else "ok"
        lines.append(f"| `{c.route}` | {c.baseline} | {c.latest} | {verdict} |")
    return "\n".join(lines) + "\n"

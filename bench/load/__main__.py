"""`make load`, `make load-compare` and `make soak`: the whole system under a realistic mix
of REST and gRPC users (locust), per route figures in ghz's JSON format, baselines.

    python -m bench.load run [--profile fixed|steps] [--rate 20] [--seconds 180] [--save-baseline]
    python -m bench.load compare [--profile fixed] [--run .local/load/fixed-…]
    python -m bench.load soak [--seconds 1200] [--knee 60]

`run` starts a fresh system (its own PostgreSQL, migrations, the services and the gateway on
free ports of 127.0.0.1, `make run`'s demo data), runs locust against it and stops it; the
run's files are under `.local/load/<profile>-<time>/`. `compare` checks the latest run of a
profile against `bench/baselines/<profile>.json` and exits 1 on a regression. `soak` holds
half the knee for a long time and samples memory, database connections and the outbox
backlog. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from bench.ingest_bench import log
from bench.load import harness, soak
from bench.load.plan import PROFILES, Plan
from bench.load.summary import COMPARED_MIN_COUNT, compare, comparison_table


def _run(args: argparse.Namespace) -> int:
    plan = Plan(
        profile=args.profile,
        seconds=args.seconds,
        warmup_seconds=args.warmup_seconds,
        start_rate=args.start_rate,
        step_rate=args.step_rate,
        step_seconds=args.step_seconds,
        max_rate=args.max_rate,
        p99_target_ms=args.p99_target_ms,
        upload_every_seconds=args.upload_every,
        report_every_seconds=args.report_every,
        output=str(harness.new_run_folder(args.profile)),
    )
    if args.rate is not None:
        plan = dataclasses.replace(plan, rate=args.rate)
    harness.run(plan, args.upload_rows, args.save_baseline)
    return 0


def _compare(args: argparse.Namespace) -> int:
    folder = args.run or harness.latest_run(args.profile)
    if folder is None:
        log(f"no {args.profile} run under {harness.LOAD_DIR}: run `make load` first")
        return 2
    baseline = args.baseline or harness.baseline_path(args.profile)
    if not baseline.exists():
        log(f"no baseline {baseline}: write one with `make load BASELINE=1`")
        return 2
    latest = json.loads((folder / "summary.json").read_text())
    comparisons = compare(latest, json.loads(baseline.read_text()))
    log(f"{folder} against {baseline}:\n\n{comparison_table(comparisons)}")
    regressed = [c for c in comparisons if c.regressions]
    log(
        f"{len(regressed)} regressed (a route's p95 more than +20 % beyond the run's shift "
        f"and beyond chance, where both runs have {COMPARED_MIN_COUNT}+ requests; every "
        "route's more than +20 % beyond the machine's change; error rate more than +1 point; "
        "a route gone; or a knee 20 % lower on the same machine)"
        if regressed
        else "no regression"
    )
    return 1 if regressed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    commands = parser.add_subparsers(dest="command", required=True)

    defaults = Plan()
    running = commands.add_parser("run", help="a load run on a fresh system")
    running.add_argument("--profile", choices=PROFILES, default="fixed")
    running.add_argument("--rate", type=float, help=f"fixed: requests a second ({defaults.rate:g})")
    running.add_argument("--seconds", type=float, default=defaults.seconds)
    running.add_argument("--warmup-seconds", type=float, default=defaults.warmup_seconds)
    running.add_argument("--start-rate", type=float, default=defaults.start_rate)
    running.add_argument("--step-rate", type=float, default=defaults.step_rate)
    running.add_argument("--step-seconds", type=float, default=defaults.step_seconds)
    running.add_argument("--max-rate", type=float, default=defaults.max_rate)
    running.add_argument("--p99-target-ms", type=float, default=defaults.p99_target_ms)
    running.add_argument("--upload-rows", type=int, default=harness.UPLOAD_ROWS)
    running.add_argument("--upload-every", type=float, default=defaults.upload_every_seconds)
    running.add_argument("--report-every", type=float, default=defaults.report_every_seconds)
    running.add_argument(
        "--save-baseline", action="store_true", help="write the summary as the profile's baseline"
    )
    running.set_defaults(handler=_run)

    comparing = commands.add_parser("compare", help="the latest run against the baseline")
    comparing.add_argument("--profile", choices=PROFILES, default="fixed")
    comparing.add_argument("--run", type=Path, help="a run's folder (default: the latest)")
    comparing.add_argument("--baseline", type=Path, help="default: bench/baselines/<profile>.json")
    comparing.set_defaults(handler=_compare)

    soaking = commands.add_parser("soak", help="hold half the knee; sample memory and backlogs")
    soak.add_arguments(soaking)
    soaking.set_defaults(handler=soak.main)

    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())

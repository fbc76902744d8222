"""`make bench`: the usual monthly export (83,000 rows) uploaded end to end through the
gateway, against plain `psql \\copy` of the same file.

On a throwaway PostgreSQL with every service migrated, the three services and the gateway
run as real processes, as `make run` starts them. The first 83,000 rows of the synthetic
claims CSV `bench.ingest_bench` caches are uploaded with `POST /v1/customers/{customer}/
uploads` (the body streamed, as a browser or `curl --data-binary` sends it), each time for a
new customer; the time is from the first byte sent to the answer (the upload SUCCEEDED and
committed: parsed, validated, loaded, statistics kept, outbox event written). The detection
run it asks for follows asynchronously and is not counted; the next upload waits until it
has finished, so that each is timed on an idle system. In the same run, the same file is
loaded with `psql \\copy` into a table with ingest.claims' keys and indexes.

The figures are printed with the target (≤ 1.5 s) beside them; nothing is asserted.

    python -m bench.upload_bench [--rows 83000] [--runs 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.export_bench import migrate
from bench.ingest_bench import (
    INDEXED_TABLE,
    checkpoint,
    create_reference_table,
    dataset,
    log,
    throwaway_cluster,
    timed_copy,
    verdict,
)
from bench.load.harness import SYSTEM_SETTINGS
from devtools.stack import wait_until
from runtime import schemas
from tests.system import System, metric_value, running_system

TARGET_SECONDS = 1.5
DETECTION_TIMEOUT_SECONDS = 120
SOURCE_ROWS = 100_000  # the cached file the rows are taken from
CHUNK_BYTES = 1 << 20
UPLOAD_PHASES = ("read", "finish")


def first_rows(rows: int, seed: int) -> Path:
    """The header and the first `rows` rows of the cached synthetic CSV."""
    source = dataset(max(rows, SOURCE_ROWS), seed)
    path = source.with_name(f"first-{rows}-of-{source.name}")
    if not path.exists():
        with source.open("rb") as whole, path.open("wb") as part:
            part.writelines(itertools.islice(whole, rows + 1))
    return path


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk


def timed_upload(system: System, path: Path, customer: str) -> float:
    with system.client(customer, "admin") as client:
        started = time.perf_counter()
        response = client.post(
            f"/v1/customers/{customer}/uploads",
            content=_chunks(path),
            headers={"Content-Type": "text/csv"},
            timeout=300,
        )
        elapsed = time.perf_counter() - started
    response.raise_for_status()
    upload = response.json()
    if upload["state"] != "SUCCEEDED":
        raise RuntimeError(f"the upload did not succeed: {upload}")
    return elapsed


def wait_for_detection(system: System, customer: str) -> None:
    """Until the detection run the customer's upload asked for has finished."""
    with system.client(customer, "admin") as client:

        def finished() -> bool:
            response = client.get(f"/v1/customers/{customer}/driftRuns", timeout=10)
            response.raise_for_status()
            runs = response.json().get("driftRuns", [])
            return bool(runs) and all(r["state"] in ("SUCCEEDED", "FAILED") for r in runs)

        wait_until("the upload's detection run", finished, timeout=DETECTION_TIMEOUT_SECONDS)


def upload_phases(system: System) -> dict[str, tuple[float, float]]:
    """Ingest's `ingest_upload_phase_seconds` so far: (seconds, uploads) by phase."""
    port = system.metrics_ports["ingest"]
    return {
        phase: (
            metric_value(port, "ingest_upload_phase_seconds_sum", phase=phase),
            metric_value(port, "ingest_upload_phase_seconds_count", phase=phase),
        )
        for phase in UPLOAD_PHASES
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload_bench", description=__doc__)
    parser.add_argument("--rows", type=int, default=83_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    started = time.monotonic()
    path = first_rows(args.rows, args.seed)
    with throwaway_cluster(keep=False) as admin_url:
        urls = migrate(admin_url, schemas.SERVICES)
        copies = []
        for _ in range(args.runs):
            create_reference_table(admin_url, INDEXED_TABLE, indexed=True)
            checkpoint(admin_url)
            copies.append(timed_copy(admin_url, INDEXED_TABLE, path))
        # As `make run` runs: no span exporter, uploads merged every 100,000 rows.
        with running_system(urls, **SYSTEM_SETTINGS) as system:
            uploads = []
            before = upload_phases(system)
            for run in range(args.runs):
                checkpoint(admin_url)
                uploads.append(timed_upload(system, path, f"monthly{run}"))
                log(f"  upload {run + 1}: {uploads[-1]:.2f} s")
                # The next upload is timed on an idle system, not beside this one's run.
                wait_for_detection(system, f"monthly{run}")
            after = upload_phases(system)
    upload, copy = statistics.median(uploads), statistics.median(copies)
    log(
        f"\n{args.rows:,} rows ({path.stat().st_size / 1e6:.1f} MB), median of {args.runs}:\n"
        f"  through the gateway  {upload:.2f} s (target ≤ {TARGET_SECONDS}: "
        f"{verdict(upload <= TARGET_SECONDS)})\n"
        f"  psql \\copy (indexed) {copy:.2f} s — the upload takes {upload / copy:.1f}× as long"
    )
    # Ingest's own account of each upload, a mean over the runs.
    read, finish = (
        (after[phase][0] - before[phase][0]) / max(after[phase][1] - before[phase][1], 1)
        for phase in UPLOAD_PHASES
    )
    log(
        f"  in ingest, a mean: the file read, parsed and loaded as it came {read:.2f} s, "
        f"then merged and counted until the commit {finish:.2f} s"
    )
    log(f"(whole run {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast the machine is at the time of a load run, apart from the system under load: a
fixed piece of Python work (JSON in and out, sums and sorts, as a request handler does) timed
in one process per CPU at once. A load run probes it before and after (the system idle), so
a comparison with a baseline tells a slower hour (every route slower, and the probe too) from
a slower system (every route slower, the probe not)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

# One round is about 30 ms of a CPU: long against the scheduler's slices, so a busy machine
# shows as a share of them taken, not as the luck of one.
_WORK = r"""
import json, sys, time
claims = [{"id": f"C{i}", "billed": i * 1.5, "codes": ["CO-45", "PR-1"]} for i in range(200)]
data = {"payer": "Aetna", "claims": claims}
times = []
for _ in range(int(sys.argv[1])):
    started = time.perf_counter()
    for _ in range(100):
        back = json.loads(json.dumps(data))
        total = sum(claim["billed"] for claim in back["claims"])
        names = sorted(claim["id"] for claim in back["claims"])
    times.append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
"""
ROUNDS = 30
PROBE_TIMEOUT_SECONDS = 60


def probe_ms(processes: int | None = None, rounds: int = ROUNDS) -> float:
    """The milliseconds of a round of the work: `processes` (one per CPU) each run `rounds`
    (about a second) at once; the mean of their medians."""
    count = processes or os.cpu_count() or 1
    running = [
        subprocess.Popen([sys.executable, "-c", _WORK, str(rounds)], stdout=subprocess.PIPE)
        for _ in range(count)
    ]
    medians: list[float] = []
    for process in running:
        output, _ = process.communicate(timeout=PROBE_TIMEOUT_SECONDS)
        if process.returncode != 0:
            raise RuntimeError(f"the machine probe failed (exit {process.returncode})")
        medians.append(statistics.median(json.loads(output)))
    # The mean over the processes: one sharing its CPU with other work is as slow as that
    # makes it, while another may have a CPU to itself.
    return statistics.fmean(medians)

"""Figures from `wrk` (apt's `wrk`: a C client, so the figures are the server's, not a Python
client's): requests a second, p50 and p99, and the CPU the system's processes spent a request
meanwhile."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil


def installed() -> bool:
    return shutil.which("wrk") is not None


@dataclass(frozen=True)
class Load:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: dict[str, float]  # CPU milliseconds per request, by process


Processes = dict[str, Callable[[], list[psutil.Process]]]


def _cpu_seconds(processes: Processes) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each process, by name then pid."""
    found: dict[str, dict[int, float]] = {}
    for name, listed in processes.items():
        found[name] = {}
        for process in listed():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                found[name][process.pid] = times.user + times.system
    return found


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between the two readings by the processes alive at the second (a
    backend started in between counts from 0)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


_DURATION = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def under_wrk(
    url: str, token: str, seconds: float, connections: int, pids: Processes | None = None
) -> Load:
    """`wrk` on `url` for `seconds` with `connections` keep-alive connections (one: calls one
    after another), and the CPU each of `pids` spent a request meanwhile."""
    pids = pids or {}
    before = _cpu_seconds(pids)
    result = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
         "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    after = _cpu_seconds(pids)
    out = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    quantiles = {q: float(v) * _SCALE[unit] for q, v, unit in _DURATION.findall(out)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = max(rate * seconds, 1)
    return Load(
        rate,
        quantiles.get("50", 0.0),
        quantiles.get("99", 0.0),
        int(errors.group(1)) if errors else 0,
        {name: _spent(before[name], after[name]) * 1000 / requests for name in pids},
    )


def wait_quiet(
    processes: Processes, *, share: float = 0.05, window: float = 1.0, timeout: float = 90.0
) -> float:
    """Until `processes` together use less than `share` of one core over `window` seconds
    (work they began before, such as a demo's detection runs, deliveries and reports, is
    done), at most `timeout` seconds; how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = _cpu_seconds(processes)
        time.sleep(window)
        after = _cpu_seconds(processes)
        if sum(_spent(before[name], after[name]) for name in processes) < share * window:
            break
    return time.monotonic() - started

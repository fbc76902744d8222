"""Freed memory kept for the next use (runtime.memory), in processes of their own: the
allocator's settings are the process's."""

from __future__ import annotations

import os
import subprocess
import sys

# Arrays of 48 MB: over glibc's largest default mmap threshold (32 MiB), so by default each
# is mapped afresh and faulted in page by page; under MMAP_THRESHOLD_BYTES once kept.
_ALLOCATE_AGAIN = """
import resource, sys
import numpy as np
from runtime.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(6_000_000)
before = faults()
for _ in range(5):
    np.ones(6_000_000)
print(kept, faults() - before)
"""


def _run(mode: str, **environment: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    env.update(environment)
    result = subprocess.run(
        [sys.executable, "-c", _ALLOCATE_AGAIN, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    kept, faults = result.stdout.split()
    return kept == "True", int(faults)


def test_large_arrays_made_again_reuse_the_memory_freed_before() -> None:
    kept, faults_kept = _run("keep")
    default, faults_default = _run("default")
    assert kept and not default
    # Five 48 MB arrays faulted in afresh (in 4 KiB or 2 MiB pages, as the kernel and numpy
    # choose) against the same memory used again: next to no fault.
    assert faults_kept * 10 < faults_default


def test_an_operators_allocator_setting_is_left_as_it_is() -> None:
    kept, faults = _run("keep", MALLOC_ARENA_MAX="2")
    _, faults_kept = _run("keep")
    assert not kept
    assert faults > 10 * faults_kept

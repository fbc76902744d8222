"""Memory a process frees kept for its next use, under glibc's allocator.

By default glibc gives a large block back to the kernel as soon as it is freed: a block
over its mmap threshold (128 KiB, raised as such blocks are freed, up to 32 MiB) is an
mmap of its own, and the top of the heap is trimmed once 128 KiB is free there. Work that
builds large arrays again and again (a drift run: a year of statistics decoded by ingest,
then detection's window sums) then gets fresh pages each time, which the kernel maps and
zeroes page by page: about 30,000 page faults a run at 10M claims, a tenth of its time.

Kept instead: blocks up to MMAP_THRESHOLD_BYTES come from the heap and go back to it, and
the heap is trimmed only when TRIM_THRESHOLD_BYTES are free at its top; every thread
allocates from that one heap (a worker thread's own arena is made of 64 MiB mmapped heaps
that a large block does not fit, so it would be an mmap of its own again; Python's small
objects never reach malloc, so threads seldom wait on its lock). A process keeps about its
high-water mark after its largest piece of work (flat between runs rather than falling and
climbing back). Set before the process starts its threads. An operator's own setting wins:
with glibc's `MALLOC_*_` variables or `GLIBC_TUNABLES` in the environment, nothing is
changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger("upstream.memory")

# mallopt(3) parameters.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 64 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024
OPERATOR_SETTINGS = (
    "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES",
)  # fmt: skip


def keep_freed_memory() -> bool:
    """Set the thresholds the module docstring describes; False where nothing was changed
    (an operator's setting, or a C library without `mallopt`)."""
    if any(os.environ.get(name) for name in OPERATOR_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    kept = all(
        mallopt(parameter, value)
        for parameter, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (M_ARENA_MAX, 1),
        )
    )
    if not kept:
        logger.warning("the allocator's thresholds could not be set; freed memory goes back")
    return kept

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
mode = sys.argv[1]
kept = keep_freed_memory(one_heap=mode == "keep") if mode.startswith("keep") else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(6_000_000)
before = faults()
for _ in range(5):
    np.ones(6_000_000)
print(kept, faults() - before)
"""


def _run(mode: str, script: str = _ALLOCATE_AGAIN, **environment: str) -> tuple[bool, int]:
    """`script` run in a process of its own with `mode`: what it printed (whether the memory
    was kept, and a count)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    env.update(environment)
    result = subprocess.run(
        [sys.executable, "-c", script, mode],
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
    # As the gateway keeps it: each thread with an arena of its own.
    kept_in_arenas, faults_in_arenas = _run("keep-arenas")
    default, faults_default = _run("default")
    assert kept and kept_in_arenas and not default
    # Five 48 MB arrays faulted in afresh (in 4 KiB or 2 MiB pages, as the kernel and numpy
    # choose) against the same memory used again: next to no fault.
    assert faults_kept * 10 < faults_default
    assert faults_in_arenas * 10 < faults_default


def test_an_operators_allocator_setting_is_left_as_it_is() -> None:
    kept, faults = _run("keep", MALLOC_ARENA_MAX="2")
    _, faults_kept = _run("keep")
    assert not kept
    assert faults > 10 * faults_kept


# A 40 MB array (in the heap once kept) freed, then enough protobuf messages made and freed
# for protobuf's runtime to call malloc_trim (every 10,000 blocks its messages free).
_FREE_MESSAGES = """
import sys
import numpy as np
from runtime import memory
from upstream.ingest.v1 import resources_pb2
if sys.argv[1] == "thresholds-only":
    memory._stop_protobuf_trimming = lambda libc: True
kept = memory.keep_freed_memory()
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096
array = np.ones(5_000_000)
del array
before = resident()
for _ in range(25_000):
    message = resources_pb2.DailyStatSeries(payer="Aetna")
    message.SerializeToString()
    del message
print(kept, before - resident())
"""


def test_memory_freed_stays_kept_when_protobuf_frees_its_messages() -> None:
    """With the thresholds alone, protobuf's runtime gives the freed 40 MB back to the kernel
    (and the next piece of work faults it in again); kept, the process still holds it."""
    given_back = {}
    for mode in ("keep", "thresholds-only"):
        kept, given_back[mode] = _run(mode, _FREE_MESSAGES)
        assert kept
    assert given_back["thresholds-only"] > 30_000_000
    assert given_back["keep"] < 1_000_000


# Ten blocks of 40 MB (in the heap once kept) taken, written and freed together: 400 MB free
# at the heap's top, as a drift run over 10M claims leaves about 340 MB. Taken from the C
# library directly, so that no small block of Python's lands above them and holds the top.
_FREE_A_LARGE_PIECE = """
import ctypes, os, sys
from runtime.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
statm = os.open("/proc/self/statm", os.O_RDONLY)
def resident():  # read without a file object's buffers, which would land above the blocks
    return int(os.pread(statm, 200, 0).split()[1]) * 4096
blocks = [libc.malloc(40_000_000) for _ in range(10)]
for block in blocks:
    ctypes.memset(block, 1, 40_000_000)
held = resident()
for block in reversed(blocks):
    libc.free(block)
print(kept, held - resident())
"""


def test_the_memory_of_a_large_piece_of_work_stays_for_the_next() -> None:
    kept, given_back = _run("keep", _FREE_A_LARGE_PIECE)
    default, given_back_by_default = _run("default", _FREE_A_LARGE_PIECE)
    assert kept and not default
    assert given_back_by_default > 350_000_000
    assert given_back < 1_000_000


# Fifty blocks of 8 MB (a chart's pixels are a few MB), freed with a block still in use
# above them, as a report build leaves a few objects that outlive it. glibc's default mmap
# threshold has risen past 8 MB by then (a 10 MB block was freed first): by default the
# blocks come from the heap, and its held top keeps them.
_FREE_UNDER_A_HELD_TOP = """
import ctypes, os, sys
from runtime import memory
mode = sys.argv[1]
kept = {"keep": memory.keep_freed_memory, "give-back": memory.keep_freed_memory,
        "return": memory.return_freed_memory, "default": lambda: False}[mode]()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
statm = os.open("/proc/self/statm", os.O_RDONLY)
def resident():
    return int(os.pread(statm, 200, 0).split()[1]) * 4096
libc.free(libc.malloc(10_000_000))
blocks = [libc.malloc(8_000_000) for _ in range(50)]
for block in blocks:
    ctypes.memset(block, 1, 8_000_000)
top = libc.malloc(2_000_000)  # from the top of the heap: larger than any free block
held = resident()
for block in reversed(blocks):
    libc.free(block)
if mode == "give-back":
    assert memory.give_back_freed_memory()
print(kept, held - resident())
"""


def test_a_burst_of_work_gives_its_freed_memory_back() -> None:
    """Kept (drift, ingest, the gateway), the 400 MB stay; a bursty process (reports)
    returns them as they are freed, and a kept heap gives them back when asked."""
    given_back = {}
    for mode in ("default", "keep", "return", "give-back"):
        set_, given_back[mode] = _run(mode, _FREE_UNDER_A_HELD_TOP)
        assert set_ == (mode != "default")
    assert given_back["default"] < 1_000_000
    assert given_back["keep"] < 1_000_000
    assert given_back["return"] > 350_000_000
    assert given_back["give-back"] > 350_000_000

"""Memory a process frees kept for its next use, under glibc's allocator.

By default glibc gives a large block back to the kernel as soon as it is freed: a block
over its mmap threshold (128 KiB, raised as such blocks are freed, up to 32 MiB) is an
mmap of its own, and the top of the heap is trimmed once 128 KiB is free there. Work that
builds large arrays again and again (a drift run: a year of statistics decoded by ingest,
then detection's window sums) then gets fresh pages each time, which the kernel maps and
zeroes page by page: about 30,000 page faults a run at 10M claims, a tenth of its time.

Kept instead: blocks up to MMAP_THRESHOLD_BYTES come from the heap and go back to it, and
the heap is trimmed only when TRIM_THRESHOLD_BYTES are free at its top; in ingest and
drift every thread allocates from that one heap (a worker thread's own arena is made of
64 MiB mmapped heaps that a large block does not fit, so it would be an mmap of its own
again; Python's small objects never reach malloc, so their threads seldom wait on its lock).
The gateway's threads keep their own arenas: gRPC's threads allocate small blocks beside the
event loop all the time, and on a busy machine (calls one after another, in turns with one
heap, three runs) one lock cost it 0.04–0.06 ms of CPU a request; on a quiet one no
difference beyond the spread, and its memory the same. A process keeps about its
high-water mark after its largest piece of work (flat between runs rather than falling and
climbing back). Set before the process starts its threads. An operator's own setting wins:
with glibc's `MALLOC_*_` variables or `GLIBC_TUNABLES` in the environment, nothing is
changed.

One library undoes the thresholds: protobuf's Python runtime (upb) calls `malloc_trim(0)`
after every 10,000 blocks its messages free (`upb_trim_allocfunc` in its python/protobuf.c,
which later protobuf sources turn off), and that gives every whole free page of the heap back
to the kernel. A service frees that many blocks every few drift runs, or every few seconds
under load, and the next piece of work faults its memory in again (at 10M claims a drift run
then took up to twice as long: 1.2–1.8 s instead of 1.2–1.3). So the call is pointed at a
function that releases nothing: its slot in the module's table of imported functions, found
with pyelftools, is rewritten, and only when it holds libc's `malloc_trim` (or the module's
own stub, before the first call) on a writable page; otherwise nothing is changed and a
warning says so.

Work that comes seldom and in bursts of many mid-sized blocks (a report build: charts,
images, a PDF) gains nothing from its memory kept, and the blocks that outlive it, scattered
between the freed ones, ratchet the high-water mark up build after build. A process doing
such work returns what it frees instead (`return_freed_memory`: every block over 128 KiB
mapped apart and unmapped when freed), and gives back the free pages left in its heap when
a burst ends (`give_back_freed_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

logger = logging.getLogger("upstream.memory")

# mallopt(3) parameters.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 64 * 1024 * 1024
# The services' memory limit in k8s/base: within it, the heap is never trimmed. A drift run at
# 10M claims frees about 340 MB at the heap's top; trimmed past 256 MiB, that was given back
# after every run and faulted in again by the next (up to 0.5 s of system time added to a
# 0.5 s detection).
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024
# glibc's first mmap and trim thresholds (its default mmap threshold then rises as mapped
# blocks are freed, up to 32 MiB, and blocks under it stay in the heap).
RETURN_THRESHOLD_BYTES = 128 * 1024
OPERATOR_SETTINGS = (
    "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES",
)  # fmt: skip


def keep_freed_memory(one_heap: bool = True) -> bool:
    """Set the thresholds the module docstring describes; False where nothing was changed
    (an operator's setting, or a C library without `mallopt`). Without `one_heap`, each
    thread keeps glibc's arena of its own: for a process whose threads allocate small blocks
    all the time and large ones never (the gateway: gRPC's threads beside the event loop),
    which one heap's lock would have wait on each other."""
    libc = _set_thresholds(
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        *([(M_ARENA_MAX, 1)] if one_heap else []),
    )
    if libc is None:
        return False
    if not _stop_protobuf_trimming(libc):
        logger.warning("protobuf's malloc_trim could not be turned off; it gives freed memory back")
    return True


def return_freed_memory() -> bool:
    """For bursty work: glibc's first thresholds, fixed (a block over 128 KiB is mapped on
    its own and unmapped when freed, never kept in the heap as the default's rising
    threshold would; the heap's top is trimmed past 128 KiB free). False where nothing was
    changed (an operator's setting, or a C library without `mallopt`)."""
    return (
        _set_thresholds(
            (M_MMAP_THRESHOLD, RETURN_THRESHOLD_BYTES), (M_TRIM_THRESHOLD, RETURN_THRESHOLD_BYTES)
        )
        is not None
    )


def _set_thresholds(*settings: tuple[int, int]) -> ctypes.CDLL | None:
    """`mallopt` each (parameter, value); the C library, or None where nothing was set."""
    if any(os.environ.get(name) for name in OPERATOR_SETTINGS):
        return None
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if libc is None or mallopt is None:
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not all(mallopt(parameter, value) for parameter, value in settings):
        logger.warning("the allocator's thresholds could not be set; it keeps its defaults")
        return None
    return libc


def give_back_freed_memory() -> bool:
    """Return every whole free page of the heap to the kernel (glibc's `malloc_trim(0)`,
    which also releases free pages below blocks still in use); True when some was. It walks
    the heap under the allocator's lock: call it after a burst of work, off the event loop."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return bool(trim(0))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, loaded once; None where it cannot be."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


# What protobuf's call of malloc_trim reaches instead: nothing released.
_RELEASE_NOTHING = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_size_t)(lambda pad: 0)


def _stop_protobuf_trimming(libc: ctypes.CDLL) -> bool:
    """Point the upb module's imported `malloc_trim` at `_RELEASE_NOTHING` (see the module
    docstring); True when done, or when there is no upb module to change."""
    try:
        from google._upb import _message
    except ImportError:  # protobuf's pure-Python runtime: no malloc_trim
        return True
    path = os.path.realpath(_message.__file__)
    offset = _import_slot(path, "malloc_trim")
    if offset is None:  # this build calls no malloc_trim
        return True
    mapped = _mappings(path)
    loaded = [low for low, _, file_offset, _ in mapped if file_offset == 0]
    if not loaded:
        return False
    address = min(loaded) + offset
    # The slot is in the module's own data, on a page the process may write.
    if not any(low <= address < high and writable for low, high, _, writable in mapped):
        return False
    slot = ctypes.c_void_p.from_address(address)
    libc_trim = ctypes.cast(libc.malloc_trim, ctypes.c_void_p).value
    stub = slot.value is not None and any(low <= slot.value < high for low, high, _, _ in mapped)
    if slot.value != libc_trim and not stub:
        return False
    slot.value = ctypes.cast(_RELEASE_NOTHING, ctypes.c_void_p).value
    return True


def _import_slot(path: str, name: str) -> int | None:
    """Where (from the load address) the shared object at `path` keeps the address of the
    function `name` it imports: the offset its relocation for `name` writes to."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    with open(path, "rb") as file:
        elf = ELFFile(file)
        for section in elf.iter_sections():
            if not isinstance(section, RelocationSection):
                continue
            symbols = elf.get_section(section["sh_link"])
            for relocation in section.iter_relocations():
                index = relocation["r_info_sym"]
                if index and symbols.get_symbol(index).name == name:
                    return int(relocation["r_offset"])
    return None


def _mappings(path: str) -> list[tuple[int, int, int, bool]]:
    """Where this process maps `path` (/proc/self/maps): each range's first and last address
    (exclusive), the offset in the file it begins at, and whether it is writable."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].strip() == path:
                low, high = (int(end, 16) for end in fields[0].split("-"))
                ranges.append((low, high, int(fields[2], 16), fields[1][1] == "w"))
    return ranges

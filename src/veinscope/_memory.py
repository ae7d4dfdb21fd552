"""Process memory: keep freed image memory for reuse instead of handing it back to the system.

An analysis of a 12 MP photo allocates and frees image-sized arrays (12-48 MB each) dozens
of times. glibc's ``malloc`` serves blocks that large with a fresh ``mmap`` and returns them
with ``munmap`` when freed, so every new array starts as untouched pages that the kernel must
fault in and zero (with NumPy's transparent-huge-page advice, 2 MB at a time). On a busy
2-core machine that system time was 0.6-2 s of CPU per photo, more than any single stage of
the engine (BENCHMARKS.md, "speed and memory, session 4"). Serving large blocks from the
ordinary heap and not trimming it lets the next array reuse pages that are already mapped;
the results do not change, only where the bytes live.

Threads: glibc gives each new thread its own malloc arena, whose heaps are at most 64 MB and
are not kept the same way, so arrays allocated in a thread (Streamlit runs every script rerun in
a new one) get fresh pages anyway: 1 s more per 12 MP photo in the app, measured. A process that
analyses in threads must start with ``MALLOC_ARENA_MAX=1`` in its environment (one arena for all
threads; ``make app`` does it), which glibc only reads at start-up.

Huge pages: NumPy asks the kernel for transparent huge pages for every array of 4 MB or more
(``madvise``). Where the kernel's THP ``defrag`` setting is ``madvise`` (a common default), a
page fault in such a region may compact memory synchronously to find a free 2 MB page. Where
the heap must grow, because a long-running process keeps results between photos (the app keeps
each photo and its analysis), that cost 0.3-1.7 s of system CPU per 12 MP photo, measured (the
same analyses, not keeping results: 0-0.4 s). :func:`retain_freed_memory` therefore also turns
NumPy's huge-page advice off (what ``NUMPY_MADVISE_HUGEPAGE=0`` does at import); the analysis's
user CPU did not change.

The cost: memory freed after an analysis stays with the process (about one analysis's peak,
0.4-0.5 GB for 12 MP) until it exits or :func:`release_memory` is called. That suits
processes that analyse photo after photo (batch workers, the command line, the app); the
library does not do it on import, only :func:`veinscope.warmup` and the command line do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["release_memory", "retain_freed_memory"]

log = logging.getLogger(__name__)

# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: Free memory at the top of the heap kept rather than trimmed (bytes).
TRIM_THRESHOLD_BYTES = 1 << 31

_state = {"libc": None, "retained": False}


def _libc():
    if _state["libc"] is None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.mallopt  # noqa: B018 - glibc only (musl has no mallopt)
            lib.malloc_trim  # noqa: B018
        except (OSError, AttributeError):
            return None
        lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.mallopt.restype = ctypes.c_int
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
        lib.malloc_trim.restype = ctypes.c_int
        _state["libc"] = lib
    return _state["libc"]


def retain_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed memory for reuse (glibc only).

    Sets ``M_MMAP_MAX = 0`` (no per-block ``mmap``) and ``M_TRIM_THRESHOLD`` to
    :data:`TRIM_THRESHOLD_BYTES`, and turns NumPy's huge-page advice off. Idempotent. Returns
    True when the setting is in force, False where the C library does not offer it (other
    systems: nothing changes).
    """
    if _state["retained"]:
        return True
    lib = _libc()
    if lib is None:
        return False
    ok = lib.mallopt(_M_MMAP_MAX, 0) == 1 and lib.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    _numpy_huge_pages(False)
    _state["retained"] = bool(ok)
    if not ok:  # pragma: no cover - glibc accepts both values
        log.debug("mallopt refused; freed memory is returned to the system as usual")
    return _state["retained"]


def _numpy_huge_pages(on: bool) -> bool | None:
    """Turn NumPy's transparent-huge-page advice on or off; returns the previous setting (None
    where this NumPy has no such switch)."""
    import numpy as np

    for mod in ("_core", "core"):  # NumPy 2 and 1
        switch = getattr(getattr(getattr(np, mod, None), "multiarray", None), "_set_madvise_hugepage", None)
        if switch is not None:
            return bool(switch(on))
    return None


def release_memory() -> bool:
    """Hand free heap memory back to the system now (``malloc_trim(0)``).

    For a long-running process that is about to sit idle after analyses. Returns True when
    some memory was released.
    """
    lib = _libc()
    return bool(lib is not None and lib.malloc_trim(0))

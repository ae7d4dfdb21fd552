"""Per-point kernels spread over threads, with every value the same to the bit.

The diameter kernels (:mod:`veinscope._kernels.fwhm`, :mod:`veinscope._kernels.profile`) are
serial loops over centreline points, each point's result computed from its own inputs only, and
they release the GIL (``nogil=True``). :func:`run_chunked` calls such a kernel on contiguous
chunks of its points from a few threads: the same scalar code on each point, the outputs written
to disjoint parts of the same arrays, so the result does not depend on the number of threads.
This keeps one compiled (serial) signature per kernel: no parallel variant to load at start-up.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["run_chunked"]

#: Below this many points a kernel runs in one call on the calling thread.
MIN_POINTS = 4096
#: Chunks per thread (points differ in cost: a wide vessel's window is longer; small chunks,
#: taken in turn, even out the threads' shares).
CHUNKS_PER_THREAD = 4


def run_chunked(call: Callable[[int, int], object], n_points: int, *, min_points: int | None = None) -> None:
    """``call(lo, hi)`` over chunks ``[lo, hi)`` covering ``0 .. n_points``, on as many threads as
    Numba may use in this thread (``numba.get_num_threads()``: 1 in a batch worker limited to one
    thread, which then runs one call here); one call when ``n_points < min_points`` (default
    :data:`MIN_POINTS`). Exceptions propagate."""
    min_points = MIN_POINTS if min_points is None else int(min_points)
    threads = 1
    if n_points >= min_points:
        import numba

        threads = max(1, min(int(numba.get_num_threads()), n_points // max(1, min_points // 2)))
    if threads <= 1:
        call(0, n_points)
        return
    from concurrent.futures import ThreadPoolExecutor

    n_chunks = threads * CHUNKS_PER_THREAD
    bounds = [n_points * i // n_chunks for i in range(n_chunks + 1)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="veinscope-points") as pool:
        for _ in pool.map(lambda i: call(bounds[i], bounds[i + 1]), range(n_chunks)):
            pass

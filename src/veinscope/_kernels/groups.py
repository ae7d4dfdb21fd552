"""Per-group statistics over the points of each chain (see :mod:`veinscope.measure`)."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def group_means(values, order, bounds, out_mean, out_abs_mean):  # pragma: no cover - compiled
    """Mean and mean absolute value of the rows of ``values`` (K, C) float32 in each group.

    Group g holds the rows ``order[bounds[g]:bounds[g + 1]]``. The sums run in float32 in that
    order and are divided in float64, then rounded to float32: exactly what
    ``values[idx].mean(axis=0)`` does in NumPy (a sequential float32 sum along axis 0, divided by
    the count as an ``intp``). Empty groups get 0.
    """
    n_groups = bounds.shape[0] - 1
    n_ch = values.shape[1]
    s = np.empty(n_ch, np.float32)
    t = np.empty(n_ch, np.float32)
    for g in range(n_groups):
        s[:] = 0.0
        t[:] = 0.0
        for q in range(bounds[g], bounds[g + 1]):
            i = order[q]
            for c in range(n_ch):
                v = values[i, c]
                s[c] += v
                t[c] += abs(v)
        cnt = np.float64(max(1, bounds[g + 1] - bounds[g]))
        for c in range(n_ch):
            out_mean[g, c] = np.float32(np.float64(s[c]) / cnt)
            out_abs_mean[g, c] = np.float32(np.float64(t[c]) / cnt)


def group_medians(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``np.median(values[groups == g])`` for every group g in 0..n_groups-1, at once.

    ``values`` (K,) or (K, C) (each column on its own); the result has ``values``' dtype for
    floats (float64 for integers, as ``np.median``), NaN for an empty group or one holding a NaN.
    The middle pair of an even group is averaged as ``np.median`` does it (sum in the value
    type, halved), so the results are the same to the bit.
    """
    vals = np.asarray(values)
    flat = vals.ndim == 1
    v2 = vals[:, None] if flat else vals
    groups = np.asarray(groups, np.int64)
    out_type = v2.dtype if v2.dtype.kind == "f" else np.dtype(np.float64)
    out = np.full((n_groups, v2.shape[1]), np.nan, out_type)
    counts = np.bincount(groups, minlength=n_groups)[:n_groups]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    for c in range(v2.shape[1]):
        col = v2[:, c]
        order = np.lexsort((col, groups))  # by group, then value (NaN last)
        srt = col[order]
        lo = srt[starts[has] + (counts[has] - 1) // 2]
        hi = srt[starts[has] + counts[has] // 2]
        if out_type.kind == "f" and v2.dtype.kind == "f":
            med = (lo + hi) / v2.dtype.type(2)
            last = srt[starts[has] + counts[has] - 1]
            med[np.isnan(last)] = np.nan
        else:
            med = (lo.astype(np.float64) + hi.astype(np.float64)) / 2.0
        out[has, c] = med
    return out[:, 0] if flat else out

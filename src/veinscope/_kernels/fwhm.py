"""Model-free full width at half maximum of vessel cross-sections (see
:func:`veinscope.diameter.half_max_widths`)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from veinscope._kernels.ridges import _bilinear


#: Samples added at a time as the walk to a half-maximum crossing leaves the sampled part.
_BLOCK = 8


@nb.njit(cache=True, nogil=True, inline="always")
def _fill(img, py, px, ny, nx, t0, t1, ns, step, n_side, prof):  # pragma: no cover - compiled
    """Samples ``t0 .. t1 - 1`` of the profile of :func:`half_max_widths` into ``prof``: the
    mean of the ``2 n_side + 1`` parallel samplings, summed in the order ``-n_side .. n_side``
    (any subset of the window gives the same values as the whole window)."""
    for t in range(t0, t1):
        prof[t] = 0.0
    for o in range(-n_side, n_side + 1):
        y0 = py + o * nx
        x0 = px - o * ny
        for t in range(t0, t1):
            d = (t - ns) * step
            prof[t] += _bilinear(img, y0 + d * ny, x0 + d * nx)
    for t in range(t0, t1):
        prof[t] /= 2 * n_side + 1


@nb.njit(cache=True, nogil=True)
def half_max_widths(img, pts, unit, guess, step, n_side, reach, out_w, out_c):  # pragma: no cover - compiled
    """FWHM (px) and centre offset (px, along ``unit``) of the profile across each point.

    For point k the profile is the mean of ``2 n_side + 1`` parallel samplings of ``img`` along
    the normal ``unit[k]`` (offset by -n_side..n_side px along the vessel), at ``step`` px over
    ``+-H``, ``H = max(reach[0] * guess[k], guess[k] / 2 + reach[1])``. The baseline is the
    median of the samples beyond ``0.75 H``; the peak is the highest sample within a quarter of
    the guessed width of the point; the width runs between the half-maximum crossings on
    either side of the peak (linear interpolation between samples). ``out_w[k]`` is NaN when
    the peak is not above the baseline, the guess is not finite, or a crossing falls outside
    the window.
    """
    k_all = pts.shape[0]
    # scratch for the longest window (one allocation instead of two per point)
    nt_max = 9
    for k in range(k_all):
        w0 = guess[k]
        if w0 > 0.0 and math.isfinite(w0):
            nt_max = max(nt_max, 2 * max(int(max(reach[0] * w0, 0.5 * w0 + reach[1]) / step), 4) + 1)
    prof_buf = np.empty(nt_max)
    flank = np.empty(nt_max)
    for k in range(k_all):
        w0 = guess[k]
        out_w[k] = np.nan
        out_c[k] = 0.0
        if not (w0 > 0.0) or not math.isfinite(w0):
            continue
        h = max(reach[0] * w0, 0.5 * w0 + reach[1])
        ns = int(h / step)
        if ns < 4:
            ns = 4
        nt = 2 * ns + 1
        ny = unit[k, 0]
        nx = unit[k, 1]
        py = pts[k, 0]
        px = pts[k, 1]
        # The profile is sampled where it is read (the flanks, the peak's window and the walk
        # out to the crossings, in blocks), not over the whole window: most of the window
        # between the crossings and the flanks is never needed. Each sample is the same sum as
        # over the whole window, so the results are the same to the bit.
        prof = prof_buf[:nt]
        a = 0  # flanks: t < a and t >= nt - a (|t - ns| step >= 0.75 h, symmetric)
        while a <= ns and abs(a - ns) * step >= 0.75 * h:
            a += 1
        _fill(img, py, px, ny, nx, 0, a, ns, step, n_side, prof)
        _fill(img, py, px, ny, nx, nt - a, nt, ns, step, n_side, prof)
        nflank = 0
        for t in range(nt):
            if abs(t - ns) * step >= 0.75 * h:
                flank[nflank] = prof[t]
                nflank += 1
        base = np.median(flank[:nflank])
        lim = int(0.25 * w0 / step) + 1
        lo = max(ns - lim, 0)
        hi = min(ns + lim + 1, nt)
        _fill(img, py, px, ny, nx, lo, hi, ns, step, n_side, prof)
        ic = ns
        for t in range(ns - lim, ns + lim + 1):
            if prof[t] > prof[ic]:
                ic = t
        peak = prof[ic]
        if not (peak > base):
            continue
        half = base + 0.5 * (peak - base)
        i = ic
        while True:  # prof[lo:hi] is sampled; i - 1 and i + 1 are read below
            if i - 1 < lo:
                lo2 = max(lo - _BLOCK, 0)
                _fill(img, py, px, ny, nx, lo2, lo, ns, step, n_side, prof)
                lo = lo2
            if not (i > 0 and prof[i] >= half):
                break
            i -= 1
        j = ic
        while True:
            if j + 2 > hi:
                hi2 = min(hi + _BLOCK, nt)
                _fill(img, py, px, ny, nx, hi, hi2, ns, step, n_side, prof)
                hi = hi2
            if not (j < nt - 1 and prof[j] >= half):
                break
            j += 1
        if prof[i] >= half or prof[j] >= half:
            continue
        xl = (i + (half - prof[i]) / (prof[i + 1] - prof[i]) - ns) * step
        xr = (j - 1 + (prof[j - 1] - half) / (prof[j - 1] - prof[j]) - ns) * step
        out_w[k] = xr - xl
        out_c[k] = 0.5 * (xl + xr)
    return out_w

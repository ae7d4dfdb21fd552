"""Model-free full width at half maximum of vessel cross-sections (see
:func:`veinscope.diameter.half_max_widths`)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from veinscope._kernels.ridges import _bilinear


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
        prof = np.zeros(nt)
        for o in range(-n_side, n_side + 1):
            y0 = pts[k, 0] + o * nx
            x0 = pts[k, 1] - o * ny
            for t in range(nt):
                d = (t - ns) * step
                prof[t] += _bilinear(img, y0 + d * ny, x0 + d * nx)
        prof /= 2 * n_side + 1
        nflank = 0
        flank = np.empty(nt)
        for t in range(nt):
            if abs(t - ns) * step >= 0.75 * h:
                flank[nflank] = prof[t]
                nflank += 1
        base = np.median(flank[:nflank])
        lim = int(0.25 * w0 / step) + 1
        ic = ns
        for t in range(ns - lim, ns + lim + 1):
            if prof[t] > prof[ic]:
                ic = t
        peak = prof[ic]
        if not (peak > base):
            continue
        half = base + 0.5 * (peak - base)
        i = ic
        while i > 0 and prof[i] >= half:
            i -= 1
        j = ic
        while j < nt - 1 and prof[j] >= half:
            j += 1
        if prof[i] >= half or prof[j] >= half:
            continue
        xl = (i + (half - prof[i]) / (prof[i + 1] - prof[i]) - ns) * step
        xr = (j - 1 + (prof[j - 1] - half) / (prof[j - 1] - prof[j]) - ns) * step
        out_w[k] = xr - xl
        out_c[k] = 0.5 * (xl + xr)
    return out_w

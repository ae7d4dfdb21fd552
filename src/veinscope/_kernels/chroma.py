"""Per-pixel colour kernels: relative optical density projected on chromophore directions."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, parallel=True)
def project_relative_od(rgb, od_lut, bg, y0, wy, x0, wx, weights, out):  # pragma: no cover - compiled
    """out[k, i, j] = sum_c weights[k, c] * (od_lut[rgb[i, j, c]] - bg_up[i, j, c]).

    ``bg`` is a coarse (m, n, 3) background optical density; ``bg_up`` is its bilinear
    upsampling, evaluated inline from the per-row (y0, wy) and per-column (x0, wx) indices and
    weights (index of the lower neighbour and weight of the upper one).
    """
    m_rows = rgb.shape[0]
    n_cols = rgb.shape[1]
    k_out = weights.shape[0]
    nbx = bg.shape[1]
    nby = bg.shape[0]
    for i in nb.prange(m_rows):
        ya = y0[i]
        yb = min(ya + 1, nby - 1)
        fy = wy[i]
        row = rgb[i]
        bga = bg[ya]
        bgb = bg[yb]
        for j in range(n_cols):
            xa = x0[j]
            xb = min(xa + 1, nbx - 1)
            fx = wx[j]
            px = row[j]
            d0 = 0.0
            d1 = 0.0
            d2 = 0.0
            for c in range(3):
                top = bga[xa, c] * (1.0 - fx) + bga[xb, c] * fx
                bot = bgb[xa, c] * (1.0 - fx) + bgb[xb, c] * fx
                b = top * (1.0 - fy) + bot * fy
                d = od_lut[px[c]] - b
                if c == 0:
                    d0 = d
                elif c == 1:
                    d1 = d
                else:
                    d2 = d
            for k in range(k_out):
                out[k, i, j] = weights[k, 0] * d0 + weights[k, 1] * d1 + weights[k, 2] * d2
    return out

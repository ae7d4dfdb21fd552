"""Per-pixel colour kernels: relative optical density projected on chromophore directions."""

from __future__ import annotations

import numba as nb
import numpy as np


#: Rows per band in :func:`project_relative_od` (results do not depend on it).
PROJECT_BAND_ROWS = 64


@nb.njit(cache=True, nogil=True)
def _background_rows(bga, bgb, x0, wx, top, bot):  # pragma: no cover - compiled
    """Background OD of two coarse rows interpolated along x at every column: ``top[j, c]``,
    ``bot[j, c]`` (float64), as :func:`project_relative_od` defines them."""
    nbx = bga.shape[0]
    for j in range(x0.shape[0]):
        xa = x0[j]
        xb = min(xa + 1, nbx - 1)
        fx = wx[j]
        for c in range(3):
            top[j, c] = bga[xa, c] * (1.0 - fx) + bga[xb, c] * fx
            bot[j, c] = bgb[xa, c] * (1.0 - fx) + bgb[xb, c] * fx


@nb.njit(cache=True, nogil=True)
def _project_rows(rgb, od_lut, bg, y0, wy, x0, wx, weights, out, r0, r1, top, bot):  # pragma: no cover - compiled
    """Rows ``r0:r1`` of :func:`project_relative_od`; ``top``, ``bot`` (N, 3) float64 scratch."""
    n_cols = rgb.shape[1]
    k_out = weights.shape[0]
    nby = bg.shape[0]
    cached = -1
    bgr = np.empty((3, n_cols), np.float64)
    for i in range(r0, r1):
        ya = y0[i]
        if ya != cached:  # rows of one band of cells share the interpolation along x
            yb = min(ya + 1, nby - 1)
            _background_rows(bg[ya], bg[yb], x0, wx, top, bot)
            cached = ya
        fy = wy[i]
        gy = 1.0 - fy
        # the background of this row first (a loop without lookups, which vectorises), then
        # the per-pixel lookups: the same operations as in one loop
        for j in range(n_cols):
            bgr[0, j] = top[j, 0] * gy + bot[j, 0] * fy
            bgr[1, j] = top[j, 1] * gy + bot[j, 1] * fy
            bgr[2, j] = top[j, 2] * gy + bot[j, 2] * fy
        row = rgb[i]
        b0 = bgr[0]
        b1 = bgr[1]
        b2 = bgr[2]
        for k in range(k_out):
            w0 = weights[k, 0]
            w1 = weights[k, 1]
            w2 = weights[k, 2]
            orow = out[k, i]
            for j in range(n_cols):
                px = row[j]
                orow[j] = w0 * (od_lut[px[0]] - b0[j]) + w1 * (od_lut[px[1]] - b1[j]) + w2 * (od_lut[px[2]] - b2[j])


@nb.njit(cache=True, nogil=True, parallel=True)
def project_relative_od(rgb, od_lut, bg, y0, wy, x0, wx, weights, out):  # pragma: no cover - compiled
    """out[k, i, j] = sum_c weights[k, c] * (od_lut[rgb[i, j, c]] - bg_up[i, j, c]).

    ``bg`` is a coarse (m, n, 3) background optical density; ``bg_up`` is its bilinear
    upsampling, evaluated inline from the per-row (y0, wy) and per-column (x0, wx) indices and
    weights (index of the lower neighbour and weight of the upper one), in float64::

        top = bg[ya, xa] (1 - fx) + bg[ya, xb] fx,   bot = the same on row yb
        bg_up = top (1 - fy) + bot fy

    ``top`` and ``bot`` depend on the row only through ``ya``, so they are computed once per
    band of rows that share it. Bands of :data:`PROJECT_BAND_ROWS` rows run in parallel; the
    result does not depend on the banding or the number of threads.
    """
    m_rows = rgb.shape[0]
    n_cols = rgb.shape[1]
    nb_bands = (m_rows + PROJECT_BAND_ROWS - 1) // PROJECT_BAND_ROWS
    for b in nb.prange(nb_bands):
        r0 = b * PROJECT_BAND_ROWS
        r1 = min(m_rows, r0 + PROJECT_BAND_ROWS)
        top = np.empty((n_cols, 3), np.float64)
        bot = np.empty((n_cols, 3), np.float64)
        _project_rows(rgb, od_lut, bg, y0, wy, x0, wx, weights, out, r0, r1, top, bot)
    return out


@nb.njit(cache=True, nogil=True, parallel=True)
def block_sum_od(rgb, mask, od_lut, cell, out_sum, out_cnt):  # pragma: no cover - compiled
    """Sum of per-channel OD (via ``od_lut``) and count of masked pixels in cell x cell blocks.

    ``out_sum`` is (ceil(M/cell), ceil(N/cell), 3) float64, ``out_cnt`` (ceil(M/cell), ceil(N/cell))
    float64; both are overwritten. One pass over the photo, no full-size temporaries.
    """
    m = rgb.shape[0]
    n = rgb.shape[1]
    gm = out_cnt.shape[0]
    gn = out_cnt.shape[1]
    for gi in nb.prange(gm):
        for gj in range(gn):
            out_cnt[gi, gj] = 0.0
            for c in range(3):
                out_sum[gi, gj, c] = 0.0
        i0 = gi * cell
        i1 = min(m, i0 + cell)
        for i in range(i0, i1):
            row = rgb[i]
            mrow = mask[i]
            for j in range(n):
                if mrow[j]:
                    gj = j // cell
                    px = row[j]
                    out_cnt[gi, gj] += 1.0
                    out_sum[gi, gj, 0] += od_lut[px[0]]
                    out_sum[gi, gj, 1] += od_lut[px[1]]
                    out_sum[gi, gj, 2] += od_lut[px[2]]
    return out_sum


@nb.njit(cache=True, nogil=True, parallel=True)
def block_sum(img, mask, cell, out_sum, out_cnt):  # pragma: no cover - compiled
    """Sum of ``img`` and count over masked pixels in cell x cell blocks (outputs overwritten)."""
    m = img.shape[0]
    n = img.shape[1]
    gm = out_cnt.shape[0]
    gn = out_cnt.shape[1]
    for gi in nb.prange(gm):
        for gj in range(gn):
            out_cnt[gi, gj] = 0.0
            out_sum[gi, gj] = 0.0
        i0 = gi * cell
        i1 = min(m, i0 + cell)
        for i in range(i0, i1):
            row = img[i]
            mrow = mask[i]
            for j in range(n):
                if mrow[j]:
                    gj = j // cell
                    out_cnt[gi, gj] += 1.0
                    out_sum[gi, gj] += row[j]
    return out_sum


@nb.njit(cache=True, nogil=True)
def median_grid(grid, k):  # pragma: no cover - compiled
    """Median filter of a small (M, N, C) float grid over k x k windows, borders replicated."""
    m, n, c = grid.shape
    r = k // 2
    out = np.empty_like(grid)
    buf = np.empty(k * k, grid.dtype)
    for ch in range(c):
        for i in range(m):
            for j in range(n):
                p = 0
                for di in range(-r, r + 1):
                    ii = min(max(i + di, 0), m - 1)
                    for dj in range(-r, r + 1):
                        jj = min(max(j + dj, 0), n - 1)
                        buf[p] = grid[ii, jj, ch]
                        p += 1
                out[i, j, ch] = np.median(buf)
    return out


@nb.njit(cache=True, nogil=True, parallel=True)
def add_upsampled(signal, coarse, y0, wy, x0, wx):  # pragma: no cover - compiled
    """``signal[i, j] += bilinear upsampling of coarse (m, n) float32`` at (y0, wy), (x0, wx)
    (lower neighbour and upper weight per row and column, as for :func:`project_relative_od`).

    In float32 and in the order of the NumPy form ``rows = c[y0] (1 - wy) + c[y1] wy``;
    ``signal += rows[:, x0] (1 - wx) + rows[:, x1] wx``, so the result is the same to the bit.
    Rows run in parallel; the result does not depend on the number of threads.
    """
    m_rows = signal.shape[0]
    n_cols = signal.shape[1]
    nby = coarse.shape[0]
    nbx = coarse.shape[1]
    one = np.float32(1.0)
    for i in nb.prange(m_rows):
        ya = y0[i]
        yb = min(ya + 1, nby - 1)
        fy = wy[i]
        gy = one - fy
        row = np.empty(nbx, np.float32)
        for c in range(nbx):
            row[c] = coarse[ya, c] * gy + coarse[yb, c] * fy
        out = signal[i]
        for j in range(n_cols):
            xa = x0[j]
            xb = min(xa + 1, nbx - 1)
            fx = wx[j]
            out[j] += row[xa] * (one - fx) + row[xb] * fx

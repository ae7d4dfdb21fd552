"""Gap-linking kernels: the contrast along a straight way between two chain ends, and its null (:func:`veinscope.extend.link_ends`)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from veinscope._kernels.track import _median_and_spread, _other_chain_near, _walk_back, cross_contrast, window_contrast


@nb.njit(cache=True, nogil=True)
def end_directions(keys, seg, n_cols, ends, back, out):  # pragma: no cover - compiled
    """Unit outward direction (y, x) of each chain end ``ends`` (E,) into ``out`` (E, 2): from the
    point ``back`` steps back along its chain (fewer on a short chain) to the end; (0, 0) for a
    one-point chain. ``keys`` = y * n_cols + x of the points, sorted."""
    path = np.empty(back + 1, np.int64)
    for i in range(ends.size):
        e = ends[i]
        c = _walk_back(keys, seg, n_cols, e, path)
        far = path[c - 1]
        ty = float(keys[e] // n_cols - keys[far] // n_cols)
        tx = float(keys[e] % n_cols - keys[far] % n_cols)
        norm = math.hypot(ty, tx)
        if norm > 0.0:
            out[i, 0] = ty / norm
            out[i, 1] = tx / norm
        else:
            out[i, 0] = 0.0
            out[i, 1] = 0.0


@nb.njit(cache=True, nogil=True)
def gap_contrast(sig, skin, keys, seg, n_cols, y0, x0, y1, x1, hw, own_a, own_b, out):  # pragma: no cover - compiled
    """The mean :func:`cross_contrast` along the straight way from (y0, x0) to (y1, x1) (an end
    of chain ``own_a`` and one of ``own_b``) at half-width ``hw``, over its inner points one
    pixel apart (the two ends left out), leaving out the points within ``ceil(hw) + 1`` px of a
    third chain's point (a vessel the way crosses). ``out``: (mean, points used, inner points);
    mean NaN when a sample leaves the skin or fewer than half the points are used."""
    dy = y1 - y0
    dx = x1 - x0
    d = math.hypot(dy, dx)
    k = int(math.floor(d)) - 1
    out[0] = np.nan
    out[1] = 0.0
    out[2] = max(k, 0)
    if k < 1:
        return
    ty = dy / d
    tx = dx / d
    foot = max(2.0 * hw, 2.0)
    d1 = hw + foot
    d2 = d1 + foot
    r = int(math.ceil(hw)) + 1
    s = 0.0
    used = 0
    for i in range(1, k + 1):
        t = i * d / (k + 1)
        y = y0 + t * ty
        x = x0 + t * tx
        v = cross_contrast(sig, skin, y, x, ty, tx, hw, d1, d2)
        if np.isnan(v):
            return
        yy = int(y + 0.5)
        xx = int(x + 0.5)
        third = False
        for dyy in range(-r, r + 1):
            lo = np.searchsorted(keys, (yy + dyy) * n_cols + max(xx - r, 0))
            hi = np.searchsorted(keys, (yy + dyy) * n_cols + min(xx + r, n_cols - 1), side="right")
            for j in range(lo, hi):
                if seg[j] != own_a and seg[j] != own_b:
                    third = True
                    break
            if third:
                break
        if third:
            continue
        s += v
        used += 1
    out[1] = used
    if 2 * used >= k:
        out[0] = s / used


@nb.njit(cache=True, nogil=True, parallel=True)
def gap_nulls(sig, skin, keys, seg, n_cols, start_y, start_x, start_ty, start_tx, hw_vals, lengths, out_med, out_sp):  # pragma: no cover - compiled
    """The null of :func:`gap_contrast`: the mean :func:`cross_contrast` over ``lengths[j]`` points
    straight on from each start (``start_y``, ``start_x``, along (``start_ty``, ``start_tx``),
    (S,)) whose whole course lies farther than the template's reach from every chain point
    (the skin's own answer), for each half-width ``hw_vals[h]``; ``out_med``,
    ``out_sp`` (H, J) the median and robust spread (1.4826 MAD), NaN with fewer than 16 values."""
    nh = hw_vals.size
    nl = lengths.size
    for c in nb.prange(nh * nl):
        h = c // nl
        j = c % nl
        hw = hw_vals[h]
        length = lengths[j]
        foot = max(2.0 * hw, 2.0)
        d1 = hw + foot
        reach = int(math.ceil(hw + 2.0 * foot)) + 1
        buf = np.empty(start_y.size, np.float64)
        nc = 0
        for i in range(start_y.size):
            y = start_y[i]
            x = start_x[i]
            near = False
            for t in range(0, length + reach, reach):  # the line's course, every ``reach`` px and its end
                tt = min(t, length)
                if _other_chain_near(keys, seg, n_cols, int(y + tt * start_ty[i] + 0.5), int(x + tt * start_tx[i] + 0.5), reach, -1):
                    near = True
                    break
            if near:
                continue
            v = window_contrast(sig, skin, y + start_ty[i], x + start_tx[i], start_ty[i], start_tx[i], hw, d1, d1 + foot, length)
            if not np.isnan(v):
                buf[nc] = v
                nc += 1
        out_med[h, j], out_sp[h, j] = _median_and_spread(buf, nc)

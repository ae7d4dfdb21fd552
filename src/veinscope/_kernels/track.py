"""Vessel tracking kernels: following a detected centreline past its end (:mod:`veinscope.extend`)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# lateral re-centring offsets tried at each step, in pixels across the vessel
_SHIFTS = (-1.0, -0.5, 0.0, 0.5, 1.0)
# points looked at ahead when re-centring (the step's own point and the next ones)
_RECENTRE_AHEAD = 3
# steps walked back along the detected chain to find the end's direction and scale
_BACK_STEPS = 8


@nb.njit(cache=True, nogil=True, inline="always")
def _sample(sig, skin, y, x):  # pragma: no cover - compiled
    """Bilinear value of ``sig`` at (y, x); NaN off the image or where the nearest pixel is off ``skin``."""
    m, n = sig.shape
    if not (y >= 0.0 and x >= 0.0 and y <= m - 1.0 and x <= n - 1.0):
        return np.nan
    if skin[int(y + 0.5), int(x + 0.5)] == 0:
        return np.nan
    i = min(int(y), max(m - 2, 0))
    j = min(int(x), max(n - 2, 0))
    fy = y - i
    fx = x - j
    i1 = min(i + 1, m - 1)
    j1 = min(j + 1, n - 1)
    return ((sig[i, j] * (1.0 - fx) + sig[i, j1] * fx) * (1.0 - fy)
            + (sig[i1, j] * (1.0 - fx) + sig[i1, j1] * fx) * fy)  # fmt: skip


@nb.njit(cache=True, nogil=True)
def cross_contrast(sig, skin, y, x, ty, tx, hw, d1, d2):  # pragma: no cover - compiled
    """Contrast of a vessel of half-width ``hw`` at (y, x) running along (ty, tx): the mean of
    ``sig`` at -hw/2, 0, +hw/2 across it minus the skin on each side (the mean at ``d1`` and ``d2``
    from the centre), the smaller of the two sides (a one-sided step, the edge of a shadow, has
    no contrast on one side). NaN where a sample is off the image or the skin."""
    ny = tx
    nx = -ty
    c = 0.0
    for u in (-0.5 * hw, 0.0, 0.5 * hw):
        v = _sample(sig, skin, y + u * ny, x + u * nx)
        if np.isnan(v):
            return np.nan
        c += v
    c /= 3.0
    a = _sample(sig, skin, y - d1 * ny, x - d1 * nx) + _sample(sig, skin, y - d2 * ny, x - d2 * nx)
    b = _sample(sig, skin, y + d1 * ny, x + d1 * nx) + _sample(sig, skin, y + d2 * ny, x + d2 * nx)
    if np.isnan(a) or np.isnan(b):
        return np.nan
    return min(c - 0.5 * a, c - 0.5 * b)


@nb.njit(cache=True, nogil=True)
def window_contrast(sig, skin, y, x, ty, tx, hw, d1, d2, k):  # pragma: no cover - compiled
    """Mean :func:`cross_contrast` over ``k`` points one pixel apart from (y, x) along (ty, tx); NaN
    when any is NaN."""
    s = 0.0
    for i in range(k):
        v = cross_contrast(sig, skin, y + i * ty, x + i * tx, ty, tx, hw, d1, d2)
        if np.isnan(v):
            return np.nan
        s += v
    return s / k


@nb.njit(cache=True, nogil=True, inline="always")
def _find(keys, q):  # pragma: no cover - compiled
    """Index of ``q`` in the sorted ``keys``, or -1."""
    i = np.searchsorted(keys, q)
    if i < keys.size and keys[i] == q:
        return i
    return -1


@nb.njit(cache=True, nogil=True)
def chain_ends(ys, xs, seg, n_cols):  # pragma: no cover - compiled
    """Indices of the points with exactly one 8-neighbour in their own chain (``ys``, ``xs``
    unique and sorted row-major; ``seg`` the chain of each).

    Each neighbour is looked up among its own row's points only (a table of where each row's
    points start), not among all the points: the same answer, a few comparisons instead of
    a binary search over the whole detection."""
    k = ys.size
    out = np.empty(k, np.int64)
    if k == 0:
        return out
    y0 = ys[0]
    nrow = ys[k - 1] - y0 + 1
    rs = np.zeros(nrow + 1, np.int64)  # points of row y0 + r: rs[r] .. rs[r + 1] - 1
    for p in range(k):
        rs[ys[p] - y0 + 1] += 1
    for r in range(nrow):
        rs[r + 1] += rs[r]
    c = 0
    for p in range(k):
        nb_ = 0
        for dy in (-1, 0, 1):
            r = ys[p] - y0 + dy
            if r < 0 or r >= nrow:
                continue
            lo = rs[r]
            hi = rs[r + 1]
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                x = xs[p] + dx
                if x < 0 or x >= n_cols:
                    continue
                i = lo + np.searchsorted(xs[lo:hi], x)
                if i < hi and xs[i] == x and seg[i] == seg[p]:
                    nb_ += 1
        if nb_ == 1:
            out[c] = p
            c += 1
    return out[:c]


@nb.njit(cache=True, nogil=True, inline="always")
def _toward(ys, xs, e, far):  # pragma: no cover - compiled
    """The unit vector from point ``far`` to point ``e`` (a chain's direction at its end), and
    whether there is one (False when the two points coincide)."""
    ty = float(ys[e] - ys[far])
    tx = float(xs[e] - xs[far])
    norm = math.hypot(ty, tx)
    if norm == 0.0:
        return 0.0, 0.0, False
    return ty / norm, tx / norm, True


@nb.njit(cache=True, nogil=True)
def _walk_back(keys, seg, n_cols, e, path):  # pragma: no cover - compiled
    """Walk from end point ``e`` back along its chain (at most ``path.size`` points, ``e`` first);
    returns the number of points walked."""
    path[0] = e
    cnt = 1
    cur = e
    while cnt < path.size:
        nxt = -1
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                x = keys[cur] % n_cols + dx
                if x < 0 or x >= n_cols:
                    continue
                i = _find(keys, keys[cur] + dy * n_cols + dx)
                if i < 0 or seg[i] != seg[e]:
                    continue
                seen = False
                for t in range(cnt):
                    if path[t] == i:
                        seen = True
                if not seen and (nxt < 0 or (dy == 0 or dx == 0)):
                    nxt = i  # prefer an axial neighbour (the chain's next pixel, not a corner)
        if nxt < 0:
            break
        path[cnt] = nxt
        cur = nxt
        cnt += 1
    return cnt


@nb.njit(cache=True, nogil=True)
def _other_chain_near(keys, seg, n_cols, y, x, r, own):  # pragma: no cover - compiled
    """True when a point of a chain other than ``own`` lies within ``r`` px (Chebyshev) of (y, x)."""
    for dy in range(-r, r + 1):
        lo = np.searchsorted(keys, (y + dy) * n_cols + max(x - r, 0))
        hi = np.searchsorted(keys, (y + dy) * n_cols + min(x + r, n_cols - 1), side="right")
        for i in range(lo, hi):
            if seg[i] != own:
                return True
    return False


# copies of the way ahead on each side of it, and positions along it, for the stop level
_N_COPIES = 4
_N_ALONG = 4


@nb.njit(cache=True, nogil=True)
def _level(sig, skin, y, x, ty, tx, hw, d1, d2, window, k_noise, buf):  # pragma: no cover - compiled
    """The stop level of a track from (y, x) along (ty, tx): the median (at least 0) + ``k_noise`` robust spreads
    (1.4826 MAD) of :func:`window_contrast` over ``window`` points along straight copies of the
    way ahead on the skin beside it (``_N_COPIES`` per side clear of the vessel's template,
    starting one window behind the end, at it, and one and two windows ahead), and the median
    (at least 0) alone; NaN with fewer than 8 copies on the skin."""
    ny = tx
    nx = -ty
    foot = d2 - d1
    nc = 0
    for side in (-1.0, 1.0):
        for j in range(_N_COPIES):
            off = side * (d2 + hw + 1.0 + j * 2.0 * foot)
            for f in range(_N_ALONG):
                along = 1.0 + (f - 1.0) * window  # one window behind the end to two ahead
                v = window_contrast(sig, skin, y + along * ty + off * ny, x + along * tx + off * nx, ty, tx, hw, d1, d2, window)
                if not np.isnan(v):
                    buf[nc] = v
                    nc += 1
    if nc < 8:
        return np.nan, np.nan
    med = float(np.median(buf[:nc]))
    for t in range(nc):
        buf[t] = abs(buf[t] - med)
    # above the skin's typical answer and above nothing (the template's answer on skin is
    # mostly negative: the smaller side's contrast) by k spreads
    floor = max(med, 0.0)
    return floor + k_noise * 1.4826 * float(np.median(buf[:nc])), floor



# the probe's fan of directions (degrees from the track's own) where the window ahead lost it
_FAN_DEG = (-40.0, -27.0, -13.0, 0.0, 13.0, 27.0, 40.0)
# the finest half-width a probe also tries (a vessel tapers as it fades: its end answers at a
# larger scale than its faint continuation)
_FINE_HW = 0.75


@nb.njit(cache=True, nogil=True)
def _fan_best(sig, skin, y, x, ty, tx, hws, length):  # pragma: no cover - compiled
    """The largest :func:`window_contrast` over ``length`` points straight on from one step past
    (y, x), over the fan ``_FAN_DEG`` about (ty, tx) and the half-widths ``hws``: (value,
    direction y, direction x, half-width); value -inf when every candidate is off the skin."""
    best = -np.inf
    by = ty
    bx = tx
    bh = hws[0]
    for deg in _FAN_DEG:
        c = math.cos(math.radians(deg))
        s_ = math.sin(math.radians(deg))
        dy = c * ty + s_ * tx
        dx = -s_ * ty + c * tx
        for h in hws:
            foot = max(2.0 * h, 2.0)
            d1 = h + foot
            v = window_contrast(sig, skin, y + dy, x + dx, dy, dx, h, d1, d1 + foot, length)
            if v > best:
                best = v
                by = dy
                bx = dx
                bh = h
    return best, by, bx, bh


@nb.njit(cache=True, nogil=True, parallel=True)
def probe_nulls(sig, skin, ys, xs, seg, n_cols, start_y, start_x, start_ty, start_tx, hw_vals, length, out_med, out_sp):  # pragma: no cover - compiled
    """The null of :func:`_fan_best` over ``length`` points on the skin off the detected
    centrelines, for each half-width in ``hw_vals`` (H,): the statistic from each start
    (``start_y``, ``start_x``, along (``start_ty``, ``start_tx``), (S,)) that lies on the skin
    farther than the template's reach from every centreline point, with the half-widths
    (hw, min(hw, ``_FINE_HW``)) a probe from an end of that half-width tries; ``out_med``,
    ``out_sp`` (H,) its median and robust spread (1.4826 MAD), NaN with fewer than 16 values."""
    keys = ys.astype(np.int64) * n_cols + xs
    for h in nb.prange(hw_vals.size):
        hw = hw_vals[h]
        hws = np.empty(2, np.float64)
        hws[0] = hw
        hws[1] = min(hw, _FINE_HW)
        foot = max(2.0 * hw, 2.0)
        reach = int(math.ceil(hw + 2.0 * foot)) + 1
        buf = np.empty(start_y.size, np.float64)
        nc = 0
        for i in range(start_y.size):
            y = start_y[i]
            x = start_x[i]
            if _other_chain_near(keys, seg, n_cols, int(y + 0.5), int(x + 0.5), reach + length, -1):
                continue  # off the vessels found: the skin's own answer
            v, _, _, _ = _fan_best(sig, skin, y, x, start_ty[i], start_tx[i], hws, length)
            if v > -np.inf and not np.isnan(v):
                buf[nc] = v
                nc += 1
        out_med[h], out_sp[h] = _median_and_spread(buf, nc)


@nb.njit(cache=True, nogil=True)
def _median_and_spread(buf, nc):  # pragma: no cover - compiled
    """The median of ``buf[:nc]`` and its robust spread (1.4826 x the median absolute deviation),
    NaN for both under 16 values: a null's reading of the skin's own lines (``buf`` is overwritten)."""
    if nc < 16:
        return np.nan, np.nan
    med = float(np.median(buf[:nc]))
    for t in range(nc):
        buf[t] = abs(buf[t] - med)
    return med, 1.4826 * float(np.median(buf[:nc]))


@nb.njit(cache=True, nogil=True, inline="always")
def _nearest_null(null_hw, null_med, null_sp, hw):  # pragma: no cover - compiled
    """The probe's null (median, spread) at the measured half-width nearest ``hw``."""
    n_med = np.nan
    n_sp = np.nan
    best_d = np.inf
    for h in range(null_hw.size):
        if abs(null_hw[h] - hw) < best_d:
            best_d = abs(null_hw[h] - hw)
            n_med = null_med[h]
            n_sp = null_sp[h]
    return n_med, n_sp


@nb.njit(cache=True, nogil=True, parallel=True)
def follow_ends(sig, skin, ys, xs, seg, scale_px, ends, n_cols, max_steps, window, k_noise, min_turn_cos,
                out_yx, out_skip, out_n, out_info, ahead=3, inertia=0.5, long_window=0, through=0,
                probe=0, z_probe=np.inf, max_probes=0, null_hw=np.zeros(0), null_med=np.zeros(0), null_sp=np.zeros(0)):  # pragma: no cover - compiled
    """Follow each chain end in ``ends`` along its vessel; see :func:`veinscope.extend.extend_ends`.

    ``out_yx`` (E, max_steps, 2) float32 receives each end's track (one point per pixel of
    arc), ``out_skip`` (E, max_steps) bool marks its points within reach of another chain's
    centreline, ``out_n`` (E,) its length in points; ``out_info`` (E, 5): the end's half-width,
    its own contrast over its last points, the stop level (NaN where not reached), the probes
    accepted, and why the track ended (0 not followed, 1 the length, 2 off the skin, 3 a sharp
    turn, 4 no contrast ahead, 5 along another chain). ``ahead``: points looked at when
    re-centring; ``inertia``: the share of the old direction in the new one. ``probe``: the
    probe's length in points (0: none), accepted ``z_probe`` robust spreads above the null
    (``null_med``, ``null_sp`` (H,) at the half-widths ``null_hw``: :func:`probe_nulls`; the
    one nearest the end's), at most ``max_probes`` per end.
    """
    keys = ys.astype(np.int64) * n_cols + xs
    for a in nb.prange(ends.size):  # ends are independent: the same result on any number of threads
        path = np.empty(_BACK_STEPS + 1, np.int64)
        sc = np.empty(_BACK_STEPS + 1, np.float64)
        copies = np.empty(2 * _N_COPIES * _N_ALONG, np.float64)
        hws = np.empty(2, np.float64)
        tdir = np.empty((max(window, 1), 2), np.float64)
        out_n[a] = 0
        out_info[a, 0] = np.nan
        out_info[a, 1] = np.nan
        out_info[a, 2] = np.nan
        out_info[a, 3] = 0.0
        out_info[a, 4] = 0.0
        e = ends[a]
        cnt = _walk_back(keys, seg, n_cols, e, path)
        if cnt < 4:
            continue
        ty, tx, ok = _toward(ys, xs, e, path[cnt - 1])
        if not ok:
            continue
        for t in range(cnt):
            sc[t] = scale_px[path[t]]
        hw = max(float(np.median(sc[:cnt])), 0.75)  # a bar of width w answers most at sigma = w / 2
        foot = max(2.0 * hw, 2.0)
        d1 = hw + foot
        d2 = d1 + foot
        out_info[a, 0] = hw
        # the end's own contrast along its last points, with the end's direction
        own = 0.0
        n_own = 0
        for t in range(cnt):
            v = cross_contrast(sig, skin, float(ys[path[t]]), float(xs[path[t]]), ty, tx, hw, d1, d2)
            if not np.isnan(v):
                own += v
                n_own += 1
        if n_own < cnt // 2 + 1:
            continue
        own /= n_own
        out_info[a, 1] = own
        if not (own > 0.0):
            continue  # not darker than the skin beside it
        # the stop level: the same window statistic along straight copies of the way ahead on
        # the skin beside it (both sides, clear of the vessel's template), median + k MAD
        a_ty = ty
        a_tx = tx
        level, floor = _level(sig, skin, ys[e], xs[e], ty, tx, hw, d1, d2, window, k_noise, copies)
        out_info[a, 2] = level
        if not (own >= level) or not (level > 0.0):
            continue  # the template does not see this end's vessel above the skin beside it
        py = float(ys[e])
        px = float(xs[e])
        r = int(math.ceil(hw)) + 1
        s = 0
        why = 1.0
        crossing = 0
        level2 = np.nan  # the long window's level, found when first needed
        # the probe's null: the photo's, at the half-width nearest the end's
        n_med, n_sp = _nearest_null(null_hw, null_med, null_sp, hw)
        probes = 0
        hws[0] = hw
        hws[1] = min(hw, _FINE_HW)
        while s < max_steps:
            ny = tx
            nx = -ty
            best = -np.inf
            bd = 0.0
            for dd in _SHIFTS:
                v = window_contrast(sig, skin, py + ty + dd * ny, px + tx + dd * nx, ty, tx, hw, d1, d2, ahead)
                if v > best:
                    best = v
                    bd = dd
            if best == -np.inf:
                why = 2.0
                break  # off the skin
            qy = py + ty + bd * ny
            qx = px + tx + bd * nx
            dy = qy - py
            dx = qx - px
            norm = math.hypot(dy, dx)
            nty = inertia * ty + (1.0 - inertia) * dy / norm
            ntx = inertia * tx + (1.0 - inertia) * dx / norm
            norm = math.hypot(nty, ntx)
            nty /= norm
            ntx /= norm
            if s == 0:
                for t in range(window):
                    tdir[t, 0] = ty
                    tdir[t, 1] = tx
            old = tdir[s % window]
            if nty * old[0] + ntx * old[1] < min_turn_cos:
                why = 3.0
                break  # turned too sharply within a window: not the same vessel
            # the stop rule looks ahead from the re-centred point along the new direction
            w = window_contrast(sig, skin, qy, qx, nty, ntx, hw, d1, d2, window)
            if not (w >= level) and long_window > window:
                w2 = window_contrast(sig, skin, qy, qx, nty, ntx, hw, d1, d2, long_window)
                # (under the skin's median no level can pass: the long window's copies are not needed)
                if w2 > floor and np.isnan(level2):
                    level2, _ = _level(sig, skin, ys[e], xs[e], a_ty, a_tx, hw, d1, d2, long_window, k_noise, copies)
                if w2 > floor and w2 >= level2:
                    w = level  # a dip of the vessel's contrast: the longer window ahead still sees it
            if not (w >= level):
                if np.isnan(w) or probes >= max_probes or probe < 1 or s + probe > max_steps:
                    why = 2.0 if np.isnan(w) else 4.0
                    break  # no evidence of the vessel ahead
                # the window ahead lost it: probe a fan of directions and the finest width over
                # a longer stretch, judged against the same probe on the skin beside the end
                v, pty, ptx, ph = _fan_best(sig, skin, py, px, ty, tx, hws, probe)
                if not (n_sp > 0.0) or not (v > floor) or not ((v - n_med) >= z_probe * n_sp):
                    why = 4.0
                    break  # nothing stands out of the skin's own fan either
                probes += 1
                out_info[a, 3] = probes
                stop = False
                for t in range(probe):
                    qy = py + pty
                    qx = px + ptx
                    if _other_chain_near(keys, seg, n_cols, int(qy + 0.5), int(qx + 0.5), r, seg[e]):
                        stop = True
                        break
                    out_yx[a, s, 0] = qy
                    out_yx[a, s, 1] = qx
                    out_skip[a, s] = False
                    py = qy
                    px = qx
                    s += 1
                if stop:
                    why = 5.0
                    break
                ty = pty
                tx = ptx
                for t in range(window):
                    tdir[t, 0] = ty
                    tdir[t, 1] = tx
                if ph != hw:  # the finer width: its own template and stop level from here on
                    hw = ph
                    foot = max(2.0 * hw, 2.0)
                    d1 = hw + foot
                    d2 = d1 + foot
                    r = int(math.ceil(hw)) + 1
                    level, floor = _level(sig, skin, ys[e], xs[e], a_ty, a_tx, hw, d1, d2, window, k_noise, copies)
                    level2 = np.nan
                    hws[0] = hw
                    n_med, n_sp = _nearest_null(null_hw, null_med, null_sp, hw)
                    if not (level > 0.0):
                        why = 4.0
                        break
                continue
            iy = int(qy + 0.5)
            ix = int(qx + 0.5)
            if _other_chain_near(keys, seg, n_cols, iy, ix, r, seg[e]):
                crossing += 1
                if crossing > through:
                    why = 5.0
                    break  # runs along another vessel's centreline
                out_skip[a, s] = True  # on that vessel: not added to this one
            else:
                crossing = 0
                out_skip[a, s] = False
            out_yx[a, s, 0] = qy
            out_yx[a, s, 1] = qx
            tdir[s % window, 0] = nty
            tdir[s % window, 1] = ntx
            py = qy
            px = qx
            ty = nty
            tx = ntx
            s += 1
        out_n[a] = s
        out_info[a, 4] = why


@nb.njit(cache=True, nogil=True)
def raster_track(y0, x0, track, skip, m, n, out, half=2):  # pragma: no cover - compiled
    """Pixels of a track (float points one pixel apart, ``skip`` those not to keep) from the end
    pixel (y0, x0): the track smoothed over ``2 half + 1`` points (a running mean, ends held;
    ``half`` 0: not smoothed), rounded, then an 8-connected chain without repeats or L-corners;
    the end pixel itself left out. Writes them to ``out`` (at least ``track.shape[0]`` rows) and
    returns how many."""
    k = track.shape[0] + 1
    py = np.empty(k, np.float64)
    px = np.empty(k, np.float64)
    keep = np.empty(k, np.bool_)
    py[0] = y0
    px[0] = x0
    keep[0] = True
    for i in range(1, k):
        py[i] = track[i - 1, 0]
        px[i] = track[i - 1, 1]
        keep[i] = not skip[i - 1]
    ry = np.empty(k, np.int64)
    rx = np.empty(k, np.int64)
    for i in range(k):
        sy = 0.0
        sx = 0.0
        for j in range(i - half, i + half + 1):
            jj = min(max(j, 0), k - 1)
            sy += py[jj]
            sx += px[jj]
        w = 2.0 * half + 1.0
        if i == 0:
            sy = w * y0
            sx = w * x0
        ry[i] = min(max(int(math.floor(sy / w + 0.5)), 0), m - 1)
        rx[i] = min(max(int(math.floor(sx / w + 0.5)), 0), n - 1)
    cy = np.empty(k, np.int64)
    cx = np.empty(k, np.int64)
    ck = np.empty(k, np.bool_)
    c = 1
    cy[0] = ry[0]
    cx[0] = rx[0]
    ck[0] = True
    for i in range(1, k):
        if ry[i] == cy[c - 1] and rx[i] == cx[c - 1]:
            ck[c - 1] = ck[c - 1] and keep[i]
            continue
        if c >= 2 and abs(cy[c - 2] - ry[i]) <= 1 and abs(cx[c - 2] - rx[i]) <= 1:
            c -= 1  # the corner of an L
        cy[c] = ry[i]
        cx[c] = rx[i]
        ck[c] = keep[i]
        c += 1
    cnt = 0
    for i in range(1, c):
        if ck[i]:
            out[cnt, 0] = cy[i]
            out[cnt, 1] = cx[i]
            cnt += 1
    return cnt


@nb.njit(cache=True, nogil=True)
def _vessel_near(keys, seg, size, n_cols, y, x, r, own, min_size, own_keys):  # pragma: no cover - compiled
    """True when a centreline point lies within ``r`` px (Chebyshev) of (y, x): of a chain other
    than ``own`` with at least ``min_size`` points (``size`` (C,)), or of ``own`` itself but not
    among ``own_keys`` (sorted: the end's own last stretch)."""
    for dy in range(-r, r + 1):
        lo = np.searchsorted(keys, (y + dy) * n_cols + max(x - r, 0))
        hi = np.searchsorted(keys, (y + dy) * n_cols + min(x + r, n_cols - 1), side="right")
        for i in range(lo, hi):
            if seg[i] != own:
                if size[seg[i]] >= min_size:
                    return True
            elif _find(own_keys, keys[i]) < 0:
                return True  # another branch of its own chain
    return False


@nb.njit(cache=True, nogil=True, parallel=True)
def reach_faces(sig, skin, ys, xs, seg, size, scale_px, chain_scale, ends, n_cols, max_widths, k_noise, out_yx, out_n, out_info):  # pragma: no cover - compiled
    """Carry each chain end in ``ends`` on along its vessel to the vessel's end face; see
    :func:`veinscope.extend.reach_end_faces`.

    ``out_yx`` (E, S, 2) float32 receives each end's steps (one per pixel of arc, at most S and
    at most ``max_widths`` vessel widths), ``out_n`` (E,) how many; ``out_info`` (E, 6): the
    end's half-width, its own contrast over its last points (the reference), the level the
    contrast ahead had to reach (NaN: not followed), why the walk ended (0 not followed,
    1 the length, 2 off the skin, 3 the end face, 4 another vessel's centreline: a step within
    the half-width and a pixel of a point of another chain at least two widths long, ``size``
    (C,) the chains' numbers of points, or of its own chain off the end's last four widths), and
    the walk's direction
    (unit, row and column).
    """
    keys = ys.astype(np.int64) * n_cols + xs
    max_steps = out_yx.shape[1]
    for a in nb.prange(ends.size):  # ends are independent: the same result on any number of threads
        out_n[a] = 0
        out_info[a, 0] = np.nan
        out_info[a, 1] = np.nan
        out_info[a, 2] = np.nan
        out_info[a, 3] = 0.0
        out_info[a, 4] = np.nan
        out_info[a, 5] = np.nan
        e = ends[a]
        # the end's half-width: the median Hessian scale over its last four widths, measured
        # by its chain's median scale (the filter answers at a smaller scale within about a
        # width of the end, where the larger one loses the vessel)
        n_loc = int(math.ceil(8.0 * max(chain_scale[seg[e]], 0.75))) + 1
        path = np.empty(max(n_loc, _BACK_STEPS + 1), np.int64)
        cnt = _walk_back(keys, seg, n_cols, e, path)
        sc = np.empty(cnt, np.float64)
        for t in range(cnt):
            sc[t] = scale_px[path[t]]
        hw = max(float(np.median(sc)), 0.75)  # a bar of width w answers most at sigma = w / 2
        # the reference: the chain's last two widths (at least the points of a direction)
        cnt_r = max(_BACK_STEPS + 1, int(math.ceil(4.0 * hw)) + 1)
        if cnt < cnt_r:
            continue  # shorter than two of its widths: a speck or a fork, not a vessel's crest
        ref = path[:cnt_r]
        # the direction: the chord of the last two widths (a straight way on over at most two
        # more: a vessel's curvature radius is many widths)
        ty, tx, ok = _toward(ys, xs, e, ref[cnt_r - 1])
        if not ok:
            continue
        foot = max(2.0 * hw, 2.0)
        d1 = hw + foot
        d2 = d1 + foot
        out_info[a, 0] = hw
        out_info[a, 4] = ty
        out_info[a, 5] = tx
        vals = np.empty(cnt_r, np.float64)
        nv = 0
        for t in range(cnt_r):
            v = cross_contrast(sig, skin, float(ys[ref[t]]), float(xs[ref[t]]), ty, tx, hw, d1, d2)
            if not np.isnan(v):
                vals[nv] = v
                nv += 1
        if nv < cnt_r // 2 + 1:
            continue
        c0 = float(np.median(vals[:nv]))
        out_info[a, 1] = c0
        if not (c0 > 0.0):
            continue
        copies = np.empty(2 * _N_COPIES * _N_ALONG, np.float64)
        noise, _ = _level(sig, skin, ys[e], xs[e], ty, tx, hw, d1, d2, 1, k_noise, copies)
        level = 0.5 * c0 if np.isnan(noise) else max(0.5 * c0, noise)
        out_info[a, 2] = level
        if not (c0 >= level):
            continue
        py = float(ys[e])
        px = float(xs[e])
        lim = min(max_steps, int(math.ceil(max_widths * 2.0 * hw)))
        r = int(math.ceil(hw)) + 1  # within the vessel's half-width and a pixel
        own_keys = np.sort(keys[path[:cnt]])
        s = 0
        why = 1.0
        while s < lim:
            qy = py + ty
            qx = px + tx
            c = cross_contrast(sig, skin, qy, qx, ty, tx, hw, d1, d2)
            if np.isnan(c):
                why = 2.0
                break  # off the image or the skin
            if c < level:
                why = 3.0
                break  # the end face: the contrast has fallen to half the vessel's own
            if _vessel_near(keys, seg, size, n_cols, int(qy + 0.5), int(qx + 0.5), r, seg[e], 4.0 * hw, own_keys):
                why = 4.0
                break  # the vessel goes on in another chain (a piece beyond a break, a vessel met)
            out_yx[a, s, 0] = qy
            out_yx[a, s, 1] = qx
            py = qy
            px = qx
            s += 1
        out_n[a] = s
        out_info[a, 3] = why


@nb.njit(cache=True, nogil=True)
def end_clutter(y, x, order, bounds, fy, fx, ty, tx, hw, own, drop):  # pragma: no cover - compiled
    """Mark in ``drop`` (C,) bool the chains that are clutter inside a vessel's end; see
    :func:`veinscope.extend._end_clutter`.

    Chain ``c`` holds the points ``order[bounds[c]:bounds[c + 1]]`` of ``y``, ``x`` (K,) float64.
    Face ``f`` lies at (``fy[f]``, ``fx[f]``), its vessel running along (``ty[f]``, ``tx[f]``)
    towards it with the half-width ``hw[f]``; ``own[f]`` is its own chain. A chain with fewer
    points than ``2 hw`` whose every point is at most ``2 hw`` behind the face, at most
    ``hw / 2`` beyond it and at most ``1.5 hw`` from the axis is marked. Faces are taken in
    turn and a chain marked by one is not looked at again (as the NumPy form it replaces).
    """
    nchain = bounds.shape[0] - 1
    lo_y = np.full(nchain, np.inf)
    hi_y = np.full(nchain, -np.inf)
    lo_x = np.full(nchain, np.inf)
    hi_x = np.full(nchain, -np.inf)
    for c in range(nchain):
        for k in range(bounds[c], bounds[c + 1]):
            p = order[k]
            lo_y[c] = min(lo_y[c], y[p])
            hi_y[c] = max(hi_y[c], y[p])
            lo_x[c] = min(lo_x[c], x[p])
            hi_x[c] = max(hi_x[c], x[p])
    for f in range(fy.shape[0]):
        w = 2.0 * hw[f]
        for c in range(nchain):
            size = bounds[c + 1] - bounds[c]
            if drop[c] or c == own[f] or size == 0 or not (size < w):
                continue
            if not (lo_y[c] >= fy[f] - w and hi_y[c] <= fy[f] + w and lo_x[c] >= fx[f] - w and hi_x[c] <= fx[f] + w):
                continue
            inside = True
            for k in range(bounds[c], bounds[c + 1]):
                p = order[k]
                dy = y[p] - fy[f]
                dx = x[p] - fx[f]
                along = dy * ty[f] + dx * tx[f]
                across = abs(dy * tx[f] - dx * ty[f])
                if not (along >= -w and along <= 0.5 * hw[f] and across <= 1.5 * hw[f]):
                    inside = False
                    break
            if inside:
                drop[c] = True

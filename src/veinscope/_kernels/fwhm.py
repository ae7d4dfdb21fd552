"""Model-free full width at half maximum of vessel cross-sections (see
:func:`veinscope.diameter.half_max_widths`)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from veinscope._kernels.ridges import _bilinear


@nb.njit(cache=True, nogil=True)
def half_max_widths(img, pts, unit, guess, step, n_side, side_frac, reach, gap_frac, out_w, out_c, out_snr):  # pragma: no cover - compiled
    """FWHM (px) and centre offset (px, along ``unit``) of the profile across each point.

    For point k the profile is the mean of ``2 n_side + 1`` parallel samplings of ``img`` along
    the normal ``unit[k]``, offset along the vessel by -n_side..n_side times a spacing of
    ``max(1, side_frac * guess[k] / n_side)`` px (wide vessels are averaged over a length that
    grows with their width, at the same cost), at ``step`` px over
    ``+-H``, ``H = max(reach[0] * guess[k], guess[k] / 2 + reach[1])``. The baseline is the
    median of the samples beyond ``0.75 H``. A least-squares parabola is fitted through the
    samples within a quarter of the guessed width of the point (the highest single sample there
    is biased upwards by the noise). The edges are the half-maximum crossings (linear
    interpolation between samples) going out from the highest sample; on each side the first
    crossing, where noise crosses early, is moved out by the samples still at or above half
    within ``gap_frac * guess[k]`` (at least 1 px) beyond it. The crossings are found twice:
    first at the half level of the parabola's vertex, then at the half level of the parabola's
    value at the centre of the first crossings (the vertex, the fit's maximum, is pushed up by
    noise). ``out_w[k]`` is NaN when the peak is not above the baseline, the guess is not
    finite, or a crossing falls outside the window. ``out_snr[k]`` is the profile's height
    (the final peak over the baseline) over its noise: 1.4826 times the median absolute
    deviation of the flank samples from a straight line fitted through them (the skin's slope
    taken out), NaN where no width was found.
    """
    k_all = pts.shape[0]
    # one profile buffer for all points, grown when a wider window needs it
    prof = np.empty(0)
    have = np.zeros(0, np.bool_)
    flank = np.empty(0)
    for k in range(k_all):
        w0 = guess[k]
        out_w[k] = np.nan
        out_c[k] = 0.0
        out_snr[k] = np.nan
        if not (w0 > 0.0) or not math.isfinite(w0):
            continue
        h = max(reach[0] * w0, 0.5 * w0 + reach[1])
        # the noise of a wide, faint profile makes its first crossings early: its parallel
        # profiles spread over +-side_frac of the width along the vessel (as many, further apart:
        # the skin's texture, correlated over a pixel or two, averages out more at the same cost)
        sp = max(1.0, side_frac * w0 / max(n_side, 1))
        ns = int(h / step)
        if ns < 4:
            ns = 4
        nt = 2 * ns + 1
        ny = unit[k, 0]
        nx = unit[k, 1]
        # the profile is sampled only where it is read (the flanks, the centre, the walk out
        # to each crossing and the gap beyond it), in runs of contiguous samples summed line by
        # line as a full sampling does: every value is the same to the bit
        if prof.shape[0] < nt:
            prof = np.empty(nt)
            have = np.zeros(nt, np.bool_)
            flank = np.empty(nt)
        for t in range(nt):
            have[t] = False
        py = pts[k, 0]
        px = pts[k, 1]
        a = 0
        while a < nt and abs(a - ns) * step >= 0.75 * h:
            a += 1
        b = nt - 1
        while b >= 0 and abs(b - ns) * step >= 0.75 * h:
            b -= 1
        _fill(img, prof, have, 0, a, py, px, ny, nx, n_side, sp, ns, step)
        _fill(img, prof, have, b + 1, nt, py, px, ny, nx, n_side, sp, ns, step)
        nflank = 0
        for t in range(a):
            flank[nflank] = prof[t]
            nflank += 1
        for t in range(b + 1, nt):
            flank[nflank] = prof[t]
            nflank += 1
        base = np.median(flank[:nflank])
        lim = int(0.25 * w0 / step) + 1
        _fill_missing(img, prof, have, max(0, ns - lim - 1), min(nt, ns + lim + 2), py, px, ny, nx, n_side, sp, ns, step)
        ic = ns
        for t in range(ns - lim, ns + lim + 1):
            if prof[t] > prof[ic]:
                ic = t
        c0, c1, c2, fit = _parabola(prof, ns - lim, ns + lim, step)
        peak = _parabola_top(prof, ns - lim, ns + lim, step, c0, c1, c2, fit)
        if not (peak > base):
            continue
        gap = int(max(1.0, gap_frac * w0) / step)
        xl, xr, xm, ok = _crossings(img, prof, have, ic, base + 0.5 * (peak - base), gap, py, px, ny, nx, n_side, sp, ns, step)
        if not ok:
            continue
        if fit:
            # the vertex is the fitted parabola's maximum, which noise pushes up (by the square
            # of the noise in its slope over its curvature) and so narrows faint profiles: the
            # peak is the parabola's value at the centre of the first crossings instead (found
            # from the flanks; the same for any gap), and the crossings are found again at the
            # half level it gives
            xm = min(max(xm, -lim * step), lim * step)
            peak = c0 + c1 * xm + c2 * xm * xm
            if not (peak > base):
                continue
            xl, xr, xm, ok = _crossings(img, prof, have, ic, base + 0.5 * (peak - base), gap, py, px, ny, nx, n_side, sp, ns, step)
            if not ok:
                continue
        out_w[k] = xr - xl
        out_c[k] = 0.5 * (xl + xr)
        out_snr[k] = (peak - base) / _flank_noise(prof, a, b, nt, flank)
    return out_w


@nb.njit(cache=True, nogil=True)
def _flank_noise(prof, a, b, nt, resid):  # pragma: no cover - compiled
    """1.4826 x the median absolute deviation of the flank samples (``prof[:a]`` and
    ``prof[b + 1:nt]``) from their least-squares line (``resid`` is scratch space); a tiny
    positive floor for a noiseless profile."""
    s0 = s1 = s2 = y0 = y1 = 0.0
    for t in range(nt):
        if a <= t <= b:
            continue
        x = float(t)
        s0 += 1.0
        s1 += x
        s2 += x * x
        y0 += prof[t]
        y1 += x * prof[t]
    det = s0 * s2 - s1 * s1
    c1 = (s0 * y1 - s1 * y0) / det if det > 0.0 else 0.0
    c0 = (y0 - c1 * s1) / s0 if s0 > 0.0 else 0.0
    m = 0
    for t in range(nt):
        if a <= t <= b:
            continue
        resid[m] = prof[t] - (c0 + c1 * t)
        m += 1
    if m == 0:
        return 1e-12
    med = np.median(resid[:m])
    for i in range(m):
        resid[i] = abs(resid[i] - med)
    return max(1.4826 * np.median(resid[:m]), 1e-12)


#: Samples added at a time when the walk to a half-maximum crossing leaves the sampled part.
_RUN = 8


@nb.njit(cache=True, nogil=True)
def _fill(img, prof, have, a, b, py, px, ny, nx, n_side, sp, ns, step):  # pragma: no cover - compiled
    """Samples ``a..b-1`` of the profile: sample t is the mean of ``2 n_side + 1`` bilinear
    samples of ``img`` at ``(t - ns) step`` px along the normal (ny, nx) from the point
    (py, px) offset by -n_side..n_side times ``sp`` px along the vessel, summed line by line."""
    for t in range(a, b):
        prof[t] = 0.0
    for o in range(-n_side, n_side + 1):
        y0 = py + o * sp * nx
        x0 = px - o * sp * ny
        for t in range(a, b):
            d = (t - ns) * step
            prof[t] += _bilinear(img, y0 + d * ny, x0 + d * nx)
    for t in range(a, b):
        prof[t] /= 2 * n_side + 1
        have[t] = True


@nb.njit(cache=True, nogil=True)
def _fill_missing(img, prof, have, a, b, py, px, ny, nx, n_side, sp, ns, step):  # pragma: no cover - compiled
    """:func:`_fill` from the first to the last sample in ``a..b-1`` not yet sampled."""
    while a < b and have[a]:
        a += 1
    while b > a and have[b - 1]:
        b -= 1
    if a < b:
        _fill(img, prof, have, a, b, py, px, ny, nx, n_side, sp, ns, step)


@nb.njit(cache=True, nogil=True)
def _crossings(img, prof, have, ic, half, gap, py, px, ny, nx, n_side, sp, ns, step):  # pragma: no cover - compiled
    """Left and right half-maximum crossings (px from the point) going out from sample ``ic``,
    each corrected by the samples at or above ``half`` within ``gap`` samples beyond it, the
    centre of the first crossings (before that correction), and whether both were found inside
    the window; samples the walk reads are filled as it goes."""
    nt = 2 * ns + 1
    i = ic
    while i > 0 and prof[i] >= half:
        i -= 1
        if not have[i]:
            _fill_missing(img, prof, have, max(0, i - _RUN + 1), i + 1, py, px, ny, nx, n_side, sp, ns, step)
    j = ic
    while j < nt - 1 and prof[j] >= half:
        j += 1
        if not have[j]:
            _fill_missing(img, prof, have, j, min(nt, j + _RUN), py, px, ny, nx, n_side, sp, ns, step)
    if prof[i] >= half or prof[j] >= half:
        return 0.0, 0.0, 0.0, False
    if prof[i + 1] == prof[i] or prof[j - 1] == prof[j]:
        # the sample at ic is itself below half (the fitted peak lies beside it) and its
        # neighbour equals it: no crossing to interpolate (a very dark photo's flat, quantised
        # profiles raised ZeroDivisionError here, session 32)
        return 0.0, 0.0, 0.0, False
    xl = (i + (half - prof[i]) / (prof[i + 1] - prof[i]) - ns) * step
    xr = (j - 1 + (prof[j - 1] - half) / (prof[j - 1] - prof[j]) - ns) * step
    xm = 0.5 * (xl + xr)
    # noise makes the first crossing early: count the samples still at or above half
    # within the gap beyond it (on a straight flank with symmetric noise, those above half
    # outside the true crossing balance those below it inside, so the count is unbiased)
    _fill_missing(img, prof, have, max(0, i - gap), i, py, px, ny, nx, n_side, sp, ns, step)
    _fill_missing(img, prof, have, j + 1, min(nt, j + gap + 1), py, px, ny, nx, n_side, sp, ns, step)
    na = 0
    for t in range(max(0, i - gap), i):
        if prof[t] >= half:
            na += 1
    xl -= na * step
    na = 0
    for t in range(j + 1, min(nt, j + gap + 1)):
        if prof[t] >= half:
            na += 1
    xr += na * step
    return xl, xr, xm, True


@nb.njit(cache=True, nogil=True)
def _parabola(prof, a, b, step):  # pragma: no cover - compiled
    """Least-squares parabola ``c0 + c1 x + c2 x^2`` through prof[a..b], x in px from the window's
    centre ``(a + b) / 2``; the last value is False when the fit is singular."""
    c = 0.5 * (a + b)
    s0 = s1 = s2 = s3 = s4 = 0.0
    y0 = y1 = y2 = 0.0
    for t in range(a, b + 1):
        x = (t - c) * step
        x2 = x * x
        y = prof[t]
        s0 += 1.0
        s1 += x
        s2 += x2
        s3 += x2 * x
        s4 += x2 * x2
        y0 += y
        y1 += x * y
        y2 += x2 * y
    # normal equations [[s0 s1 s2] [s1 s2 s3] [s2 s3 s4]] (c0 c1 c2) = (y0 y1 y2), Cramer's rule
    det = s0 * (s2 * s4 - s3 * s3) - s1 * (s1 * s4 - s2 * s3) + s2 * (s1 * s3 - s2 * s2)
    if not (abs(det) > 1e-12):
        return 0.0, 0.0, 0.0, False
    c0 = (y0 * (s2 * s4 - s3 * s3) - s1 * (y1 * s4 - s3 * y2) + s2 * (y1 * s3 - s2 * y2)) / det
    c1 = (s0 * (y1 * s4 - s3 * y2) - y0 * (s1 * s4 - s2 * s3) + s2 * (s1 * y2 - s2 * y1)) / det
    c2 = (s0 * (s2 * y2 - s3 * y1) - s1 * (s1 * y2 - s2 * y1) + y0 * (s1 * s3 - s2 * s2)) / det
    return c0, c1, c2, True


@nb.njit(cache=True, nogil=True)
def _parabola_top(prof, a, b, step, c0, c1, c2, fit):  # pragma: no cover - compiled
    """Highest value on [a, b] (sample indices) of the parabola :func:`_parabola` fitted there
    (the highest sample when the fit is singular)."""
    if not fit:
        best = prof[a]
        for t in range(a, b + 1):
            best = max(best, prof[t])
        return best
    c = 0.5 * (a + b)
    xa = (a - c) * step
    xb = (b - c) * step
    top = max(c0 + c1 * xa + c2 * xa * xa, c0 + c1 * xb + c2 * xb * xb)
    if c2 < 0.0:
        xv = -c1 / (2.0 * c2)
        if xa <= xv <= xb:
            top = c0 - c1 * c1 / (4.0 * c2)
    return top


@nb.njit(cache=True, nogil=True)
def blur_shape(img, pts, unit, width, centre, step, n_side, side_frac, out_k):  # pragma: no cover - compiled
    """How much of a Gaussian's blur widening each profile's half-maximum width shows (1 for a
    Gaussian profile, 0 for a bar's straight edges, below 0 for a sharp-shouldered cylinder).

    A small Gaussian blur of variance ``v`` changes a profile by ``v / 2`` times its second
    derivative (the heat equation), so it moves the half-maximum crossing at ``x`` by
    ``-v / 2 (f''(x) - f''(0) / 2) / f'(x)`` (the peak ``f(0)`` drops too). The sum over both
    crossings, over the same first-order widening of a Gaussian of the same width
    (``v 8 ln 2 / (2 width)``), is ``out_k[k]``. ``f'`` and ``f''`` are read from least-squares
    parabolas through the profile (sampled as :func:`half_max_widths` does, its parallel
    profiles spread by the width) within ``max(1, 0.2 width)`` px of each crossing and within a
    quarter of the width of their centre. NaN where a width is not finite or a flank does not
    fall outwards.
    """
    k_all = pts.shape[0]
    prof = np.empty(0)
    have = np.zeros(0, np.bool_)
    for k in range(k_all):
        out_k[k] = np.nan
        w = width[k]
        if not (w > 0.0) or not math.isfinite(w):
            continue
        c = centre[k]
        xl = c - 0.5 * w
        xr = c + 0.5 * w
        r = max(1.0, 0.2 * w)
        h = abs(c) + 0.5 * w + r + 2.0 * step
        ns = int(h / step) + 1
        nt = 2 * ns + 1
        if prof.shape[0] < nt:
            prof = np.empty(nt)
            have = np.zeros(nt, np.bool_)
        sp = max(1.0, side_frac * w / max(n_side, 1))
        py = pts[k, 0]
        px = pts[k, 1]
        ny = unit[k, 0]
        nx = unit[k, 1]
        f1 = np.zeros(3)
        f2 = np.zeros(3)
        good = True
        for m in range(3):
            if m == 0:
                x0, rr = c, max(0.25 * w, 2.0 * step)
            elif m == 1:
                x0, rr = xl, r
            else:
                x0, rr = xr, r
            a = int(math.floor((x0 - rr) / step)) + ns
            b = int(math.ceil((x0 + rr) / step)) + ns
            a = max(a, 0)
            b = min(b, nt - 1)
            if b - a < 2:
                good = False
                break
            _fill(img, prof, have, a, b + 1, py, px, ny, nx, n_side, sp, ns, step)
            c0, c1, c2, fit = _parabola(prof, a, b, step)
            if not fit:
                good = False
                break
            xc = (0.5 * (a + b) - ns) * step
            f1[m] = c1 + 2.0 * c2 * (x0 - xc)
            f2[m] = 2.0 * c2
        if not good or not (f1[1] > 0.0) or not (f1[2] < 0.0):
            continue
        shift_r = 0.5 * (f2[2] - 0.5 * f2[0]) / f1[2]
        shift_l = 0.5 * (f2[1] - 0.5 * f2[0]) / f1[1]
        gauss = 8.0 * math.log(2.0) / (2.0 * w)
        out_k[k] = -(shift_r - shift_l) / gauss
    return out_k


@nb.njit(cache=True, nogil=True)
def centreline_reach(mask, pts, unit, idx, lat_tol, gap_tol, limit, out):  # pragma: no cover - compiled
    """How far the detected centreline runs on along each query point's tangent, the nearer
    way (px): from point ``idx[q]``, 1 px steps along its tangent (``unit`` turned by 90
    degrees) each way, a step counting as on the centreline where ``mask`` has a pixel within
    ``lat_tol[q]`` of it across; the walk stops after a run of ``gap_tol[q]`` px off it or at
    ``limit``; ``out[q]`` is the shorter walk's last step on the centreline."""
    m, n = mask.shape
    for q in range(idx.shape[0]):
        k = idx[q]
        ty = -unit[k, 1]
        tx = unit[k, 0]
        ny = unit[k, 0]
        nx = unit[k, 1]
        lat = int(lat_tol[q])
        best = limit
        for sgn in (-1.0, 1.0):
            last = 0.0
            s = 1.0
            while s <= limit:
                cy = pts[k, 0] + sgn * s * ty
                cx = pts[k, 1] + sgn * s * tx
                hit = False
                for o in range(-lat, lat + 1):
                    y = int(round(cy + o * ny))
                    x = int(round(cx + o * nx))
                    if 0 <= y < m and 0 <= x < n and mask[y, x]:
                        hit = True
                        break
                if hit:
                    last = s
                elif s - last > gap_tol[q]:
                    break
                s += 1.0
            if last < best:
                best = last
        out[q] = best
    return out

"""CIEDE2000 colour difference between skin of a given optical density and the same skin with
an optical density added, pixel by pixel, in one compiled pass.

Sharma G., Wu W., Dalal E.N. (2005), The CIEDE2000 color-difference formula: implementation
notes, supplementary test data, and mathematical observations, Color Research & Application
30(1), doi:10.1002/col.20070. The steps and constants are those of
``skimage.color.rgb2lab`` (sRGB, D65, 2°) and ``skimage.color.deltaE_ciede2000`` that
``compare.delta_e_of_od`` used (its NumPy reference is kept in the tests), without their
(K, 1, 3) temporaries: a 12 MP comparison calls it on a few hundred thousand pixels.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from veinscope.colour import RGB_TO_XYZ as _M  # linear sRGB -> XYZ (as skimage)
from veinscope.colour import WHITE_D65 as _WHITE  # D65 2°


@nb.njit(cache=True, nogil=True, inline="always")
def _decoded(od):  # pragma: no cover - compiled
    """exp(-od), clipped to 0-1, encoded to sRGB and decoded again as ``rgb2lab`` does (the
    round trip is kept: it is what the reference computes)."""
    x = math.exp(-od)
    if x < 0.0:
        x = 0.0
    elif x > 1.0:
        x = 1.0
    if x <= 0.0031308:
        s = 12.92 * x
    else:
        s = 1.055 * x ** (1 / 2.4) - 0.055
    if s > 0.04045:
        return ((s + 0.055) / 1.055) ** 2.4
    return s / 12.92


@nb.njit(cache=True, nogil=True, inline="always")
def _f(v):  # pragma: no cover - compiled
    if v > 0.008856:
        return np.cbrt(v)
    return 7.787 * v + 16.0 / 116.0


@nb.njit(cache=True, nogil=True)
def _lab_of_od(o0, o1, o2, m, white):  # pragma: no cover - compiled
    """CIE Lab (D65, 2°) of linear reflectance exp(-od) per channel."""
    r, g, b = _decoded(o0), _decoded(o1), _decoded(o2)
    fx = _f((r * m[0, 0] + g * m[0, 1] + b * m[0, 2]) / white[0])
    fy = _f((r * m[1, 0] + g * m[1, 1] + b * m[1, 2]) / white[1])
    fz = _f((r * m[2, 0] + g * m[2, 1] + b * m[2, 2]) / white[2])
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


@nb.njit(cache=True, nogil=True)
def _ciede2000(l1, a1, b1, l2, a2, b2):  # pragma: no cover - compiled
    pi = math.pi
    cbar = 0.5 * (math.hypot(a1, b1) + math.hypot(a2, b2))
    c7 = cbar**7
    g = 0.5 * (1 - math.sqrt(c7 / (c7 + 25.0**7)))
    scale = 1 + g
    x1, x2 = a1 * scale, a2 * scale
    c1, c2 = math.hypot(x1, b1), math.hypot(x2, b2)
    h1, h2 = math.atan2(b1, x1), math.atan2(b2, x2)
    if h1 < 0.0:
        h1 += 2 * pi
    if h2 < 0.0:
        h2 += 2 * pi
    lbar = 0.5 * (l1 + l2)
    tmp = (lbar - 50) ** 2
    sl = 1 + 0.015 * tmp / math.sqrt(20 + tmp)
    l_term = (l2 - l1) / sl
    cbar = 0.5 * (c1 + c2)
    sc = 1 + 0.045 * cbar
    c_term = (c2 - c1) / sc
    h_diff = h2 - h1
    h_sum = h1 + h2
    cc = c1 * c2
    dh = h_diff
    if h_diff > pi:
        dh -= 2 * pi
    if h_diff < -pi:
        dh += 2 * pi
    if cc == 0.0:
        dh = 0.0
    dh_term = 2 * math.sqrt(cc) * math.sin(dh / 2)
    hbar = h_sum
    if cc != 0.0 and abs(h_diff) > pi:
        if h_sum < 2 * pi:
            hbar += 2 * pi
        else:
            hbar -= 2 * pi
    if cc == 0.0:
        hbar *= 2
    hbar *= 0.5
    t = (
        1
        - 0.17 * math.cos(hbar - math.radians(30))
        + 0.24 * math.cos(2 * hbar)
        + 0.32 * math.cos(3 * hbar + math.radians(6))
        - 0.20 * math.cos(4 * hbar - math.radians(63))
    )
    sh = 1 + 0.015 * cbar * t
    h_term = dh_term / sh
    c7 = cbar**7
    rc = 2 * math.sqrt(c7 / (c7 + 25.0**7))
    dtheta = math.radians(30) * math.exp(-(((math.degrees(hbar) - 275) / 25) ** 2))
    r_term = -math.sin(2 * dtheta) * rc * c_term * h_term
    de2 = l_term**2
    de2 += c_term**2
    de2 += h_term**2
    de2 += r_term
    return math.sqrt(max(de2, 0.0))


@nb.njit(cache=True, nogil=True)
def delta_e_od(bg, d, m, white, out):  # pragma: no cover - compiled
    """``out[k]`` = CIEDE2000 between reflectances exp(-bg[k]) and exp(-(bg[k] + d[k])).

    ``bg``, ``d`` (K, 3) float64 (natural-log optical density per linear sRGB channel);
    ``m`` (3, 3), ``white`` (3,) from this module; ``out`` (K,) float64.
    """
    for k in range(bg.shape[0]):
        la = _lab_of_od(bg[k, 0], bg[k, 1], bg[k, 2], m, white)
        lb = _lab_of_od(bg[k, 0] + d[k, 0], bg[k, 1] + d[k, 1], bg[k, 2] + d[k, 2], m, white)
        out[k] = _ciede2000(la[0], la[1], la[2], lb[0], lb[1], lb[2])


@nb.njit(cache=True, nogil=True)
def delta_e_lab(lab1, lab2, out):  # pragma: no cover - compiled
    """``out[k]`` = CIEDE2000 between the CIELAB colours ``lab1[k]`` and ``lab2[k]``
    ((K, 3) float64 each; ``out`` (K,) float64)."""
    for k in range(lab1.shape[0]):
        out[k] = _ciede2000(lab1[k, 0], lab1[k, 1], lab1[k, 2], lab2[k, 0], lab2[k, 1], lab2[k, 2])


@nb.njit(cache=True, nogil=True)
def clear_squares(mask, ys, xs, r):  # pragma: no cover - compiled
    """Set ``mask`` (M, N) bool False on the (2 r + 1)-pixel square around each point (``ys``,
    ``xs``) (K,) int64, clipped to the image: ``mask &= ~dilate(points, square)``."""
    m, n = mask.shape
    for k in range(ys.shape[0]):
        y0, y1 = max(ys[k] - r, 0), min(ys[k] + r + 1, m)
        x0, x1 = max(xs[k] - r, 0), min(xs[k] + r + 1, n)
        for y in range(y0, y1):
            row = mask[y]
            for x in range(x0, x1):
                row[x] = False


@nb.njit(cache=True, nogil=True)
def moves_free(free, py, px, dy, dx, ok):  # pragma: no cover - compiled
    """``ok[j]`` = every point (``py``, ``px``) (P,) int64 moved by (``dy[j]``, ``dx[j]``) lies on
    ``free`` (M, N) bool (the moves keep the points inside the image)."""
    for j in range(dy.shape[0]):
        good = True
        for i in range(py.shape[0]):
            if not free[py[i] + dy[j], px[i] + dx[j]]:
                good = False
                break
        ok[j] = good


@nb.njit(cache=True, nogil=True)
def moved_pixel_sums(rgb, skin, m, n, ry, rx, line, weight, ay, ax, aty, atx, aline, dy, dx, sums, counts):  # pragma: no cover - compiled
    """Colour sums along a chain's sampling lines for copies of it moved whole by (``dy``, ``dx``) (C,)
    int64 (``rgb`` (M N, 3) uint8, ``skin`` (M N,) bool: the photo and skin mask, flattened), the samples that land on a fixed pixel whatever the move
    given once: pixel (``ry``, ``rx``) (S,) int64 of line ``line`` taken ``weight`` times; the
    others, whose offset is a half-integer (rint rounds them to the even pixel, which the move
    decides), as point (``ay``, ``ax``) (A,) int64 plus offset (``aty``, ``atx``) float64 on line
    ``aline``. Adds to ``sums`` (L, C, 3) float64 and ``counts`` (L, C) int64 as :func:`veinscope.measure._chain_copies_lab` counts a chain whose points were moved."""
    for j in range(dy.shape[0]):
        for s in range(ry.shape[0]):
            y = ry[s] + dy[j]
            x = rx[s] + dx[j]
            if y < 0 or y >= m or x < 0 or x >= n:
                continue
            f = y * n + x
            if not skin[f]:
                continue
            w = weight[s]
            li = line[s]
            sums[li, j, 0] += w * rgb[f, 0]
            sums[li, j, 1] += w * rgb[f, 1]
            sums[li, j, 2] += w * rgb[f, 2]
            counts[li, j] += w
        for s in range(ay.shape[0]):
            yf = np.rint(np.float64(ay[s] + dy[j]) + aty[s])
            xf = np.rint(np.float64(ax[s] + dx[j]) + atx[s])
            if yf < 0 or yf >= m or xf < 0 or xf >= n:
                continue
            f = np.int64(yf) * n + np.int64(xf)
            if not skin[f]:
                continue
            li = aline[s]
            sums[li, j, 0] += rgb[f, 0]
            sums[li, j, 1] += rgb[f, 1]
            sums[li, j, 2] += rgb[f, 2]
            counts[li, j] += 1

"""Centreline kernels: non-maximum suppression across ridges, and disc painting."""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, parallel=True)
def ridge_nms(strength, normal_y, normal_x, low, out):  # pragma: no cover - compiled
    """Keep pixels whose strength is a maximum across the ridge (along the normal).

    A pixel is kept when ``strength >= low`` and it is not smaller than the strength
    bilinearly interpolated one pixel away on either side along (normal_y, normal_x)
    (Steger 1998, doi:10.1109/34.659930; Canny's suppression applied to line strength).
    Border pixels compare against the clamped image. ``out`` is uint8 (M, N), set to 0/1.
    """
    m = strength.shape[0]
    n = strength.shape[1]
    for i in nb.prange(m):
        srow = strength[i]
        nyrow = normal_y[i]
        nxrow = normal_x[i]
        orow = out[i]
        for j in range(n):
            s = srow[j]
            if s < low or s <= 0.0:
                orow[j] = 0
                continue
            keep = 1
            for sign in (-1.0, 1.0):
                y = i + sign * nyrow[j]
                x = j + sign * nxrow[j]
                if y < 0.0:
                    y = 0.0
                elif y > m - 1:
                    y = m - 1.0
                if x < 0.0:
                    x = 0.0
                elif x > n - 1:
                    x = n - 1.0
                y0 = int(math.floor(y))
                x0 = int(math.floor(x))
                y1 = min(y0 + 1, m - 1)
                x1 = min(x0 + 1, n - 1)
                fy = y - y0
                fx = x - x0
                v = (strength[y0, x0] * (1.0 - fx) + strength[y0, x1] * fx) * (1.0 - fy) + (
                    strength[y1, x0] * (1.0 - fx) + strength[y1, x1] * fx
                ) * fy
                if v > s:
                    keep = 0
            orow[j] = keep
    return out


@nb.njit(cache=True, nogil=True)
def paint_discs(points_y, points_x, radius, code, value, labels, values, best):  # pragma: no cover
    """Paint a filled disc per centreline point; each pixel takes the nearest point's code/value.

    ``best`` (float32 (M, N)) holds the squared distance to the nearest painted point and must
    start at +inf. A pixel is inside a disc when its centre is within ``radius`` of the point
    (so a disc of radius r covers about pi r**2 pixels, an unbiased area).
    """
    m = labels.shape[0]
    n = labels.shape[1]
    for k in range(points_y.shape[0]):
        r = radius[k]
        if not (r > 0.0):
            continue
        cy = points_y[k]
        cx = points_x[k]
        r2 = r * r
        i0 = max(0, int(math.ceil(cy - r)))
        i1 = min(m - 1, int(math.floor(cy + r)))
        j0 = max(0, int(math.ceil(cx - r)))
        j1 = min(n - 1, int(math.floor(cx + r)))
        for i in range(i0, i1 + 1):
            dy = i - cy
            for j in range(j0, j1 + 1):
                dx = j - cx
                d2 = dy * dy + dx * dx
                if d2 <= r2 and d2 < best[i, j]:
                    best[i, j] = d2
                    labels[i, j] = code[k]
                    values[i, j] = value[k]
    return labels


@nb.njit(cache=True, nogil=True)
def thin_corners(mask):  # pragma: no cover - compiled
    """Remove redundant corner pixels of 1-pixel chains, in place (uint8 (M, N), 0/1).

    A pixel goes when it has two perpendicular 4-neighbours (an L-corner of a staircase) and is
    a simple point in 8-connectivity (Yokoi connectivity number 1, at least two neighbours), so
    chains stay connected and keep their end points. Raster order, sequential: deterministic.
    Returns the number of pixels removed.
    """
    m = mask.shape[0]
    n = mask.shape[1]
    removed = 0
    for i in range(m):
        for j in range(n):
            if mask[i, j] == 0:
                continue
            # ring: E, NE, N, NW, W, SW, S, SE
            x = np.zeros(8, np.uint8)
            dy = (0, -1, -1, -1, 0, 1, 1, 1)
            dx = (1, 1, 0, -1, -1, -1, 0, 1)
            cnt = 0
            for k in range(8):
                yy = i + dy[k]
                xx = j + dx[k]
                if 0 <= yy < m and 0 <= xx < n and mask[yy, xx] != 0:
                    x[k] = 1
                    cnt += 1
            if cnt < 2:
                continue
            e, nn, w, s = x[0], x[2], x[4], x[6]
            if not ((nn and e) or (e and s) or (s and w) or (w and nn)):
                continue
            c8 = 0
            for k in (0, 2, 4, 6):
                a = 1 - x[k]
                b = 1 - x[(k + 1) % 8]
                c = 1 - x[(k + 2) % 8]
                c8 += a - a * b * c
            if c8 == 1:
                mask[i, j] = 0
                removed += 1
    return removed

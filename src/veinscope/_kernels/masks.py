"""Whole-photo mask passes of :func:`veinscope.compare.compare`, each fused into one loop, and
two reads of a map at points (``compare._point_values``).

At 12 MP every NumPy comparison or logical operation writes a 12 MB temporary; the chains of
them below cost tens of milliseconds each. Each kernel computes the same values as the NumPy or
OpenCV expression its docstring gives (the references in ``tests/test_compare_kernels.py``), to
the bit: comparisons, maxima and integer codes only, no float sums.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def followup_code(labels, diameter_px, scale, max_px, out):  # pragma: no cover - compiled
    """``out = labels + 1 + 8 * fine`` (uint8), ``fine = ((labels == 1) | (labels == 2)) &
    (diameter_px > 0) & (diameter_px * scale <= max_px)``: the follow-up's labels and fine red
    and blue telangiectasia packed for one nearest-neighbour warp.

    ``labels`` (M, N) uint8; ``diameter_px`` (M, N) float32; ``scale``, ``max_px`` float32 (the
    product and the comparison in float32, as NumPy reads a float32 array against a Python
    float); ``out`` (M, N) uint8.
    """
    one = np.uint8(1)
    eight = np.uint8(8)
    zero = np.float32(0.0)
    for i in range(labels.shape[0]):
        lab = labels[i]
        dia = diameter_px[i]
        o = out[i]
        for j in range(labels.shape[1]):
            v = lab[j]
            c = np.uint8(v + one)
            if v == 1 or v == 2:
                d = dia[j]
                if d > zero and d * scale <= max_px:
                    c = np.uint8(c + eight)
            o[j] = c


@nb.njit(cache=True, nogil=True)
def unpack_code(code, valid, fine, labels):  # pragma: no cover - compiled
    """The warped :func:`followup_code` unpacked: ``valid = code > 0``, ``fine = code >= 8``,
    ``labels = (code & 7) - 1`` where valid, else 0 (uint8). ``code`` (M, N) uint8; ``valid``,
    ``fine`` (M, N) bool and ``labels`` (M, N) uint8 are written."""
    seven = np.uint8(7)
    one = np.uint8(1)
    for i in range(code.shape[0]):
        c_row = code[i]
        v_row = valid[i]
        f_row = fine[i]
        l_row = labels[i]
        for j in range(code.shape[1]):
            c = c_row[j]
            v_row[j] = c > 0
            f_row[j] = c >= 8
            l_row[j] = np.uint8((c & seven) - one) if c > 0 else np.uint8(0)


@nb.njit(cache=True, nogil=True)
def clipped_low(rgb, code, out):  # pragma: no cover - compiled
    """``out = (min(G, B) < code) & (R >= 4 code)`` for ``rgb`` (M, N, 3) uint8, ``code`` int;
    ``out`` (M, N) bool is written. Returns the number of True pixels."""
    lim = 4 * code
    n_low = 0
    for i in range(rgb.shape[0]):
        row = rgb[i]
        o = out[i]
        for j in range(rgb.shape[1]):
            g = row[j, 1]
            b = row[j, 2]
            gb = g if g < b else b
            v = np.int64(gb) < code and np.int64(row[j, 0]) >= lim
            o[j] = v
            if v:
                n_low += 1
    return n_low


@nb.njit(cache=True, nogil=True)
def max_at_points(img, ys, xs, ker, out):  # pragma: no cover - compiled
    """``out[k] = cv2.dilate(img, ker)[ys[k], xs[k]]``: the maximum of ``img`` (H, W) float32
    over the structuring element ``ker`` (2 r + 1, 2 r + 1) uint8 centred on each point, pixels
    outside the image left out (OpenCV's dilation border). A maximum is exact: the same value
    as the whole-image dilation read at the points."""
    h, w = img.shape
    r = ker.shape[0] // 2
    rx = ker.shape[1] // 2
    for k in range(ys.shape[0]):
        y = ys[k]
        x = xs[k]
        best = -np.inf
        for dy in range(-r, r + 1):
            yy = y + dy
            if yy < 0 or yy >= h:
                continue
            row = img[yy]
            krow = ker[dy + r]
            for dx in range(-rx, rx + 1):
                xx = x + dx
                if xx < 0 or xx >= w or krow[dx + rx] == 0:
                    continue
                v = row[xx]
                if v > best:
                    best = v
        out[k] = best


@nb.njit(cache=True, nogil=True)
def best_of_3x3(img, ys, xs, by, bx):  # pragma: no cover - compiled
    """The strongest pixel of ``img`` (H, W) within one pixel of each point (rows then columns
    -1, 0, 1, clipped at the image's edges; the first strictly greater value wins, starting
    from the point itself): its row and column written to ``by``, ``bx``."""
    h, w = img.shape
    for k in range(ys.shape[0]):
        y = ys[k]
        x = xs[k]
        best = img[y, x]
        cy = y
        cx = x
        for dy in range(-1, 2):
            yy = min(max(y + dy, 0), h - 1)
            for dx in range(-1, 2):
                xx = min(max(x + dx, 0), w - 1)
                v = img[yy, xx]
                if v > best:
                    best = v
                    cy = yy
                    cx = xx
        by[k] = cy
        bx[k] = cx


def warmup() -> None:
    """Compile (or load from the Numba cache) these kernels on tiny inputs."""
    lab = np.zeros((4, 6), np.uint8)
    lab[1, 1:4] = 1
    code = np.empty_like(lab)
    followup_code(lab, np.ones(lab.shape, np.float32), np.float32(1.0), np.float32(2.0), code)
    unpack_code(code, np.empty(lab.shape, np.bool_), np.empty(lab.shape, np.bool_), np.empty_like(lab))
    clipped_low(np.zeros((4, 6, 3), np.uint8), 32, np.empty(lab.shape, np.bool_))
    img = np.zeros(lab.shape, np.float32)
    pts = np.array([0, 2], np.int64)
    max_at_points(img, pts, pts, np.ones((3, 3), np.uint8), np.empty(2, np.float32))
    best_of_3x3(img, pts, pts, np.empty(2, np.int64), np.empty(2, np.int64))

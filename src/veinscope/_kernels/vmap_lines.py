"""Kernels of the generic vessel map (:mod:`veinscope.vesselmap`).

Plain arrays and scalars in, arrays out; the numpy-level wrapper is
:mod:`veinscope.vesselmap`, nothing else calls these directly.

``fill_outside``
    Extends an image beyond a region (the field of view) ring by ring: every pixel of the
    next ring takes the Gaussian-weighted mean of the already known pixels around it, the
    iterative mean padding of Soares et al. 2006 (doi:10.1109/TMI.2006.879967) with smooth
    weights instead of a 3x3 box, so that filters see no step at the region border.
``steer3``
    ``a * A + b * B + c * C`` in one pass (a second derivative steered to one direction from
    the three Hessian components).
``line_mean_max``
    Running maximum of the mean of an image along digital straight lines of one
    orientation: the oriented line integrals of the vessel map, one call per orientation.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_OPTS = dict(cache=True, nogil=True)


@nb.njit(**_OPTS)
def fill_outside(img, inside, weights, max_rings):  # pragma: no cover - compiled
    """Fill the pixels outside ``inside`` ring by ring with weighted means of known pixels.

    Parameters
    ----------
    img : float32 (M, N)
        Values; only those where ``inside`` is True are read.
    inside : bool (M, N)
        Known pixels; at least one must be True.
    weights : float32 (2R + 1, 2R + 1)
        Non-negative neighbourhood weights, centred.
    max_rings : int
        Number of rings filled that way; the pixels left after them all take the mean of the
        last ring (filters that reach no further than ``max_rings`` pixels do not see them).

    Returns
    -------
    float32 (M, N)
        ``img`` where ``inside``; elsewhere, in order of 8-connected distance to the known
        pixels, each ring of new pixels gets ``sum(w * v) / sum(w)`` over the neighbours known
        before that ring (never its own ring, so the result does not depend on scan order).
    """
    m, n = img.shape
    r = weights.shape[0] // 2
    out = np.zeros((m, n), np.float32)
    known = np.zeros((m, n), np.bool_)
    queued = np.zeros((m, n), np.bool_)
    front = np.empty(m * n, np.int32)
    nxt = np.empty(m * n, np.int32)
    vals = np.empty(m * n, np.float32)
    nf = 0
    for i in range(m):
        for j in range(n):
            if inside[i, j]:
                out[i, j] = img[i, j]
                known[i, j] = True
    # first ring: unknown 8-neighbours of known pixels
    for i in range(m):
        for j in range(n):
            if known[i, j]:
                continue
            hit = False
            for di in range(-1, 2):
                ii = i + di
                if ii < 0 or ii >= m:
                    continue
                for dj in range(-1, 2):
                    jj = j + dj
                    if 0 <= jj < n and known[ii, jj]:
                        hit = True
            if hit:
                front[nf] = i * n + j
                queued[i, j] = True
                nf += 1
    ring = 0
    nprev = 0
    while nf > 0:
        if ring == max_rings:
            tot = 0.0
            cnt = 0
            for k in range(nprev):
                tot += vals[k]
                cnt += 1
            if cnt == 0:
                for i in range(m):
                    for j in range(n):
                        if known[i, j]:
                            tot += out[i, j]
                            cnt += 1
            rest = np.float32(tot / cnt)
            for i in range(m):
                for j in range(n):
                    if not known[i, j]:
                        out[i, j] = rest
            break
        ring += 1
        for k in range(nf):
            i = front[k] // n
            j = front[k] % n
            s = 0.0
            sw = 0.0
            for di in range(-r, r + 1):
                ii = i + di
                if ii < 0 or ii >= m:
                    continue
                for dj in range(-r, r + 1):
                    jj = j + dj
                    if 0 <= jj < n and known[ii, jj]:
                        w = weights[di + r, dj + r]
                        s += w * out[ii, jj]
                        sw += w
            vals[k] = s / sw if sw > 0.0 else 0.0
        for k in range(nf):
            i = front[k] // n
            j = front[k] % n
            out[i, j] = vals[k]
            known[i, j] = True
        nprev = nf
        nn = 0
        for k in range(nf):
            i = front[k] // n
            j = front[k] % n
            for di in range(-1, 2):
                ii = i + di
                if ii < 0 or ii >= m:
                    continue
                for dj in range(-1, 2):
                    jj = j + dj
                    if 0 <= jj < n and not queued[ii, jj] and not known[ii, jj]:
                        queued[ii, jj] = True
                        nxt[nn] = ii * n + jj
                        nn += 1
        for k in range(nn):
            front[k] = nxt[k]
        nf = nn
    return out


@nb.njit(**_OPTS)
def _line_rows(src, shifts, weights, best, y0, y1, acc):  # pragma: no cover - compiled
    n = best.shape[1]
    nk = shifts.shape[0]
    pad = (src.shape[1] - n) // 2
    for y in range(y0, y1):
        for x in range(n):
            acc[x] = 0.0
        for k in range(nk):
            row = src[y + k]
            s = pad + shifts[k]
            w = weights[k]
            for x in range(n):
                acc[x] += w * row[s + x]
        brow = best[y]
        for x in range(n):
            if acc[x] > brow[x]:
                brow[x] = acc[x]


@nb.njit(**_OPTS)
def line_mean_max(src, shifts, weights, best):  # pragma: no cover - compiled
    """``best = max(best, weighted mean along a digital line)`` for one near-vertical orientation.

    Parameters
    ----------
    src : float32 (M + K - 1, N + 2P)
        The image padded by ``(K - 1) / 2`` rows top and bottom and ``P`` columns left and
        right (``P >= max |shifts|``).
    shifts : int64 (K,)
        Column offset of the line at each of its ``K`` rows (row ``k`` of the line is row
        ``y + k`` of ``src``); a near-vertical digital line has ``|shifts[k + 1] - shifts[k]|
        <= 1``.
    weights : float32 (K,)
        Weight of each row of the line (they normally sum to 1).
    best : float32 (M, N)
        Running maximum, updated in place: ``best[y, x] = max(best[y, x],
        sum_k weights[k] src[y + k, P + x + shifts[k]])``.
    """
    acc = np.empty(best.shape[1], np.float32)
    _line_rows(src, shifts, weights, best, 0, best.shape[0], acc)
    return best


@nb.njit(cache=True, nogil=True, parallel=True)
def line_mean_max_parallel(src, shifts, weights, best):  # pragma: no cover - compiled
    """:func:`line_mean_max` on bands of rows in parallel (bit-identical results)."""
    m = best.shape[0]
    band = 64
    nb_ = (m + band - 1) // band
    for b in nb.prange(nb_):
        acc = np.empty(best.shape[1], np.float32)
        y0 = b * band
        y1 = min(m, y0 + band)
        _line_rows(src, shifts, weights, best, y0, y1, acc)
    return best


@nb.njit(cache=True, nogil=True, parallel=True)
def steer3(a, b, c, A, B, C, out):  # pragma: no cover - compiled
    """``out = a * A + b * B + c * C`` (float32 arrays of one shape, 2-D), rows in parallel."""
    m = out.shape[0]
    n = out.shape[1]
    fa = np.float32(a)
    fb = np.float32(b)
    fc = np.float32(c)
    for i in nb.prange(m):
        ra = A[i]
        rb = B[i]
        rc = C[i]
        ro = out[i]
        for j in range(n):
            ro[j] = fa * ra[j] + fb * rb[j] + fc * rc[j]
    return out


@nb.njit(cache=True, nogil=True, parallel=True)
def quad_logit(z, lin, quad, intercept, out):  # pragma: no cover - compiled
    """Second-order logistic-regression logit of a feature stack, pixel by pixel.

    Parameters
    ----------
    z : float32 (K, M, N)
        Feature stack.
    lin : float32 (K,)
        Linear weights.
    quad : float32 (K, K)
        Upper-triangular weights of the products ``z[a] * z[b]`` (``a <= b``); the lower
        triangle is ignored.
    intercept : float
    out : float32 (M, N)
        ``intercept + sum_a lin[a] z[a] + sum_{a <= b} quad[a, b] z[a] z[b]``.
    """
    k, m, n = z.shape
    for i in nb.prange(m):
        v = np.empty(k, np.float32)
        for j in range(n):
            acc = np.float32(intercept)
            for a in range(k):
                v[a] = z[a, i, j]
                acc += lin[a] * v[a]
            for a in range(k):
                va = v[a]
                s = np.float32(0.0)
                for b in range(a, k):
                    s += quad[a, b] * v[b]
                acc += va * s
            out[i, j] = acc

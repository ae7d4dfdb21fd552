"""Gaussian-derivative Hessian kernels for the multi-scale Frangi vesselness filter.

Plain arrays and scalars in, arrays out. The numpy-level wrapper is
:mod:`veinscope.vesselness`; nothing else calls these directly.

Layout of the work
------------------
Every kernel walks its image in bands of rows. A band function (``_*_rows``) is serial and
allocates its own row buffers; a serial driver (``*_serial``) calls it once on all rows and a
parallel driver (``*_parallel``) calls it on bands of :data:`BAND_ROWS` rows in a ``prange``.
Both drivers run the same band function on rows that do not depend on each other, so parallel
results are bit-identical to serial ones (no fast-math, no reassociation).

Per output row the separable second-order Gaussian derivatives are

* a vertical pass over the ``2R + 1`` input rows around it into three row buffers (order 0,
  1 and 2 along y; the kernels are symmetric or antisymmetric, so each pair of rows
  ``i - t``, ``i + t`` is added and subtracted once and shared by the three),
* a horizontal pass over those buffers: ``Hrr = G''(y) G(x)``, ``Hrc = G'(y) G'(x)``,
  ``Hcc = G(y) G''(x)``,
* the eigen-analysis and the Frangi formula per pixel, folded into running maxima,
* the bilinear upsampling of per-scale maps computed on coarser pyramid levels, folded into
  the same running maxima.

Borders are handled by reflection (scipy ``mode='reflect'``, OpenCV ``BORDER_REFLECT``:
``d c b a | a b c d | d c b a``), applied once to the input in each direction.

Half kernels ``h0, h1, h2`` (float32 rows of length ``>= R + 1``, zero past ``R``) hold the
taps ``t = 0..R`` of the centred 1-D convolution kernels of order 0, 1 and 2:
``out[i] = h0[0] x[i] + sum_t h0[t] (x[i - t] + x[i + t])`` for the symmetric ones and
``out[i] = sum_t h1[t] (x[i - t] - x[i + t])`` for the antisymmetric first derivative.

Frangi quantities per pixel, from ``(p, q, r) = k (Hrr, Hrc, Hcc)`` where ``k`` is the
scale normalisation times the polarity sign (+1 for dark ridges)::

    mean = (p + r) / 2,  d = sqrt(((p - r) / 2)**2 + q**2)
    lambda2 = mean + d,  lambda1 = mean - d      (|lambda2| >= |lambda1| when mean > 0)
    V = exp(-cb (lambda1 / lambda2)**2) (1 - exp(-cg (lambda1**2 + lambda2**2)))  if mean > 0
    V = 0                                                                      otherwise
    strength = lambda2 if mean > 0 else 0
    across-ridge direction: doubled-angle vector (cos 2t, sin 2t) ~ (r - p, 2 q)

with ``cb = 1 / (2 beta**2)`` and ``cg = 1 / (2 gamma**2)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_OPTS = dict(cache=True, nogil=True, fastmath={"contract"})

#: Rows per band in the parallel drivers (results do not depend on it).
BAND_ROWS = 32
#: Columns per tile: the working set of one tile stays in the L1 cache.
TILE = 1024


# --------------------------------------------------------------------------------------
# scalar helpers
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _reflect(i, n):
    """Index ``i`` folded into ``[0, n)`` by half-sample symmetric reflection."""
    period = 2 * n
    i = i % period
    if i >= n:
        i = period - 1 - i
    return i


# Chebyshev-economised polynomials on [0, 0.5]: exp(-u) (abs. error 2e-8) and
# (1 - exp(-u)) / u (rel. error 7e-8), in Horner form so that contraction gives FMAs.
_E0, _E1, _E2, _E3, _E4, _E5 = (
    0.9999999813264268, -0.9999984204056811, 0.4999681140281707,
    -0.16640804276569543, 0.040674371997501034, -0.006505625326908217,
)  # fmt: skip
_Q0, _Q1, _Q2, _Q3, _Q4 = (
    0.9999998578179353, -0.4999914052343209, 0.1665449282457201, -0.0410045244159972, 0.006783926935700142,
)  # fmt: skip


@njit(**_OPTS)
def _exp_neg(t):
    """``exp(-t)`` for ``t >= 0`` in float32, branch-free so that loops vectorise.

    ``t`` is clamped to 32 (``exp(-32) = 1.3e-14``); ``exp(-t/64)`` comes from a degree-5
    polynomial and is squared six times. Absolute error below 1e-6 (relative below 1e-5 for
    ``t <= 8``).
    """
    u = min(t, np.float32(32.0)) * np.float32(1.0 / 64.0)
    p = np.float32(_E5)
    p = p * u + np.float32(_E4)
    p = p * u + np.float32(_E3)
    p = p * u + np.float32(_E2)
    p = p * u + np.float32(_E1)
    p = p * u + np.float32(_E0)
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p


@njit(**_OPTS)
def _one_minus_exp_neg(t):
    """``1 - exp(-t)`` for ``t >= 0`` in float32, accurate for small ``t`` too.

    ``q = 1 - exp(-t/64)`` from a polynomial, then ``q <- q (2 - q)`` six times (that is
    ``1 - (1 - q)**2``, free of cancellation). Relative error below 1e-5.
    """
    u = min(t, np.float32(32.0)) * np.float32(1.0 / 64.0)
    q = np.float32(_Q4)
    q = q * u + np.float32(_Q3)
    q = q * u + np.float32(_Q2)
    q = q * u + np.float32(_Q1)
    q = q * u + np.float32(_Q0)
    q = q * u
    two = np.float32(2.0)
    q = q * (two - q)
    q = q * (two - q)
    q = q * (two - q)
    q = q * (two - q)
    q = q * (two - q)
    q = q * (two - q)
    return q


@njit(**_OPTS)
def _bands(m):
    """Start rows of the bands used by the parallel drivers (last entry is ``m``)."""
    nb = max(1, (m + BAND_ROWS - 1) // BAND_ROWS)
    starts = np.empty(nb + 1, np.int64)
    for b in range(nb):
        starts[b] = b * BAND_ROWS
    starts[nb] = m
    return starts


# --------------------------------------------------------------------------------------
# Hessian of one row tile
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _tile_buffers(rmax):
    """Padded vertical-pass buffers (3, TILE + 2 pad) and Hessian tile buffers (3, TILE)."""
    pad = rmax + 1
    vb = np.zeros((3, TILE + 2 * pad), np.float32)
    hb = np.zeros((3, TILE), np.float32)
    return vb, hb, pad


@njit(**_OPTS)
def _vertical_pass(img, i, a, b, h0, h1, h2, r, w0, w1, w2):
    """Columns ``a:b`` of row ``i`` filtered along y into ``w0, w1, w2`` (orders 0, 1, 2).

    Taps are taken two at a time, then a last single one when ``r`` is odd.
    """
    m = img.shape[0]
    c0 = h0[0]
    c2 = h2[0]
    row = img[i, a:b]
    nw = b - a
    for j in range(nw):
        x = np.float32(row[j])
        w0[j] = c0 * x
        w1[j] = np.float32(0.0)
        w2[j] = c2 * x
    for t in range(1, r, 2):
        ra = img[_reflect(i - t, m), a:b]
        rb = img[_reflect(i + t, m), a:b]
        rc = img[_reflect(i - t - 1, m), a:b]
        rd = img[_reflect(i + t + 1, m), a:b]
        f0 = h0[t]
        f1 = h1[t]
        f2 = h2[t]
        g0 = h0[t + 1]
        g1 = h1[t + 1]
        g2 = h2[t + 1]
        for j in range(nw):
            x = np.float32(ra[j])
            y = np.float32(rb[j])
            xx = np.float32(rc[j])
            yy = np.float32(rd[j])
            s = x + y
            d = x - y
            ss = xx + yy
            dd = xx - yy
            w0[j] = (w0[j] + f0 * s) + g0 * ss
            w1[j] = (w1[j] + f1 * d) + g1 * dd
            w2[j] = (w2[j] + f2 * s) + g2 * ss
    if r % 2 == 1:
        ra = img[_reflect(i - r, m), a:b]
        rb = img[_reflect(i + r, m), a:b]
        f0 = h0[r]
        f1 = h1[r]
        f2 = h2[r]
        for j in range(nw):
            x = np.float32(ra[j])
            y = np.float32(rb[j])
            s = x + y
            w0[j] = w0[j] + f0 * s
            w1[j] = w1[j] + f1 * (x - y)
            w2[j] = w2[j] + f2 * s


@njit(**_OPTS)
def _horizontal_pass(v0, v1, v2, h0, h1, h2, r, pad, w, hrr, hrc, hcc):
    """Filter the padded tile buffers along x: ``Hrr = G v2``, ``Hrc = G' v1``, ``Hcc = G'' v0``."""
    c0 = h0[0]
    c2 = h2[0]
    m0 = v0[pad : pad + w]
    m2 = v2[pad : pad + w]
    for j in range(w):
        hrr[j] = c0 * m2[j]
        hcc[j] = c2 * m0[j]
        hrc[j] = np.float32(0.0)
    for t in range(1, r, 2):
        f0 = h0[t]
        f1 = h1[t]
        f2 = h2[t]
        g0 = h0[t + 1]
        g1 = h1[t + 1]
        g2 = h2[t + 1]
        a0 = v0[pad - t : pad - t + w]
        b0 = v0[pad + t : pad + t + w]
        c0_ = v0[pad - t - 1 : pad - t - 1 + w]
        e0 = v0[pad + t + 1 : pad + t + 1 + w]
        a1 = v1[pad - t : pad - t + w]
        b1 = v1[pad + t : pad + t + w]
        c1 = v1[pad - t - 1 : pad - t - 1 + w]
        e1 = v1[pad + t + 1 : pad + t + 1 + w]
        a2 = v2[pad - t : pad - t + w]
        b2 = v2[pad + t : pad + t + w]
        c2_ = v2[pad - t - 1 : pad - t - 1 + w]
        e2 = v2[pad + t + 1 : pad + t + 1 + w]
        for j in range(w):
            hrr[j] = (hrr[j] + f0 * (a2[j] + b2[j])) + g0 * (c2_[j] + e2[j])
            hcc[j] = (hcc[j] + f2 * (a0[j] + b0[j])) + g2 * (c0_[j] + e0[j])
            hrc[j] = (hrc[j] + f1 * (a1[j] - b1[j])) + g1 * (c1[j] - e1[j])
    if r % 2 == 1:
        f0 = h0[r]
        f1 = h1[r]
        f2 = h2[r]
        a0 = v0[pad - r : pad - r + w]
        b0 = v0[pad + r : pad + r + w]
        a1 = v1[pad - r : pad - r + w]
        b1 = v1[pad + r : pad + r + w]
        a2 = v2[pad - r : pad - r + w]
        b2 = v2[pad + r : pad + r + w]
        for j in range(w):
            hrr[j] = hrr[j] + f0 * (a2[j] + b2[j])
            hcc[j] = hcc[j] + f2 * (a0[j] + b0[j])
            hrc[j] = hrc[j] + f1 * (a1[j] - b1[j])


@njit(**_OPTS)
def _tile_hessian(img, i, j0, j1, h0, h1, h2, r, vb, hb, pad):
    """Raw Hessian of row ``i``, columns ``j0:j1`` (at most TILE) into ``hb[:, :j1 - j0]``.

    The vertical pass covers columns ``j0 - r .. j1 + r`` clipped to the image; the columns
    outside the image are filled by reflection from inside the buffer.
    """
    n = img.shape[1]
    a = max(0, j0 - r)
    b = min(n, j1 + r)
    lo = pad + a - j0
    hi = pad + b - j0
    _vertical_pass(img, i, a, b, h0, h1, h2, r, vb[0, lo:hi], vb[1, lo:hi], vb[2, lo:hi])
    for c in range(j0 - r - 1, a):
        src = pad + _reflect(c, n) - j0
        vb[0, pad + c - j0] = vb[0, src]
        vb[1, pad + c - j0] = vb[1, src]
        vb[2, pad + c - j0] = vb[2, src]
    for c in range(b, j1 + r + 1):
        src = pad + _reflect(c, n) - j0
        vb[0, pad + c - j0] = vb[0, src]
        vb[1, pad + c - j0] = vb[1, src]
        vb[2, pad + c - j0] = vb[2, src]
    w = j1 - j0
    _horizontal_pass(vb[0], vb[1], vb[2], h0, h1, h2, r, pad, w, hb[0, :w], hb[1, :w], hb[2, :w])


# --------------------------------------------------------------------------------------
# per-pixel Frangi on one tile, folded into running maxima
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _frangi_tile_v(hrr, hrc, hcc, k, cb, cg, fl2, ov):
    half = np.float32(0.5)
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    for j in range(ov.shape[0]):
        p = k * hrr[j]
        q = k * hrc[j]
        r = k * hcc[j]
        mean = half * (p + r)
        hd = half * (p - r)
        d = np.sqrt(hd * hd + q * q)
        l2 = mean + d
        l1 = mean - d
        ratio = l1 / max(l2, tiny)
        s2 = l1 * l1 + l2 * l2
        v = _exp_neg(cb * (ratio * ratio)) * _one_minus_exp_neg(cg * s2)
        v = v if (mean > zero) & (s2 > fl2) else zero
        ov[j] = np.maximum(ov[j], v)


@njit(**_OPTS)
def _frangi_tile_ridge(hrr, hrc, hcc, k, cb, cg, fl2, sigma, sscale, ov, osc, ost, ody, odx):
    half = np.float32(0.5)
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    for j in range(ov.shape[0]):
        p = k * hrr[j]
        q = k * hrc[j]
        r = k * hcc[j]
        mean = half * (p + r)
        hd = half * (p - r)
        d = np.sqrt(hd * hd + q * q)
        l2 = mean + d
        l1 = mean - d
        ratio = l1 / max(l2, tiny)
        s2 = l1 * l1 + l2 * l2
        v = _exp_neg(cb * (ratio * ratio)) * _one_minus_exp_neg(cg * s2)
        pos = (mean > zero) & (s2 > fl2)
        v = v if pos else zero
        st = l2 * sscale if pos else zero
        ost[j] = np.maximum(ost[j], st)
        # "+ zero" stops LLVM from turning these selects into slow masked stores
        o = ov[j]
        take = v > o
        ov[j] = np.maximum(o, v)
        osc[j] = (sigma if take else osc[j]) + zero
        ody[j] = ((q + q) if take else ody[j]) + zero
        odx[j] = ((r - p) if take else odx[j]) + zero


@njit(**_OPTS)
def _merge_tile_ridge(cv, cst, cdy, cdx, sigma, ov, osc, ost, ody, odx):
    zero = np.float32(0.0)
    for j in range(ov.shape[0]):
        v = cv[j]
        ost[j] = np.maximum(ost[j], cst[j])
        o = ov[j]
        take = v > o
        ov[j] = np.maximum(o, v)
        osc[j] = (sigma if take else osc[j]) + zero
        ody[j] = (cdy[j] if take else ody[j]) + zero
        odx[j] = (cdx[j] if take else odx[j]) + zero


@njit(**_OPTS)
def _finalise_tile(ov, osc, ody, odx):
    """Turn the doubled-angle vector at the best scale into a unit normal (0 where V == 0)."""
    half = np.float32(0.5)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for j in range(ov.shape[0]):
        dy = ody[j]
        dx = odx[j]
        nrm = np.sqrt(dx * dx + dy * dy)
        c = dx / nrm if nrm > zero else one
        c = min(one, max(-one, c))
        nx = np.sqrt(half * (one + c))
        ny = np.sqrt(half * (one - c))
        ny = -ny if dy < zero else ny
        live = ov[j] > zero
        odx[j] = nx if live else zero
        ody[j] = ny if live else zero
        osc[j] = osc[j] if live else zero


# --------------------------------------------------------------------------------------
# bilinear upsampling of coarse per-scale maps
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _upsample2(src, s_src, n_src, dst, s_dst):
    """Linear interpolation by 2 of a row segment, holding the value past the row's end.

    ``src[k]`` is sample ``s_src + k`` of a row of ``n_src`` samples; ``dst[k]`` becomes the
    value at fine position ``p = s_dst + k`` (``s_dst`` even), i.e. at coarse ``p / 2``.
    """
    nd = dst.shape[0]
    half = np.float32(0.5)
    off = (s_dst >> 1) - s_src
    # groups g with both fine columns inside dst and a right neighbour inside the row
    ng = min(nd // 2, n_src - 1 - (s_dst >> 1))
    ng = max(ng, 0)
    for g in range(ng):
        a = src[off + g]
        dst[2 * g] = a
        dst[2 * g + 1] = half * (a + src[off + g + 1])
    for k in range(2 * ng, nd):
        q = (s_dst + k) >> 1
        a = src[min(q, n_src - 1) - s_src]
        if (k & 1) == 1 and q + 1 <= n_src - 1:
            a = half * (a + src[q + 1 - s_src])
        dst[k] = a


@njit(**_OPTS)
def _upsample_segment(src, shift, n, j0, out, tmp):
    """Bilinear-interpolation row: coarse row ``src`` (decimated ``2**shift`` times from a row
    of ``n`` samples) evaluated at fine columns ``j0 .. j0 + len(out)``, held past the end.

    Doubling ``shift`` times is exact for linear interpolation. ``j0`` is a multiple of
    ``2**shift``; ``tmp`` is (2, >= len(out) // 2 + 2) scratch.
    """
    w = out.shape[0]
    # segment start and length at each level t = 0 (fine) .. shift (coarse)
    starts = np.empty(shift + 1, np.int64)
    lens = np.empty(shift + 1, np.int64)
    sizes = np.empty(shift + 1, np.int64)
    sizes[0] = n
    starts[0] = j0
    lens[0] = w
    for t in range(1, shift + 1):
        sizes[t] = (sizes[t - 1] + 1) // 2
        starts[t] = j0 >> t
        lens[t] = min(lens[t - 1] // 2 + 2, sizes[t] - starts[t])
    cur = src[starts[shift] : starts[shift] + lens[shift]]
    for t in range(shift, 0, -1):
        if t == 1:
            dst = out
        else:
            dst = tmp[t % 2, : lens[t - 1]]
        _upsample2(cur, starts[t], sizes[t], dst, starts[t - 1])
        cur = dst


@njit(**_OPTS)
def _coarse_rows_for(i, shift, mc):
    """Coarse rows bracketing full-resolution row ``i`` and the weight of the upper one."""
    i0 = i >> shift
    wy = np.float32(i - (i0 << shift)) / np.float32(1 << shift)
    if i0 >= mc - 1:
        return mc - 1, mc - 1, np.float32(0.0)
    return i0, i0 + 1, wy


@njit(**_OPTS)
def _prepare_rows(cache, ids, i0, i1, src, off, nc, shift, n, j0, w, tmp):
    """Make two slots of ``cache`` (2, N) hold coarse rows ``i0``, ``i1`` upsampled along x
    for columns ``j0 .. j0 + w``. ``ids`` (2,) records which coarse row each slot holds.

    Returns the slots of ``i0`` and ``i1``.
    """
    if ids[0] == i0:
        s0 = 0
    elif ids[1] == i0:
        s0 = 1
    else:
        s0 = 1 if ids[0] == i1 else 0
        _upsample_segment(src[off + i0 * nc : off + (i0 + 1) * nc], shift, n, j0, cache[s0, :w], tmp)
        ids[s0] = i0
    if i1 == i0:
        return s0, s0
    s1 = 1 - s0
    if ids[s1] != i1:
        _upsample_segment(src[off + i1 * nc : off + (i1 + 1) * nc], shift, n, j0, cache[s1, :w], tmp)
        ids[s1] = i1
    return s0, s1


@njit(**_OPTS)
def _lerp_tile(a, b, wy, out):
    wa = np.float32(1.0) - wy
    for j in range(out.shape[0]):
        out[j] = wa * a[j] + wy * b[j]


# --------------------------------------------------------------------------------------
# vesselness: one level, its scales, plus coarse maps upsampled into it
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _frangi_v_rows(img, r0, r1, hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, cflat, coff, cshape, cshift, out_v):
    n = img.shape[1]
    ns = radii.shape[0]
    nco = coff.shape[0]
    vb, hb, pad = _tile_buffers(hk0.shape[1])
    cache = np.zeros((max(nco, 1), 2, n), np.float32)
    ids = np.full((max(nco, 1), 2), -1, np.int64)
    tmp = np.zeros((2, n // 2 + 4), np.float32)
    for i in range(r0, r1):
        orow = out_v[i]
        orow[:] = np.float32(0.0)
        for j0 in range(0, n, TILE):
            j1 = min(n, j0 + TILE)
            w = j1 - j0
            ov = orow[j0:j1]
            for s in range(ns):
                _tile_hessian(img, i, j0, j1, hk0[s], hk1[s], hk2[s], radii[s], vb, hb, pad)
                _frangi_tile_v(hb[0, :w], hb[1, :w], hb[2, :w], ks[s], cb, cgs[s], fl2s[s], ov)
        for c in range(nco):
            i0, i1, wy = _coarse_rows_for(i, cshift[c], cshape[c, 0])
            s0, s1 = _prepare_rows(cache[c], ids[c], i0, i1, cflat, coff[c], cshape[c, 1], cshift[c], n, 0, n, tmp)
            a = cache[c, s0]
            b = cache[c, s1]
            wa = np.float32(1.0) - wy
            for j in range(n):
                orow[j] = np.maximum(orow[j], wa * a[j] + wy * b[j])


@njit(**_OPTS)
def frangi_v_serial(img, hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, cflat, coff, cshape, cshift, out_v):
    """Frangi vesselness, max over the scales of this level and the upsampled coarse maps.

    Parameters
    ----------
    img : (M, N) float32
        Image at this pyramid level.
    hk0, hk1, hk2 : (S, Rmax + 1) float32
        Half kernels of order 0, 1, 2 per scale (zero-padded past each radius).
    radii : (S,) int64
        Kernel radius per scale (``<= Rmax``).
    ks : (S,) float32
        Factor applied to the raw Hessian per scale: sign (+1 dark ridges) times the scale
        normalisation ``(sigma / 2**level)**2``.
    cgs : (S,) float32
        ``1 / (2 gamma**2)`` per scale.
    fl2s : (S,) float32
        Noise floor per scale: pixels with ``S**2 <= fl2`` get V = 0 (and strength 0), so that
        float32 rounding on flat images gives exact zeros.
    cb : float32
        ``1 / (2 beta**2)``.
    cflat : (L,) float32
        Coarse per-scale vesselness maps, flattened one after the other.
    coff : (C,) int64
        Offset of each coarse map in ``cflat``.
    cshape : (C, 2) int64
        Shape of each coarse map.
    cshift : (C,) int64
        log2 of each coarse map's decimation factor relative to ``img``.
    out_v : (M, N) float32
        Output, overwritten.
    """
    _frangi_v_rows(img, 0, img.shape[0], hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, cflat, coff, cshape, cshift, out_v)


@njit(parallel=True, **_OPTS)
def frangi_v_parallel(img, hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, cflat, coff, cshape, cshift, out_v):
    """Parallel :func:`frangi_v_serial` (bit-identical results)."""
    starts = _bands(img.shape[0])
    for b in prange(starts.shape[0] - 1):
        _frangi_v_rows(
            img, starts[b], starts[b + 1], hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, cflat, coff, cshape, cshift, out_v
        )


# --------------------------------------------------------------------------------------
# ridge response: vesselness, scale, strength and direction
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _frangi_ridge_rows(
    img, r0, r1, hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, sigmas, sscale,
    cflat, coff, cshape, cshift, csig, finalise, out_v, out_scale, out_strength, out_dy, out_dx,
):  # fmt: skip
    n = img.shape[1]
    ns = radii.shape[0]
    nco = coff.shape[0]
    vb, hb, pad = _tile_buffers(hk0.shape[1])
    cache = np.zeros((max(nco, 1), 4, 2, n), np.float32)
    ids = np.full((max(nco, 1), 4, 2), -1, np.int64)
    tmp = np.zeros((2, n // 2 + 4), np.float32)
    lerp = np.empty((4, n), np.float32)
    zero = np.float32(0.0)
    for i in range(r0, r1):
        ov = out_v[i]
        osc = out_scale[i]
        ost = out_strength[i]
        ody = out_dy[i]
        odx = out_dx[i]
        ov[:] = zero
        osc[:] = zero
        ost[:] = zero
        ody[:] = zero
        odx[:] = zero
        for j0 in range(0, n, TILE):
            j1 = min(n, j0 + TILE)
            w = j1 - j0
            for s in range(ns):
                _tile_hessian(img, i, j0, j1, hk0[s], hk1[s], hk2[s], radii[s], vb, hb, pad)
                _frangi_tile_ridge(
                    hb[0, :w], hb[1, :w], hb[2, :w], ks[s], cb, cgs[s], fl2s[s], sigmas[s], sscale,
                    ov[j0:j1], osc[j0:j1], ost[j0:j1], ody[j0:j1], odx[j0:j1],
                )  # fmt: skip
        for c in range(nco):
            i0, i1, wy = _coarse_rows_for(i, cshift[c], cshape[c, 0])
            for q in range(4):
                s0, s1 = _prepare_rows(
                    cache[c, q], ids[c, q], i0, i1, cflat[q], coff[c], cshape[c, 1], cshift[c], n, 0, n, tmp
                )
                _lerp_tile(cache[c, q, s0], cache[c, q, s1], wy, lerp[q])
            _merge_tile_ridge(lerp[0], lerp[1], lerp[2], lerp[3], csig[c], ov, osc, ost, ody, odx)
        if finalise:
            _finalise_tile(ov, osc, ody, odx)


@njit(**_OPTS)
def frangi_ridge_serial(
    img, hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, sigmas, sscale,
    cflat, coff, cshape, cshift, csig, finalise, out_v, out_scale, out_strength, out_dy, out_dx,
):  # fmt: skip
    """Like :func:`frangi_v_serial`, also keeping the best scale, strength and direction.

    ``sigmas`` (S,) float32 are the scales (pixels) recorded in ``out_scale``; ``sscale`` multiplies
    ``lambda2`` into the strength (undoing an intensity normalisation folded into ``ks``).
    ``cflat`` is ``(4, L)``: coarse vesselness, strength and doubled-angle ``(dy, dx)`` maps;
    ``csig`` the sigma of each coarse map. Without ``finalise`` the outputs ``out_dy, out_dx``
    hold the doubled-angle vector ``(2 q, r - p)`` at the best scale (for further upsampling);
    with it they hold the unit across-ridge normal, and ``out_scale`` is 0 where V is 0.
    """
    _frangi_ridge_rows(
        img, 0, img.shape[0], hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, sigmas, sscale,
        cflat, coff, cshape, cshift, csig, finalise, out_v, out_scale, out_strength, out_dy, out_dx,
    )  # fmt: skip


@njit(parallel=True, **_OPTS)
def frangi_ridge_parallel(
    img, hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, sigmas, sscale,
    cflat, coff, cshape, cshift, csig, finalise, out_v, out_scale, out_strength, out_dy, out_dx,
):  # fmt: skip
    """Parallel :func:`frangi_ridge_serial` (bit-identical results)."""
    starts = _bands(img.shape[0])
    for b in prange(starts.shape[0] - 1):
        _frangi_ridge_rows(
            img, starts[b], starts[b + 1], hk0, hk1, hk2, radii, ks, cgs, fl2s, cb, sigmas, sscale,
            cflat, coff, cshape, cshift, csig, finalise, out_v, out_scale, out_strength, out_dy, out_dx,
        )  # fmt: skip


# --------------------------------------------------------------------------------------
# Hessian norm maximum (default gamma) and the raw Hessian (tests)
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _norm2_max_rows(img, r0, r1, h0, h1, h2, r, k):
    n = img.shape[1]
    vb, hb, pad = _tile_buffers(h0.shape[0])
    acc = np.zeros(TILE, np.float32)
    two = np.float32(2.0)
    for i in range(r0, r1):
        for j0 in range(0, n, TILE):
            j1 = min(n, j0 + TILE)
            w = j1 - j0
            _tile_hessian(img, i, j0, j1, h0, h1, h2, r, vb, hb, pad)
            a = hb[0]
            b = hb[1]
            c = hb[2]
            for j in range(w):
                a[j] *= k
                b[j] *= k
                c[j] *= k
            for j in range(w):
                x = a[j] * a[j] + two * (b[j] * b[j]) + c[j] * c[j]
                acc[j] = np.maximum(acc[j], x)
    best = np.float32(0.0)
    for j in range(TILE):
        best = max(best, acc[j])
    return best


@njit(**_OPTS)
def hessian_norm2_max_serial(img, h0, h1, h2, r, k):
    """Largest squared Frobenius norm ``Hrr**2 + 2 Hrc**2 + Hcc**2`` of ``k`` times the Hessian."""
    return _norm2_max_rows(img, 0, img.shape[0], h0, h1, h2, r, k)


@njit(parallel=True, **_OPTS)
def hessian_norm2_max_parallel(img, h0, h1, h2, r, k):
    """Parallel :func:`hessian_norm2_max_serial` (bit-identical result)."""
    starts = _bands(img.shape[0])
    nb = starts.shape[0] - 1
    part = np.zeros(nb, np.float32)
    for b in prange(nb):
        part[b] = _norm2_max_rows(img, starts[b], starts[b + 1], h0, h1, h2, r, k)
    return part.max()


@njit(**_OPTS)
def hessian_serial(img, h0, h1, h2, r, out_rr, out_rc, out_cc):
    """Raw Hessian ``(Hrr, Hrc, Hcc)`` of ``img`` written into the three (M, N) outputs."""
    n = img.shape[1]
    vb, hb, pad = _tile_buffers(h0.shape[0])
    for i in range(img.shape[0]):
        for j0 in range(0, n, TILE):
            j1 = min(n, j0 + TILE)
            w = j1 - j0
            _tile_hessian(img, i, j0, j1, h0, h1, h2, r, vb, hb, pad)
            out_rr[i, j0:j1] = hb[0, :w]
            out_rc[i, j0:j1] = hb[1, :w]
            out_cc[i, j0:j1] = hb[2, :w]


# --------------------------------------------------------------------------------------
# pyramid: Gaussian smoothing then decimation by 2 (keep even rows and columns)
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _smooth_decimate_rows(src, r0, r1, h, r, dst):
    m, n = src.shape
    nd = dst.shape[1]
    q = r // 2 + 1
    v = np.zeros(n, np.float32)
    ev = np.zeros(nd + 2 * q, np.float32)
    od = np.zeros(nd + 2 * q, np.float32)
    c0 = h[0]
    for i in range(r0, r1):
        # vertical pass at source row 2 i
        si = 2 * i
        row = src[si]
        for j in range(n):
            v[j] = c0 * np.float32(row[j])
        for t in range(1, r + 1):
            a = src[_reflect(si - t, m)]
            b = src[_reflect(si + t, m)]
            g = h[t]
            for j in range(n):
                v[j] += g * (np.float32(a[j]) + np.float32(b[j]))
        # even / odd columns, extended by reflection: ev[q + k] = v[2k], od[q + k] = v[2k + 1]
        ke = n // 2
        for k in range(ke):
            ev[q + k] = v[2 * k]
            od[q + k] = v[2 * k + 1]
        for k in range(-q, nd + q):
            if k < 0 or k >= ke:
                ev[q + k] = v[_reflect(2 * k, n)]
                od[q + k] = v[_reflect(2 * k + 1, n)]
        # horizontal pass at even columns: u[2j +- t] from ev (t even) or od (t odd)
        out = dst[i]
        e0 = ev[q : q + nd]
        for j in range(nd):
            out[j] = c0 * e0[j]
        for t in range(1, r + 1):
            g = h[t]
            hs = t // 2
            if t % 2 == 0:
                lo = ev[q - hs : q - hs + nd]
                hi = ev[q + hs : q + hs + nd]
            else:
                lo = od[q - hs - 1 : q - hs - 1 + nd]
                hi = od[q + hs : q + hs + nd]
            for j in range(nd):
                out[j] += g * (lo[j] + hi[j])


@njit(**_OPTS)
def smooth_decimate_serial(src, h, r, dst):
    """``dst[i, j] = (G * src)[2 i, 2 j]`` with the symmetric half kernel ``h`` (reflect)."""
    _smooth_decimate_rows(src, 0, dst.shape[0], h, r, dst)


@njit(parallel=True, **_OPTS)
def smooth_decimate_parallel(src, h, r, dst):
    """Parallel :func:`smooth_decimate_serial` (bit-identical results)."""
    starts = _bands(dst.shape[0])
    for b in prange(starts.shape[0] - 1):
        _smooth_decimate_rows(src, starts[b], starts[b + 1], h, r, dst)


# --------------------------------------------------------------------------------------
# input check
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _absmax_rows(img, r0, r1):
    n = img.shape[1]
    zero = img.dtype.type(0.0)
    acc = np.zeros(n, img.dtype)
    big = np.zeros(n, img.dtype)
    for i in range(r0, r1):
        row = img[i]
        for j in range(n):
            x = row[j]
            acc[j] += x * zero
            big[j] = np.maximum(big[j], abs(x))
    best = 0.0
    for j in range(n):
        if acc[j] != 0.0 or big[j] != big[j]:
            return np.nan
        best = max(best, float(big[j]))
    return best


@njit(**_OPTS)
def finite_absmax_serial(img):
    """Largest ``|value|`` of the 2-D float array ``img``, or NaN if it holds a NaN or an inf."""
    return _absmax_rows(img, 0, img.shape[0])


@njit(parallel=True, **_OPTS)
def finite_absmax_parallel(img):
    """Parallel :func:`finite_absmax_serial`."""
    starts = _bands(img.shape[0])
    nb = starts.shape[0] - 1
    part = np.zeros(nb, np.float64)
    for b in prange(nb):
        part[b] = _absmax_rows(img, starts[b], starts[b + 1])
    return part.max()

"""Gaussian-derivative Hessian kernels for the multi-scale Frangi vesselness filter.

Plain arrays and scalars in, arrays out. The numpy-level wrapper is
:mod:`veinscope.vesselness`; nothing else calls these directly.

Layout of the work
------------------
Every public kernel comes twice: ``name_rows(img, r0, r1, ...)`` processes output rows
``r0:r1`` serially with its own row buffers, and ``name(img, ...)`` hands bands of
:data:`BAND_ROWS` rows to it in a ``prange``. Bands do not depend on each other and the
reductions (maxima) are exact, so the results are bit-identical whatever the number of threads
or the banding (no reassociating fast-math; only FMA contraction, which is deterministic).
For small images the wrapper runs ``name`` with Numba's thread count set to 1 (one compiled
kernel per name to load, not a serial twin as well); tests call ``name_rows`` as the
reference. Within a row the work goes by tiles of :data:`TILE` columns so that the buffers
stay in the L1 cache.

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
scale normalisation, over the intensity normalisation, times the polarity sign (+1 for dark
ridges); ``k`` is folded into the horizontal kernel taps::

    mean = (p + r) / 2,  d = sqrt(((p - r) / 2)**2 + q**2)
    lambda2 = mean + d,  lambda1 = mean - d      (|lambda2| >= |lambda1| when mean > 0)
    S**2 = lambda1**2 + lambda2**2
    V = exp(-cb (lambda1 / lambda2)**2) (1 - exp(-cg S**2))   if mean > 0 and S**2 > fl2
    V = 0                                                     otherwise
    strength = lambda2 (same condition, else 0)
    across-ridge direction: doubled-angle vector (cos 2t, sin 2t) ~ (r - p, 2 q)

with ``cb = 1 / (2 beta**2)`` and ``cg = 1 / (2 gamma**2)``; the code works with the doubled
``2 mean``, ``2 d``, ``2 lambda`` (same ratio, ``S**2`` times 4).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_OPTS = dict(cache=True, nogil=True, fastmath={"contract"})

#: Rows per band in the parallel drivers (results do not depend on it).
BAND_ROWS = 32
#: Columns per tile: the working set of one tile stays in the L1 cache.
TILE = 512


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
def _exp_neg_short(t):
    """:func:`_exp_neg` for ``0 <= t <= 2`` (larger ``t`` is clamped to 2): two squarings.

    Exact replacement where the argument is known to stay below 2 (default beta and gamma).
    """
    u = min(t, np.float32(2.0)) * np.float32(0.25)
    p = np.float32(_E5)
    p = p * u + np.float32(_E4)
    p = p * u + np.float32(_E3)
    p = p * u + np.float32(_E2)
    p = p * u + np.float32(_E1)
    p = p * u + np.float32(_E0)
    p = p * p
    return p * p


@njit(**_OPTS)
def _one_minus_exp_neg_short(t):
    """:func:`_one_minus_exp_neg` for ``0 <= t <= 2`` (larger ``t`` is clamped to 2)."""
    u = min(t, np.float32(2.0)) * np.float32(0.25)
    q = np.float32(_Q4)
    q = q * u + np.float32(_Q3)
    q = q * u + np.float32(_Q2)
    q = q * u + np.float32(_Q1)
    q = q * u + np.float32(_Q0)
    q = q * u
    two = np.float32(2.0)
    q = q * (two - q)
    return q * (two - q)


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
def _hpass(v, h, r, pad, w, k, sgn, out):
    """One kernel along a padded buffer, times ``k``:
    ``out[j] = k (h[0] v[j] + sum_t h[t] (v[j - t] + sgn v[j + t]))`` (``v`` indexed from
    ``pad``), with ``sgn = 1`` for symmetric kernels and ``-1`` for the antisymmetric one,
    whose centre tap ``h[0]`` is 0.

    One output per loop keeps every pointer in a register; taps go four at a time.
    """
    c = k * h[0]
    m = v[pad : pad + w]
    for j in range(w):
        out[j] = c * m[j]
    t = 1
    while t + 3 <= r:
        a1 = v[pad - t : pad - t + w]
        b1 = v[pad + t : pad + t + w]
        a2 = v[pad - t - 1 : pad - t - 1 + w]
        b2 = v[pad + t + 1 : pad + t + 1 + w]
        a3 = v[pad - t - 2 : pad - t - 2 + w]
        b3 = v[pad + t + 2 : pad + t + 2 + w]
        a4 = v[pad - t - 3 : pad - t - 3 + w]
        b4 = v[pad + t + 3 : pad + t + 3 + w]
        f1 = k * h[t]
        f2 = k * h[t + 1]
        f3 = k * h[t + 2]
        f4 = k * h[t + 3]
        g1 = sgn * f1
        g2 = sgn * f2
        g3 = sgn * f3
        g4 = sgn * f4
        for j in range(w):
            out[j] = (((((((out[j] + f1 * a1[j]) + g1 * b1[j]) + f2 * a2[j]) + g2 * b2[j]) + f3 * a3[j])
                       + g3 * b3[j]) + f4 * a4[j]) + g4 * b4[j]
        t += 4
    while t <= r:
        a1 = v[pad - t : pad - t + w]
        b1 = v[pad + t : pad + t + w]
        f1 = k * h[t]
        g1 = sgn * f1
        for j in range(w):
            out[j] = (out[j] + f1 * a1[j]) + g1 * b1[j]
        t += 1


@njit(**_OPTS)
def _horizontal_pass(v0, v1, v2, h0, h1, h2, r, pad, w, k, hrr, hrc, hcc):
    """Filter the padded tile buffers along x, times ``k``: ``Hrr = k G v2``, ``Hrc = k G' v1``,
    ``Hcc = k G'' v0``."""
    one = np.float32(1.0)
    _hpass(v2, h0, r, pad, w, k, one, hrr)
    _hpass(v1, h1, r, pad, w, k, -one, hrc)
    _hpass(v0, h2, r, pad, w, k, one, hcc)


@njit(**_OPTS)
def _tile_hessian(img, i, j0, j1, h0, h1, h2, r, k, vb, hb, pad):
    """Hessian times ``k`` of row ``i``, columns ``j0:j1`` (at most TILE) into ``hb[:, :j1 - j0]``.

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
    _horizontal_pass(vb[0], vb[1], vb[2], h0, h1, h2, r, pad, w, k, hb[0, :w], hb[1, :w], hb[2, :w])


# --------------------------------------------------------------------------------------
# per-pixel Frangi on one tile, folded into running maxima
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _frangi_tile_v(hrr, hrc, hcc, cb, cg, fl2, short, ov):
    """Fold the vesselness of one scale into ``ov`` (running maximum).

    ``hrr, hrc, hcc`` are the normalised Hessian ``(p, q, r)``. Works with doubled quantities
    (``2 mean``, ``2 d``, ``2 lambda``), which leave the ratio unchanged and scale ``S**2``
    by 4. ``short``: both exponents are known to stay below 2 (``beta >= 0.5`` and the default
    gamma), so the cheaper exponentials apply.
    """
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    cg4 = np.float32(0.25) * cg
    fl8 = np.float32(4.0) * fl2
    if short:
        for j in range(ov.shape[0]):
            p = hrr[j]
            q2 = hrc[j] + hrc[j]
            r = hcc[j]
            m2 = p + r
            hd2 = p - r
            d2 = np.sqrt(hd2 * hd2 + q2 * q2)
            l2 = m2 + d2
            l1 = m2 - d2
            ratio = l1 / max(l2, tiny)
            s8 = l1 * l1 + l2 * l2
            v = _exp_neg_short(cb * (ratio * ratio)) * _one_minus_exp_neg_short(cg4 * s8)
            v = v if (m2 > zero) & (s8 > fl8) else zero
            ov[j] = np.maximum(ov[j], v)
        return
    for j in range(ov.shape[0]):
        p = hrr[j]
        q2 = hrc[j] + hrc[j]
        r = hcc[j]
        m2 = p + r
        hd2 = p - r
        d2 = np.sqrt(hd2 * hd2 + q2 * q2)
        l2 = m2 + d2
        l1 = m2 - d2
        ratio = l1 / max(l2, tiny)
        s8 = l1 * l1 + l2 * l2
        v = _exp_neg(cb * (ratio * ratio)) * _one_minus_exp_neg(cg4 * s8)
        v = v if (m2 > zero) & (s8 > fl8) else zero
        ov[j] = np.maximum(ov[j], v)


@njit(inline="always", **_OPTS)
def _take_scale(v, st, o, dy_o, dx_o, v_sat):
    """Whether a scale of vesselness ``v`` and strength ``st`` replaces the best so far (best
    vesselness ``o``; the chosen scale's strength is the length of ``(dy_o, dx_o)``).

    The larger vesselness wins (Frangi 1998), except among scales that both see a saturated
    line (``v, o >= v_sat``): there the vesselness is 1 to within the camera noise of the
    along-line curvature and says nothing about the width, so the larger scale-normalised
    strength ``sigma**2 |lambda2|`` decides (Lindeberg 1998, :DOI:`10.1023/A:1008097225773`:
    a bar of width w peaks at sigma = w / 2).
    """
    sat = (v >= v_sat) & (o >= v_sat)
    return (sat & (st * st > dy_o * dy_o + dx_o * dx_o)) | (~sat & (v > o))


@njit(**_OPTS)
def _frangi_tile_ridge(hrr, hrc, hcc, cb, cg, fl2, short, sigma, sscale, v_sat, ov, osc, ost, ody, odx):
    """Like :func:`_frangi_tile_v`, also folding in the strength (maximum) and the scale and
    doubled-angle vector ``(2 q, r - p)`` of the best scale (:func:`_take_scale`), the vector
    stored with the length of that scale's strength. ``short`` is loop-invariant (LLVM
    unswitches it)."""
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    cg4 = np.float32(0.25) * cg
    fl8 = np.float32(4.0) * fl2
    half_scale = np.float32(0.5) * sscale
    for j in range(ov.shape[0]):
        p = hrr[j]
        q2 = hrc[j] + hrc[j]
        r = hcc[j]
        m2 = p + r
        hd2 = p - r
        d2 = np.sqrt(hd2 * hd2 + q2 * q2)
        l2 = m2 + d2
        l1 = m2 - d2
        ratio = l1 / max(l2, tiny)
        s8 = l1 * l1 + l2 * l2
        a = cb * (ratio * ratio)
        b = cg4 * s8
        if short:
            v = _exp_neg_short(a) * _one_minus_exp_neg_short(b)
        else:
            v = _exp_neg(a) * _one_minus_exp_neg(b)
        pos = (m2 > zero) & (s8 > fl8)
        v = v if pos else zero
        st = l2 * half_scale if pos else zero
        # Load first and add zero to the selected values: otherwise LLVM turns these selects
        # into (slow) masked stores.
        o = ov[j]
        osc_o = osc[j]
        dy_o = ody[j]
        dx_o = odx[j]
        ost[j] = np.maximum(ost[j], st)
        take = _take_scale(v, st, o, dy_o, dx_o, v_sat)
        k = st / max(d2, tiny)
        ov[j] = np.maximum(o, v)
        osc[j] = (sigma if take else osc_o) + zero
        ody[j] = (q2 * k if take else dy_o) + zero
        odx[j] = ((r - p) * k if take else dx_o) + zero


@njit(**_OPTS)
def _lerp_merge_ridge(av, bv, ast, bst, ady, bdy, adx, bdx, wy, sigma, v_sat, ov, osc, ost, ody, odx):
    """Fold one coarse map into the running maxima of a row: its four planes (vesselness,
    strength, doubled angle y, x) interpolated between the two bracketing upsampled rows
    (``a*`` upper, ``b*`` lower, weight ``wy`` of the lower), then the strength's maximum and,
    where :func:`_take_scale` takes it, its sigma and doubled-angle vector (rescaled to the
    strength's length); in one pass, without writing the interpolated rows and reading them back."""
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    wa = np.float32(1.0) - wy
    for j in range(ov.shape[0]):
        v = wa * av[j] + wy * bv[j]
        cst = wa * ast[j] + wy * bst[j]
        dy_c = wa * ady[j] + wy * bdy[j]
        dx_c = wa * adx[j] + wy * bdx[j]
        o = ov[j]
        osc_o = osc[j]
        dy_o = ody[j]
        dx_o = odx[j]
        ost[j] = np.maximum(ost[j], cst)
        take = _take_scale(v, cst, o, dy_o, dx_o, v_sat)
        k = cst / max(np.sqrt(dy_c * dy_c + dx_c * dx_c), tiny)
        ov[j] = np.maximum(o, v)
        osc[j] = (sigma if take else osc_o) + zero
        ody[j] = (dy_c * k if take else dy_o) + zero
        odx[j] = (dx_c * k if take else dx_o) + zero


@njit(**_OPTS)
def _lerp_merge_ridge2(av, bv, ast, bst, ady, bdy, adx, bdx, wy, sigma,
                       ev, fv, est, fst, edy, fdy, edx, fdx, wz, sigma2, v_sat, ov, osc, ost, ody, odx):  # fmt: skip
    """:func:`_lerp_merge_ridge` of two coarse maps (the second's rows ``e*``, ``f*``, weight
    ``wz``), one after the other at each pixel: one pass over the outputs for both."""
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    wa = np.float32(1.0) - wy
    we = np.float32(1.0) - wz
    for j in range(ov.shape[0]):
        v = wa * av[j] + wy * bv[j]
        cst = wa * ast[j] + wy * bst[j]
        dy_c = wa * ady[j] + wy * bdy[j]
        dx_c = wa * adx[j] + wy * bdx[j]
        o = ov[j]
        osc_o = osc[j]
        dy_o = ody[j]
        dx_o = odx[j]
        st_o = np.maximum(ost[j], cst)
        take = _take_scale(v, cst, o, dy_o, dx_o, v_sat)
        k = cst / max(np.sqrt(dy_c * dy_c + dx_c * dx_c), tiny)
        o = np.maximum(o, v)
        osc_o = (sigma if take else osc_o) + zero
        dy_o = (dy_c * k if take else dy_o) + zero
        dx_o = (dx_c * k if take else dx_o) + zero
        v = we * ev[j] + wz * fv[j]
        cst = we * est[j] + wz * fst[j]
        dy_c = we * edy[j] + wz * fdy[j]
        dx_c = we * edx[j] + wz * fdx[j]
        ost[j] = np.maximum(st_o, cst)
        take = _take_scale(v, cst, o, dy_o, dx_o, v_sat)
        k = cst / max(np.sqrt(dy_c * dy_c + dx_c * dx_c), tiny)
        ov[j] = np.maximum(o, v)
        osc[j] = (sigma2 if take else osc_o) + zero
        ody[j] = (dy_c * k if take else dy_o) + zero
        odx[j] = (dx_c * k if take else dx_o) + zero


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
        sc = osc[j]
        live = ov[j] > zero
        odx[j] = (nx if live else zero) + zero
        ody[j] = (ny if live else zero) + zero
        osc[j] = (sc if live else zero) + zero


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
    """Coarse rows bracketing full-resolution row ``i`` and the weight of the lower one."""
    i0 = i >> shift
    wy = np.float32(i - (i0 << shift)) / np.float32(1 << shift)
    if i0 >= mc - 1:
        return mc - 1, mc - 1, np.float32(0.0)
    return i0, i0 + 1, wy


@njit(**_OPTS)
def _coarse_vesselness(b, s2, cg, short, out):
    """``out = b (1 - exp(-cg s2))``: a coarse row of blobness and S**2 to vesselness."""
    if short:
        for k in range(out.shape[0]):
            out[k] = b[k] * _one_minus_exp_neg_short(cg * s2[k])
    else:
        for k in range(out.shape[0]):
            out[k] = b[k] * _one_minus_exp_neg(cg * s2[k])


@njit(**_OPTS)
def _fill_slot(cache, slot, ic, cmaps, base, nc, cg, short, shift, n, scratch, tmp):
    """Upsample coarse row ``ic`` of one coarse map into ``cache[:, slot]`` (full width).

    Plane 0 of the cache is the vesselness, computed from the blobness (``cmaps[0]``) and S**2
    (``cmaps[1]``) planes; planes 1.. copy ``cmaps[2..]`` (strength, doubled angle).
    """
    start = base + ic * nc
    v = scratch[:nc]
    _coarse_vesselness(cmaps[0, start : start + nc], cmaps[1, start : start + nc], cg, short, v)
    _upsample_segment(v, shift, n, 0, cache[0, slot], tmp)
    for q in range(1, cache.shape[0]):
        _upsample_segment(cmaps[q + 1, start : start + nc], shift, n, 0, cache[q, slot], tmp)


@njit(**_OPTS)
def _prepare_rows(cache, ids, i, cmaps, base, mc, nc, cg, short, shift, n, scratch, tmp):
    """Make two slots of ``cache`` (planes, 2, N) hold the upsampled coarse rows bracketing
    full-resolution row ``i``; ``ids`` (2,) records which coarse row each slot holds.

    Returns the slots of the upper and lower coarse rows and the weight of the lower one.
    """
    i0, i1, wy = _coarse_rows_for(i, shift, mc)
    if ids[0] == i0:
        s0 = 0
    elif ids[1] == i0:
        s0 = 1
    else:
        s0 = 1 if ids[0] == i1 else 0
        _fill_slot(cache, s0, i0, cmaps, base, nc, cg, short, shift, n, scratch, tmp)
        ids[s0] = i0
    if i1 == i0:
        return s0, s0, wy
    s1 = 1 - s0
    if ids[s1] != i1:
        _fill_slot(cache, s1, i1, cmaps, base, nc, cg, short, shift, n, scratch, tmp)
        ids[s1] = i1
    return s0, s1, wy


@njit(**_OPTS)
def _coarse_buffers(nco, planes, n):
    cache = np.zeros((max(nco, 1), planes, 2, n), np.float32)
    ids = np.full((max(nco, 1), 2), -1, np.int64)
    scratch = np.zeros(n, np.float32)
    tmp = np.zeros((2, n // 2 + 4), np.float32)
    return cache, ids, scratch, tmp


# --------------------------------------------------------------------------------------
# full resolution: vesselness of its scales, plus coarse maps upsampled into it
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def frangi_v_rows(img, r0, r1, hk0, hk1, hk2, radii, ks, cgs, fl2, cb, short,
                  cmaps, coff, cshape, cshift, ccg, out_v):  # fmt: skip
    """Rows ``r0:r1`` of :func:`frangi_v` (serial)."""
    n = img.shape[1]
    ns = radii.shape[0]
    nco = coff.shape[0]
    vb, hb, pad = _tile_buffers(hk0.shape[1])
    cache, ids, scratch, tmp = _coarse_buffers(nco, 1, n)
    for i in range(r0, r1):
        orow = out_v[i]
        orow[:] = np.float32(0.0)
        for j0 in range(0, n, TILE):
            j1 = min(n, j0 + TILE)
            w = j1 - j0
            ov = orow[j0:j1]
            for s in range(ns):
                _tile_hessian(img, i, j0, j1, hk0[s], hk1[s], hk2[s], radii[s], ks[s], vb, hb, pad)
                _frangi_tile_v(hb[0, :w], hb[1, :w], hb[2, :w], cb, cgs[s], fl2, short, ov)
        one = np.float32(1.0)
        c = 0
        while c < nco:  # coarse maps two at a time: one pass over the output row for both
            s0, s1, wy = _prepare_rows(cache[c], ids[c], i, cmaps, coff[c], cshape[c, 0], cshape[c, 1], ccg[c],
                                       short, cshift[c], n, scratch, tmp)
            a = cache[c, 0, s0]
            b = cache[c, 0, s1]
            wa = one - wy
            if c + 1 < nco:
                e = c + 1
                t0, t1, wz = _prepare_rows(cache[e], ids[e], i, cmaps, coff[e], cshape[e, 0], cshape[e, 1],
                                           ccg[e], short, cshift[e], n, scratch, tmp)
                a2 = cache[e, 0, t0]
                b2 = cache[e, 0, t1]
                wa2 = one - wz
                for j in range(n):
                    orow[j] = np.maximum(orow[j], np.maximum(wa * a[j] + wy * b[j], wa2 * a2[j] + wz * b2[j]))
            else:
                for j in range(n):
                    orow[j] = np.maximum(orow[j], wa * a[j] + wy * b[j])
            c += 2


@njit(parallel=True, **_OPTS)
def frangi_v(img, hk0, hk1, hk2, radii, ks, cgs, fl2, cb, short, cmaps, coff, cshape, cshift, ccg, out_v):
    """Frangi vesselness at full resolution, max over its scales and the coarse maps.

    Parameters
    ----------
    img : (M, N) float32
        The image.
    hk0, hk1, hk2 : (S, Rmax + 1) float32
        Half kernels of order 0, 1, 2 per scale (zero past each radius).
    radii : (S,) int64
        Kernel radius per scale (``<= Rmax``).
    ks : (S,) float32
        Factor applied to the raw Hessian per scale: sign (+1 dark ridges) times the scale
        normalisation ``sigma**2`` over the intensity normalisation.
    cgs : (S,) float32
        ``1 / (2 gamma**2)`` per scale.
    fl2 : float32
        Noise floor: pixels with ``S**2 <= fl2`` get V = 0 (and strength 0), so that float32
        rounding on flat images gives exact zeros.
    cb : float32
        ``1 / (2 beta**2)``.
    short : bool
        Both exponents stay below 2 (``beta >= 0.5`` and the default gamma, under which
        ``S**2 / (2 gamma**2) <= 2``): cheaper exponentials, same values.
    cmaps : (P, L) float32
        Coarse per-scale maps from :func:`frangi_maps`, one after the other in each plane:
        blobness, S**2 (and strength, doubled-angle y, x for :func:`frangi_ridge`).
    coff : (C,) int64
        Offset of each coarse map in the planes of ``cmaps``.
    cshape : (C, 2) int64
        Shape of each coarse map.
    cshift : (C,) int64
        log2 of each coarse map's decimation factor.
    ccg : (C,) float32
        ``1 / (2 gamma**2)`` of each coarse map.
    out_v : (M, N) float32
        Output, overwritten.
    """
    starts = _bands(img.shape[0])
    for b in prange(starts.shape[0] - 1):
        frangi_v_rows(img, starts[b], starts[b + 1], hk0, hk1, hk2, radii, ks, cgs, fl2, cb, short,
                      cmaps, coff, cshape, cshift, ccg, out_v)  # fmt: skip


@njit(**_OPTS)
def frangi_ridge_rows(
    img, r0, r1, hk0, hk1, hk2, radii, ks, cgs, fl2, cb, short, sigmas, sscale,
    cmaps, coff, cshape, cshift, ccg, csig, v_sat, out_v, out_scale, out_strength, out_dy, out_dx, weighted,
):  # fmt: skip
    """Rows ``r0:r1`` of :func:`frangi_ridge` (serial)."""
    n = img.shape[1]
    ns = radii.shape[0]
    nco = coff.shape[0]
    vb, hb, pad = _tile_buffers(hk0.shape[1])
    cache, ids, scratch, tmp = _coarse_buffers(nco, 4, n)
    zero = np.float32(0.0)
    vrow = np.empty(n if weighted else 0, np.float32)  # the row's vesselness when out_v is not kept
    for i in range(r0, r1):
        ov = vrow if weighted else out_v[i]
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
                _tile_hessian(img, i, j0, j1, hk0[s], hk1[s], hk2[s], radii[s], ks[s], vb, hb, pad)
                _frangi_tile_ridge(
                    hb[0, :w], hb[1, :w], hb[2, :w], cb, cgs[s], fl2, short, sigmas[s], sscale, v_sat,
                    ov[j0:j1], osc[j0:j1], ost[j0:j1], ody[j0:j1], odx[j0:j1],
                )  # fmt: skip
        c = 0
        while c < nco:  # coarse maps two at a time: one pass over the output rows for both
            s0, s1, wy = _prepare_rows(cache[c], ids[c], i, cmaps, coff[c], cshape[c, 0], cshape[c, 1], ccg[c],
                                       short, cshift[c], n, scratch, tmp)
            if c + 1 < nco:
                e = c + 1
                t0, t1, wz = _prepare_rows(cache[e], ids[e], i, cmaps, coff[e], cshape[e, 0], cshape[e, 1], ccg[e],
                                           short, cshift[e], n, scratch, tmp)
                _lerp_merge_ridge2(
                    cache[c, 0, s0], cache[c, 0, s1], cache[c, 1, s0], cache[c, 1, s1],
                    cache[c, 2, s0], cache[c, 2, s1], cache[c, 3, s0], cache[c, 3, s1], wy, csig[c],
                    cache[e, 0, t0], cache[e, 0, t1], cache[e, 1, t0], cache[e, 1, t1],
                    cache[e, 2, t0], cache[e, 2, t1], cache[e, 3, t0], cache[e, 3, t1], wz, csig[e], v_sat,
                    ov, osc, ost, ody, odx,
                )  # fmt: skip
            else:
                _lerp_merge_ridge(cache[c, 0, s0], cache[c, 0, s1], cache[c, 1, s0], cache[c, 1, s1], cache[c, 2, s0],
                                  cache[c, 2, s1], cache[c, 3, s0], cache[c, 3, s1], wy, csig[c], v_sat,
                                  ov, osc, ost, ody, odx)
            c += 2
        _finalise_tile(ov, osc, ody, odx)
        if weighted:
            for j in range(n):
                ost[j] = ost[j] * ov[j]


@njit(parallel=True, **_OPTS)
def frangi_ridge(
    img, hk0, hk1, hk2, radii, ks, cgs, fl2, cb, short, sigmas, sscale,
    cmaps, coff, cshape, cshift, ccg, csig, v_sat, out_v, out_scale, out_strength, out_dy, out_dx, weighted,
):  # fmt: skip
    """Like :func:`frangi_v`, also keeping the best scale, strength and direction.

    ``sigmas`` (S,) float32 are the scales (pixels) recorded in ``out_scale``; ``sscale``
    multiplies ``lambda2`` into the strength (undoing the intensity normalisation in ``ks``).
    ``cmaps`` has 5 planes (blobness, S**2, strength, doubled-angle y, x) and ``csig`` gives
    the sigma of each coarse map. The best scale is the one of largest V, except among scales
    whose V are all at least ``v_sat`` (a saturated line), where the largest strength decides
    (:func:`_take_scale`). Its doubled-angle vector ``(2 q, r - p)`` (bilinear for coarse
    maps: the direction of the interpolated Hessian) becomes the unit across-ridge normal
    ``(out_dy, out_dx)`` with ``out_dx >= 0``; ``out_scale`` is its sigma. All are 0 where V is
    0. With ``weighted`` the strength output is the strength times V (the product
    :func:`veinscope.segment.detect_vessels` ranks ridges by, the same float32 bits as
    multiplying the two maps afterwards) and ``out_v`` is not written (it may be any (0, N)
    array): one image-sized map fewer at the peak of an analysis's memory.
    """
    starts = _bands(img.shape[0])
    for b in prange(starts.shape[0] - 1):
        frangi_ridge_rows(
            img, starts[b], starts[b + 1], hk0, hk1, hk2, radii, ks, cgs, fl2, cb, short, sigmas, sscale,
            cmaps, coff, cshape, cshift, ccg, csig, v_sat, out_v, out_scale, out_strength, out_dy, out_dx, weighted,
        )  # fmt: skip


# --------------------------------------------------------------------------------------
# coarse levels: per-scale maps that do not depend on gamma (gamma comes out of the pass)
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def _map_tile(hrr, hrc, hcc, cb, fl2, sscale, ridge, short, ob, os2, ost, ody, odx, acc):
    """Blobness factor (0 off-ridge) and S**2; for ridges also strength and doubled angle.

    ``hrr, hrc, hcc`` are the normalised Hessian. ``acc`` keeps the running maximum of S**2
    per tile column (an element-wise maximum vectorises, a scalar reduction does not without
    reassociating fast-math). ``short`` as in :func:`_frangi_tile_v`.
    """
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    quarter = np.float32(0.25)
    fl8 = np.float32(4.0) * fl2
    half_scale = np.float32(0.5) * sscale
    for j in range(ob.shape[0]):
        p = hrr[j]
        q2 = hrc[j] + hrc[j]
        r = hcc[j]
        m2 = p + r
        hd2 = p - r
        d2 = np.sqrt(hd2 * hd2 + q2 * q2)
        l2 = m2 + d2
        l1 = m2 - d2
        ratio = l1 / max(l2, tiny)
        s8 = l1 * l1 + l2 * l2
        pos = (m2 > zero) & (s8 > fl8)
        ob[j] = cb * (ratio * ratio) if pos else np.float32(-1.0)  # exponent; -1 marks V = 0
        s2 = quarter * s8
        os2[j] = s2
        acc[j] = np.maximum(acc[j], s2)
    if short:
        for j in range(ob.shape[0]):
            a = ob[j]
            ob[j] = _exp_neg_short(a) if a >= zero else zero
    else:
        for j in range(ob.shape[0]):
            a = ob[j]
            ob[j] = _exp_neg(a) if a >= zero else zero
    if ridge:
        for j in range(ob.shape[0]):
            p = hrr[j]
            q2 = hrc[j] + hrc[j]
            r = hcc[j]
            hd2 = p - r
            d2 = np.sqrt(hd2 * hd2 + q2 * q2)
            live = ob[j] > zero
            ost[j] = ((p + r) + d2) * half_scale if live else zero
            ody[j] = q2
            odx[j] = r - p


@njit(**_OPTS)
def frangi_maps_rows(img, r0, r1, hk0, hk1, hk2, radii, ks, cb, fl2, sscale, ridge, short, cmaps, off, smax2):
    """Rows ``r0:r1`` of :func:`frangi_maps` (serial); ``smax2`` gets the maxima of these rows."""
    m, n = img.shape
    ns = radii.shape[0]
    vb, hb, pad = _tile_buffers(hk0.shape[1])
    acc = np.zeros((ns, TILE), np.float32)
    for i in range(r0, r1):
        for j0 in range(0, n, TILE):
            j1 = min(n, j0 + TILE)
            w = j1 - j0
            for s in range(ns):
                _tile_hessian(img, i, j0, j1, hk0[s], hk1[s], hk2[s], radii[s], ks[s], vb, hb, pad)
                lo = off + s * m * n + i * n + j0
                hi = lo + w
                if ridge:
                    st, dy, dx = cmaps[2, lo:hi], cmaps[3, lo:hi], cmaps[4, lo:hi]
                else:
                    st, dy, dx = cmaps[0, :0], cmaps[0, :0], cmaps[0, :0]
                _map_tile(hb[0, :w], hb[1, :w], hb[2, :w], cb, fl2, sscale, ridge, short,
                          cmaps[0, lo:hi], cmaps[1, lo:hi], st, dy, dx, acc[s])  # fmt: skip
    for s in range(ns):
        best = np.float32(0.0)
        for j in range(TILE):
            best = max(best, acc[s, j])
        smax2[s] = best


@njit(parallel=True, **_OPTS)
def frangi_maps(img, hk0, hk1, hk2, radii, ks, cb, fl2, sscale, ridge, short, cmaps, off, smax2):
    """Per-pixel Frangi ingredients of the scales of one coarse pyramid level.

    For scale ``s`` the (M, N) maps go to ``cmaps[q, off + s M N : off + (s + 1) M N]``:
    plane 0 the blobness factor ``exp(-cb Rb**2)`` (0 where ``lambda2`` has the wrong sign or
    ``S**2 <= fl2``), plane 1 ``S**2``, and with ``ridge`` plane 2 the strength (``lambda2``
    times ``sscale`` where the blobness is not 0) and planes 3, 4 the doubled-angle vector
    ``(2 q, r - p)``. ``smax2`` (S,) receives the largest ``S**2`` of each scale, from which
    the default gamma follows; :func:`frangi_v` turns blobness and ``S**2`` into vesselness
    row by row while it upsamples. Kernel layout as in :func:`frangi_v`.
    """
    starts = _bands(img.shape[0])
    nb = starts.shape[0] - 1
    ns = radii.shape[0]
    part = np.zeros((nb, ns), np.float32)
    for b in prange(nb):
        frangi_maps_rows(img, starts[b], starts[b + 1], hk0, hk1, hk2, radii, ks, cb, fl2, sscale, ridge, short,
                         cmaps, off, part[b])  # fmt: skip
    for s in range(ns):
        best = np.float32(0.0)
        for b in range(nb):
            best = max(best, part[b, s])
        smax2[s] = best


# --------------------------------------------------------------------------------------
# Hessian norm maximum (default gamma at full resolution) and the raw Hessian (tests)
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def hessian_norm2_max_rows(img, r0, r1, hk0, hk1, hk2, radii, ks, out):
    """Rows ``r0:r1`` of :func:`hessian_norm2_max` (serial)."""
    n = img.shape[1]
    ns = radii.shape[0]
    vb, hb, pad = _tile_buffers(hk0.shape[1])
    acc = np.zeros((ns, TILE), np.float32)
    two = np.float32(2.0)
    for i in range(r0, r1):
        for j0 in range(0, n, TILE):
            j1 = min(n, j0 + TILE)
            w = j1 - j0
            for s in range(ns):
                _tile_hessian(img, i, j0, j1, hk0[s], hk1[s], hk2[s], radii[s], ks[s], vb, hb, pad)
                a = hb[0]
                b = hb[1]
                c = hb[2]
                ac = acc[s]
                for j in range(w):
                    ac[j] = np.maximum(ac[j], a[j] * a[j] + two * (b[j] * b[j]) + c[j] * c[j])
    for s in range(ns):
        best = np.float32(0.0)
        for j in range(TILE):
            best = max(best, acc[s, j])
        out[s] = best


@njit(parallel=True, **_OPTS)
def hessian_norm2_max(img, hk0, hk1, hk2, radii, ks, out):
    """Largest ``S**2 = Hrr**2 + 2 Hrc**2 + Hcc**2`` of ``ks[s]`` times the Hessian, per scale.

    Same kernel layout as :func:`frangi_v`; ``out`` (S,) float32 receives the maxima.
    """
    starts = _bands(img.shape[0])
    nb = starts.shape[0] - 1
    ns = radii.shape[0]
    part = np.zeros((nb, ns), np.float32)
    for b in prange(nb):
        hessian_norm2_max_rows(img, starts[b], starts[b + 1], hk0, hk1, hk2, radii, ks, part[b])
    for s in range(ns):
        best = np.float32(0.0)
        for b in range(nb):
            best = max(best, part[b, s])
        out[s] = best


@njit(**_OPTS)
def hessian_serial(img, h0, h1, h2, r, out_rr, out_rc, out_cc):
    """Raw Hessian ``(Hrr, Hrc, Hcc)`` of ``img`` into the three (M, N) outputs (for tests)."""
    n = img.shape[1]
    vb, hb, pad = _tile_buffers(h0.shape[0])
    for i in range(img.shape[0]):
        for j0 in range(0, n, TILE):
            j1 = min(n, j0 + TILE)
            w = j1 - j0
            _tile_hessian(img, i, j0, j1, h0, h1, h2, r, np.float32(1.0), vb, hb, pad)
            out_rr[i, j0:j1] = hb[0, :w]
            out_rc[i, j0:j1] = hb[1, :w]
            out_cc[i, j0:j1] = hb[2, :w]


# --------------------------------------------------------------------------------------
# pyramid: Gaussian smoothing then decimation by 2 (keep even rows and columns)
# --------------------------------------------------------------------------------------
@njit(**_OPTS)
def smooth_decimate_rows(src, r0, r1, h, r, dst, minmax):
    """Rows ``r0:r1`` of :func:`smooth_decimate` (serial); ``minmax`` (2,) gets the minimum
    and maximum of source rows ``2 r0 .. 2 r1 - 1``."""
    m, n = src.shape
    nd = dst.shape[1]
    q = r // 2 + 1
    v = np.zeros(n, np.float32)
    ev = np.zeros(nd + 2 * q, np.float32)
    od = np.zeros(nd + 2 * q, np.float32)
    lo_acc = src[2 * r0].copy()
    hi_acc = src[2 * r0].copy()
    c0 = h[0]
    for i in range(r0, r1):
        # vertical pass at source row 2 i, and the range of source rows 2 i, 2 i + 1
        si = 2 * i
        row = src[si]
        for j in range(n):
            lo_acc[j] = np.minimum(lo_acc[j], row[j])
            hi_acc[j] = np.maximum(hi_acc[j], row[j])
        if si + 1 < m:
            nxt = src[si + 1]
            for j in range(n):
                lo_acc[j] = np.minimum(lo_acc[j], nxt[j])
                hi_acc[j] = np.maximum(hi_acc[j], nxt[j])
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
    # NaN propagates through np.minimum / np.maximum, an infinity shows as such
    lo_val = lo_acc[0]
    hi_val = hi_acc[0]
    for j in range(n):
        lo_val = np.minimum(lo_val, lo_acc[j])
        hi_val = np.maximum(hi_val, hi_acc[j])
    minmax[0] = lo_val
    minmax[1] = hi_val


@njit(parallel=True, **_OPTS)
def smooth_decimate(src, h, r, dst, minmax):
    """``dst[i, j] = (G * src)[2 i, 2 j]`` with the symmetric half kernel ``h`` (reflect);
    ``minmax`` (2,) receives the minimum and maximum of ``src`` (NaN if it holds a NaN), which
    the first pyramid level provides for free."""
    starts = _bands(dst.shape[0])
    nb = starts.shape[0] - 1
    part = np.zeros((nb, 2), src.dtype)
    for b in prange(nb):
        smooth_decimate_rows(src, starts[b], starts[b + 1], h, r, dst, part[b])
    lo_val = part[0, 0]
    hi_val = part[0, 1]
    for b in range(nb):
        lo_val = np.minimum(lo_val, part[b, 0])
        hi_val = np.maximum(hi_val, part[b, 1])
    minmax[0] = lo_val
    minmax[1] = hi_val



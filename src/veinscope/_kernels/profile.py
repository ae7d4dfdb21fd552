"""Cross-section profile kernels: bilinear sampling along normals and a per-point
Levenberg-Marquardt fit of a blurred bar (vessel) model.

Model of a vessel cross-section sampled at signed distance ``t`` (px) along the normal::

    p(t) = b + g (t - tc) + A/2 [erf((t - c + w/2) / (sqrt2 s_j)) - erf((t - c - w/2) / (sqrt2 s_j))]

a top-hat of width ``w`` and height ``A`` centred at ``c``, convolved with a Gaussian on a linear
background ``b + g (t - tc)`` (``tc``: fixed centre of the fitted window). The blur of sample j is
``s_j = sqrt(s^2 + v_j)``: the effective PSF ``s`` plus the variance ``v_j`` that bilinear
interpolation adds at that sample's sub-pixel position (0 on the pixel grid, up to 1/4 px^2),
so that widths do not depend on where the samples fall between pixels.

The fitted parameter vector is ``theta = (b, g, area, c, w, s)`` with ``area = A w`` (contrast
x px): blur preserves the area, and in these coordinates the valley of thin vessels (where only
``A w`` is measured) is straight, so the iterations do not zig-zag along ``A w = const``. Priors
enter as pseudo-observations: ``wa (area / w - a_prior)^2`` and ``ws (s - s_prior)^2`` are added
to the residual sum of squares.

The iterations are Levenberg-Marquardt with Nielsen's update of the damping (Nielsen 1999,
IMM-REP-1999-05; Madsen, Nielsen & Tingleff 2004, "Methods for non-linear least squares
problems"), the damping scaled by the diagonal of the *data* part of J^T J (a stiff prior must
not freeze the directions it leaves free), a bound-constrained active set for ``w`` and ``s``, an
extension of steps that keep working (curved valleys of profiles that are not bars), and
convergence when a step, or the predicted next Gauss-Newton step, is below ``STEP_TOL`` /
``PRED_TOL`` px or a tiny fraction of the residual variance.

erf and the Gaussian come from one linearly interpolated table (step 1/256, |error| < 4e-6 of
the amplitude), which removes the exponential, the division and the polynomial of a libm erf
from the inner loop; the sums of the normal equations then vectorise.

Thin vessels are fitted on *pooled* profiles (:func:`pooled_profiles`): the pixels of a stretch
of the vessel placed at their distances from a centre curve through the neighbouring points'
vessel centres, binned and fitted with the same model (weighted by the pixel counts);
:func:`pooled_rss` gives the profile likelihood of a PSF shared by such stretches. See the
comment above :func:`_cells`.

The public wrapper is :func:`veinscope.diameter.profile_diameters`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Status codes written by :func:`fit_profiles`.
STATUS_OK = 0
STATUS_NOT_RUN = 1  # not processed (not in ``index``)
STATUS_OUTSIDE = 2  # point or normal not finite, or the point lies outside the image
STATUS_NO_PEAK = 3  # nothing above the background near the point
STATUS_NO_EDGE = 4  # the profile does not fall to half height inside the image / sampled range
STATUS_TOO_FEW = 5  # too few valid samples in the fitting window
STATUS_NOT_CONVERGED = 6
STATUS_IMPLAUSIBLE = 7  # converged to a negative, off-centre or noise-level bar

NPAR = 6
_EDGE_EPS = 1e-9
#: Reassociation lets LLVM vectorise the sums of the normal equations (no nnan/ninf flags).
_FAST = {"reassoc", "contract", "arcp"}
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Bounds of the fitted parameters (px). A width at ``W_MIN`` means "unresolved, thinner than
#: the blur lets us see"; it is kept (``ok``) so that medians along a vessel stay unbiased.
W_MIN = 0.05
S_MIN = 0.2
S_MAX = 8.0
#: A converged bar is implausible when its blurred peak is below this many residual RMS.
MIN_PEAK_SNR = 3.0
#: Widths from which the normal direction is refined from two side profiles (px).
TILT_MIN_WIDTH = 4.0
#: Largest accepted normal correction (radians); beyond it the vessel bends or branches.
TILT_MAX_RAD = 0.6
#: Convergence: largest change of c, w and s (px) in an accepted step (Gauss-Newton converges
#: quadratically, so the remaining error is far smaller).
STEP_TOL = 5e-3
#: ... plus this fraction of the width (a 0.05 % change of a 20 px width is immaterial).
STEP_REL = 5e-4
#: ... or when the decrease of the cost predicted for the step is below this fraction of the
#: residual variance per sample (the step is then a few % of the parameters' standard errors).
STAT_TOL = 1e-3
#: A predicted next Gauss-Newton step below this (px) is applied without another pass: near
#: the optimum the remaining error after it is of the order of its square.
PRED_TOL = 0.02
#: From this iteration on, a step that worked well is extended (doubled, up to 3 times).
EXTRAPOLATE_AFTER = 3
#: Fitting window beyond the half-height edges: WIN_S * s + WIN_PX (px) on each side.
WIN_S = 1.5
WIN_PX = 2.5
#: Half-length (px) sampled first; the full length only when the edges are not inside it.
INNER_HALF_LEN = 12.0
#: The inner part is trusted only when the vessel stands this many noise sd above its
#: background there (otherwise it may lie inside a wide vessel's plateau).
INNER_MIN_SNR = 6.0

# ---- erf(u) and exp(-u^2) table, linear interpolation: rows (erf, next - erf, exp(-u^2), next - it)
_TAB_U = 6.0
_TAB_N = 256
_TAB_XMAX = 2.0 * _TAB_U * _TAB_N


def _make_table() -> np.ndarray:
    n = int(_TAB_XMAX) + 2
    tab = np.zeros((n, 4), np.float64)
    for i in range(n):
        u = -_TAB_U + i / _TAB_N
        tab[i, 0] = math.erf(u)
        tab[i, 2] = math.exp(-u * u)
    tab[:-1, 1] = tab[1:, 0] - tab[:-1, 0]
    tab[:-1, 3] = tab[1:, 2] - tab[:-1, 2]
    return tab


_TAB = _make_table()


@njit(cache=True, nogil=True, inline="always")
def _erf_gauss(u):  # pragma: no cover - compiled
    """(erf(u), exp(-u^2)) by linear interpolation of ``_TAB`` (|error| < 4e-6); saturates
    beyond |u| = 6."""
    x = (u + _TAB_U) * _TAB_N
    if not (x > 0.0):
        x = 0.0
    elif x > _TAB_XMAX:
        x = _TAB_XMAX
    i = int(x)
    f = x - i
    return _TAB[i, 0] + f * _TAB[i, 1], _TAB[i, 2] + f * _TAB[i, 3]


@njit(cache=True, nogil=True)
def erf_gauss(u):  # pragma: no cover - compiled
    """Vectorised :func:`_erf_gauss` for tests: arrays (erf(u), exp(-u^2))."""
    e = np.empty(u.shape[0])
    q = np.empty(u.shape[0])
    for i in range(u.shape[0]):
        e[i], q[i] = _erf_gauss(u[i])
    return e, q


@njit(cache=True, nogil=True)
def _sample_line(img, py, px, ny, nx, t0, h, out, var):  # pragma: no cover - compiled
    """Bilinear samples of ``img`` at ``(py, px) + (t0 + j h) (ny, nx)``; NaN outside or at NaN pixels.

    ``var[j]`` receives the variance, along the normal, of the bilinear weights of sample j
    (``ny^2 fy (1 - fy) + nx^2 fx (1 - fx)``): the blur that the interpolation adds there.
    """
    m = img.shape[0]
    n = img.shape[1]
    ymax = m - 1.0
    xmax = n - 1.0
    for j in range(out.shape[0]):
        t = t0 + j * h
        y = py + t * ny
        x = px + t * nx
        # rounding (a normal of (6e-17, -1) along row 0) must not throw border samples out
        if y < 0.0 and y > -_EDGE_EPS:
            y = 0.0
        elif y > ymax and y < ymax + _EDGE_EPS:
            y = ymax
        if x < 0.0 and x > -_EDGE_EPS:
            x = 0.0
        elif x > xmax and x < xmax + _EDGE_EPS:
            x = xmax
        if not (y >= 0.0 and y <= ymax and x >= 0.0 and x <= xmax):
            out[j] = np.nan
            var[j] = 0.0
            continue
        iy = int(y)
        ix = int(x)
        if iy > m - 2:
            iy = m - 2
        if ix > n - 2:
            ix = n - 2
        fy = y - iy
        fx = x - ix
        r0 = img[iy]
        r1 = img[iy + 1]
        v0 = (1.0 - fx) * r0[ix] + fx * r0[ix + 1]
        v1 = (1.0 - fx) * r1[ix] + fx * r1[ix + 1]
        out[j] = (1.0 - fy) * v0 + fy * v1
        var[j] = ny * ny * fy * (1.0 - fy) + nx * nx * fx * (1.0 - fx)


@njit(cache=True, nogil=True)
def sample_profiles(img, points, normals, t0, h, n):  # pragma: no cover - compiled
    """Profiles of ``img`` along ``normals`` through ``points``.

    Parameters
    ----------
    img : ndarray (M, N) float32 or float64, C-contiguous, M, N >= 2
    points, normals : ndarray (K, 2) float64, (row, col)
    t0, h : float
        First offset and step along the normal (px).
    n : int
        Samples per profile.

    Returns
    -------
    values : ndarray (K, n) float64
        Bilinear samples (``scipy.ndimage.map_coordinates(order=1)`` inside the image), NaN where
        a sample falls outside ``[0, M-1] x [0, N-1]`` or on a NaN pixel.
    var : ndarray (K, n) float64
        Interpolation variance along the normal at each sample (px^2), 0 outside.
    """
    k = points.shape[0]
    out = np.empty((k, n), np.float64)
    var = np.empty((k, n), np.float64)
    for i in range(k):
        _sample_line(img, points[i, 0], points[i, 1], normals[i, 0], normals[i, 1], t0, h, out[i], var[i])
    return out, var


@njit(cache=True, nogil=True)
def _set_inv(var, s, jlo, jhi, inv):  # pragma: no cover - compiled
    """inv[j] = 1 / (sqrt2 sqrt(s^2 + var[j])) over jlo..jhi-1."""
    s2 = s * s
    for j in range(jlo, jhi):
        inv[j] = 1.0 / (_SQRT2 * math.sqrt(s2 + var[j]))


@njit(cache=True, nogil=True)
def _edges(p_len, inv, t0, h, c, w, fit_s, ee, qq, rr, ss):  # pragma: no cover - compiled
    """Per sample: erf difference, Gaussian sum and difference at the two edges (and, with
    ``fit_s``, the s-derivative term ``u2 q2 - u1 q1``)."""
    hw = 0.5 * w
    for j in range(p_len):
        t = t0 + j * h
        iv = inv[j]
        u1 = (t - c + hw) * iv
        u2 = (t - c - hw) * iv
        e1, q1 = _erf_gauss(u1)
        e2, q2 = _erf_gauss(u2)
        ee[j] = e1 - e2
        qq[j] = q1 + q2
        rr[j] = q2 - q1
        if fit_s:
            ss[j] = u2 * q2 - u1 * q1


@njit(cache=True, nogil=True, fastmath=_FAST)
def _normal_eq(p, var, inv, t0, h, n, tc, th, fit_s, hm, gv, buf):  # pragma: no cover - compiled
    """Residual sum of squares at ``th`` over samples 0..n-1; fills J^T J (hm) and J^T r (gv).

    ``inv[j] = 1 / (sqrt2 s_j)``; recomputed from ``var`` here when ``fit_s``. Without ``fit_s``
    the s row and column of ``hm`` and ``gv`` are zero. ``buf``: (4, >= n) scratch.
    """
    b = th[0]
    g = th[1]
    area = th[2]
    w = th[4]
    s = th[5]
    if fit_s:
        _set_inv(var, s, 0, n, inv)
    ee = buf[0]
    qq = buf[1]
    rr = buf[2]
    ss = buf[3]
    _edges(n, inv, t0, h, th[3], w, fit_s, ee, qq, rr, ss)
    iw = 1.0 / w
    amp = area * iw
    ka = amp * _INV_SQRT_PI
    ks = 2.0 * s * ka
    h01 = 0.0
    h02 = 0.0
    h03 = 0.0
    h04 = 0.0
    h11 = 0.0
    h12 = 0.0
    h13 = 0.0
    h14 = 0.0
    h22 = 0.0
    h23 = 0.0
    h24 = 0.0
    h33 = 0.0
    h34 = 0.0
    h44 = 0.0
    g0 = 0.0
    g1 = 0.0
    g2 = 0.0
    g3 = 0.0
    g4 = 0.0
    rss = 0.0
    for j in range(n):
        x = t0 + j * h - tc
        iv = inv[j]
        j2 = 0.5 * ee[j] * iw
        r = p[j] - (b + g * x + area * j2)
        kc = ka * iv
        j3 = kc * rr[j]
        j4 = 0.5 * kc * qq[j] - amp * j2
        rss += r * r
        h01 += x
        h02 += j2
        h03 += j3
        h04 += j4
        h11 += x * x
        h12 += x * j2
        h13 += x * j3
        h14 += x * j4
        h22 += j2 * j2
        h23 += j2 * j3
        h24 += j2 * j4
        h33 += j3 * j3
        h34 += j3 * j4
        h44 += j4 * j4
        g0 += r
        g1 += x * r
        g2 += j2 * r
        g3 += j3 * r
        g4 += j4 * r
    h05 = 0.0
    h15 = 0.0
    h25 = 0.0
    h35 = 0.0
    h45 = 0.0
    h55 = 0.0
    g5 = 0.0
    if fit_s:
        for j in range(n):
            x = t0 + j * h - tc
            iv = inv[j]
            j2 = 0.5 * ee[j] * iw
            r = p[j] - (b + g * x + area * j2)
            kc = ka * iv
            j3 = kc * rr[j]
            j4 = 0.5 * kc * qq[j] - amp * j2
            j5 = ks * iv * iv * ss[j]
            h05 += j5
            h15 += x * j5
            h25 += j2 * j5
            h35 += j3 * j5
            h45 += j4 * j5
            h55 += j5 * j5
            g5 += j5 * r
    hm[0, 0] = n
    hm[0, 1] = h01
    hm[0, 2] = h02
    hm[0, 3] = h03
    hm[0, 4] = h04
    hm[0, 5] = h05
    hm[1, 1] = h11
    hm[1, 2] = h12
    hm[1, 3] = h13
    hm[1, 4] = h14
    hm[1, 5] = h15
    hm[2, 2] = h22
    hm[2, 3] = h23
    hm[2, 4] = h24
    hm[2, 5] = h25
    hm[3, 3] = h33
    hm[3, 4] = h34
    hm[3, 5] = h35
    hm[4, 4] = h44
    hm[4, 5] = h45
    hm[5, 5] = h55
    for i in range(NPAR):
        for k in range(i):
            hm[i, k] = hm[k, i]
    gv[0] = g0
    gv[1] = g1
    gv[2] = g2
    gv[3] = g3
    gv[4] = g4
    gv[5] = g5
    return rss


@njit(cache=True, nogil=True)
def _solve_damped(hm, dd, gv, lam, active, a, d, idx):  # pragma: no cover - compiled
    """Solve (H + lam diag(dd)) d = g over the active parameters (LDL^T); False if not
    positive definite. Inactive parameters get d = 0. ``dd`` is the diagonal of the data part
    of H: a stiff prior must not damp the step along the directions it leaves free.
    """
    m = 0
    for i in range(NPAR):
        d[i] = 0.0
        if active[i]:
            idx[m] = i
            m += 1
    for r in range(m):
        ir = idx[r]
        for q in range(r + 1):
            a[r, q] = hm[ir, idx[q]]
        a[r, r] = hm[ir, ir] + lam * dd[ir] + 1e-12
    # LDL^T in place: unit lower triangle below the diagonal, D on the diagonal
    for r in range(m):
        for q in range(r):
            acc = a[r, q]
            for k in range(q):
                acc -= a[r, k] * a[q, k] * a[k, k]
            a[r, q] = acc / a[q, q]
        acc = a[r, r]
        for k in range(r):
            acc -= a[r, k] * a[r, k] * a[k, k]
        if not (acc > 0.0):
            return False
        a[r, r] = acc
    y = a[NPAR]  # scratch row: ``a`` has NPAR + 1 rows
    for r in range(m):
        acc = gv[idx[r]]
        for k in range(r):
            acc -= a[r, k] * y[k]
        y[r] = acc
    for r in range(m):
        y[r] /= a[r, r]
    for r in range(m - 1, -1, -1):
        acc = y[r]
        for k in range(r + 1, m):
            acc -= a[k, r] * y[k]
        y[r] = acc
    for r in range(m):
        d[idx[r]] = y[r]
    return True


@njit(cache=True, nogil=True)
def _solve5(hm, dd, gv, lam, d):  # pragma: no cover - compiled
    """Unrolled LDL^T solve of (H + lam diag(dd)) d = g for the first 5 parameters (code
    generated; ``aij`` holds L below the diagonal, ``ri`` = 1 / D_i)."""
    a00 = hm[0, 0] + lam * dd[0] + 1e-12
    a10 = hm[1, 0]
    a11 = hm[1, 1] + lam * dd[1] + 1e-12
    a20 = hm[2, 0]
    a21 = hm[2, 1]
    a22 = hm[2, 2] + lam * dd[2] + 1e-12
    a30 = hm[3, 0]
    a31 = hm[3, 1]
    a32 = hm[3, 2]
    a33 = hm[3, 3] + lam * dd[3] + 1e-12
    a40 = hm[4, 0]
    a41 = hm[4, 1]
    a42 = hm[4, 2]
    a43 = hm[4, 3]
    a44 = hm[4, 4] + lam * dd[4] + 1e-12
    if not (a00 > 0.0):
        return False
    r0 = 1.0 / a00
    a10 = a10 * r0
    a11 = a11 - a10 * a10 * a00
    if not (a11 > 0.0):
        return False
    r1 = 1.0 / a11
    a20 = a20 * r0
    a21 = (a21 - a20 * a10 * a00) * r1
    a22 = a22 - a20 * a20 * a00 - a21 * a21 * a11
    if not (a22 > 0.0):
        return False
    r2 = 1.0 / a22
    a30 = a30 * r0
    a31 = (a31 - a30 * a10 * a00) * r1
    a32 = (a32 - a30 * a20 * a00 - a31 * a21 * a11) * r2
    a33 = a33 - a30 * a30 * a00 - a31 * a31 * a11 - a32 * a32 * a22
    if not (a33 > 0.0):
        return False
    r3 = 1.0 / a33
    a40 = a40 * r0
    a41 = (a41 - a40 * a10 * a00) * r1
    a42 = (a42 - a40 * a20 * a00 - a41 * a21 * a11) * r2
    a43 = (a43 - a40 * a30 * a00 - a41 * a31 * a11 - a42 * a32 * a22) * r3
    a44 = a44 - a40 * a40 * a00 - a41 * a41 * a11 - a42 * a42 * a22 - a43 * a43 * a33
    if not (a44 > 0.0):
        return False
    r4 = 1.0 / a44
    y0 = gv[0]
    y1 = gv[1] - a10 * y0
    y2 = gv[2] - a20 * y0 - a21 * y1
    y3 = gv[3] - a30 * y0 - a31 * y1 - a32 * y2
    y4 = gv[4] - a40 * y0 - a41 * y1 - a42 * y2 - a43 * y3
    y0 *= r0
    y1 *= r1
    y2 *= r2
    y3 *= r3
    y4 *= r4
    y3 = y3 - a43 * y4
    y2 = y2 - a32 * y3 - a42 * y4
    y1 = y1 - a21 * y2 - a31 * y3 - a41 * y4
    y0 = y0 - a10 * y1 - a20 * y2 - a30 * y3 - a40 * y4
    d[0] = y0
    d[1] = y1
    d[2] = y2
    d[3] = y3
    d[4] = y4
    d[5] = 0.0
    return True



@njit(cache=True, nogil=True)
def _solve(hm, dd, gv, lam, active, a, d, idx):  # pragma: no cover - compiled
    """Damped solve over the active parameters; unrolled when they are (b, g, area, c, w)."""
    if active[4] and not active[5]:
        return _solve5(hm, dd, gv, lam, d)
    return _solve_damped(hm, dd, gv, lam, active, a, d, idx)


@njit(cache=True, nogil=True)
def _add_priors(th, hm, gv, a_prior, wa, s_prior, ws):  # pragma: no cover - compiled
    """Add the prior pseudo-observations to H and g; return their contribution to the cost."""
    cost = 0.0
    if wa > 0.0:
        # pseudo-observation a_prior of A = area / w
        iw = 1.0 / th[4]
        ra = a_prior - th[2] * iw
        ja = iw
        jw = -th[2] * iw * iw
        hm[2, 2] += wa * ja * ja
        hm[2, 4] += wa * ja * jw
        hm[4, 2] += wa * ja * jw
        hm[4, 4] += wa * jw * jw
        gv[2] += wa * ja * ra
        gv[4] += wa * jw * ra
        cost += wa * ra * ra
    if ws > 0.0:
        ds = th[5] - s_prior
        hm[5, 5] += ws
        gv[5] -= ws * ds
        cost += ws * ds * ds
    return cost


@njit(cache=True, nogil=True)
def _clamp(th, tlo, thi, w_max, fit_s):  # pragma: no cover - compiled
    if th[4] < W_MIN:
        th[4] = W_MIN
    elif th[4] > w_max:
        th[4] = w_max
    if th[3] < tlo:
        th[3] = tlo
    elif th[3] > thi:
        th[3] = thi
    if fit_s:
        if th[5] < S_MIN:
            th[5] = S_MIN
        elif th[5] > S_MAX:
            th[5] = S_MAX


@njit(cache=True, nogil=True)
def _centroid(p, t0, h, n, tc, b, g):  # pragma: no cover - compiled
    """Centroid (px along t) of p[0:n] above the background b + g (t - tc); NaN if not finite."""
    s0 = 0.0
    s1 = 0.0
    for j in range(n):
        t = t0 + j * h
        v = p[j] - (b + g * (t - tc))
        s0 += v
        s1 += v * t
    if not (s0 > 0.0) or not math.isfinite(s1):
        return np.nan
    return s1 / s0


@njit(cache=True, nogil=True)
def _valid_range(prof, jc0, lo_lim, hi_lim):  # pragma: no cover - compiled
    """Contiguous range of finite samples around jc0 within [lo_lim, hi_lim]."""
    lo = jc0
    while lo > lo_lim and math.isfinite(prof[lo - 1]):
        lo -= 1
    hi = jc0
    while hi < hi_lim and math.isfinite(prof[hi + 1]):
        hi += 1
    return lo, hi


#: Fields of the initial estimate (``ini`` rows): half-height edges, smoothed peak, background
#: levels and positions beside the vessel, and the limits of the usable profile (px, along t).
INI_EL, INI_ER, INI_PEAK, INI_BL, INI_TL, INI_BR, INI_TR, INI_LIM_LO, INI_LIM_HI = range(9)
NINI = 9


@njit(cache=True, nogil=True)
def _initial(prof, sm, lo, hi, jc0, t0, h, s_guess, ini):  # pragma: no cover - compiled
    """Initial estimate from the half-height crossings of the smoothed profile. Returns a
    status; on success fills ``ini`` (see ``INI_*``). The usable limits stop at the image
    border and at the valley before another vessel rises beside this one.
    """
    for j in range(lo, hi + 1):
        jl = j - 1 if j > lo else j
        jr = j + 1 if j < hi else j
        sm[j] = 0.25 * (prof[jl] + 2.0 * prof[j] + prof[jr])
    r = int(3.0 / h + 0.5)
    jp = jc0
    pk = sm[jc0]
    for j in range(max(lo, jc0 - r), min(hi, jc0 + r) + 1):
        if sm[j] > pk:
            pk = sm[j]
            jp = j
    bl = pk
    for j in range(lo, jp + 1):
        if sm[j] < bl:
            bl = sm[j]
    br = pk
    for j in range(jp, hi + 1):
        if sm[j] < br:
            br = sm[j]
    if not (pk > bl and pk > br):
        return STATUS_NO_PEAK
    # one side falling much less than the other: the vessel runs into the border, a NaN
    # region or another vessel there, and its edge cannot be seen
    if pk - bl < 0.5 * (pk - br) or pk - br < 0.5 * (pk - bl):
        return STATUS_NO_EDGE
    half = 0.5 * (pk + bl)
    el = np.nan
    vp = pk
    for j in range(jp - 1, lo - 1, -1):
        v = sm[j]
        if v < half:
            el = t0 + (j + (half - v) / (vp - v)) * h
            break
        vp = v
    half = 0.5 * (pk + br)
    er = np.nan
    vp = pk
    for j in range(jp + 1, hi + 1):
        v = sm[j]
        if v < half:
            er = t0 + (j - (half - v) / (vp - v)) * h
            break
        vp = v
    if not (math.isfinite(el) and math.isfinite(er)):
        return STATUS_NO_EDGE
    foot = 2.0 * s_guess + 1.0
    # background: mean of 3 px just beyond the edge foot on each side (the minimum if outside)
    nb = int(3.0 / h + 0.5)
    jl1 = int(math.floor((el - foot - t0) / h))
    tl = el - foot
    if jl1 - nb + 1 >= lo:
        acc = 0.0
        for j in range(jl1 - nb + 1, jl1 + 1):
            acc += prof[j]
        bl = acc / nb
        tl = t0 + (jl1 - 0.5 * (nb - 1)) * h
    jr1 = int(math.ceil((er + foot - t0) / h))
    tr = er + foot
    if jr1 + nb - 1 <= hi:
        acc = 0.0
        for j in range(jr1, jr1 + nb):
            acc += prof[j]
        br = acc / nb
        tr = t0 + (jr1 + 0.5 * (nb - 1)) * h
    amp0 = pk - 0.5 * (bl + br)
    if not (amp0 > 0.0):
        return STATUS_NO_PEAK
    # limits: the valley before another vessel rises to half height beside this one
    jlim_lo = lo
    vmin = np.inf
    jmin = jl1
    for j in range(min(jl1, hi), lo - 1, -1):
        if sm[j] < vmin:
            vmin = sm[j]
            jmin = j
        elif sm[j] > bl + 0.5 * amp0:
            jlim_lo = jmin
            break
    jlim_hi = hi
    vmin = np.inf
    jmin = jr1
    for j in range(max(jr1, lo), hi + 1):
        if sm[j] < vmin:
            vmin = sm[j]
            jmin = j
        elif sm[j] > br + 0.5 * amp0:
            jlim_hi = jmin
            break
    ini[INI_EL] = el
    ini[INI_ER] = er
    ini[INI_PEAK] = pk
    ini[INI_BL] = bl
    ini[INI_TL] = tl
    ini[INI_BR] = br
    ini[INI_TR] = tr
    ini[INI_LIM_LO] = t0 + jlim_lo * h
    ini[INI_LIM_HI] = t0 + jlim_hi * h
    return STATUS_OK


@njit(cache=True, nogil=True)
def _noise_sd(p, lo, hi):  # pragma: no cover - compiled
    """Noise standard deviation of p[lo..hi] from the mean absolute second difference
    (robust to smooth structure; white noise: E|d2| = sqrt(6) sd sqrt(2/pi))."""
    acc = 0.0
    m = 0
    for j in range(lo + 1, hi):
        acc += abs(p[j - 1] - 2.0 * p[j] + p[j + 1])
        m += 1
    if m == 0:
        return 0.0
    return acc / m / (math.sqrt(6.0) * math.sqrt(2.0 / math.pi))


@njit(cache=True, nogil=True)
def _initial_point(img, py, px, ny, nx, inner, prof, var, sm, h, s_guess, ini):  # pragma: no cover - compiled
    """Sample the profile (inner part first, full length if needed) and estimate. Status."""
    n = prof.shape[0]
    jc0 = n // 2
    t0 = -jc0 * h
    if not (math.isfinite(py) and math.isfinite(px) and math.isfinite(ny) and math.isfinite(nx)):
        return STATUS_OUTSIDE
    ni = min(jc0, inner)
    a0 = jc0 - ni
    _sample_line(img, py, px, ny, nx, t0 + a0 * h, h, prof[a0 : jc0 + ni + 1], var[a0 : jc0 + ni + 1])
    if not math.isfinite(prof[jc0]):
        return STATUS_OUTSIDE
    lo, hi = _valid_range(prof, jc0, a0, jc0 + ni)
    st = _initial(prof, sm, lo, hi, jc0, t0, h, s_guess, ini)
    cut = (lo == a0 and a0 > 0) or (hi == jc0 + ni and jc0 + ni < n - 1)
    if cut:
        margin = WIN_S * s_guess + WIN_PX
        need = st != STATUS_OK
        if not need:
            # inside a wide vessel the inner part may be all plateau: its "edges" are noise dips
            need = ini[INI_PEAK] - 0.5 * (ini[INI_BL] + ini[INI_BR]) < INNER_MIN_SNR * _noise_sd(prof, lo, hi)
        if not need:
            need = (ini[INI_EL] - margin <= ini[INI_LIM_LO] and lo == a0 and a0 > 0) or (
                ini[INI_ER] + margin >= ini[INI_LIM_HI] and hi == jc0 + ni and jc0 + ni < n - 1
            )
        if need:
            # the rest of the profile on both sides (the inner part is already sampled)
            _sample_line(img, py, px, ny, nx, t0, h, prof[:a0], var[:a0])
            b0 = jc0 + ni + 1
            _sample_line(img, py, px, ny, nx, t0 + b0 * h, h, prof[b0:], var[b0:])
            lo, hi = _valid_range(prof, jc0, 0, n - 1)
            st = _initial(prof, sm, lo, hi, jc0, t0, h, s_guess, ini)
    return st


@njit(cache=True, nogil=True)
def initial_profiles(img, points, normals, index, half_len, h, s_guess, ini, status, inner_half_len):  # pragma: no cover - compiled
    """Initial estimates of the profiles through ``points[index]`` (no fitting).

    Parameters
    ----------
    img : ndarray (M, N) float32 or float64, C-contiguous, M, N >= 2
        Contrast map, vessel positive; NaN pixels are treated as outside.
    points, normals : ndarray (K, 2) float64
        Centreline points (row, col) and unit normals (row, col).
    index : ndarray (P,) int64
        Points to process; the other rows of the outputs are left untouched.
    half_len, h : float
        Longest profile half-length and sampling step along the normal (px). The inner
        ``inner_half_len`` px are sampled first, the rest only when the edges or the
        background are not inside.
    s_guess : float
        Largest PSF sigma (px) expected: the background is measured just beyond the edge foot
        (``2 s + 1`` px) and the profile is lengthened when the fitting window
        (``WIN_S s + WIN_PX`` px beyond the edges) would not fit in the inner part.
    ini : ndarray (K, NINI) float64, out
        See ``INI_*``: edges ``el < er`` (px along the normal; ``er - el`` is the smoothed,
        blurred full width at half maximum), peak, background levels and positions, limits.
    status : ndarray (K,) int8, out
        ``STATUS_OK`` or the reason why there is no estimate.
    inner_half_len : float
        Half-length (px) sampled first, normally ``INNER_HALF_LEN``; ``half_len`` or more: the
        whole profile at once (the estimate then sees the skin beyond a wide vessel).
    """
    n = 2 * int(math.ceil(half_len / h)) + 1
    inner = int(math.ceil(inner_half_len / h))
    prof = np.empty(n, np.float64)
    var = np.empty(n, np.float64)
    sm = np.empty(n, np.float64)
    for q in range(index.shape[0]):
        k = index[q]
        status[k] = _initial_point(
            img, points[k, 0], points[k, 1], normals[k, 0], normals[k, 1], inner, prof, var, sm, h, s_guess, ini[k]
        )


@njit(cache=True, nogil=True)
def _fit_point(
    img, py, px, ny, nx, ini, ws_f, ws_m, amat, ws_v, active, idx, th, h, s_guess, fit_s, s_prior, ws,
    a_prior, wa, start, w_max, max_iter, refine_tilt,
):  # pragma: no cover - compiled
    """Fit one point from its initial estimate. Returns (status, rms, tilt, iterations);
    ``th`` receives theta.

    Work arrays: ``ws_f`` (9, n) rows profile, interpolation variance, inverse blur, side
    profile, side variance and 4 rows of scratch for the normal equations; ``ws_m`` (2, 6, 6);
    ``amat`` (7, 6); ``ws_v`` (7, 6); ``active`` (6,) bool; ``idx`` (6,) int64.
    """
    for i in range(NPAR):
        th[i] = np.nan
    el = ini[INI_EL]
    er = ini[INI_ER]
    margin = WIN_S * s_guess + WIN_PX
    # window on the sampling grid t = j h, inside the usable limits
    tlo = max(math.floor((el - margin) / h) * h, ini[INI_LIM_LO])
    thi = min(math.ceil((er + margin) / h) * h, ini[INI_LIM_HI])
    nsamp = int((thi - tlo) / h + 0.5) + 1
    if nsamp < 8:
        return STATUS_TOO_FEW, np.nan, 0.0, 0
    if nsamp > ws_f.shape[1]:
        nsamp = ws_f.shape[1]
    prof = ws_f[0][:nsamp]
    var = ws_f[1][:nsamp]
    inv = ws_f[2][:nsamp]
    buf = ws_f[5:9]
    _sample_line(img, py, px, ny, nx, tlo, h, prof, var)
    for j in range(nsamp):
        if not math.isfinite(prof[j]):
            return STATUS_TOO_FEW, np.nan, 0.0, 0
    t0 = tlo
    thi = tlo + (nsamp - 1) * h
    tc = 0.5 * (el + er)
    fwhm0 = er - el

    if math.isfinite(start[0]):
        for i in range(NPAR):
            th[i] = start[i]
        if not fit_s:
            th[5] = s_guess
    else:
        sg = s_guess
        fw = _FWHM_PER_SIGMA * sg
        w0 = fwhm0 * fwhm0 - fw * fw
        w0 = math.sqrt(w0) if w0 > 0.25 * fwhm0 * fwhm0 else 0.5 * fwhm0
        gain = math.erf(w0 / (2.0 * _SQRT2 * sg))
        if gain < 0.25:
            gain = 0.25
        bl = ini[INI_BL]
        tl = ini[INI_TL]
        br = ini[INI_BR]
        tr = ini[INI_TR]
        g0 = (br - bl) / (tr - tl)
        th[0] = bl + g0 * (tc - tl)
        th[1] = g0
        th[2] = (ini[INI_PEAK] - 0.5 * (bl + br)) / gain * w0
        if wa > 0.0 and a_prior > 0.0:
            # start on the prior (area / w = a_prior) with the measured area: the prior is
            # nonlinear in (area, w) and a start far from it makes the first steps overshoot
            w0 = max(th[2] / a_prior, W_MIN)
            th[2] = a_prior * w0
        th[3] = tc
        th[4] = w0
        th[5] = sg
    _clamp(th, tlo, thi, w_max, fit_s)
    if not fit_s:
        _set_inv(var, th[5], 0, nsamp, inv)

    # ---- Levenberg-Marquardt
    hm = ws_m[0]
    hm2 = ws_m[1]
    gv = ws_v[0]
    gv2 = ws_v[1]
    d = ws_v[2]
    th2 = ws_v[3]
    dd = ws_v[4]
    dd2 = ws_v[5]
    dlast = ws_v[6]
    for i in range(NPAR):
        active[i] = True
    rss = _normal_eq(prof, var, inv, t0, h, nsamp, tc, th, fit_s, hm, gv, buf)
    for i in range(NPAR):
        dd[i] = hm[i, i]
    cost = rss + _add_priors(th, hm, gv, a_prior, wa, s_prior, ws)
    lam = 1e-3
    nu = 2.0
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        # active set: a parameter at its lower bound stays there while the gradient pushes down
        active[4] = not (th[4] <= W_MIN and gv[4] < 0.0)
        active[5] = fit_s and not (th[5] <= S_MIN and gv[5] < 0.0)
        if not _solve(hm, dd, gv, lam, active, amat, d, idx):
            lam *= nu
            nu *= 2.0
            if lam > 1e10:
                break
            continue
        # decrease of the cost predicted by the linearised model: d.g + lam d.D.d
        pred = 0.0
        for i in range(NPAR):
            pred += d[i] * (gv[i] + lam * dd[i] * d[i])
        for i in range(NPAR):
            th2[i] = th[i] + d[i]
        _clamp(th2, tlo, thi, w_max, fit_s)
        rss2 = _normal_eq(prof, var, inv, t0, h, nsamp, tc, th2, fit_s, hm2, gv2, buf)
        for i in range(NPAR):
            dd2[i] = hm2[i, i]
        cost2 = rss2 + _add_priors(th2, hm2, gv2, a_prior, wa, s_prior, ws)
        step = 0.0
        for i in range(3, NPAR):
            step = max(step, abs(th2[i] - th[i]))
        da = abs(th2[2] - th[2])
        tol = STEP_TOL + STEP_REL * th[4]
        if cost2 <= cost:
            # gain ratio: actual / predicted decrease (Nielsen 1999 update of the damping), which
            # stops the zig-zag of Gauss-Newton steps in the curved valleys of misfit profiles
            rho = (cost - cost2) / pred if pred > 0.0 else 0.0
            # a decrease far below the noise (cost / n per sample) changes nothing statistically
            small = (cost - cost2) <= 1e-12 * cost + 1e-300 or (lam < 1e-2 and (cost - cost2) <= 1e-7 * cost)
            for i in range(NPAR):
                dlast[i] = th2[i] - th[i]
                th[i] = th2[i]
                gv[i] = gv2[i]
                dd[i] = dd2[i]
                for k in range(NPAR):
                    hm[i, k] = hm2[i, k]
            cost = cost2
            rss = rss2
            # in the long curved valleys of profiles that are not bars, Gauss-Newton steps keep
            # their direction and fall short: extend the step while that keeps lowering the cost
            if it >= EXTRAPOLATE_AFTER and rho > 0.75 and not small:
                for _ in range(3):
                    for i in range(NPAR):
                        th2[i] = th[i] + dlast[i]
                    _clamp(th2, tlo, thi, w_max, fit_s)
                    rss2 = _normal_eq(prof, var, inv, t0, h, nsamp, tc, th2, fit_s, hm2, gv2, buf)
                    for i in range(NPAR):
                        dd2[i] = hm2[i, i]
                    cost2 = rss2 + _add_priors(th2, hm2, gv2, a_prior, wa, s_prior, ws)
                    if not (cost2 < cost):
                        break
                    for i in range(NPAR):
                        dlast[i] = 2.0 * (th2[i] - th[i])
                        th[i] = th2[i]
                        gv[i] = gv2[i]
                        dd[i] = dd2[i]
                        for k in range(NPAR):
                            hm[i, k] = hm2[i, k]
                    cost = cost2
                    rss = rss2
            f = 2.0 * rho - 1.0
            lam = max(lam * max(1.0 / 3.0, 1.0 - f * f * f), 1e-9)
            nu = 2.0
            # a step whose predicted gain is a tiny fraction of one sample's residual variance
            # moves the parameters by a tiny fraction of their standard errors
            s2 = STAT_TOL * rss / max(nsamp - 6, 1)
            # small steps mean convergence only when they are not small because of the damping
            if lam <= 1.0 and ((step < tol and da < tol * 0.1 * (abs(th[2]) + 1e-12)) or small or pred < s2):
                converged = True
                break
            # the next Gauss-Newton step, if tiny, is taken without another pass over the samples
            if lam <= 1.0 and step < 0.1 and _solve(hm, dd, gv, lam, active, amat, d, idx):
                nxt = 0.0
                pnext = 0.0
                for i in range(NPAR):
                    pnext += d[i] * (gv[i] + lam * dd[i] * d[i])
                for i in range(3, NPAR):
                    nxt = max(nxt, abs(d[i]))
                ptol = PRED_TOL + STEP_REL * th[4]
                if (nxt < ptol and abs(d[2]) < ptol * 0.1 * (abs(th[2]) + 1e-12)) or pnext < s2:
                    for i in range(NPAR):
                        th[i] += d[i]
                    _clamp(th, tlo, thi, w_max, fit_s)
                    converged = True
                    break
        else:
            if step < 1e-6 and da < 1e-7 * (abs(th[2]) + 1e-12):
                converged = True
                break
            lam *= nu
            nu *= 2.0
            if lam > 1e10:
                break
    npar = 6 if fit_s else 5
    rms = math.sqrt(rss / (nsamp - npar)) if nsamp > npar else np.nan
    if not converged:
        return STATUS_NOT_CONVERGED, rms, 0.0, it
    w = th[4]
    amp = th[2] / w
    s = th[5]
    peak = amp * math.erf(w / (2.0 * _SQRT2 * s))
    if not (amp > 0.0 and w < w_max and peak > MIN_PEAK_SNR * rms):
        return STATUS_IMPLAUSIBLE, rms, 0.0, it
    if abs(th[3]) > 0.5 * w + 3.0:
        return STATUS_IMPLAUSIBLE, rms, 0.0, it
    if fit_s and (s <= 1.01 * S_MIN or s >= 0.99 * S_MAX):
        return STATUS_IMPLAUSIBLE, rms, 0.0, it

    # ---- normal refinement: the centroids of two side profiles give the tilt of the normal
    tilt = 0.0
    if refine_tilt and w >= TILT_MIN_WIDTH:
        dist = min(max(0.5 * w, 2.0), 8.0)
        ty = -nx
        tx = ny
        sp = ws_f[3][:nsamp]
        sv = ws_f[4][:nsamp]
        _sample_line(img, py + dist * ty, px + dist * tx, ny, nx, t0, h, sp, sv)
        cp = _centroid(sp, t0, h, nsamp, tc, th[0], th[1])
        _sample_line(img, py - dist * ty, px - dist * tx, ny, nx, t0, h, sp, sv)
        cm = _centroid(sp, t0, h, nsamp, tc, th[0], th[1])
        if math.isfinite(cp) and math.isfinite(cm):
            ang = math.atan((cp - cm) / (2.0 * dist))
            if abs(ang) < TILT_MAX_RAD:
                tilt = ang
                cs = math.cos(ang)
                th[4] *= cs
                th[5] *= cs
                th[2] *= cs
                th[1] /= cs
    return STATUS_OK, rms, tilt, it


@njit(cache=True, nogil=True)
def fit_profiles(
    img, points, normals, index, ini, h, s_guess, fit_s, s_prior, ws,
    a_prior, wa, start, w_max, max_iter, refine_tilt,
    theta, status, rms, tilt, niter,
):  # pragma: no cover - compiled
    """Fit the blurred-bar model to the profiles through ``points[index]``.

    Parameters
    ----------
    img : ndarray (M, N) float32 or float64, C-contiguous, M, N >= 2
        Contrast map, vessel positive; NaN pixels are treated as outside.
    points, normals : ndarray (K, 2) float64
        Centreline points (row, col) and unit normals (row, col).
    index : ndarray (P,) int64
        Points to fit (their :func:`initial_profiles` status must be OK); the outputs of the
        other points are left untouched.
    ini : ndarray (K, NINI) float64
        Initial estimates from :func:`initial_profiles` (same ``h``).
    h : float
        Sampling step along the normal (px).
    s_guess : float
        PSF sigma (px) for the window and the start; kept fixed when ``fit_s`` is False.
        The window is the half-height edges +- (``WIN_S`` s + ``WIN_PX``) px, within the limits.
    fit_s : bool
        Fit the PSF sigma per point.
    s_prior, ws : float
        Prior ``ws (s - s_prior)^2`` on the PSF sigma (``ws = 0``: none).
    a_prior, wa : ndarray (K,) float64
        Prior ``wa[k] (A - a_prior[k])^2`` on the amplitude ``A = area / w`` (``wa[k] = 0``: none).
    start : ndarray (K, 6) float64
        Starting parameters (b, g, area, c, w, s); a NaN first entry: start from ``ini``.
    w_max : float
        Largest width (px).
    max_iter : int
        Levenberg-Marquardt iterations.
    refine_tilt : bool
        For w >= ``TILT_MIN_WIDTH``, correct w, s and the area for a tilted normal, from the
        centres of two profiles offset along the vessel by +-clip(w/2, 2, 8) px
        (w *= cos(tilt)).
    theta : ndarray (K, 6) float64, out
        Fitted (b, g, area, c, w, s), ``area = A w``; ``c`` is the offset of the vessel centre
        from the point along the normal (px).
    status : ndarray (K,) int8, out
    rms : ndarray (K,) float64, out
        Residual root mean square of the fit (contrast units).
    tilt : ndarray (K,) float64, out
        Angle between the given normal and the vessel normal (radians, 0 when not refined).
    niter : ndarray (K,) int32, out
    """
    n = 2 * int(math.ceil((w_max + 2.0 * (WIN_S * S_MAX + WIN_PX)) / h)) + 8
    ws_f = np.empty((9, n), np.float64)
    ws_m = np.empty((2, NPAR, NPAR), np.float64)
    amat = np.empty((NPAR + 1, NPAR), np.float64)
    ws_v = np.empty((7, NPAR), np.float64)
    active = np.ones(NPAR, np.bool_)
    idx = np.empty(NPAR, np.int64)
    th = np.empty(NPAR, np.float64)
    for q in range(index.shape[0]):
        k = index[q]
        st, rr, tt, it = _fit_point(
            img, points[k, 0], points[k, 1], normals[k, 0], normals[k, 1], ini[k], ws_f, ws_m, amat, ws_v,
            active, idx, th, h, s_guess, fit_s, s_prior, ws, a_prior[k], wa[k], start[k], w_max, max_iter,
            refine_tilt,
        )
        for i in range(NPAR):
            theta[k, i] = th[i]
        status[k] = st
        rms[k] = rr
        tilt[k] = tt
        niter[k] = it


@njit(cache=True, nogil=True)
def neighbour_mean(points, values, source, radius):  # pragma: no cover - compiled
    """Mean of ``values[source]`` around every point, within about ``radius`` px.

    Sources are summed into square cells of ``radius / 2`` px; a point averages the 21 cells of
    the 5 x 5 block around its own cell without the corners (a disc of radius 1.25-2.5 cells).
    Cost O(K + cells).

    Parameters
    ----------
    points : ndarray (K, 2) float64
    values : ndarray (K,) float64
    source : ndarray (K,) bool
    radius : float (px), > 0

    Returns
    -------
    mean : ndarray (K,) float64
        NaN where no source is near.
    count : ndarray (K,) int64
    """
    k = points.shape[0]
    mean = np.full(k, np.nan)
    count = np.zeros(k, np.int64)
    cell = 0.5 * radius
    ymin = np.inf
    xmin = np.inf
    ymax = -np.inf
    xmax = -np.inf
    for i in range(k):
        if source[i] and math.isfinite(values[i]):
            y = points[i, 0]
            x = points[i, 1]
            ymin = min(ymin, y)
            ymax = max(ymax, y)
            xmin = min(xmin, x)
            xmax = max(xmax, x)
    if not (ymax >= ymin):
        return mean, count
    gy = int((ymax - ymin) / cell) + 1
    gx = int((xmax - xmin) / cell) + 1
    sums = np.zeros((gy, gx), np.float64)
    cnts = np.zeros((gy, gx), np.int64)
    for i in range(k):
        if source[i] and math.isfinite(values[i]):
            cy = int((points[i, 0] - ymin) / cell)
            cx = int((points[i, 1] - xmin) / cell)
            sums[cy, cx] += values[i]
            cnts[cy, cx] += 1
    for i in range(k):
        y = points[i, 0]
        x = points[i, 1]
        if not (math.isfinite(y) and math.isfinite(x)):
            continue
        fy = (y - ymin) / cell
        fx = (x - xmin) / cell
        if fy < -3.0 or fx < -3.0 or fy > gy + 2.0 or fx > gx + 2.0:
            continue
        cy = int(math.floor(fy))
        cx = int(math.floor(fx))
        acc = 0.0
        cnt = 0
        for dy in range(-2, 3):
            yy = cy + dy
            if yy < 0 or yy >= gy:
                continue
            for dx in range(-2, 3):
                xx = cx + dx
                if xx < 0 or xx >= gx or (abs(dy) == 2 and abs(dx) == 2):
                    continue
                acc += sums[yy, xx]
                cnt += cnts[yy, xx]
        if cnt > 0:
            mean[i] = acc / cnt
            count[i] = cnt
    return mean, count


# ---------------------------------------------------------------- pooled fits along the centreline
#
# A thin vessel (w < ~4 s) is nearly a Gaussian of variance s^2 + w^2 / 12: its width is in the
# small excess of the profile's spread over the PSF's, which one noisy profile cannot measure.
# The pixels of a stretch of the same vessel are pooled instead: the vessel centres found by the
# single-profile fits at the neighbouring centreline points are fitted by a quadratic curve in
# the frame of the point, every pixel of the strip +-L px along that curve is placed at its
# exact distance from it (the pixel grid falls at many sub-pixel offsets across a vessel at any
# angle but a few, as in the slanted-edge method of ISO 12233), the distances are binned
# (``POOL_BIN`` px) and the blurred-bar model is fitted to the bin means, weighted by their
# pixel counts. No interpolation blur enters (pixel values are used as they are; the pixel's own
# 1/12 px^2 is part of the effective PSF), the noise falls with the square root of the pixels
# pooled, and errors of the normals do not matter (the curve gives the direction).

#: Bin width (px) of the pooled profile across the vessel.
POOL_BIN = 0.25
#: Fewest neighbouring centres (the point included) for a pooled fit.
POOL_MIN_POINTS = 5
#: Largest distance (px) of a neighbour's centre from the local centre curve after the fit.
POOL_CURVE_TOL = 0.75
#: Smallest |cos| between a neighbour's normal and the point's normal (about 35 degrees).
POOL_MIN_COS = 0.82
#: Points of the same curve within this fraction of the stretch's half-length along it take a
#: pooled fit's result instead of being fitted themselves (their strips share most pixels).
POOL_SHARE = 0.4
_POOL_MAX_NB = 1024
_ONE_NODE = np.zeros(1)
_ONE_WEIGHT = np.ones(1)
#: Gauss-Legendre 3-point nodes (fractions of the box width) and weights.
_GL3_X = np.array([-0.5 * math.sqrt(0.6), 0.0, 0.5 * math.sqrt(0.6)])
_GL3_W = np.array([5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0])
_POOL_MAX_BINS = 4096


@njit(cache=True, nogil=True)
def _cells(cy, cx, cell):  # pragma: no cover - compiled
    """Counting sort of the finite centres into square cells of ``cell`` px.

    Returns (y0, x0, gy, gx, start, order): the points of cell (i, j) are
    ``order[start[i * gx + j] : start[i * gx + j + 1]]``.
    """
    k = cy.shape[0]
    y0 = np.inf
    x0 = np.inf
    y1 = -np.inf
    x1 = -np.inf
    for i in range(k):
        if math.isfinite(cy[i]) and math.isfinite(cx[i]):
            y0 = min(y0, cy[i])
            y1 = max(y1, cy[i])
            x0 = min(x0, cx[i])
            x1 = max(x1, cx[i])
    if not (y1 >= y0):
        return 0.0, 0.0, 0, 0, np.zeros(1, np.int64), np.zeros(0, np.int64)
    gy = int((y1 - y0) / cell) + 1
    gx = int((x1 - x0) / cell) + 1
    cnt = np.zeros(gy * gx + 1, np.int64)
    for i in range(k):
        if math.isfinite(cy[i]) and math.isfinite(cx[i]):
            cnt[int((cy[i] - y0) / cell) * gx + int((cx[i] - x0) / cell) + 1] += 1
    for c in range(1, gy * gx + 1):
        cnt[c] += cnt[c - 1]
    fill = cnt[:-1].copy()
    order = np.empty(cnt[gy * gx], np.int64)
    for i in range(k):
        if math.isfinite(cy[i]) and math.isfinite(cx[i]):
            c = int((cy[i] - y0) / cell) * gx + int((cx[i] - x0) / cell)
            order[fill[c]] = i
            fill[c] += 1
    return y0, x0, gy, gx, cnt, order


@njit(cache=True, nogil=True)
def _quad_fit(a, e, keep, n, deg, q):  # pragma: no cover - compiled
    """Least-squares polynomial e = q0 + q1 a + q2 a^2 (degree ``deg`` <= 2) over the kept
    points; False if singular."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    r0 = 0.0
    r1 = 0.0
    r2 = 0.0
    for i in range(n):
        if keep[i]:
            x = a[i]
            x2 = x * x
            s0 += 1.0
            s1 += x
            s2 += x2
            s3 += x2 * x
            s4 += x2 * x2
            r0 += e[i]
            r1 += x * e[i]
            r2 += x2 * e[i]
    q[0] = 0.0
    q[1] = 0.0
    q[2] = 0.0
    if deg == 0:
        if s0 < 1.0:
            return False
        q[0] = r0 / s0
        return True
    if deg == 1:
        det = s0 * s2 - s1 * s1
        if not (det > 1e-9 * (s0 * s2 + 1e-30)):
            return False
        q[0] = (r0 * s2 - r1 * s1) / det
        q[1] = (s0 * r1 - s1 * r0) / det
        return True
    # 3 x 3 by Cramer's rule
    det = s0 * (s2 * s4 - s3 * s3) - s1 * (s1 * s4 - s3 * s2) + s2 * (s1 * s3 - s2 * s2)
    if not (abs(det) > 1e-9 * (s0 * s2 * s4 + 1e-30)):
        return False
    q[0] = (r0 * (s2 * s4 - s3 * s3) - s1 * (r1 * s4 - s3 * r2) + s2 * (r1 * s3 - s2 * r2)) / det
    q[1] = (s0 * (r1 * s4 - r2 * s3) - r0 * (s1 * s4 - s3 * s2) + s2 * (s1 * r2 - r1 * s2)) / det
    q[2] = (s0 * (s2 * r2 - s3 * r1) - s1 * (s1 * r2 - s3 * r0) + r0 * (s1 * s3 - s2 * s2)) / det
    return True


@njit(cache=True, nogil=True, fastmath=_FAST)
def _normal_eq_w(t, p, wt, inv, n, th, hm, gv):  # pragma: no cover - compiled
    """Weighted residual sum of squares of the blurred bar (s fixed) at samples ``t[j]`` with
    values ``p[j]``, weights ``wt[j]`` and ``inv[j] = 1 / (sqrt2 s_j)``; fills J^T W J (hm,
    the s row and column zero) and J^T W r (gv)."""
    b = th[0]
    g = th[1]
    area = th[2]
    c = th[3]
    w = th[4]
    hw = 0.5 * w
    iw = 1.0 / w
    amp = area * iw
    ka = amp * _INV_SQRT_PI
    h00 = 0.0
    h01 = 0.0
    h02 = 0.0
    h03 = 0.0
    h04 = 0.0
    h11 = 0.0
    h12 = 0.0
    h13 = 0.0
    h14 = 0.0
    h22 = 0.0
    h23 = 0.0
    h24 = 0.0
    h33 = 0.0
    h34 = 0.0
    h44 = 0.0
    g0 = 0.0
    g1 = 0.0
    g2 = 0.0
    g3 = 0.0
    g4 = 0.0
    rss = 0.0
    for j in range(n):
        x = t[j]
        iv = inv[j]
        u1 = (x - c + hw) * iv
        u2 = (x - c - hw) * iv
        e1, q1 = _erf_gauss(u1)
        e2, q2 = _erf_gauss(u2)
        j2 = 0.5 * (e1 - e2) * iw
        r = p[j] - (b + g * x + area * j2)
        kc = ka * iv
        j3 = kc * (q2 - q1)
        j4 = 0.5 * kc * (q1 + q2) - amp * j2
        ww = wt[j]
        wr = ww * r
        rss += wr * r
        wx = ww * x
        w2 = ww * j2
        w3 = ww * j3
        h00 += ww
        h01 += wx
        h02 += w2
        h03 += w3
        h04 += ww * j4
        h11 += wx * x
        h12 += wx * j2
        h13 += wx * j3
        h14 += wx * j4
        h22 += w2 * j2
        h23 += w2 * j3
        h24 += w2 * j4
        h33 += w3 * j3
        h34 += w3 * j4
        h44 += ww * j4 * j4
        g0 += wr
        g1 += wr * x
        g2 += wr * j2
        g3 += wr * j3
        g4 += wr * j4
    hm[0, 0] = h00
    hm[0, 1] = h01
    hm[0, 2] = h02
    hm[0, 3] = h03
    hm[0, 4] = h04
    hm[0, 5] = 0.0
    hm[1, 1] = h11
    hm[1, 2] = h12
    hm[1, 3] = h13
    hm[1, 4] = h14
    hm[1, 5] = 0.0
    hm[2, 2] = h22
    hm[2, 3] = h23
    hm[2, 4] = h24
    hm[2, 5] = 0.0
    hm[3, 3] = h33
    hm[3, 4] = h34
    hm[3, 5] = 0.0
    hm[4, 4] = h44
    hm[4, 5] = 0.0
    hm[5, 5] = 0.0
    for i in range(NPAR):
        for q in range(i):
            hm[i, q] = hm[q, i]
    gv[0] = g0
    gv[1] = g1
    gv[2] = g2
    gv[3] = g3
    gv[4] = g4
    gv[5] = 0.0
    return rss


@njit(cache=True, nogil=True, fastmath=_FAST)
def _normal_eq_wb(t, p, wt, inv, n, th, dl, dw, hm, gv):  # pragma: no cover - compiled
    """:func:`_normal_eq_w` with the pixel footprint modelled exactly: the bar's edges are
    blurred by the Gaussian (``inv`` from the *optical* sigma) and by the projection of the
    square pixel on the normal (a trapezoid), represented by nodes ``dl`` with weights ``dw``
    (Gauss-Legendre, exact to the 5th moment). A Gaussian stand-in for the pixel box has the
    right variance but not the right kurtosis; for vessels narrower than ~1.5 s, whose blur and
    width trade off along a flat valley, that small misfit moves the blur estimate by ~2 %."""
    b = th[0]
    g = th[1]
    area = th[2]
    c = th[3]
    w = th[4]
    hw = 0.5 * w
    iw = 1.0 / w
    amp = area * iw
    ka = amp * _INV_SQRT_PI
    for i in range(NPAR):
        gv[i] = 0.0
        for q in range(NPAR):
            hm[i, q] = 0.0
    rss = 0.0
    jj = np.empty(5)
    for j in range(n):
        x = t[j]
        iv = inv[j]
        ee = 0.0
        qs = 0.0
        qd = 0.0
        for m in range(dl.shape[0]):
            e1, q1 = _erf_gauss((x - dl[m] - c + hw) * iv)
            e2, q2 = _erf_gauss((x - dl[m] - c - hw) * iv)
            ee += dw[m] * (e1 - e2)
            qs += dw[m] * (q1 + q2)
            qd += dw[m] * (q2 - q1)
        j2 = 0.5 * ee * iw
        r = p[j] - (b + g * x + area * j2)
        kc = ka * iv
        jj[0] = 1.0
        jj[1] = x
        jj[2] = j2
        jj[3] = kc * qd
        jj[4] = 0.5 * kc * qs - amp * j2
        ww = wt[j]
        rss += ww * r * r
        for i in range(5):
            wi = ww * jj[i]
            gv[i] += wi * r
            for q in range(i, 5):
                hm[i, q] += wi * jj[q]
    for i in range(NPAR):
        for q in range(i):
            hm[i, q] = hm[q, i]
    return rss


@njit(cache=True, nogil=True)
def _lm_w(t, p, wt, inv, n, th, dl, dw, tlo, thi, w_max, a_prior, wa, max_iter, hm, hm2, gv, gv2, d, th2, dd, amat, idx, active):  # pragma: no cover - compiled
    """Levenberg-Marquardt (Nielsen damping, as in :func:`_fit_point`) of the weighted
    blurred-bar fit, s fixed; with more than one node ``dl`` (offsets) / ``dw`` (weights) the
    pixel footprint is modelled exactly (:func:`_normal_eq_wb`). Returns (converged, weighted
    rss, iterations)."""
    box = dl.shape[0] > 1
    for i in range(NPAR):
        active[i] = i < 5
    if box:
        rss = _normal_eq_wb(t, p, wt, inv, n, th, dl, dw, hm, gv)
    else:
        rss = _normal_eq_w(t, p, wt, inv, n, th, hm, gv)
    cost = rss + _add_priors(th, hm, gv, a_prior, wa, 0.0, 0.0)
    for i in range(NPAR):
        dd[i] = max(hm[i, i], 1e-30)
    lam = 1e-3
    nu = 2.0
    it = 0
    wsum = 0.0
    for j in range(n):
        wsum += wt[j]
    while it < max_iter:
        it += 1
        stat = STAT_TOL * rss / max(wsum - 6.0, 1.0)
        active[4] = not (th[4] <= W_MIN and gv[4] < 0.0)
        if not _solve(hm, dd, gv, lam, active, amat, d, idx):
            lam *= nu
            nu *= 2.0
            if lam > 1e10:
                break
            continue
        pred = 0.0
        for i in range(NPAR):
            pred += d[i] * (gv[i] + lam * dd[i] * d[i])
        for i in range(NPAR):
            th2[i] = th[i] + d[i]
        _clamp(th2, tlo, thi, w_max, False)
        if box:
            rss2 = _normal_eq_wb(t, p, wt, inv, n, th2, dl, dw, hm2, gv2)
        else:
            rss2 = _normal_eq_w(t, p, wt, inv, n, th2, hm2, gv2)
        cost2 = rss2 + _add_priors(th2, hm2, gv2, a_prior, wa, 0.0, 0.0)
        step = max(abs(th2[3] - th[3]), abs(th2[4] - th[4]))
        da = abs(th2[2] - th[2])
        if cost2 <= cost:
            rho = (cost - cost2) / pred if pred > 0.0 else 0.0
            small = (cost - cost2) <= 1e-10 * cost + 1e-300
            for i in range(NPAR):
                th[i] = th2[i]
                gv[i] = gv2[i]
                dd[i] = max(dd[i], hm2[i, i])
                for q in range(NPAR):
                    hm[i, q] = hm2[i, q]
            cost = cost2
            rss = rss2
            f = 2.0 * rho - 1.0
            lam = max(lam * max(1.0 / 3.0, 1.0 - f * f * f), 1e-9)
            nu = 2.0
            # converged when the step is tiny or its predicted gain is a tiny fraction of one
            # pixel's residual variance (the weights are pixel counts)
            if lam <= 1.0 and ((step < STEP_TOL and da < STEP_TOL * 0.1 * (abs(th[2]) + 1e-12)) or small or pred < stat):
                return True, rss, it
        else:
            if step < 1e-7 and da < 1e-8 * (abs(th[2]) + 1e-12):
                return True, rss, it
            lam *= nu
            nu *= 2.0
            if lam > 1e10:
                break
    return False, rss, it


@njit(cache=True, nogil=True)
def _pool_bins(
    img, centres, normals, seg, k, lo, hi, half_len, y0, x0, gy, gx, cell, cstart, order, na, ne, keep, nidx, q, bins, smp,
):  # pragma: no cover - compiled
    """Neighbours, centre curve and binned pooled profile of point k over +-half_len px (see
    :func:`pooled_profiles`). Returns (status, samples, pixels, neighbours, within-bin sum of
    squares); ``smp`` rows receive the samples' positions, means, weights, (scratch) and
    position variances; ``na, ne, keep, nidx, q`` the neighbours and the curve."""
    m = img.shape[0]
    nn = img.shape[1]
    cy = centres[k, 0]
    cx = centres[k, 1]
    ny = normals[k, 0]
    nx = normals[k, 1]
    if not (math.isfinite(cy) and math.isfinite(cx) and math.isfinite(ny) and math.isfinite(nx)) or gy == 0:
        return STATUS_OUTSIDE, 0, 0, 0, 0.0
    if not (lo < 0.0 and hi > 0.0):
        return STATUS_TOO_FEW, 0, 0, 0, 0.0
    ty = -nx
    tx = ny
    # ---- neighbouring centres of the same vessel, in the frame (along, across) of the point
    ic = int((cy - y0) / cell)
    jc = int((cx - x0) / cell)
    rc = int(math.ceil(half_len / cell))
    cnt = 0
    sk = seg[k]
    for ci in range(max(ic - rc, 0), min(ic + rc, gy - 1) + 1):
        for cj in range(max(jc - rc, 0), min(jc + rc, gx - 1) + 1):
            c = ci * gx + cj
            for p in range(cstart[c], cstart[c + 1]):
                j = order[p]
                if sk >= 0 and seg[j] != sk:
                    continue
                ry = centres[j, 0] - cy
                rx = centres[j, 1] - cx
                a = ry * ty + rx * tx
                e = ry * ny + rx * nx
                if abs(a) > half_len or abs(e) > 1.5 + a * a / 50.0:
                    continue
                if abs(normals[j, 0] * ny + normals[j, 1] * nx) < POOL_MIN_COS:
                    continue
                if cnt < na.shape[0]:
                    nidx[cnt] = j
                    na[cnt] = a
                    ne[cnt] = e
                    keep[cnt] = True
                    cnt += 1
    if cnt < POOL_MIN_POINTS:
        return STATUS_TOO_FEW, 0, 0, cnt, 0.0
    # ---- centre curve: quadratic (line if the stretch is short), two rounds of rejection
    amin = np.inf
    amax = -np.inf
    for i in range(cnt):
        amin = min(amin, na[i])
        amax = max(amax, na[i])
    deg = 2 if amax - amin >= 6.0 else 1
    good = _quad_fit(na, ne, keep, cnt, deg, q)
    for _ in range(2):
        if not good:
            break
        nk = 0
        for i in range(cnt):
            r = ne[i] - (q[0] + na[i] * (q[1] + na[i] * q[2]))
            keep[i] = abs(r) <= POOL_CURVE_TOL
            if keep[i]:
                nk += 1
        if nk < POOL_MIN_POINTS:
            good = False
            break
        good = _quad_fit(na, ne, keep, cnt, deg, q)
    if not good:
        return STATUS_TOO_FEW, 0, 0, cnt, 0.0
    amin = np.inf
    amax = -np.inf
    nk = 0
    for i in range(cnt):
        if keep[i]:
            amin = min(amin, na[i])
            amax = max(amax, na[i])
            nk += 1
    if nk < POOL_MIN_POINTS or abs(q[1]) > 1.0:
        return STATUS_TOO_FEW, 0, 0, cnt, 0.0
    amin -= 0.5
    amax += 0.5
    # ---- pixels of the strip, binned by their distance from the curve
    hb = POOL_BIN
    bc = bins[0]
    bs = bins[1]
    bd = bins[2]
    bd2 = bins[3]
    bv2 = bins[4]
    nb = int(math.ceil((hi - lo) / hb)) + 1
    if nb > bc.shape[0]:
        nb = bc.shape[0]
    for j in range(nb):
        bc[j] = 0.0
        bs[j] = 0.0
        bd[j] = 0.0
        bd2[j] = 0.0
        bv2[j] = 0.0
    emin = np.inf
    emax = -np.inf
    for a in (amin, 0.5 * (amin + amax), amax):
        f = q[0] + a * (q[1] + a * q[2])
        emin = min(emin, f + lo)
        emax = max(emax, f + hi)
    ymin = np.inf
    ymax = -np.inf
    xmin = np.inf
    xmax = -np.inf
    for a in (amin, amax):
        for e in (emin, emax):
            yy = cy + a * ty + e * ny
            xx = cx + a * tx + e * nx
            ymin = min(ymin, yy)
            ymax = max(ymax, yy)
            xmin = min(xmin, xx)
            xmax = max(xmax, xx)
    r0 = max(int(math.floor(ymin)), 0)
    r1 = min(int(math.ceil(ymax)), m - 1)
    c0 = max(int(math.floor(xmin)), 0)
    c1 = min(int(math.ceil(xmax)), nn - 1)
    npx = 0
    for r in range(r0, r1 + 1):
        row = img[r]
        ry = r - cy
        # columns of this row inside the rotated rectangle amin <= a <= amax, emin <= e <= emax
        xlo = float(c0)
        xhi = float(c1)
        for ga, gb, glo, ghi in ((ty, tx, amin, amax), (ny, nx, emin, emax)):
            off = ry * ga
            if abs(gb) > 1e-9:
                u = (glo - off) / gb + cx
                v = (ghi - off) / gb + cx
                if u > v:
                    u, v = v, u
                xlo = max(xlo, u)
                xhi = min(xhi, v)
            elif off < glo or off > ghi:
                xhi = xlo - 1.0
        if xhi < xlo:
            continue
        for cc in range(int(math.ceil(xlo)), int(math.floor(xhi)) + 1):
            rx = cc - cx
            a = ry * ty + rx * tx
            if a < amin or a > amax:
                continue
            sl = q[1] + 2.0 * q[2] * a
            dist = (ry * ny + rx * nx - (q[0] + a * (q[1] + a * q[2]))) / math.sqrt(1.0 + sl * sl)
            if dist < lo or dist >= hi:
                continue
            v = row[cc]
            if not math.isfinite(v):
                continue
            jb = int((dist - lo) / hb)
            if jb >= nb:
                jb = nb - 1
            bc[jb] += 1.0
            bs[jb] += v
            bd[jb] += dist
            bd2[jb] += dist * dist
            bv2[jb] += v * v
            npx += 1
    # ---- bins -> weighted samples
    tt = smp[0]
    pp = smp[1]
    ww = smp[2]
    vv = smp[4]
    nsamp = 0
    within = 0.0
    for j in range(nb):
        cj = bc[j]
        if cj > 0.0:
            mt = bd[j] / cj
            mp = bs[j] / cj
            tt[nsamp] = mt
            pp[nsamp] = mp
            ww[nsamp] = cj
            vj = max(bd2[j] / cj - mt * mt, 0.0)
            vv[nsamp] = vj
            within += bv2[j] - cj * mp * mp
            nsamp += 1
    if nsamp < 12 or npx < 30:
        return STATUS_TOO_FEW, nsamp, npx, cnt, within
    return STATUS_OK, nsamp, npx, cnt, within


@njit(cache=True, nogil=True)
def _pool_fit(smp, nsamp, npx, within, lo, hi, w_start, a_start, s, dl, dw, w_max, a_prior, wa, max_iter, th, wk, mk, amat, idx, active):  # pragma: no cover - compiled
    """Fit of the blurred bar to a binned pooled profile (from :func:`_pool_bins`); ``s`` is
    the Gaussian part of the blur, ``dl`` / ``dw`` the nodes of the pixel footprint (one node at
    0: the footprint is in ``s``). Returns (status, rms per pixel, standard error of w); ``th``
    receives theta."""
    tt = smp[0]
    pp = smp[1]
    ww = smp[2]
    inv = smp[3]
    vv = smp[4]
    s2 = s * s
    for j in range(nsamp):
        inv[j] = 1.0 / (_SQRT2 * math.sqrt(s2 + vv[j]))
    # ---- start: background from the ends, area and width from the single fit
    nend = max(2, nsamp // 8)
    bl = 0.0
    tl = 0.0
    wl = 0.0
    br = 0.0
    tr = 0.0
    wr = 0.0
    for j in range(nend):
        bl += pp[j] * ww[j]
        tl += tt[j] * ww[j]
        wl += ww[j]
        jj = nsamp - 1 - j
        br += pp[jj] * ww[jj]
        tr += tt[jj] * ww[jj]
        wr += ww[jj]
    bl /= wl
    tl /= wl
    br /= wr
    tr /= wr
    g0 = (br - bl) / (tr - tl) if tr > tl else 0.0
    th[1] = g0
    th[0] = bl - g0 * tl
    w0 = w_start
    if not (w0 > W_MIN and w0 < w_max):
        # from the moments of the profile above the background: var = s^2 + w^2 / 12
        m0 = 0.0
        m1 = 0.0
        m2 = 0.0
        for j in range(nsamp):
            v = (pp[j] - th[0] - g0 * tt[j]) * ww[j]
            if v > 0.0:
                m0 += v
                m1 += v * tt[j]
                m2 += v * tt[j] * tt[j]
        w0 = 1.0
        if m0 > 0.0:
            var = m2 / m0 - (m1 / m0) ** 2 - s2
            w0 = min(max(math.sqrt(max(12.0 * var, 0.0)), 1.0), 0.5 * (hi - lo))
    ar = a_start
    if not (ar > 0.0):
        acc = 0.0
        tot = 0.0
        for j in range(nsamp):
            acc += (pp[j] - th[0] - g0 * tt[j]) * ww[j]
            tot += ww[j]
        # mean excess over the window x its length
        ar = acc / tot * (hi - lo) if tot > 0.0 else 0.0
        if not (ar > 0.0):
            ar = 1e-3
    if wa > 0.0 and a_prior > 0.0:
        w0 = max(ar / a_prior, W_MIN)
        ar = a_prior * w0
    th[2] = ar
    th[3] = 0.0
    th[4] = min(max(w0, W_MIN), w_max)
    th[5] = s
    hm = mk[0]
    hm2 = mk[1]
    gv = wk[0]
    gv2 = wk[1]
    d = wk[2]
    th2 = wk[3]
    dd = wk[4]
    conv, rss, it = _lm_w(tt, pp, ww, inv, nsamp, th, dl, dw, lo, hi, w_max, a_prior, wa, max_iter,
                          hm, hm2, gv, gv2, d, th2, dd, amat, idx, active)
    dof = npx - 5
    rr = math.sqrt(max(rss + within, 0.0) / dof) if dof > 0 else np.nan
    if not conv:
        return STATUS_NOT_CONVERGED, rr, np.nan
    w = th[4]
    amp = th[2] / w
    peak = amp * math.erf(w / (2.0 * _SQRT2 * s))
    # the pooled profile's noise: the pixel noise over the square root of the pixels per bin
    se = rr / math.sqrt(max(npx / nsamp, 1.0))
    if not (amp > 0.0 and w < w_max and peak > MIN_PEAK_SNR * se) or abs(th[3]) > 0.5 * w + 2.0:
        return STATUS_IMPLAUSIBLE, rr, np.nan
    # standard error of w: rms^2 [(J^T W J)^-1]_ww at the optimum (the prior included)
    e4 = wk[5]
    for i in range(NPAR):
        e4[i] = 0.0
        dd[i] = 0.0
    e4[4] = 1.0
    active[4] = True
    se_w = np.nan
    if th[4] > W_MIN and _solve_damped(hm, dd, e4, 0.0, active, amat, d, idx):
        se_w = rr * math.sqrt(max(d[4], 0.0))
    return STATUS_OK, rr, se_w


@njit(cache=True, nogil=True)
def _pool_point(
    img, centres, normals, seg, k, lo, hi, w_start, a_start, s, half_len, w_max, a_prior, wa, max_iter,
    y0, x0, gy, gx, cell, cstart, order, na, ne, keep, nidx, q, bins, smp, th, wk, mk, amat, idx, active,
):  # pragma: no cover - compiled
    """One pooled fit at point k over +-half_len px: (status, rms, pixels, neighbours, se of w)."""
    st, nsamp, npx, cnt, within = _pool_bins(
        img, centres, normals, seg, k, lo, hi, half_len, y0, x0, gy, gx, cell, cstart, order, na, ne, keep, nidx, q, bins, smp,
    )
    if st != STATUS_OK:
        return st, np.nan, npx, cnt, np.nan
    st, rr, se_w = _pool_fit(smp, nsamp, npx, within, lo, hi, w_start, a_start, s, _ONE_NODE, _ONE_WEIGHT, w_max, a_prior,
                             wa, max_iter, th, wk, mk, amat, idx, active)
    return st, rr, npx, cnt, se_w


@njit(cache=True, nogil=True)
def pooled_profiles(
    img, centres, normals, seg, index, lo_d, hi_d, start, s, half_len, max_half_len, target_se, share,
    w_max, a_prior, wa, max_iter, theta, status, rms, npool, se_w,
):  # pragma: no cover - compiled
    """Fit the blurred-bar model to the pixels of a stretch of vessel around each point.

    Parameters
    ----------
    img : ndarray (M, N) float32 or float64, C-contiguous
        Contrast map (vessel positive); NaN pixels are left out.
    centres : ndarray (K, 2) float64
        Vessel centre (row, col) at every centreline point, e.g. point + c n from the single
        profile fits; NaN where there is none (such points are neither pooled nor fitted).
    normals : ndarray (K, 2) float64
        Unit normals (row, col); they give the point's frame and exclude crossing vessels
        (neighbours whose normal is more than ~35 degrees off).
    seg : ndarray (K,) int64
        Vessel (chain) label of each point; neighbours must share it. -1: any point.
    index : ndarray (P,) int64
        Points to fit; the other rows of the outputs are left untouched.
    lo_d, hi_d : ndarray (K,) float64
        Fitting window across the vessel, relative to its centre (px; lo_d < 0 < hi_d).
    start : ndarray (K, 6) float64
        Start: its area (column 2) and width (column 4) where finite and positive; the
        background comes from the ends of the pooled profile.
    s : float
        Effective PSF sigma (px), fixed (a shared blur is measured with :func:`pooled_rss`:
        with ``s`` free, thin pooled profiles have a second minimum at w ~ 0, s large).
    half_len, max_half_len : float
        Neighbours within ``half_len`` px along the vessel are pooled; while the standard
        error of w exceeds ``target_se`` px the stretch is lengthened 1.5 x, up to
        ``max_half_len``.
    target_se : float
    share : float
        After a successful fit at point k, the not yet processed points of ``index`` whose
        centres lie on k's centre curve within ``share`` x the stretch's half-length along it
        take k's result (theta with
        ``c`` from their own centre, status, rms, npool, se_w) and are not fitted
        themselves; 0: every point is fitted.
    w_max : float
    a_prior, wa : ndarray (K,) float64
        Amplitude prior as in :func:`fit_profiles` (in units of the per-pixel noise).
    max_iter : int
    theta : ndarray (K, 6) float64, out
        Fitted (b, g, area, c, w, s); ``c`` is the offset of the vessel centre from the
        point's own centre along the normal (px), b and g refer to the centre curve.
    status : ndarray (K,) int8, out
        ``STATUS_OK``, ``STATUS_TOO_FEW`` (fewer than ``POOL_MIN_POINTS`` neighbouring centres or
        too few pixels), ``STATUS_NOT_CONVERGED``, ``STATUS_IMPLAUSIBLE`` or ``STATUS_OUTSIDE``.
    rms : ndarray (K,) float64, out
        Residual RMS per pixel of the pooled fit.
    npool : ndarray (K,) int64, out
        Pixels pooled.
    se_w : ndarray (K,) float64, out
        Standard error of w (px) from the fit's covariance.
    """
    kk = centres.shape[0]
    cell = max(half_len, 2.0)
    y0, x0, gy, gx, cstart, order = _cells(centres[:, 0], centres[:, 1], cell)
    na = np.empty(_POOL_MAX_NB)
    ne = np.empty(_POOL_MAX_NB)
    keep = np.empty(_POOL_MAX_NB, np.bool_)
    nidx = np.empty(_POOL_MAX_NB, np.int64)
    q = np.zeros(3)
    bins = np.zeros((5, _POOL_MAX_BINS))
    smp = np.zeros((5, _POOL_MAX_BINS))
    th = np.zeros(NPAR)
    wk = np.zeros((6, NPAR))
    mk = np.zeros((2, NPAR, NPAR))
    amat = np.empty((NPAR + 1, NPAR))
    idx = np.empty(NPAR, np.int64)
    active = np.ones(NPAR, np.bool_)
    todo = np.zeros(kk, np.bool_)
    for qq in range(index.shape[0]):
        todo[index[qq]] = True
    for qq in range(index.shape[0]):
        k = index[qq]
        if not todo[k]:
            continue  # took the result of a neighbour's pooled fit
        todo[k] = False
        ln = half_len
        last_ok = -1.0
        w_st = start[k, 4]
        a_st = start[k, 2]
        while True:
            st, rr, npx, cnt, sew = _pool_point(
                img, centres, normals, seg, k, lo_d[k], hi_d[k], w_st, a_st, s, ln, w_max,
                a_prior[k], wa[k], max_iter, y0, x0, gy, gx, cell, cstart, order, na, ne, keep, nidx, q, bins, smp,
                th, wk, mk, amat, idx, active,
            )
            if st != STATUS_OK:
                if last_ok > 0.0:  # the longer stretch failed (a bend, a branch): the last one that did not
                    st, rr, npx, cnt, sew = _pool_point(
                        img, centres, normals, seg, k, lo_d[k], hi_d[k], start[k, 4], start[k, 2], s, last_ok,
                        w_max, a_prior[k], wa[k], max_iter, y0, x0, gy, gx, cell, cstart, order, na, ne, keep, nidx,
                        q, bins, smp, th, wk, mk, amat, idx, active,
                    )
                break
            if not (sew > target_se) or ln >= max_half_len:
                break
            last_ok = ln
            w_st = th[4]  # the longer stretch starts from this fit
            a_st = th[2]
            ln = min(1.5 * ln, max_half_len)
        for i in range(NPAR):
            theta[k, i] = th[i] if st == STATUS_OK else np.nan
        status[k] = st
        rms[k] = rr
        npool[k] = npx
        se_w[k] = sew
        if st != STATUS_OK:
            continue
        theta[k, 3] = th[3] + q[0]  # from the point's own centre, as for the shared results
        if share > 0.0:
            reach = share * ln
            for i in range(cnt):
                j = nidx[i]
                if keep[i] and todo[j] and abs(na[i]) <= reach:
                    todo[j] = False
                    r = ne[i] - (q[0] + na[i] * (q[1] + na[i] * q[2]))
                    for p in range(NPAR):
                        theta[j, p] = th[p]
                    theta[j, 3] = th[3] - r
                    status[j] = STATUS_OK
                    rms[j] = rr
                    npool[j] = npx
                    se_w[j] = sew


@njit(cache=True, nogil=True)
def pooled_rss(img, centres, normals, seg, index, lo_d, hi_d, start, s_values, half_len, w_max, max_iter, rss, npool):  # pragma: no cover - compiled
    """Residual sum of squares (over the pooled pixels) of the pooled fit of every point of
    ``index`` with the PSF sigma fixed at each of ``s_values``: the profile likelihood of a
    blur shared by the vessels. Arguments as in :func:`pooled_profiles`. Here the square
    pixel's footprint is modelled exactly (``s_values`` still include its 1/12 px^2): on thin
    vessels the blur estimate depends on the shape of the blur, not only its variance.

    Returns nothing; ``rss`` (P, S) float64 receives NaN where the pooled profile could not be
    built (a fit stopped after ``max_iter`` iterations counts with its last RSS), ``npool`` (P,) int64 the pixels pooled (the same pixels
    for every s).
    """
    cell = max(half_len, 2.0)
    y0, x0, gy, gx, cstart, order = _cells(centres[:, 0], centres[:, 1], cell)
    na = np.empty(_POOL_MAX_NB)
    ne = np.empty(_POOL_MAX_NB)
    keep = np.empty(_POOL_MAX_NB, np.bool_)
    nidx = np.empty(_POOL_MAX_NB, np.int64)
    q = np.zeros(3)
    bins = np.zeros((5, _POOL_MAX_BINS))
    smp = np.zeros((5, _POOL_MAX_BINS))
    th = np.zeros(NPAR)
    wk = np.zeros((6, NPAR))
    mk = np.zeros((2, NPAR, NPAR))
    amat = np.empty((NPAR + 1, NPAR))
    idx = np.empty(NPAR, np.int64)
    active = np.ones(NPAR, np.bool_)
    no = np.zeros(1)
    dl = np.zeros(9)
    dw = np.zeros(9)
    for qq in range(index.shape[0]):
        k = index[qq]
        st, nsamp, npx, cnt, within = _pool_bins(
            img, centres, normals, seg, k, lo_d[k], hi_d[k], half_len, y0, x0, gy, gx, cell, cstart, order, na, ne, keep,
            nidx, q, bins, smp,
        )
        npool[qq] = npx
        for i in range(s_values.shape[0]):
            rss[qq, i] = np.nan
        if st != STATUS_OK:
            continue
        # the square pixel projected on the curve's normal: box(|n_y|) * box(|n_x|), 9 nodes
        ny = normals[k, 0] + q[1] * normals[k, 1]
        nx = normals[k, 1] - q[1] * normals[k, 0]
        nn = math.sqrt(ny * ny + nx * nx)
        for u in range(3):
            for v in range(3):
                dl[3 * u + v] = _GL3_X[u] * abs(ny) / nn + _GL3_X[v] * abs(nx) / nn
                dw[3 * u + v] = _GL3_W[u] * _GL3_W[v]
        for i in range(s_values.shape[0]):
            # s_values include the pixel's 1/12 px^2 (as everywhere); the footprint is modelled
            s_opt = math.sqrt(max(s_values[i] * s_values[i] - 1.0 / 12.0, 0.0025))
            st2, rr, sew = _pool_fit(smp, nsamp, npx, within, lo_d[k], hi_d[k], start[k, 4], start[k, 2], s_opt, dl, dw,
                                     w_max, no[0], no[0], max_iter, th, wk, mk, amat, idx, active)
            # a fit stopped after max_iter still gives an (upper) bound of the minimum
            if math.isfinite(rr):
                rss[qq, i] = rr * rr * max(npx - 5, 1)


@njit(cache=True, nogil=True)
def points_near(points, index, radius):  # pragma: no cover - compiled
    """Mask (K,) of the points within ``radius`` px (Euclidean) of any of ``points[index]``."""
    k = points.shape[0]
    cy = np.full(k, np.nan)
    cx = np.full(k, np.nan)
    for q in range(index.shape[0]):
        cy[index[q]] = points[index[q], 0]
        cx[index[q]] = points[index[q], 1]
    cell = max(radius, 1.0)
    y0, x0, gy, gx, cstart, order = _cells(cy, cx, cell)
    out = np.zeros(k, np.bool_)
    r2 = radius * radius
    for i in range(k):
        y = points[i, 0]
        x = points[i, 1]
        if gy == 0 or not (math.isfinite(y) and math.isfinite(x)):
            continue
        fy = (y - y0) / cell
        fx = (x - x0) / cell
        if fy < -1.0 or fx < -1.0 or fy >= gy + 1.0 or fx >= gx + 1.0:
            continue
        ic = int(math.floor(fy))
        jc = int(math.floor(fx))
        for ci in range(max(ic - 1, 0), min(ic + 1, gy - 1) + 1):
            for cj in range(max(jc - 1, 0), min(jc + 1, gx - 1) + 1):
                c = ci * gx + cj
                for p in range(cstart[c], cstart[c + 1]):
                    j = order[p]
                    if (points[j, 0] - y) ** 2 + (points[j, 1] - x) ** 2 <= r2:
                        out[i] = True
                        break
                if out[i]:
                    break
            if out[i]:
                break
    return out

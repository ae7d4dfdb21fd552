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
def initial_profiles(img, points, normals, index, half_len, h, s_guess, ini, status):  # pragma: no cover - compiled
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
        ``INNER_HALF_LEN`` px are sampled first, the rest only when the edges or the
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
    """
    n = 2 * int(math.ceil(half_len / h)) + 1
    inner = int(math.ceil(INNER_HALF_LEN / h))
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

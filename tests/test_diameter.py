"""Tests of veinscope.diameter and its kernels (veinscope._kernels.profile).

Kernels are compared with slow numpy/scipy references (map_coordinates sampling,
scipy.optimize.least_squares fits); the public function with bars of known width.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.optimize import least_squares
from scipy.special import erf

from veinscope import diameter as D
from veinscope._kernels import profile as K

SQ2 = math.sqrt(2.0)


# ---------------------------------------------------------------- helpers


def bar_image(shape, centre_yx, angle_deg, width, psf, amp=1.0, background=0.0, length=None, sub=4):
    """Straight bar of visible width ``width`` through ``centre_yx`` (direction ``angle_deg``
    from the column axis), blurred by a Gaussian ``psf`` analytically (erf edges) and
    integrated over each pixel by ``sub`` x ``sub`` supersampling. Returns (image, normal_yx)."""
    m, n = shape
    a = math.radians(angle_deg)
    tangent = np.array([math.sin(a), math.cos(a)])  # (row, col)
    normal = np.array([tangent[1], -tangent[0]])
    off = (np.arange(sub) + 0.5) / sub - 0.5
    yy, xx = np.mgrid[0:m, 0:n].astype(float)
    acc = np.zeros((m, n))
    for dy in off:
        for dx in off:
            ry = yy + dy - centre_yx[0]
            rx = xx + dx - centre_yx[1]
            t = ry * normal[0] + rx * normal[1]
            prof = 0.5 * (erf((t + width / 2) / (SQ2 * psf)) - erf((t - width / 2) / (SQ2 * psf)))
            if length is not None:
                u = ry * tangent[0] + rx * tangent[1]
                prof = prof * (np.abs(u) <= length / 2)
            acc += prof
    return background + amp * acc / sub**2, normal


def bar_points(centre_yx, angle_deg, half_len, step=1.0):
    a = math.radians(angle_deg)
    tangent = np.array([math.sin(a), math.cos(a)])
    u = np.arange(-half_len, half_len + 1e-9, step)
    return np.asarray(centre_yx, float)[None, :] + u[:, None] * tangent[None, :]


def ref_sample(img, points, normals, t0, h, n):
    """Bilinear profiles with scipy (map_coordinates order 1), NaN outside [0, M-1] x [0, N-1]."""
    t = t0 + h * np.arange(n)
    y = points[:, 0:1] + t[None, :] * normals[:, 0:1]
    x = points[:, 1:2] + t[None, :] * normals[:, 1:2]
    vals = ndi.map_coordinates(np.asarray(img, float), [y.ravel(), x.ravel()], order=1, mode="nearest")
    vals = vals.reshape(y.shape)
    inside = (y >= 0) & (y <= img.shape[0] - 1) & (x >= 0) & (x <= img.shape[1] - 1)
    fy = y - np.clip(np.floor(y), 0, img.shape[0] - 2)
    fx = x - np.clip(np.floor(x), 0, img.shape[1] - 2)
    var = normals[:, 0:1] ** 2 * fy * (1 - fy) + normals[:, 1:2] ** 2 * fx * (1 - fx)
    return np.where(inside, vals, np.nan), np.where(inside, var, 0.0)


def ref_model(theta, t, var, s, tc):
    b, g, amp, c, w = theta
    sj = np.sqrt(s * s + var)
    return b + g * (t - tc) + 0.5 * amp * (erf((t - c + w / 2) / (SQ2 * sj)) - erf((t - c - w / 2) / (SQ2 * sj)))


def ref_fit(img, point, normal, ini, s, h=1.0, a_prior=0.0, wa=0.0):
    """The kernel's fit redone with scipy: same window and samples, least_squares (TRF), with
    the amplitude prior as one more residual sqrt(wa) (A - a_prior)."""
    el, er = ini[K.INI_EL], ini[K.INI_ER]
    margin = K.WIN_S * s + K.WIN_PX
    tlo = max(math.floor((el - margin) / h) * h, ini[K.INI_LIM_LO])
    thi = min(math.ceil((er + margin) / h) * h, ini[K.INI_LIM_HI])
    n = int((thi - tlo) / h + 0.5) + 1
    t = tlo + h * np.arange(n)
    p, var = ref_sample(img, point[None], normal[None], tlo, h, n)
    p, var = p[0], var[0]
    tc = 0.5 * (el + er)
    x0 = [np.min(p), 0.0, np.max(p) - np.min(p), tc, max(er - el, 0.5)]
    if wa > 0:
        x0[2] = a_prior

    def resid(th):
        r = ref_model(th, t, var, s, tc) - p
        return np.append(r, math.sqrt(wa) * (th[2] - a_prior)) if wa > 0 else r

    res = least_squares(
        resid, x0,
        bounds=([-np.inf, -np.inf, -np.inf, tlo, K.W_MIN], [np.inf, np.inf, np.inf, thi, np.inf]),
        xtol=1e-12, ftol=1e-12, gtol=1e-12, method="trf",
    )
    return res.x


def run_fit(img, pts, nrm, s, *, a_prior=None, wa=None, fit_s=False, refine_tilt=False):
    k = pts.shape[0]
    img = np.ascontiguousarray(img, dtype=np.float64)
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    nrm = np.ascontiguousarray(nrm, dtype=np.float64)
    index = np.arange(k, dtype=np.int64)
    ini = np.full((k, K.NINI), np.nan)
    st0 = np.full(k, K.STATUS_NOT_RUN, np.int8)
    K.initial_profiles(img, pts, nrm, index, 30.0, 1.0, s, ini, st0, K.INNER_HALF_LEN)
    theta = np.full((k, K.NPAR), np.nan)
    status = np.full(k, K.STATUS_NOT_RUN, np.int8)
    rms = np.full(k, np.nan)
    tilt = np.zeros(k)
    niter = np.zeros(k, np.int32)
    a_prior = np.zeros(k) if a_prior is None else a_prior
    wa = np.zeros(k) if wa is None else wa
    start = np.full((k, K.NPAR), np.nan)
    ok0 = index[st0 == K.STATUS_OK]
    K.fit_profiles(img, pts, nrm, ok0, ini, 1.0, s, fit_s, 0.0, 0.0, a_prior, wa, start, 40.0, 40, refine_tilt,
                   theta, status, rms, tilt, niter)
    return ini, st0, theta, status


# ---------------------------------------------------------------- kernels vs references


def test_erf_table_matches_scipy():
    u = np.linspace(-8, 8, 200001)
    e, q = K.erf_gauss(u)
    assert np.abs(e - erf(u)).max() < 5e-6
    assert np.abs(q - np.exp(-u * u)).max() < 5e-6


def test_sample_profiles_matches_map_coordinates(rng):
    img = rng.normal(size=(23, 31))
    k = 200
    pts = np.column_stack([rng.uniform(-3, 26, k), rng.uniform(-3, 34, k)])
    ang = rng.uniform(0, 2 * np.pi, k)
    nrm = np.column_stack([np.sin(ang), np.cos(ang)])
    nrm[:5] = [[1, 0], [0, 1], [-1, 0], [0, -1], [math.sqrt(0.5), math.sqrt(0.5)]]
    pts[:3] = [[0, 0], [22, 30], [22, 0]]  # corners: samples exactly on the border
    got, var = K.sample_profiles(img, pts, nrm, -7.5, 0.5, 31)
    want, want_var = ref_sample(img, pts, nrm, -7.5, 0.5, 31)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert ok.sum() > 1000 and (~ok).sum() > 100
    np.testing.assert_allclose(got[ok], want[ok], rtol=0, atol=1e-12)
    np.testing.assert_allclose(var, want_var, rtol=0, atol=1e-12)
    # float32 images give the same samples
    got32, _ = K.sample_profiles(img.astype(np.float32), pts, nrm, -7.5, 0.5, 31)
    np.testing.assert_allclose(got32[ok], want[ok], atol=1e-5)


def test_sample_profiles_nan_pixels_are_outside():
    img = np.ones((10, 10))
    img[5, 5] = np.nan
    got, _ = K.sample_profiles(img, np.array([[5.0, 2.0]]), np.array([[0.0, 1.0]]), 0.0, 1.0, 6)
    assert np.isfinite(got[0, :2]).all() and np.isnan(got[0, 3])


@pytest.mark.parametrize("seed", range(6))
def test_fit_matches_least_squares_reference(seed):
    rng = np.random.default_rng(seed)
    w = rng.uniform(1.5, 14.0)
    s = rng.uniform(0.5, 1.8)
    ang = rng.uniform(0, 180)
    img, normal = bar_image((64, 64), (32.3, 31.7), ang, w, s, amp=rng.uniform(0.5, 2), background=0.2)
    img = img + 0.02 * (np.arange(64)[None, :] / 64) + rng.normal(0, 0.03, img.shape)
    pts = bar_points((32.3, 31.7), ang, 8.0, 2.0) + rng.uniform(-0.8, 0.8, (9, 2))
    nrm = np.repeat(normal[None], len(pts), 0)
    ini, st0, theta, status = run_fit(img, pts, nrm, s)
    assert (status == K.STATUS_OK).all()
    for i in range(len(pts)):
        ref = ref_fit(img, pts[i], nrm[i], ini[i], s)
        amp = theta[i, 2] / theta[i, 4]
        # the kernel's erf table is exact to 4e-6 and it stops when a step is < 2e-3 px
        assert theta[i, 4] == pytest.approx(ref[4], abs=2e-3 + 2e-4 * ref[4])
        assert theta[i, 3] == pytest.approx(ref[3], abs=2e-3)
        assert amp == pytest.approx(ref[2], rel=2e-3, abs=1e-3)
        assert theta[i, 0] == pytest.approx(ref[0], abs=2e-3)


@pytest.mark.parametrize(("wa", "a_prior"), [(0.5, 0.8), (1e6, 1.0)])
def test_fit_with_amplitude_prior_matches_least_squares_reference(wa, a_prior):
    rng = np.random.default_rng(11)
    s = math.sqrt(1.5**2 + 1 / 12)
    img, normal = bar_image((48, 48), (24, 24), 30.0, 1.8, 1.5)
    img = img + rng.normal(0, 0.05, img.shape)
    pts = bar_points((24, 24), 30.0, 8.0, 2.0)
    nrm = np.repeat(normal[None], len(pts), 0)
    k = len(pts)
    ini, _, theta, status = run_fit(img, pts, nrm, s, a_prior=np.full(k, a_prior), wa=np.full(k, wa))
    assert (status == K.STATUS_OK).all()
    for i in range(k):
        ref = ref_fit(img, pts[i], nrm[i], ini[i], s, a_prior=a_prior, wa=wa)
        assert theta[i, 4] == pytest.approx(ref[4], abs=3e-3)
        assert theta[i, 2] / theta[i, 4] == pytest.approx(ref[2], rel=3e-3)


def test_fit_with_free_psf_recovers_it():
    img, normal = bar_image((64, 64), (32, 32), 30.0, 10.0, 1.3)
    pts = bar_points((32, 32), 30.0, 6.0)
    ini, st0, theta, status = run_fit(img, pts, np.repeat(normal[None], len(pts), 0), 1.0, fit_s=True)
    assert (status == K.STATUS_OK).all()
    # the pixel box adds 1/12 px^2 to the blur
    np.testing.assert_allclose(theta[:, 5], math.sqrt(1.3**2 + 1 / 12), atol=0.02)
    np.testing.assert_allclose(theta[:, 4], 10.0, atol=0.02)


def test_amplitude_prior_pulls_thin_width_to_area_over_prior():
    """With a strong prior the thin width is the measured area divided by the prior amplitude."""
    rng = np.random.default_rng(3)
    img, normal = bar_image((48, 48), (24, 24), 0.0, 1.5, 1.5)
    img = img + rng.normal(0, 0.05, img.shape)
    pts = bar_points((24, 24), 0.0, 10.0)
    nrm = np.repeat(normal[None], len(pts), 0)
    k = len(pts)
    _, _, th_free, st_free = run_fit(img, pts, nrm, math.sqrt(1.5**2 + 1 / 12))
    _, _, th_prior, st_prior = run_fit(img, pts, nrm, math.sqrt(1.5**2 + 1 / 12),
                                       a_prior=np.full(k, 1.0), wa=np.full(k, 1e6))
    assert (st_prior == K.STATUS_OK).all()
    amp = th_prior[:, 2] / th_prior[:, 4]
    np.testing.assert_allclose(amp, 1.0, atol=1e-3)
    np.testing.assert_allclose(th_prior[:, 4], th_prior[:, 2], rtol=1e-3)  # w = area / 1
    assert np.abs(np.median(th_prior[:, 4]) - 1.5) < 0.1
    assert np.std(th_prior[:, 4]) < np.std(th_free[:, 4])


def neighbour_mean_reference(points, values, source, radius):
    cell = radius / 2
    src = np.flatnonzero(source & np.isfinite(values))
    out = np.full(len(points), np.nan)
    cnt = np.zeros(len(points), int)
    if src.size == 0:
        return out, cnt
    y0, x0 = points[src, 0].min(), points[src, 1].min()
    gy = int((points[src, 0].max() - y0) / cell) + 1
    gx = int((points[src, 1].max() - x0) / cell) + 1
    scy = ((points[src, 0] - y0) / cell).astype(int)
    scx = ((points[src, 1] - x0) / cell).astype(int)
    for i, (y, x) in enumerate(points):
        cy, cx = math.floor((y - y0) / cell), math.floor((x - x0) / cell)
        dy, dx = scy - cy, scx - cx
        sel = (np.abs(dy) <= 2) & (np.abs(dx) <= 2) & ~((np.abs(dy) == 2) & (np.abs(dx) == 2))
        sel &= (scy >= 0) & (scy < gy) & (scx >= 0) & (scx < gx)
        if sel.any():
            out[i] = values[src[sel]].mean()
            cnt[i] = sel.sum()
    return out, cnt


def test_neighbour_mean_matches_reference(rng):
    pts = rng.uniform(0, 200, (400, 2))
    vals = rng.uniform(0.5, 2, 400)
    src = rng.random(400) < 0.3
    got, cnt = K.neighbour_mean(pts, vals, src, 24.0)
    want, wcnt = neighbour_mean_reference(pts, vals, src, 24.0)
    np.testing.assert_array_equal(cnt, wcnt)
    np.testing.assert_allclose(got, want, equal_nan=True)
    # everything within radius / 2 is always counted, nothing beyond 2.5 radius (sqrt2 * 1.5 cells)
    d = np.hypot(*(pts[:, None, :] - pts[None, src, :]).transpose(2, 0, 1))
    assert ((d <= 12.0).sum(1) <= cnt).all()
    assert ((d <= 24.0 * 1.25 * math.sqrt(2) + 1e-9).sum(1) >= cnt).all()
    none, c0 = K.neighbour_mean(pts, vals, np.zeros(400, bool), 24.0)
    assert np.isnan(none).all() and (c0 == 0).all()


# ---------------------------------------------------------------- pooled fits (kernels vs references)


def ref_pooled_fit(img, centres, k, normal, lo, hi, s, half_len, *, footprint=False):
    """The pooled fit redone with numpy/scipy: the neighbouring centres (within ``half_len``
    along the point's tangent) fitted by a quadratic, every pixel of the strip placed at its
    distance from that curve, and least_squares on the raw pixels (no binning). Returns
    (w, c from the point's own centre, area, pixels)."""
    ny, nx = normal
    ty, tx = -nx, ny
    rel = centres - centres[k]
    a = rel[:, 0] * ty + rel[:, 1] * tx
    e = rel[:, 0] * ny + rel[:, 1] * nx
    near = np.abs(a) <= half_len
    q2, q1, q0 = np.polyfit(a[near], e[near], 2)
    amin, amax = a[near].min() - 0.5, a[near].max() + 0.5
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(float)
    ry, rx = yy - centres[k, 0], xx - centres[k, 1]
    pa = ry * ty + rx * tx
    pe = ry * ny + rx * nx
    dist = (pe - (q0 + pa * (q1 + pa * q2))) / np.sqrt(1 + (q1 + 2 * q2 * pa) ** 2)
    sel = (pa >= amin) & (pa <= amax) & (dist >= lo) & (dist < hi)
    d, v = dist[sel], np.asarray(img, float)[sel]
    if footprint:
        # the square pixel projected on the curve's normal (a trapezoid) by Gauss-Legendre nodes,
        # the Gaussian without the pixel's 1/12 px^2
        nn = np.array([ny + q1 * nx, nx - q1 * ny]) / math.hypot(ny + q1 * nx, nx - q1 * ny)
        x3, w3 = np.polynomial.legendre.leggauss(3)
        nodes = [(0.5 * (xa * abs(nn[0]) + xb * abs(nn[1])), 0.25 * wa * wb) for xa, wa in zip(x3, w3) for xb, wb in zip(x3, w3)]
        so = math.sqrt(s * s - 1 / 12)
    else:
        nodes, so = [(0.0, 1.0)], s

    def resid(th):
        b, g, area, c, w = th
        bar = sum(wt * (erf((d - dl - c + w / 2) / (SQ2 * so)) - erf((d - dl - c - w / 2) / (SQ2 * so))) for dl, wt in nodes)
        return b + g * d + 0.5 * area / w * bar - v

    res = least_squares(resid, [0.0, 0.0, 2.0, 0.0, 2.0], bounds=([-np.inf] * 4 + [K.W_MIN], [np.inf] * 5),
                        xtol=1e-12, ftol=1e-12, gtol=1e-12)
    b, g, area, c, w = res.x
    if footprint:
        return float(np.sum(res.fun**2)), int(sel.sum())
    return w, c + q0, area, int(sel.sum())


def run_pooled(img, centres, normals, index, lo, hi, s, half_len, *, seg=None, share=0.0,
               max_half_len=None, target_se=np.inf, start=None):
    k = centres.shape[0]
    out = dict(theta=np.full((k, K.NPAR), np.nan), status=np.full(k, K.STATUS_NOT_RUN, np.int8), rms=np.full(k, np.nan),
               npool=np.zeros(k, np.int64), se_w=np.full(k, np.nan))
    K.pooled_profiles(
        np.ascontiguousarray(img, dtype=np.float64), np.ascontiguousarray(centres, dtype=np.float64),
        np.ascontiguousarray(normals, dtype=np.float64), np.full(k, -1, np.int64) if seg is None else seg,
        np.asarray(index, np.int64), np.full(k, float(lo)), np.full(k, float(hi)),
        np.full((k, K.NPAR), np.nan) if start is None else start, float(s), float(half_len),
        float(half_len if max_half_len is None else max_half_len), float(target_se), float(share), 40.0,
        np.zeros(k), np.zeros(k), 30, out["theta"], out["status"], out["rms"], out["npool"], out["se_w"],
    )  # fmt: skip
    return out


@pytest.mark.parametrize(("angle", "width", "psf"), [(0.0, 2.0, 1.5), (23.0, 3.0, 1.0), (61.0, 1.5, 0.8), (135.0, 6.0, 1.2)])
def test_pooled_fit_matches_least_squares_on_the_pixels(angle, width, psf):
    rng = np.random.default_rng(int(angle) + 5)
    s = math.sqrt(psf**2 + 1 / 12)
    img, normal = bar_image((70, 70), (35.2, 34.7), angle, width, psf, amp=0.8, background=0.1)
    img = img + rng.normal(0, 0.04, img.shape)
    centres = bar_points((35.2, 34.7), angle, 16.0)
    normals = np.repeat(normal[None], len(centres), 0)
    targets = [8, 16, 24]
    out = run_pooled(img, centres, normals, targets, -9.0, 9.0, s, 8.0)
    for k in targets:
        assert out["status"][k] == K.STATUS_OK
        w, c, area, npx = ref_pooled_fit(img, centres, k, normal, -9.0, 9.0, s, 8.0)
        assert out["npool"][k] == npx
        # binning (0.25 px, each bin's own spread of positions kept as blur) against raw pixels
        assert out["theta"][k, 4] == pytest.approx(w, abs=0.02)
        assert out["theta"][k, 3] == pytest.approx(c, abs=0.01)
        assert out["theta"][k, 2] == pytest.approx(area, rel=0.01)
        assert out["se_w"][k] > 0


def test_pooled_fit_follows_a_curved_vessel_and_ignores_bad_normals():
    """Arc of radius 40 px, normals off by up to 15 degrees: the centre curve and the pixel
    distances do not depend on them."""
    s = math.sqrt(1.0 + 1 / 12)
    yy, xx = np.mgrid[0:90, 0:90].astype(float)
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    img = np.zeros((90, 90))
    for dy in sub:
        for dx in sub:
            r = np.hypot(yy + dy - 85.0, xx + dx - 45.0) - 40.0
            img += 0.5 * (erf((r + 1.5) / (SQ2 * 1.0)) - erf((r - 1.5) / (SQ2 * 1.0)))
    img /= 16
    phi = np.linspace(-0.5, 0.5, 41)
    centres = np.column_stack([85.0 - 40.0 * np.cos(phi), 45.0 + 40.0 * np.sin(phi)])
    rng = np.random.default_rng(1)
    tilt = np.radians(rng.uniform(-15, 15, len(phi)))
    normals = np.column_stack([-np.cos(phi + tilt), np.sin(phi + tilt)])
    out = run_pooled(img, centres, normals, [20], -8.0, 8.0, s, 10.0)
    assert out["status"][20] == K.STATUS_OK
    assert out["theta"][20, 4] == pytest.approx(3.0, abs=0.03)


def test_pooled_fit_needs_neighbours_of_the_same_vessel():
    img, normal = bar_image((60, 60), (30, 30), 0.0, 3.0, 1.0)
    centres = bar_points((30, 30), 0.0, 10.0)
    k = len(centres)
    normals = np.repeat(normal[None], k, 0)
    # every point its own segment: no neighbours, no pooled fit
    out = run_pooled(img, centres, normals, [10], -7.0, 7.0, 1.04, 8.0, seg=np.arange(k, dtype=np.int64))
    assert out["status"][10] == K.STATUS_TOO_FEW
    # neighbours whose normals cross the point's (another vessel) are not pooled
    crossing = normals.copy()
    crossing[np.arange(k) != 10] = [normal[1], -normal[0]]
    out = run_pooled(img, centres, crossing, [10], -7.0, 7.0, 1.04, 8.0)
    assert out["status"][10] == K.STATUS_TOO_FEW
    # a point without a centre is not fitted
    c2 = centres.copy()
    c2[10] = np.nan
    out = run_pooled(img, c2, normals, [10], -7.0, 7.0, 1.04, 8.0)
    assert out["status"][10] == K.STATUS_OUTSIDE


def test_pooled_results_are_shared_along_the_curve():
    img, normal = bar_image((60, 80), (30, 40), 0.0, 3.0, 1.0)
    centres = bar_points((30, 40), 0.0, 25.0)
    normals = np.repeat(normal[None], len(centres), 0)
    idx = np.arange(len(centres))
    alone = run_pooled(img, centres, normals, idx, -7.0, 7.0, 1.04, 10.0)
    shared = run_pooled(img, centres, normals, idx, -7.0, 7.0, 1.04, 10.0, share=K.POOL_SHARE)
    assert (alone["status"] == K.STATUS_OK).all() and (shared["status"] == K.STATUS_OK).all()
    # fewer distinct fits, the same widths (a noise-free straight bar)
    assert len(np.unique(shared["theta"][:, 4])) < len(idx) / 3
    np.testing.assert_allclose(shared["theta"][:, 4], 3.0, atol=0.01)
    np.testing.assert_allclose(shared["theta"][:, 3], alone["theta"][:, 3], atol=0.01)


def test_pooled_fit_lengthens_the_stretch_until_the_width_is_precise():
    rng = np.random.default_rng(4)
    s = math.sqrt(1.5**2 + 1 / 12)
    img, normal = bar_image((80, 100), (40, 50), 0.0, 2.0, 1.5)
    img = img + rng.normal(0, 0.05, img.shape)
    centres = bar_points((40, 50), 0.0, 35.0)
    normals = np.repeat(normal[None], len(centres), 0)
    short = run_pooled(img, centres, normals, [35], -10.0, 10.0, s, 6.0)
    longer = run_pooled(img, centres, normals, [35], -10.0, 10.0, s, 6.0, max_half_len=24.0, target_se=0.05)
    assert short["se_w"][35] > 0.05
    assert longer["npool"][35] > 2 * short["npool"][35]
    assert longer["se_w"][35] < 0.75 * short["se_w"][35]


@pytest.mark.parametrize(("width", "noise"), [(4.0, 0.01), (2.0, 0.0)])
def test_pooled_rss_finds_the_true_blur(width, noise):
    """The profile likelihood of the blur over one pooled stretch: its minimum is the true
    effective PSF, also for a 2 px vessel at PSF 1.5 px, where a Gaussian stand-in for the
    square pixel (right variance, wrong kurtosis) would move it by ~2 %."""
    rng = np.random.default_rng(9)
    img, normal = bar_image((80, 80), (40, 40), 75.0, width, 1.5, sub=8)
    img = img + rng.normal(0, noise, img.shape) if noise else img
    s_true = math.sqrt(1.5**2 + (1 - 1 / 64) / 12)
    centres = bar_points((40, 40), 75.0, 25.0)
    k = len(centres)
    normals = np.repeat(normal[None], k, 0)
    sv = np.linspace(1.40, 1.65, 51)
    rss = np.full((1, sv.size), np.nan)
    npix = np.zeros(1, np.int64)
    K.pooled_rss(img, centres, normals, np.full(k, -1, np.int64), np.array([25]), np.full(k, -12.0), np.full(k, 12.0),
                 np.full((k, K.NPAR), np.nan), sv, 10.0, 40.0, 60, rss, npix)
    assert np.isfinite(rss).all()
    assert abs(sv[np.argmin(rss[0])] - s_true) <= (0.006 if not noise else 0.05)
    # the same pixels as the pooled fit, and nearly the same fit at the true blur
    fixed = run_pooled(img, centres, normals, [25], -12.0, 12.0, s_true, 10.0)
    assert npix[0] == fixed["npool"][25]
    i = int(np.argmin(np.abs(sv - s_true)))
    assert rss[0, i] <= fixed["rms"][25] ** 2 * (npix[0] - 5) * 1.05 + 1e-12


def test_pooled_rss_matches_least_squares_with_the_pixel_footprint():
    rng = np.random.default_rng(12)
    img, normal = bar_image((70, 70), (35.2, 34.7), 32.0, 2.5, 1.2, amp=0.8, background=0.1, sub=8)
    img = img + rng.normal(0, 0.02, img.shape)
    centres = bar_points((35.2, 34.7), 32.0, 16.0)
    k = len(centres)
    normals = np.repeat(normal[None], k, 0)
    sv = np.array([1.0, 1.1, 1.2, 1.3, 1.5])
    rss = np.full((1, sv.size), np.nan)
    npix = np.zeros(1, np.int64)
    K.pooled_rss(img, centres, normals, np.full(k, -1, np.int64), np.array([16]), np.full(k, -9.0), np.full(k, 9.0),
                 np.full((k, K.NPAR), np.nan), sv, 8.0, 40.0, 60, rss, npix)
    want = []
    for sg in sv:
        r, npx = ref_pooled_fit(img, centres, 16, normal, -9.0, 9.0, sg, 8.0, footprint=True)
        assert npix[0] == npx
        want.append(r)
    want = np.array(want)
    # the binned RSS also holds the signal's variation within each 0.25 px bin (an offset that
    # hardly depends on s); the profile likelihood uses differences, which agree
    assert np.all((rss[0] >= want) & (rss[0] <= 1.1 * want))
    np.testing.assert_allclose(rss[0] - rss[0].min(), want - want.min(), rtol=0.15, atol=3e-4)
    assert np.argmin(rss[0]) == np.argmin(want)


def test_points_near_matches_brute_force(rng):
    pts = rng.uniform(0, 100, (300, 2))
    pts[5] = np.nan
    index = np.array([3, 50, 51, 200])
    got = K.points_near(pts, index, 9.0)
    d = np.hypot(*(pts[:, None, :] - pts[None, index, :]).transpose(2, 0, 1))
    with np.errstate(invalid="ignore"):
        want = (d <= 9.0).any(axis=1)
    np.testing.assert_array_equal(got, want)
    assert not K.points_near(pts, np.zeros(0, np.int64), 9.0).any()


# ---------------------------------------------------------------- public function: accuracy


@pytest.mark.parametrize(("psf", "angle"), [(0.6, 17.0), (1.2, 118.0)])
def test_bars_of_known_width_with_blur_and_noise(psf, angle):
    """Parallel bars of 2-12 px (noise sd = contrast / 20, normals off by up to 10 degrees,
    points off the centre by up to 0.7 px); the PSF is estimated from the wide bars and the
    thin ones borrow their amplitude."""
    rng = np.random.default_rng(int(psf * 10))
    centre = np.array([110.0, 110.0])
    a = math.radians(angle)
    normal = np.array([math.cos(a), -math.sin(a)])
    img = np.zeros((220, 220))
    pts, nrm, truth = [], [], []
    for w, off in ((12.0, -62.0), (2.0, -30.0), (8.0, -2.0), (3.0, 26.0), (4.0, 50.0)):
        c = centre + off * normal
        b, nb = bar_image(img.shape, c, angle, w, psf, length=150)
        img += b
        p = bar_points(c, angle, 75 - 2 * w - 4)
        pts.append(p + rng.uniform(-0.7, 0.7, p.shape))
        tilt = np.radians(rng.uniform(-10, 10, len(p)))
        nrm.append(np.column_stack([nb[0] * np.cos(tilt) - nb[1] * np.sin(tilt), nb[0] * np.sin(tilt) + nb[1] * np.cos(tilt)]))
        truth.append(np.full(len(p), w))
    img = img + rng.normal(0, 1 / 20, img.shape)
    pts, nrm, truth = np.concatenate(pts), np.concatenate(nrm), np.concatenate(truth)
    est = D.profile_diameters(img, pts, nrm, max_width_px=20)
    assert est.params["psf_estimated"]
    assert est.psf_sigma_px == pytest.approx(math.sqrt(psf**2 + 1 / 12), abs=0.08)
    assert est.ok.mean() > 0.97
    for w in np.unique(truth):
        sel = (truth == w) & est.ok
        err = est.width_px[sel] - w
        assert np.median(np.abs(err)) <= 0.25, (w, np.median(np.abs(err)))
        assert abs(np.median(err)) <= 0.12, (w, np.median(err))
        assert np.median(est.amplitude[sel]) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("angle", [0.0, 33.0, 90.0, 135.0])
@pytest.mark.parametrize(("width", "psf"), [(3.0, 0.7), (6.0, 1.0), (10.0, 1.5), (25.0, 1.0)])
def test_single_bar_with_known_psf(angle, width, psf):
    """One bar, PSF given, noise sd = contrast / 20: the per-point error is within bounds."""
    rng = np.random.default_rng(int(angle + 10 * width))
    img, normal = bar_image((100, 100), (50.3, 49.6), angle, width, psf)
    img = img + rng.normal(0, 1 / 20, img.shape)
    pts = bar_points((50.3, 49.6), angle, 18.0) + rng.uniform(-0.5, 0.5, (37, 2))
    est = D.profile_diameters(img, pts, np.repeat(normal[None], len(pts), 0),
                              psf_sigma_px=math.sqrt(psf**2 + 1 / 16 / 12 * 15), max_width_px=30)
    assert est.ok.all()
    err = est.width_px - width
    assert np.median(np.abs(err)) <= 0.25
    assert abs(np.median(err)) <= 0.15  # the median of 37 points has a sd of about 0.05


def test_offset_and_tilted_normals_on_a_wide_bar():
    img, normal = bar_image((120, 120), (60.4, 59.7), 25.0, 14.0, 1.0)
    base = bar_points((60.4, 59.7), 25.0, 20.0, 2.0)
    shift = 1.3
    pts = base + shift * normal[None, :]
    tilt = np.radians(10.0)
    tn = np.array([normal[0] * np.cos(tilt) - normal[1] * np.sin(tilt), normal[0] * np.sin(tilt) + normal[1] * np.cos(tilt)])
    nrm = np.repeat(tn[None], len(pts), 0)
    est = D.profile_diameters(img, pts, nrm, psf_sigma_px=math.sqrt(1 + 1 / 12))
    assert est.ok.all()
    # without the tilt correction the width would be 14 / cos 10 deg = 14.22
    np.testing.assert_allclose(est.width_px, 14.0, atol=0.03)
    # the centre lies along the (tilted) normal at -shift / cos(tilt)
    np.testing.assert_allclose(est.offset_px, -shift / np.cos(tilt), atol=0.03)
    centre = pts + est.offset_px[:, None] * nrm
    d = (centre - np.array([60.4, 59.7])) @ normal
    np.testing.assert_allclose(d, 0.0, atol=0.03)


def test_exact_bar_without_noise_is_exact():
    img, normal = bar_image((64, 64), (32, 32), 0.0, 6.0, 1.0, sub=1)
    est = D.profile_diameters(img, [[31.0, 32.0]], [normal], psf_sigma_px=1.0)  # 1 px above the centre
    assert est.ok[0]
    assert est.width_px[0] == pytest.approx(6.0, abs=0.01)
    assert est.offset_px[0] == pytest.approx(1.0, abs=0.01)
    assert est.amplitude[0] == pytest.approx(1.0, abs=0.005)


def test_linear_background_is_ignored():
    img, normal = bar_image((80, 80), (40, 40), 60.0, 5.0, 0.8, amp=0.5)
    yy, xx = np.mgrid[0:80, 0:80]
    img = img + 0.3 + 0.01 * yy - 0.004 * xx
    pts = bar_points((40, 40), 60.0, 10.0)
    est = D.profile_diameters(img, pts, np.repeat(normal[None], len(pts), 0), psf_sigma_px=math.sqrt(0.64 + 1 / 12))
    assert est.ok.all()
    np.testing.assert_allclose(est.width_px, 5.0, atol=0.02)
    np.testing.assert_allclose(est.amplitude, 0.5, atol=0.01)


def test_thin_vessel_prior_only_near_wide_ones():
    rng = np.random.default_rng(7)
    wide, n1 = bar_image((160, 160), (50, 80), 0.0, 10.0, 1.4)
    thin, n2 = bar_image((160, 160), (80, 80), 0.0, 2.0, 1.4)
    img = wide + thin + rng.normal(0, 0.05, wide.shape)
    p_thin = bar_points((80, 80), 0.0, 50.0)
    pts = np.concatenate([bar_points((50, 80), 0.0, 50.0), p_thin])
    nrm = np.concatenate([np.repeat(n1[None], len(p_thin), 0), np.repeat(n2[None], len(p_thin), 0)])
    thin_sel = np.arange(len(pts)) >= len(p_thin)
    # single profiles only (no pooling): the amplitude prior carries the thin widths
    with_prior = D.profile_diameters(img, pts, nrm, pool_half_len_px=0)
    without = D.profile_diameters(img, pts, nrm, prior_radius_px=0, pool_half_len_px=0)
    assert with_prior.prior_driven[thin_sel].mean() > 0.95
    assert not with_prior.prior_driven[~thin_sel].any()
    assert not without.prior_driven.any() and not without.pooled.any()
    err_p = np.abs(with_prior.width_px[thin_sel] - 2.0)
    err_0 = np.abs(without.width_px[thin_sel & without.ok] - 2.0)
    assert np.median(err_p) < 0.25
    assert np.median(err_p) < 0.6 * np.median(err_0)
    # pooled along the vessel (the default), the thin vessel is measured on its own pixels
    pooled = D.profile_diameters(img, pts, nrm)
    assert pooled.pooled[thin_sel].mean() > 0.95 and not pooled.pooled[~thin_sel].any()
    assert not pooled.prior_driven[thin_sel & pooled.pooled].any()
    err_pool = np.abs(pooled.width_px[thin_sel] - 2.0)
    assert np.median(err_pool) < 0.6 * np.median(err_0)
    assert np.median(err_pool) < 0.2


@pytest.mark.parametrize(("width", "psf"), [(2.0, 1.5), (2.0, 1.0), (3.0, 1.5)])
def test_isolated_thin_vessels_with_known_psf_are_pooled(width, psf):
    """No wider vessel nearby, PSF given, noise sd = contrast / 20: single profiles cannot
    tell the width (``pool_half_len_px=0``), the pooled stretches can."""
    rng = np.random.default_rng(int(10 * width + psf))
    s = math.sqrt(psf**2 + 1 / 16 / 12 * 15)
    img = np.zeros((200, 200))
    pts, nrm = [], []
    for off, ang in ((50.0, 20.0), (100.0, 20.0), (150.0, 20.0)):
        c = (off, 100.0)
        b, nb = bar_image(img.shape, c, ang, width, psf, length=170)
        img += b
        p = bar_points(c, ang, 60.0)
        pts.append(p + rng.uniform(-0.5, 0.5, p.shape))
        nrm.append(np.repeat(nb[None], len(p), 0))
    img = img + rng.normal(0, 1 / 20, img.shape)
    pts, nrm = np.concatenate(pts), np.concatenate(nrm)
    single = D.profile_diameters(img, pts, nrm, psf_sigma_px=s, pool_half_len_px=0)
    pooled = D.profile_diameters(img, pts, nrm, psf_sigma_px=s)
    assert pooled.ok.mean() > 0.97 and pooled.pooled.mean() > 0.95
    assert pooled.params["pooled_fits"] > 0
    err_1 = np.abs(single.width_px[single.ok] - width)
    err_p = pooled.width_px[pooled.ok] - width
    assert np.median(np.abs(err_p)) <= 0.25
    assert abs(np.median(err_p)) <= 0.12
    assert np.median(np.abs(err_p)) < 0.7 * np.median(err_1)


def test_psf_from_thin_vessels_by_pooled_profile_likelihood():
    """Vessels of about 2-3 PSF sigma only: single profiles cannot separate the blur from the
    width, the shared blur of the pooled stretches can."""
    rng = np.random.default_rng(5)
    psf = 1.0
    s_true = math.sqrt(psf**2 + 1 / 16 / 12 * 15)
    img = np.zeros((220, 220))
    pts, nrm = [], []
    for off, ang in ((40.0, 75.0), (90.0, 75.0), (140.0, 75.0), (190.0, 75.0)):
        b, nb = bar_image(img.shape, (110.0, off), ang, 3.0, psf, length=190)
        img += b
        pts.append(bar_points((110.0, off), ang, 80.0))
        nrm.append(np.repeat(nb[None], len(pts[-1]), 0))
    img = img + rng.normal(0, 1 / 20, img.shape)
    pts, nrm = np.concatenate(pts), np.concatenate(nrm)
    est = D.profile_diameters(img, pts, nrm)
    assert est.params["psf_estimated"] and est.params["psf_source"] == "pooled profiles"
    assert est.psf_sigma_px == pytest.approx(s_true, abs=0.06)
    assert 0 < est.params["psf_pooled_se_px"] < 0.06
    assert np.median(np.abs(est.width_px[est.ok] - 3.0)) < 0.2
    # without pooling the old estimator needs profiles >= 4 s wide and falls back to the default
    old = D.profile_diameters(img, pts, nrm, pool_half_len_px=0)
    assert old.psf_sigma_px != est.psf_sigma_px


# ---------------------------------------------------------------- edge cases


def test_constant_image_gives_no_estimate():
    img = np.full((50, 50), 0.7)
    pts = np.array([[25.0, 25.0], [10.0, 40.0]])
    est = D.profile_diameters(img, pts, [[0.0, 1.0], [1.0, 0.0]])
    assert not est.ok.any()
    assert np.isnan(est.width_px).all() and np.isnan(est.amplitude).all() and np.isnan(est.offset_px).all()
    assert est.width_px.dtype == np.float32 and est.ok.dtype == bool


def test_points_near_and_outside_the_border():
    img, normal = bar_image((60, 60), (30, 30), 90.0, 4.0, 1.0)  # vertical bar: normal along columns
    pts = np.array([[0.0, 30.0], [59.0, 30.0], [30.0, 30.0], [-5.0, 30.0], [30.0, 70.0], [0.0, 0.0], [np.nan, 3.0]])
    nrm = np.repeat(normal[None], len(pts), 0)
    est = D.profile_diameters(img, pts, nrm, psf_sigma_px=1.04)
    assert est.ok[:3].all()
    np.testing.assert_allclose(est.width_px[:3], 4.0, atol=0.05)
    assert not est.ok[3:].any()
    # a profile cut by the border before the background is reached has no estimate
    img2, normal2 = bar_image((60, 60), (30, 2.0), 90.0, 6.0, 1.0)
    est2 = D.profile_diameters(img2, [[30.0, 2.0]], [normal2], psf_sigma_px=1.0)
    assert not est2.ok[0] and np.isnan(est2.width_px[0])


def test_zero_and_nonfinite_normals_have_no_estimate():
    img, normal = bar_image((40, 40), (20, 20), 0.0, 3.0, 1.0)
    est = D.profile_diameters(img, [[20.0, 20.0]] * 3, [[0.0, 0.0], [np.inf, 0.0], [2.0, 0.0]], psf_sigma_px=1.04)
    assert est.ok.tolist() == [False, False, True]
    assert est.width_px[2] == pytest.approx(3.0, abs=0.05)  # normals are normalised


def test_no_points():
    est = D.profile_diameters(np.zeros((10, 10)), np.zeros((0, 2)), np.zeros((0, 2)))
    assert len(est) == 0
    for a in (est.width_px, est.amplitude, est.offset_px):
        assert a.shape == (0,) and a.dtype == np.float32
    assert est.ok.shape == (0,) and est.ok.dtype == bool


def test_psf_of_noise_free_thin_vessels_is_exact():
    """2 px vessels at PSF 1.5 px (w / s = 1.3), no noise: blur and width trade off along a flat
    valley, and only an exact model of the blur's shape and a well-bracketed minimum give the
    true blur (a Gaussian stand-in for the pixel, or a parabola through a coarse grid, moved it
    by 2 %, i.e. 2 px widths by +0.24 px)."""
    img = np.zeros((220, 220))
    pts, nrm = [], []
    for off in (40.0, 90.0, 140.0, 190.0):
        b, nb = bar_image(img.shape, (110.0, off), 75.0, 2.0, 1.5, length=190, sub=8)
        img += b
        pts.append(bar_points((110.0, off), 75.0, 80.0))
        nrm.append(np.repeat(nb[None], len(pts[-1]), 0))
    est = D.profile_diameters(img, np.concatenate(pts), np.concatenate(nrm))
    assert est.params["psf_source"] == "pooled profiles"
    assert est.psf_sigma_px == pytest.approx(math.sqrt(1.5**2 + (1 - 1 / 64) / 12), abs=0.005)
    assert np.median(est.width_px[est.ok]) == pytest.approx(2.0, abs=0.03)


def test_thin_only_image_falls_back_to_default_psf(caplog):
    """A noisy vessel far thinner than the blur: neither single profiles nor the pooled
    stretches can tell the blur from the width."""
    rng = np.random.default_rng(2)
    img, normal = bar_image((60, 60), (30, 30), 0.0, 1.0, 2.0)
    img = img + rng.normal(0, 0.05, img.shape)
    pts = bar_points((30, 30), 0.0, 15.0)
    with caplog.at_level(logging.WARNING, logger="veinscope.diameter"):
        est = D.profile_diameters(img, pts, np.repeat(normal[None], len(pts), 0))
    assert est.params["psf_estimated"] is False
    assert est.params["psf_pooled_se_px"] is None or est.params["psf_pooled_se_px"] > D._PSF_MAX_SE_PX
    assert est.psf_sigma_px == D.DEFAULT_PSF_SIGMA_PX
    assert "blur" in caplog.text


def test_input_not_modified_and_dtypes_accepted():
    img, normal = bar_image((50, 50), (25, 25), 45.0, 5.0, 1.0)
    pts = bar_points((25, 25), 45.0, 8.0)
    nrm = np.repeat(normal[None], len(pts), 0)
    results = []
    for im in (img, img.astype(np.float32), np.asfortranarray(img), (img * 200).astype(np.uint8), img[:, ::-1][:, ::-1]):
        im_copy, p_copy, n_copy = im.copy(), pts.copy(), nrm.copy()
        est = D.profile_diameters(im, pts, nrm.astype(np.float32), psf_sigma_px=1.04)
        np.testing.assert_array_equal(im, im_copy)
        np.testing.assert_array_equal(pts, p_copy)
        np.testing.assert_array_equal(nrm, n_copy)
        assert est.ok.all()
        results.append(est.width_px)
    for r in results:
        np.testing.assert_allclose(r, 5.0, atol=0.05)
    est = D.profile_diameters(img.tolist(), pts.tolist(), nrm.tolist(), psf_sigma_px=1.04)
    assert est.ok.all()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"contrast": np.zeros(10)}, "contrast"),
        ({"contrast": np.zeros((3, 4, 3))}, "contrast"),
        ({"contrast": np.zeros((1, 5))}, "contrast"),
        ({"contrast": np.zeros((5, 5), bool)}, "contrast"),
        ({"contrast": np.zeros((5, 5), complex)}, "contrast"),
        ({"points_yx": np.zeros((2, 3))}, "points_yx"),
        ({"points_yx": np.zeros(2)}, "points_yx"),
        ({"points_yx": np.array([["a", "b"]])}, "points_yx"),
        ({"normals_yx": np.zeros((3, 2))}, "normals_yx"),
        ({"normals_yx": np.zeros((2, 1))}, "normals_yx"),
        ({"psf_sigma_px": 0.0}, "psf_sigma_px"),
        ({"psf_sigma_px": -1.0}, "psf_sigma_px"),
        ({"psf_sigma_px": float("nan")}, "psf_sigma_px"),
        ({"psf_sigma_px": 100.0}, "psf_sigma_px"),
        ({"psf_sigma_px": True}, "psf_sigma_px"),
        ({"psf_sigma_px": "1"}, "psf_sigma_px"),
        ({"max_width_px": 0.5}, "max_width_px"),
        ({"max_width_px": float("inf")}, "max_width_px"),
        ({"max_width_px": "wide"}, "max_width_px"),
        ({"prior_radius_px": -1.0}, "prior_radius_px"),
        ({"prior_radius_px": float("nan")}, "prior_radius_px"),
        ({"prior_radius_px": None}, "prior_radius_px"),
        ({"pool_half_len_px": -1.0}, "pool_half_len_px"),
        ({"pool_half_len_px": float("inf")}, "pool_half_len_px"),
        ({"pool_half_len_px": "long"}, "pool_half_len_px"),
        ({"segment": np.zeros(3, np.int64)}, "segment"),
        ({"segment": np.zeros(2)}, "segment"),
        ({"segment": np.zeros((2, 1), np.int64)}, "segment"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, name):
    args = {"contrast": np.zeros((20, 20)), "points_yx": np.ones((2, 2)), "normals_yx": np.ones((2, 2))}
    args.update(kwargs)
    contrast = args.pop("contrast")
    points = args.pop("points_yx")
    normals = args.pop("normals_yx")
    with pytest.raises(ValueError, match=name):
        D.profile_diameters(contrast, points, normals, **args)


def test_result_is_frozen_and_serialisable():
    img, normal = bar_image((40, 40), (20, 20), 0.0, 4.0, 1.0)
    est = D.profile_diameters(img, [[20.0, 20.0]], [normal], psf_sigma_px=1.0)
    with pytest.raises(AttributeError):
        est.width_px = None  # type: ignore[misc]
    d = est.to_dict()
    assert set(d) >= {"width_px", "amplitude", "offset_px", "ok", "psf_sigma_px", "prior_driven", "pooled", "params"}
    assert d["params"]["psf_sigma_px"] == 1.0


def test_warmup_compiles_without_warnings(caplog):
    with caplog.at_level(logging.WARNING, logger="veinscope.diameter"):
        D.warmup()
    assert caplog.text == ""


# ---- per-point kernels on threads, the same values (session 21, helper "jsplit") -----------------
def test_run_chunked_covers_every_point_once_and_raises():
    import numba

    from veinscope._threads import run_chunked

    for n_points, min_points in ((0, 1), (1, 1), (7, 2), (1000, 10), (1000, 5000)):
        seen = np.zeros(n_points, np.int64)

        def call(lo, hi, seen=seen):
            seen[lo:hi] += 1

        run_chunked(call, n_points, min_points=min_points)
        assert (seen == 1).all()
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        calls = []
        run_chunked(lambda lo, hi: calls.append((lo, hi)), 1000, min_points=10)
        assert calls == [(0, 1000)]  # one thread allowed: one call on this thread
    finally:
        numba.set_num_threads(threads)

    def fail(lo, hi):
        raise ValueError("chunk failed")

    with pytest.raises(ValueError, match="chunk failed"):
        run_chunked(fail, 1000, min_points=10)


@pytest.mark.parametrize("seed", [0, 1])
def test_diameters_on_threads_equal_one_thread_to_the_bit(monkeypatch, seed):
    # the bar fit and the half-maximum widths of many points, in chunks on threads and in one
    # call: every value the same (each point's result is its own)
    import numba

    import veinscope._threads as thr
    from veinscope.diameter import half_max_widths, profile_diameters

    rng = np.random.default_rng(seed)
    m, n = 160, 220
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    img = 0.02 * rng.standard_normal((m, n))
    pts, nrm = [], []
    for i, (y0, w) in enumerate([(30, 3.0), (70, 8.0), (115, 1.5), (140, 12.0)]):
        img += np.exp(-0.5 * ((yy - y0 - 0.01 * (xx - 100)) / (w / 2.355)) ** 2) * (0.5 + 0.1 * i)
        for x in range(10, n - 10):
            pts.append((y0 + 0.01 * (x - 100), float(x)))
            nrm.append((1.0, -0.01))
    img = img.astype(np.float32)
    pts, nrm = np.array(pts), np.array(nrm)
    monkeypatch.setattr(thr, "MIN_POINTS", 16)
    threads = numba.get_num_threads()
    results = []
    try:
        for nt in (1, max(2, threads)) if threads > 1 else (1,):
            numba.set_num_threads(nt)
            est = profile_diameters(img, pts, nrm, max_width_px=30.0, psf_sigma_px=0.8)
            guess = np.where(est.ok, est.width_px, np.nan)
            results.append((est.width_px, est.ok, *half_max_widths(img, pts, nrm, guess, psf_sigma_px=0.8)))
    finally:
        numba.set_num_threads(threads)
    if len(results) < 2:
        pytest.skip("one Numba thread on this machine")
    assert np.isfinite(results[0][2]).sum() > 0.8 * len(pts)
    for a, b in zip(results[0], results[1]):
        assert np.array_equal(a, b, equal_nan=True)

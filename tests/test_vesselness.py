"""Tests of the multi-scale Frangi filter (veinscope.vesselness and its Numba kernels).

Slow references are written with numpy / scipy.ndimage only; speed is measured in
benchmarks/bench_vesselness.py, not here.
"""

from __future__ import annotations

import doctest
import importlib
import math

import numba
import numpy as np
import pytest
import scipy.ndimage as ndi

from veinscope._kernels import hessian as hk

vs = importlib.import_module("veinscope.vesselness")

SIGMAS6 = tuple(np.geomspace(1.0, 8.0, 6))


# --------------------------------------------------------------------------------------
# slow references
# --------------------------------------------------------------------------------------
def ref_hessian(img, sigma):
    """(Hrr, Hrc, Hcc) float64 with scipy.ndimage.gaussian_filter(order=...), as scikit-image
    builds them (two first-order passes of sigma / sqrt(2)), on the input reflected once."""
    img = np.asarray(img, np.float64)
    sp = sigma / math.sqrt(2.0)
    pad = int(math.ceil(14 * sp)) + 4
    ext = np.pad(img, pad, mode="symmetric")  # numpy 'symmetric' == scipy 'reflect'

    def g(a, order):
        return ndi.gaussian_filter(a, sp, order=order, mode="constant", truncate=7.0)

    gr = g(ext, (1, 0))
    gc = g(ext, (0, 1))
    crop = (slice(pad, pad + img.shape[0]), slice(pad, pad + img.shape[1]))
    return g(gr, (1, 0))[crop], g(gr, (0, 1))[crop], g(gc, (0, 1))[crop]


def kernel_hessian_reference(img, sigma):
    """Hessian with the module's own truncated kernels, scipy.ndimage.convolve1d, reflect."""
    h0, h1, h2 = vs._derivative_kernels(sigma)
    k0 = np.concatenate([h0[:0:-1], h0])
    k1 = np.concatenate([-h1[:0:-1], h1])
    k2 = np.concatenate([h2[:0:-1], h2])
    x = np.asarray(img, np.float64)

    def sep(ky, kx):
        return ndi.convolve1d(ndi.convolve1d(x, ky, axis=0, mode="reflect"), kx, axis=1, mode="reflect")

    return sep(k2, k0), sep(k1, k1), sep(k0, k2)


def ref_frangi(img, sigmas, black_ridges=True, beta=0.5, gamma=None, hessian=ref_hessian):
    """Frangi 1998 as documented: per-scale outputs, float64, numpy.linalg.eigh for the
    eigen-analysis. Returns a list of dicts (one per scale)."""
    sign = 1.0 if black_ridges else -1.0
    amax = float(np.abs(img).max()) or 1.0
    out = []
    for s in sigmas:
        hrr, hrc, hcc = (sign * s * s * h for h in hessian(img, s))
        mats = np.stack([np.stack([hrr, hrc], -1), np.stack([hrc, hcc], -1)], -2)  # (y, x) order
        w, vec = np.linalg.eigh(mats)  # ascending eigenvalues
        lam_hi, lam_lo = w[..., 1], w[..., 0]
        big_is_hi = np.abs(lam_hi) >= np.abs(lam_lo)
        l2 = np.where(big_is_hi, lam_hi, lam_lo)
        l1 = np.where(big_is_hi, lam_lo, lam_hi)
        s2 = l1**2 + l2**2
        norm = np.sqrt(s2)
        g = (0.5 * norm.max() if norm.max() > vs.NOISE_FLOOR_REL * amax else 1.0) if gamma is None else gamma
        ok = (l2 > 0) & (norm > vs.NOISE_FLOOR_REL * amax)
        with np.errstate(divide="ignore", invalid="ignore"):
            rb2 = np.where(ok, (l1 / np.where(ok, l2, 1.0)) ** 2, 0.0)
        v = np.where(ok, np.exp(-rb2 / (2 * beta**2)) * (1 - np.exp(-s2 / (2 * g**2))), 0.0)
        n_hi = vec[..., :, 1]  # eigenvector of the larger algebraic eigenvalue = lambda2 where ok
        # V jumps by this much where the trace of the Hessian changes sign (Frangi's definition)
        jump = math.exp(-1 / (2 * beta**2)) * (1 - np.exp(-s2 / (2 * g**2)))
        out.append(dict(v=v, strength=np.where(ok, l2, 0.0), ny=n_hi[..., 0], nx=n_hi[..., 1],
                        mean=0.5 * (hrr + hcc), norm=norm, jump=jump))
    return out


def corr(a, b):
    return float(np.corrcoef(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64))[0, 1])


def dark_line(shape, angle_deg, width=3.0, contrast=0.4, centre=None):
    """Bright image with a dark line of Gaussian profile through ``centre`` at ``angle_deg``
    (counter-clockwise from the x axis, y pointing down)."""
    m, n = shape
    cy, cx = centre if centre is not None else ((m - 1) / 2, (n - 1) / 2)
    yy, xx = np.mgrid[:m, :n].astype(np.float64)
    t = math.radians(angle_deg)
    dist = -(xx - cx) * math.sin(t) + (yy - cy) * math.cos(t)
    return (1.0 - contrast * np.exp(-0.5 * (dist / (width / 2)) ** 2)).astype(np.float32)


@pytest.fixture
def curves(rng):
    """Textured image with several dark curved lines of various widths and noise."""
    m, n = 201, 265
    yy, xx = np.mgrid[:m, :n].astype(np.float64)
    img = 0.8 + 0.05 * np.sin(xx / 37.0) * np.cos(yy / 23.0)
    for w, a, off in [(1.5, 10, -60), (3, 35, 0), (6, 100, 30), (12, 160, 50), (2, 75, -20)]:
        t = math.radians(a)
        d = -(xx - n / 2) * math.sin(t) + (yy - m / 2) * math.cos(t) - off
        d -= 8 * np.sin((xx * math.cos(t) + yy * math.sin(t)) / 30.0)
        img -= 0.2 * np.exp(-0.5 * (d / (w / 2)) ** 2)
    img += rng.normal(0, 0.01, (m, n))
    return img.astype(np.float32)


# --------------------------------------------------------------------------------------
# kernels against references
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 7), (2, 40), (33, 1100), (40, 17)])
@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.5, 6.0])
def test_hessian_kernel_equals_convolution_with_its_kernels(rng, shape, sigma):
    img = rng.random(shape).astype(np.float32)
    h0, h1, h2 = (k.astype(np.float32) for k in vs._derivative_kernels(sigma))
    outs = [np.full(shape, np.nan, np.float32) for _ in range(3)]
    hk.hessian_serial(img, h0, h1, h2, h0.shape[0] - 1, *outs)
    for got, want in zip(outs, kernel_hessian_reference(img, sigma)):
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("sigma", [1.0, 1.5, 3.0])
def test_hessian_matches_scipy_gaussian_derivatives(rng, sigma):
    img = rng.random((48, 61)).astype(np.float32)
    h0, h1, h2 = (k.astype(np.float32) for k in vs._derivative_kernels(sigma))
    outs = [np.empty(img.shape, np.float32) for _ in range(3)]
    hk.hessian_serial(img, h0, h1, h2, h0.shape[0] - 1, *outs)
    for got, want in zip(outs, ref_hessian(img, sigma)):
        # the kernels drop taps below KERNEL_EPS of their peak; everything else is exact
        np.testing.assert_allclose(got, want, rtol=0, atol=5 * vs.KERNEL_EPS * np.abs(want).max())


def test_hessian_matches_skimage_in_the_interior(rng):
    from skimage.feature import hessian_matrix

    img = rng.random((60, 70))
    sigma = 2.0
    h0, h1, h2 = (k.astype(np.float32) for k in vs._derivative_kernels(sigma))
    outs = [np.empty(img.shape, np.float32) for _ in range(3)]
    hk.hessian_serial(img.astype(np.float32), h0, h1, h2, h0.shape[0] - 1, *outs)
    b = int(3 * sigma)
    for got, want in zip(outs, hessian_matrix(img, sigma, mode="reflect", use_gaussian_derivatives=True)):
        inner = (slice(b, -b), slice(b, -b))
        np.testing.assert_allclose(got[inner], want[inner], atol=5 * vs.KERNEL_EPS * np.abs(want).max())


@pytest.mark.parametrize("shape", [(37, 51), (40, 50), (1, 1), (2, 3), (5, 1), (17, 600)])
def test_smooth_decimate_matches_scipy(rng, shape):
    img = rng.random(shape).astype(np.float32)
    h = vs._smoothing_kernel(1.6)
    full = np.concatenate([h[:0:-1], h])
    ref = ndi.convolve1d(ndi.convolve1d(img.astype(np.float64), full, axis=0, mode="reflect"), full, axis=1,
                         mode="reflect")[::2, ::2]
    dst = np.empty(vs._level_shape(shape, 1), np.float32)
    minmax = np.zeros(2, np.float32)
    hk.smooth_decimate(img, h.astype(np.float32), h.shape[0] - 1, dst, minmax)
    np.testing.assert_allclose(dst, ref, atol=1e-6)
    np.testing.assert_array_equal(minmax, [img.min(), img.max()])
    dst2 = np.empty_like(dst)
    hk.smooth_decimate_rows(img, 0, dst.shape[0], h.astype(np.float32), h.shape[0] - 1, dst2, minmax)
    np.testing.assert_array_equal(dst2, dst)
    np.testing.assert_array_equal(minmax, [img.min(), img.max()])


def _bilinear_reference(coarse, shift, shape):
    m, n = shape
    f = 2**shift
    mc, nc = coarse.shape
    y, x = np.arange(m) / f, np.arange(n) / f
    y0 = np.minimum(np.floor(y).astype(int), mc - 1)
    x0 = np.minimum(np.floor(x).astype(int), nc - 1)
    y1, x1 = np.minimum(y0 + 1, mc - 1), np.minimum(x0 + 1, nc - 1)
    wy = np.where(y0 + 1 <= mc - 1, y - y0, 0.0)[:, None]
    wx = np.where(x0 + 1 <= nc - 1, x - x0, 0.0)
    top = coarse[y0][:, x0] * (1 - wx) + coarse[y0][:, x1] * wx
    bottom = coarse[y1][:, x0] * (1 - wx) + coarse[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


@pytest.mark.parametrize("shape", [(37, 1001), (5, 3), (1, 1), (64, 520), (33, 7)])
@pytest.mark.parametrize("shift", [1, 2, 3])
def test_coarse_maps_are_upsampled_bilinearly(rng, shape, shift):
    # a coarse map of blobness b and S**2 s2 has vesselness b (1 - exp(-cg s2)); the full
    # resolution pass (here without scales of its own) upsamples it bilinearly
    cshape = vs._level_shape(shape, shift)
    b = rng.random(cshape).astype(np.float32)
    s2 = rng.random(cshape).astype(np.float32)
    cg = np.float32(3.0)
    h0, h1, h2, radii = vs._pack_kernels([])
    none = np.zeros(0, np.float32)
    out = np.empty(shape, np.float32)
    cmaps = np.stack([b.ravel(), s2.ravel()])
    args = (h0, h1, h2, radii, none, none, np.float32(0.0), np.float32(2.0), False, cmaps, np.array([0]),
            np.array([cshape]), np.array([shift]), np.array([cg]), out)
    hk.frangi_v_rows(np.zeros(shape, np.float32), 0, shape[0], *args)
    coarse_v = b * -np.expm1(-cg * s2.astype(np.float64))
    np.testing.assert_allclose(out, _bilinear_reference(coarse_v, shift, shape), atol=2e-6)
    out2 = np.empty(shape, np.float32)
    hk.frangi_v(np.zeros(shape, np.float32), *args[:-1], out2)
    np.testing.assert_array_equal(out2, out)


def _ridge_merge_reference(maps, shape, v_sat):
    """Running maxima of :func:`veinscope._kernels.hessian.frangi_ridge` over coarse maps only,
    in float64: each map's vesselness ``b (1 - exp(-cg s2))``, strength and doubled-angle
    vector upsampled bilinearly, folded in order (the larger V takes the map's sigma and
    vector, except where both V are at least ``v_sat``: there the larger strength does; the
    vector kept has the length of its strength), then the vector turned into the unit normal.
    Also returns, per pixel, whether a decision was a near-tie (could go either way in float32)."""
    v = np.zeros(shape)
    sc, st, dy, dx = (np.zeros(shape) for _ in range(4))
    near = np.zeros(shape, bool)
    for b, s2, cst, cdy, cdx, shift, cg, sigma in maps:
        cv = b * -np.expm1(-cg * s2.astype(np.float64))
        up = [_bilinear_reference(x.astype(np.float64), shift, shape) for x in (cv, cst, cdy, cdx)]
        st = np.maximum(st, up[1])
        sat = (up[0] >= v_sat) & (v >= v_sat)
        chosen = np.hypot(dy, dx)
        take = np.where(sat, up[1] > chosen, up[0] > v)
        near |= (np.abs(up[0] - v) < 1e-4) | (np.abs(up[0] - v_sat) < 1e-4) | (np.abs(v - v_sat) < 1e-4)
        near |= sat & (np.abs(up[1] - chosen) < 1e-4)
        k = up[1] / np.maximum(np.hypot(up[2], up[3]), 1e-30)
        v = np.maximum(v, up[0])
        sc, dy, dx = np.where(take, sigma, sc), np.where(take, up[2] * k, dy), np.where(take, up[3] * k, dx)
    nrm = np.hypot(dx, dy)
    c = np.clip(np.where(nrm > 0, dx / np.where(nrm > 0, nrm, 1.0), 1.0), -1, 1)
    nx, ny = np.sqrt(0.5 * (1 + c)), np.sqrt(0.5 * (1 - c)) * np.where(dy < 0, -1.0, 1.0)
    live = v > 0
    return v, np.where(live, sc, 0.0), st, np.where(live, ny, 0.0), np.where(live, nx, 0.0), near


@pytest.mark.parametrize("v_sat", [0.999, 0.3])  # the engine's level, and one that ties most pixels
@pytest.mark.parametrize("shape", [(37, 1001), (5, 3), (64, 520), (33, 7)])
@pytest.mark.parametrize("shifts", [(1,), (1, 2), (1, 2, 3), (2, 2, 3, 3)])
def test_coarse_ridge_maps_are_upsampled_and_merged(rng, shape, shifts, v_sat):
    # frangi_ridge without scales of its own: the coarse maps (one, or two at a time in one
    # pass) upsampled and merged into the running maxima, against the float64 reference
    h0, h1, h2, radii = vs._pack_kernels([])
    none = np.zeros(0, np.float32)
    maps, planes = [], []
    for k, shift in enumerate(shifts):
        cshape = vs._level_shape(shape, shift)
        b, s2, cst = (rng.random(cshape).astype(np.float32) for _ in range(3))
        b[rng.random(cshape) < 0.2] = 0.0  # off-ridge pixels of this map
        b[rng.random(cshape) < 0.3] = 1.0  # a saturated line's blobness factor
        cdy, cdx = (rng.normal(size=cshape).astype(np.float32) for _ in range(2))
        maps.append((b, s2, cst, cdy, cdx, shift, np.float32(2.0 + k), np.float32(1.5 * (k + 1))))
        planes.append(np.stack([x.ravel() for x in (b, s2, cst, cdy, cdx)]))
    sizes = [p.shape[1] for p in planes]
    coff = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    cshape = np.array([vs._level_shape(shape, s) for s in shifts], np.int64)
    args = (h0, h1, h2, radii, none, none, np.float32(0.0), np.float32(2.0), False, none, np.float32(1.0),
            np.concatenate(planes, axis=1), coff, cshape, np.array(shifts, np.int64),
            np.array([mp[6] for mp in maps], np.float32), np.array([mp[7] for mp in maps], np.float32),
            np.float32(v_sat))
    img = np.zeros(shape, np.float32)
    outs = [np.full(shape, np.nan, np.float32) for _ in range(5)]
    hk.frangi_ridge_rows(img, 0, shape[0], *args, *outs, False)
    v, sc, st, ny, nx, near = _ridge_merge_reference(maps, shape, v_sat)
    np.testing.assert_allclose(outs[0], v, atol=3e-6)
    np.testing.assert_allclose(outs[2], st, atol=3e-6)
    clear = ~near | (v == 0)  # no decision was a near-tie (or there is no ridge)
    assert clear.mean() > 0.7
    np.testing.assert_array_equal(outs[1][clear], sc[clear].astype(np.float32))
    np.testing.assert_allclose(outs[3][clear], ny[clear], atol=2e-3)
    np.testing.assert_allclose(outs[4][clear], nx[clear], atol=2e-3)
    outs2 = [np.full(shape, np.nan, np.float32) for _ in range(5)]
    hk.frangi_ridge(img, *args, *outs2, False)  # the threaded driver: the same bits
    for a, b in zip(outs, outs2):
        np.testing.assert_array_equal(a, b)


def test_fast_exponentials_are_accurate():
    t = np.concatenate([np.linspace(0, 40, 4001), np.geomspace(1e-9, 1, 200)]).astype(np.float32)
    for exp_neg, one_minus, top in [(hk._exp_neg, hk._one_minus_exp_neg, 40.0),
                                    (hk._exp_neg_short, hk._one_minus_exp_neg_short, 2.0)]:
        x = t[t <= top]
        e = np.array([exp_neg(np.float32(v)) for v in x], np.float64)
        q = np.array([one_minus(np.float32(v)) for v in x], np.float64)
        np.testing.assert_allclose(e, np.exp(-x.astype(np.float64)), rtol=0, atol=5e-6)
        np.testing.assert_allclose(q[x > 0], -np.expm1(-x[x > 0].astype(np.float64)), rtol=2e-6)


# --------------------------------------------------------------------------------------
# the filter against the reference definition
# --------------------------------------------------------------------------------------
def _away_from_saddles(refs, frac=1e-3, atol=1e-3):
    """Pixels where V does not hinge on the sign of a near-zero Hessian trace: V jumps from 0
    to up to exp(-1/(2 beta**2)) across trace = 0 (Frangi's definition), and the kernels'
    truncation (KERNEL_EPS) may flip that sign where the trace is tiny."""
    ok = np.ones(refs[0]["v"].shape, bool)
    for r in refs:
        ok &= (np.abs(r["mean"]) > frac * r["norm"].max()) | (r["jump"] < atol)
    return ok


@pytest.mark.parametrize("black_ridges", [True, False])
def test_exact_vesselness_matches_reference(curves, black_ridges):
    sig = (1.0, 2.0, 4.0)
    img = curves if black_ridges else 2.0 - curves
    refs = ref_frangi(img, sig, black_ridges=black_ridges)
    want = np.max([r["v"] for r in refs], axis=0)
    (got,), _ = vs._compute(img, sig, black_ridges, 0.5, None, ridge=False, pyramid=False)
    ok = _away_from_saddles(refs)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(got[ok], want[ok], atol=3e-3)
    assert corr(got, want) > 0.999


def test_exact_ridge_outputs_match_reference_per_scale(curves):
    for sigma in (1.0, 3.0):
        (ref,) = ref_frangi(curves, [sigma])
        v, scale, strength, ny, nx = vs._compute(curves, [sigma], True, 0.5, None, ridge=True, pyramid=False)[0]
        ok = _away_from_saddles([ref])
        np.testing.assert_allclose(v[ok], ref["v"][ok], atol=3e-3)
        ok_s = np.abs(ref["mean"]) > 1e-3 * ref["norm"].max()  # strength jumps by ~S across trace 0
        np.testing.assert_allclose(strength[ok_s], ref["strength"][ok_s], atol=2e-3 * ref["strength"].max())
        assert set(np.unique(scale)) <= {0.0, np.float32(sigma)}
        np.testing.assert_array_equal(scale > 0, v > 0)
        live = ok & (v > 0.05)
        dot = np.abs(ny * ref["ny"] + nx * ref["nx"])
        assert live.sum() > 500
        assert np.quantile(dot[live], 0.001) > 0.999
        assert np.all(nx[v > 0] >= 0)
        np.testing.assert_allclose(np.hypot(ny, nx)[v > 0], 1.0, atol=1e-5)
        assert np.all(ny[v == 0] == 0) and np.all(nx[v == 0] == 0)


def test_explicit_gamma_and_beta_follow_reference(curves):
    refs = ref_frangi(curves, [2.0], beta=0.8, gamma=0.05)
    (got,), _ = vs._compute(curves, [2.0], True, 0.8, 0.05, ridge=False, pyramid=False)
    ok = _away_from_saddles(refs)
    np.testing.assert_allclose(got[ok], refs[0]["v"][ok], atol=3e-3)


def test_agrees_with_skimage_frangi_called_per_scale(curves):
    from skimage.filters import frangi

    sk = np.max([frangi(curves.astype(np.float64), sigmas=[s], black_ridges=True) for s in SIGMAS6], axis=0)
    got = vs.vesselness(curves, sigmas_px=SIGMAS6)
    b = int(3 * max(SIGMAS6))
    assert corr(got[b:-b, b:-b], sk[b:-b, b:-b]) > 0.99
    assert corr(got, sk) > 0.95


def test_pyramid_is_close_to_full_resolution(curves):
    plans = vs.plan(curves.shape, SIGMAS6)
    assert [p.level for p in plans] == [0, 0, 1, 1, 2, 2]
    exact = vs._compute(curves, SIGMAS6, True, 0.5, None, ridge=False, pyramid=False)[0][0]
    fast = vs.vesselness(curves, sigmas_px=SIGMAS6)
    assert corr(fast, exact) > 0.99
    assert np.abs(fast - exact).mean() < 0.01


def test_plan_bookkeeping():
    for p in vs.plan((3000, 4000), SIGMAS6):
        level_sigma = p.sigma_px / 2**p.level
        blur = vs.LEVEL_BLUR_PX if p.level else 0.0
        assert math.isclose(p.residual_px**2 + blur**2, level_sigma**2)
        assert p.level == 0 or level_sigma >= vs.MIN_LEVEL_SIGMA_PX
        assert p.level == vs.MAX_LEVEL or level_sigma / 2 < vs.MIN_LEVEL_SIGMA_PX
    assert all(p.level == 0 for p in vs.plan((20, 20), SIGMAS6))  # levels would be too small
    assert all(p.level == 0 for p in vs.plan((3000, 4000), SIGMAS6, pyramid=False))


# --------------------------------------------------------------------------------------
# analytic truth
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pyramid", [False, True])
def test_dark_bar_gives_a_ridge_at_its_centre_with_the_normal_across(pyramid):
    img = dark_line((81, 97), angle_deg=0.0, width=4.0, centre=(40, 48))
    v, scale, strength, ny, nx = vs._compute(img, SIGMAS6[:4], True, 0.5, None, ridge=True, pyramid=pyramid)[0]
    assert np.all(np.argmax(v[:, 20:-20], axis=0) == 40)
    assert v[40, 48] > 0.5
    assert abs(ny[40, 48]) == pytest.approx(1.0, abs=1e-4) and abs(nx[40, 48]) < 1e-3
    assert 0.02 < strength[40, 48] < 0.4  # contrast 0.4: a contrast-like magnitude
    assert scale[40, 48] in np.float32(SIGMAS6[:4])
    assert v[5, 48] < 0.05  # far from the bar


def test_polarity():
    dark = dark_line((61, 61), 30.0, width=3.0)
    bright = 2.0 - dark
    c = (30, 30)
    assert vs.vesselness(dark, sigmas_px=[1, 2])[c] > 0.5
    assert vs.vesselness(dark, sigmas_px=[1, 2], black_ridges=False)[c] == 0.0
    assert vs.vesselness(bright, sigmas_px=[1, 2], black_ridges=False)[c] > 0.5
    assert vs.vesselness(bright, sigmas_px=[1, 2])[c] == 0.0
    rr = vs.ridge_response(bright, sigmas_px=[1, 2], black_ridges=False)
    assert rr.strength[c] > 0 and vs.ridge_response(bright, sigmas_px=[1, 2]).strength[c] == 0


@pytest.mark.parametrize("angle", [0.0, 20.0, 45.0, 70.0, 90.0, 135.0])
@pytest.mark.parametrize("width, sigmas", [(3.0, [1.0, 1.5, 2.0]), (10.0, [3.0, 4.5])])
def test_normal_follows_the_line_angle(angle, width, sigmas):
    img = dark_line((129, 129), angle, width=width)
    if width > 5:
        assert all(p.level > 0 for p in vs.plan(img.shape, sigmas))  # coarse maps, upsampled
    rr = vs.ridge_response(img, sigmas_px=sigmas)
    t = math.radians(angle)
    across = (math.cos(t), -math.sin(t))  # (y, x) of the normal to direction (cos t, sin t)
    checked = 0
    for d in range(-20, 21, 5):  # points along the line, rounded to pixels
        c = (round(64 + d * math.sin(t)), round(64 + d * math.cos(t)))
        if rr.vesselness[c] > 0.3:
            checked += 1
            assert abs(rr.normal_y[c] * across[0] + rr.normal_x[c] * across[1]) > 0.99
    assert checked >= 5
    assert rr.vesselness[64, 64] > 0.5


@pytest.mark.parametrize("pyramid", [False, True])
def test_rotated_and_flipped_copies_give_rotated_responses(curves, pyramid):
    # 201 x 265: odd at every pyramid level, so that decimation grids map onto each other
    a = vs._compute(curves, SIGMAS6, True, 0.5, None, ridge=True, pyramid=pyramid)[0]
    for k in (1, 2, 3):
        b = vs._compute(np.rot90(curves, k), SIGMAS6, True, 0.5, None, ridge=True, pyramid=pyramid)[0]
        for q in (0, 2):  # vesselness, strength: equal up to rounding, but for saddle flips
            diff = np.abs(b[q] - np.rot90(a[q], k))
            assert np.mean(diff > 2e-5) < 1e-3 and diff.max() < 2e-3
        clear = (b[0] > 1e-3) & (np.rot90(a[0], k) > 1e-3)  # the best scale is a coin toss at V ~ 0
        np.testing.assert_array_equal(b[1][clear], np.rot90(a[1], k)[clear])
        # vectors rotate: rot90 maps (dy, dx) to (-dx, dy)
        ny, nx = a[3], a[4]
        for _ in range(k):
            ny, nx = np.rot90(-nx), np.rot90(ny)
        live = b[0] > 0.05
        assert np.abs(b[3] * ny + b[4] * nx)[live].min() > 0.9999
    for flip in (np.flipud, np.fliplr):
        b = vs._compute(np.ascontiguousarray(flip(curves)), SIGMAS6, True, 0.5, None, ridge=False,
                        pyramid=pyramid)[0][0]
        diff = np.abs(b - flip(a[0]))
        assert np.mean(diff > 2e-5) < 1e-3 and diff.max() < 2e-3


def test_rotation_by_an_arbitrary_angle_rotates_the_response():
    img = dark_line((101, 101), 0.0, width=3.0)
    rot = ndi.rotate(img, 30.0, reshape=False, order=3, mode="nearest")
    v0 = vs.vesselness(img, sigmas_px=[1.0, 1.5, 2.0])
    v1 = vs.vesselness(rot, sigmas_px=[1.0, 1.5, 2.0])
    v0r = ndi.rotate(v0, 30.0, reshape=False, order=1, mode="nearest")
    inner = (slice(30, 71), slice(30, 71))
    assert corr(v1[inner], v0r[inner]) > 0.95


def test_rescaled_copy_with_scales_adjusted():
    small = dark_line((81, 81), 30.0, width=3.0)
    big = dark_line((161, 161), 30.0, width=6.0)
    vs_small = vs.vesselness(small, sigmas_px=[1.0, 1.5])
    vs_big = vs.vesselness(big, sigmas_px=[2.0, 3.0])
    assert vs_big[80, 80] == pytest.approx(vs_small[40, 40], abs=0.05)


# --------------------------------------------------------------------------------------
# edge cases
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0.0, 1.0, 1000.0, 65535.0, -5.0, 1e-6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_images_give_zero(value, dtype):
    img = np.full((70, 90), value, dtype)
    assert not vs.vesselness(img, sigmas_px=SIGMAS6).any()
    rr = vs.ridge_response(img, sigmas_px=SIGMAS6)
    for a in (rr.vesselness, rr.strength, rr.scale_px, rr.normal_y, rr.normal_x):
        assert not a.any()


def test_constant_integer_and_bool_images_give_zero():
    for img in (np.full((30, 40), 200, np.uint8), np.ones((30, 40), bool), np.zeros((30, 40), np.int64)):
        assert not vs.vesselness(img, sigmas_px=[1, 3]).any()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (7, 7), (16, 3), (5, 40)])
def test_tiny_images_do_not_crash(rng, shape):
    img = rng.random(shape)
    for sig in ([0.5], [1.0, 3.0], SIGMAS6, [25.0]):
        v = vs.vesselness(img, sigmas_px=sig)
        rr = vs.ridge_response(img, sigmas_px=sig)
        assert v.shape == shape and v.dtype == np.float32
        assert np.all(np.isfinite(v)) and np.all((v >= 0) & (v <= 1))
        np.testing.assert_allclose(rr.vesselness, v, atol=1e-6)  # separate code: rounding may differ
        for a in (rr.strength, rr.scale_px, rr.normal_y, rr.normal_x):
            assert a.shape == shape and a.dtype == np.float32 and np.all(np.isfinite(a))
        exact = vs._compute(img, sig, True, 0.5, None, ridge=False, pyramid=False)[0][0]
        np.testing.assert_array_equal(v, exact)  # no pyramid level is that small


def test_outputs_are_in_range(curves):
    rr = vs.ridge_response(curves, sigmas_px=SIGMAS6)
    assert rr.vesselness.min() >= 0 and rr.vesselness.max() <= 1
    assert rr.strength.min() >= 0
    live = rr.vesselness > 0
    assert set(np.unique(rr.scale_px[live])) <= set(np.float32(SIGMAS6))
    np.testing.assert_allclose(np.hypot(rr.normal_y, rr.normal_x)[live], 1.0, atol=1e-5)
    assert np.all(rr.normal_x[live] >= 0)
    assert rr.sigmas_px == tuple(sorted(SIGMAS6))


def test_sigmas_are_sorted_and_deduplicated(curves):
    rr = vs.ridge_response(curves, sigmas_px=[4, 1, 2, 2.0])
    assert rr.sigmas_px == (1.0, 2.0, 4.0)
    np.testing.assert_allclose(vs.vesselness(curves, sigmas_px=[4, 1, 2]), rr.vesselness, atol=1e-6)
    np.testing.assert_array_equal(vs.vesselness(curves, sigmas_px=2.0), vs.vesselness(curves, sigmas_px=[2.0]))


def test_intensity_scale_invariance(curves):
    v1 = vs.ridge_response(curves, sigmas_px=SIGMAS6)
    v2 = vs.ridge_response(curves * 1000.0, sigmas_px=SIGMAS6)
    np.testing.assert_allclose(v2.vesselness, v1.vesselness, atol=1e-4)
    np.testing.assert_allclose(v2.strength, 1000.0 * v1.strength, rtol=1e-4, atol=1e-3)
    g1 = vs.vesselness(curves, sigmas_px=[2.0], gamma=0.03)
    g2 = vs.vesselness(curves * 1000.0, sigmas_px=[2.0], gamma=30.0)
    np.testing.assert_allclose(g2, g1, atol=1e-4)


def test_input_not_modified(rng):
    base = rng.random((50, 70))
    readonly = base.astype(np.float32)
    readonly.flags.writeable = False
    cases = [base.astype(np.float32), base, (base * 255).astype(np.uint8), base.astype(np.float32).T,
             np.asfortranarray(base), base[::2, ::3], base > 0.5, readonly]
    for img in cases:
        before = img.copy()
        vs.vesselness(img, sigmas_px=[1, 3])
        vs.ridge_response(img, sigmas_px=[1, 3], black_ridges=False)
        np.testing.assert_array_equal(img, before)
        assert img.dtype == before.dtype


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.uint16, np.int16, np.int32, np.int64, np.float16,
                                   np.float32, np.float64])
def test_any_real_dtype_is_accepted(rng, dtype):
    img = (rng.random((40, 50)) * (1 if dtype is bool else 100)).astype(dtype)
    if dtype is bool:
        img = rng.random((40, 50)) > 0.7
    v = vs.vesselness(img, sigmas_px=[1, 2])
    np.testing.assert_array_equal(v, vs.vesselness(img.astype(np.float32), sigmas_px=[1, 2]))
    assert vs.vesselness(img.tolist(), sigmas_px=[1]).shape == (40, 50)


def test_parallel_equals_serial(curves):
    wide = np.tile(curves, (1, 4))[:, :1037]  # several bands and tiles
    results = []
    before = numba.get_num_threads()
    try:
        for threads, parallel in [(1, True), (before, True), (before, False)]:
            # threads = 1: the threaded kernels run on one thread; parallel=False: the serial
            # band functions are called directly
            numba.set_num_threads(threads)
            results.append([vs._compute(wide, SIGMAS6, True, 0.5, None, ridge=r, parallel=parallel)[0]
                            for r in (False, True)])
    finally:
        numba.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------------------
# argument errors
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(image=np.zeros((4, 5, 3))), ValueError, "image"),
        (dict(image=np.zeros(5)), ValueError, "image"),
        (dict(image=np.zeros((0, 5))), ValueError, "image"),
        (dict(image=np.array([[1.0, np.nan]])), ValueError, "image"),
        (dict(image=np.array([[1.0, np.inf]], np.float32)), ValueError, "image"),
        (dict(image=np.pad([[np.nan]], ((70, 3), (2, 90)), constant_values=1.0), sigmas_px=[1, 4, 9]), ValueError,
         "image"),
        (dict(image=np.pad([[-np.inf]], ((3, 70), (90, 2)), constant_values=1.0), sigmas_px=[4]), ValueError,
         "image"),
        (dict(image=np.zeros((4, 5), complex)), TypeError, "image"),
        (dict(image=np.array([["a", "b"]])), TypeError, "image"),
        (dict(sigmas_px=[]), ValueError, "sigmas_px"),
        (dict(sigmas_px=[1.0, -1.0]), ValueError, "sigmas_px"),
        (dict(sigmas_px=[0.0]), ValueError, "sigmas_px"),
        (dict(sigmas_px=[float("nan")]), ValueError, "sigmas_px"),
        (dict(sigmas_px="12"), TypeError, "sigmas_px"),
        (dict(sigmas_px=None), TypeError, "sigmas_px"),
        (dict(sigmas_px=[True]), TypeError, "sigmas_px"),
        (dict(beta=0.0), ValueError, "beta"),
        (dict(beta="0.5"), TypeError, "beta"),
        (dict(gamma=-1.0), ValueError, "gamma"),
        (dict(black_ridges="yes"), TypeError, "black_ridges"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs, exc, word):
    args = dict(image=np.ones((8, 9)), sigmas_px=[1.0])
    args.update(kwargs)
    image = args.pop("image")
    for fn in (vs.vesselness, vs.ridge_response):
        with pytest.raises(exc, match=word):
            fn(image, **args)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        vs.vesselness(np.ones((8, 8)), [1.0])  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# module housekeeping
# --------------------------------------------------------------------------------------
def test_warmup_and_docs():
    assert vs.warmup() is None
    assert "NUMBA_CACHE_DIR" in vs.__doc__
    assert "10.1007/BFb0056195" in vs.__doc__
    result = doctest.testmod(vs, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_ridge_response_is_frozen(curves):
    rr = vs.ridge_response(curves, sigmas_px=[1.0])
    with pytest.raises(Exception):
        rr.vesselness = None  # type: ignore[misc]


@pytest.mark.parametrize("parallel", [False, True])
def test_weighted_ridge_response_is_strength_times_vesselness_to_the_bit(curves, parallel):
    # the analysis asks for strength x vesselness without the vesselness map (issue 3's memory
    # limit): the same float32 values as multiplying the two maps afterwards, every other
    # output identical, on the pyramid's coarse scales as well as the full-resolution ones
    big = np.tile(curves, (2, 3))  # wide enough for the threaded kernel's bands
    sig = np.geomspace(1.0, 8.0, 6)
    full, _ = vs._compute(big, sig, True, 0.5, None, ridge=True, parallel=parallel)
    wtd, _ = vs._compute(big, sig, True, 0.5, None, ridge=True, parallel=parallel, weighted=True)
    assert wtd[0] is None
    np.testing.assert_array_equal(wtd[2], full[2] * full[0])
    assert np.count_nonzero(wtd[2]) > 0.05 * big.size
    for k in (1, 3, 4):
        np.testing.assert_array_equal(wtd[k], full[k])
    rr = vs.ridge_response(curves, sigmas_px=sig, weighted=True)
    assert rr.vesselness is None and rr.strength.shape == curves.shape


def test_detect_vessels_gives_the_same_chains_from_a_weighted_response(curves):
    from veinscope.segment import detect_vessels

    sig = np.geomspace(1.0, 8.0, 6)
    skin = np.ones(curves.shape, bool)
    runs = []
    for weighted in (False, True):
        rr = vs.ridge_response(curves, sigmas_px=sig, black_ridges=True, weighted=weighted)
        runs.append(detect_vessels(rr, skin, 1.0 - curves, consume=weighted))
    a, b = runs
    assert a.points_yx.shape[0] > 100
    np.testing.assert_array_equal(a.points_yx, b.points_yx)
    np.testing.assert_array_equal(a.strength, b.strength)
    np.testing.assert_array_equal(a.normals_yx, b.normals_yx)


def test_package_level_vesselness_is_callable_after_the_module_is_imported():
    import importlib

    import veinscope

    importlib.import_module("veinscope.vesselness")  # as the pipeline does
    img = np.zeros((24, 24), np.float32)
    img[:, 12] = 1.0
    out = veinscope.vesselness(img, sigmas_px=[1.0], black_ridges=False)
    np.testing.assert_array_equal(out, vs.vesselness(img, sigmas_px=[1.0], black_ridges=False))
    assert out[12, 12] > 0

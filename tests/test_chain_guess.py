"""The half-maximum window of a wide vein where the bar fit failed or fell far short
(``veinscope.pipeline._chain_guess``, ``analyze(chain_guess_widths=...)``, issue 4, session 34).

The visible width is the full width at half maximum of the vessel's profile, read in a window
across it that the bar fit's first width sets (``half_max_widths``: ``max(1.5 g, g / 2 + 12)``
px either side, the skin's level beyond 0.75 of it). On a wide, soft vein the bar fit fails at
up to a fifth of the points and reads about as many under half the width; a window set by such
a width takes the vein's own shoulders for the skin, the half maximum sits high and the vein
reads narrow: a 3.5 mm vein then reads under 3 mm in stretches (reticular). The analytic scene:
textured pink skin and a long, gently sloping soft blue-green vein (a 4.25 mm cylinder under
0.6 mm of blurring skin: 3.50 mm at half maximum), its optical density mostly in red.
"""

import math

import numpy as np
import pytest

import veinscope
from veinscope.pipeline import _chain_guess


def _skin(seed, shape):
    """Pink skin with a fine mottled texture and pixel noise (as test_pipeline's)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.empty(shape + (3,), np.float32)
    img[:] = (205, 150, 135)
    tex = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 1.2)
    return img + (tex / tex.std() * 4.0)[..., None]


def _soft_vein(seed, ppm, od=0.13):
    """The scene at ``ppm`` (30 x 50 mm): rgb uint8, the vein's width at half maximum (px), its
    centreline y(x), and the columns it spans away from its ends."""
    m, n = int(30 * ppm), int(50 * ppm)
    img = _skin(seed, (m, n))
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    centre = lambda x: m / 2 + 0.08 * (x - n / 2)  # noqa: E731
    t = np.arange(-200.0, 200.0 + 1e-9, 0.25)
    chord = 2 * np.sqrt(np.clip((4.25 * ppm / 2) ** 2 - t**2, 0, None))
    g = np.exp(-0.5 * (t / (0.6 * ppm)) ** 2)
    prof = np.convolve(chord, g / g.sum(), mode="same")
    prof /= prof.max()
    fwhm = float(np.ptp(t[prof >= 0.5]))
    p = np.interp((yy - centre(xx)) / math.hypot(1.0, 0.08), t, prof) * ((xx > 60) & (xx < n - 60))
    vein = img * np.exp(-p[..., None] * (np.array([1.0, 0.3, 0.3]) * od))
    noisy = vein + np.random.default_rng(10 + seed).normal(0, 1.5, vein.shape)
    rgb = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    return rgb, fwhm, centre, (int(60 + 2 * fwhm), int(n - 60 - 2 * fwhm))


def _painted(a, fwhm, centre, cols):
    """(painted px near the vein / its drawn area, share of them classed over 3 mm)."""
    m, n = a.labels.shape
    yy, xx = np.mgrid[0:m, 0:n]
    d = np.abs(yy - centre(xx)) / math.hypot(1.0, 0.08)
    zone = (d < 1.5 * fwhm) & (xx >= cols[0]) & (xx < cols[1])
    painted = (a.labels > 0) & zone
    drawn = fwhm * (cols[1] - cols[0]) * math.hypot(1.0, 0.08)
    return painted.sum() / drawn, float(np.mean(a.labels[painted] == 4)) if painted.any() else 0.0


def test_chain_guess_fills_a_wide_courses_failed_and_short_first_widths():
    # a wide course of 100 points read 30 px by the bar fit but for a failed (NaN) and a far
    # short (3 px) point at its scale and two points of a fine branch at its own small scale;
    # a fine chain; a wide blob (10 points, a third of its width long)
    g = np.r_[np.full(100, 30.0), np.nan, 3.0, 4.0, np.nan, [6.0, 5.0, np.nan, 1.0], np.full(8, 30.0), np.nan, 3.0]
    seg = np.r_[np.zeros(104, np.int64), np.ones(4, np.int64), np.full(10, 2)]
    scale = np.r_[np.full(102, 15.0), 2.0, 2.0, np.full(4, 3.0), np.full(10, 15.0)]
    before = g.copy()
    out = _chain_guess(g, seg, scale)
    assert np.array_equal(g, before, equal_nan=True)  # the input is left alone
    # the course's failed and far short points at its scale take its median; the fine branch
    # at its own small scale keeps its own
    assert out[100] == out[101] == 30.0
    assert out[102] == 4.0 and np.isnan(out[103])
    np.testing.assert_array_equal(out[:100], g[:100])
    # a chain whose median is under the window's fixed reach (12 px) and a blob shorter than
    # three of its widths are left as they are
    np.testing.assert_array_equal(out[104:], g[104:])
    np.testing.assert_array_equal(_chain_guess(g, seg, scale, min_course=0.2)[[116, 117]], [30.0, 30.0])
    assert _chain_guess(np.zeros(0), np.zeros(0, np.int64), np.zeros(0)).shape == (0,)
    assert np.isnan(_chain_guess(np.full(3, np.nan), np.zeros(3, np.int64), np.full(3, 10.0))).all()


@pytest.mark.parametrize(("ppm", "seed"), [(8.0, 0), (8.0, 2), (8.0, 5), (14.0, 0), (14.0, 2), (14.0, 4)])
def test_a_soft_vein_over_3_mm_keeps_its_class_and_area(ppm, seed):
    rgb, fwhm, centre, cols = _soft_vein(seed, ppm)
    assert 3.45 < fwhm / ppm < 3.55
    a = veinscope.analyze(rgb, px_per_mm=ppm, chain_guess_widths=0.0)
    area, over3 = _painted(a, fwhm, centre, cols)
    # painted 0.96-1.10 of the drawn area, 0.99-1.00 of it over 3 mm when written; the default
    # reads 0.72-0.89 over 3 mm on (14, 4), (14, 2), (8, 5), (8, 2)
    assert 0.85 <= area <= 1.15
    assert over3 >= 0.85
    assert a.params["chain_guess_widths"] == 0.0


@pytest.mark.xfail(
    strict=True,
    reason="the default (chain_guess_widths off): where the bar fit fails or reads a tenth of the "
    "width, the half-maximum window takes the vein's shoulders for skin and stretches of a 3.5 mm "
    "vein read under 3 mm (0.80 and 0.72 of the painted vein over 3 mm when written; BENCHMARKS.md "
    "session 34, helper wide34)",
)
@pytest.mark.parametrize("seed", [2, 4])
def test_a_soft_vein_over_3_mm_keeps_its_class_by_default(seed):
    rgb, fwhm, centre, cols = _soft_vein(seed, 14.0)
    a = veinscope.analyze(rgb, px_per_mm=14.0)
    assert _painted(a, fwhm, centre, cols)[1] >= 0.85


@pytest.mark.xfail(
    strict=True,
    reason="not fixed with the course rule (chain_guess_widths=3): this vein's crest comes in pieces "
    "of one or two of its widths (14-74 points at 49 px), none a course of three widths, so none "
    "is filled (0.80 and 0.72 over 3 mm, as the default; BENCHMARKS.md session 34, helper wide34)",
)
@pytest.mark.parametrize("seed", [2, 4])
def test_a_soft_vein_in_pieces_keeps_its_class_with_the_course_rule(seed):
    rgb, fwhm, centre, cols = _soft_vein(seed, 14.0)
    a = veinscope.analyze(rgb, px_per_mm=14.0, chain_guess_widths=3.0)
    assert _painted(a, fwhm, centre, cols)[1] >= 0.85


@pytest.mark.xfail(
    strict=True,
    reason="not fixed: a fainter soft vein (OD 0.10 in red) at 14 px/mm is found along about half "
    "its length (detection, not width: painted 0.44 of the drawn area with chain_guess_widths=0; "
    "BENCHMARKS.md session 34, helper wide34)",
)
def test_a_fainter_soft_vein_over_3_mm_is_painted_whole():
    rgb, fwhm, centre, cols = _soft_vein(2, 14.0, od=0.10)
    a = veinscope.analyze(rgb, px_per_mm=14.0, chain_guess_widths=0.0)
    assert _painted(a, fwhm, centre, cols)[0] >= 0.85


@pytest.mark.parametrize("bad", ["3", True, -1.0, float("nan"), float("inf")])
def test_chain_guess_widths_off_by_default_recorded_and_checked(bad):
    rgb = np.full((200, 300, 3), (205, 150, 135), np.uint8)
    assert veinscope.analyze(rgb, px_per_mm=10.0).params["chain_guess_widths"] is None
    assert veinscope.analyze(rgb, px_per_mm=10.0, chain_guess_widths=3).params["chain_guess_widths"] == 3.0
    with pytest.raises(ValueError, match="chain_guess_widths"):
        veinscope.analyze(rgb, px_per_mm=10.0, chain_guess_widths=bad)

"""A comparison's figures change smoothly with the scale (issue 6, session 31).

The skin background of both photos is a median over cells of ``background_px / 8`` pixels,
``background_px`` 20 px/mm: rounded to whole pixels, the cell jumps by one pixel where the
scale crosses a multiple of 0.05 px/mm, and the change maps move with it. Generated series 305
at 1600 x 1200 px (true scale 8.180 px/mm; its card reads 8.234): main reads one matting patch
of 46.5 mm² at 8.180 and none at 8.234 (the cell 20 -> 21 px); the truth is one patch of
56.9 mm².
"""

from __future__ import annotations

import numpy as np
import pytest

from veinscope.chromophores import BlendedOptics, blended_skin_optics, skin_optics
from veinscope.compare import _Maps, compare


def _photo(seed: int = 0, shape=(180, 260)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m, n = shape
    yy, xx = np.mgrid[0:m, 0:n]
    base = np.array([200.0, 150.0, 130.0])
    shade = 1.0 - 0.15 * np.sin(xx / 37.0) * np.cos(yy / 29.0)
    rgb = base[None, None, :] * shade[..., None] + rng.normal(0, 4, (m, n, 3))
    # a few dark blobs (vessels, freckles) the background's median must pass over
    for _ in range(12):
        cy, cx, r = rng.integers(0, m), rng.integers(0, n), rng.integers(3, 12)
        rgb[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] *= 0.8
    skin = np.ones((m, n), bool)
    skin[:, :20] = False
    return np.clip(rgb, 0, 255).astype(np.uint8), skin


def test_blend_is_the_single_background_at_a_whole_cell():
    rgb, skin = _photo()
    one = skin_optics(rgb, skin=skin, background_px=8.0 * 5)
    o = blended_skin_optics(rgb, skin=skin, background_px=8.0 * 5)
    assert not isinstance(o, BlendedOptics)
    np.testing.assert_array_equal(o.background_od, one.background_od)


def test_blend_is_the_weighted_reading_and_maps_agree():
    rgb, skin = _photo(1)
    o = blended_skin_optics(rgb, skin=skin, background_px=8.0 * 5.25)
    assert isinstance(o, BlendedOptics)
    (o0, w0), (o1, w1) = o.parts
    assert (o0.cell_px, o1.cell_px) == (5, 6)
    assert (w0, w1) == pytest.approx((0.75, 0.25))
    pts = np.array([[10, 30], [90, 200], [179, 259]])
    np.testing.assert_allclose(o.relative_od_at(pts), w0 * o0.relative_od_at(pts) + w1 * o1.relative_od_at(pts), atol=1e-6)
    # the boxed maps read the blend, as the whole photo's maps of the two parts weighted
    got = _Maps(o).box((40, 120, 50, 210))
    want0, want1 = o0.chromophore_maps(), o1.chromophore_maps()
    for k in ("haemoglobin", "venous", "melanin"):
        np.testing.assert_allclose(got[k], (w0 * want0[k] + w1 * want1[k])[40:120, 50:210], atol=1e-5)
    assert o.cell_px == 5 and o.shape == rgb.shape[:2]


def test_blend_moves_continuously_across_a_cell_boundary():
    # background_px 47.9 and 48.1: the rounded cell jumps 6 -> 6 (47.9 / 8 = 5.99 rounds to 6)
    # take 51.9 and 52.1 (6.49 -> 6.51): rounded 6 -> 7; blended: nearly the same background
    rgb, skin = _photo(2)
    pts = np.stack(np.nonzero(skin[::7, ::7]), axis=1) * 7

    def reading(fn, px):
        return fn(rgb, skin=skin, background_px=px).relative_od_at(pts)

    jump = np.abs(reading(skin_optics, 52.1) - reading(skin_optics, 51.9)).max()
    smooth = np.abs(reading(blended_skin_optics, 52.1) - reading(blended_skin_optics, 51.9)).max()
    assert jump > 5 * smooth
    # and at a whole cell the blend meets the single background from both sides
    edge = np.abs(reading(blended_skin_optics, 56.0 - 1e-3) - reading(skin_optics, 56.0)).max()
    assert edge < smooth + 1e-3


@pytest.fixture(scope="module")
def series305():
    from veinscope.synth import generate_series

    ser = generate_series(seed=305, sessions=2, size=(1600, 1200))
    return ser.photos[0].rgb, ser.photos[1].rgb, float(ser.photos[0].px_per_mm)


def _matting_areas(b, f, truth_ppm, **kw):
    areas = []
    for ppm in (truth_ppm, truth_ppm * 1.0066):  # the true scale and the card's (+0.7 %)
        d = compare(b, f, px_per_mm=ppm, **kw).to_dict()
        assert d["parameters"]["background_continuous"] is bool(kw.get("background_continuous", False))
        areas.append(d["matting"]["area_mm2"])
    return areas


@pytest.mark.slow
def test_matting_patch_found_at_both_scales_with_continuous_background(series305):
    # main: 46.5 mm² at 8.180 px/mm, none at 8.234 (the compare's background cell 20 -> 21 px);
    # the continuous background: about 46 and 56 mm² (truth 56.9)
    b, f, truth_ppm = series305
    assert truth_ppm == pytest.approx(8.18, abs=0.01)
    areas = _matting_areas(b, f, truth_ppm, background_continuous=True)
    assert min(areas) > 0.6 * 56.9, areas


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the baseline's own analysis moves with the scale (its vessel mask, the engine's "
                   "background cell): with the comparison's background continuous the patch reads 46 and 56 mm² "
                   "(BENCHMARKS.md, session 31, helper mat31)")
def test_matting_area_holds_over_a_small_change_of_scale(series305):
    b, f, truth_ppm = series305
    areas = _matting_areas(b, f, truth_ppm, background_continuous=True)
    assert min(areas) > 0
    assert max(areas) / min(areas) < 1.10, areas


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="main's defaults: 46.5 mm² at the true scale, none at the card's (session 31)")
def test_matting_area_holds_over_a_small_change_of_scale_defaults(series305):
    b, f, truth_ppm = series305
    areas = _matting_areas(b, f, truth_ppm)
    assert min(areas) > 0
    assert max(areas) / min(areas) < 1.10, areas


@pytest.mark.slow
def test_matting_area_holds_with_both_analyses_continuous_too(series305):
    # the baseline's analysis moves with the scale too (its own background cell): with both
    # analyses' and the comparison's backgrounds continuous, about 56.9 and 56.1 mm² (truth 56.9)
    b, f, truth_ppm = series305
    areas = _matting_areas(b, f, truth_ppm, background_continuous=True, analyze_options={"background_continuous": True})
    assert min(areas) > 0
    assert max(areas) / min(areas) < 1.10, areas
    assert areas[0] == pytest.approx(56.9, rel=0.25)


def test_analysis_with_continuous_background_is_the_same_at_a_whole_cell():
    from veinscope.pipeline import analyze

    rgb, _ = _photo(3, shape=(240, 320))
    # 8 px/mm: background_px 4 x 5 mm x 8 = 160 px, cells of 20 px exactly
    a = analyze(rgb, px_per_mm=8.0)
    c = analyze(rgb, px_per_mm=8.0, background_continuous=True)
    assert a.params["background_px"] == 160.0 and c.params["background_continuous"] is True
    np.testing.assert_array_equal(a.labels, c.labels)
    # off a whole cell the blend is in use (and the analysis still runs through)
    d = analyze(rgb, px_per_mm=8.2, background_continuous=True)
    assert d.labels.shape == rgb.shape[:2]

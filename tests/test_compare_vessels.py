"""A matting patch outlined around the new fine vessels that stand out of the skin beside them,
read along their course (``compare(matting_vessels=...)``, issue 6, BENCHMARKS.md session 28)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.test_compare import PPM, _bar_in_both, _matting_truth, _mesh_in, _skin, _u8, _with_matting_mask
from tests.test_compare_ridges import _noisy
from veinscope.compare import _line_bank, _visible_new_vessels, compare


def _jpeg(rgb, quality=90):
    """A JPEG round trip as a phone saves it (OpenCV's default 4:2:0 chroma: the colour at half
    resolution, the lightness at full)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def _patch_with_periphery(seed, *, ring_n=20, ring_od=0.4, blush=0.35):
    """As the generator draws matting: a core of fine red vessels under a Gaussian blush of extra
    blood, and around it ``ring_n`` sharp 1 px vessels without the blush (visible by the truth's
    rule), beside a treated vessel that persists; camera noise of 3 grey levels and a JPEG at
    quality 90 (4:2:0). Returns the baseline, the follow-up (uint8) and the truth's mask."""
    rng = np.random.default_rng(seed)
    base = _skin()
    fu = base.copy()
    _bar_in_both(base, fu, 170, 40, 280)
    fu, de_core = _mesh_in(fu, 85, 160, rng, 30, 16, 1.0, n=20, blush=0.0)
    yy, xx = np.mgrid[0 : fu.shape[0], 0 : fu.shape[1]]
    g = np.exp(-((yy - 85) ** 2 / (2 * 14.0**2) + (xx - 160) ** 2 / (2 * 24.0**2)))
    od = blush * g[..., None] * np.array([0.04, 0.26, 0.17])
    fu = (np.clip((fu / 255.0) ** 2.2 * 10 ** (-od), 0, 1) ** (1 / 2.2) * 255).astype(np.float32)
    visible = de_core >= 2.0
    if ring_n:
        fu, de_ring = _mesh_in(fu, 85, 160, rng, 70, 35, ring_od, n=ring_n, hole=(30, 16), blur=0, blush=0.0)
        visible |= de_ring >= 2.0
    b8, f8 = _jpeg(_u8(_noisy(base, 1, 3.0))), _jpeg(_u8(_noisy(fu, 2, 3.0)))
    return b8, f8, _matting_truth(visible)


@pytest.mark.parametrize("seed", [7, 8])
def test_vessels_take_in_a_patchs_periphery_that_the_pixel_test_misses(monkeypatch, seed):
    # the periphery's 1 px vessels, without the blush under them, fail the pixel gates: the
    # JPEG's halved chroma blurs their redness away (the series' under-measured peripheries,
    # 305/1, 326/1): off, the patch is 52-63 mm² of a truth of 74-77; read along their course on
    # the change of the whole density (lightness kept at full resolution) they extend it, inside
    # the truth's outline
    b8, f8, truth = _patch_with_periphery(seed)
    truth_mm2 = truth.sum() / PPM**2
    masks = _with_matting_mask(monkeypatch)
    off = compare(b8, f8, px_per_mm=PPM, matting_vessels=False)
    on = compare(b8, f8, px_per_mm=PPM, matting_vessels=True)
    assert off.params["matting_vessels"] is False and on.params["matting_vessels"] is True
    m_off, m_on = masks[-2], masks[-1]
    assert off.matting["patches"] == on.matting["patches"] == 1
    assert off.matting["area_mm2"] < 0.85 * truth_mm2
    assert on.matting["area_mm2"] >= off.matting["area_mm2"] + 8.0
    assert on.matting["area_mm2"] == pytest.approx(truth_mm2, rel=0.15)
    added = m_on & ~m_off
    assert not (m_off & ~m_on).any()  # the vessels only extend a patch
    assert (added & truth).sum() >= 0.8 * added.sum()  # what they add lies in the truth
    # the rest of the comparison does not move
    assert on.improvement_pct == pytest.approx(off.improvement_pct, abs=1e-9)
    assert on.staining["area_mm2"] == off.staining["area_mm2"]
    assert compare(b8, f8, px_per_mm=PPM).matting["area_mm2"] == off.matting["area_mm2"]  # off by default


@pytest.mark.parametrize("seed", [7, 8])
def test_vessels_add_little_to_a_patch_with_nothing_around_it(monkeypatch, seed):
    # the core alone (its vessels and blush) in the same noise and JPEG: nothing around it to
    # take in, and the line reading's gate (the photo's own dark lines) keeps the noise out
    b8, f8, truth = _patch_with_periphery(seed, ring_n=0)
    masks = _with_matting_mask(monkeypatch)
    off = compare(b8, f8, px_per_mm=PPM, matting_vessels=False)
    on = compare(b8, f8, px_per_mm=PPM, matting_vessels=True)
    assert off.matting["patches"] == on.matting["patches"] == 1
    assert on.matting["area_mm2"] - off.matting["area_mm2"] <= max(2.0, 0.05 * off.matting["area_mm2"])
    assert (masks[-1] & ~truth).sum() / PPM**2 <= (masks[-2] & ~truth).sum() / PPM**2 + 2.0


def test_vessels_start_no_patch_on_plain_skin():
    base = _skin()
    fu = base.copy()
    _bar_in_both(base, fu, 170, 40, 280)
    b8, f8 = _jpeg(_u8(_noisy(base, 1, 3.0))), _jpeg(_u8(_noisy(fu, 2, 3.0)))
    on = compare(b8, f8, px_per_mm=PPM, matting_vessels=True)
    assert on.matting["patches"] == 0 and on.matting["area_mm2"] == 0


def _line_map(amp, *, sign=1.0, shape=(160, 200), seed=0, row=None):
    """Noise (sigma 1) and a 1 px line of height ``sign * amp`` along a row (1/8 to 7/8 of the
    width), blurred 0.8 px as ``_matting``'s readings are."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0, 1.0, shape).astype(np.float32)
    r = shape[0] // 2 if row is None else row
    d[r, shape[1] // 8 : shape[1] - shape[1] // 8] += sign * amp
    return cv2.GaussianBlur(d, (0, 0), 0.8)


def _vis_call(d, **kw):
    shape = d.shape
    everywhere = np.ones(shape, bool)
    none = np.zeros(shape, bool)
    args = dict(ppm=PPM, along_mm=0.25, across_px=1.0, null_pct=99.5, near_mm=0.3, len_px=0.3 * PPM, local_mm=1.5)
    args.update(kw)
    return _visible_new_vessels(d, d, everywhere, everywhere, none, none, **args)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_visible_new_vessels_finds_a_faint_line_and_not_the_noise_nor_a_dark_line(seed):
    # a 1 px line 1.5 noise units high (before the blur): under a 3 sigma pixel gate nearly
    # everywhere, read along its course it is found along most of its length
    d = _line_map(1.5, seed=seed)
    got = _vis_call(d)
    sigma = float(np.std(d[:50]))
    found = got[78:83, 30:170].any(axis=0).mean()
    by_pixel = (d[78:83, 30:170] > 3.0 * sigma).any(axis=0).mean()
    assert found >= 0.7
    assert by_pixel < 0.3
    off_line = got.copy()
    off_line[74:87, 20:180] = False
    assert off_line.sum() <= 0.006 * off_line.size  # about the null's share (0.5 % of the pixels)
    # a fall (a dark line) is no new vessel (its sides make a few short bright lines), and noise
    # alone makes next to nothing
    fall = _vis_call(_line_map(1.5, sign=-1.0, seed=seed))
    assert fall[76:85, 30:170].any(axis=0).mean() <= 0.1
    assert _vis_call(_line_map(0.0, seed=seed)).mean() <= 0.006


def test_visible_new_vessels_leaves_the_baseline_vessels_sides_and_needs_quiet_skin():
    d = _line_map(3.0)
    shape = d.shape
    bv = np.zeros(shape, bool)
    bv[84:88, :] = True  # a baseline vessel 4-7 px from the line: its change's sides are not read
    got = _visible_new_vessels(d, d, np.ones(shape, bool), np.ones(shape, bool), bv, np.zeros(shape, bool), ppm=PPM, along_mm=0.25, across_px=1.0, null_pct=99.5, near_mm=0.3, len_px=0.3 * PPM, local_mm=1.5)
    assert not got[78:83].any()
    small = _line_map(3.0, shape=(30, 30))  # 900 px of skin: under the 1000 the null needs
    assert _vis_call(small) is None
    assert _vis_call(small, min_quiet_px=100) is not None


def test_visible_new_vessels_needs_redness_to_rise_along_the_piece():
    d = _line_map(3.0)
    everywhere = np.ones(d.shape, bool)
    none = np.zeros(d.shape, bool)
    kw = dict(ppm=PPM, along_mm=0.25, across_px=1.0, null_pct=99.5, near_mm=0.3, len_px=0.3 * PPM, local_mm=1.5)
    assert _visible_new_vessels(d, d, everywhere, everywhere, none, none, **kw)[78:83].any()
    # the same darkening with less redness (a brown or bluish line) is not taken
    assert not _visible_new_vessels(d, -np.abs(d) - 0.01, everywhere, everywhere, none, none, **kw)[78:83].any()


def test_visible_new_vessels_leaves_a_piece_on_a_stain():
    # a stain's brown bands darken the density in lines as vessels do (generated pairs with
    # matting on a stain, seeds 301 / 303: 67 mm² for a truth of 26 and 40 before this): a piece
    # with any pixel on a perceptible stain is left to the reading of redness on a stain
    d = _line_map(3.0)
    assert _vis_call(d)[78:83].any()
    stain = np.zeros(d.shape, bool)
    stain[70:90, 150:170] = True  # under the line's right end only
    got = _vis_call(d, stain=stain)
    assert not got[78:83, 100:].any()
    assert not (got & stain).any()
    assert _vis_call(d, stain=np.zeros(d.shape, bool))[78:83].any()


def test_line_bank_shape_dtype_and_input_untouched():
    d = _line_map(2.0)
    keep = d.copy()
    b, k = _line_bank(d, across_px=1.0, along_px=3.0)
    assert b.shape == d.shape == k.shape and b.dtype == np.float32
    np.testing.assert_array_equal(d, keep)
    # a bright line responds on the bright side; its negation on the dark side, equally
    b2, k2 = _line_bank(-d, across_px=1.0, along_px=3.0)
    np.testing.assert_allclose(b, k2, atol=1e-5)
    assert b[80, 40:160].mean() > 3.0 * np.median(b)

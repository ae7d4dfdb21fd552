"""Session comparison on dark skin (issue 6, session 33): a stain read where the optical density
is noisy, and no improvement percentage from a few millimetres of vessel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_compare import PPM, bars  # noqa: F401  (the fixture)
from veinscope.compare import _rise_from_below_skin, compare


# ---- too few baseline vessels: say so, give no number -----------------------------------------
def test_too_little_baseline_vessel_gives_no_improvement_and_says_so(bars):  # noqa: F811
    b, f = bars  # two bars of 24 mm at 10 px/mm, one cleared: 50 %
    c = compare(b, f, px_per_mm=PPM, min_baseline_mm=60.0)
    assert c.improvement_pct is None and c.grade is None
    assert set(c.improvement_by_class.values()) == {None}
    assert any(w.startswith("Not enough vessels to measure: only ") and "at least 60 mm" in w for w in c.warnings)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["improvement_pct"] is None and d["grade"] is None and d["parameters"]["min_baseline_mm"] == 60.0
    # the lengths and the vessels' own readings are still given
    assert c.lengths_px["baseline"] > 400 and sorted(v["status"] for v in c.vessels) == ["cleared", "persisting"]
    # enough vessel: the figure as without the rule, and no such warning
    c2 = compare(b, f, px_per_mm=PPM, min_baseline_mm=30.0)
    c0 = compare(b, f, px_per_mm=PPM)
    assert c2.improvement_pct == c0.improvement_pct == pytest.approx(50.0, abs=5.0)
    assert not any(w.startswith("Not enough vessels") for w in c2.warnings)
    # without a scale the floor is in pixels, the same length at the nominal scale (10 px/mm)
    # the photos are then analysed at (session 34; before, the figure was given)
    c3 = compare(b, f, px_per_mm=None, min_baseline_mm=60.0)
    assert c3.improvement_pct is None and c3.lengths_px["baseline"] < 600
    assert any(w.startswith("Not enough vessels to measure: only ") and "at least 600 px without a scale" in w for w in c3.warnings)
    c4 = compare(b, f, px_per_mm=None, min_baseline_mm=30.0)
    assert c4.improvement_pct == pytest.approx(c0.improvement_pct, abs=1.0)


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf"), True, "10"])
def test_min_baseline_mm_must_be_a_positive_length(bars, bad):  # noqa: F811
    b, f = bars
    with pytest.raises(ValueError, match="min_baseline_mm"):
        compare(b, f, px_per_mm=PPM, min_baseline_mm=bad)


# ---- a stain's rise from below the skin, judged against the change's noise --------------------
def test_a_rise_at_the_seed_levels_knife_edge_is_not_taken_for_a_rim_come_back():
    # session 33, type 6 series 304/1: the stain's rise 0.592 (95th percentile), above the skin
    # 0.570, the seed level 0.570, the baseline at its skin's level (median 0.001), the change's
    # noise 0.095: without a margin the percentile's wobble drops a stain the eye sees
    rng = np.random.default_rng(0)
    region = np.ones((40, 40), bool)
    d_mel = rng.normal(0.36, 0.13, region.shape)
    base = np.zeros(region.shape)
    base[::2] = -0.02  # a few hundredths below the skin's level here and there
    mel_f = d_mel + base
    rise = np.percentile(d_mel[region], 95)
    above = np.percentile(np.minimum(d_mel, mel_f)[region], 95)
    assert 0 < rise - above < 0.095
    level = 0.5 * (rise + above)
    assert _rise_from_below_skin(d_mel, mel_f, region, level)  # as on main: dropped
    assert not _rise_from_below_skin(d_mel, mel_f, region, level, margin=0.095)
    # a vessel's rim come back (the baseline well below the skin's level, session 29's 369/2:
    # rise 0.149, above the skin 0.121, seed level 0.135, noise 0.0225) is still dropped
    d2 = np.full(region.shape, 0.149)
    f2 = np.full(region.shape, 0.121)
    assert _rise_from_below_skin(d2, f2, region, 0.135, margin=0.0225)


# ---- a stain on skin type 6, generated --------------------------------------------------------
@pytest.fixture(scope="module")
def type6_stain():
    """Series 304 on skin type 6 (bench_compare's series case 304/1): a 68 mm² stain on the
    baseline's frame (ΔE00 2.4 median against the same photo rendered without it)."""
    from veinscope.synth import generate_series

    seed = 304
    ppm = float(np.random.default_rng(seed).uniform(8, 13))
    ser = generate_series(seed=seed, sessions=3, size=(800, 600), px_per_mm=ppm, skin_type=6)
    return ser


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the change's noise on skin type 6 (0.095) puts the seed level (0.57) above the "
                   "stain's peak at the first blur (0.56): no staining read (session 33, helper dark33; its second "
                   "blur for the seeds, staining_coarse_seeds, was measured off and removed in session 35)")
def test_a_stain_the_eye_sees_on_skin_type_6_is_found(type6_stain):
    import cv2

    ser = type6_stain
    b, f = ser.photos[0], ser.photos[1]
    h = np.linalg.inv(np.asarray(ser.changes[0]["homography_baseline_to_session"]))
    m, n = b.rgb.shape[:2]
    truth_mm2 = (cv2.warpPerspective(f.staining.astype(np.uint8), h, (n, m), flags=cv2.INTER_NEAREST) > 0).sum() / b.px_per_mm**2
    assert truth_mm2 > 50
    c = compare(b.rgb, f.rgb, px_per_mm=float(b.px_per_mm))
    assert c.staining["detected"] and c.staining["area_mm2"] == pytest.approx(truth_mm2, rel=0.5)


@pytest.mark.slow
def test_a_freckle_on_skin_type_6_is_not_matting():
    # session 33: a freckle read as a 10 mm² matting patch (series 303/1: its melanin-like map
    # falls 0.204 -> 0.169 and the haemoglobin-like one rises 0.026 -> 0.037 under the new
    # light, redness increase 0.19 at its 95th percentile, new-vessel share 0.10); a strict
    # xfail until session 34's ``matting_pigment_spots`` (64 % of its new redness on the spot)
    from veinscope.synth import generate_series

    seed = 303
    ppm = float(np.random.default_rng(seed).uniform(8, 13))
    ser = generate_series(seed=seed, sessions=3, size=(800, 600), px_per_mm=ppm, skin_type=6)
    b, f = ser.photos[0], ser.photos[1]
    assert not f.matting.any() or ser.changes[0]["matting"]["area_mm2"] < 1.0  # nothing visible to find
    c = compare(b.rgb, f.rgb, px_per_mm=float(b.px_per_mm))
    assert c.matting["patches"] == 0


def test_by_default_no_percentage_from_a_vessel_under_5_mm():
    from tests.test_compare import _bar, _noise, _skin, _u8

    base = _skin()
    fu = base.copy()
    _bar(base, 120, 140, 180)  # 4 mm at 10 px/mm, cleared at the follow-up
    b, f = _u8(_noise(base, 1)), _u8(_noise(fu, 2))
    c = compare(b, f, px_per_mm=PPM)
    assert 0 < c.lengths_px["baseline"] < 5.0 * PPM
    assert c.improvement_pct is None and c.grade is None and c.params["min_baseline_mm"] == 5.0
    assert any(w.startswith("Not enough vessels to measure") for w in c.warnings)
    # the earlier reading: a figure, with the warning that it may swing widely
    c0 = compare(b, f, px_per_mm=PPM, min_baseline_mm=None)
    assert c0.improvement_pct == pytest.approx(100.0, abs=10.0)
    assert any("may swing widely" in w for w in c0.warnings)


def test_without_a_scale_no_percentage_from_a_vessel_under_50_px():
    # session 33: real photos against a moved copy of themselves read 100 % improvement from 6
    # and 10 px of baseline vessel (legs-dev veins_03, normal_09): without a scale the 5 mm
    # floor did not apply. Now it does, at the nominal 10 px/mm the photos are analysed at
    from tests.test_compare import _bar, _noise, _skin, _u8

    base = _skin()
    fu = base.copy()
    _bar(base, 120, 140, 180)  # 40 px, cleared at the follow-up
    b, f = _u8(_noise(base, 1)), _u8(_noise(fu, 2))
    c = compare(b, f)
    assert c.params["scale_source"] == "none" and 0 < c.lengths_px["baseline"] < 50
    assert c.improvement_pct is None and c.grade is None and set(c.improvement_by_class.values()) == {None}
    assert any(w.startswith("Not enough vessels to measure: only ") and "at least 50 px without a scale" in w for w in c.warnings)
    assert not any("mm of vessel" in w for w in c.warnings)
    c0 = compare(b, f, min_baseline_mm=None)
    assert c0.improvement_pct == pytest.approx(100.0, abs=10.0)
    assert any("may swing widely" in w and " px of vessel" in w for w in c0.warnings)
    # a longer bar (8 mm = 80 px) is measured as before
    base2 = _skin()
    fu2 = base2.copy()
    _bar(base2, 120, 100, 180)
    c2 = compare(_u8(_noise(base2, 1)), _u8(_noise(fu2, 2)))
    assert c2.lengths_px["baseline"] >= 50 and c2.improvement_pct == pytest.approx(100.0, abs=10.0)


# ---- new redness on a pigment spot the baseline already shows ------------------------------
def _spot_maps(m=120, n=160, *, mel=0.0, hb=0.0):
    yy, xx = np.mgrid[:m, :n]
    spot = np.clip(1.5 - ((yy - 60) / 15.0) ** 2 - ((xx - 80) / 15.0) ** 2, 0, 1).astype(np.float32)
    zero = np.zeros((m, n), np.float32)
    return {"haemoglobin": hb * spot, "venous": zero.copy(), "melanin": mel * spot}


def _skin_bg(ys, xs):
    return np.tile(np.array([0.35, 0.9, 1.0]), (len(ys), 1))


def test_on_pigment_spot_is_a_brown_spot_the_baseline_shows_not_a_red_mark_or_plain_skin():
    from veinscope.compare import _on_pigment_spot

    red = np.zeros((120, 160), bool)
    red[55:66, 70:91] = True  # the pixels asked about: over the spot's centre
    red[5:10, 5:10] = True  # and on plain skin
    kw = dict(ppm=10.0, spot_mm=0.5, bg_od=_skin_bg, thr=2.0, offset=(0, 0))
    box = (0, 0, 120, 160)
    brown = _spot_maps(mel=0.5, hb=0.05)
    before = {k: v.copy() for k, v in brown.items()}
    on = _on_pigment_spot(brown, red, box, **kw)
    assert all((brown[k] == before[k]).all() for k in brown)  # the maps are not modified
    assert on.shape == red.shape and not (on & ~red).any()
    assert on[55:66, 70:91].all() and not on[5:10, 5:10].any()
    # a red mark (a vessel's place, an angioma) is no pigment spot, nor is a spot too faint to see
    assert not _on_pigment_spot(_spot_maps(mel=0.1, hb=0.4), red, box, **kw).any()
    assert not _on_pigment_spot(_spot_maps(mel=0.005), red, box, **kw).any()
    # read within the patch's box (y, x, h, w) of the maps: the same pixels, offset
    sub = red[50:70, 60:100]
    assert (_on_pigment_spot(brown, sub, (50, 60, 20, 40), **kw) == on[50:70, 60:100]).all()
    assert not _on_pigment_spot(brown, np.zeros_like(red), box, **kw).any()


def test_matting_pigment_spots_is_recorded_and_changes_nothing_without_a_spot(bars):  # noqa: F811
    b, f = bars
    on, off = compare(b, f, px_per_mm=PPM), compare(b, f, px_per_mm=PPM, matting_pigment_spots=False)
    assert on.params["matting_pigment_spots"] is True and off.params["matting_pigment_spots"] is False
    assert json.loads(json.dumps(on.to_dict()))["parameters"]["matting_pigment_spots"] is True
    assert on.matting == off.matting and on.improvement_pct == off.improvement_pct


# ---- a matting patch must show a new fine vessel, not a blush alone (option, off) -------------
def test_shows_a_vessel_asks_for_a_fine_vessel_lines_or_a_visible_vessel_of_1_mm():
    import cv2

    from veinscope.compare import _disc, _shows_a_vessel

    ppm = 10.0
    m, n = 120, 160
    patch = np.zeros((m, n), np.uint8)
    cv2.circle(patch, (80, 60), 25, 1, -1)
    nl, lab, stats, _ = cv2.connectedComponentsWithStats(patch, connectivity=8)
    i = 1
    ker = _disc(8)
    kw = dict(ppm=ppm, fine_mm=0.3, min_len_mm=1.0)
    blush = np.zeros((m, n), bool)
    blush[50:70, 70:90] = True  # a blob of new redness: no line
    none = np.zeros((m, n), bool)
    assert not _shows_a_vessel(lab, stats, i, blush, None, None, ker, **kw)
    assert not _shows_a_vessel(lab, stats, i, blush, none, none, ker, **kw)
    # a new fine vessel of the engine's line detector in the patch
    fine = none.copy()
    fine[60, 75:78] = True
    assert _shows_a_vessel(lab, stats, i, blush, fine, None, ker, **kw)
    # most of the new redness in lines
    lines = none.copy()
    lines[45, 60:100] = lines[75, 60:100] = True
    assert _shows_a_vessel(lab, stats, i, lines, None, None, ker, **kw)
    # a visible new vessel piece within reach (just outside the outline), 1.5 mm long: yes;
    # 0.6 mm long: no; 1.5 mm long but beyond the reach: no
    vis = none.copy()
    vis[60, 106:121] = True
    assert _shows_a_vessel(lab, stats, i, blush, None, vis, ker, **kw)
    short = none.copy()
    short[60, 106:112] = True
    assert not _shows_a_vessel(lab, stats, i, blush, None, short, ker, **kw)
    far = none.copy()
    far[60, 140:155] = True
    assert not _shows_a_vessel(lab, stats, i, blush, None, far, ker, **kw)


def test_matting_needs_vessel_is_recorded_and_off_by_default(bars):  # noqa: F811
    b, f = bars
    c = compare(b, f, px_per_mm=PPM)
    assert c.params["matting_needs_vessel"] is False
    assert compare(b, f, px_per_mm=PPM, matting_needs_vessel=True).params["matting_needs_vessel"] is True

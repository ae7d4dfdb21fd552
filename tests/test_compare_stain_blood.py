"""A treated vessel under a new brown stain: cleared or persisting by its blood, the stain's own
colour taken out (compare's ``stain_blood_check``, issue 6, session 36)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_compare import PPM, _noise, _skin, _u8
from veinscope.compare import CHANGE_CODES, _stain_colour, compare

#: A soft blue vein's optical density per unit (base 10, linear RGB), and haemosiderin's: the
#: generator's yellow-brown stain (``synth._EPS_STAIN``), a hue between melanin and blood
_VEIN = (0.30, 0.60, 0.45)
_HAEMOSIDERIN = (1.0, 1.5, 2.2)


def _od_band(img, y, x0, x1, od_vec, amp, sigma_px):
    """``img`` (float RGB 0-255) with a band of Gaussian profile across (``sigma_px``) along row
    ``y`` (x0..x1, soft ends) of optical density ``amp`` x ``od_vec`` on its axis."""
    yy = np.arange(img.shape[0], dtype=np.float32)[:, None]
    xx = np.arange(img.shape[1], dtype=np.float32)[None, :]
    a = amp * np.exp(-0.5 * ((yy - y) / sigma_px) ** 2) * np.clip(np.minimum(xx - x0, x1 - xx) / 6.0, 0, 1)
    lin = (img / 255.0) ** 2.2 * np.power(10.0, -a[..., None] * np.asarray(od_vec, np.float32))
    return np.clip(lin, 0, 1) ** (1 / 2.2) * 255.0


def _veins_and_stain(keep, *, vein_sigma_px, stain_od, stain_sigma_px):
    """Two equal soft veins at baseline (rows 80 and 170, OD 0.15 on the axis: ΔE00 4.3 on the
    skin); the follow-up keeps ``keep`` of the upper one's OD and all of the lower one's, and a
    haemosiderin band darkest along the upper vein's course (OD ``stain_od`` in red on its
    axis) lies over its middle 20 mm."""
    b, f = _skin(), _skin()
    for y in (80, 170):
        b = _od_band(b, y, 30, 290, _VEIN, 0.15, vein_sigma_px)
    if keep > 0:
        f = _od_band(f, 80, 30, 290, _VEIN, 0.15 * keep, vein_sigma_px)
    f = _od_band(f, 170, 30, 290, _VEIN, 0.15, vein_sigma_px)
    f = _od_band(f, 80, 60, 260, _HAEMOSIDERIN, stain_od, stain_sigma_px)
    return _u8(_noise(b, 1)), _u8(_noise(f, 2))


@pytest.fixture(scope="module", params=[(4.0, 0.12, 7.0), (3.0, 0.15, 8.0)], ids=["stain-0.12", "stain-0.15"])
def cleared_under_stain(request):
    vein_sigma_px, stain_od, stain_sigma_px = request.param
    b, f = _veins_and_stain(0.0, vein_sigma_px=vein_sigma_px, stain_od=stain_od, stain_sigma_px=stain_sigma_px)
    return {opt: compare(b, f, px_per_mm=PPM, stain_blood_check=opt) for opt in (False, True)}


def test_a_cleared_vein_under_a_haemosiderin_band_is_cleared(cleared_under_stain):
    # the upper vein cleared; the stain band follows its course. Its change at the skin beside
    # the vein is the stain's plus the vein's soft tail fading, which read as a stain less red
    # than it is: its blood share was under-taken out and the band's line read as the vein
    # persisting (improvement 22.0 / 34.4 % with the check off). Unmixed with the stain's
    # colour measured on the pair (the tail's fading regressed out), nothing of the vein's
    # blood is left under the band
    c = cleared_under_stain[True]
    assert c.staining["patches"] == 1
    assert c.improvement_pct == pytest.approx(50.0, abs=5.0)
    under = c.change_map[78:83, 90:230]
    assert (under == CHANGE_CODES["persisting"]).mean() < 0.1
    assert (under == CHANGE_CODES["cleared"]).mean() > 0.8
    assert c.params["stain_blood_check"] is True


def test_without_the_check_the_cleared_vein_under_the_band_reads_persisting(cleared_under_stain):
    # the defect the check mends, kept visible: off (the decision before session 36), part of
    # the cleared vein under the band reads persisting
    c = cleared_under_stain[False]
    assert c.improvement_pct < 40.0
    assert (c.change_map[78:83, 90:230] == CHANGE_CODES["persisting"]).mean() > 0.2
    assert c.params["stain_blood_check"] is False


def test_the_check_is_on_by_default_and_recorded():
    import inspect

    assert inspect.signature(compare).parameters["stain_blood_check"].default is True


@pytest.mark.parametrize(
    "keep, vein_sigma_px, stain_sigma_px, max_cleared, min_persisting",
    [(1.0, 4.0, 7.0, 0.02, 0.7), (0.7, 4.0, 7.0, 0.02, 0.7), (0.5, 4.0, 7.0, 0.05, 0.7), (0.6, 6.0, 9.0, 0.02, 0.4)],
)
def test_a_vein_persisting_under_a_haemosiderin_band_persists(keep, vein_sigma_px, stain_sigma_px, max_cleared, min_persisting):
    # the same band over the upper vein keeping all, 0.7, 0.5 or (a wider vein) 0.6 of its OD
    # (ΔE00 4.2 / 2.9 / 2.1 / 2.5 on the stained skin: perceptible): its blood stays once the
    # stain's colour is taken out. Session 36 (review rev36): the check as first merged read the
    # line's whole melanin-like contrast as stain, the vein's own share too (it unmixes to 0.49
    # melanin per 1.01 haemoglobin), and cleared the 0.5 and 0.6 / sigma 6 veins (improvement
    # 10.3 / 7.4 %); the line is now unmixed as stain plus a share of the baseline's line.
    # Bounds of the two new scenes: the 0.5 vein's line reads cleared on 2.9 % of the window
    # with the check off too (standing out alone); the wider band (sigma 9 px) paints more of
    # the window as staining (persisting 46 %, staining 54 %, check off and on alike)
    b, f = _veins_and_stain(keep, vein_sigma_px=vein_sigma_px, stain_od=0.12, stain_sigma_px=stain_sigma_px)
    c = compare(b, f, px_per_mm=PPM, stain_blood_check=True)
    assert c.staining["patches"] == 1
    assert {v["status"] for v in c.vessels} == {"persisting"}
    assert c.improvement_pct == pytest.approx(0.0, abs=3.0)
    under = c.change_map[78:83, 90:230]
    assert (under == CHANGE_CODES["cleared"]).mean() < max_cleared
    assert (under == CHANGE_CODES["persisting"]).mean() > min_persisting  # the rest the stain's (the painted width)


def test_the_vessels_own_melanin_share_is_kept_with_it_not_read_as_stain():
    from veinscope.compare import _stain_and_kept

    # the line's contrast: a stain (amount 0.3 in its colour) plus 0.6 of the baseline line's,
    # a vein whose own contrast has a melanin-like share (the test vein's 0.49 per 1.01
    # haemoglobin). Reading the whole melanin-like contrast as stain (a = 0.3 + 0.6 x 0.49)
    # would take about 6 % of the kept vein's blood with it; the fit gives back both
    s = np.array([0.116, 0.089, 1.0])
    v = np.array([1.009, 0.574, 0.487])
    rng = np.random.default_rng(1)
    a_true, k_true = rng.uniform(0, 0.5, 50), rng.uniform(0, 1, 50)
    con = a_true * s[:, None] + k_true * v[:, None]
    a, k = _stain_and_kept(con, np.repeat(v[:, None], 50, axis=1), s)
    assert a == pytest.approx(a_true, abs=1e-9)
    assert k == pytest.approx(k_true, abs=1e-9)
    # bounds: a line with less melanin than its sides adds no blood (a >= 0); a line stronger
    # than the baseline's keeps at most all of it (k <= 1); a vanished line keeps none (k >= 0)
    a, k = _stain_and_kept(np.c_[0.8 * v - 0.2 * s, 1.5 * v, -0.3 * v + 0.2 * s], np.repeat(v[:, None], 3, axis=1), s)
    assert (a >= 0).all() and ((k >= 0) & (k <= 1)).all()
    assert k[1] == pytest.approx(1.0) and k[2] == pytest.approx(0.0)
    assert a[0] == pytest.approx(0.0)
    # no baseline line (flat): nothing kept, the line all stain
    a, k = _stain_and_kept((0.2 * s)[:, None], np.zeros((3, 1)), s)
    assert k[0] == 0.0 and a[0] == pytest.approx(0.2)


def test_stain_colour_reads_a_stain_covering_all_the_skin_beside_the_vessels():
    # nothing fell (the stain covers every side point): on main the noise fallback took the
    # stain's own spread for noise, found too few points "clearly stained" and switched the
    # check off silently (rev36 finding 5); now every point that rose counts
    rng = np.random.default_rng(2)
    mel = rng.uniform(0.05, 0.3, 200)
    d = np.stack([0.12 * mel, 0.09 * mel, mel]) + rng.normal(0, 0.002, (3, 200)) * [[1], [1], [0]]
    s = _stain_colour(d, np.zeros((3, 200)) + rng.uniform(0, 0.1, (3, 200)))
    assert s is not None
    assert s == pytest.approx([0.12, 0.09, 1.0], abs=0.01)


def test_stain_colour_bounds_the_tail_and_the_shares():
    rng = np.random.default_rng(3)
    n = 400
    mel = rng.uniform(0.0, 0.3, n)
    quiet = rng.normal(0, 0.005, (3, 100))
    # a blood share beyond any brown pigment's (0.8 per unit of melanin-like change) is capped
    d = np.stack([0.8 * mel, 0.09 * mel, mel])
    s = _stain_colour(np.c_[d, quiet], np.c_[rng.uniform(0, 0.2, (3, n)), np.zeros((3, 100))])
    assert s[0] == pytest.approx(0.3) and s[1] == pytest.approx(0.09, abs=0.005)
    # a tail that rose with the stain (a coefficient > 0, which no fading gives) is held at 0:
    # the slope is then the plain one
    tail = rng.uniform(0.0, 0.2, (2, n))
    d = np.stack([0.05 * mel + 0.3 * tail[0], 0.08 * mel, mel])
    s = _stain_colour(np.c_[d, quiet], np.c_[np.stack([tail[0], tail[1], np.zeros(n)]), np.zeros((3, 100))])
    st = mel > 0.05
    plain = float(np.dot(mel[st], d[0, st]) / np.dot(mel[st], mel[st]))
    assert s[0] == pytest.approx(plain, abs=0.02) and s[0] > 0.1
    # regressors near collinear (the tail follows the stain): the melanin-like slope alone
    tail0 = 0.5 * mel + rng.normal(0, 0.002, n)
    d = np.stack([0.2 * mel, 0.08 * mel, mel])
    s = _stain_colour(np.c_[d, quiet], np.c_[np.stack([tail0, tail[1], np.zeros(n)]), np.zeros((3, 100))])
    assert s[0] == pytest.approx(0.2, abs=0.01)


def test_stain_colour_regresses_out_the_fading_tail():
    rng = np.random.default_rng(0)
    n = 600
    mel = rng.uniform(0.0, 0.3, n)
    tail = rng.uniform(0.0, 0.2, (2, n))
    noise = rng.normal(0, 0.005, (3, n))
    # a stain of blood shares 0.12 / 0.09 per unit of melanin-like change, beside vessels whose
    # tails lost half of what the baseline had there; 100 unstained points (the noise)
    d = np.stack([0.12 * mel - 0.5 * tail[0], 0.09 * mel - 0.5 * tail[1], mel]) + noise
    b = np.stack([tail[0], tail[1], np.zeros(n)])
    quiet = rng.normal(0, 0.005, (3, 100))
    s = _stain_colour(np.c_[d, quiet], np.c_[b, np.zeros((3, 100))])
    assert s == pytest.approx([0.12, 0.09, 1.0], abs=0.01)
    # the ratio of means alone reads the stain much less red (the tails' fall)
    st = d[2] > 0.05
    assert d[0, st].mean() / d[2, st].mean() < 0.0
    # a negative blood share (a pigment bluer than the maps' melanin) is clipped to 0
    d2 = d.copy()
    d2[1] = -0.2 * mel + noise[1]
    assert _stain_colour(np.c_[d2, quiet], np.c_[b, np.zeros((3, 100))])[1] == 0.0
    # too few stained points, or none: no colour
    assert _stain_colour(np.c_[d[:, :10], quiet], np.c_[b[:, :10], np.zeros((3, 100))]) is None
    assert _stain_colour(quiet, np.zeros((3, 100))) is None
    assert _stain_colour(np.zeros((3, 0)), np.zeros((3, 0))) is None


def test_the_check_changes_nothing_without_a_stain():
    b, f = _skin(), _skin()
    for y in (80, 170):
        b = _od_band(b, y, 30, 290, _VEIN, 0.15, 4.0)
    f = _od_band(f, 170, 30, 290, _VEIN, 0.15, 4.0)
    b, f = _u8(_noise(b, 1)), _u8(_noise(f, 2))
    on, off = (compare(b, f, px_per_mm=PPM, stain_blood_check=opt) for opt in (True, False))
    assert on.improvement_pct == off.improvement_pct
    assert np.array_equal(on.change_map, off.change_map)


def test_fall_noise_is_the_mirrored_falls_spread():
    from veinscope.compare import _fall_noise

    rng = np.random.default_rng(4)
    d_mel = np.r_[rng.uniform(0.05, 0.3, 100), rng.normal(0, 0.01, 400)]
    assert _fall_noise(d_mel) == pytest.approx(1.4826 * float(np.median(-d_mel[d_mel < 0])))
    few = np.r_[rng.uniform(0.05, 0.3, 100), -rng.uniform(0.001, 0.01, 8)]
    assert _fall_noise(few) == pytest.approx(1.4826 * float(np.median(-few[few < 0])))
    assert _fall_noise(np.r_[np.ones(50), -0.01 * np.ones(4)]) == 0.0  # under 5 falls


def test_stain_leak_with_a_stain_over_all_the_sides_says_so(caplog):
    import logging

    from veinscope.compare import _stain_leak

    # review rev36's leftover (session 37, helper stl37): with fewer than 20 of the changes
    # fallen, the noise is the spread of all of them, the stain's own: 8 falls among 100
    # stained points leave too few above 3 of it, the leak 0 (0.2 wanted). Read from the few
    # that fell (`_fall_noise`, as `_stain_colour`) it is 0.2, but that moved 3 held-out pairs
    # (median 4.60 -> 5.25), so the rule is kept and says what happened
    rng = np.random.default_rng(4)
    mel = rng.uniform(0.05, 0.3, 100)
    d_blood = 0.2 * mel + rng.normal(0, 0.002, 100)
    d_mel = np.r_[mel, -rng.uniform(0.001, 0.01, 8)]
    with caplog.at_level(logging.DEBUG, logger="veinscope.compare"):
        assert _stain_leak(np.r_[d_blood, np.zeros(8)], d_mel) == 0.0
    assert "8 of 108 points fell" in caplog.text
    # 20 or more falls: the mirrored falls' spread, nothing said
    caplog.clear()
    d_mel = np.r_[mel, rng.normal(0, 0.01, 400)]
    with caplog.at_level(logging.DEBUG, logger="veinscope.compare"):
        assert _stain_leak(np.r_[d_blood, np.zeros(400)], d_mel) == pytest.approx(0.2, abs=0.01)
    assert "stain leak" not in caplog.text


def _vein_under_a_large_band(keep):
    """Session 37 (helper stl37): a large stain. Two equal veins at baseline (rows 100 and 230
    of a 320 x 400 scene, OD 0.2 on the axis, sigma 4 px: ΔE00 5.6 on the skin); the follow-up
    keeps ``keep`` of the upper one's OD and all of the lower one's, and a haemosiderin band
    of OD 0.15 and sigma 16 px (1.6 mm) lies along the upper vein's middle 30 mm: about 166
    mm² of staining, as the generator's large stains (150-660 mm²) along treated veins."""
    shape = (320, 400)
    b, f = _skin(shape), _skin(shape)
    for y in (100, 230):
        b = _od_band(b, y, 30, 370, _VEIN, 0.2, 4.0)
    if keep > 0:
        f = _od_band(f, 100, 30, 370, _VEIN, 0.2 * keep, 4.0)
    f = _od_band(f, 230, 30, 370, _VEIN, 0.2, 4.0)
    f = _od_band(f, 100, 50, 350, _HAEMOSIDERIN, 0.15, 16.0)
    return _u8(_noise(b, 1)), _u8(_noise(f, 2))


def _upper_vessel(c):
    (v,) = [v for v in c.vessels if abs(v["centre_yx"][0] - 100) < 10]
    return v


@pytest.fixture(scope="module")
def half_kept_under_a_large_band():
    b, f = _vein_under_a_large_band(0.5)
    return {m: compare(b, f, px_per_mm=PPM, stain_blood_margin=m) for m in (0.0, 1.0)}


def test_a_vein_persisting_at_half_its_contrast_under_a_large_stain_persists(half_kept_under_a_large_band):
    # the upper vein keeps half its OD under the band: ΔE00 2.7 on the stained skin (threshold
    # 2), persisting for a careful observer. Its kept share reads 0.5 with a noise of about
    # 0.07 along the line (the skin's texture), and where it reads 0.35-0.4 the blood under
    # the stain falls under the threshold: with the check as read (margin 0) 4 % of the
    # window and 13.7 % of the baseline length read cleared (check off: 2.1 %, the lower
    # vein's own short ends). Judged with a margin of one standard error of the share
    # (read from the lines beside it), nothing under the band clears
    c = half_kept_under_a_large_band[1.0]
    assert c.staining["area_mm2"] > 150.0
    assert _upper_vessel(c)["visible_frac"] > 0.95
    assert c.improvement_pct < 5.0
    under = c.change_map[98:103, 90:310]
    assert (under == CHANGE_CODES["cleared"]).mean() < 0.01
    assert c.params["stain_blood_margin"] == 1.0


@pytest.mark.xfail(strict=True, reason="the kept share read without its noise clears stretches of a vein persisting at half its contrast under a large stain (improvement 13.7 % against 0; session 37, stl37: stain_blood_margin mends it, off by default: the development series' median 3.34 -> 3.55)")
def test_by_default_a_vein_persisting_at_half_its_contrast_under_a_large_stain_persists(half_kept_under_a_large_band):
    c = half_kept_under_a_large_band[0.0]
    assert c.improvement_pct < 5.0


@pytest.mark.parametrize("margin", [0.0, 1.0])
def test_a_vein_gone_under_a_large_stain_is_cleared(margin):
    # the same band over the upper vein's place, the vein gone: cleared whole, with or without
    # the margin (the stain's line alone keeps no blood share beyond its noise)
    b, f = _vein_under_a_large_band(0.0)
    c = compare(b, f, px_per_mm=PPM, stain_blood_margin=margin)
    v = _upper_vessel(c)
    assert v["status"] == "cleared" and v["visible_frac"] < 0.02
    under = c.change_map[98:103, 90:310]
    assert (under == CHANGE_CODES["cleared"]).mean() > 0.9


def test_kept_share_sd_reads_the_noise_of_the_lines_beside_it():
    from veinscope.compare import _kept_share_sd

    # eight side lines whose maps scatter by sigma 0.02 (baseline and follow-up alike) around
    # their mean; a line of contrast v, the stain's colour s. The share's standard error is
    # sigma x sqrt(1 + 1/n) x sqrt((1 + k^2) [(X^T X)^-1]_kk), X = [s, v]
    rng = np.random.default_rng(5)
    s = np.array([0.12, 0.09, 1.0])
    v = np.array([0.2, 0.12, 0.09])
    k_pts, nd = 4000, 8
    each_f = rng.normal(0, 0.02, (nd, 3, k_pts))
    each_b = rng.normal(0, 0.02, (nd, 3, k_pts))
    goods = np.ones((nd, k_pts), bool)
    kept = np.full(k_pts, 0.5)
    con_b = np.repeat(v[:, None], k_pts, axis=1)
    sd = _kept_share_sd(con_b, kept, s, each_f, each_b, goods, np.full(k_pts, float(nd)))
    xtx = np.array([[s @ s, s @ v], [s @ v, v @ v]])
    want = 0.02 * np.sqrt((1 + 1 / nd) * (1 + 0.25) * np.linalg.inv(xtx)[1, 1])
    # the follow-up's spread is read in the two directions across the stain's colour (x 1.5)
    assert np.median(sd) == pytest.approx(want, rel=0.1)
    # the sides differing by the stain alone (a band's unevenness): no noise
    each_f = rng.uniform(0, 0.3, (nd, 1, k_pts)) * s[None, :, None]
    sd = _kept_share_sd(con_b, kept, s, each_f, np.zeros((nd, 3, k_pts)), goods, np.full(k_pts, float(nd)))
    assert np.abs(sd).max() < 1e-9
    # fewer than two sides, or no baseline line (the share cannot be read): infinite
    sd = _kept_share_sd(np.zeros((3, 2)), np.zeros(2), s, np.zeros((nd, 3, 2)), np.zeros((nd, 3, 2)), np.ones((nd, 2), bool), np.array([1.0, 8.0]))
    assert np.isinf(sd).all()


def test_stain_blood_margin_default_and_checked():
    import inspect

    assert inspect.signature(compare).parameters["stain_blood_margin"].default == 0.0
    b, f = _vein_under_a_large_band(0.0)
    for bad in (-1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="stain_blood_margin"):
            compare(b, f, px_per_mm=PPM, stain_blood_margin=bad)

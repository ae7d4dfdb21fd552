"""Colour normalisation from the card's patches, the skin fallback, CIEDE2000."""

import numpy as np
import pytest

from tests.test_quality import PPM, leg_photo, light
from veinscope import CalibrationError
from veinscope.calibrate import Calibration, detect_card
from veinscope.colour import (
    PAPER_REFLECTANCE,
    REFERENCE_SKIN_SRGB,
    ColourCorrection,
    correction_from_card,
    correction_from_skin,
    delta_e00,
    measure_patches,
    srgb8_to_lab,
    srgb8_to_lab_f32,
)
from veinscope.segment import skin_mask

WARM = (1.00, 0.82, 0.58)  # tungsten-like, relative to daylight
COOL = (0.78, 0.90, 1.08)


def _skin_de(a, b, skin):
    return float(np.median(delta_e00(a[skin], b[skin])))


@pytest.mark.parametrize("seed, skin_type", [(5, 1), (6, 3)])
def test_same_skin_under_two_lights_gets_the_same_colour(seed, skin_type):
    base = leg_photo(seed, skin_type)
    a, b = light(base, WARM), light(base, tuple(0.6 * g for g in COOL))
    skin = skin_mask(base)
    before = _skin_de(a, b, skin)
    ca = correction_from_card(a, detect_card(a))
    cb = correction_from_card(b, detect_card(b))
    after = _skin_de(ca.apply(a), cb.apply(b), skin)
    assert before > 8.0
    assert after < 1.5, (before, after)
    assert ca.reliable and ca.source == "card"
    # and the correction is the light: gain = light x card light / paper reflectance
    np.testing.assert_allclose(ca.gain, np.array(WARM) * 0.85 / PAPER_REFLECTANCE, rtol=0.03)
    assert ca.residual_de00 < 2.0


def test_patches_measured_where_the_card_is():
    rgb = leg_photo()
    meas = measure_patches(rgb, detect_card(rgb))
    assert all(v["visible"] for v in meas.values())
    assert meas["grey_122"]["srgb"].mean() == pytest.approx(122 * (0.85 ** (1 / 2.2)), abs=6)
    assert meas["red"]["srgb"][0] > 2 * meas["red"]["srgb"][2]


def test_burnt_out_paper_warned_and_greys_still_used():
    rgb = light(leg_photo(), (1.4, 1.4, 1.4))
    corr = correction_from_card(rgb, detect_card(rgb))
    assert any("burnt out" in w for w in corr.warnings)
    assert "paper" not in corr.params["patches_used"]
    np.testing.assert_allclose(corr.gain, 1.4 * 0.85 / PAPER_REFLECTANCE, rtol=0.04)


def test_card_outside_the_photo_cannot_correct():
    rgb = leg_photo(card=False)
    far = Calibration(px_per_mm=PPM, source="card", homography=np.array([[7.0, 0, 5000], [0, 7.0, 5000], [0, 0, 1]]))
    with pytest.raises(CalibrationError, match="grey patches"):
        correction_from_card(rgb, far)


def test_apply_keeps_input_and_identity_is_identity():
    rgb = leg_photo(card=False)
    before = rgb.copy()
    ident = ColourCorrection("none", True, np.ones(3), np.zeros(3), 0.0)
    out = ident.apply(rgb)
    np.testing.assert_array_equal(out, rgb)
    np.testing.assert_array_equal(rgb, before)
    with pytest.raises(ValueError, match="rgb"):
        ident.apply(rgb[..., 0])


def test_skin_fallback_is_marked_less_reliable():
    base = leg_photo(card=False)
    a = light(base, WARM)
    skin = skin_mask(a)
    corr = correction_from_skin(a, skin)
    assert corr.source == "skin" and not corr.reliable
    assert any("less reliable" in w for w in corr.warnings)
    fixed = corr.apply(a)
    assert np.abs(np.median(fixed[skin], axis=0) - REFERENCE_SKIN_SRGB).max() <= 2
    # two lights: the fallback also brings them together
    b = light(base, tuple(0.6 * g for g in COOL))
    cb = correction_from_skin(b, skin_mask(b))
    assert _skin_de(fixed, cb.apply(b), skin) < 0.5 * _skin_de(a, b, skin)
    with pytest.raises(CalibrationError):
        correction_from_skin(a, np.zeros(skin.shape, bool))


def test_delta_e00():
    c = np.array([[200, 150, 130], [50, 60, 200]], np.uint8)
    np.testing.assert_allclose(delta_e00(c, c), 0.0, atol=1e-9)
    d = delta_e00(c, c[::-1])
    assert np.all(d > 10) and d[0] == pytest.approx(d[1])


def test_lab_and_delta_e00_equal_scikit_image():
    # the references: scikit-image's rgb2lab and deltaE_ciede2000 (VeinScope's own code
    # replaced them to keep scikit-image out of the analysis)
    from skimage.color import deltaE_ciede2000, rgb2lab

    rng = np.random.default_rng(11)
    a = rng.integers(0, 256, (300, 3)).astype(np.uint8)
    a[:32] = np.arange(0, 256, 8)[:, None]  # the greys, through the linear toe of sRGB
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    b[32:40] = a[32:40]  # identical pairs
    b[40:60] = 255 - a[40:60]  # opposite hues, where the hue terms wrap
    ref_a, ref_b = (rgb2lab((x / 255.0).reshape(-1, 1, 3)).reshape(-1, 3) for x in (a, b))
    np.testing.assert_allclose(srgb8_to_lab(a), ref_a, rtol=0, atol=1e-9)
    d = delta_e00(a.reshape(20, 15, 3), b.reshape(20, 15, 3))
    assert d.shape == (20, 15) and d.dtype == np.float64
    np.testing.assert_allclose(d.reshape(-1), deltaE_ciede2000(ref_a, ref_b), rtol=0, atol=1e-9)
    assert np.all(d.reshape(-1)[32:40] == 0.0)
    np.testing.assert_allclose(delta_e00((200.5, 150.25, 130.0), (190.0, 150.0, 131.0)),
                               deltaE_ciede2000(rgb2lab(np.array([[[200.5, 150.25, 130.0]]]) / 255.0),
                                                rgb2lab(np.array([[[190.0, 150.0, 131.0]]]) / 255.0))[0, 0], atol=1e-9)
    with pytest.raises(ValueError, match="same shape"):
        delta_e00(a[:3], a[:4])


def test_fast_lab_agrees_with_the_reference():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    rgb[0, :] = np.arange(0, 250, 5)[:, None]  # the greys, through the linear toe of sRGB
    lab = srgb8_to_lab_f32(rgb)
    assert lab.dtype == np.float32 and lab.shape == rgb.shape
    np.testing.assert_allclose(lab, srgb8_to_lab(rgb), atol=0.01)
    assert lab[0, 0, 0] == 0.0 and abs(lab[0, -1, 0] - 96.54) < 0.01  # black; sRGB 245 grey
    with pytest.raises(ValueError, match="uint8"):
        srgb8_to_lab_f32(rgb.astype(np.float32))


def test_a_covered_grey_patch_is_left_out():
    import cv2

    from veinscope.card import CARD

    rgb = leg_photo()
    cal = detect_card(rgb)
    p = next(q for q in CARD.patches if q.name == "grey_168")
    poly = cal.project_mm(p.corners_mm())
    cv2.fillConvexPoly(rgb, np.round(poly).astype(np.int32), (60, 40, 35))  # a finger over it
    corr = correction_from_card(rgb, cal)
    assert any("grey_168" in w for w in corr.warnings)
    assert "grey_168" not in corr.params["patches_used"]
    np.testing.assert_allclose(corr.gain, 0.85 / PAPER_REFLECTANCE, rtol=0.03)


@pytest.mark.parametrize("contiguous", [True, False])
def test_apply_is_the_per_channel_table_lookup(contiguous):
    """apply() looks the three channels up in one OpenCV LUT: the same values as looking each
    channel up in its own table, for every one of the 256 levels, on contiguous and strided photos."""
    from veinscope.card import srgb_to_linear
    from veinscope.colour import linear_to_srgb8

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (64, 2 * 260, 3), dtype=np.uint8)
    rgb[0, : 2 * 256 : 2] = np.arange(256, dtype=np.uint8)[:, None]  # every level in every channel
    if not contiguous:
        rgb = rgb[:, ::2]
    before = rgb.copy()
    corr = ColourCorrection("card", True, np.array([0.8, 1.1, 0.65]), np.array([0.01, -0.02, 0.004]), 0.3)
    lin = srgb_to_linear(np.arange(256))
    want = np.stack(
        [linear_to_srgb8((lin - corr.offset[c]) / corr.gain[c])[rgb[..., c]] for c in range(3)], axis=-1
    )
    out = corr.apply(rgb)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(rgb, before)
    assert not np.array_equal(out, rgb)


def _shaded(rgb, cal, low):
    """The photo lit by a ramp across the card's width (linear light): ``low`` of the light at
    the card's left edge, full light at its right edge, as on a card lying on the rounded leg."""
    from veinscope.card import CARD, srgb_to_linear
    from veinscope.colour import linear_to_srgb8

    m, n = rgb.shape[:2]
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    # card millimetres of every pixel through the inverse of the card's homography
    hinv = np.linalg.inv(cal.homography)
    den = hinv[2, 0] * xx + hinv[2, 1] * yy + hinv[2, 2]
    x_mm = (hinv[0, 0] * xx + hinv[0, 1] * yy + hinv[0, 2]) / den
    ramp = low + (1 - low) * np.clip(x_mm / CARD.width_mm, 0, 1)
    return linear_to_srgb8(srgb_to_linear(rgb) * ramp[..., None])


def test_a_card_across_the_legs_shading_still_corrects_the_colours():
    rgb = leg_photo()
    cal = detect_card(rgb)
    even = correction_from_card(rgb, cal)
    shaded = _shaded(rgb, cal, 0.55)
    # read as they are, the patches do not lie on one line: the correction is refused or off
    try:
        raw = correction_from_card(shaded, cal, flat_field=False).residual_de00
    except CalibrationError as exc:
        assert "do not agree" in str(exc)
        raw = np.inf
    corr = correction_from_card(shaded, cal)
    assert raw > 3 * corr.residual_de00
    lf = corr.params["light_field"]
    # the field found is the ramp: 0.55 to 1 across the card, relative to its mean (0.775)
    assert lf["lowest"] == pytest.approx(0.55 / 0.775, abs=0.05)
    assert lf["highest"] == pytest.approx(1 / 0.775, abs=0.05)
    assert lf["residual"] < 0.02
    # the correction is that of the card's mean light, and holds on the colour patches
    np.testing.assert_allclose(corr.gain, even.gain * 0.775, rtol=0.04)
    assert corr.residual_de00 < 1.0
    assert not any("uneven" in w for w in corr.warnings)


def test_very_uneven_light_on_the_card_is_warned():
    rgb = leg_photo()
    cal = detect_card(rgb)
    corr = correction_from_card(_shaded(rgb, cal, 0.3), cal)
    assert any("very uneven" in w for w in corr.warnings)


def test_an_evenly_lit_card_reads_the_same_with_and_without_the_field():
    rgb = leg_photo()
    cal = detect_card(rgb)
    on, off = correction_from_card(rgb, cal), correction_from_card(rgb, cal, flat_field=False)
    lf = on.params["light_field"]
    assert lf["cells"] > 150
    assert 0.97 < lf["lowest"] <= 1 <= lf["highest"] < 1.03
    np.testing.assert_allclose(on.gain, off.gain, rtol=0.02)
    assert off.params["light_field"] is None


def test_a_finger_on_the_cards_white_paper_does_not_bend_the_field():
    import cv2

    from veinscope.card import CARD

    rgb = leg_photo()
    cal = detect_card(rgb)
    shaded = _shaded(rgb, cal, 0.6)
    ref = correction_from_card(shaded, cal)
    # a fingertip over the blank paper at the card's bottom edge, between the markers
    poly = cal.project_mm(np.array([[20.0, 46.0], [40.0, 46.0], [40.0, CARD.height_mm], [20.0, CARD.height_mm]]))
    cv2.fillConvexPoly(shaded, np.round(poly).astype(np.int32), (150, 100, 85))
    corr = correction_from_card(shaded, cal)
    np.testing.assert_allclose(corr.gain, ref.gain, rtol=0.02)
    assert corr.params["light_field"]["cells"] < ref.params["light_field"]["cells"]


def test_no_field_without_enough_unclipped_paper():
    from veinscope.colour import light_field

    rgb = light(leg_photo(), (1.4, 1.4, 1.4))  # the paper burnt out
    assert light_field(rgb, detect_card(rgb)) is None


def test_a_card_burnt_out_over_much_of_it_says_so():
    rgb = leg_photo()
    cal = detect_card(rgb)
    # the light falls to 0.3 across the card and the photo is 2.5 x too bright: most of the paper clips
    with pytest.raises(CalibrationError, match="burnt out"):
        correction_from_card(light(_shaded(rgb, cal, 0.3), (2.5, 2.5, 2.5)), cal)


def test_a_correction_that_leaves_the_colour_patches_off_is_warned():
    rgb = leg_photo()
    cal = detect_card(rgb)
    # 2 x too bright, the light falling to 0.4 across the card: too little paper is seen unclipped
    # to fit the light's field, and the correction from the greys left misses the colour patches
    corr = correction_from_card(light(_shaded(rgb, cal, 0.4), (2.0, 2.0, 2.0)), cal)
    assert corr.residual_de00 > 4
    assert any("off their printed colours" in w for w in corr.warnings)
    good = correction_from_card(rgb, cal)
    assert not any("off their printed colours" in w for w in good.warnings)


def test_a_field_that_misses_falls_back_to_the_patches_as_they_are(monkeypatch):
    # a field extrapolated far from the paper it was fitted to (half the card burnt out) can be
    # wrong; when the patches read through it do not fit but read as they are do, the latter win
    import veinscope.colour as col

    rgb = leg_photo()
    cal = detect_card(rgb)
    even = correction_from_card(rgb, cal, flat_field=False)
    true_field = col.light_field(rgb, cal)
    steep = col.LightField(
        coef=np.array([1.0, 0.0, 1.2, 0.0, 0.0, 0.0]), offset=np.zeros(3), width_mm=true_field.width_mm,
        height_mm=true_field.height_mm, cells=100, lowest=0.4, highest=1.6, residual=0.01,
    )
    assert col._read_card(rgb, cal, col.CARD, steep)["bad"]  # read through it, the greys do not fit
    monkeypatch.setattr(col, "light_field", lambda *a, **k: steep)
    corr = correction_from_card(rgb, cal)
    assert corr.params["light_field"] is None
    np.testing.assert_allclose(corr.gain, even.gain, rtol=1e-9)

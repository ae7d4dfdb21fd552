"""Photo-quality warnings, each tested on generated photos with and without the defect."""

import functools

import cv2
import numpy as np
import pytest

from veinscope.calibrate import manual_calibration
from veinscope.card import camera_homography, composite_card, srgb_to_linear
from veinscope.colour import linear_to_srgb8
from veinscope.intake import prepare
from veinscope.quality import QualityWarning, assess_quality, skin_blur_px

PPM = 7.0


@functools.lru_cache(maxsize=8)
def _leg(seed, skin_type):
    from veinscope.synth import generate_photo

    sp = generate_photo(seed=seed, size=(900, 700), px_per_mm=PPM, card=False, skin_type=skin_type, jpeg_quality=None)
    out = np.array(sp.rgb)
    out.setflags(write=False)
    return out


def leg_photo(seed=5, skin_type=1, *, card=True, tilt=6.0):
    """A generated leg photo (seed 5: skin type 1, seed 6: type 3), with the card lying on it."""
    rgb = np.array(_leg(seed, skin_type))
    if card:
        h = camera_homography(px_per_mm=PPM, centre_xy=(330, 470), tilt_deg=tilt, tilt_axis_deg=20, rotation_deg=8)
        rgb, _ = composite_card(rgb, h, light_rgb=(0.85, 0.85, 0.85))
    return rgb


def light(rgb, gains):
    return linear_to_srgb8(srgb_to_linear(rgb) * np.asarray(gains, float))


def blur(rgb, sigma_px):
    return linear_to_srgb8(cv2.GaussianBlur(srgb_to_linear(rgb), (0, 0), sigma_px))


def glare(rgb, frac, seed=0):
    """Clipped white specular spots over ``frac`` of the frame, away from the card (left part)."""
    rng = np.random.default_rng(seed)
    out = rgb.copy()
    m, n = rgb.shape[:2]
    spots = np.zeros((m, n), np.uint8)
    while spots.mean() < frac:
        cv2.circle(spots, (int(rng.integers(560, n - 20)), int(rng.integers(20, m - 20))), int(rng.uniform(3, 9)), 1, -1)
    out[spots.astype(bool)] = 255
    return out


def codes(rgb, **kw):
    return {i.code for i in prepare(rgb, **kw).issues}


DEFECT_CODES = {"blur", "glare", "overexposed", "underexposed", "card_tilted", "little_skin", "no_skin", "low_scale", "no_scale"}


@pytest.mark.parametrize("seed, skin_type", [(5, 1), (6, 3)])
def test_good_photo_with_card_has_no_warning(seed, skin_type):
    it = prepare(leg_photo(seed, skin_type))
    assert it.scale_source == "card"
    assert not {i.code for i in it.issues} & DEFECT_CODES, it.issues


def test_no_scale_and_fix():
    it = prepare(leg_photo(card=False))
    w = [i for i in it.issues if i.code == "no_scale"]
    assert w and "card" in w[0].message
    assert "no_scale" not in codes(leg_photo(card=False), px_per_mm=PPM)


def test_low_scale():
    assert "low_scale" in codes(leg_photo(card=False), px_per_mm=4.0)
    assert "low_scale" not in codes(leg_photo(card=False), px_per_mm=6.5)


@pytest.mark.parametrize("seed, skin_type", [(5, 1), (6, 3)])
def test_blur_at_the_card(seed, skin_type):
    sharp = leg_photo(seed, skin_type)
    assert "blur" not in codes(sharp)
    out = prepare(blur(sharp, 2.5))
    assert out.scale_source == "card"
    w = [i for i in out.issues if i.code == "blur"]
    assert w and "focus" in w[0].message and w[0].value > 2.0


@pytest.mark.parametrize("seed, skin_type", [(5, 1), (6, 3)])
def test_blur_without_card_only_when_strong(seed, skin_type):
    sharp = leg_photo(seed, skin_type, card=False)
    assert "blur" not in codes(sharp)
    assert "blur" in codes(blur(sharp, 4.0))
    assert skin_blur_px(blur(sharp, 4.0)) > skin_blur_px(sharp) + 1.0


@pytest.mark.parametrize("seed, skin_type", [(5, 1), (6, 3)])
def test_glare(seed, skin_type):
    base = leg_photo(seed, skin_type)
    assert "glare" not in codes(base)
    it = prepare(glare(base, 0.01))
    w = [i for i in it.issues if i.code == "glare"]
    assert w and "flash" in w[0].message and 0.005 < w[0].value < 0.03


@pytest.mark.parametrize("card", [True, False])
def test_overexposed(card):
    base = leg_photo(5, 1, card=card)
    assert "overexposed" not in codes(base)
    assert "overexposed" in codes(light(base, (3.0, 3.0, 3.0)))


@pytest.mark.parametrize("seed, skin_type", [(5, 1), (6, 3)])
def test_underexposed(seed, skin_type):
    base = leg_photo(seed, skin_type)
    assert "underexposed" not in codes(base)
    assert "underexposed" not in codes(light(base, (0.5, 0.5, 0.5)))  # one stop under is fine
    it = prepare(light(base, (0.12, 0.12, 0.12)))
    assert "underexposed" in {i.code for i in it.issues}


def test_a_photo_too_dark_to_find_skin_is_told_to_use_more_light():
    """A leg photographed in a dim room (the pixel values x 0.12, seven stops under): no skin is
    found in it, which read "Little or no skin was found ... Photograph the treated area so that
    skin fills most of the picture" (session 32's walk, legs-dev veins_03 and the demo photo);
    the light is what is wrong."""
    import veinscope

    base = leg_photo(card=False)
    for f in (0.2, 0.12, 0.06):
        dark = (base.astype(np.float32) * f).astype(np.uint8)
        it = prepare(dark, px_per_mm=PPM)
        found = {i.code for i in it.issues}
        assert "underexposed" in found and not {"no_skin", "little_skin"} & found, (f, found)
        a = veinscope.analyze(dark, px_per_mm=PPM)
        assert any("too dark" in w for w in a.warnings) and not any("Little or no skin" in w for w in a.warnings), a.warnings
    # not too dark: a scene without skin is still told to show skin
    none = base.copy()
    none[:] = (40, 60, 150)
    assert "underexposed" not in codes(none, px_per_mm=PPM)


def test_a_very_dark_photo_with_the_card_is_analysed_not_crashed():
    """The demo photo of site b at 0.15 x its pixel values, as a JPEG: the half-maximum kernel divided by
    zero on its flat, quantised profiles (ZeroDivisionError; the app said "this file could not be read as
    a photo", session 32's walk). Now it is analysed and told to use more light."""
    from pathlib import Path

    import veinscope

    path = Path(__file__).resolve().parents[1] / "sample_images" / "demo_patient" / "site_b" / "session0.jpg"
    if not path.is_file():
        pytest.skip("sample_images/demo_patient is missing (run scripts/make_samples.py)")
    from PIL import Image

    rgb = veinscope.load_photo(path).rgb
    buf = __import__("io").BytesIO()
    Image.fromarray((rgb.astype(np.float32) * 0.15).astype(np.uint8)).save(buf, "JPEG", quality=92)
    a = veinscope.analyze(buf.getvalue())
    assert any("too dark" in w for w in a.warnings), a.warnings


def test_card_strongly_tilted():
    assert "card_tilted" not in codes(leg_photo(tilt=12.0))
    it = prepare(leg_photo(tilt=28.0))
    w = [i for i in it.issues if i.code == "card_tilted"]
    assert w and "parallel to the skin" in w[0].message and w[0].value == pytest.approx(28.0, abs=1.5)


def test_little_and_no_skin():
    base = leg_photo(card=False)
    cloth = base.copy()
    cloth[:, 120:] = (40, 60, 150)  # blue cloth over most of the view
    cloth[:, 120:] += np.random.default_rng(0).integers(0, 20, cloth[:, 120:].shape, dtype=np.uint8)
    assert "little_skin" in codes(cloth, px_per_mm=PPM)
    none = base.copy()
    none[:] = (40, 60, 150)
    none += np.random.default_rng(1).integers(0, 20, none.shape, dtype=np.uint8)
    assert "no_skin" in codes(none, px_per_mm=PPM)
    assert not {"little_skin", "no_skin"} & codes(base, px_per_mm=PPM)


def test_an_over_exposed_photo_is_not_told_to_come_closer():
    """The demo photo brightened 1.7x (notebook 02): its burnt-out skin is not found as skin, which read as
    'Skin fills only 13 % of the photo. Come closer' beside the over-exposure warning; only the exposure is
    the problem."""
    from pathlib import Path

    import veinscope

    path = Path(__file__).resolve().parents[1] / "sample_images" / "demo_patient" / "site_a" / "session0.jpg"
    if not path.is_file():
        pytest.skip("sample_images/demo_patient is missing (run scripts/make_samples.py)")
    rgb = veinscope.load_photo(path).rgb
    bright = np.clip(rgb.astype(np.float32) * 1.7, 0, 255).astype(np.uint8)
    found = codes(bright)
    assert "overexposed" in found and "little_skin" not in found, found
    assert not {"little_skin", "overexposed"} & codes(rgb)


def test_every_warning_is_plain_language_with_a_fix():
    photo = light(blur(leg_photo(tilt=28.0), 2.5), (0.12, 0.12, 0.12))
    issues = assess_quality(photo, calibration=manual_calibration(4.0))
    assert issues
    for i in issues:
        assert isinstance(i, QualityWarning) and len(i.message) > 40
        assert i.to_dict()["code"] == i.code
        for jargon in ("sigma", "homography", "Traceback"):
            assert jargon not in i.message


def test_assess_quality_does_not_modify_and_checks_input():
    rgb = leg_photo(card=False)
    before = rgb.copy()
    assess_quality(rgb, px_per_mm=PPM)
    np.testing.assert_array_equal(rgb, before)
    with pytest.raises(ValueError, match="rgb"):
        assess_quality(rgb.astype(np.float32))


def _skin_blur_px_full_grey(rgb, mask):
    """Reference: the estimate with the whole photo converted to grey before the window is cut."""
    import cv2

    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mk = np.asarray(mask, dtype=bool)
    m, n = g.shape
    win = 1024
    ys, xs = np.nonzero(mk[::8, ::8])
    cy, cx = int(np.median(ys) * 8), int(np.median(xs) * 8)
    y0 = int(np.clip(cy - win // 2, 0, max(0, m - win)))
    x0 = int(np.clip(cx - win // 2, 0, max(0, n - win)))
    g, mk = g[y0 : y0 + win, x0 : x0 + win], mk[y0 : y0 + win, x0 : x0 + win]
    mk = cv2.erode(mk.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)

    def grad(t):
        sm = cv2.GaussianBlur(g, (0, 0), t)
        return np.hypot(cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3) / 8.0, cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3) / 8.0)

    fine, coarse = grad(1.0), grad(3.0)
    thr = np.quantile(coarse[mk], 0.995)
    sel = mk & (coarse >= thr)
    fine_peak = cv2.dilate(fine, np.ones((5, 5), np.uint8))
    r2 = float(np.median(fine_peak[sel] / np.maximum(coarse[sel], 1e-6))) ** 2
    return float(np.sqrt(max(0.0, (9.0 - r2) / (r2 - 1.0))))


def test_skin_blur_on_a_large_photo_equals_the_full_grey_reference():
    """The window is cut from the photo before the grey conversion: the same estimate, exactly."""
    import cv2

    rng = np.random.default_rng(5)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (1500, 1700, 3), dtype=np.uint8), (0, 0), 1.5)
    mask = np.zeros(rgb.shape[:2], bool)
    mask[200:1450, 500:1650] = True  # off-centre: the window is not the photo's middle
    got = skin_blur_px(rgb, mask)
    assert got is not None and got == _skin_blur_px_full_grey(rgb, mask)


def test_pixels_at_is_the_strided_boolean_index():
    """The exposure checks take the skin's pixels of the subsampled photo by row indices into
    the whole photo: the same pixels, in the same order, as indexing the strided view."""
    from veinscope.quality import _pixels_at

    rng = np.random.default_rng(9)
    for shape, step in [((97, 131, 3), 3), ((40, 41, 3), 1), ((64, 50, 3), 5)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        mask = rng.random(a[::step, ::step].shape[:2]) < 0.6
        want = a[::step, ::step][mask]
        got = _pixels_at(a, mask, step)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(_pixels_at(a[:, ::-1], mask, step), a[:, ::-1][::step, ::step][mask])

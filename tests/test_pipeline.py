"""End-to-end engine tests on analytic photos with known vessels, and the CLI output contract."""

import io
import json
import math

import numpy as np
import pytest
from PIL import Image

import veinscope
from veinscope.chromophores import CHROMOPHORE_DIRECTIONS
from veinscope.cli import main

SKIN = np.array([205.0, 160.0, 140.0])


def _render(od_maps, rng, noise=1.0):
    """Skin photo from per-chromophore OD maps (Beer-Lambert on linear sRGB)."""
    lin = ((SKIN / 255 + 0.055) / 1.055) ** 2.4
    total = np.zeros(od_maps[0][1].shape + (3,))
    for direction, amount in od_maps:
        total += amount[..., None] * np.asarray(direction)
    out_lin = lin * np.exp(-total)
    srgb = np.where(out_lin <= 0.0031308, 12.92 * out_lin, 1.055 * out_lin ** (1 / 2.4) - 0.055) * 255
    return np.clip(srgb + rng.normal(0, noise, srgb.shape), 0, 255).round().astype(np.uint8)


def _bar(shape, p0, p1, width, amplitude, blur=0.8):
    """Anti-aliased straight bar of given width (px) between p0 and p1, blurred."""
    from scipy import ndimage as ndi

    m, n = shape
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    L = math.hypot(dy, dx)
    t = ((yy - y0) * dy + (xx - x0) * dx) / L
    d = np.abs((yy - y0) * dx - (xx - x0) * dy) / L
    inside = np.clip(width / 2 - d + 0.5, 0, 1) * ((t >= 0) & (t <= L))
    return amplitude * ndi.gaussian_filter(inside, blur)


@pytest.fixture(scope="module")
def leg_photo():
    rng = np.random.default_rng(7)
    shape = (400, 520)
    ppm = 10.0
    red = _bar(shape, (60, 40), (90, 480), 0.5 * ppm, 0.35)           # 0.5 mm red telangiectasia
    blue = _bar(shape, (200, 40), (230, 480), 0.6 * ppm, 0.30)        # 0.6 mm blue telangiectasia
    ret = _bar(shape, (300, 60), (340, 470), 2.0 * ppm, 0.18, 2.0)    # 2 mm reticular vein
    freckle = np.zeros(shape)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    for cy, cx in ((140, 100), (150, 300), (260, 420)):
        freckle += 0.5 * (((yy - cy) ** 2 + (xx - cx) ** 2) < 5**2)
    hair = _bar(shape, (120, 150), (175, 420), 1.5, 1.6, 0.5)          # dark hair
    rgb = _render(
        [
            (CHROMOPHORE_DIRECTIONS["haemoglobin"], red),
            (CHROMOPHORE_DIRECTIONS["venous"], blue + ret),
            (CHROMOPHORE_DIRECTIONS["melanin"], freckle),
            (np.ones(3), hair),
        ],
        rng,
    )
    truth = {
        "red_len": math.hypot(30, 440) / ppm,
        "blue_len": math.hypot(30, 440) / ppm,
        "ret_len": math.hypot(40, 410) / ppm,
    }
    return rgb, ppm, truth


@pytest.fixture(scope="module")
def leg_analysis(leg_photo):
    rgb, ppm, _ = leg_photo
    return veinscope.analyze(rgb, px_per_mm=ppm)


def test_classes_lengths_and_diameters(leg_analysis, leg_photo):
    _, ppm, truth = leg_photo
    c = leg_analysis.to_dict()["classes"]
    assert c["red_telangiectasia"]["length_mm"] == pytest.approx(truth["red_len"], rel=0.12)
    assert c["blue_telangiectasia"]["length_mm"] == pytest.approx(truth["blue_len"], rel=0.12)
    assert c["reticular"]["length_mm"] == pytest.approx(truth["ret_len"], rel=0.15)
    assert c["over_3mm"]["segments"] == 0
    assert c["red_telangiectasia"]["diameter_mm"]["median"] == pytest.approx(0.5, abs=0.08)
    assert c["blue_telangiectasia"]["diameter_mm"]["median"] == pytest.approx(0.6, abs=0.08)
    assert c["reticular"]["diameter_mm"]["median"] == pytest.approx(2.0, abs=0.3)
    tot = c["total"]
    assert tot["segments"] == sum(c[k]["segments"] for k in ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm"))
    assert tot["area_mm2"] == pytest.approx(leg_analysis.labels.astype(bool).sum() / ppm**2, abs=1e-3)
    assert tot["coverage_pct"] == pytest.approx(100 * (leg_analysis.labels > 0).sum() / leg_analysis.skin.sum(), abs=1e-3)


def test_hair_and_freckles_are_not_vessels(leg_analysis):
    labels = leg_analysis.labels
    for cy, cx in ((140, 100), (150, 300), (260, 420)):
        assert labels[cy - 4 : cy + 5, cx - 4 : cx + 5].max() == 0
    # the hair runs from (120,150) to (175,420): sample its middle
    for t in np.linspace(0.2, 0.8, 5):
        y, x = int(120 + t * 55), int(150 + t * 270)
        assert labels[y - 1 : y + 2, x - 1 : x + 2].max() == 0


def test_labels_and_diameters_consistent(leg_analysis):
    lab = leg_analysis.labels
    d = leg_analysis.diameter_mm
    assert lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1, 2, 3, 4}
    assert np.all(d[lab == 0] == 0)
    assert np.all(d[lab > 0] > 0)
    assert np.all(d[(lab == 1) | (lab == 2)] < 1.0 + 1e-6)


def test_blank_skin_is_empty():
    rng = np.random.default_rng(3)
    rgb = np.clip(SKIN + rng.normal(0, 2.0, (300, 300, 3)), 0, 255).astype(np.uint8)
    a = veinscope.analyze(rgb, px_per_mm=10.0)
    assert a.classes["total"].segments == 0
    assert a.to_dict()["classes"]["total"]["coverage_pct"] == 0


def test_uncalibrated_gives_pixels_and_warning(leg_photo):
    rgb, ppm, truth = leg_photo
    a = veinscope.analyze(rgb)
    d = a.to_dict()
    assert d["px_per_mm"] is None
    assert d["classes"]["total"]["length_mm"] is None and d["classes"]["total"]["length_px"] > 0
    assert any("No scale" in w for w in d["warnings"])


def test_input_not_modified_and_bad_scale(leg_photo):
    rgb, _, _ = leg_photo
    before = rgb.copy()
    veinscope.analyze(rgb, px_per_mm=10.0)
    np.testing.assert_array_equal(rgb, before)
    with pytest.raises(ValueError, match="px_per_mm"):
        veinscope.analyze(rgb, px_per_mm=-1.0)


def test_low_scale_warning(leg_photo):
    rgb, _, _ = leg_photo
    a = veinscope.analyze(rgb, px_per_mm=4.0)
    assert any("0.2 mm" in w for w in a.warnings)


def test_cli_writes_the_contract(tmp_path, leg_photo, capsys):
    import tifffile

    rgb, ppm, _ = leg_photo
    photo = tmp_path / "leg.png"
    Image.fromarray(rgb).save(photo)
    out = tmp_path / "out"
    assert main(["analyze", str(photo), "--out", str(out), "--px-per-mm", str(ppm)]) == 0
    data = json.loads((out / "analysis.json").read_text())
    assert data["px_per_mm"] == ppm and isinstance(data["warnings"], list)
    for k in ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm", "total"):
        entry = data["classes"][k]
        assert set(entry) >= {"coverage_pct", "area_mm2", "length_mm", "diameter_mm", "segments"}
        assert set(entry["diameter_mm"]) == {"mean", "median", "p90"}
    assert data["version"] == veinscope.__version__ and "parameters" in data
    labels = np.asarray(Image.open(out / "labels.png"))
    assert labels.dtype == np.uint8 and labels.shape == rgb.shape[:2]
    diam = tifffile.imread(out / "diameter_mm.tif")
    assert diam.dtype == np.float32 and diam.shape == rgb.shape[:2]
    assert np.all((diam > 0) == (labels > 0))
    overlay = np.asarray(Image.open(out / "overlay.png"))
    assert overlay.shape[1:] == rgb.shape[1:] and overlay.shape[0] > rgb.shape[0]  # the legend strip beneath
    assert "vessel segments" in capsys.readouterr().out


def test_cli_several_photos_and_failure(tmp_path, leg_photo, capsys):
    rgb, ppm, _ = leg_photo
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[::-1]).save(tmp_path / "b.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    code = main(["analyze", str(tmp_path / "a.png"), str(tmp_path / "broken.jpg"), str(tmp_path / "b.png"), "--out", str(out)])
    assert code == 1
    assert (out / "a" / "analysis.json").exists() and (out / "b" / "labels.png").exists()
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "Traceback" not in err


def test_warmup_runs():
    assert veinscope.warmup() < 60


def test_full_size_warmup_runs_a_12mp_frame(monkeypatch):
    from veinscope import pipeline

    shapes = []
    real = pipeline.analyze

    def spy(photo, **kw):
        shapes.append(photo.rgb.shape)
        return real(photo, **kw)

    monkeypatch.setattr(pipeline, "analyze", spy)
    assert pipeline.warmup() > 0 and shapes == [(96, 96, 3)]
    pipeline.warmup(full_size=True)
    assert shapes[-1] == (3000, 4000, 3)


# ---- faint vessels: a band above the low level along its whole length (issue 4) ----------
def _textured_skin(seed, shape=(360, 480)):
    """Pink skin with a fine mottled texture (the detection's noise unit) and pixel noise."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.empty(shape + (3,), np.float32)
    img[:] = (205, 150, 135)
    tex = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 1.2)
    return img + (tex / tex.std() * 4.0)[..., None]


def _faint_line(img, depth, width_px):
    """A long, slightly sloping bluish vessel of Gaussian profile (FWHM ``width_px``) across
    ``img``, 300 px long, and its centreline (y as a function of x, x range)."""
    m, n = img.shape[:2]
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float32)
    yc = m / 2 + 0.08 * (xx - n / 2)
    prof = np.exp(-0.5 * ((yy - yc) / (width_px / 2.355)) ** 2) * ((xx > 90) & (xx < n - 90))
    out = img * np.exp(-prof[..., None] * (np.array([0.25, 0.6, 0.35], np.float32) * depth))
    return out, (lambda x: m / 2 + 0.08 * (x - n / 2))


#: ``_faint_line``'s OD (0.25, 0.6, 0.35) absorbs green most: haemoglobin's colour by the
#: engine's red/blue rule (red share 0.68), so at 1.2 mm it is a red band wider than a
#: telangiectasia, which ``max_red_diameter_mm`` (session 17) drops; the tests of the faint
#: band and join rules turn that rule off and keep their line as it was.
_FAINT_RED = {"max_red_diameter_mm": None}


def _u8(img, seed):
    noisy = img + np.random.default_rng(seed).normal(0, 1.5, img.shape)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 3])
def test_a_long_faint_vessel_is_found_along_its_length(seed):
    # contrast chosen so that the vessel's ridge strength stays between the low and the high
    # level over most of its length: the strong-point hysteresis keeps only the odd stretch
    line, centre = _faint_line(_textured_skin(seed), 0.15, 12.0)
    rgb = _u8(line, 1 + seed)
    # (the colour rule for short bands, session 14, also finds this one: off for this rule's test;
    # so is the red-band rule, session 17: this 1.2 mm line's colour reads red, see _FAINT_RED)
    before = veinscope.analyze(rgb, px_per_mm=10.0, faint_length_mm=None, faint_delta_e=None, **_FAINT_RED)
    a = veinscope.analyze(rgb, px_per_mm=10.0, faint_delta_e=None, **_FAINT_RED)  # the rule is on by default (3 mm)
    # with the colour rule too (the default) the vessel stays found; on seed 3 it adds 8 px
    # 14-15 px from the centreline at the vessel's blunt end
    d = veinscope.analyze(rgb, px_per_mm=10.0, **_FAINT_RED)
    assert d.classes["total"].length_px >= a.classes["total"].length_px
    yd, xd = np.nonzero(d.labels)
    assert (np.abs(yd - centre(xd)) > 12.0 + 1.0).sum() <= 10
    assert a.params["faint_length_mm"] == 3.0 and before.params["faint_length_mm"] is None
    true_len = 300 * math.hypot(1.0, 0.08)
    assert before.classes["total"].length_px < 0.3 * true_len
    assert a.classes["total"].length_px > 0.6 * true_len
    # everything found lies on the vessel: a disc centred within its visible half width (6 px)
    # and as wide as the vessel (12 px), +1 px for the disc's rasterisation (+0.5 px since
    # session 20: on seed 3 a chain along the vessel's edge, 7-8 px off its axis, carried on to
    # its end face by one point paints one pixel 13.04 px from the axis; session 26's longer
    # average of faint wide profiles read that chain's end 14.9 px wide until its reach was held
    # to the centreline ahead: 12.96 px since)
    ys, xs = np.nonzero(a.labels)
    assert np.all(np.abs(ys - centre(xs)) <= 12.0 + 1.5)
    # ... and the vessel found without the rule is still found
    assert np.all(a.labels[before.labels > 0] > 0)


def test_texture_alone_gains_nothing_from_the_faint_rule():
    empty = 0
    for seed in range(10, 20):
        rgb = _u8(_textured_skin(seed), seed)
        a = veinscope.analyze(rgb, px_per_mm=10.0)
        assert a.params["faint_length_mm"] == 3.0
        # the texture's own rare strong specks (one of the ten, 1 mm) are the old rule's
        assert np.array_equal(a.labels, veinscope.analyze(rgb, px_per_mm=10.0, faint_length_mm=None).labels), seed
        empty += a.classes["total"].segments == 0
    assert empty >= 9


def test_faint_length_is_validated():
    rgb = _u8(_textured_skin(0, (64, 64)), 0)
    for bad in (0.0, -1.0, float("nan"), "3"):
        with pytest.raises((ValueError, TypeError), match="faint_length_mm"):
            veinscope.analyze(rgb, px_per_mm=10.0, faint_length_mm=bad)


# ---- chain ends carried on to the chain ahead (issue 4, session 12) ------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_a_faint_vessel_broken_by_texture_is_painted_and_measured_across_its_breaks(seed):
    # a 1.2 mm faint vessel on textured skin: its centreline breaks into a dozen pieces, a few
    # pixels apart along the vessel; without join_ends the breaks stay unpainted on the
    # vessel's own centreline and their length is lost
    line, centre = _faint_line(_textured_skin(seed), 0.2, 12.0)
    rgb = _u8(line, 1 + seed)
    # (the longer average of faint wide profiles, session 26, reads this vessel wider, 12 px as
    # it is, and its discs then cover the breaks on their own: off here, the join rule's test)
    before = veinscope.analyze(rgb, px_per_mm=10.0, join_ends=False, wide_profile_mm=None, **_FAINT_RED)
    a = veinscope.analyze(rgb, px_per_mm=10.0, wide_profile_mm=None, **_FAINT_RED)
    assert a.params["join_ends"] is True and before.params["join_ends"] is False
    xs = np.arange(95, 385)
    on = lambda an: (an.labels[np.round(centre(xs)).astype(int), xs] > 0).mean()  # noqa: E731
    assert on(before) < 0.995
    assert on(a) == 1.0
    true_len = 300 * math.hypot(1.0, 0.08)
    assert before.classes["total"].length_px < a.classes["total"].length_px < 1.25 * true_len
    assert a.classes["total"].segments == before.classes["total"].segments  # lengths added, pieces kept
    # nothing new painted off the vessel: the gaps lie along it
    ys, xs2 = np.nonzero((a.labels > 0) & (before.labels == 0))
    assert np.all(np.abs(ys - centre(xs2)) <= 12.0 + 1.0)
    assert np.all(a.labels[before.labels > 0] > 0)


# ---- a faint wide vein's width (issue 4, session 16) ---------------------------------------
def _soft_tube(img, diameter_px, blur_px, depth):
    """A long, gently sloping bluish vein across ``img`` (columns 60 to -60): the chord profile
    of a cylinder ``diameter_px`` across, blurred by the skin above it (Gaussian ``blur_px``),
    as synth renders a deep vein; its full width at half maximum (px, numerically) and its
    centreline (y as a function of x)."""
    m, n = img.shape[:2]
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    centre = lambda x: m / 2 + 0.08 * (x - n / 2)  # noqa: E731
    t = np.arange(-200.0, 200.0 + 1e-9, 0.25)
    chord = 2 * np.sqrt(np.clip((diameter_px / 2) ** 2 - t**2, 0, None))
    g = np.exp(-0.5 * (t / blur_px) ** 2)
    prof = np.convolve(chord, g / g.sum(), mode="same")
    prof /= prof.max()
    fwhm = np.ptp(t[prof >= 0.5])
    p = np.interp((yy - centre(xx)) / math.hypot(1.0, 0.08), t, prof) * ((xx > 60) & (xx < n - 60))
    return img * np.exp(-p[..., None] * (np.array([0.25, 0.6, 0.35]) * depth)), fwhm, centre


@pytest.mark.xfail(
    strict=True,
    reason="known limitation (session 16, h-wide): the bar fit's first width falls short on a faint, "
    "soft vein (0.1-0.7 of it), the half-maximum window it sets reads the skin level on the vein's "
    "shoulders, and the vein reads 0.54-0.87 of its width; a floor at the detection scale fixes most "
    "of it but widens clusters of fine vessels on real legs, so it was not kept (BENCHMARKS.md)",
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_faint_wide_soft_vein_on_textured_skin_keeps_its_width(seed):
    # a vein 4.2 mm across under 0.6 mm of blurring skin: FWHM 3.46 mm (41.5 px at 12 px/mm),
    # at a contrast the detection keeps along most of its length
    ppm = 12.0
    vein, fwhm, centre = _soft_tube(_textured_skin(seed, (420, 560)), 4.2 * ppm, 0.6 * ppm, 0.15)
    assert 3.4 < fwhm / ppm < 3.5
    a = veinscope.analyze(_u8(vein, 10 + seed), px_per_mm=ppm)
    xs = np.arange(120, 440)
    ys = np.round(centre(xs)).astype(int)
    found = a.labels[ys, xs] > 0
    assert found.mean() > 0.8
    d = a.diameter_px[ys, xs][found]
    assert 0.9 * fwhm < np.median(d) < 1.1 * fwhm
    assert np.mean(a.labels[ys, xs][found] == 4) > 0.8  # over 3 mm


def test_no_vessel_is_drawn_along_the_legs_shaded_outline():
    """A generated leg (set A's photo 21) whose shaded rim meets dark clothing: the rim, a dark
    band between the brighter skin and the outline, was painted as a vein along the whole
    outline (two thirds of the painted area). Its true vessels must still be found."""
    import cv2

    from veinscope.synth import generate_photo

    photo = generate_photo(seed=421, size=(1600, 1200), px_per_mm=15.0, skin_type=4)
    an = veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm)
    r = int(round(1.5 * photo.px_per_mm))
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    near_outline = (cv2.dilate((~photo.skin_mask).view(np.uint8), ker) > 0) & photo.skin_mask
    painted = an.labels > 0
    false_near = painted & near_outline & (photo.labels == 0) & ~photo.ignore
    assert false_near.sum() < 0.2 * painted.sum()
    visible = (photo.labels > 0) & ~photo.ignore
    assert (painted & visible).sum() >= 0.85 * visible.sum()


# ---- chains that do not stand out in colour from the skin beside them (issue 4, session 13) --
def _flat_line(shape, colour, skin_rgb, rows):
    """Plain skin with a straight horizontal band of ``colour`` over ``rows`` (slice), columns 20 to -20."""
    img = np.empty(shape + (3,), np.float64)
    img[:] = skin_rgb
    img[rows, 20:-20] = colour
    return img.round().astype(np.uint8)


def test_chain_delta_e_is_the_lines_colour_difference_from_the_skin_beside_it():
    from veinscope.colour import delta_e00
    from veinscope.measure import chain_delta_e

    skin_rgb, vessel = np.array([205.0, 160.0, 140.0]), np.array([196.0, 146.0, 140.0])
    shape = (80, 120)
    rgb = _flat_line(shape, vessel, skin_rgb, slice(39, 42))
    xs = np.arange(25, 95)
    pts = np.stack([np.full(xs.size, 40), xs], 1)
    nrm = np.tile([1.0, 0.0], (xs.size, 1))
    w = np.full(xs.size, 3.0)
    seg = np.zeros(xs.size, np.int64)
    everywhere = np.ones(shape, bool)
    expected = float(delta_e00(vessel, skin_rgb))
    de = chain_delta_e(rgb, pts, nrm, w, seg, np.ones(xs.size, bool), everywhere)
    assert de[0] == pytest.approx(expected, abs=0.05)
    # a second, much stronger vessel beside it (on two of the twelve parallel copies) and a
    # dark patch off the skin mask do not move the skin's level
    rgb2 = rgb.copy()
    rgb2[45:48, 20:-20] = (120, 60, 90)
    rgb2[:30, :] = 20
    skin = np.ones(shape, bool)
    skin[:30, :] = False
    de2 = chain_delta_e(rgb2, pts, nrm, w, seg, np.ones(xs.size, bool), skin)
    assert de2[0] == pytest.approx(expected, abs=0.1)
    # nothing to compare with: not judged
    de3 = chain_delta_e(rgb, pts, nrm, w, seg, np.ones(xs.size, bool), np.zeros(shape, bool))
    assert np.isnan(de3[0])
    assert chain_delta_e(rgb, pts, nrm, w, seg, np.zeros(xs.size, bool), everywhere) == {}


def _fine_textured_skin(seed, shape=(360, 480)):
    """Pink skin with a faint fine texture (std 1.5 sRGB levels at 1.2 px): the line filter,
    whose noise unit follows the texture, answers it in many short marks."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.empty(shape + (3,), np.float32)
    img[:] = (205, 150, 135)
    tex = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 1.2)
    return img + (tex / tex.std() * 1.5)[..., None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_texture_marks_that_do_not_stand_out_are_dropped_and_a_faint_vessel_is_kept(seed):
    # a 0.6 mm vessel of ΔE00 1.5 at its centre (below the truth's 2, as the JPEG leaves a
    # fine vessel) on that skin:
    # without the colour test the marks are painted (450-690 px off the vessel); with it
    # (the default, ΔE00 1 along a whole chain) most go, and the vessel is painted as before
    line, centre = _faint_line(_fine_textured_skin(seed), 0.05, 6.0)
    rgb = np.clip(line + np.random.default_rng(seed).normal(0, 1.0, line.shape) + 0.5, 0, 255).astype(np.uint8)
    # (the tracking past chain ends, session 15, lengthens the vessel on both sides and is
    # judged by the colour rule only with it on: off here, checked on its own at the end)
    before = veinscope.analyze(rgb, px_per_mm=10.0, min_delta_e=None, extend_ends_mm=None)
    a = veinscope.analyze(rgb, px_per_mm=10.0, extend_ends_mm=None)
    assert a.params["min_delta_e"] == 1.0 and before.params["min_delta_e"] is None
    xs = np.arange(95, 385)
    on = lambda an: (an.labels[np.round(centre(xs)).astype(int), xs] > 0).mean()  # noqa: E731

    def off(an):
        ys, xs2 = np.nonzero(an.labels)
        return int((np.abs(ys - centre(xs2)) > 8).sum())

    assert on(before) > 0.7
    assert on(a) >= on(before) - 0.01
    assert off(before) > 300
    assert off(a) < 0.3 * off(before)
    # the default engine follows the faint vessel further (seed 0: 0.87 -> 0.98, seed 1: 0.77
    # -> 0.86 of it painted) and adds nothing off it (the tracking's rule: the longer average
    # of faint wide profiles, session 26, off in both, as it widens the tracked ends' discs by
    # a pixel or two on this 0.6 mm vessel, 2 px off it on seed 1)
    a = veinscope.analyze(rgb, px_per_mm=10.0, extend_ends_mm=None, wide_profile_mm=None)
    full = veinscope.analyze(rgb, px_per_mm=10.0, wide_profile_mm=None)
    assert on(full) >= on(a) + 0.05
    assert off(full) <= off(a)


def test_min_delta_e_is_validated():
    rgb = _u8(_textured_skin(0, (64, 64)), 0)
    for bad in (-1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="min_delta_e"):
            veinscope.analyze(rgb, px_per_mm=10.0, min_delta_e=bad)
    assert veinscope.analyze(rgb, px_per_mm=10.0, min_delta_e=0.0).params["min_delta_e"] == 0.0


# ---- thin red vessels whose hue the JPEG's 4:2:0 chroma took away (issue 4, session 14) ------
#: OD (natural log) of an oxygenated vessel 0.05 mm deep: haemoglobin, its blue and red
#: remitted from less deep (the generator's red telangiectasia).
_SHALLOW_BLOOD = np.array([0.08, 0.85, 0.64])
_LINES = (((40, 20), (60, 300)), ((120, 30), (110, 290)), ((200, 20), (170, 300)))


def _jpeg_lines(skin_rgb, od_vec, width_px, amplitude, *, seed=3, shape=(240, 320), quality=90):
    """Skin of ``skin_rgb`` with three straight lines of OD ``amplitude * od_vec`` (Beer-Lambert
    on linear sRGB), sensor noise, through a JPEG of ``quality`` (PIL: 4:2:0 chroma)."""
    rng = np.random.default_rng(seed)
    lin = ((np.asarray(skin_rgb, np.float64) / 255 + 0.055) / 1.055) ** 2.4
    amount = np.zeros(shape)
    for p0, p1 in _LINES:
        amount = np.maximum(amount, _bar(shape, p0, p1, width_px, amplitude))
    out = lin * np.exp(-amount[..., None] * np.asarray(od_vec, np.float64))
    s = np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055) * 255
    rgb = np.clip(s + rng.normal(0, 1.0, s.shape), 0, 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    length = sum(math.hypot(p1[0] - p0[0], p1[1] - p0[1]) for p0, p1 in _LINES)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), length


def _centre_melanin_frac(rgb):
    """Melanin share of the lines' mean relative OD at their centre pixels (the engine's old colour)."""
    from veinscope.chromophores import optical_density, unmix

    od = optical_density(rgb)
    d = []
    for (y0, x0), (y1, x1) in _LINES:
        xs = np.arange(x0 + 10, x1 - 10)
        ys = np.round(y0 + (xs - x0) * (y1 - y0) / (x1 - x0)).astype(int)
        d.append(od[ys, xs] - od[np.clip(ys + 12, 0, rgb.shape[0] - 1), xs])
    p = np.maximum(unmix(np.concatenate(d).mean(axis=0)), 0)
    return float(p[2] / p.sum())


@pytest.mark.parametrize("width_px", [1.0, 2.0])
def test_a_thin_red_vessel_whose_hue_the_jpeg_took_is_kept_and_red(width_px):
    # brown skin (Fitzpatrick 4-5): at the centre pixel the lines read as more than 45 %
    # melanin, which dropped them all before (main b8a0efa: no vessel at all)
    rgb, length = _jpeg_lines((130, 85, 60), _SHALLOW_BLOOD, width_px, 0.45)
    assert _centre_melanin_frac(rgb) > 0.45
    a = veinscope.analyze(rgb, px_per_mm=8.0)
    c = a.to_dict()["classes"]
    assert c["red_telangiectasia"]["length_px"] > 0.85 * length
    assert c["blue_telangiectasia"]["segments"] == 0


@pytest.mark.parametrize("colour", ["melanin", "grey"])
def test_thin_brown_lines_and_hairs_are_still_dropped(colour):
    # the same lines in melanin's colour (brown staining, a pigmented line) and neutral (a
    # faint hair, a shadow line): their restored hue is not that of blood
    vec = {"melanin": CHROMOPHORE_DIRECTIONS["melanin"], "grey": np.ones(3) / math.sqrt(3)}[colour]
    for skin in ((205, 160, 140), (150, 100, 75), (110, 70, 50)):
        for width_px in (1.0, 2.0):
            rgb, _ = _jpeg_lines(skin, vec, width_px, 0.6)
            a = veinscope.analyze(rgb, px_per_mm=8.0)
            assert (a.labels > 0).sum() == 0, (skin, width_px)


def test_chroma_restored_od_puts_back_the_hue_jpeg_spread():
    from veinscope.chromophores import unmix
    from veinscope.measure import chroma_restored_od

    rgb, _ = _jpeg_lines((150, 100, 75), _SHALLOW_BLOOD, 1.0, 0.6)
    (y0, x0), (y1, x1) = _LINES[1]
    xs = np.arange(x0 + 10, x1 - 10)
    ys = np.round(y0 + (xs - x0) * (y1 - y0) / (x1 - x0)).astype(int)
    pts = np.stack([ys, xs], 1)
    nrm = np.tile([1.0, 0.0], (len(xs), 1))  # nearly horizontal: across is down the rows
    skin = np.ones(rgb.shape[:2], bool)
    seg = np.zeros(len(xs), np.int64)
    od = chroma_restored_od(rgb, pts, nrm, np.array([1.5]), seg, np.array([0]), skin)
    assert od.shape == (1, 5, 3) and np.isfinite(od).all()
    p = np.maximum(unmix(od[0]), 0)
    assert (p[:, 2] <= 0.45 * p.sum(axis=1)).all()  # not melanin-like, even at the error bars
    assert (p[:, 0] >= p[:, 1]).all()  # oxygenated blood
    # a chain without a dip in brightness, or off the skin, is not estimated; no chains: empty
    flat = np.full_like(rgb, 128)
    assert np.isnan(chroma_restored_od(flat, pts, nrm, np.array([1.5]), seg, np.array([0]), skin)).all()
    assert np.isnan(chroma_restored_od(rgb, pts, nrm, np.array([1.5]), seg, np.array([0]), ~skin)).all()
    assert chroma_restored_od(rgb, pts, nrm, np.array([1.5]), seg, np.array([], np.int64), skin).shape == (0, 5, 3)
    # the input is not modified
    before = rgb.copy()
    chroma_restored_od(rgb, pts, nrm, np.array([1.5]), seg, np.array([0]), skin)
    assert np.array_equal(rgb, before)


def test_a_red_vessel_crossed_by_a_hair_keeps_the_vessel_and_drops_the_hair():
    # one 8-connected chain, part red vessel and part neutral hair: judged as a whole its
    # colour is melanin-like (main b8a0efa drops both); branch by branch the vessel is kept
    shape = (240, 320)
    rng = np.random.default_rng(3)
    lin = ((np.array([130.0, 85.0, 60.0]) / 255 + 0.055) / 1.055) ** 2.4
    red = _bar(shape, (120, 20), (110, 300), 1.0, 0.45)
    hair = _bar(shape, (20, 60), (220, 260), 1.5, 0.6)
    out = lin * np.exp(-(red[..., None] * _SHALLOW_BLOOD + hair[..., None] / math.sqrt(3)))
    s = np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055) * 255
    buf = io.BytesIO()
    Image.fromarray(np.clip(s + rng.normal(0, 1.0, s.shape), 0, 255).round().astype(np.uint8)).save(buf, format="JPEG", quality=90)
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    a = veinscope.analyze(rgb, px_per_mm=8.0)
    painted = a.labels > 0
    xs = np.arange(30, 290)
    ys = np.round(120 - (xs - 20) * 10 / 280).astype(int)
    assert np.mean([painted[y - 1 : y + 2, x].any() for y, x in zip(ys, xs)]) > 0.85
    assert (a.labels[painted] == 1).all()  # red telangiectasia
    t = np.linspace(0.05, 0.95, 200)
    hy, hx = (20 + 200 * t).astype(int), (60 + 200 * t).astype(int)
    far = np.abs(hy - 115) > 8
    assert not any(painted[y - 1 : y + 2, x - 1 : x + 2].any() for y, x in zip(hy[far], hx[far]))


def test_branches_split_a_chain_at_its_junctions():
    from veinscope.measure import _branches

    # a T: a row of 11 points and a stem of 5 below its middle, plus a separate chain
    pts = sorted([(5, x) for x in range(11)] + [(y, 5) for y in range(6, 11)] + [(20, x) for x in range(4)])
    pts = np.array(pts, np.int32)
    seg = np.array([1 if y == 20 else 0 for y, _ in pts])
    n = 32
    key = pts[:, 0].astype(np.int64) * n + pts[:, 1]
    branch, nb = _branches(pts, seg, np.array([0]), key, n)
    assert nb == 3  # left arm, right arm, stem
    junction = branch == -2
    assert {tuple(p) for p in pts[junction]} <= {(5, 4), (5, 5), (5, 6), (6, 5)}
    assert (branch[seg == 1] == -1).all()  # not asked for
    sizes = sorted(np.bincount(branch[branch >= 0]))
    assert sum(sizes) + junction.sum() == (seg == 0).sum()


# ---- red bands wider than a telangiectasia (issue 4, session 17) ----------------------------
def _red_and_blue_bands(seed):
    """Skin at 10 px/mm with a 1.5 mm red band (haemoglobin: a streak of redness), a 1.5 mm blue
    band (a reticular vein) and a 0.4 mm red telangiectasia, each 40 mm long."""
    rng = np.random.default_rng(seed)
    shape = (300, 520)
    redness = _bar(shape, (50, 40), (70, 480), 15.0, 0.10, 3.0)
    vein = _bar(shape, (150, 40), (170, 480), 15.0, 0.14, 3.0)
    thin = _bar(shape, (250, 40), (240, 480), 4.0, 0.30)
    return _render([(CHROMOPHORE_DIRECTIONS["haemoglobin"], redness + thin), (CHROMOPHORE_DIRECTIONS["venous"], vein)], rng)


def _painted_along(a, y0, y1):
    xs = np.arange(80, 440)
    ys = np.round(y0 + (xs - 40) * (y1 - y0) / 440).astype(int)
    return float((a.labels[ys, xs] > 0).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_red_band_wider_than_a_telangiectasia_is_redness_not_a_vein(seed):
    rgb = _red_and_blue_bands(seed)
    before = veinscope.analyze(rgb, px_per_mm=10.0, max_red_diameter_mm=None)
    a = veinscope.analyze(rgb, px_per_mm=10.0)
    assert _painted_along(before, 50, 70) > 0.8  # the line filter and every other rule keep it
    assert _painted_along(a, 50, 70) < 0.05
    assert (a.labels[:110] > 0).sum() < 0.05 * (before.labels[:110] > 0).sum()
    for an in (a, before):  # the blue vein of the same width and the thin red vessel stay
        assert _painted_along(an, 150, 170) > 0.9
        assert _painted_along(an, 250, 240) > 0.9
    assert np.array_equal(a.labels[110:], before.labels[110:])
    assert a.params["max_red_diameter_mm"] == 1.0


def test_max_red_diameter_is_validated():
    rgb = _red_and_blue_bands(0)
    for bad in (0, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="max_red_diameter_mm"):
            veinscope.analyze(rgb, px_per_mm=10.0, max_red_diameter_mm=bad)


# ---- a chain that runs from a red vessel into a blue one (issue 4, session 20) ---------------
def _red_into_blue(rng, *, ppm=10.0, arm=False):
    """A 0.5 mm line, red (haemoglobin) over its left half and blue (venous) over its right
    half, end to end: one 8-connected chain; with ``arm`` a blue 0.6 mm vein crossed by a red
    0.5 mm one (one chain with a junction)."""
    shape = (240, 520)
    if arm:
        blue = _bar(shape, (120, 40), (120, 480), 0.6 * ppm, 0.30)
        red = _bar(shape, (30, 260), (210, 260), 0.5 * ppm, 0.35)
    else:
        red = _bar(shape, (120, 40), (120, 260), 0.5 * ppm, 0.35)
        blue = _bar(shape, (120, 260), (120, 480), 0.5 * ppm, 0.30)
    return _render([(CHROMOPHORE_DIRECTIONS["haemoglobin"], red), (CHROMOPHORE_DIRECTIONS["venous"], blue)], rng)


@pytest.mark.parametrize("seed", [5, 6])
def test_a_chain_half_red_half_blue_is_read_in_both_colours(seed):
    rgb = _red_into_blue(np.random.default_rng(seed))
    a = veinscope.analyze(rgb, px_per_mm=10.0)
    left = np.bincount(a.labels[110:131, 60:240].ravel(), minlength=5)
    right = np.bincount(a.labels[110:131, 280:460].ravel(), minlength=5)
    assert left[1] > 0.9 * left[1:].sum() and left[1:].sum() > 500  # red
    assert right[2] > 0.9 * right[1:].sum() and right[1:].sum() > 500  # blue
    c = a.to_dict()["classes"]
    assert c["red_telangiectasia"]["length_mm"] == pytest.approx(22.0, abs=2.5)
    assert c["blue_telangiectasia"]["length_mm"] == pytest.approx(22.0, abs=2.5)
    # one colour per chain (both piecewise rules off) reads the whole line in one colour
    one = veinscope.analyze(rgb, px_per_mm=10.0, colour_split_z=None, colour_runs_z=None)
    whole = np.bincount(one.labels[110:131, 40:480].ravel(), minlength=5)
    assert max(whole[1], whole[2]) > 0.95 * whole[1:].sum()


def test_a_red_vessel_crossing_a_blue_one_keeps_both_colours():
    rgb = _red_into_blue(np.random.default_rng(5), arm=True)
    a = veinscope.analyze(rgb, px_per_mm=10.0)
    blue = np.bincount(a.labels[112:129, 60:240].ravel(), minlength=5) + np.bincount(a.labels[112:129, 280:460].ravel(), minlength=5)
    red = np.bincount(a.labels[40:100, 250:271].ravel(), minlength=5) + np.bincount(a.labels[140:200, 250:271].ravel(), minlength=5)
    assert blue[2] > 0.9 * blue[1:].sum() and blue[1:].sum() > 1000
    assert red[1] > 0.9 * red[1:].sum() and red[1:].sum() > 300


def test_one_coloured_lines_are_not_split_by_noise():
    # the leg photo's red and blue lines, each one colour, stay one colour each
    rng = np.random.default_rng(11)
    shape = (240, 520)
    red = _bar(shape, (60, 40), (90, 480), 5.0, 0.35)
    blue = _bar(shape, (170, 40), (200, 480), 6.0, 0.30)
    rgb = _render([(CHROMOPHORE_DIRECTIONS["haemoglobin"], red), (CHROMOPHORE_DIRECTIONS["venous"], blue)], rng, noise=3.0)
    lab = veinscope.analyze(rgb, px_per_mm=10.0).labels
    top, bottom = np.bincount(lab[50:100].ravel(), minlength=5), np.bincount(lab[160:210].ravel(), minlength=5)
    assert top[2] == 0 and top[1] > 1000
    assert bottom[1] == 0 and bottom[2] > 1000

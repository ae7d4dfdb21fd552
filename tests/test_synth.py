"""Tests for the synthetic leg photo generator (veinscope.synth)."""

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from veinscope import synth
from veinscope.synth import CLASS_CODES, CLASSES, SynthPhoto, generate_photo, visible_diameter_mm

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_images"
TEL = ("red_telangiectasia", "blue_telangiectasia")


@pytest.fixture(scope="module")
def photo() -> SynthPhoto:
    return generate_photo(seed=11, size=(800, 600), px_per_mm=10.0, n_vessels=8)


@pytest.fixture(scope="module")
def photos() -> list[SynthPhoto]:
    """Photos over the skin types, tilted cameras (drawn), one at 6 px/mm with the card."""
    kw = dict(size=(1280, 960), px_per_mm=10.0)
    return [
        generate_photo(seed=101, skin_type=1, **kw),
        generate_photo(seed=102, skin_type=3, **kw),
        generate_photo(seed=103, skin_type=5, **kw),
        generate_photo(seed=104, skin_type=2, size=(1280, 960), px_per_mm=6.0),
    ]


# --- determinism ----------------------------------------------------------------------------
def _same(a: SynthPhoto, b: SynthPhoto) -> bool:
    if a.rgb.tobytes() != b.rgb.tobytes():
        return False
    for name in ("labels", "diameter_mm", "ignore", "skin_mask"):
        if getattr(a, name).tobytes() != getattr(b, name).tobytes():
            return False
    if len(a.centrelines) != len(b.centrelines):
        return False
    return all(
        np.array_equal(ca["points_yx"], cb["points_yx"]) and np.array_equal(ca["visible"], cb["visible"])
        for ca, cb in zip(a.centrelines, b.centrelines)
    )


def test_same_seed_same_bytes(photo):
    again = generate_photo(seed=11, size=(800, 600), px_per_mm=10.0, n_vessels=8)
    assert _same(photo, again)
    assert json.dumps(photo.params, sort_keys=True) == json.dumps(again.params, sort_keys=True)


def test_rng_state_regenerates():
    rng = np.random.default_rng(7)
    rng.random(3)  # any state
    a = generate_photo(rng=rng, size=(320, 240), n_vessels=3, jpeg_quality=None)
    assert "rng_state" in a.params and "seed" not in a.params
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = a.params["rng_state"]
    b = generate_photo(rng=rng2, size=(320, 240), n_vessels=3, jpeg_quality=None)
    assert _same(a, b)


def test_no_seed_records_one():
    a = generate_photo(size=(200, 150), n_vessels=1, jpeg_quality=None)
    b = generate_photo(seed=a.params["seed"], size=(200, 150), n_vessels=1, jpeg_quality=None)
    assert _same(a, b)


def test_different_seeds_differ(photo):
    other = generate_photo(seed=12, size=(800, 600), px_per_mm=10.0, n_vessels=8)
    assert photo.rgb.tobytes() != other.rgb.tobytes()
    assert photo.labels.tobytes() != other.labels.tobytes()


def test_camera_does_not_move_the_truth():
    a = generate_photo(seed=5, size=(400, 300), n_vessels=4, jpeg_quality=None)
    b = generate_photo(seed=5, size=(400, 300), n_vessels=4, jpeg_quality=40)
    assert a.labels.tobytes() == b.labels.tobytes()
    assert a.diameter_mm.tobytes() == b.diameter_mm.tobytes()
    assert a.rgb.tobytes() != b.rgb.tobytes()


# --- the result -----------------------------------------------------------------------------
def test_types_and_shapes(photo):
    m, n = 600, 800
    assert photo.rgb.shape == (m, n, 3) and photo.rgb.dtype == np.uint8
    assert photo.labels.shape == (m, n) and photo.labels.dtype == np.uint8
    assert photo.diameter_mm.shape == (m, n) and photo.diameter_mm.dtype == np.float32
    assert photo.ignore.dtype == bool and photo.skin_mask.dtype == bool
    assert photo.px_per_mm == pytest.approx(10.0, rel=1e-9)
    assert photo.jpeg is not None and Image.open(io.BytesIO(photo.jpeg)).format == "JPEG"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(photo.jpeg)).convert("RGB")), photo.rgb)
    assert set(np.unique(photo.labels)) <= {0, 1, 2, 3, 4}
    json.dumps(photo.params)  # everything is plain JSON
    assert photo.params["veinscope_version"]
    for arr in (photo.rgb, photo.labels, photo.diameter_mm, photo.ignore, photo.skin_mask):
        assert not arr.flags.writeable


def test_skin_mask_has_background(photos):
    for p in photos:
        frac = p.skin_mask.mean()
        assert 0.3 < frac < 1.0  # background, clothing or the card at an edge
        assert not (p.labels[~p.skin_mask]).any()
        assert not p.ignore[~p.skin_mask].any()


def test_labels_consistent_with_diameters(photos, photo):
    for p in [photo, *photos]:
        lab, d = p.labels, p.diameter_mm
        assert np.all(d[lab == 0] == 0)
        assert np.all(d[lab > 0] > 0)
        assert np.all(d[np.isin(lab, (1, 2))] < 1.0)
        assert np.all((d[lab == 3] >= 1.0) & (d[lab == 3] <= 3.0))
        assert np.all(d[lab == 4] > 3.0)
        assert not (p.ignore & (lab > 0)).any()


def test_centrelines_consistent(photos):
    for p in photos:
        m, n = p.labels.shape
        assert p.centrelines
        near = ndi.maximum_filter((p.labels > 0) | p.ignore, size=3)
        on_vessel = []
        for c in p.centrelines:
            k = len(c["points_yx"])
            assert c["class"] in CLASSES
            for key in ("diameter_mm", "physical_diameter_mm", "visible", "length_mm"):
                assert c[key].shape == (k,)
            y, x = c["points_yx"].T
            assert np.all((y >= -0.5) & (y < m - 0.5) & (x >= -0.5) & (x < n - 0.5))
            d = c["diameter_mm"]
            if c["class"] in TEL:
                assert np.all(d < 1.0)
            elif c["class"] == "reticular":
                assert np.all((d >= 1.0) & (d <= 3.0))
            else:
                assert np.all(d > 3.0)
            assert np.all(c["physical_diameter_mm"] > 0)
            np.testing.assert_allclose(c["diameter_mm"], visible_diameter_mm(c["physical_diameter_mm"], synth._blur_mm(c["depth_mm"])))
            # visible points lie on labelled pixels (or hair covers them): within one pixel
            iy, ix = np.round(y).astype(int), np.round(x).astype(int)
            vis = c["visible"]
            on_vessel.append(near[iy[vis], ix[vis]])
        assert np.mean(np.concatenate(on_vessel)) > 0.99


def test_truth_figures_match_label_image(photos):
    for p in photos:
        t = p.truth_figures()
        assert set(t) == {*CLASSES, "total"}
        pa = p.px_area_mm2()
        # the local scale stays near the centre's on a mildly tilted phone photo
        assert np.all(np.abs(pa * p.px_per_mm**2 - 1) < 0.15)
        skin_mm2 = pa[p.skin_mask].sum()
        for name in CLASSES:
            area = pa[p.labels == CLASS_CODES[name]].sum()
            assert t[name]["area_mm2"] == pytest.approx(area)
            assert t[name]["coverage_pct"] == pytest.approx(100 * area / skin_mm2)
            length = sum(c["length_mm"][c["visible"]].sum() for c in p.centrelines if c["class"] == name)
            assert t[name]["length_mm"] == pytest.approx(length)
            if area == 0:
                assert t[name]["length_mm"] < 1.0
        assert t["total"]["area_mm2"] == pytest.approx(pa[p.labels > 0].sum())
        assert t["total"]["length_mm"] == pytest.approx(sum(t[c]["length_mm"] for c in CLASSES))
        assert t["total"]["coverage_pct"] == pytest.approx(sum(t[c]["coverage_pct"] for c in CLASSES))
        assert 0 < t["total"]["coverage_pct"] < 30


def test_no_vessels():
    p = generate_photo(seed=3, size=(300, 200), px_per_mm=10.0, n_vessels=0)
    assert not p.labels.any() and not p.ignore.any() and not p.diameter_mm.any()
    assert p.centrelines == []
    assert p.truth_figures()["total"] == {"length_mm": 0.0, "area_mm2": 0.0, "coverage_pct": 0.0}


# --- confounders ----------------------------------------------------------------------------
def test_hair_is_dark_and_not_labelled(photos):
    n_hair = 0
    for p in photos:
        hair = p.confounders["hair"]
        n_hair += hair.sum()
        assert not p.labels[hair].any()
        assert not p.diameter_mm[hair].any()
        core = hair & p.skin_mask
        if core.sum() > 20:  # hair is darker than the skin it lies on
            lum = p.rgb.astype(float).mean(axis=2)
            skin = p.skin_mask & ~hair & (p.labels == 0)
            assert np.median(lum[core]) < np.median(lum[skin])
    assert n_hair > 0


def test_confounder_masks(photos):
    for p in photos:
        assert set(p.confounders) == {"hair", "naevus", "freckle", "glare", "card"}
        for m in p.confounders.values():
            assert m.shape == p.labels.shape and m.dtype == bool


def test_darker_skin_type_is_darker():
    light = generate_photo(seed=9, size=(400, 300), px_per_mm=10.0, skin_type=1, n_vessels=0, jpeg_quality=None)
    dark = generate_photo(seed=9, size=(400, 300), px_per_mm=10.0, skin_type=6, n_vessels=0, jpeg_quality=None)
    def luma(p):
        return np.median(p.rgb[p.skin_mask].astype(float) @ [0.2126, 0.7152, 0.0722])

    assert luma(dark) < luma(light) - 30


# --- diameters: the FWHM is honest ----------------------------------------------------------
def _fwhm_numeric(d_mm: float, sigma_mm: float) -> float:
    """Brute force: sample the cylinder chord, convolve with the Gaussian, measure the FWHM."""
    dx = min(d_mm, sigma_mm) / 200
    x = np.arange(-(d_mm + 8 * sigma_mm), d_mm + 8 * sigma_mm + dx, dx)
    chord = np.sqrt(np.clip((d_mm / 2) ** 2 - x**2, 0, None))
    g = np.exp(-0.5 * (x / sigma_mm) ** 2)
    prof = np.convolve(chord, g / g.sum(), mode="same")
    above = x[prof >= prof.max() / 2]
    return float(above.max() - above.min() + dx)


@pytest.mark.parametrize("d_mm, sigma_mm", [(0.1, 0.03), (0.3, 0.1), (0.8, 0.05), (2.0, 0.3), (4.0, 0.5), (0.1, 0.2)])
def test_visible_diameter_is_the_fwhm(d_mm, sigma_mm):
    assert visible_diameter_mm(np.array([d_mm]), sigma_mm)[0] == pytest.approx(_fwhm_numeric(d_mm, sigma_mm), rel=0.01)


def test_visible_diameter_limits():
    assert visible_diameter_mm(np.array([2.0]), 1e-7)[0] == pytest.approx(math.sqrt(3), rel=1e-6)
    assert visible_diameter_mm(np.array([1e-4]), 0.1)[0] == pytest.approx(2 * math.sqrt(2 * math.log(2)) * 0.1, rel=1e-3)


def _render_on_flat_skin(st, shape, ppm, level):
    """synth._render_vessels of one structure on flat, texture-free skin of reflectance ``level``."""
    flat = np.full(shape, level, np.float32)
    skin = {"diffuse": np.stack([flat] * 3), "glare": np.zeros(shape, np.float32),
            "texture": np.stack([flat[::4, ::4]] * 3), "texture_stride": 4}
    return synth._render_vessels([st], shape, ppm, {"skin_alpha": np.ones(shape, np.float32)}, skin, 1.0)


def test_rendered_profile_has_the_truth_fwhm():
    """Render one straight vessel on flat skin; its OD profile's FWHM is the truth diameter
    (with the pixel footprint the renderer adds)."""
    ppm, shape = 10.0, (120, 200)
    d_mm, depth = 1.6, 0.9
    x = np.arange(-2.0, 22.0, 0.08)
    st = synth._Structure("reticular", "deep", depth, 1.0, [synth._Branch(np.stack([np.full_like(x, 6.0), x], 1), np.full_like(x, d_mm))])
    st.od_vec = np.array([0.2, 0.1, 0.05])
    out = _render_on_flat_skin(st, shape, ppm, 0.5)
    od = np.zeros(shape[0] * shape[1])
    od[out["od_idx"]] = out["od_val"][:, 0]
    prof = od.reshape(shape)[:, 100]
    yy = np.arange(shape[0], dtype=float)
    fine = np.linspace(0, shape[0] - 1, 20000)
    pf = np.interp(fine, yy, prof)
    above = fine[pf >= pf.max() / 2]
    measured_mm = (above.max() - above.min()) / ppm
    blur = synth._blur_mm(depth)
    rendered = visible_diameter_mm(np.array([d_mm]), math.hypot(blur, synth._PIXEL_APERTURE_PX / ppm))[0]
    assert measured_mm == pytest.approx(rendered, abs=0.04)
    truth = out["diameter_mm"][60, 100]
    assert truth == pytest.approx(visible_diameter_mm(np.array([d_mm]), blur)[0])
    assert out["labels"][60, 100] == CLASS_CODES["reticular"]
    # labelled band: half the visible width either side of the centreline
    band = np.flatnonzero(out["labels"][:, 100])
    assert (band.max() - band.min() + 1) / ppm == pytest.approx(truth, abs=1.5 / ppm)


def test_thin_vessel_visibility_uses_the_contrast_the_photo_shows():
    """A vessel thinner than a pixel: the truth's contrast (delta_e) is that of the rendered
    vessel's centre on the canvas (pixel footprint included), not of the unblurred vessel."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    ppm, shape = 10.0, (60, 120)
    d_mm, depth = 0.1, 0.15
    x = np.arange(-2.0, 14.0, 0.05)
    st = synth._Structure("thread", "red", depth, 1.0, [synth._Branch(np.stack([np.full_like(x, 3.0), x], 1), np.full_like(x, d_mm))])
    st.od_vec = np.array([0.05, 0.6, 0.5])
    out = _render_on_flat_skin(st, shape, ppm, 0.4)
    od = np.zeros((shape[0] * shape[1], 3))
    od[out["od_idx"]] = out["od_val"]
    centre = od.reshape(*shape, 3)[25:36, 60].max(axis=0)  # the profile's peak across the vessel
    skin_rgb = np.full(3, 0.4)
    de_rendered = deltaE_ciede2000(rgb2lab(synth._srgb_encode(skin_rgb)[None, None]),
                                   rgb2lab(synth._srgb_encode(skin_rgb * 10.0 ** -centre)[None, None]))[0, 0]
    de_truth = np.median(np.concatenate([c["delta_e"] for c in out["centrelines"]]))
    assert de_truth == pytest.approx(de_rendered, rel=0.12)
    # the unblurred vessel would claim far more contrast than the canvas shows
    unblurred = synth._profile(np.zeros(1), np.array([synth._blur_mm(depth) / (0.5 * d_mm)]))[0]
    assert unblurred * st.od_vec[1] > 1.5 * centre[1]


def test_camera_defocus_lowers_a_thin_vessels_visible_peak():
    """_photo_peak: the centre of the cylinder blurred by depth, pixel footprint and defocus
    together, against a direct numerical convolution; a wide vessel barely loses contrast."""
    ppm, defocus_px = 8.0, 0.6
    for d_mm, loss in ((0.1, 0.8), (2.0, 1.0)):
        st = synth._Structure("thread", "red", 0.2, 1.0, [])
        it = {"st": st, "d_mm": np.array([d_mm]), "amp": np.array([1.0], np.float32),
              "pts_px": np.array([[50.0, 50.0]])}
        got = synth._photo_peak(it, ppm, np.eye(3), defocus_px)[0]
        sharp = synth._photo_peak(it, ppm, np.eye(3), 0.0)[0]
        sigma = math.sqrt(st.blur_mm**2 + (synth._PIXEL_APERTURE_PX / ppm) ** 2 + (defocus_px / ppm) ** 2)
        r = d_mm / 2
        t = np.linspace(-r, r, 4001)
        chord = np.sqrt(np.clip(1 - (t / r) ** 2, 0, None))  # normalised chord, 1 at the axis
        g = np.exp(-0.5 * (t / sigma) ** 2) / (math.sqrt(2 * math.pi) * sigma)
        expect = float(np.sum(chord * g) * (t[1] - t[0]))
        assert got == pytest.approx(expect, rel=0.03)
        assert got < sharp * loss if d_mm < 1 else got > 0.99 * sharp


# --- colour: red vs blue telangiectasia -----------------------------------------------------
def _linear(rgb8: np.ndarray) -> np.ndarray:
    x = rgb8.astype(np.float64) / 255
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _red_blue_rule(p: SynthPhoto) -> tuple[float, float]:
    """Per telangiectasia stretch: contrast 1 - vessel / skin around it, summed along its
    visible centreline where it owns the pixel; red when the red contrast is below 0.8 x the
    blue contrast. Returns (correctly classified visible length, visible length)."""
    img = _linear(p.rgb)
    m, n = p.labels.shape
    ok_len = tot_len = 0.0
    for c in p.centrelines:
        if c["class"] not in TEL or not c["visible"].any():
            continue
        code = CLASS_CODES[c["class"]]
        w = c["diameter_mm"] * p.px_per_mm
        acc = np.zeros(3)
        for k in np.flatnonzero(c["visible"])[::2]:
            y, x = c["points_yx"][k]
            iy, ix = min(int(round(y)), m - 1), min(int(round(x)), n - 1)
            if p.labels[iy, ix] != code:
                continue  # another vessel on top
            r1 = w[k] / 2 + 2
            r2 = r1 + 4
            rr = int(math.ceil(r2))
            y0, y1, x0, x1 = max(0, iy - rr), min(m, iy + rr + 1), max(0, ix - rr), min(n, ix + rr + 1)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            d = np.hypot(yy - y, xx - x)
            ring = (d >= r1) & (d <= r2) & (p.labels[y0:y1, x0:x1] != code) & ~p.ignore[y0:y1, x0:x1]
            if ring.sum() < 5:
                continue
            around = np.median(img[y0:y1, x0:x1][ring], axis=0)
            vessel = img[y0:y1, x0:x1][d <= max(w[k] / 2, 0.75)].mean(axis=0)
            acc += c["length_mm"][k] * (1 - vessel / np.maximum(around, 1e-6))
        length = c["length_mm"][c["visible"]].sum()
        tot_len += length
        said_red = acc[0] < 0.8 * acc[2]
        ok_len += length * (said_red == (c["class"] == "red_telangiectasia"))
    return ok_len, tot_len


def test_red_and_blue_telangiectasia_differ_in_colour(photos):
    ok = tot = 0.0
    for p in photos:
        o, t = _red_blue_rule(p)
        assert t > 0
        assert o / t >= 0.9, (p.params["seed"], o / t)
        ok += o
        tot += t
    assert ok / tot >= 0.95


def test_colour_class_follows_od_ratio(photos):
    """Telangiectasia are red when their red OD is small next to their blue OD."""
    n = 0
    for p in photos:
        for c in p.centrelines:
            if c["class"] in TEL:
                od = p.params["structures"][c["structure"]]["od_rgb"]
                assert (od[0] / od[2] < synth.RED_BLUE_OD_RATIO) == (c["class"] == "red_telangiectasia")
                n += 1
    assert n > 0


# --- the demo sample ------------------------------------------------------------------------
def test_demo_sample_has_every_class():
    meta = json.loads((SAMPLES / "demo_leg_truth.json").read_text())
    with Image.open(SAMPLES / meta["photo"]) as im:
        assert im.size == tuple(meta["params"]["size"])
        assert im.format == "JPEG"
    assert meta["px_per_mm"] == pytest.approx(10.0)
    assert meta["card"] is not None  # the scale can be found in the photo
    for name in CLASSES:
        assert meta["truth"][name]["length_mm"] > 15, name
        assert meta["truth"][name]["area_mm2"] > 0, name
    assert (SAMPLES / meta["photo"]).read_bytes() == (SAMPLES / meta["same_as"]).read_bytes()


@pytest.mark.parametrize("site", ["site_a", "site_b"])
def test_demo_patient_files_agree(site):
    """Each session's truth JSON follows from its own label image and homography, and the
    series shows the course (staining, matting, improvement)."""
    folder = SAMPLES / "demo_patient" / site
    doc = json.loads((folder / "series_truth.json").read_text())
    assert 3 <= len(doc["photos"]) <= 4
    for k, name in enumerate(doc["photos"]):
        truth = json.loads((folder / f"session{k}_truth.json").read_text())
        labels = np.asarray(Image.open(folder / f"session{k}_labels.png"))
        with Image.open(folder / name) as im:
            assert im.size == (labels.shape[1], labels.shape[0]) and im.format == "JPEG"
        hi = np.linalg.inv(np.array(truth["homography_mm_to_px"]))
        m, n = labels.shape
        w = hi[2, 0] * np.arange(n)[None, :] + hi[2, 1] * np.arange(m)[:, None] + hi[2, 2]
        pa = np.abs(np.linalg.det(hi) / w**3)
        assert truth["truth"]["total"]["area_mm2"] == pytest.approx(pa[labels > 0].sum())
        stain = np.asarray(Image.open(folder / f"session{k}_staining.png")) > 0
        assert truth["side_effects"]["staining"]["area_mm2"] == pytest.approx(pa[stain].sum())
    changes = doc["changes"]
    assert len(changes) == len(doc["photos"]) - 1
    assert any(c["staining"]["area_mm2"] > 0 for c in changes)
    assert any(c["matting"]["area_mm2"] > 0 for c in changes)
    assert 0 < changes[-1]["improvement_pct"]["total"] <= 100


def test_samples_folder_is_small():
    assert sum(f.stat().st_size for f in SAMPLES.rglob("*") if f.is_file()) < 15e6


# --- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(seed=1, rng=np.random.default_rng(1)), ValueError, "not both"),
        (dict(rng=1), TypeError, "rng"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed=1.5), ValueError, "seed"),
        (dict(size=(10, 10)), ValueError, "size"),
        (dict(size=100), ValueError, "size"),
        (dict(size=(100.0, 100)), ValueError, "size"),
        (dict(px_per_mm=0.5), ValueError, "px_per_mm"),
        (dict(px_per_mm="ten"), TypeError, "px_per_mm"),
        (dict(skin_type=7), ValueError, "skin_type"),
        (dict(skin_type=2.0), ValueError, "skin_type"),
        (dict(n_vessels=-1), ValueError, "n_vessels"),
        (dict(jpeg_quality=0), ValueError, "jpeg_quality"),
        (dict(jpeg_quality=True), ValueError, "jpeg_quality"),
    ],
)
def test_invalid_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        generate_photo(**kwargs)


def test_small_and_low_resolution_photos_work():
    p = generate_photo(seed=4, size=(64, 64), px_per_mm=2.0)
    assert p.rgb.shape == (64, 64, 3)
    p = generate_photo(seed=4, size=(300, 200), px_per_mm=30.0, n_vessels=3)
    assert p.rgb.shape == (200, 300, 3)


def test_a_broad_texture_field_on_a_small_canvas_is_not_blown_up():
    # a correlation length larger than the canvas (a 200 x 150 photo at 8 px/mm, the fabric's
    # 40 mm octave) leaves 1 x 2 low-resolution samples to normalise by: these seeds' fields came
    # out 3e4-1e5 times too strong and one overflowed exp() in the fabric (a random-seed failure
    # of test_no_seed_records_one). Normalised by the expected spread they stay a unit field.
    from veinscope.synth import _field_spread, _smooth_noise

    for seed in (3758, 14645, 19278):
        f = _smooth_noise(np.random.default_rng(seed), (190, 239), 336.75)
        assert np.isfinite(f).all() and np.abs(f).max() < 6.0
    big = np.random.default_rng(0).standard_normal((60, 80)).astype(np.float32)
    assert _field_spread(big, 1.5, 1.5) == float(big[3:-3, 3:-3].std())  # large fields: their own spread

"""Tests for the camera model, the calibration card and follow-up sessions of veinscope.synth,
and for ``veinscope synth``."""

import json

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage as ndi
from skimage.color import deltaE_ciede2000, rgb2lab

from veinscope import card as vcard
from veinscope import synth
from veinscope.cli import main
from veinscope.synth import CLASS_CODES, CLASSES, SynthSeries, generate_photo, generate_series


@pytest.fixture(scope="module")
def series() -> SynthSeries:
    return generate_series(seed=21, sessions=3, size=(800, 600), px_per_mm=6.0, skin_type=2, n_vessels=9)


@pytest.fixture(scope="module")
def card_photo():
    return generate_photo(seed=8, size=(1600, 1200), px_per_mm=6.0, tilt_deg=9.0, skin_type=3, n_vessels=6)


# --- camera ---------------------------------------------------------------------------------
def _apply(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p = np.c_[xy, np.ones(len(xy))] @ h.T
    return p[:, :2] / p[:, 2:3]


def test_straight_on_photo_has_one_scale():
    p = generate_photo(seed=4, size=(400, 300), px_per_mm=9.0, tilt_deg=0.0, n_vessels=2, jpeg_quality=None)
    np.testing.assert_allclose(p.px_area_mm2(), 1 / 9.0**2, rtol=1e-9)
    # one mm on the skin is nine pixels, in every direction
    a = _apply(p.homography, np.array([[10.0, 10.0], [11.0, 10.0], [10.0, 11.0]]))
    np.testing.assert_allclose(np.hypot(*(a[1:] - a[0]).T), 9.0, rtol=1e-9)


def test_tilted_photo_scale_varies_and_is_right_at_the_centre():
    p = generate_photo(seed=4, size=(1200, 900), px_per_mm=10.0, tilt_deg=12.0, n_vessels=2, jpeg_quality=None)
    m, n = p.labels.shape
    centre = _apply(np.linalg.inv(p.homography), np.array([[(n - 1) / 2, (m - 1) / 2]]))[0]
    ring = _apply(p.homography, centre + 0.05 * np.array([[1, 0], [-1, 0], [0, 1], [0, -1]]))
    # a small circle's image has the area of a circle of radius 0.05 mm x px_per_mm
    quad = ring[[0, 2, 1, 3]]
    area = 0.5 * abs(np.dot(quad[:, 0], np.roll(quad[:, 1], 1)) - np.dot(quad[:, 1], np.roll(quad[:, 0], 1)))
    assert area == pytest.approx(2 * (0.05 * p.px_per_mm) ** 2, rel=1e-3)
    assert p.px_per_mm == pytest.approx(10.0, rel=1e-9)
    pa = p.px_area_mm2()
    assert pa.max() / pa.min() > 1.02  # the far side sees more skin per pixel
    assert pa[m // 2, n // 2] == pytest.approx(1 / 100, rel=0.01)


def test_distance_follows_from_the_scale():
    near = generate_photo(seed=6, size=(200, 150), px_per_mm=15.0, n_vessels=0)
    far = generate_photo(seed=6, size=(200, 150), px_per_mm=6.0, n_vessels=0)
    d_near, d_far = (p.params["camera"]["pose"]["distance_mm"] for p in (near, far))
    assert d_far / d_near == pytest.approx(15.0 / 6.0, rel=1e-6)
    assert 150 < d_near < 250 and 400 < d_far < 600  # a phone 20-50 cm from the leg


def test_default_is_a_12mp_phone_photo_at_20_to_50_cm():
    """The default camera (geometry only: rendering 12 MP is for the benchmarks)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        (pose,) = synth._make_poses(rng, 1, synth._FULL_FRAME, None, None)
        assert 200 <= pose.distance_mm <= 500 and 0 <= pose.tilt_deg <= 12
        ppm = synth._scale_at(pose.homography(), pose.target_mm)
        assert 5.5 < ppm < 16
        assert ppm == pytest.approx(synth.FOCAL_PX_12MP / pose.distance_mm, rel=0.03)
    assert generate_photo.__kwdefaults__["size"] == (4032, 3024)


# --- the calibration card -------------------------------------------------------------------
def test_card_lies_in_the_photo_where_the_truth_says(card_photo):
    p = card_photo
    assert p.card is not None
    card = p.confounders["card"]
    assert not (card & p.skin_mask).any() and not p.labels[card].any()
    # its area on the skin plane is the card's
    assert p.px_area_mm2()[card].sum() == pytest.approx(vcard.CARD.width_mm * vcard.CARD.height_mm, rel=0.02)
    # OpenCV finds the printed markers at the true corners
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, vcard.CARD.dictionary))
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    corners, ids, _ = cv2.aruco.ArucoDetector(dictionary, params).detectMarkers(cv2.cvtColor(p.rgb, cv2.COLOR_RGB2GRAY))
    assert ids is not None and set(ids.ravel()) == set(vcard.CARD.marker_ids)
    for c, i in zip(corners, ids.ravel()):
        err = np.hypot(*(c[0] - p.card["marker_corners_px"][int(i)]).T)
        assert err.max() < 1.5, (i, err)
    # and the true px/mm at the card follows from its corners
    tl, tr, br, bl = p.card["corners_px"]
    side = (np.hypot(*(tr - tl)) + np.hypot(*(br - bl))) / 2
    assert side / vcard.CARD.width_mm == pytest.approx(p.card["px_per_mm"], rel=0.03)


def test_no_card_when_asked_or_too_big():
    assert generate_photo(seed=8, size=(1600, 1200), px_per_mm=6.0, n_vessels=2, card=False).card is None
    small = generate_photo(seed=8, size=(400, 300), px_per_mm=6.0, n_vessels=2)
    assert small.card is None and not small.confounders["card"].any()


# --- sessions -------------------------------------------------------------------------------
def test_series_shape(series):
    k = len(series.photos)
    assert k == 3 and len(series.changes) == k - 1
    assert [p.session for p in series.photos] == list(range(k))
    base = series.photos[0]
    assert not base.staining.any() and not base.matting.any()
    json.dumps(series.truth_dict())
    days = [c["days"] for c in series.changes]
    assert all(28 <= b - a <= 42 for a, b in zip([0, *days], days))


def test_series_same_seed_same_bytes():
    kw = dict(seed=77, sessions=2, size=(320, 240), px_per_mm=6.0, n_vessels=5)
    a, b = generate_series(**kw), generate_series(**kw)
    for pa, pb in zip(a.photos, b.photos):
        assert pa.jpeg == pb.jpeg
        for name in ("labels", "diameter_mm", "ignore", "skin_mask", "staining", "matting"):
            assert getattr(pa, name).tobytes() == getattr(pb, name).tobytes()
    assert json.dumps(a.truth_dict(), sort_keys=True) == json.dumps(b.truth_dict(), sort_keys=True)


def test_no_global_random_state():
    state = np.random.get_state()[1].copy()
    np.random.seed(1)
    a = generate_photo(seed=5, size=(200, 150), px_per_mm=8.0, n_vessels=2)
    np.random.seed(2)
    b = generate_photo(seed=5, size=(200, 150), px_per_mm=8.0, n_vessels=2)
    assert a.jpeg == b.jpeg
    np.random.seed(2)
    np.random.random()
    after = np.random.get_state()[1].copy()
    np.random.seed(2)
    generate_photo(seed=5, size=(200, 150), px_per_mm=8.0, n_vessels=2)
    np.random.random()
    assert np.array_equal(np.random.get_state()[1], after)
    del state


def _by_branch(photo):
    """{(structure, branch): {index in branch: centreline point data}}"""
    out: dict = {}
    for c in photo.centrelines:
        d = out.setdefault((c["structure"], c["branch"]), {})
        for i in range(len(c["points_yx"])):
            d[c["start"] + i] = (c["points_yx"][i], c["visible"][i], c["length_mm"][i], CLASS_CODES[c["class"]], c["kind"])
    return out


def test_homography_between_sessions_maps_the_same_skin(series):
    base = series.photos[0]
    b0 = _by_branch(base)
    for ch, p in zip(series.changes, series.photos[1:]):
        h = np.array(ch["homography_baseline_to_session"])
        bk = _by_branch(p)
        n = 0
        for key, pts in b0.items():
            other = bk.get(key, {})
            common = sorted(set(pts) & set(other))
            if common:
                a = np.array([pts[i][0][::-1] for i in common])
                b = np.array([other[i][0][::-1] for i in common])
                np.testing.assert_allclose(_apply(h, a), b, atol=1e-6)
                n += len(common)
        assert n > 100
        # and the pictures: the follow-up warped back onto the baseline lines up with it
        m, w = base.labels.shape
        back = cv2.warpPerspective(p.rgb, np.linalg.inv(h), (w, m), flags=cv2.INTER_LINEAR)
        seen = cv2.warpPerspective(np.ones((m, w), np.uint8), np.linalg.inv(h), (w, m)) > 0
        sel = seen & base.skin_mask & ndi.binary_erosion(seen, iterations=5)
        g0 = base.rgb.astype(float).mean(2)
        hp = lambda g: g - ndi.gaussian_filter(g, 15)  # noqa: E731 - texture only, not the light
        r_aligned = np.corrcoef(hp(g0)[sel], hp(back.astype(float).mean(2))[sel])[0, 1]
        r_raw = np.corrcoef(hp(g0)[sel], hp(p.rgb.astype(float).mean(2))[sel])[0, 1]
        assert r_aligned > 0.25 and r_aligned > r_raw + 0.2, (r_aligned, r_raw)


def test_improvement_recomputed_from_the_centrelines(series):
    """The series truth follows from the photos' own centrelines: baseline length of the
    baseline's visible vessels (on skin both photos see) and how much of it is still visible."""
    b0 = _by_branch(series.photos[0])
    appear = [s["appears_at_session"] for s in series.params["course"]["structures"]]
    for ch, p in zip(series.changes, series.photos[1:]):
        bk = _by_branch(p)
        base = dict.fromkeys(CLASSES, 0.0)
        kept = dict.fromkeys(CLASSES, 0.0)
        for key, pts in b0.items():
            if appear[key[0]] != 0:
                continue
            other = bk.get(key, {})
            for i, (_, vis, length, code, _) in pts.items():
                if vis and i in other:
                    base[CLASSES[code - 1]] += length
                    kept[CLASSES[code - 1]] += length * bool(other[i][1])
        for name in CLASSES:
            assert ch["baseline_length_mm"][name] == pytest.approx(base[name], abs=1e-9)
            assert ch["remaining_length_mm"][name] == pytest.approx(kept[name], abs=1e-9)
            if base[name] > 0:
                assert ch["improvement_pct"][name] == pytest.approx(100 * (1 - kept[name] / base[name]))
            else:
                assert ch["improvement_pct"][name] is None
        total = sum(base.values())
        assert ch["improvement_pct"]["total"] == pytest.approx(100 * (1 - sum(kept.values()) / total))
        assert 0 <= ch["improvement_pct"]["total"] <= 100
        assert ch["cleared_length_mm"] == pytest.approx(total - sum(kept.values()))


def test_treatment_fades_what_was_treated_only():
    for seed in range(40, 60):  # the first series with a vein over 3 mm in view
        s = generate_series(seed=seed, sessions=3, size=(640, 480), px_per_mm=4.0, n_vessels=8)
        if s.changes[0]["baseline_length_mm"]["over_3mm"] > 10:
            break
    else:
        pytest.fail("no vein over 3 mm in 20 series")
    for ch in s.changes:  # it is referred, not treated
        if ch["baseline_length_mm"]["over_3mm"] > 10:
            assert abs(ch["improvement_pct"]["over_3mm"]) < 15
    # after two sessions the treated classes have faded overall
    last = s.changes[-1]
    treated = [c for c in ("red_telangiectasia", "blue_telangiectasia", "reticular") if last["baseline_length_mm"][c] > 20]
    assert treated
    assert sum(last["remaining_length_mm"][c] for c in treated) < 0.9 * sum(last["baseline_length_mm"][c] for c in treated)


def test_staining_is_brown_and_counted(series):
    n = 0
    for ch, p in zip(series.changes, series.photos[1:]):
        assert ch["staining"]["area_mm2"] == pytest.approx(p.side_effect_figures()["staining"]["area_mm2"])
        st = p.staining & p.skin_mask & (p.labels == 0) & ~p.ignore & ~p.confounders["hair"]
        if st.sum() < 50:
            continue
        ring = ndi.binary_dilation(p.staining, iterations=int(2 * p.px_per_mm)) & ~p.staining & p.skin_mask & (p.labels == 0)
        lab = rgb2lab(p.rgb.astype(float) / 255)
        a, b = lab[st].mean(0), lab[ring].mean(0)
        assert a[0] < b[0] - 1  # darker
        assert deltaE_ciede2000(a, b) > 2  # visibly different
        # brown: it absorbs blue and green more than red (optical density against the skin
        # around it, in linear light, so the white balance cancels)
        lin = np.where(p.rgb / 255 <= 0.04045, p.rgb / 255 / 12.92, ((p.rgb / 255 + 0.055) / 1.055) ** 2.4)
        od = np.log10(lin[ring].mean(0) / lin[st].mean(0))
        assert od[2] > od[0] and od[1] > od[0], od
        n += 1
    assert n >= 1


def test_matting_is_fine_red_vessels_in_patches(series):
    found = 0
    for ch, p in zip(series.changes, series.photos[1:]):
        assert ch["matting"] == p.side_effect_figures()["matting"]
        for c in p.centrelines:
            if c["kind"] == "matting":
                assert c["class"] == "red_telangiectasia"
                assert np.all(c["diameter_mm"] < 0.2)
                y, x = np.round(c["points_yx"][c["visible"]]).astype(int).T
                assert p.matting[y, x].all()  # every visible matting vessel lies in a patch
                found += int(c["visible"].sum())
        if p.matting.any():
            assert ch["matting"]["patches"] >= 1
            assert ch["matting"]["area_mm2"] > 5
    assert found > 0


def _flat_lit(skin_rgb, shape, *, stride=2, texture_rms=0.0):
    """A texture dict as ``synth._light_skin`` makes it, of one flat skin colour (linear RGB)."""
    mc, nc = -(-shape[0] // stride), -(-shape[1] // stride)
    tex = np.ones((3, mc, nc), np.float32) * np.asarray(skin_rgb, np.float32)[:, None, None]
    return {"texture": tex, "texture_stride": stride, "texture_rms": np.full((mc, nc), texture_rms, np.float32)}


def test_matting_margin_reads_the_blush_and_its_fine_vessels_together():
    # issue 6, session 35: matting's truth also marks where the patch's redness read over 1 mm
    # (its blush and its fine vessels together) passes the staining's visibility test (ΔE00 of
    # at least 2 and 1.5 x the skin texture's RMS). A blush of peak 0.3 (units of diffuse
    # blood, 2 mm sigma) on light skin is visible, 0.02 is not; fine vessels (1 px lines every
    # 0.6 mm), not visible as a patch on their own, make a faint blush visible; the same blush
    # on a skin whose texture varies by 3 ΔE00 RMS is not visible
    shape, ppm = (120, 120), 10.0
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-((yy - 60) ** 2 + (xx - 60) ** 2) / (2 * 20.0**2)).astype(np.float32)
    lines = np.zeros(shape, bool)
    lines[40:80:6, 40:80] = True
    idx = np.flatnonzero(lines)
    val = np.tile(np.array([0.02, 0.25, 0.18], np.float32), (idx.size, 1))
    none_i, none_v = np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
    lit = _flat_lit((0.55, 0.38, 0.30), shape)
    skin = synth._skin_over_1mm(lit, ppm, 1.0)
    before = [a.copy() for a in (g, idx, val, skin, lit["texture"])]
    strong = synth._matting_margin(0.3 * g, none_i, none_v, skin, lit, ppm)
    assert strong.shape == shape and strong.dtype == np.float32
    assert strong[60, 60] > 0 > strong[0, 0]
    assert synth._matting_margin(0.02 * g, none_i, none_v, skin, lit, ppm).max() < 0
    assert synth._matting_margin(np.zeros(shape, np.float32), idx, val, skin, lit, ppm)[60, 60] < 1.0
    faint = synth._matting_margin(0.05 * g, none_i, none_v, skin, lit, ppm)
    both = synth._matting_margin(0.05 * g, idx, val, skin, lit, ppm)
    assert faint.max() < 0 < both[60, 60]
    textured = _flat_lit((0.55, 0.38, 0.30), shape, texture_rms=3.0)
    assert synth._matting_margin(0.2 * g, none_i, none_v, skin, textured, ppm).max() < 0
    for a, b in zip(before, (g, idx, val, skin, lit["texture"])):
        np.testing.assert_array_equal(a, b)  # nothing modified


def test_a_visible_blush_of_matting_is_matting_though_none_of_its_vessels_is():
    # series 389 (skin type 6, the benchmark's size and scale): the matting of session 2 has
    # fine vessels all under the vessel visibility rule (ΔE00 medians 0.4-1.0 per stretch)
    # under a blush that stands out of the skin around it; compare reported 50 mm² of matting
    # there, a false alarm by the old truth (only the reach of visible vessels: nothing). A
    # careful observer marks the visible red blush near the treated site: the truth does now
    s = generate_series(seed=389, sessions=3, size=(800, 600), px_per_mm=float(np.random.default_rng(389).uniform(8, 13)))
    p, ch = s.photos[2], s.changes[1]
    assert s.params["skin_type"] == 6
    mat = [c for c in p.centrelines if c["kind"] == "matting"]
    assert mat and not any(c["visible"].any() for c in mat)
    assert ch["matting"]["patches"] >= 1 and ch["matting"]["area_mm2"] > 10
    # the patch lies among the matting's own vessels (where its blush is): most of it within 1 mm of them
    on = np.zeros(p.matting.shape, np.uint8)
    for c in mat:
        y, x = np.round(c["points_yx"]).astype(int).T
        ok = (y >= 0) & (y < on.shape[0]) & (x >= 0) & (x < on.shape[1])
        on[y[ok], x[ok]] = 1
    r = int(round(float(p.px_per_mm)))
    near = cv2.dilate(on, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    assert (p.matting & near).sum() >= 0.5 * p.matting.sum()


def test_a_speck_of_visible_blush_apart_from_any_visible_vessel_is_not_matting():
    # series 389 session 1 and 400 session 1 (skin type 6): the blush passes the visibility test
    # over 0.08 and 1.2 mm² only (peaks ΔE00 2.00 and 2.07), no matting vessel visible. A spot
    # smaller than one visible vessel point's own reach (a disc of 0.75 mm) is not what a careful
    # observer marks as matting: the truth has none there (session 35's review), while the large
    # visible blush of 389's session 2 stays matting (the test above)
    for seed in (389, 400):
        s = generate_series(seed=seed, sessions=3, size=(800, 600), px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)))
        assert s.params["skin_type"] == 6
        assert s.changes[0]["matting"]["area_mm2"] == 0.0 and s.changes[0]["matting"]["patches"] == 0
        assert not s.photos[1].matting.any()
        mat = [c for c in s.photos[1].centrelines if c["kind"] == "matting"]
        assert mat and not any(c["visible"].any() for c in mat)  # matting is drawn there, just not visible


def test_the_card_is_laid_off_the_matting_the_course_brings():
    # seed 13 (1600 x 1200 px at 7 px/mm): the baseline's card used to lie on the matting patch
    # of the first follow-up (1490 of its centreline points under the card), which the
    # baseline then cannot show and no comparison can find. The card keeps off it now.
    s = generate_series(seed=13, sessions=2, size=(1600, 1200), px_per_mm=7.0)
    b, f = s.photos
    assert b.card is not None and f.matting.any()
    m, n = b.labels.shape
    h = np.linalg.inv(np.asarray(s.changes[0]["homography_baseline_to_session"]))
    on_base = cv2.warpPerspective(f.matting.astype(np.uint8), h, (n, m), flags=cv2.INTER_NEAREST) > 0
    assert on_base.any() and not (on_base & b.confounders["card"]).any()


def test_card_placement_avoids_given_points_first_with_the_same_draws():
    from types import SimpleNamespace

    shape = (400, 600)  # canvas px at 2 px/mm: 300 x 200 mm of skin, no vessels
    site = SimpleNamespace(structures=[], shape=shape, skin_mask=np.ones(shape, bool),
                           leg=SimpleNamespace(axis=np.array([0.0, 1.0])))
    foot = np.array([[10.0, 10.0], [290.0, 10.0], [290.0, 190.0], [10.0, 190.0]])  # (x, y) mm
    free = synth._place_card(np.random.default_rng(5), site, foot, 2.0)
    c = free["centre_mm"]  # (x, y)
    blot = np.stack(np.meshgrid(np.arange(c[1] - 15, c[1] + 15), np.arange(c[0] - 15, c[0] + 15)), -1).reshape(-1, 2)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    synth._place_card(r1, site, foot, 2.0)
    moved = synth._place_card(r2, site, foot, 2.0, also_avoid_mm=[blot])  # (y, x) mm points where the card lay
    assert r1.random() == r2.random()  # the same draws: nothing else in a series moves
    local = (blot[:, ::-1] - moved["centre_mm"]) @ moved["rot"]
    w, hh = float(vcard.CARD.width_mm), float(vcard.CARD.height_mm)
    assert not np.any((np.abs(local[:, 0]) < w / 2) & (np.abs(local[:, 1]) < hh / 2))


def test_visible_means_perceptible(series, card_photo):
    for p in [*series.photos, card_photo]:
        for c in p.centrelines:
            assert np.all(c["delta_e"][c["visible"]] >= 2.0)


# --- the command line -----------------------------------------------------------------------
def test_cli_writes_the_series_and_its_truth(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["synth", "--seed", "7", "--out", str(out), "--sessions", "2", "--size", "320x240", "--px-per-mm", "8", "--vessels", "5"]
    assert main(argv) == 0
    assert "improvement" in capsys.readouterr().out
    ref = generate_series(seed=7, sessions=2, size=(320, 240), px_per_mm=8.0, n_vessels=5)
    doc = json.loads((out / "series_truth.json").read_text())
    assert doc["photos"] == ["session0.jpg", "session1.jpg"]
    assert json.dumps(doc["changes"], sort_keys=True) == json.dumps(json.loads(json.dumps(ref.changes)), sort_keys=True)
    for p in ref.photos:
        k = p.session
        assert (out / f"session{k}.jpg").read_bytes() == p.jpeg
        labels = np.asarray(Image.open(out / f"session{k}_labels.png"))
        assert np.array_equal(labels, p.labels)
        assert np.array_equal(tifffile.imread(out / f"session{k}_diameter_mm.tif"), p.diameter_mm)
        for name, mask in (("ignore", p.ignore), ("skin", p.skin_mask), ("staining", p.staining), ("matting", p.matting)):
            assert np.array_equal(np.asarray(Image.open(out / f"session{k}_{name}.png")) > 0, mask)
        truth = json.loads((out / f"session{k}_truth.json").read_text())
        # the figures follow from the written label image and homography alone
        hi = np.linalg.inv(np.array(truth["homography_mm_to_px"]))
        m, n = labels.shape
        w = hi[2, 0] * np.arange(n)[None, :] + hi[2, 1] * np.arange(m)[:, None] + hi[2, 2]
        pa = np.abs(np.linalg.det(hi) / w**3)
        for name in CLASSES:
            assert truth["truth"][name]["area_mm2"] == pytest.approx(pa[labels == CLASS_CODES[name]].sum())
            length = sum(np.dot(c["length_mm"], c["visible"]) for c in truth["centrelines"] if c["class"] == name)
            assert truth["truth"][name]["length_mm"] == pytest.approx(length, rel=1e-4, abs=1e-3)
        assert truth["px_per_mm"] == pytest.approx(p.px_per_mm)


@pytest.mark.parametrize(
    "argv",
    [
        ["synth", "--seed", "1", "--out", "x", "--size", "10x10"],
        ["synth", "--seed", "1", "--out", "x", "--size", "big"],
        ["synth", "--seed", "1", "--out", "x", "--sessions", "0"],
        ["synth", "--seed", "1", "--out", "x", "--skin-type", "7"],
        ["synth", "--out", "x"],
        ["synth", "--seed", "1", "--out", "x", "--px-per-mm", "100"],
        ["synth", "--seed", "-1", "--out", "x"],
        ["synth", "--seed", "1", "--out", "x", "--jpeg-quality", "0"],
    ],
)
def test_cli_usage_errors(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(sessions=0), ValueError, "sessions"),
        (dict(sessions=2.0), ValueError, "sessions"),
        (dict(tilt_deg=45), ValueError, "tilt_deg"),
        (dict(tilt_deg="x"), TypeError, "tilt_deg"),
        (dict(card="yes"), TypeError, "card"),
    ],
)
def test_series_invalid_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        generate_series(size=(100, 100), **kwargs)

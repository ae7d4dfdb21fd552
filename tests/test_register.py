"""Registration of a follow-up photo onto its baseline (issue 6)."""

from __future__ import annotations

import numpy as np
import pytest

from tests._followup import make_session, true_residual_px
from veinscope.errors import RegistrationError
from veinscope.register import Registration, register


@pytest.fixture(scope="module")
def session():
    # rotation up to 15 degrees, shift, scale, perspective; light and white balance change;
    # vessels cleared and faded, staining and matting painted
    return make_session(seed=21, size=(560, 420), stain=1, matting=1)


@pytest.fixture(scope="module")
def reg(session):
    return register(session.baseline_rgb, session.followup_rgb, px_per_mm=session.px_per_mm)


def test_known_warp_is_recovered_to_a_small_fraction_of_a_millimetre(session, reg):
    err_mm = true_residual_px(session, reg) / session.px_per_mm
    assert err_mm.size > 500
    # the figure is a median of 0.2 mm; features + ECC reach far below it
    assert np.median(err_mm) <= 0.05
    assert np.percentile(err_mm, 95) <= 0.2
    assert isinstance(reg, Registration)
    assert reg.n_inliers >= 20 and reg.inlier_frac > 0.5
    assert 0.5 < reg.overlap_frac <= 1.0


def test_residual_estimate_is_reported_and_honest(session, reg):
    true_med = float(np.median(true_residual_px(session, reg))) / session.px_per_mm
    assert reg.residual_mm is not None and reg.residual_px is not None
    assert reg.residual_mm == pytest.approx(reg.residual_px / session.px_per_mm)
    # the measured residual is an upper-bound-like estimate: small, never hiding a misalignment
    assert reg.residual_mm < 0.1
    assert reg.residual_mm >= true_med - 0.01


@pytest.mark.parametrize("rot", [0.0, 15.0])
def test_large_rotation_and_no_rotation(rot):
    s = make_session(seed=33, size=(480, 360), max_rot_deg=rot, clear_frac=0.3, n_vessels=5)
    r = register(s.baseline_rgb, s.followup_rgb, px_per_mm=s.px_per_mm)
    assert np.median(true_residual_px(s, r)) / s.px_per_mm <= 0.05


def test_different_sites_are_refused_with_a_clear_message(session):
    other = make_session(seed=22, size=(560, 420))
    with pytest.raises(RegistrationError, match="do not seem to show the same area"):
        register(session.baseline_rgb, other.followup_rgb, px_per_mm=session.px_per_mm)


def test_too_little_overlap_is_refused_and_partial_overlap_is_described(session):
    b = session.baseline_rgb
    m, n = b.shape[:2]
    # follow-up shows only the right 25 % of the baseline (plus what lies beyond it)
    scene = session.scene.rgb
    mg = session.truth["mg"]
    shift = int(0.75 * n)
    fu = np.ascontiguousarray(scene[mg : mg + m, mg + shift : mg + shift + n])
    if fu.shape[1] < n // 3:
        pytest.skip("scene too narrow for this crop")
    with pytest.raises(RegistrationError, match="overlap too little"):
        register(b, fu, px_per_mm=session.px_per_mm)
    # 60 % overlap: aligned, and the missing part is named
    shift = int(0.35 * n)
    fu = np.ascontiguousarray(scene[mg : mg + m, mg + shift : mg + shift + n])
    r = register(b, fu, px_per_mm=session.px_per_mm)
    assert r.overlap_frac < 0.9
    assert any("left" in t for t in r.not_compared)
    assert any("could not be compared" in w for w in r.warnings)
    # pure translation by `shift` pixels
    xy = np.array([[n * 0.6, m * 0.5]])
    assert np.allclose(r.followup_xy(xy), xy - [shift, 0], atol=0.3)


def test_no_skin_is_refused():
    blue = np.zeros((200, 260, 3), np.uint8)
    blue[..., 2] = 200
    rng = np.random.default_rng(0)
    blue = np.clip(blue + rng.integers(0, 20, blue.shape), 0, 255).astype(np.uint8)
    with pytest.raises(RegistrationError, match="no skin"):
        register(blue, blue)


def test_inputs_unchanged_and_warp_contract(session, reg):
    b = session.baseline_rgb.copy()
    f = session.followup_rgb.copy()
    b.setflags(write=False)
    f.setflags(write=False)
    r = register(b, f, px_per_mm=session.px_per_mm)
    assert np.array_equal(b, session.baseline_rgb) and np.array_equal(f, session.followup_rgb)
    out = r.warp(f)
    assert out.shape == b.shape and out.dtype == np.uint8
    mask = r.warp(np.ones(f.shape[:2], bool), interpolation="nearest")
    assert mask.dtype == np.bool_ and mask.shape == b.shape[:2]
    assert mask[r.overlap].all()
    with pytest.raises(ValueError, match="follow-up's shape"):
        r.warp(b[:10])
    with pytest.raises(ValueError, match="interpolation"):
        r.warp(f, interpolation="lanczos")
    d = reg.to_dict()
    assert {"residual_mm", "inlier_frac", "overlap_frac", "overlap_mm2", "methods", "not_compared", "homography"} <= set(d)


def test_identity_on_the_same_photo(session):
    r = register(session.baseline_rgb, session.baseline_rgb, px_per_mm=session.px_per_mm)
    m, n = session.baseline_rgb.shape[:2]
    xy = np.array([[10.0, 10.0], [n - 10.0, m - 10.0], [n / 2, m / 2]])
    assert np.allclose(r.followup_xy(xy), xy, atol=0.05)


def test_parameter_errors_name_the_parameter(session):
    b, f = session.baseline_rgb, session.followup_rgb
    with pytest.raises(ValueError, match="dense"):
        register(b, f, dense="sometimes")
    with pytest.raises(ValueError, match="px_per_mm"):
        register(b, f, px_per_mm=-1.0)
    with pytest.raises(ValueError, match="work_px"):
        register(b, f, work_px=10)
    with pytest.raises(ValueError, match="baseline_skin"):
        register(b, f, baseline_skin=np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="card_homography"):
        register(b, f, card_homography=np.eye(2))


def test_card_homography_is_used_when_skin_features_fail(session):
    # features forced to fail (min_inliers unreachable): the cards' homography (here the true
    # one) starts the alignment, ECC refines it, and the texture check still runs
    import cv2

    f = cv2.GaussianBlur(session.followup_rgb, (0, 0), 1.5)
    r = register(session.baseline_rgb, f, px_per_mm=session.px_per_mm, card_homography=session.h_true, min_inliers=10**6)
    assert r.methods[0] == "card" and "features:sift" not in r.methods
    assert np.median(true_residual_px(session, r)) / session.px_per_mm < 0.1
    # without a card the same failure is a refusal
    with pytest.raises(RegistrationError, match="same area"):
        register(session.baseline_rgb, f, px_per_mm=session.px_per_mm, min_inliers=10**6, use_cards=False)


def test_dense_refinement_takes_up_a_curved_warp_where_a_plane_does_not_fit(session):
    # follow-up = baseline bent by a smooth displacement of up to 4 px (a curved leg seen
    # again): no homography fits; the smoothed optical flow must take the rest up
    import cv2

    b = session.baseline_rgb
    m, n = b.shape[:2]
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float32)
    dx = 4.0 * np.sin(2 * np.pi * yy / m) * np.cos(np.pi * xx / n)
    dy = 3.0 * np.cos(2 * np.pi * xx / n)
    f = cv2.remap(b, xx + dx, yy + dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[20 : m - 20 : 10, 20 : n - 20 : 10]
    p = np.c_[xs.ravel(), ys.ravel()].astype(float)
    # follow-up pixel q shows baseline q + d(q); to first order baseline p is at p - d(p)
    truth = p - np.c_[dx[ys.ravel(), xs.ravel()], dy[ys.ravel(), xs.ravel()]]

    def err(r):
        return float(np.median(np.hypot(*(r.followup_xy(p) - truth).T)))

    plane = register(b, f, px_per_mm=session.px_per_mm, dense="never")
    bent = register(b, f, px_per_mm=session.px_per_mm, dense="auto")
    assert "dense:dis" in bent.methods and "dense:dis" not in plane.methods
    assert err(bent) < 0.5 * err(plane)
    assert err(bent) < 1.0  # px, i.e. 0.1 mm at 10 px/mm
    out = bent.warp(f)
    assert out.shape == b.shape


def test_the_calibration_card_is_not_taken_for_a_skin_landmark():
    # the demo patient's card lies at another place on the skin at every visit; aligning the
    # cards would put the follow-up hundreds of pixels off. Truth: the generator's homography.
    import json
    from pathlib import Path

    from veinscope.io import load_photo

    site = Path(__file__).resolve().parents[1] / "sample_images" / "demo_patient" / "site_a"
    if not (site / "session2.jpg").exists():
        pytest.skip("sample_images/demo_patient not present")
    truth = json.loads((site / "series_truth.json").read_text())
    b = load_photo(site / "session0.jpg").rgb
    f = load_photo(site / "session2.jpg").rgb
    r = register(b, f)
    h = np.asarray(truth["changes"][1]["homography_baseline_to_session"])
    m, n = b.shape[:2]
    yy, xx = np.mgrid[10:m:40, 10:n:40]
    p = np.c_[xx.ravel(), yy.ravel()].astype(float)
    sel = r.overlap[yy.ravel(), xx.ravel()]
    q = np.c_[p[sel], np.ones(sel.sum())] @ h.T
    err = np.hypot(*(r.followup_xy(p[sel]) - q[:, :2] / q[:, 2:3]).T)
    assert sel.sum() > 100
    assert np.median(err) < 1.0  # px (about 0.1 mm)


def _demo_photo(site: str, k: int):
    from pathlib import Path

    from veinscope.io import load_photo

    p = Path(__file__).resolve().parents[1] / "sample_images" / "demo_patient" / site / f"session{k}.jpg"
    if not p.exists():
        pytest.skip("sample_images/demo_patient not present")
    return load_photo(p).rgb


@pytest.mark.parametrize("use_cards", [True, False])
def test_the_demo_patients_two_sites_are_refused_and_a_follow_up_is_not(use_cards):
    # site A (left calf, skin type 3, 10 px/mm) and site B (the other shin, type 5, 7 px/mm)
    # both show the identically printed calibration card: aligned on the cards, they looked
    # alike (texture correlation 0.9 over the card). The card is taken out of the landmarks
    # whether or not its homography may be used.
    a0, a2, b0 = _demo_photo("site_a", 0), _demo_photo("site_a", 2), _demo_photo("site_b", 0)
    for x, y in ((a0, b0), (b0, a2)):
        with pytest.raises(RegistrationError, match="do not seem to show the same area|overlap too little"):
            register(x, y, use_cards=use_cards)
    r = register(a0, a2, use_cards=use_cards)
    assert r.residual_px < 1.0 and r.params["patch_texture_correlation"] > 0.7


def test_generated_legs_of_other_seeds_and_skin_types_are_refused():
    from veinscope.synth import generate_photo

    base = generate_photo(seed=41, size=(640, 480), px_per_mm=9.0, skin_type=2)
    for seed, skin in ((42, 2), (43, 4), (44, 5)):
        other = generate_photo(seed=seed, size=(640, 480), px_per_mm=9.0, skin_type=skin)
        with pytest.raises(RegistrationError, match="do not seem to show the same area|overlap too little"):
            register(base.rgb, other.rgb, px_per_mm=9.0)


def test_the_same_photos_always_give_the_same_alignment(session):
    # FLANN's randomised trees are seeded: figures are reproducible
    a = register(session.baseline_rgb, session.followup_rgb, px_per_mm=session.px_per_mm)
    b = register(session.baseline_rgb, session.followup_rgb, px_per_mm=session.px_per_mm)
    assert np.array_equal(a.homography, b.homography) and a.n_inliers == b.n_inliers


def test_cards_known_from_the_intake_are_not_searched_again(session, reg, monkeypatch):
    import veinscope.calibrate as cal_mod

    def no_search(*a, **k):
        raise AssertionError("the card was searched for again")

    monkeypatch.setattr(cal_mod, "detect_card", no_search)
    r = register(session.baseline_rgb, session.followup_rgb, px_per_mm=session.px_per_mm, cards=(None, None))
    assert np.array_equal(r.homography, reg.homography) and np.array_equal(r.overlap, reg.overlap)
    with pytest.raises(ValueError, match="cards must be a pair"):
        register(session.baseline_rgb, session.followup_rgb, cards="card")


@pytest.mark.slow
def test_the_intakes_card_is_the_card_register_finds():
    # compare() hands register the cards the two analyses' intakes found; on the demo patient
    # (card in every photo, re-placed) this must align exactly as searching the photos again
    from veinscope import analyze
    from veinscope.register import _detect_card, card_of_analysis

    b, f = _demo_photo("site_a", 0), _demo_photo("site_a", 2)
    a_b = analyze(b)
    known_b, card_b = card_of_analysis(a_b)
    known_f, card_f = card_of_analysis(analyze(f))
    assert known_b and known_f and card_b is not None and card_f is not None
    found = _detect_card(b)
    assert np.abs(card_b.homography - found.homography).max() < 1e-6 * np.abs(found.homography).max()
    assert np.array_equal(card_b.card_mask(b.shape[:2], margin_mm=4.0), found.card_mask(b.shape[:2], margin_mm=4.0))
    r1 = register(b, f, cards=(card_b, card_f))
    r0 = register(b, f)
    assert np.allclose(r1.homography, r0.homography, rtol=1e-6, atol=1e-6)
    # an analysis that does not record its intake's search: the photo is searched again
    from dataclasses import replace

    assert card_of_analysis(replace(a_b, params={})) == (False, None)


def test_the_landmark_budget_is_spent_on_the_skin():
    """OpenCV keeps its ``nfeatures`` strongest keypoints before the skin mask is applied, so a
    textured background took the budget and left a few dozen landmarks on the skin. The
    strongest landmarks are now chosen on the skin."""
    import cv2

    from veinscope.register import _skin_features

    rng = np.random.default_rng(8)
    grey = np.zeros((300, 400), np.float32)
    grey[:, :200] = cv2.GaussianBlur(rng.normal(0, 1, (300, 200)).astype(np.float32), (0, 0), 1.0) * 8.0  # busy fabric
    grey[:, 200:] = cv2.GaussianBlur(rng.normal(0, 1, (300, 200)).astype(np.float32), (0, 0), 2.0)  # faint skin texture
    skin = np.zeros(grey.shape, bool)
    skin[:, 210:] = True
    sift = cv2.SIFT_create(nfeatures=0, contrastThreshold=0.02)
    kp_all, _ = _skin_features(sift, grey, skin, n_max=10**6)
    kp, des = _skin_features(sift, grey, skin, n_max=150)
    assert len(kp_all) > 150 and len(kp) == 150 and des.shape == (150, 128)
    assert all(skin[int(round(k.pt[1])), min(399, int(round(k.pt[0])))] for k in kp)
    # the 150 strongest of the skin's keypoints
    resp = sorted((k.response for k in kp_all), reverse=True)
    assert min(k.response for k in kp) >= resp[149] - 1e-9
    # OpenCV's own budget of 150 leaves the skin with few landmarks here
    from veinscope.register import _to_u8

    kp_cv = cv2.SIFT_create(nfeatures=150, contrastThreshold=0.02).detect(_to_u8(grey, skin), skin.astype(np.uint8) * 255)
    assert len(kp_cv) < 0.5 * len(kp)


@pytest.mark.slow
def test_generated_series_503_registers_with_a_margin():
    # the generator's series 503 (textured background, faint skin texture): at 10 px/mm its
    # follow-ups were refused (6 and 9 landmarks where 20 are needed) or accepted with
    # exactly 20; the skin alone gives several times the minimum
    from veinscope.synth import generate_series

    ser = generate_series(seed=503, sessions=3, size=(900, 680), px_per_mm=10.0)
    for k in range(1, len(ser.photos)):
        r = register(ser.photos[0].rgb, ser.photos[k].rgb, px_per_mm=10.0)
        assert r.n_inliers >= 3 * r.params["min_inliers"], (k, r.n_inliers)
        assert r.residual_mm < 0.2


def test_uncovered_skin_in_one_place_is_named_once_with_its_shares_added():
    # Two separate pieces of uncovered skin in the upper right corner (400 and 100 px of a
    # 10 000 px skin) and one at the bottom edge (300 px): the warning names the corner once
    # with 5 %, not "the upper right corner (4 %); the bottom edge (3 %); the upper right
    # corner (1 %)" (the demo patient's site_a, sessions 0 and 2, read so before).
    from veinscope.register import _describe_uncovered

    skin = np.ones((100, 100), bool)
    uncovered = np.zeros_like(skin)
    uncovered[0:20, 80:100] = True  # 400 px
    uncovered[0:10, 67:77] = True  # 100 px, apart from the first
    uncovered[95:98, :] = True  # 300 px
    parts = _describe_uncovered(uncovered, skin)
    assert parts == [
        "the upper right corner of the baseline photo (5 % of its skin)",
        "the bottom edge of the baseline photo (3 % of its skin)",
    ]

"""Detection kernels: ridge bands, band hysteresis, crest snapping, gap bridging, covered chains,
and the skin-mask gap filling, each against a plain numpy / OpenCV reference or exact geometry."""

import math

import cv2
import numpy as np
import pytest

from veinscope._kernels.ridges import (
    bridge_gaps,
    drop_covered_chains,
    keep_in_labels,
    ridge_regions,
    snap_to_crest,
    strong_labels,
)
from veinscope.segment import detect_vessels, fill_vessel_gaps
from veinscope.vesselness import MIN_LEVEL_SIGMA_PX, ridge_response


def _ref_levels(q, inner, grid, cell, low, high, floor):
    from scipy import ndimage as ndi

    m, n = q.shape
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    local = ndi.map_coordinates(grid.astype(np.float64), [(yy + 0.5) / cell - 0.5, (xx + 0.5) / cell - 0.5], order=1, mode="nearest")
    ok = inner & (q >= floor) & (q > 0) & (q >= np.maximum(low * local, floor))
    strong = ok & (q >= np.maximum(high * local, 2 * floor))
    return ok.astype(np.uint8) + strong.astype(np.uint8)


def test_ridge_regions_match_reference(rng):
    q = rng.random((37, 53)).astype(np.float32)
    inner = rng.random((37, 53)) > 0.1
    grid = rng.uniform(0.05, 0.3, (5, 7)).astype(np.float32)
    out = np.empty(q.shape, np.uint8)
    ridge_regions(q, inner, grid, 8.0, 2.0, 3.0, 0.05, out)
    ref = _ref_levels(q, inner, grid, 8.0, 2.0, 3.0, 0.05)
    assert np.mean(out == ref) > 0.995  # interpolation rounding at the exact level only


def test_band_hysteresis_keeps_bands_with_a_strong_pixel(rng):
    region = np.zeros((30, 40), np.uint8)
    region[5, 2:30] = 1
    region[5, 10] = 2  # strong somewhere: the whole band counts
    region[15, 2:30] = 1  # never strong
    region[25, 5:8] = 2
    n, lab = cv2.connectedComponents(region, connectivity=8, ltype=cv2.CV_32S)
    strong = strong_labels(lab, region, n - 1)
    assert strong.tolist() == [False, True, False, True]
    cand = (region > 0).astype(np.uint8)
    keep_in_labels(cand, lab, strong)
    assert cand[5].sum() == 28 and cand[15].sum() == 0 and cand[25].sum() == 3


def test_weak_vessel_is_kept_whole_when_it_is_strong_somewhere():
    """A faint line whose crest dips below the low level in places (noise breaks its 1-pixel
    chain) is kept as one structure because its band is connected; a short strong speck is not."""
    m, n = 80, 200
    img = np.zeros((m, n), np.float32)
    y = np.arange(m)[:, None]
    amp = np.full(n, 0.5, np.float32)
    amp[60:140] = 1.0  # strong middle
    img += amp[None, :] * np.exp(-((y - 40.0) ** 2) / (2 * 1.5**2))
    img[10:14, 100:104] += 1.0  # a short strong speck
    rr = ridge_response(img, sigmas_px=[1.0, 2.0], black_ridges=False)
    skin = np.ones((m, n), bool)
    det = detect_vessels(rr, skin, None, low_noise=0.2, high_noise=0.6, min_strength=0.01, min_length_px=20,
                         min_piece_px=5, noise_cell_px=16, border_px=0)  # fmt: skip
    ys, xs = det.points_yx.T
    assert np.all(np.abs(ys - 40) <= 1)
    assert xs.min() <= 15 and xs.max() >= 185  # the faint ends came with the strong middle


def test_snap_turns_a_coarse_staircase_into_one_line():
    """A wide oblique vessel answers at a coarse pyramid level: non-maximum suppression alone
    leaves parallel dashes on the level's grid; the crest snap puts them on one line."""
    m, n = 300, 400
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    # a bar 24 px wide, slope 0.15, blurred
    d = (yy - 150 - 0.15 * (xx - 200)) / math.hypot(1, 0.15)
    img = (1.0 / (1.0 + np.exp((np.abs(d) - 12) / 1.5))).astype(np.float32)
    rr = ridge_response(img, sigmas_px=[12.0], black_ridges=False)
    skin = np.ones((m, n), bool)
    kw = dict(low_noise=0.0, high_noise=0.0, min_strength=0.05, min_length_px=50, min_piece_px=1, noise_cell_px=32,
              border_px=0, max_gap_px=1)
    for snap in (False, True):
        det = detect_vessels(ridge_response(img, sigmas_px=[12.0], black_ridges=False), skin, None, snap=snap, **kw)
        ys, xs = det.points_yx.T
        inner = (xs > 40) & (xs < 360)
        off = (ys - 150 - 0.15 * (xs - 200))[inner]
        per_col = np.bincount(xs[inner] - 41)
        if snap:
            assert np.median(np.abs(off)) <= 0.6
            assert np.mean(per_col == 1) > 0.9  # one crest pixel per column
            assert det.n_segments <= 2
        else:
            staircase_segments = det.n_segments
    assert staircase_segments > det.n_segments
    del rr


def test_snap_moves_points_to_the_parabola_vertex():
    q = np.zeros((40, 40), np.float32)
    y = np.arange(40)[:, None]
    q[:] = (1.0 - ((y - 20.4) / 8.0) ** 2).astype(np.float32)  # crest at row 20.4
    cand = np.zeros((40, 40), np.uint8)
    cand[20, 5:35] = 1
    cand[16, 5:35] = 1  # off the crest by 4.4 px: at scale 8 px the step is 4 px and moves at most 4
    ny, nx = np.ones_like(q), np.zeros_like(q)
    out = np.zeros_like(cand)
    snap_to_crest(cand, q, ny, nx, np.full(q.shape, 8.0 * MIN_LEVEL_SIGMA_PX / 2, np.float32), float(MIN_LEVEL_SIGMA_PX), out)
    rows = np.nonzero(out.any(axis=1))[0].tolist()
    assert rows == [20]


def test_bridge_gaps_joins_one_pixel_breaks_only():
    mask = np.zeros((20, 40), np.uint8)
    mask[10, 2:15] = 1
    mask[10, 16:30] = 1  # a 1-pixel gap at column 15
    mask[3, 2:10] = 1
    mask[3, 13:20] = 1  # a 3-pixel gap: left alone with max_gap 1
    mask[16, 5:20] = 1
    mask[17, 5:20] = 0
    n = bridge_gaps(mask, 1)
    assert mask[10, 15] == 1
    assert mask[3, 10:13].sum() == 0
    assert n >= 1
    m2 = np.zeros((20, 40), np.uint8)
    m2[3, 2:10] = 1
    m2[3, 13:20] = 1
    bridge_gaps(m2, 3)
    assert m2[3, 2:20].all()
    # ends look ahead only: a parallel line beside a chain's end is not joined sideways
    m3 = np.zeros((20, 40), np.uint8)
    m3[5, 2:20] = 1
    m3[7, 2:20] = 1
    before = m3.copy()
    bridge_gaps(m3, 1)
    np.testing.assert_array_equal(m3[6, 3:19], before[6, 3:19])


def test_drop_covered_chains_keeps_the_longest_and_branches():
    m, n = 60, 120
    pts, seg = [], []
    pts += [(30, x) for x in range(10, 110)]  # main vessel, 100 points, radius 6
    seg += [0] * 100
    pts += [(32, x) for x in range(40, 55)]  # parallel crest inside it: dropped
    seg += [1] * 15
    pts += [(30 - k, 70) for k in range(3, 28)]  # a branch leaving it: kept
    seg += [2] * 25
    pts = np.array(pts, np.int64)
    seg = np.array(seg)
    radius = np.full(len(pts), 6.0)
    radius[seg == 2] = 1.0
    members = np.argsort(seg, kind="stable").astype(np.int64)
    starts = np.searchsorted(seg[members], np.arange(4)).astype(np.int64)
    order = np.array([0, 2, 1], np.int64)
    keep = drop_covered_chains(pts[:, 0], pts[:, 1], radius, members, starts, order, np.zeros((m, n), np.uint8), 0.5,
                               np.ones(len(pts), bool))
    assert keep.tolist() == [True, False, True]
    # points not judged (carried on to an end face) paint their vessel but do not count in a
    # chain's own share: the parallel crest given 30 such points off the vessel is still dropped,
    # and the main vessel's 15 such points beyond x 110 cover a chain there
    extra = [(45, x) for x in range(40, 70)] + [(30, x) for x in range(110, 125)] + [(31, x) for x in range(112, 118)]
    pts2 = np.concatenate([pts, np.array(extra, np.int64)])
    seg2 = np.r_[seg, [1] * 30, [0] * 15, [3] * 6]
    judged = np.r_[np.ones(len(pts) + 30 + 15, bool), np.ones(6, bool)]
    judged[len(pts) : len(pts) + 45] = False
    members = np.argsort(seg2, kind="stable").astype(np.int64)
    starts = np.searchsorted(seg2[members], np.arange(5)).astype(np.int64)
    radius2 = np.r_[radius, np.full(51, 6.0)]
    keep = drop_covered_chains(pts2[:, 0], pts2[:, 1], radius2, members, starts, np.array([0, 2, 1, 3], np.int64),
                               np.zeros((m, 130), np.uint8), 0.5, judged)  # fmt: skip
    assert keep.tolist() == [True, False, True, False]
    judged[:] = True  # judged on all its points, the crest's 30 points off the vessel keep it
    keep = drop_covered_chains(pts2[:, 0], pts2[:, 1], radius2, members, starts, np.array([0, 2, 1, 3], np.int64),
                               np.zeros((m, 130), np.uint8), 0.5, judged)  # fmt: skip
    assert keep.tolist() == [True, True, True, False]


@pytest.mark.parametrize("runs_off_the_edge", [True, False])
def test_fill_vessel_gaps_takes_a_wide_vein_back_into_the_skin(runs_off_the_edge):
    m, n = 400, 600
    skin = np.zeros((m, n), bool)
    skin[50:350, :] = True  # a leg across the photo
    y0 = 0 if runs_off_the_edge else 120
    skin[y0:300, 280:310] = False  # a 30 px vein cut out of the skin by its colour
    card = np.zeros((m, n), bool)
    card[300:340, 400:500] = True
    out = fill_vessel_gaps(skin, 36.0, exclude=card)
    # the vein is skin again (where it meets the outline, a notch about the disc's radius deep
    # stays, as any closing leaves it)
    assert out[80:300, 283:307].all()
    if not runs_off_the_edge:
        assert out[50:300, 283:307].all()
    assert not out[:40].any() and not out[360:].any()  # the background stays out
    assert not (out & card).any()
    # nothing else changes
    changed = out != skin
    assert changed[50:300, 270:320].sum() == changed.sum() - (skin[300:340, 400:500] & ~out[300:340, 400:500]).sum()


def test_window_median_equals_brute_force(rng):
    from veinscope._kernels.ridges import window_median

    m, n = 40, 50
    flat = np.sort(rng.choice(m * n, 300, replace=False))
    ys, xs = (flat // n).astype(np.int32), (flat % n).astype(np.int32)
    vals = rng.random(300).astype(np.float32)
    vals[::17] = np.nan
    got = window_median(ys, xs, vals, 3, m)
    for i in range(300):
        near = (np.abs(ys - ys[i]) <= 3) & (np.abs(xs - xs[i]) <= 3) & np.isfinite(vals)
        want = np.median(vals[near]) if near.any() else np.nan
        np.testing.assert_allclose(got[i], want, rtol=1e-6, equal_nan=True)


def test_window_median_ignores_one_failed_fit():
    from veinscope._kernels.ridges import window_median

    xs = np.arange(40, dtype=np.int32)
    ys = np.full(40, 5, np.int32)
    vals = np.full(40, 30.0, np.float32)
    vals[20] = 1.0  # a wide vessel's profile read as a hair-thin one
    assert window_median(ys, xs, vals, 6, 10)[20] == 30.0
    assert vals[14:27].mean() < 28.0  # what a mean over the same window would give


def test_band_labelling_by_bbdt_is_opencvs_default_labelling(rng, monkeypatch):
    """detect_vessels labels its bands with BBDT for speed: the same components, numbering and
    statistics as OpenCV's default, hence the same detection as with the default."""
    region = (rng.random((301, 407)) < 0.35).astype(np.uint8) + (rng.random((301, 407)) < 0.05).astype(np.uint8)
    ref = cv2.connectedComponentsWithStats(region, connectivity=8, ltype=cv2.CV_32S)
    got = cv2.connectedComponentsWithStatsWithAlgorithm(region, 8, cv2.CV_32S, cv2.CCL_BBDT)
    assert got[0] == ref[0] > 100
    for a, b in zip(got[1:], ref[1:]):
        np.testing.assert_array_equal(a, b)
    # the engine's detection on a photo, with BBDT and with OpenCV's default labelling
    from veinscope.chromophores import skin_optics
    from veinscope.synth import generate_photo

    ph = generate_photo(seed=7, size=(480, 360), px_per_mm=8.0, card=False, n_vessels=6)
    skin = np.ones(ph.rgb.shape[:2], bool)
    signal = skin_optics(ph.rgb, skin=skin, background_px=40.0).vessel_signal()

    def detect():
        return detect_vessels(ridge_response(signal, sigmas_px=(1.0, 2.0, 4.0), black_ridges=False), skin, signal)

    fast = detect()
    assert fast.points_yx.shape[0] > 50
    seg = __import__("veinscope.segment", fromlist=["cv2"])

    class _DefaultLabelling:
        def __getattr__(self, name):
            return getattr(cv2, name)

        @staticmethod
        def connectedComponentsWithStatsWithAlgorithm(img, connectivity, ltype, ccltype):
            return cv2.connectedComponentsWithStats(img, connectivity=connectivity, ltype=ltype)

    monkeypatch.setattr(seg, "cv2", _DefaultLabelling())
    slow = detect()
    for f in ("points_yx", "segment", "strength", "normals_yx", "scale_px"):
        np.testing.assert_array_equal(getattr(fast, f), getattr(slow, f))


def test_without_holes_fills_what_does_not_reach_the_frame():
    from veinscope.segment import _without_holes

    skin = np.ones((30, 40), bool)
    skin[10:20, 12:25] = False  # a card lying on the skin: a hole
    skin[25:, 30:] = False  # clothing reaching the frame: stays out
    skin[0, 5] = False  # one pixel on the frame stays out too
    before = skin.copy()
    filled = _without_holes(skin)
    np.testing.assert_array_equal(skin, before)  # the input is not modified
    assert filled.dtype == bool and filled.shape == skin.shape and filled.flags.c_contiguous
    np.testing.assert_array_equal(filled, np.ones_like(skin) & ~((np.arange(30)[:, None] >= 25) & (np.arange(40) >= 30)) & ~_at(skin.shape, 0, 5))
    # no skin, all skin, tiny photos
    for shape in ((1, 1), (1, 2), (2, 1), (3, 3)):
        assert not _without_holes(np.zeros(shape, bool)).any()
        assert _without_holes(np.ones(shape, bool)).all()
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    assert _without_holes(ring).all()
    # any memory layout
    np.testing.assert_array_equal(_without_holes(np.asfortranarray(skin)), filled)
    np.testing.assert_array_equal(_without_holes(np.repeat(skin, 2, axis=1)[:, ::2]), filled)


def _at(shape, y, x):
    out = np.zeros(shape, bool)
    out[y, x] = True
    return out


def test_a_vessel_beside_a_hole_in_the_skin_is_kept_and_one_beside_the_outline_dropped():
    """The profile test's side points must lie on the skin (the rim of a shaded leg beside
    clothing is no vessel), but a hole in the skin mask (a card, a naevus) is no outline: a
    vessel running 4 px from either, its side points 5 px away, is kept beside the hole only."""
    m, n = 80, 200
    y = np.arange(m)[:, None]
    img = (np.exp(-((y - 40.0) ** 2) / (2 * 2.0**2)) * np.ones((1, n))).astype(np.float32)

    def beside(skin):
        sig = np.where(skin, img, 0.0).astype(np.float32)  # as analyze: no signal off the skin
        rr = ridge_response(sig, sigmas_px=[2.0], black_ridges=False)
        det = detect_vessels(rr, skin, sig, low_noise=0.2, high_noise=0.6, min_strength=0.01, min_length_px=20, noise_cell_px=16)
        ys, xs = det.points_yx.T
        assert np.all(ys == 40)
        return np.count_nonzero((xs >= 60) & (xs < 140)), det.points_yx.shape[0]

    assert beside(np.ones((m, n), bool)) == (80, n)
    hole = np.ones((m, n), bool)
    hole[44:60, 60:140] = False
    assert beside(hole) == (80, n)
    rim = np.ones((m, n), bool)
    rim[44:, 60:140] = False
    assert beside(rim) == (0, n - 80)


def test_without_holes_matches_scipys_binary_fill_holes(rng):
    """The same as ``scipy.ndimage.binary_fill_holes`` (the complement flooded 4-connected from
    the frame) on random masks of every density, clumped and not, thin and tiny."""
    from scipy import ndimage as ndi

    from veinscope.segment import _without_holes

    for k in range(200):
        shape = (int(rng.integers(1, 50)), int(rng.integers(1, 50)))
        mask = rng.random(shape) < rng.random()
        if k % 2:
            mask = ndi.binary_closing(mask, np.ones((3, 3)), border_value=1) & ~(rng.random(shape) < 0.05)
        got = _without_holes(mask)
        assert got.dtype == bool and got.flags.c_contiguous
        np.testing.assert_array_equal(got, ndi.binary_fill_holes(mask))


@pytest.mark.parametrize("weak_mark", [3, 0])
def test_split_in_labels_matches_a_table_lookup(rng, weak_mark):
    """``split_in_labels`` (session 37, keep37: one pass for ``_fixed_bands``) against the numpy
    lookups it replaces, on random components, a constant image and a 1 x 1 one."""
    from veinscope._kernels.ridges import split_in_labels

    cases = [rng.random((41, 57)) < 0.4, np.ones((9, 7), bool), np.zeros((1, 1), bool)]
    for region in cases:
        n, lab = cv2.connectedComponents(region.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        code = rng.choice(np.array([0, 1, 3], np.uint8), n)
        code[0] = 0
        cand = rng.choice(np.array([0, 0, 1, 2], np.uint8), region.shape)
        band, kept, marked = (np.full(region.shape, 7, np.uint8) for _ in range(3))
        split_in_labels(cand, lab, code, np.uint8(weak_mark), band, kept, marked)
        ref_band = code[lab]
        ref_kept = np.where(ref_band == 1, cand, 0)
        ref_marked = ref_kept.copy()
        ref_marked[(ref_band == 3) & (cand != 0)] = weak_mark
        assert np.array_equal(band, ref_band) and np.array_equal(kept, ref_kept) and np.array_equal(marked, ref_marked)

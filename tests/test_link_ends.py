"""Joining two chain ends across a gap on evidence along the way (veinscope.extend.link_ends, issue 4)."""

import math

import numpy as np
import pytest

import veinscope
from veinscope.extend import link_ends
from veinscope.segment import VesselDetection

from .test_extend import M, N, ROW, _bar
from .test_pipeline import _textured_skin, _u8


def _two_chains(x0, x1, x2, x3, *, row2=ROW, scale=2.0):
    """Two chains along the bar's centre row: columns x0 .. x1 - 1 and x2 .. x3 - 1 (the second on
    ``row2``)."""
    xs = np.r_[np.arange(x0, x1), np.arange(x2, x3)]
    ys = np.r_[np.full(x1 - x0, ROW), np.full(x3 - x2, row2)]
    k = xs.size
    order = np.lexsort((xs, ys))
    return VesselDetection(
        points_yx=np.stack([ys, xs], axis=1)[order].astype(np.int32),
        segment=np.r_[np.zeros(x1 - x0), np.ones(x3 - x2)][order].astype(np.int32),
        strength=np.ones(k, np.float32),
        normals_yx=np.tile(np.array([1.0, 0.0], np.float32), (k, 1)),
        scale_px=np.full(k, scale, np.float32),
        n_segments=2,
        noise=0.01,
        thresholds=(0.03, 0.05),
    )


def _gapped_bar(gap_contrast, seed):
    """The bar of ``test_extend`` (contrast 1) over columns 40-99 and 160-219 on pixel noise and a
    fine texture (0.1 blurred over 1.5 px), ``gap_contrast`` between, nothing beyond."""
    import cv2

    sig = _bar(lambda x: np.where((x < 100) | ((x >= 160) & (x < 220)), 1.0, np.where(x < 220, gap_contrast, 0.0)), seed=seed)
    rng = np.random.default_rng(100 + seed)
    return sig + cv2.GaussianBlur(rng.normal(0, 0.1, (M, N)).astype(np.float32), (0, 0), 1.5)


@pytest.mark.parametrize("seed", range(8))
def test_a_faint_gap_between_two_facing_chains_is_joined(seed):
    # contrast 0.05 in the gap against pixel noise 0.05 and texture: no single pixel stands out,
    # the 60 px of the gap do (measured: joined on seeds 0-7; at 0.04 on five of them)
    sig = _gapped_bar(0.05, seed)
    det = _two_chains(40, 100, 160, 220)
    out = link_ends(det, sig, np.ones((M, N), bool), max_gap_px=80)
    added = out.points_yx[out.tracked]
    assert sorted(added[:, 1].tolist()) == list(range(100, 160))
    assert (added[:, 0] == ROW).all()
    # the way's pixels join the first end's chain
    assert np.unique(out.segment[out.tracked]).size == 1


@pytest.mark.parametrize("seed", range(8))
def test_a_gap_with_no_vessel_in_it_is_not_joined(seed):
    # the same two chains facing each other across plain noise and texture: at one expected false
    # link per photo (over at least 1000 candidates, z 3.09) nothing is drawn
    sig = _gapped_bar(0.0, seed)
    out = link_ends(_two_chains(40, 100, 160, 220), sig, np.ones((M, N), bool), max_gap_px=80)
    assert out.points_yx.shape[0] == 120 and out.tracked is None


def test_ends_that_do_not_face_each_other_are_not_joined():
    # a strong bar joins them, but the second chain runs 40 px lower: the way between the ends
    # turns 34 degrees from each end's direction
    sig = _gapped_bar(1.0, 0)
    det = _two_chains(40, 100, 160, 220, row2=ROW + 40)
    assert link_ends(det, sig, np.ones((M, N), bool), max_gap_px=80, max_angle_deg=30).points_yx.shape[0] == 120
    # the same ends within 45 degrees
    wide = link_ends(det, sig, np.ones((M, N), bool), max_gap_px=80, max_angle_deg=45, nfa=1e6)
    assert wide.points_yx.shape[0] > 120


def test_a_gap_longer_than_the_limit_or_off_the_skin_is_not_joined():
    sig = _gapped_bar(1.0, 0)
    det = _two_chains(40, 100, 160, 220)
    assert link_ends(det, sig, np.ones((M, N), bool), max_gap_px=50).points_yx.shape[0] == 120
    skin = np.ones((M, N), bool)
    skin[:, 128:132] = False
    assert link_ends(det, sig, skin, max_gap_px=80).points_yx.shape[0] == 120


def test_the_input_is_not_modified_and_bad_arguments_are_refused():
    sig = _gapped_bar(0.04, 1)
    det = _two_chains(40, 100, 160, 220)
    before = (sig.copy(), det.points_yx.copy(), det.segment.copy())
    link_ends(det, sig, np.ones((M, N), bool), max_gap_px=80)
    np.testing.assert_array_equal(sig, before[0])
    np.testing.assert_array_equal(det.points_yx, before[1])
    np.testing.assert_array_equal(det.segment, before[2])
    for kw, word in ((dict(max_gap_px=-1.0), "max_gap_px"), (dict(max_gap_px=80, nfa=0.0), "nfa"),
                     (dict(max_gap_px=80, max_angle_deg=120), "max_angle_deg")):  # fmt: skip
        with pytest.raises(ValueError, match=word):
            link_ends(det, sig, np.ones((M, N), bool), **kw)
    with pytest.raises(ValueError, match="same shape"):
        link_ends(det, sig, np.ones((M, N + 1), bool), max_gap_px=80)
    for bad in (-2.0, 0.0, float("nan"), True):
        with pytest.raises(ValueError, match="link_ends_mm"):
            veinscope.analyze(np.full((64, 64, 3), 200, np.uint8), px_per_mm=10.0, link_ends_mm=bad)


def test_the_gap_statistic_is_the_trackers_window_contrast_and_leaves_out_a_crossing_vessel():
    from veinscope._kernels.links import gap_contrast
    from veinscope._kernels.track import window_contrast

    sig = _gapped_bar(0.3, 2)
    skin = np.ones((M, N), np.uint8)
    det = _two_chains(40, 100, 160, 220)
    keys = det.points_yx[:, 0].astype(np.int64) * N + det.points_yx[:, 1]
    seg = det.segment.astype(np.int64)
    out = np.zeros(3)
    gap_contrast(sig, skin, keys, seg, N, float(ROW), 99.0, float(ROW), 160.0, 2.0, 0, 1, out)
    # 60 inner points one pixel apart: the tracker's window statistic from column 100 on
    assert out[2] == 60 and out[1] == 60
    ref = window_contrast(sig, skin, float(ROW), 100.0, 0.0, 1.0, 2.0, 6.0, 10.0, 60)
    assert out[0] == pytest.approx(ref, rel=1e-9)
    # a third chain crossing the way at column 130 (rows 40-80): its points within 3 px are left out
    cross = np.stack([np.arange(40, 81), np.full(41, 130)], 1)
    pts = np.concatenate([det.points_yx, cross])
    seg3 = np.r_[seg, np.full(41, 2)]
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    keys3 = (pts[order, 0].astype(np.int64) * N + pts[order, 1])
    gap_contrast(sig, skin, keys3, seg3[order], N, float(ROW), 99.0, float(ROW), 160.0, 2.0, 0, 1, out)
    assert out[1] == 60 - 7
    # off the skin: no statistic
    skin[:, 120] = 0
    gap_contrast(sig, skin, keys, seg, N, float(ROW), 99.0, float(ROW), 160.0, 2.0, 0, 1, out)
    assert math.isnan(out[0])


def _gapped_line(seed, gap_depth):
    """Textured pink skin with a fine straight thread (FWHM 3 px, OD 0.5 at its centre, the
    colour of ``test_pipeline._faint_line``) across columns 91-389, sloping 0.08, fainter
    (``gap_depth``) over columns 190-269: (photo, the thread's row as a function of the column)."""
    img = _textured_skin(seed)
    m, n = img.shape[:2]
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float32)
    centre = lambda x: m / 2 + 0.08 * (x - n / 2)  # noqa: E731
    prof = np.exp(-0.5 * ((yy - centre(xx)) / (3.0 / 2.355)) ** 2) * ((xx > 90) & (xx < n - 90))
    depth = np.where((xx >= 190) & (xx < 270), gap_depth, 0.5)
    return _u8(img * np.exp(-(prof * depth)[..., None] * np.array([0.25, 0.6, 0.35], np.float32)), seed), centre


@pytest.mark.parametrize(("seed", "depth"), [(1, 0.08), (0, 0.12), (1, 0.12)])
def test_analyze_finds_a_faint_stretch_between_two_found_pieces_that_it_misses_without(seed, depth):
    rgb, centre = _gapped_line(seed, depth)
    off = veinscope.analyze(rgb, px_per_mm=10.0)
    on = veinscope.analyze(rgb, px_per_mm=10.0, link_ends_mm=8.0)
    assert on.params["link_ends_mm"] == 8.0 and off.params["link_ends_mm"] is None
    rows = np.round(centre(np.arange(190, 270))).astype(int)
    found = lambda a: np.array([(a.labels[y - 2 : y + 3, x] > 0).any() for y, x in zip(rows, range(190, 270))])  # noqa: E731
    # measured: 0.35 -> 0.89, 0.61 -> 0.86, 0.89 -> 1.00 of the faint stretch's columns
    assert found(on).mean() >= found(off).mean() + 0.1
    # nothing changes away from the thread
    yy, xx = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]]
    away = np.abs(yy - centre(xx)) > 12
    np.testing.assert_array_equal(on.labels[away], off.labels[away])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_plain_textured_skin_gains_no_path(seed):
    plain = _u8(_textured_skin(seed), seed)
    on = veinscope.analyze(plain, px_per_mm=10.0, link_ends_mm=5.0)
    np.testing.assert_array_equal(on.labels, veinscope.analyze(plain, px_per_mm=10.0).labels)


def test_end_directions_point_out_of_the_chain_along_its_last_points():
    from veinscope._kernels.links import end_directions
    from veinscope._kernels.track import chain_ends

    # an L: down column 10 from row 5 to 20, then along row 20 to column 30
    pts = sorted({(y, 10) for y in range(5, 21)} | {(20, x) for x in range(10, 31)})
    ys = np.array([p[0] for p in pts], np.int64)
    xs = np.array([p[1] for p in pts], np.int64)
    seg = np.zeros(ys.size, np.int64)
    ends = chain_ends(ys, xs, seg, 64)
    out = np.zeros((ends.size, 2))
    end_directions(ys * 64 + xs, seg, 64, ends, 8, out)
    got = {(int(ys[e]), int(xs[e])): tuple(np.round(out[i], 6)) for i, e in enumerate(ends)}
    assert got == {(5, 10): (-1.0, 0.0), (20, 30): (0.0, 1.0)}


def test_the_gap_null_is_the_window_contrast_on_the_skin_off_the_chains():
    from veinscope._kernels.links import gap_nulls
    from veinscope._kernels.track import window_contrast

    rng = np.random.default_rng(4)
    sig = rng.normal(0.0, 0.05, (M, N)).astype(np.float32)
    skin = np.ones((M, N), np.uint8)
    det = _two_chains(40, 100, 160, 220)
    keys = det.points_yx[:, 0].astype(np.int64) * N + det.points_yx[:, 1]
    seg = det.segment.astype(np.int64)
    gy, gx = np.meshgrid(np.arange(4.0, M, 6.0), np.arange(4.0, N, 6.0), indexing="ij")
    gy, gx = gy.ravel(), gx.ravel()
    ty, tx = np.zeros(gy.size), np.ones(gy.size)
    med = np.zeros((1, 2))
    sp = np.zeros((1, 2))
    gap_nulls(sig, skin, keys, seg, N, gy, gx, ty, tx, np.array([1.0]), np.array([10, 20], np.int64), med, sp)
    # the slow reference: the tracker's window statistic from each start whose course (looked
    # at every 6 px and at its end) keeps farther than the template's reach (Chebyshev 6 px at
    # half-width 1) from both chains
    chain_x = set(range(40, 100)) | set(range(160, 220))
    for j, length in enumerate((10, 20)):
        vals = []
        for y, x in zip(gy, gx):
            course = [(int(y + 0.5), int(x + min(t, length) + 0.5)) for t in range(0, length + 6, 6)]
            if any(abs(cy - ROW) <= 6 and any(abs(cx - c) <= 6 for c in chain_x) for cy, cx in course):
                continue
            v = window_contrast(sig, skin, y, x + 1.0, 0.0, 1.0, 1.0, 3.0, 5.0, length)
            if not np.isnan(v):
                vals.append(v)
        vals = np.array(vals)
        assert med[0, j] == pytest.approx(np.median(vals), abs=1e-12)
        assert sp[0, j] == pytest.approx(1.4826 * np.median(np.abs(vals - np.median(vals))), abs=1e-12)
    # a constant signal has no contrast anywhere
    gap_nulls(np.ones((M, N), np.float32), skin, keys, seg, N, gy, gx, ty, tx, np.array([1.0]), np.array([10, 20], np.int64), med, sp)
    assert (med == 0).all() and (sp == 0).all()


@pytest.mark.parametrize("kw, word", [
    (dict(max_gap_px=True), "max_gap_px"),
    (dict(max_gap_px=80, min_gap_px=float("nan")), "min_gap_px"),
    (dict(max_gap_px=80, min_gap_px=-1.0), "min_gap_px"),
    (dict(max_gap_px=80, min_gap_px="2"), "min_gap_px"),
    (dict(max_gap_px=80, nfa=True), "nfa"),
    (dict(max_gap_px=80, max_angle_deg=True), "max_angle_deg"),
    (dict(max_gap_px=80, min_chain_px=-1), "min_chain_px"),
    (dict(max_gap_px=80, min_chain_px=2.5), "min_chain_px"),
    (dict(max_gap_px=80, min_chain_px=True), "min_chain_px"),
])
def test_every_keyword_of_link_ends_is_checked(kw, word):
    # review rev39: on main these passed silently (True read as 1 px / 1 degree / nfa 1, a NaN
    # min_gap_px or a negative min_chain_px turned a rule off)
    with pytest.raises(ValueError, match=word):
        link_ends(_two_chains(40, 100, 160, 220), _gapped_bar(0.04, 1), np.ones((M, N), bool), **kw)

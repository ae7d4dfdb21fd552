"""A vessel's centreline carried on to the vessel's end face (veinscope.extend.reach_end_faces, issue 4).

Analytic bars with a hand-made detection: a crest chain that stops short of the bar's ends, as
the line filter's chain does at a blunt end (its answer at the vessel's scale falls over about a
width before the end), and short chains where the filter forks towards the end's corners.
"""

import numpy as np
import pytest

import veinscope
from veinscope.extend import reach_end_faces
from veinscope.segment import VesselDetection

M, N = 100, 320
ROW = 50
X0, X1 = 40, 280  # the bar's first and last column + 1
WIDTH = 12


def _bar(*, seed=0, sigma=0.01, contrast=None):
    """A bar WIDTH px wide (rows ROW-6 .. ROW+5), columns X0 .. X1-1, on Gaussian pixel noise; the
    vessel signal is bright on the vessel. ``contrast`` (N,) the bar's level at each column."""
    sig = np.random.default_rng(seed).normal(0.0, sigma, (M, N)).astype(np.float32)
    c = np.zeros(N, np.float32)
    c[X0:X1] = 1.0
    if contrast is not None:
        c = np.asarray(contrast, np.float32)
    sig[ROW - WIDTH // 2 : ROW + WIDTH // 2] += c[None, :]
    return sig


def _det(chains, scale=6.0):
    """A detection of the given chains (lists of (row, col)), a bar's scale (half its width) each."""
    pts = np.concatenate([np.asarray(c, np.int64) for c in chains])
    seg = np.concatenate([np.full(len(c), i) for i, c in enumerate(chains)])
    order = np.argsort(pts[:, 0] * N + pts[:, 1], kind="stable")
    k = pts.shape[0]
    return VesselDetection(
        points_yx=pts[order].astype(np.int32),
        segment=seg[order].astype(np.int32),
        strength=np.ones(k, np.float32),
        normals_yx=np.tile(np.array([1.0, 0.0], np.float32), (k, 1)),
        scale_px=np.full(k, scale, np.float32),
        n_segments=len(chains),
        noise=0.01,
        thresholds=(0.03, 0.05),
    )


def _crest(x0=X0 + 15, x1=X1 - 15):
    return [(ROW, x) for x in range(x0, x1)]


def _chain_cols(det, c):
    return det.points_yx[det.segment == c, 1]


def test_a_crest_that_stops_short_is_carried_on_to_the_bar_s_end_faces():
    det = _det([_crest()])
    out = reach_end_faces(det, _bar(), np.ones((M, N), bool))
    cols = _chain_cols(out, 0)
    # the end face: the contrast across falls to half the bar's at its last column (blur-free bar)
    assert cols.min() == X0 and cols.max() == X1 - 1
    assert np.all(out.points_yx[:, 0] == ROW)
    added = out.reached
    assert added is not None and out.tracked is None
    assert added.sum() == 30 and np.all(out.segment[added] == 0)
    assert np.all((out.points_yx[added, 1] < X0 + 15) | (out.points_yx[added, 1] >= X1 - 15))
    # the new points are across the walk: normal (1, 0) for a horizontal bar, the end's scale
    np.testing.assert_allclose(np.abs(out.normals_yx[added]), [[1.0, 0.0]] * 30, atol=1e-6)
    np.testing.assert_allclose(out.scale_px[added], 6.0)
    # the input is not modified
    assert det.points_yx.shape[0] == 210 and det.reached is None


def test_forks_inside_the_end_are_dropped_but_not_chains_beyond_or_beside_it():
    fork = [(ROW - 1 - i, X0 + 4 - i // 2) for i in range(5)]  # towards the upper left corner, 5 points
    ahead = [(ROW, x) for x in range(X1 + 6, X1 + 14)]  # beyond the right end face, outside the bar
    beside = [(ROW + 12, x) for x in range(X0 + 2, X0 + 9)]  # outside the bar, beside its end
    long_fork = [(ROW - 1 - i, X0 + 2) for i in range(5)] + [(ROW - 6, X0 + 2 + j) for j in range(1, 10)]  # 14 > WIDTH
    det = _det([_crest(), fork, ahead, beside, long_fork])
    sig = _bar()
    sig[ROW - 2 : ROW + 2, X1 + 6 : X1 + 14] += 1.0  # the chain ahead is a small vessel of its own
    out = reach_end_faces(det, sig, np.ones((M, N), bool))
    kept = set(np.unique(out.segment).tolist())
    assert 1 not in kept  # shorter than the bar is wide, inside its last width: the end's fork
    assert {0, 2, 3, 4} <= kept  # beyond the face, beside the bar, or longer than the width
    assert _chain_cols(out, 0).min() == X0
    # without an end face (the walk runs its full length: the bar goes on) nothing is dropped
    long_bar = _bar(contrast=np.r_[np.zeros(X0), np.ones(N - X0)])
    det2 = _det([[(ROW, x) for x in range(X0 + 15, N - 30)], [(ROW - 1 - i, N - 32 + i // 2) for i in range(5)]])
    out2 = reach_end_faces(det2, long_bar, np.ones((M, N), bool), max_widths=0.5)
    assert set(np.unique(out2.segment).tolist()) == {0, 1}


def test_a_walk_stops_beside_another_vessel_and_at_a_fainter_continuation():
    # another vessel's chain (60 points, more than two widths) across the way, 8 px before the end
    other = [(y, X0 + 7) for y in range(ROW - 30, ROW + 30)]
    out = reach_end_faces(_det([_crest(), other]), _bar(), np.ones((M, N), bool))
    cols = _chain_cols(out, 0)
    assert cols.min() > X0 + 7 + 6  # stops once within the half-width and a pixel of the other
    assert cols.max() == X1 - 1
    # the bar goes on at a third of its contrast past column 200: its vessel ends there
    c = np.zeros(N)
    c[X0:200] = 1.0
    c[200:X1] = 0.33
    out = reach_end_faces(_det([_crest(x1=185)]), _bar(contrast=c), np.ones((M, N), bool))
    assert _chain_cols(out, 0).max() == 199


def _with_scales(det, scales):
    """``det`` with each chain's Hessian scale (half its vessel's width) set from ``scales`` (C,)."""
    from dataclasses import replace

    return replace(det, scale_px=np.asarray(scales, np.float32)[det.segment])


def test_a_crease_running_on_past_its_mark_is_not_carried_on_but_a_vessel_s_blunt_end_is():
    # A skin crease below the bar: a fold line across the whole photo, 4 px wide, with a bright lip
    # on one side (the lit flank of the fold: negative in the vessel signal), the same contrast all
    # along. The detection marked a stretch of it (columns 100-160), as the engine's false crease
    # marks on a creased leg. Walked on, its contrast stays at its own level: no end face within two
    # widths, the line goes on; a vessel's blunt end is where the contrast falls to half.
    m2, crease_row = 160, 130
    sig = np.random.default_rng(4).normal(0.0, 0.01, (m2, N)).astype(np.float32)
    sig[:M] = _bar()
    sig[crease_row - 2 : crease_row + 2] += 0.6
    sig[crease_row + 2 : crease_row + 10] -= 0.3  # the lip
    crease = [(crease_row, x) for x in range(100, 161)]
    det = _with_scales(_det([_crest(), crease]), [6.0, 2.0])
    out = reach_end_faces(det, sig, np.ones((m2, N), bool))
    # the vessel's crest reaches both end faces
    assert _chain_cols(out, 0).min() == X0 and _chain_cols(out, 0).max() == X1 - 1
    # the crease mark keeps its own points only: nothing carried on along the crease
    assert _chain_cols(out, 1).min() == 100 and _chain_cols(out, 1).max() == 160
    assert not out.reached[out.segment == 1].any()
    # ... while the same stretch on a fold that ends 3 px past the mark is carried to that end
    ends_sig = sig.copy()
    ends_sig[crease_row - 2 : crease_row + 10, :97] = np.random.default_rng(5).normal(0.0, 0.01, (12, 97))
    ends_sig[crease_row - 2 : crease_row + 10, 164:] = np.random.default_rng(6).normal(0.0, 0.01, (12, N - 164))
    out = reach_end_faces(det, ends_sig, np.ones((m2, N), bool))
    assert _chain_cols(out, 1).min() == 97 and _chain_cols(out, 1).max() == 163


def test_a_mark_lengthened_to_its_end_faces_is_not_followed_on_as_a_vessel_for_it():
    # A short dark mark (columns 100-121, 4 px wide) ending in a faint line that runs on at a third
    # of its contrast (a crease's faint run-on, a shadow's edge): the walk carries the mark's 16
    # detected points (103-118) to its faces, 22 points. extend_ends' minimum length (20 here) asks
    # whether the chain is a vessel rather than a speck of texture: judged on its detected points,
    # 16, it is not followed along the faint line; a mark detected over 20 points of its own is.
    from veinscope.extend import extend_ends

    sig = np.random.default_rng(7).normal(0.0, 0.01, (M, N)).astype(np.float32)
    sig[ROW - 2 : ROW + 2, 100:122] += 1.0
    sig[ROW - 2 : ROW + 2, 122:300] += 0.33
    skin = np.ones((M, N), bool)
    short = _with_scales(_det([[(ROW, x) for x in range(103, 119)]]), [2.0])
    walked = reach_end_faces(short, sig, skin)
    assert walked.reached.sum() == 6 and _chain_cols(walked, 0).min() == 100 and _chain_cols(walked, 0).max() == 121
    out = extend_ends(walked, sig, skin, max_length_px=100, window_px=5, long_window_px=15, min_chain_px=20)
    assert out.tracked is None or not out.tracked.any()
    assert _chain_cols(out, 0).max() == 121
    # detected over 22 points of its own, the same mark is followed along the faint line
    long = _with_scales(_det([[(ROW, x) for x in range(100, 122)]]), [2.0])
    out = extend_ends(reach_end_faces(long, sig, skin), sig, skin, max_length_px=100, window_px=5, long_window_px=15,
                      min_chain_px=20)  # fmt: skip
    assert out.tracked is not None and out.tracked.sum() > 50 and _chain_cols(out, 0).max() > 175


def test_no_walk_on_noise_from_a_short_chain_or_off_the_skin():
    # a chain on skin texture alone: its own contrast is not above the skin's noise beside it
    noise = np.random.default_rng(3).normal(0.0, 0.05, (M, N)).astype(np.float32)
    det = _det([_crest()])
    assert reach_end_faces(det, noise, np.ones((M, N), bool)) is det
    # a chain shorter than two of its widths has no crest to carry
    short = _det([[(ROW, x) for x in range(150, 170)]])
    assert reach_end_faces(short, _bar(), np.ones((M, N), bool)) is short
    # the way runs off the skin: the walk stops there
    skin = np.ones((M, N), bool)
    skin[:, : X0 + 8] = False
    out = reach_end_faces(det, _bar(), skin)
    assert _chain_cols(out, 0).min() == X0 + 8  # the last column whose samples are all on the skin


def test_reach_end_faces_checks_its_arguments():
    det = _det([_crest()])
    with pytest.raises(ValueError, match="max_widths"):
        reach_end_faces(det, _bar(), np.ones((M, N), bool), max_widths=-1)
    with pytest.raises(ValueError, match="same shape"):
        reach_end_faces(det, _bar(), np.ones((M, N + 1), bool))
    assert reach_end_faces(det, _bar(), np.ones((M, N), bool), max_widths=0) is det


def test_the_walks_are_the_same_on_one_thread():
    import numba

    det = _det([_crest(), [(ROW + 20, x) for x in range(60, 200)]])
    sig = _bar(seed=5, sigma=0.05)
    sig[ROW + 15 : ROW + 25, 50:230] += 0.8
    many = reach_end_faces(det, sig, np.ones((M, N), bool))
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = reach_end_faces(det, sig, np.ones((M, N), bool))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(many.points_yx, one.points_yx)
    np.testing.assert_array_equal(many.segment, one.segment)


def test_analyze_records_the_option_and_can_leave_it_out():
    rgb = np.full((96, 96, 3), (200, 150, 130), np.uint8)
    a = veinscope.analyze(rgb, px_per_mm=10.0)
    assert a.params["end_faces"] is True
    assert veinscope.analyze(rgb, px_per_mm=10.0, end_faces=False).params["end_faces"] is False


def _end_clutter_reference(y, x, seg, n_chains, fy, fx, ty, tx, hw, own):
    """The pruning's NumPy form (session 20's `_end_clutter`), the kernel's slow reference."""
    drop = np.zeros(n_chains, bool)
    size = np.bincount(seg, minlength=n_chains)
    lo_y = np.full(n_chains, np.inf)
    hi_y = np.full(n_chains, -np.inf)
    lo_x = np.full(n_chains, np.inf)
    hi_x = np.full(n_chains, -np.inf)
    np.minimum.at(lo_y, seg, y)
    np.maximum.at(hi_y, seg, y)
    np.minimum.at(lo_x, seg, x)
    np.maximum.at(hi_x, seg, x)
    for f in range(fy.size):
        w = 2.0 * hw[f]
        near = (size > 0) & (size < w) & (lo_y >= fy[f] - w) & (hi_y <= fy[f] + w) & (lo_x >= fx[f] - w) & (hi_x <= fx[f] + w)
        near[own[f]] = False
        for c in np.flatnonzero(near & ~drop):
            sel = seg == c
            dy, dx = y[sel] - fy[f], x[sel] - fx[f]
            along = dy * ty[f] + dx * tx[f]
            across = np.abs(dy * tx[f] - dx * ty[f])
            if np.all((along >= -w) & (along <= 0.5 * hw[f]) & (across <= 1.5 * hw[f])):
                drop[c] = True
    return drop


@pytest.mark.parametrize("seed", range(6))
def test_the_pruning_kernel_matches_its_numpy_reference(seed):
    from veinscope.extend import _end_clutter

    rng = np.random.default_rng(seed)
    n_chains = int(rng.integers(1, 60))
    k = int(rng.integers(1, 400))
    # short chains clustered near a few faces (so that some are dropped), some empty chains
    seg = rng.integers(0, n_chains, k)
    centre = rng.uniform(0, 60, (n_chains, 2))
    yx = np.clip(centre[seg] + rng.normal(0, 3, (k, 2)), 0, 70).round()
    order = np.lexsort((yx[:, 1], yx[:, 0]))
    yx, seg = yx[order], seg[order]
    n_f = int(rng.integers(0, 12))
    fy, fx = rng.uniform(0, 60, n_f), rng.uniform(0, 60, n_f)
    ang = rng.uniform(0, 2 * np.pi, n_f)
    ty, tx = np.sin(ang), np.cos(ang)
    hw = rng.uniform(1.0, 8.0, n_f)
    own = rng.integers(0, n_chains, n_f)
    det = VesselDetection(
        points_yx=yx.astype(np.int32), segment=seg.astype(np.int32), strength=np.ones(k, np.float32),
        normals_yx=np.tile(np.float32([1, 0]), (k, 1)), scale_px=np.ones(k, np.float32), n_segments=n_chains,
        noise=0.01, thresholds=(0.0, 0.0),
    )  # fmt: skip
    got = _end_clutter(det, fy, fx, ty, tx, hw, own)
    want = _end_clutter_reference(yx[:, 0], yx[:, 1], seg, n_chains, fy, fx, ty, tx, hw, own)
    np.testing.assert_array_equal(got, want)


def test_the_pruning_kernel_drops_some_chains_on_random_draws():
    """The comparison above is not empty: on these draws the reference drops chains."""
    from veinscope.extend import _end_clutter

    dropped = 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        # one face at (30, 30) looking along +x, half-width 6: short chains just behind it
        fy, fx, ty, tx, hw, own = (np.array([30.0]), np.array([30.0]), np.array([0.0]), np.array([1.0]),
                                   np.array([6.0]), np.array([0]))  # fmt: skip
        chains = [np.c_[np.full(20, 30), np.arange(0, 20)]]  # its own chain
        for _ in range(5):
            n = int(rng.integers(2, 11))
            y0, x0 = rng.uniform(24, 36), rng.uniform(20, 32)
            chains.append(np.c_[np.full(n, round(y0)), np.round(x0) + np.arange(n) // 3])
        yx = np.concatenate(chains).astype(np.int64)
        seg = np.concatenate([np.full(len(c), i) for i, c in enumerate(chains)])
        det = VesselDetection(
            points_yx=yx.astype(np.int32), segment=seg.astype(np.int32), strength=np.ones(len(seg), np.float32),
            normals_yx=np.tile(np.float32([1, 0]), (len(seg), 1)), scale_px=np.ones(len(seg), np.float32),
            n_segments=len(chains), noise=0.01, thresholds=(0.0, 0.0),
        )  # fmt: skip
        got = _end_clutter(det, fy, fx, ty, tx, hw, own)
        want = _end_clutter_reference(yx[:, 0].astype(float), yx[:, 1].astype(float), seg, len(chains), fy, fx, ty, tx, hw, own)
        np.testing.assert_array_equal(got, want)
        assert not got[0]
        dropped += int(got.sum())
    assert dropped > 0


@pytest.mark.parametrize("seed", range(5))
def test_chain_ends_matches_a_direct_count(seed):
    """The chain ends (points with exactly one 8-neighbour of their own chain) against a direct
    count on an image of chain labels, on random sparse chains, at the borders included."""
    from veinscope._kernels.track import chain_ends

    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    lab = np.where(rng.random((m, n)) < 0.3, rng.integers(0, 4, (m, n)), -1)
    ys, xs = np.nonzero(lab >= 0)  # row-major
    seg = lab[ys, xs].astype(np.int64)
    got = chain_ends(ys.astype(np.int64), xs.astype(np.int64), seg, n)
    pad = np.pad(lab, 1, constant_values=-1)
    count = np.zeros(ys.size, int)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                count += pad[ys + 1 + dy, xs + 1 + dx] == seg
    np.testing.assert_array_equal(got, np.flatnonzero(count == 1))
    assert chain_ends(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 5).size == 0


def test_warmup_compiles_the_pruning_kernel():
    """veinscope.warmup() loads the pruning's kernel too (its small photo has no end face)."""
    import subprocess
    import sys

    code = ("import veinscope; veinscope.warmup(); from veinscope._kernels import track; "
            "print(len(track.end_clutter.signatures), len(track.reach_faces.signatures))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "1"], out

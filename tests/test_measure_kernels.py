import math

import numpy as np
import pytest

from veinscope._kernels.ridges import centreline_candidates, paint_discs, paint_links, thin_corners
from veinscope.measure import chain_lengths


def _ref_paint(py, px, r, code, value, shape):
    m, n = shape
    yy, xx = np.mgrid[0:m, 0:n]
    best = np.full(shape, np.inf)
    lab = np.zeros(shape, np.uint8)
    val = np.zeros(shape, np.float32)
    for k in range(len(py)):
        d2 = (yy - py[k]) ** 2 + (xx - px[k]) ** 2
        upd = (d2 <= r[k] ** 2) & (d2 < best) & (r[k] > 0)
        best[upd] = d2[upd]
        lab[upd] = code[k]
        val[upd] = value[k]
    return lab, val


def test_paint_discs_matches_reference(rng):
    shape = (40, 55)
    k = 30
    py, px = rng.uniform(-3, 43, k), rng.uniform(-3, 58, k)
    r = rng.uniform(0, 6, k)
    r[0] = 0.0
    code = rng.integers(1, 5, k).astype(np.uint8)
    value = rng.random(k).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    val = np.zeros(shape, np.float32)
    best = np.full(shape, np.inf, np.float32)
    paint_discs(py, px, r, code, value, lab, val, best)
    rl, rv = _ref_paint(py, px, r, code, value, shape)
    # ties between two equidistant points may resolve either way: compare where unambiguous
    np.testing.assert_array_equal(lab > 0, rl > 0)
    assert np.mean(lab == rl) > 0.99


def test_disc_area_is_unbiased():
    lab = np.zeros((200, 200), np.uint8)
    val = np.zeros((200, 200), np.float32)
    best = np.full((200, 200), np.inf, np.float32)
    paint_discs(np.array([100.3]), np.array([99.6]), np.array([40.0]), np.array([1], np.uint8), np.array([1.0], np.float32), lab, val, best)
    assert abs(lab.sum() - math.pi * 40**2) / (math.pi * 40**2) < 0.01


def _chain(rng, n_steps, start):
    """A random 8-connected one-pixel chain (unique pixels, sorted row-major)."""
    y, x = start
    pts = {(y, x)}
    for _ in range(n_steps):
        dy, dx = rng.integers(-1, 2, 2)
        if dy == 0 and dx == 0:
            continue
        y, x = y + int(dy), x + int(dx)
        pts.add((y, x))
    return np.array(sorted(pts), np.int64)


def _paint_chain(pts, r, links):
    m, n = 60, 60
    lab = np.zeros((m, n), np.uint8)
    val = np.zeros((m, n), np.float32)
    best = np.full((m, n), np.inf, np.float32)
    py, px = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64)
    rad = np.full(len(pts), r)
    code = np.ones(len(pts), np.uint8)
    value = np.ones(len(pts), np.float32)
    paint_discs(py, px, rad, code, value, lab, val, best)
    if links:
        paint_links(pts[:, 0], pts[:, 1], py, px, rad, code, value, lab, val, best)
    return lab


def test_paint_links_matches_reference(rng):
    """Every pixel whose centre is within r of a link between 8-neighbouring chain pixels (or of
    a chain pixel) is painted, and no other."""
    pts = _chain(rng, 80, (30, 30))
    r = 0.8
    lab = _paint_chain(pts, r, links=True)
    yy, xx = np.mgrid[0:60, 0:60].astype(np.float64)
    d = np.full((60, 60), np.inf)
    key = {tuple(p) for p in pts.tolist()}
    for ay, ax in pts.tolist():
        d = np.minimum(d, np.hypot(yy - ay, xx - ax))
        for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
            if (ay + dy, ax + dx) in key:
                t = np.clip(((yy - ay) * dy + (xx - ax) * dx) / (dy * dy + dx * dx), 0, 1)
                d = np.minimum(d, np.hypot(yy - ay - t * dy, xx - ax - t * dx))
    np.testing.assert_array_equal(lab > 0, d <= r)


def test_a_thin_curved_vessel_is_painted_at_its_width():
    """A 1.6 px wide vessel along a circle (every direction): discs alone paint one pixel per
    chain step, about 0.9 px across; with the links, 1.6 px."""
    import cv2
    from skimage.morphology import skeletonize

    ring = np.zeros((60, 60), np.uint8)
    cv2.circle(ring, (30, 30), 20, 1, 1)
    pts = np.argwhere(skeletonize(ring > 0)).astype(np.int64)
    length = 2 * math.pi * 20
    discs = _paint_chain(pts, 0.8, links=False).sum() / length
    links = _paint_chain(pts, 0.8, links=True).sum() / length
    assert discs < 0.6 * 1.6
    assert abs(links / 1.6 - 1) < 0.1


def test_links_keep_the_code_of_the_nearer_end():
    pts = np.array([(20, 20), (20, 21)], np.int64)
    lab = np.zeros((40, 40), np.uint8)
    val = np.zeros((40, 40), np.float32)
    best = np.full((40, 40), np.inf, np.float32)
    py, px = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64)
    paint_links(pts[:, 0], pts[:, 1], py, px + np.array([0.0, 6.0]), np.array([1.5, 1.5]), np.array([1, 2], np.uint8),
                np.array([1.0, 2.0], np.float32), lab, val, best)  # fmt: skip
    assert lab[20, 21] == 1 and lab[20, 26] == 2
    assert val[20, 21] == 1.0 and val[20, 26] == 2.0


def _ref_nms(s, ny, nx, low):
    from scipy import ndimage as ndi

    m, n = s.shape
    yy, xx = np.mgrid[0:m, 0:n].astype(np.float64)
    out = (s >= low) & (s > 0)
    for sign in (-1, 1):
        y = np.clip(yy + sign * ny, 0, m - 1)
        x = np.clip(xx + sign * nx, 0, n - 1)
        v = ndi.map_coordinates(s.astype(np.float64), [y, x], order=1, mode="nearest")
        out &= ~(v > s + 1e-6)
    return out


def _nms(s, ny, nx, low, *, noise=0.0, high=0.0, cell=4):
    """centreline_candidates with the local-noise levels and the profile test out of the way."""
    out = np.zeros(s.shape, np.uint8)
    grid = np.full((-(-s.shape[0] // cell), -(-s.shape[1] // cell)), noise, np.float32)
    centreline_candidates(
        s, ny, nx, np.ones(s.shape, np.float32), np.ones(s.shape, bool), grid, float(cell), 1.0, high,
        float(low), np.zeros((1, 1), np.float32), False, np.ones((1, 1), bool), 0.35, out,
    )  # fmt: skip
    return out


@pytest.mark.parametrize("shape", [(31, 47), (1, 1), (2, 9), (9, 1)])
def test_centreline_nms_matches_reference(rng, shape):
    s = rng.random(shape).astype(np.float32)
    ang = rng.uniform(0, np.pi, shape)
    ny, nx = np.sin(ang).astype(np.float32), np.cos(ang).astype(np.float32)
    out = _nms(s, ny, nx, 0.2)
    ref = _ref_nms(s, ny, nx, 0.2)
    assert np.mean((out > 0) == ref) > 0.995
    # strong where s >= 2 * min_strength (the local levels are 0 here)
    np.testing.assert_array_equal(out == 2, (out > 0) & (s >= 0.4))


def test_a_band_whose_flank_lies_off_the_skin_is_not_a_centreline():
    """The profile test reads the signal on both sides; off the skin the signal is the skin's
    level by construction, so a side there is no evidence: the rim of a shaded leg beside
    clothing (a dark band with the outline on one side) must not pass as a vessel."""
    row = 20
    y = np.arange(40)[:, None]
    band = (np.exp(-((y - row) ** 2) / 8.0) * np.ones((1, 60))).astype(np.float32)

    def run(sig, flank):
        out = np.zeros(sig.shape, np.uint8)
        ones = np.ones(sig.shape, np.float32)
        grid = np.zeros((-(-sig.shape[0] // 4), 15), np.float32)
        centreline_candidates(
            sig, ones, 0 * ones, 2 * ones, np.ones(sig.shape, bool), grid, 4.0, 1.0, 0.0,
            0.1, sig, True, flank, 0.35, out,
        )  # fmt: skip
        return out

    skin = np.ones(band.shape, bool)
    assert (run(band, skin)[row] > 0).all()
    # the outline 3 px below the band: its lower profile point (2 x 2 + 1 = 5 px away) is off the skin
    outline = skin.copy()
    outline[row + 3 :] = False
    assert not run(band, outline).any()
    # the outline far enough away is no reason to drop it
    outline[:] = True
    outline[row + 8 :] = False
    assert (run(band, outline)[row] > 0).all()
    # nor is the photo's frame 3 px below the band (profile points beyond it are clamped to it)
    cut = band[: row + 3]
    assert (run(cut, np.ones(cut.shape, bool))[row] > 0).all()


def test_centreline_nms_thins_a_ridge_and_follows_the_local_noise():
    y = np.arange(50)[:, None]
    s = (np.exp(-((y - 20.3) ** 2) / 8.0) * np.ones((1, 60))).astype(np.float32)
    ny, nx = np.ones_like(s), np.zeros_like(s)
    out = _nms(s, ny, nx, 0.1)
    assert np.nonzero(out.any(axis=1))[0].tolist() == [20]
    # a local texture level of 1.2 puts the low level (1.0 x 1.2) above the ridge's 0.99 peak
    assert not _nms(s, ny, nx, 0.1, noise=1.2).any()
    # texture 0.4: low level 0.4 (kept), high level 3 x 0.4 = 1.2 (not strong)
    assert (_nms(s, ny, nx, 0.1, noise=0.4, high=3.0)[20] == 1).all()
    assert (_nms(s, ny, nx, 0.1, noise=0.4, high=2.0)[20] == 2).all()


@pytest.mark.parametrize("angle_deg", [0, 17, 30, 45, 60, 90, 133])
def test_chain_length_of_digital_lines(angle_deg):
    from skimage.draw import line

    length = 300.0
    a = math.radians(angle_deg)
    y0, x0 = 350, 350
    ys, xs = line(y0, x0, int(round(y0 + length * math.sin(a))), int(round(x0 + length * math.cos(a))))
    pts = np.stack([ys, xs], 1)
    length = math.hypot(ys[-1] - ys[0], xs[-1] - xs[0])
    got = chain_lengths(pts, np.zeros(len(pts), int), 1, (700, 700))[0]
    assert abs(got - length) / length < 0.06


def test_chain_length_segments_and_empty():
    pts = np.array([[0, 0], [0, 1], [0, 2], [5, 5], [6, 6]])
    seg = np.array([0, 0, 0, 1, 1])
    np.testing.assert_allclose(chain_lengths(pts, seg, 2, (8, 8)), [2 * 0.948, 1.343])
    assert chain_lengths(np.zeros((0, 2), int), np.zeros(0, int), 0, (4, 4)).shape == (0,)


def _chain_lengths_table(points_yx, segment, n_segments, shape):
    """Slow reference: the neighbours looked up in an image-sized table of segment ids."""
    pts = np.asarray(points_yx, dtype=np.int64)
    seg = np.asarray(segment, dtype=np.int64)
    out = np.zeros(n_segments, np.float64)
    if pts.shape[0] == 0:
        return out
    m, n = shape
    img = np.full((m + 2, n + 2), -1, np.int64)
    y = pts[:, 0] + 1
    x = pts[:, 1] + 1
    img[y, x] = seg

    def same(dy, dx):
        return img[y + dy, x + dx] == seg

    right, down, left = same(0, 1), same(1, 0), same(0, -1)
    axial = right.astype(np.float64) + down
    diag_r = same(1, 1) & ~right & ~down
    diag_l = same(1, -1) & ~left & ~down
    step = 0.948 * axial + 1.343 * (diag_r.astype(np.float64) + diag_l)
    np.add.at(out, seg, step)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_chain_lengths_equal_the_image_table_reference(seed):
    """Random centreline-like pixel sets touching every border (corners, row ends, where a
    wrong key would wrap to the next row), several segments, unsorted, some pixels listed twice
    with different segments: bit-identical to the image-table version."""
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    mask = rng.random((m, n)) < rng.uniform(0.05, 0.6)
    mask[:, 0] |= rng.random(m) < 0.5
    mask[:, -1] |= rng.random(m) < 0.5
    mask[0] |= rng.random(n) < 0.5
    mask[-1] |= rng.random(n) < 0.5
    pts = np.argwhere(mask)
    pts = pts[rng.permutation(len(pts))]
    nseg = int(rng.integers(1, 5))
    seg = rng.integers(0, nseg, len(pts))
    if len(pts) > 3:  # duplicates: the last listing wins in both versions
        dup = rng.choice(len(pts), 3, replace=False)
        pts = np.r_[pts, pts[dup]]
        seg = np.r_[seg, (seg[dup] + 1) % nseg]
    got = chain_lengths(pts, seg, nseg, (m, n))
    want = _chain_lengths_table(pts, seg, nseg, (m, n))
    assert np.array_equal(got, want), (got, want)


def _components8(mask):
    from scipy import ndimage as ndi

    return ndi.label(mask, structure=np.ones((3, 3), bool))[1]


def test_thin_corners_removes_staircase_pixels_only():
    # a 4-connected staircase becomes an 8-connected diagonal
    m = np.zeros((12, 12), np.uint8)
    for k in range(5):
        m[2 + k, 2 + k] = 1
        m[2 + k, 3 + k] = 1
    before = m.copy()
    removed = thin_corners(m)
    assert removed > 0
    assert _components8(m) == 1
    assert m.sum() < before.sum() and np.all(m <= before)
    # end points kept
    assert m[2, 2] or m[2, 3]
    assert m[6, 7] or m[6, 6]


@pytest.mark.parametrize("seed", range(5))
def test_thin_corners_keeps_connectivity(seed):
    rng = np.random.default_rng(seed)
    m = (rng.random((40, 40)) > 0.6).astype(np.uint8)
    n_before = _components8(m)
    out = m.copy()
    thin_corners(out)
    assert np.all(out <= m)
    assert _components8(out) == n_before


def test_thin_corners_leaves_straight_and_diagonal_lines():
    m = np.zeros((10, 10), np.uint8)
    m[5, 1:9] = 1
    np.fill_diagonal(m, 1)
    m[5, 5] = 1
    before = m.copy()
    thin_corners(m)
    assert m[5, 1:3].all() and m[5, 7:9].all() and np.all(np.diag(m)[[0, 1, 2, 8, 9]])
    assert _components8(m) == 1


def _random_points(rng, m=40, n=50, frac=0.3):
    mask = rng.random((m, n)) < frac
    ys, xs = np.nonzero(mask)
    return ys.astype(np.int32), xs.astype(np.int32), mask


def test_same_class_pieces_equal_connected_components(rng):
    import cv2

    from veinscope._kernels.ridges import same_class_pieces

    ys, xs, mask = _random_points(rng, frac=0.5)
    cls = rng.integers(0, 4, ys.size).astype(np.int64)  # class 0 is "not a vessel"
    codes = np.array([1, 2, 3], np.int64)
    piece, n = same_class_pieces(ys, xs, cls, codes, mask.shape[0])
    assert (piece[cls == 0] == -1).all()
    total = 0
    for c in codes:
        img = np.zeros(mask.shape, np.uint8)
        sel = cls == c
        img[ys[sel], xs[sel]] = 1
        nl, lab = cv2.connectedComponents(img, connectivity=8, ltype=cv2.CV_32S)
        ref = lab[ys[sel], xs[sel]]
        # the same partition (a one-to-one map between piece ids and OpenCV's labels), and
        # this class's pieces numbered after the previous classes', in raster order
        pairs = set(zip(piece[sel].tolist(), ref.tolist()))
        assert len(pairs) == len(set(piece[sel].tolist())) == len(set(ref.tolist())) == nl - 1
        first = [int(piece[sel][np.flatnonzero(piece[sel] == p)[0]]) for p in np.unique(piece[sel])]
        assert sorted(set(piece[sel].tolist())) == list(range(total, total + nl - 1))
        order = [int(piece[sel][i]) for i in sorted(np.unique(piece[sel], return_index=True)[1])]
        assert order == list(range(total, total + nl - 1)) and len(first) == nl - 1
        total += nl - 1
    assert n == total


def _line(y0, x0, n, dy=0, dx=1):
    return np.array([[y0 + k * dy, x0 + k * dx] for k in range(n)], np.int32)


def test_a_lone_short_wide_chain_is_a_patch_but_a_piece_of_a_vein_is_kept():
    from veinscope.measure import _isolated_patches

    vein = _line(100, 20, 120)                  # a long line, 10 px wide
    beside = _line(100, 150, 6)                 # short and 30 px wide, 10 px past the vein's end
    lone = _line(300, 300, 6)                   # short and 30 px wide, far from everything
    thin_short = _line(200, 400, 6)             # short but thin: a line, not a patch
    pts = np.concatenate([vein, beside, lone, thin_short])
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    seg = np.repeat(np.arange(4), [len(vein), len(beside), len(lone), len(thin_short)])
    width = np.repeat(np.array([10.0, 30.0, 30.0, 3.0], np.float32), [len(vein), len(beside), len(lone), len(thin_short)])
    pts, seg, width = pts[order], seg[order], width[order]
    accepted = np.ones(len(pts), bool)
    drop = _isolated_patches(pts, seg, accepted, width)
    assert set(np.unique(seg[drop])) == {2}
    # a chain already rejected neither counts as a neighbour nor is reported
    accepted[seg == 0] = False
    drop = _isolated_patches(pts, seg, accepted, width)
    assert set(np.unique(seg[drop])) == {1, 2}
    assert not drop[seg == 0].any()


# --------------------------------------------------------------------------- per-chain statistics
def _groups(rng, k, n_groups):
    groups = rng.integers(0, n_groups, k)
    groups[rng.random(k) < 0.02] = n_groups + 3  # outside 0..n-1: ignored by the medians' callers
    return groups


@pytest.mark.parametrize("k, n_groups", [(1, 1), (7, 3), (500, 40), (5000, 6), (20000, 900)])
def test_group_means_are_numpys_to_the_bit(rng, k, n_groups):
    """``group_means`` replaces ``values[idx].mean(axis=0)`` (and of ``abs``) per chain in
    ``measure_vessels``: the same float32 values, chains of 1 to thousands of points."""
    from veinscope._kernels.groups import group_means

    values = (rng.normal(size=(k, 3)) * rng.uniform(1e-3, 2.0, (1, 3))).astype(np.float32)
    groups = _groups(rng, k, n_groups)
    order = np.argsort(groups, kind="stable").astype(np.int64)
    bounds = np.searchsorted(groups[order], np.arange(n_groups + 1)).astype(np.int64)
    mean = np.empty((n_groups, 3), np.float32)
    abs_mean = np.empty((n_groups, 3), np.float32)
    group_means(values, order, bounds, mean, abs_mean)
    for g in range(n_groups):
        idx = order[bounds[g] : bounds[g + 1]]
        if idx.size:
            assert np.array_equal(mean[g], values[idx].mean(axis=0))
            assert np.array_equal(abs_mean[g], np.abs(values[idx]).mean(axis=0))
        else:
            assert not mean[g].any() and not abs_mean[g].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_group_medians_are_numpys_to_the_bit(rng, dtype):
    """``group_medians`` against ``np.median`` per group: odd and even groups, ties, empty
    groups, NaN (float), 1-D and 2-D values (each column on its own)."""
    from veinscope._kernels.groups import group_medians

    k, n_groups = 3000, 150
    groups = rng.integers(0, n_groups, k)
    groups[groups == 7] = 8  # an empty group
    if np.dtype(dtype).kind == "f":
        values = (rng.normal(size=(k, 2)) * 3).astype(dtype)
        values[::17] = np.round(values[::17])  # ties
        values[5, 0] = np.nan
    else:
        values = rng.integers(0, 4000, (k, 2)).astype(dtype)
    got2 = group_medians(values, groups, n_groups)
    got1 = group_medians(values[:, 1], groups, n_groups)
    for g in range(n_groups):
        sel = groups == g
        if not sel.any():
            assert np.isnan(got2[g]).all() and np.isnan(got1[g])
            continue
        want = np.median(values[sel], axis=0)
        assert got2.dtype == want.dtype
        np.testing.assert_array_equal(got2[g], want)  # NaN equal to NaN; otherwise exact
        assert got1[g] == want[1] or (np.isnan(got1[g]) and np.isnan(want[1]))


# --------------------------------------------------------------------------- chain ends carried on
def _ref_free_ends(ys, xs, chain, dir_px):
    """Slow reference of ``free_ends``: every point against every other."""
    k = len(ys)
    is_end = np.zeros(k, bool)
    out = np.zeros((k, 2))
    for i in range(k):
        own = chain == chain[i]
        near = own & (np.abs(ys - ys[i]) <= dir_px) & (np.abs(xs - xs[i]) <= dir_px)
        deg = int((own & (np.abs(ys - ys[i]) <= 1) & (np.abs(xs - xs[i]) <= 1)).sum()) - 1
        if deg != 1:
            continue
        u = np.array([ys[i] - ys[near].mean(), xs[i] - xs[near].mean()])
        if np.hypot(*u) < 0.5:
            continue
        is_end[i] = True
        out[i] = u / np.hypot(*u)
    return is_end, out


def _ref_end_links(ys, xs, chain, width, nrm, is_end, out, cos_min, max_width):
    """Slow reference of ``end_links``: every end against every point, rows in raster order."""
    k = len(ys)
    target = np.full(k, -1)
    gap = np.zeros(k)
    for i in range(k):
        if not is_end[i] or not width[i] > 0:
            continue
        best = np.inf
        r = math.ceil(width[i] + 0.5 * max_width)
        for p in range(k):  # sorted row-major: the kernel's order, so ties go the same way
            if chain[p] == chain[i] or abs(ys[p] - ys[i]) > r or abs(xs[p] - xs[i]) > r:
                continue
            v = np.array([ys[p] - ys[i], xs[p] - xs[i]], float)
            d = math.hypot(*v)
            lim = width[i] + 0.5 * (width[p] if width[p] > 0 else 0.0)
            if d > lim or d >= best or d == 0 or v @ out[i] < cos_min * d:
                continue
            if abs(v[0] * nrm[p, 1] - v[1] * nrm[p, 0]) / d > math.sqrt(0.5):
                if not is_end[p] or -(v @ out[p]) < cos_min * d:
                    continue
            best, target[i] = d, p
            cross = abs(v[0] * nrm[p, 1] - v[1] * nrm[p, 0]) / d <= math.sqrt(0.5)
        if target[i] >= 0:
            own = chain == chain[target[i]]
            d2 = (ys - ys[i]) ** 2 + (xs - xs[i]) ** 2
            inside = cross & (width > 0) & (d2 < 0.25 * np.nan_to_num(width) ** 2)
            if np.any(own & ((d2 < (0.7 * best) ** 2) | inside)):
                target[i] = -1
        gap[i] = best if target[i] >= 0 else 0.0
    return target, gap


def _random_chains(rng, m=60, n=70, n_chains=9):
    """Random walks (8-connected, some touching each other), unique points sorted row-major."""
    taken = {}
    for c in range(n_chains):
        y, x = int(rng.integers(0, m)), int(rng.integers(0, n))
        d = rng.integers(-1, 2, 2)
        for _ in range(int(rng.integers(3, 40))):
            if (y, x) not in taken:
                taken[(y, x)] = c
            if rng.random() < 0.3:
                d = rng.integers(-1, 2, 2)
            y, x = min(m - 1, max(0, y + int(d[0]))), min(n - 1, max(0, x + int(d[1])))
    keys = sorted(taken)
    ys = np.array([k[0] for k in keys], np.int64)
    xs = np.array([k[1] for k in keys], np.int64)
    chain = np.array([taken[k] for k in keys], np.int64)
    width = rng.uniform(0.5, 12.0, len(ys))
    width[rng.random(len(ys)) < 0.1] = np.nan
    a = rng.uniform(0, np.pi, len(ys))
    nrm = np.stack([np.sin(a), np.cos(a)], 1)
    return ys, xs, chain, width, nrm, m


@pytest.mark.parametrize("seed", range(8))
def test_free_ends_and_end_links_match_the_reference(seed):
    from veinscope._kernels.ridges import end_links, free_ends

    rng = np.random.default_rng(seed)
    ys, xs, chain, width, nrm, m = _random_chains(rng)
    is_end, oy, ox = free_ends(ys, xs, chain, m, 4)
    want_end, want_out = _ref_free_ends(ys, xs, chain, 4)
    np.testing.assert_array_equal(is_end, want_end)
    np.testing.assert_allclose(np.c_[oy, ox], want_out, atol=1e-12)
    assert is_end.any()
    wmax = float(np.nanmax(width))
    tgt, gap = end_links(ys, xs, chain, width, nrm[:, 0].copy(), nrm[:, 1].copy(), is_end, oy, ox, m, 0.7071, wmax)
    want_t, want_g = _ref_end_links(ys, xs, chain, width, nrm, want_end, want_out, 0.7071, wmax)
    np.testing.assert_array_equal(tgt, want_t)
    np.testing.assert_allclose(gap, want_g, atol=1e-12)


def test_end_links_edge_cases():
    from veinscope._kernels.ridges import end_links, free_ends

    # empty; a lone point (no neighbour: not an end); two collinear pieces facing each other
    e = np.zeros(0, np.int64)
    assert free_ends(e, e, e, 5, 4)[0].shape == (0,)
    one = np.array([2], np.int64)
    assert not free_ends(one, one, np.zeros(1, np.int64), 5, 4)[0].any()
    xs = np.array([0, 1, 2, 3, 8, 9, 10, 11], np.int64)
    ys = np.full(8, 5, np.int64)
    chain = np.array([0, 0, 0, 0, 1, 1, 1, 1], np.int64)
    is_end, oy, ox = free_ends(ys, xs, chain, 12, 4)
    assert is_end.tolist() == [True, False, False, True, True, False, False, True]
    nrm = np.tile([1.0, 0.0], (8, 1))  # horizontal vessel: normals vertical
    for w, linked in ((4.0, True), (3.0, False)):  # gap 5 px: within 4 + 4 / 2, not within 3 + 3 / 2
        tgt, gap = end_links(ys, xs, chain, np.full(8, w), nrm[:, 0].copy(), nrm[:, 1].copy(), is_end, oy, ox, 12, 0.7071, w)
        assert (tgt[3], tgt[4]) == ((4, 3) if linked else (-1, -1))
        assert gap[3] == (5.0 if linked else 0.0)
        assert (tgt[[0, 7]] == -1).all()  # the outer ends face nothing
    # a stub beside another vessel, running along it, is not carried on to it ...
    ys2 = np.r_[np.full(4, 5), np.full(12, 7)].astype(np.int64)
    xs2 = np.r_[np.arange(4), np.arange(12)].astype(np.int64)
    ch2 = np.r_[np.zeros(4), np.ones(12)].astype(np.int64)
    is_end, oy, ox = free_ends(ys2, xs2, ch2, 12, 4)
    horizontal = np.tile([1.0, 0.0], (16, 1))
    tgt, _ = end_links(ys2, xs2, ch2, np.full(16, 8.0), horizontal[:, 0].copy(), horizontal[:, 1].copy(), is_end, oy, ox, 12, 0.75, 8.0)
    assert tgt[3] == -1
    # ... while a branch reaching a vessel across its path is carried on to its centreline
    ys3 = np.r_[np.arange(12), np.full(4, 5)].astype(np.int64)
    xs3 = np.r_[np.full(12, 7), np.arange(4)].astype(np.int64)
    ch3 = np.r_[np.ones(12), np.zeros(4)].astype(np.int64)
    order = np.lexsort((xs3, ys3))
    ys3, xs3, ch3 = ys3[order], xs3[order], ch3[order]
    is_end, oy, ox = free_ends(ys3, xs3, ch3, 12, 4)
    vertical = np.tile([0.0, 1.0], (16, 1))
    tgt, gap = end_links(ys3, xs3, ch3, np.full(16, 4.0), vertical[:, 0].copy(), vertical[:, 1].copy(), is_end, oy, ox, 12, 0.7071, 4.0)
    end = np.flatnonzero((ys3 == 5) & (xs3 == 3))[0]
    assert tgt[end] == np.flatnonzero((ys3 == 5) & (xs3 == 7))[0] and gap[end] == 4.0
    # ... but not from inside it (the end within half the vessel's diameter of it: a stub)
    tgt, _ = end_links(ys3, xs3, ch3, np.full(16, 9.0), vertical[:, 0].copy(), vertical[:, 1].copy(), is_end, oy, ox, 12, 0.7071, 9.0)
    assert tgt[end] == -1


def test_a_link_between_touching_chains_of_one_piece_adds_no_length():
    # two chains touching end to end on one row: chain_lengths already counts the step between
    # them when they are one piece (same class), so the link must add nothing; as two pieces
    # (different classes) the step is in neither and the link carries it, counted once
    from veinscope.measure import _end_links, chain_lengths

    xs = np.arange(10, dtype=np.int64)
    pts = np.stack([np.full(10, 5, np.int64), xs], axis=1)
    chain = (xs >= 5).astype(np.int64)
    nrm = np.tile([1.0, 0.0], (10, 1))
    one_piece = np.zeros(10, np.int64)
    ends, _, share = _end_links(pts, chain, np.full(10, 2.0), nrm, 12, piece=one_piece)
    assert ends.size == 2  # both ends are linked ...
    total = chain_lengths(pts, one_piece, 1, (12, 12))[0] + share.sum()
    assert total == pytest.approx(9 * 0.948)  # ... and the step between them counted once
    two_pieces = chain.copy()
    _, _, share2 = _end_links(pts, chain, np.full(10, 2.0), nrm, 12, piece=two_pieces)
    total2 = chain_lengths(pts, two_pieces, 2, (12, 12)).sum() + share2.sum()
    assert 8 * 0.948 < total2 <= 8 * 0.948 + 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_path_ranks_walk_each_branch_end_to_end(seed):
    # digital lines and arcs (8-connected, staircase corners kept), each one branch: the ranks
    # are 0 .. length - 1 and consecutive ranks are 8-neighbours, from an end
    from veinscope._kernels.ridges import path_ranks
    from veinscope.measure import _neighbour_index

    rng = np.random.default_rng(seed)
    n = 400
    paths = []
    for b in range(6):
        y0, x0 = 50 + 90 * b, 20
        if b % 2:
            t = np.linspace(0.0, 1.0, 400)
            ang = rng.uniform(-0.6, 0.6)
            ys, xs = np.round(y0 + 30 * np.sin(ang + 3 * t)), np.round(x0 + 300 * t)
        else:
            L = rng.integers(20, 300)
            ang = rng.uniform(-0.15, 0.15)
            ys, xs = np.round(y0 + np.arange(L) * math.sin(ang)), np.round(x0 + np.arange(L) * math.cos(ang))
        p = np.unique(np.stack([ys, xs], 1).astype(np.int64), axis=0)
        paths.append(p)
    pts = np.concatenate(paths)
    branch = np.concatenate([np.full(len(p), b) for b, p in enumerate(paths)])
    key = pts[:, 0] * n + pts[:, 1]
    o = np.argsort(key)
    pts, branch, key = pts[o], branch[o], key[o]
    assert np.all(np.diff(key) > 0)
    rank = path_ranks(_neighbour_index(pts, key, n), branch, len(paths))
    for b in range(len(paths)):
        sel = np.flatnonzero(branch == b)
        r = rank[sel]
        assert np.array_equal(np.sort(r), np.arange(sel.size))
        walk = pts[sel[np.argsort(r)]]
        step = np.abs(np.diff(walk, axis=0)).max(axis=1)
        assert step.max() <= 1
        # starts at an end: the first point has one neighbour on the branch
        first = walk[0]
        near = np.abs(pts[sel] - first).max(axis=1) == 1
        assert near.sum() == 1


def test_path_ranks_edge_cases():
    from veinscope._kernels.ridges import path_ranks

    nbr = np.full((3, 8), -1, np.int64)
    # isolated points, one off every branch
    assert list(path_ranks(nbr, np.array([0, -1, 1], np.int64), 2)) == [0, -1, 0]
    assert path_ranks(np.zeros((0, 8), np.int64), np.zeros(0, np.int64), 0).size == 0


# ---- the colour split's chain graph in compiled code (session 21, helper "jsplit") -----------
# The NumPy code these kernels replaced (session 20), kept here as the slow references: searchsorted
# neighbours, SciPy's connected components, bincount votes.
from veinscope.measure import _neighbour_index as _ref_neighbour_index  # noqa: E402  (still the library's NumPy form)


def _ref_components(n_nodes, src, dst):
    """Each node's component, named by its smallest node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, lab = connected_components(coo_matrix((np.ones(src.size), (src, dst)), shape=(n_nodes, n_nodes)), directed=False)
    smallest = np.full(lab.max() + 1 if n_nodes else 0, n_nodes, np.int64)
    np.minimum.at(smallest, lab, np.arange(n_nodes))
    return smallest[lab]


def _ref_branches(pts, segment, chains, key, n):
    branch = np.full(pts.shape[0], -1, np.int64)
    sub = np.flatnonzero(np.isin(segment, chains))
    if sub.size == 0:
        return branch, 0
    seg = segment[sub]
    nb = _ref_neighbour_index(pts[sub], key[sub], n)
    same = (nb >= 0) & (seg[np.maximum(nb, 0)] == seg[:, None])
    junction = same.sum(axis=1) >= 3
    src, col = np.nonzero(same & ~junction[:, None])
    dst = nb[src, col]
    keep = ~junction[dst]
    comp = _ref_components(sub.size, src[keep], dst[keep])
    branch[sub[junction]] = -2
    if junction.all():
        return branch, 0
    _, ids = np.unique(comp[~junction], return_inverse=True)
    branch[sub[~junction]] = ids
    return branch, int(ids.max()) + 1


def _ref_tracked_follow(pts, key, n, segment, chains, core, red):
    sub = np.flatnonzero(np.isin(segment, chains))
    seg, c = segment[sub], core[sub]
    nb = _ref_neighbour_index(pts[sub], key[sub], n)
    same = (nb >= 0) & (seg[np.maximum(nb, 0)] == seg[:, None])
    i, j = np.nonzero(same)
    q = nb[i, j]
    tt = ~c[i] & ~c[q]
    comp = _ref_components(sub.size, i[tt], q[tt])
    tc = ~c[i] & c[q]
    votes = np.bincount(comp[i[tc]], minlength=sub.size).astype(np.float64)
    reds = np.bincount(comp[i[tc]], weights=red[sub[q[tc]]].astype(np.float64), minlength=sub.size)
    out = red.copy()
    t = ~c & (votes[comp] > 0)
    out[sub[t]] = 2.0 * reds[comp[t]] >= votes[comp[t]]
    return out


def _random_chain_points(rng, shape, density):
    """Points of a random mask (sorted row-major, as detect_vessels gives them), each with one
    of four chain ids or -1, and whether each was detected (else tracked)."""
    m, n = shape
    mask = rng.random(shape) < density
    pts = np.argwhere(mask).astype(np.int32)
    key = pts[:, 0].astype(np.int64) * n + pts[:, 1]
    segment = rng.integers(-1, 4, pts.shape[0]).astype(np.int64)
    # mostly long runs of one chain, as real chains are: ids by column band, some noise
    band = np.minimum(pts[:, 1] * 3 // n, 2).astype(np.int64)
    segment = np.where(rng.random(pts.shape[0]) < 0.8, band, segment)
    core = rng.random(pts.shape[0]) < 0.7
    return pts, key, segment, core


@pytest.mark.parametrize("shape, density", [((1, 1), 1.0), ((1, 9), 0.8), ((9, 1), 0.8), ((2, 2), 1.0), ((7, 11), 0.5),
                                            ((30, 40), 0.35), ((30, 40), 0.6), ((64, 9), 0.9)])  # fmt: skip
@pytest.mark.parametrize("seed", range(6))
def test_chain_graph_kernels_equal_the_numpy_reference(shape, density, seed):
    # neighbours, junction split, tracked runs' vote and the junction touch, on random masks
    # (borders, a single row or column, full blocks where every point is a junction), against
    # the NumPy code they replaced, value for value
    from veinscope._kernels.ridges import neighbour_index
    from veinscope.measure import _branches, _neighbour_index, _touches, _tracked_follow

    rng = np.random.default_rng(1000 * seed + shape[0] * shape[1])
    pts, key, segment, core = _random_chain_points(rng, shape, density)
    n = shape[1]
    if pts.shape[0] == 0:
        pytest.skip("empty mask")
    ref_nb = _ref_neighbour_index(pts, key, n)
    assert np.array_equal(neighbour_index(key, pts[:, 1].astype(np.int64), n), ref_nb)
    assert np.array_equal(_neighbour_index(pts, key, n), ref_nb)
    for chains in (np.array([0]), np.array([0, 2]), np.array([0, 1, 2, 3]), np.array([7])):
        for seg in (segment, np.where(core, segment, -1)):
            got, ref = _branches(pts, seg, chains, key, n, neighbours=True), _ref_branches(pts, seg, chains, key, n)
            assert got[1] == ref[1] and np.array_equal(got[0], ref[0])
            sub = np.flatnonzero(np.isin(seg, chains))
            assert np.array_equal(got[2], sub) and np.array_equal(got[3], _ref_neighbour_index(pts[sub], key[sub], n))
        red = rng.random(pts.shape[0]) < 0.5
        assert np.array_equal(_tracked_follow(pts, key, n, segment, chains, core, red),
                              _ref_tracked_follow(pts, key, n, segment, chains, core, red))  # fmt: skip
    mask = rng.random(pts.shape[0]) < 0.3
    among = rng.random(pts.shape[0]) < 0.5
    nb = _ref_neighbour_index(pts, key, n)
    ref_touch = ((nb >= 0) & mask[np.maximum(nb, 0)]).any(axis=1) & among
    assert np.array_equal(_touches(pts, key, n, mask, among), ref_touch)


def test_junction_branches_split_a_cross_and_number_branches_by_their_first_point():
    from veinscope._kernels.ridges import junction_branches

    # a plus sign: the centre and its four 4-neighbours have 3+ neighbours in the chain
    n = 9
    pts = np.array(sorted({(4, x) for x in range(9)} | {(y, 4) for y in range(9)}), np.int64)
    key = pts[:, 0] * n + pts[:, 1]
    branch, nb_, _ = junction_branches(key, pts[:, 1].copy(), n, np.zeros(len(pts), np.int64))
    assert nb_ == 4
    junction = {tuple(p) for p in pts[branch == -2]}
    assert junction == {(4, 4), (3, 4), (5, 4), (4, 3), (4, 5)}
    first = [tuple(pts[np.flatnonzero(branch == b)[0]]) for b in range(4)]
    assert first == [(0, 4), (4, 0), (4, 6), (6, 4)]  # in the order of the points
    # two chains touching are not joined
    branch2, nb2, _ = junction_branches(key, pts[:, 1].copy(), n, (pts[:, 1] > 4).astype(np.int64))
    assert nb2 >= 2 and not set(branch2[pts[:, 1] > 4]) & set(branch2[(pts[:, 1] <= 4) & (branch2 >= 0)])


def test_follow_detected_takes_the_majority_and_a_tie_reads_red():
    from veinscope._kernels.ridges import follow_detected

    # one row: detected red, detected blue, tracked, tracked, detected blue | gap | tracked alone
    n = 12
    pts = np.array([[0, x] for x in (0, 1, 2, 3, 4, 8)], np.int64)
    key = pts[:, 0] * n + pts[:, 1]
    nbr = (key, pts[:, 1].copy(), n)
    core = np.array([1, 1, 0, 0, 1, 0], bool)
    red = np.array([1, 0, 0, 0, 0, 1], bool)
    # the run (2, 3) touches blue point 1 and blue point 4: blue; the lone tracked point keeps red
    assert list(follow_detected(*nbr, np.zeros(6, np.int64), core, red)) == [1, 0, 0, 0, 0, 1]
    # with point 4 red: one red and one blue vote, a tie reads red
    red2 = red.copy()
    red2[4] = True
    assert list(follow_detected(*nbr, np.zeros(6, np.int64), core, red2)) == [1, 0, 1, 1, 1, 1]
    # a detected point of another chain does not vote
    chain = np.array([0, 1, 0, 0, 0, 0], np.int64)
    assert list(follow_detected(*nbr, chain, core, red2)) == [1, 0, 1, 1, 1, 1]
    chain2 = np.array([0, 0, 0, 0, 1, 0], np.int64)
    assert list(follow_detected(*nbr, chain2, core, red2)) == [1, 0, 0, 0, 1, 1]

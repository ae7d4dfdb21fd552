"""Red vs blue judged run by run where vessels of different colour cross or touch inside one chain
(measure._colour_runs, analyze(colour_runs_z=))."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

import veinscope
from veinscope.chromophores import CHROMOPHORE_DIRECTIONS
from veinscope.measure import _colour_runs

from tests.test_pipeline import _bar, _render  # the same skin photo and bars as the colour split's tests

HB = np.asarray(CHROMOPHORE_DIRECTIONS["haemoglobin"])
VEN = np.asarray(CHROMOPHORE_DIRECTIONS["venous"])


def _chain(path_yx, n=200):
    """Points of one chain (sorted row-major, as detect_vessels returns them) along ``path_yx``;
    the order that sorts the path."""
    pts = np.asarray(path_yx, np.int64)
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    pts = pts[order]
    return pts, pts[:, 0] * n + pts[:, 1], n, order


def _l_path(arm=20, leg=80):
    # a red arm along row 20, turning down into a blue vessel along column 10 + arm: one branch,
    # no junction where the colour changes
    return [(20, 10 + i) for i in range(arm)] + [(21 + i, 10 + arm) for i in range(leg)]


def _judge(pts, key, n, od, red, *, z=3.0, width=4.0):
    k = pts.shape[0]
    return _colour_runs(pts, key, n, np.zeros(k, np.int64), np.array([0]), od, np.ones(k, bool),
                        np.full(k, width, np.float32), red, z=z)  # fmt: skip


def test_a_red_arm_turning_into_a_blue_vessel_is_read_in_both_colours():
    rng = np.random.default_rng(1)
    path = _l_path()
    colour = np.array([HB] * 20 + [VEN] * 80)  # path order: 20 red, then 80 blue
    pts, key, n, order = _chain(path)
    od = (0.3 * colour + rng.normal(0.0, 0.02, colour.shape))[order]
    is_blue = (np.arange(100) >= 20)[order]
    red = np.ones(pts.shape[0], bool)  # the chain read red as a whole (its branch mixes both)
    out = _judge(pts, key, n, od, red)
    assert not out[is_blue].any()  # the blue vessel: blue along its length
    assert out[~is_blue].all()  # the red arm stays red
    assert not np.shares_memory(out, red) and red.all()  # input not modified


def test_a_chain_of_one_colour_with_noise_is_left_as_it_was():
    rng = np.random.default_rng(2)
    pts, key, n, order = _chain(_l_path(40, 160))
    k = pts.shape[0]
    # a purple vessel: its colour signal dithers about the red / blue boundary point by point
    od = 0.15 * (HB + VEN) + rng.normal(0.0, 0.03, (k, 3))
    for start in (True, False):
        out = _judge(pts, key, n, od, np.full(k, start))
        assert (out == start).all()
    # a clear blue vessel read blue stays blue; short runs of noise do not flip
    od = 0.3 * VEN + rng.normal(0.0, 0.05, (k, 3))
    assert not _judge(pts, key, n, od, np.zeros(k, bool)).any()


def test_a_run_shorter_than_three_sample_lengths_keeps_the_chains_colour():
    rng = np.random.default_rng(3)
    pts, key, n, order = _chain(_l_path(60, 20))  # the blue part 20 px: under 3 x 8 px
    colour = np.array([HB] * 60 + [VEN] * 20)
    od = (0.3 * colour + rng.normal(0.0, 0.02, colour.shape))[order]
    assert _judge(pts, key, n, od, np.ones(pts.shape[0], bool)).all()


def test_a_faint_smooth_tail_near_the_boundary_is_judged_with_its_chains_spread():
    # the faint end of a blue vessel whose colour signal sits just on the red side with little
    # spread of its own over a few samples: its error bar is at least its chain's
    rng = np.random.default_rng(4)
    path = [(20, 10 + i) for i in range(170)] + [(21 + i, 179) for i in range(30)]
    colour = np.concatenate([0.3 * VEN + rng.normal(0.0, 0.05, (170, 3)),
                             0.12 * HB + 0.10 * VEN + rng.normal(0.0, 0.002, (30, 3))])  # fmt: skip
    pts, key, n, order = _chain(path, n=400)
    assert not _judge(pts, key, n, colour[order], np.zeros(200, bool)).any()


def _spider_crossed_by_a_blue_line(rng, ppm=10.0):
    """A red spider (9 arms 0.35 mm wide from a 1.2 mm centre) and a blue 0.35 mm line passing
    0.6 mm beside its centre: one 8-connected chain, whose skeleton near the centre runs along
    red arms into the blue line without a junction where the colour changes. Also the masks of
    the blue line's and the red arms' pixels away from each other."""
    shape = (260, 360)
    cy, cx = 130, 170
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    red = ndi.gaussian_filter(0.35 * (np.hypot(yy - cy, xx - cx) <= 0.6 * ppm), 0.8)
    for k in range(9):
        a = 0.3 + 2 * math.pi * k / 9
        red = np.maximum(red, _bar(shape, (cy, cx), (cy + 90 * math.sin(a), cx + 90 * math.cos(a)), 0.35 * ppm, 0.35))
    blue = _bar(shape, (10, cx + 6 - 25), (250, cx + 6 + 25), 0.35 * ppm, 0.25)
    rgb = _render([(HB, red), (VEN, blue)], rng)
    return rgb, (blue > 0.1) & (red < 0.02), (red > 0.15) & (blue < 0.02)


@pytest.mark.parametrize("seed", [2, 3, 5])
def test_a_blue_line_through_a_red_spider_is_read_blue_along_its_length(seed):
    rgb, blue_px, red_px = _spider_crossed_by_a_blue_line(np.random.default_rng(seed))
    a = veinscope.analyze(rgb, px_per_mm=10.0)  # on by default
    b = np.bincount(a.labels[blue_px], minlength=5)
    r = np.bincount(a.labels[red_px], minlength=5)
    assert b[1:].sum() > 500 and b[2] > 0.9 * b[1:].sum()  # the blue line: blue
    assert r[1:].sum() > 1500 and r[1] > 0.95 * r[1:].sum()  # the spider: red
    assert a.params["colour_runs_z"] == 3.0
    # judged per branch only (the rule off), a stretch of the blue line is read red
    off = veinscope.analyze(rgb, px_per_mm=10.0, colour_runs_z=None)
    b_off = np.bincount(off.labels[blue_px], minlength=5)
    assert b_off[2] < 0.8 * b_off[1:].sum()
    # the mask and the diameters are the same: only the colour moves
    assert np.array_equal(a.labels > 0, off.labels > 0)
    assert np.array_equal(a.diameter_px, off.diameter_px)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "3"])
def test_colour_runs_z_is_validated(bad):
    with pytest.raises(ValueError, match="colour_runs_z"):
        veinscope.analyze(np.full((64, 64, 3), 180, np.uint8), px_per_mm=10.0, colour_runs_z=bad)


def test_value_runs_kernel_matches_a_labelling_per_value():
    from veinscope._kernels.ridges import value_runs

    rng = np.random.default_rng(7)
    for m, n, frac in ((1, 1, 1.0), (1, 9, 0.7), (17, 23, 0.5), (40, 31, 0.3)):
        grid = rng.random((m, n)) < frac
        vals = rng.integers(-1, 3, (m, n))
        ys, xs = np.nonzero(grid)
        key = (ys * n + xs).astype(np.int64)
        v = vals[ys, xs].astype(np.int64)
        run, n_run = value_runs(key, xs.astype(np.int64), n, v)
        assert (run[v < 0] == -1).all()
        ref = np.full(ys.size, -1, np.int64)
        seen = 0
        for val in np.unique(v[v >= 0]):
            lab, k = ndi.label(grid & (vals == val), structure=np.ones((3, 3)))
            ref[v == val] = lab[ys[v == val], xs[v == val]] + seen
            seen += k
        assert n_run == seen
        # the same partition (ids may differ): each run is one reference run and vice versa
        sel = v >= 0
        pairs = np.unique(np.stack([run[sel], ref[sel]], 1), axis=0)
        assert len(pairs) == n_run == len(np.unique(run[sel])) == len(np.unique(ref[sel]))
        # numbered in the order of each run's first point
        first = [int(np.flatnonzero(run == r)[0]) for r in range(n_run)]
        assert first == sorted(first)

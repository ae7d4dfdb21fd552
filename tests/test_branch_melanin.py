"""The melanin rule judged branch by branch: a hair crossing a vessel is one chain with it
(measure._melanin_branches, analyze(branch_melanin_widths=))."""

from __future__ import annotations

import numpy as np
import pytest

import veinscope
from veinscope.chromophores import CHROMOPHORE_DIRECTIONS
from veinscope.measure import _melanin_branches

from tests.test_pipeline import _bar, _render

VEN = np.asarray(CHROMOPHORE_DIRECTIONS["venous"])
HB = np.asarray(CHROMOPHORE_DIRECTIONS["haemoglobin"])
# a brown-black hair: an opaque fibre (equal OD in the three channels over the part of a pixel
# it covers) with eumelanin's colour
HAIR = np.ones(3) / np.sqrt(3) + np.asarray(CHROMOPHORE_DIRECTIONS["melanin"])
HAIR = HAIR / np.linalg.norm(HAIR)


def _cross(arm=60, n=200):
    """One chain: a horizontal line along row 100 and a vertical one along column 100 crossing
    it, each ``arm`` px either side of the crossing; points sorted row-major. Masks of the
    horizontal line's and the vertical line's points (the crossing point in neither)."""
    pts = {(100, 100 + i) for i in range(-arm, arm + 1)} | {(100 + i, 100) for i in range(-arm, arm + 1)}
    pts = np.array(sorted(pts), np.int64)
    horiz = (pts[:, 0] == 100) & (pts[:, 1] != 100)
    vert = (pts[:, 1] == 100) & (pts[:, 0] != 100)
    return pts, pts[:, 0] * n + pts[:, 1], n, horiz, vert


def _judge(pts, key, n, od, *, min_widths=3.0, width=4.0, accepted=None):
    k = pts.shape[0]
    acc = np.ones(k, bool) if accepted is None else accepted
    return _melanin_branches(pts, key, n, np.zeros(k, np.int64), np.array([0]), od, np.ones(k, bool),
                             np.full(k, width, np.float32), acc, max_melanin_frac=0.45, min_widths=min_widths)  # fmt: skip


def test_a_hair_crossing_a_vein_is_dropped_and_the_vein_stays():
    rng = np.random.default_rng(1)
    pts, key, n, horiz, vert = _cross()
    od = np.where(vert[:, None], 0.25 * HAIR, 0.3 * VEN) + rng.normal(0.0, 0.02, (pts.shape[0], 3))
    before = od.copy()
    drop = _judge(pts, key, n, od)
    far = np.abs(pts - 100).max(axis=1) > 1  # beside the crossing, points are junctions (3+ neighbours)
    assert drop[vert & far].all()  # both arms of the hair
    assert not drop[horiz].any()  # the vein
    assert not drop[~far].any()  # the crossing (junction points) stays
    assert np.array_equal(od, before)


def test_blood_of_either_colour_is_never_dropped():
    rng = np.random.default_rng(2)
    pts, key, n, horiz, vert = _cross()
    od = np.where(vert[:, None], 0.25 * HB, 0.3 * VEN) + rng.normal(0.0, 0.02, (pts.shape[0], 3))
    assert not _judge(pts, key, n, od).any()


def test_a_short_branch_and_a_noisy_one_near_the_boundary_are_kept():
    rng = np.random.default_rng(3)
    # arms 20 px: under 3 sample lengths of 8 px
    pts, key, n, horiz, vert = _cross(arm=20)
    od = np.where(vert[:, None], 0.25 * HAIR, 0.3 * VEN) + rng.normal(0.0, 0.02, (pts.shape[0], 3))
    assert not _judge(pts, key, n, od).any()
    # long arms, but a colour just over the boundary buried in noise: not clear, kept
    pts, key, n, horiz, vert = _cross()
    grey = np.ones(3) / np.sqrt(3)  # a flat OD is 0.48 melanin-like, just over 0.45
    od = np.where(vert[:, None], 0.2 * grey, 0.3 * VEN) + rng.normal(0.0, 0.08, (pts.shape[0], 3))
    assert not _judge(pts, key, n, od).any()


def test_a_chain_of_one_branch_is_left_to_the_chain_rule():
    rng = np.random.default_rng(4)
    pts = np.array([(50, 10 + i) for i in range(100)], np.int64)
    key = pts[:, 0] * 200 + pts[:, 1]
    od = 0.25 * HAIR + rng.normal(0.0, 0.02, (100, 3))
    assert not _judge(pts, key, 200, od).any()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_analyze_drops_a_brown_hair_crossing_a_blue_vein(seed):
    rng = np.random.default_rng(seed)
    shape = (240, 320)
    blue = _bar(shape, (120, 20), (125, 300), 6.0, 0.30)  # a 0.6 mm blue telangiectasia
    hair = _bar(shape, (20, 150), (220, 175), 1.2, 0.6, blur=0.6)  # a hair 0.12 mm across it
    rgb = _render([(VEN, blue), (HAIR, hair)], rng)
    hair_px = (hair > 0.1) & (blue < 0.02)
    blue_px = blue > 0.15
    off = veinscope.analyze(rgb, px_per_mm=10.0)
    on = veinscope.analyze(rgb, px_per_mm=10.0, branch_melanin_widths=3.0)
    assert off.params["branch_melanin_widths"] is None and on.params["branch_melanin_widths"] == 3.0
    # off (the default): the hair passes on the vein's colour, one chain with it
    assert (off.labels[hair_px] > 0).sum() > 150
    # on: the hair is gone, the vein is painted as before
    assert (on.labels[hair_px] > 0).sum() <= 5
    assert np.array_equal(on.labels[blue_px], off.labels[blue_px])
    assert (on.labels[blue_px] == 2).mean() > 0.95


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "3"])
def test_branch_melanin_widths_is_validated(bad):
    with pytest.raises(ValueError, match="branch_melanin_widths"):
        veinscope.analyze(np.full((64, 64, 3), 180, np.uint8), px_per_mm=10.0, branch_melanin_widths=bad)


def test_only_chains_of_two_or_more_branches_are_judged():
    """A crossing (chain 0, a hair over a vein) and a lone straight hair (chain 1) judged
    together: the crossing's hair arm is dropped, the lone hair is left to the chain rule (a
    chain of one branch is not judged branch by branch; session 30's review)."""
    pts0, _key0, _n0, _horiz, _vert = _cross()
    lone = np.array([(20, 10 + i) for i in range(100)], np.int64)
    pts = np.r_[pts0, lone]
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    seg = np.r_[np.zeros(len(pts0), np.int64), np.ones(len(lone), np.int64)][order]
    pts = pts[order]
    key = pts[:, 0] * 200 + pts[:, 1]
    is_hair_arm = (pts[:, 1] == 100) & (seg == 0)
    od = np.where((is_hair_arm | (seg == 1))[:, None], 0.25 * HAIR, 0.3 * VEN) + np.random.default_rng(1).normal(0, 0.02, (len(pts), 3))
    k = len(pts)
    dropped = _melanin_branches(pts, key, 200, seg, np.array([0, 1]), od, np.ones(k, bool), np.full(k, 4.0, np.float32), np.ones(k, bool), max_melanin_frac=0.45)
    assert dropped[is_hair_arm].mean() > 0.9
    assert not dropped[seg == 1].any()
    assert not dropped[(seg == 0) & ~is_hair_arm & (pts[:, 1] != 100)].any()

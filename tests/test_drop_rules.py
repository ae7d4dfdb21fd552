"""Which rule of measure_vessels drops a detected chain (``drop_reasons``, ``DROP_RULES``) and a
chain the overlap rule drops kept when it adds enough vessel of its own (``covered_rest_px``,
``analyze(covered_rest_mm=...)``), session 39 (helper "drop39", issue 4).

Constructed chains on a plain photo: a wide vein along a row (chain A, 200 px, 8 px wide) and a
branch (chain B) that runs 140 px along inside A's width and then 26 px away from it: 85 % of
B's points lie inside A, so ``max_covered`` (0.8) drops B as a repeat of A; the 26 px it adds
outside A are a branch of its own.
"""

import math

import numpy as np
import pytest

from veinscope.chromophores import skin_optics
from veinscope.measure import DROP_RULES, measure_vessels
from veinscope.segment import VesselDetection

M, N = 100, 220


def _det(parts):
    pts = np.concatenate([np.asarray(p, np.int32) for p in parts])
    seg = np.concatenate([np.full(len(p), i, np.int32) for i, p in enumerate(parts)])
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    k = len(pts)
    normals = np.tile(np.array([[1.0, 0.0]], np.float32), (k, 1))
    det = VesselDetection(pts[order], seg[order], np.ones(k, np.float32), normals, np.full(k, 2.0, np.float32),
                          len(parts), 1.0, (3.0, 5.0))  # fmt: skip
    return det


def _scene(rest_rows=26):
    a = [(60, x) for x in range(0, 200)]
    b = [(58, x) for x in range(30, 170)] + [(y, 100) for y in range(58 - 2 - rest_rows, 58)]
    det = _det([a, b])
    widths = np.where(det.segment == 0, 8.0, 3.0).astype(np.float32)
    rgb = np.empty((M, N, 3), np.uint8)
    rgb[:] = (205, 160, 140)
    rgb[56:65, :200] = (150, 135, 160)
    rgb[58 - 2 - rest_rows : 58, 99:102] = (160, 140, 160)
    skin = np.ones((M, N), bool)
    optics = skin_optics(rgb, skin=skin, background_px=40.0)
    return det, widths, optics, skin


def _measure(det, widths, optics, skin, **kw):
    # colour gates wide open: only the overlap rule is at work
    return measure_vessels(det, widths, optics, skin, ppm=10.0, calibrated=True, max_melanin_frac=1.0,
                           max_contrast_od=10.0, max_covered=0.8, **kw)  # fmt: skip


def test_drop_reasons_names_the_overlap_rule_and_changes_nothing():
    det, widths, optics, skin = _scene()
    plain = _measure(det, widths, optics, skin)
    reasons = {}
    traced = _measure(det, widths, optics, skin, drop_reasons=reasons)
    assert np.array_equal(plain.labels, traced.labels)
    assert np.array_equal(np.isfinite(plain.width_px), np.isfinite(traced.width_px))
    code = reasons["code"]
    assert reasons["names"] is DROP_RULES and DROP_RULES[0] == "accepted"
    assert code.shape == (det.points_yx.shape[0],) and code.dtype == np.int8
    assert (code[det.segment == 0] == 0).all()  # the vein: kept
    assert (code[det.segment == 1] == DROP_RULES.index("overlap")).all()  # the branch: a repeat
    assert np.array_equal(code == 0, np.isfinite(traced.width_px))


def test_drop_reasons_names_the_colour_rules():
    det, widths, optics, skin = _scene()
    reasons = {}
    measure_vessels(det, widths, optics, skin, ppm=10.0, calibrated=True, max_melanin_frac=1.0, max_contrast_od=1e-6,
                    max_covered=0.8, drop_reasons=reasons)  # fmt: skip
    assert (reasons["code"] == DROP_RULES.index("too dark")).all()
    reasons = {}
    measure_vessels(det, widths, optics, skin, ppm=10.0, calibrated=True, max_melanin_frac=-1.0, max_contrast_od=10.0,
                    max_covered=0.8, drop_reasons=reasons)  # fmt: skip
    assert (reasons["code"] == DROP_RULES.index("melanin")).all()


@pytest.mark.parametrize("rest_rows", [22, 30])
def test_a_covered_branch_that_adds_enough_of_its_own_is_kept(rest_rows):
    det, widths, optics, skin = _scene(rest_rows)
    b = det.segment == 1
    off = _measure(det, widths, optics, skin)
    assert not np.isfinite(off.width_px[b]).any()  # main's rule: dropped
    on = _measure(det, widths, optics, skin, covered_rest_px=20.0)
    # the branch's own stretch outside the vein's width (rows above 56) is kept, its stretch
    # along the vein stays dropped (a repeat)
    own = b & (det.points_yx[:, 0] < 56)
    assert own.sum() == rest_rows
    assert np.isfinite(on.width_px[own]).all() and not np.isfinite(on.width_px[b & ~own]).any()
    assert (on.labels[58 - 2 - rest_rows : 55, 100] > 0).all() and (off.labels[58 - 2 - rest_rows : 55, 100] == 0).all()
    # the vein unchanged: its points, and its painting away from the branch
    assert np.array_equal(np.isfinite(on.width_px[~b]), np.isfinite(off.width_px[~b]))
    assert np.array_equal(on.labels[:, :95], off.labels[:, :95]) and np.array_equal(on.labels[:, 106:], off.labels[:, 106:])
    assert np.array_equal(on.labels[56:, :], off.labels[56:, :])
    assert on.piece_length_px.sum() > off.piece_length_px.sum() + 0.9 * rest_rows


def test_a_covered_branch_that_adds_too_little_stays_dropped():
    det, widths, optics, skin = _scene(26)
    on = _measure(det, widths, optics, skin, covered_rest_px=27.0)  # 26 points outside the vein
    assert not np.isfinite(on.width_px[det.segment == 1]).any()
    on = _measure(det, widths, optics, skin, covered_rest_px=26.0)
    assert np.isfinite(on.width_px[det.segment == 1]).sum() == 26


def test_analyze_covered_rest_mm_is_checked_and_recorded():
    import veinscope

    rgb = np.full((64, 64, 3), (205, 160, 140), np.uint8)
    for bad in (0, -1.0, math.nan, math.inf, True, "1"):
        with pytest.raises(ValueError, match="covered_rest_mm"):
            veinscope.analyze(rgb, px_per_mm=10.0, covered_rest_mm=bad)
    a = veinscope.analyze(rgb, px_per_mm=10.0, covered_rest_mm=1.0)
    assert a.params["covered_rest_mm"] == 1.0
    assert veinscope.analyze(rgb, px_per_mm=10.0).params["covered_rest_mm"] is None

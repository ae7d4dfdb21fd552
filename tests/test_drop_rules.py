"""Which rule of measure_vessels drops each detected point (``drop_reasons``, ``DROP_RULES``),
session 39 (helper "drop39", issue 4): the diagnostic ``benchmarks/diag_dropped_rules.py``
splits the true and false length the rules drop by it.

Constructed chains on a plain photo: a wide vein along a row (chain A, 200 px, 8 px wide) and a
branch (chain B) that runs 140 px along inside A's width and then 26 px away from it: 85 % of
B's points lie inside A, so ``max_covered`` (0.8) drops B as a repeat of A. Then a generated
photo through ``analyze``.
"""

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


def test_drop_reasons_on_a_generated_photo_change_nothing_and_cover_every_dropped_point():
    import veinscope
    import veinscope.pipeline as pl
    from veinscope.synth import generate_photo

    photo = generate_photo(seed=405, size=(480, 360), px_per_mm=8.0, skin_type=2)
    plain = veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm)
    seen = {}
    mv0 = pl.measure_vessels

    def _measure(det, *a, **k):
        reasons = {}
        out = mv0(det, *a, drop_reasons=reasons, **k)
        seen.update(det=det, out=out, code=reasons["code"])
        return out

    pl.measure_vessels = _measure
    try:
        traced = veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm)
    finally:
        pl.measure_vessels = mv0
    assert np.array_equal(plain.labels, traced.labels) and np.array_equal(plain.diameter_px, traced.diameter_px)
    code = seen["code"]
    assert np.array_equal(code == 0, np.isfinite(seen["out"].width_px))  # every dropped point has its rule
    assert code.min() >= 0 and code.max() < len(DROP_RULES)

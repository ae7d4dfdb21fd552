"""Size classes judged piece by piece with their error bars (measure._size_class_margin, analyze(size_class_z=))."""

from __future__ import annotations

import numpy as np
import pytest

from veinscope.measure import _size_class_margin
from veinscope.segment import CLASS_CODES

RED, BLUE, RET, BIG = (CLASS_CODES[c] for c in ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm"))
PPM = 10.0


def _line(widths_px, *, y=20, n=400):
    """A horizontal chain of points along row ``y`` with the given measured widths (px)."""
    k = len(widths_px)
    pts = np.stack([np.full(k, y), np.arange(k) + 10], 1).astype(np.int64)
    key = pts[:, 0] * n + pts[:, 1]
    raw = np.asarray(widths_px, np.float32)
    # the engine's smoothing: a median over 1 mm (here 10 px) along the vessel
    r = int(PPM)
    smooth = np.array([np.median(raw[max(0, i - r) : i + r + 1]) for i in range(k)], np.float32)
    cls = np.where(smooth / PPM > 3.0, BIG, np.where(smooth / PPM >= 1.0, RET, BLUE)).astype(np.int64)
    return pts, key, n, raw, smooth, cls


def _pieces(cls):
    return 1 + int(np.count_nonzero(np.diff(cls)))


def test_vein_dithering_about_1mm_is_one_reticular_vessel():
    # a 1.15 mm vein (noise 0.1 mm per point) whose smoothed width dips under 1 mm in places,
    # with one stretch a little narrow: reads as pieces of alternating class point by point
    rng = np.random.default_rng(3)
    w = 11.5 + rng.normal(0.0, 1.0, 300)
    w[140:152] -= 2.5
    pts, key, n, raw, smooth, cls = _line(w)
    assert _pieces(cls) >= 3 and np.any(cls == BLUE)
    out = _size_class_margin(pts, key, 60, n, np.zeros(len(w), np.int64), np.ones(len(w), bool), cls, raw, smooth, PPM, z=2.0)
    assert np.all(out == RET)


def test_tapering_vessel_keeps_both_classes():
    # 1.6 mm tapering to 0.4 mm over 30 mm: a real change of class, far beyond the noise
    rng = np.random.default_rng(4)
    w = np.linspace(16.0, 4.0, 300) + rng.normal(0.0, 0.5, 300)
    pts, key, n, raw, smooth, cls = _line(w)
    out = _size_class_margin(pts, key, 60, n, np.zeros(300, np.int64), np.ones(300, bool), cls, raw, smooth, PPM, z=2.0)
    assert np.any(out == RET) and np.any(out == BLUE)
    # the change stays near where the width crosses 1 mm (point 150)
    change = np.flatnonzero(np.diff(out))
    assert change.size == 1 and abs(int(change[0]) - 150) <= 15


def test_lone_undecided_piece_keeps_its_class_and_colour():
    # a short vessel at 0.97 mm, touching nothing decided: it stays what its points say
    w = np.full(40, 9.7, np.float32) + np.random.default_rng(5).normal(0.0, 0.3, 40).astype(np.float32)
    pts, key, n, raw, smooth, cls = _line(w)
    red_cls = np.where(cls == BLUE, RED, cls)
    out = _size_class_margin(pts, key, 60, n, np.zeros(40, np.int64), np.ones(40, bool), red_cls, raw, smooth, PPM, z=2.0)
    assert np.array_equal(out, red_cls)


def test_reticular_piece_taken_over_takes_the_telangiectasia_colour():
    # a 0.6 mm red telangiectasia with a short stretch read just over 1 mm (1.02 mm, within
    # its error bar of the boundary)
    rng = np.random.default_rng(6)
    w = 6.0 + rng.normal(0.0, 0.3, 200)
    w[95:112] = 10.2 + rng.normal(0.0, 0.3, 17)
    pts, key, n, raw, smooth, cls = _line(w)
    cls = np.where(cls == BLUE, RED, cls)
    assert np.any(cls == RET)
    out = _size_class_margin(pts, key, 60, n, np.zeros(200, np.int64), np.ones(200, bool), cls, raw, smooth, PPM, z=2.0)
    assert np.all(out == RED)


def test_analyze_refuses_a_bad_size_class_z():
    import veinscope

    rgb = np.full((64, 64, 3), 200, np.uint8)
    for bad in (0, -1.0, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="size_class_z"):
            veinscope.analyze(rgb, px_per_mm=10.0, size_class_z=bad)


def test_analyze_moves_classes_only():
    # the keyword relabels pieces: the vessels found, their mask and diameters stay the same
    import veinscope
    from veinscope.synth import generate_photo

    photo = generate_photo(seed=416, size=(1600, 1200), px_per_mm=12.0, skin_type=5)  # set A photo 16
    off = veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm, size_class_z=None)
    on = veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm)
    assert on.params["size_class_z"] == 2.0 and off.params["size_class_z"] is None  # on by default
    assert np.array_equal(on.labels > 0, off.labels > 0)
    assert np.array_equal(on.diameter_mm, off.diameter_mm)
    assert on.classes["total"].length_px == pytest.approx(off.classes["total"].length_px, rel=0.02)
    # and on this photo (a faint type 5 leg, veins about 1 mm) it does relabel something
    assert not np.array_equal(on.labels, off.labels)

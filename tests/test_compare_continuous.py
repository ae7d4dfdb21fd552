"""A comparison's figures against a small change of the scale (issue 6, session 31).

The skin background of both photos is a median over cells of ``background_px / 8`` pixels,
``background_px`` 20 px/mm: rounded to whole pixels, the cell jumps by one pixel where the
scale crosses a multiple of 0.05 px/mm, and the change maps move with it. Generated series 305
at 1600 x 1200 px (true scale 8.180 px/mm; its card reads 8.234): main reads one matting patch
of 46.5 mm² at 8.180 and none at 8.234 (the cell 20 -> 21 px); the truth is one patch of
56.9 mm². Session 31's background blended across the two whole cells (``background_continuous``,
off) did not hold the area either, the baseline's own analysis moving with the scale; it was
removed in session 35 (BENCHMARKS.md, helper "prune35").
"""

from __future__ import annotations

import pytest

from veinscope.compare import compare


@pytest.fixture(scope="module")
def series305():
    from veinscope.synth import generate_series

    ser = generate_series(seed=305, sessions=2, size=(1600, 1200))
    return ser.photos[0].rgb, ser.photos[1].rgb, float(ser.photos[0].px_per_mm)


def _matting_areas(b, f, truth_ppm, **kw):
    areas = []
    for ppm in (truth_ppm, truth_ppm * 1.0066):  # the true scale and the card's (+0.7 %)
        d = compare(b, f, px_per_mm=ppm, **kw).to_dict()
        areas.append(d["matting"]["area_mm2"])
    return areas


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="main's defaults: 46.5 mm² at the true scale, none at the card's (session 31)")
def test_matting_area_holds_over_a_small_change_of_scale_defaults(series305):
    b, f, truth_ppm = series305
    areas = _matting_areas(b, f, truth_ppm)
    assert min(areas) > 0
    assert max(areas) / min(areas) < 1.10, areas

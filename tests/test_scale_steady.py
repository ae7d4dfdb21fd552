"""The engine's decisions against a hair's change of the entered scale (issues 4 and 6, session 32,
helper "knife32"): the scale-knife counting rule of ``benchmarks/count_scale_moves.py``, and the
knife edges left (strict xfails). Session 32's ``analyze(cover_chain_widths=...)`` (each point's
disc for the cover rule capped at its chain's width), measured off by knife32 and cap32, was
removed in session 35 (BENCHMARKS.md, helper "prune35")."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import veinscope
from veinscope.synth import generate_series

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import count_scale_moves as csm  # noqa: E402


def _baseline(seed):
    """The development series' baseline photo, as ``bench_compare.py --source series``."""
    ser = generate_series(seed=seed, sessions=3, size=(800, 600), px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)))
    return ser.photos[0].rgb, float(ser.photos[0].px_per_mm)


def _differ_share(rgb, p0, p1, **kw):
    """Pixels painted at one scale only, as a share of those painted at the first."""
    a = veinscope.analyze(rgb, px_per_mm=p0, **kw).labels > 0
    b = veinscope.analyze(rgb, px_per_mm=p1, **kw).labels > 0
    return float((a != b).sum()) / max(int(a.sum()), 1)


@pytest.mark.xfail(strict=True, reason="the tail probes' and the walk's yes / no at an ambiguous wide vein's end (knife31, "
                   "knife32): series 307's baseline paints 3 645 px (19 %) at one scale only at x1.001; not fixed")
def test_a_hair_of_scale_moves_the_painted_vessels_little():
    rgb, ppm = _baseline(307)
    assert _differ_share(rgb, ppm, ppm * 1.001) < 0.05


def test_the_counting_rule_is_knife31s(tmp_path):
    row = lambda case, imp, stain, matt: {"case": case, "refused": False, "imp": imp, "stain": stain, "matt": matt}  # noqa: E731
    a = [row("1/1", 50.0, 10.0, 30.0), row("1/2", 60.0, 1.0, 0.0), row("2/1", None, 0.0, 5.0), row("2/2", 40.0, 0.0, 0.0)]
    b = [row("1/1", 51.9, 10.9, 33.5),  # 1.9 points; 0.9 mm2 (under 2); 3.5 mm2 is 10.4 %: matting moves
         row("1/2", 62.1, 2.9, 1.9),  # 2.1 points: moves; 1.9 mm2 (under 2 mm2) and 1.9 mm2: not
         row("2/1", 10.0, 0.0, 7.2),  # found in one run only: moves; 2.2 mm2 but 31 %: moves
         {"case": "2/2", "refused": True}]  # refused in one run only: counts in all three
    m = csm.moves(a, b)
    assert m == {"matting": ["1/1", "2/1", "2/2"], "staining": ["2/2"], "improvement": ["1/2", "2/1", "2/2"]}
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert csm.main([str(pa), str(pb)]) == 0


def _set_b_608():
    """Set B's photo 8 (seed 608, skin type 3, 15 px/mm), as ``bench_synth_accuracy.py --n 12
    --seed0 600`` draws it."""
    from veinscope.synth import generate_photo

    return generate_photo(seed=608, size=(1600, 1200), px_per_mm=15.0, skin_type=3)


# two boxes beside a naevus on set B's photo 608, 16 and 118 px from any true vessel (cap32)
_NAEVUS_BOXES = ((738, 758, 579, 602), (844, 856, 556, 575))


def _painted_in_naevus_boxes(**kw):
    ph = _set_b_608()
    lab = veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm, **kw).labels
    assert not any((ph.labels[y0:y1, x0:x1] > 0).any() for y0, y1, x0, x1 in _NAEVUS_BOXES)  # no truth there
    return sum(int((lab[y0:y1, x0:x1] > 0).sum()) for y0, y1, x0, x1 in _NAEVUS_BOXES)


def test_the_ridges_at_a_naevus_edge_paint_nothing():
    # main: the naevus-edge ridge chains cover one another through their wide-read points and
    # the ones left are dropped later; nothing is painted beside the naevus
    assert _painted_in_naevus_boxes() == 0

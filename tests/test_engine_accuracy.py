"""The engine against the generator's exact truth: a floor under the figures of issue 4.

Five generated photos (skin types 1-5, 10 px/mm, 960 x 720), scored with the benchmark's own
``evaluate`` (benchmarks/bench_synth_accuracy.py). The floors sit below what the engine measures
now (median clDice 0.79, total length error -28 %) and above what the engine before the band
hysteresis, crest snapping and matched signal measured on the same photos (0.65, -44 %): a
change to detection that loses that ground fails here. Diameters: median absolute error 0.062 mm
with half-maximum widths, 0.088 mm with the bar fit's widths before them (session 4). The full benchmark (24 photos, skin types
1-6, 6-15 px/mm) and its targets are in BENCHMARKS.md.
"""

import statistics
import sys
from pathlib import Path

import pytest

import veinscope
from veinscope.synth import generate_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_synth_accuracy import evaluate  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scores():
    out = []
    for seed, skin_type in ((11, 1), (12, 2), (13, 3), (14, 4), (15, 5)):
        ph = generate_photo(seed=seed, size=(960, 720), px_per_mm=10.0, skin_type=skin_type)
        out.append(evaluate(ph, veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm)))
    return out


def test_centreline_overlap_floor(scores):
    assert statistics.median(r["cldice"] for r in scores) >= 0.74
    assert statistics.median(r["centreline_precision"] for r in scores) >= 0.8


def test_length_is_not_lost(scores):
    assert statistics.median(r["len_err_pct:total"] for r in scores) >= -40.0
    assert statistics.median(r["recall_ge_0.2mm"] for r in scores) >= 0.78


def test_diameters_are_half_maximum_widths(scores):
    # the bar fit alone (before half_max_widths) measured 0.088 mm here; issue 4's target is 0.08
    assert statistics.median(r["diam_medae_mm"] for r in scores) <= 0.075


def test_links_paint_fine_vessels_where_the_truth_runs():
    """Painting the band between neighbouring centreline points (``paint_links``) covers more of
    the true centrelines than discs alone, on the same detections, and adds nothing away from
    them: the labels with links hold every label pixel without, and the precision stays."""
    found = {True: 0.0, False: 0.0}
    for seed, skin_type in ((11, 1), (13, 3)):
        ph = generate_photo(seed=seed, size=(960, 720), px_per_mm=10.0, skin_type=skin_type)
        runs = {links: veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm, paint_links=links) for links in (True, False)}
        assert ((runs[True].labels > 0) | ~(runs[False].labels > 0)).all()
        assert runs[True].vessels == runs[False].vessels
        for links, a in runs.items():
            r = evaluate(ph, a)
            found[links] += r["recall_ge_0.2mm"]
            if links:
                assert r["centreline_precision"] >= evaluate(ph, runs[False])["centreline_precision"] - 0.01
    assert found[True] > found[False]


def test_wide_veins_keep_their_visible_width():
    """Reticular veins (visible width >= 1 mm) are painted at their visible width: the widths are
    measured on the photo's own OD (the coarse background map, which wide veins raise, bent their
    profiles) with a noise-robust peak and crossings. Before (session 8) the median ratio to the
    truth was 0.85 and 0.93 on these photos, and veins just over 1 mm fell into the class below."""
    import numpy as np

    for seed in (7, 23):
        ph = generate_photo(seed=seed, size=(1000, 750), px_per_mm=10.0, skin_type=2)
        a = veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm)
        ratios = []
        for c in ph.centrelines:
            v = c["visible"] & (c["diameter_mm"] >= 1.0)
            y, x = np.round(c["points_yx"][v]).astype(int).T
            inside = (y >= 0) & (y < 750) & (x >= 0) & (x < 1000)
            d = a.diameter_mm[y[inside], x[inside]]
            ratios.append(d[d > 0] / c["diameter_mm"][v][inside][d > 0])
        r = np.concatenate(ratios)
        assert r.size > 500
        assert 0.94 <= float(np.median(r)) <= 1.06

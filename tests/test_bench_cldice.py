"""The clDice of the engine benchmark (benchmarks/bench_synth_accuracy.py) on analytic masks.

The truth's ``ignore`` pixels are cut out of the vessel they lie on (a hair across a vein); the
true skeleton must still run along the vessel's middle, so that an engine painting the vessel's
middle is not scored as missing it.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_synth_accuracy import topology_parts, truth_skeleton  # noqa: E402


def _vein(hair: str):
    """A 13 px wide horizontal vein (rows 24-36, centre row 30) across a 60 x 120 image, with
    ``hair``: none, a 2 px hair across it (a cut), or a short hair along it (an enclosed hole)."""
    truth = np.zeros((60, 120), bool)
    truth[24:37, 10:110] = True
    ignore = np.zeros_like(truth)
    if hair == "across":
        for y in range(18, 43):  # slanted, 2 px wide, through the whole vein
            x = 60 + (y - 30) // 3
            ignore[y, x : x + 2] = True
    elif hair == "along":
        ignore[27:29, 40:80] = True
    truth &= ~ignore
    return truth, ignore


@pytest.mark.parametrize("hair", ["none", "across", "along"])
def test_the_true_skeleton_runs_along_the_middle_of_a_vein_under_a_hair(hair):
    truth, ignore = _vein(hair)
    s = truth_skeleton(truth, ignore)
    rows = np.nonzero(s)[0]
    assert not (s & ignore).any()
    # every skeleton pixel within 1 px of the centre row (no loop round the hole, no rungs)
    assert np.abs(rows - 30).max() <= 1
    assert s.sum() >= 80


@pytest.mark.parametrize("hair", ["none", "across", "along"])
def test_a_vein_painted_along_its_middle_is_found_whole(hair):
    truth, ignore = _vein(hair)
    pred = np.zeros_like(truth)
    pred[27:34, 10:110] = True  # the middle 7 of its 13 px, the whole length
    tsens, tprec, s_pr = topology_parts(truth, pred, ignore)
    assert tsens >= 0.97
    assert tprec >= 0.97
    assert not (s_pr & ignore).any()


def test_skin_enclosed_by_a_loop_of_vessels_is_not_filled():
    """A ring of vessel round skin keeps its hole: its skeleton is a ring, not a disc's centre."""
    yy, xx = np.mgrid[:80, :80]
    r = np.hypot(yy - 40, xx - 40)
    truth = (r >= 20) & (r <= 24)
    ignore = np.zeros_like(truth)
    s = truth_skeleton(truth, ignore)
    assert np.all(np.abs(r[s] - 22) <= 1.5)
    assert s.sum() > 100


def test_a_false_mark_and_a_missed_vessel_lower_each_half():
    truth, ignore = _vein("none")
    pred = truth.copy()
    pred[5:8, 10:110] = True  # a false line as long as the vein
    assert topology_parts(truth, pred, ignore)[:2] == pytest.approx((1.0, 0.5), abs=0.03)
    pred = np.zeros_like(truth)
    pred[24:37, 10:60] = True  # half the vein
    tsens, tprec, _ = topology_parts(truth, pred, ignore)
    assert tsens == pytest.approx(0.5, abs=0.05)
    assert tprec == pytest.approx(1.0)

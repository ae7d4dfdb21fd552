"""benchmarks/diag_difference_lines.py's line detector on analytic maps (issue 6, diagnosis only):
the ridge strength peaks on a bar's centre, and the chains are found on a cleared bar in the
difference of two noisy maps and not on a bar both maps keep."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import diag_difference_lines as ddl  # noqa: E402

PPM = 10.0


def _maps(seed=0, shape=(160, 200)):
    """A baseline with two faint bars (rows 50 and 110, 3 px wide) on a common texture plus each
    map's own noise; the follow-up keeps the lower bar and loses the upper one."""
    rng = np.random.default_rng(seed)
    tex = rng.normal(0, 0.01, shape)
    b = tex + rng.normal(0, 0.004, shape)
    f = tex + rng.normal(0, 0.004, shape)
    for y in (50, 110):
        b[y - 1 : y + 2, 30:170] += 0.02
    f[109:112, 30:170] += 0.02
    return b, f


def test_ridge_peaks_on_a_bars_centre_and_keeps_the_input():
    x = np.zeros((41, 41))
    x[19:22, 5:36] = 1.0
    x0 = x.copy()
    r = ddl.ridge(x, 1.0)
    assert np.array_equal(x, x0)
    assert r.shape == x.shape
    assert int(np.argmax(r[:, 20])) == 20
    assert r[20, 20] > 10 * r[5, 20]


def test_chains_find_the_cleared_bar_in_the_difference_not_the_kept_one():
    b, f = _maps()
    labels = np.zeros(b.shape, np.uint8)
    core = np.zeros(b.shape, bool)
    core[10:-10, 10:-10] = True
    noise = core.copy()
    for y in (50, 110):
        noise[y - 6 : y + 7] = False
    zb = ddl.zmap([b], noise, PPM)
    zf = ddl.zmap([f], noise, PPM)
    zd = ddl.zmap([b - f], noise, PPM)
    ys, xs = ddl.chains(zd, zb, zf, labels, core, PPM, hi=3.0, lo=1.5, L_mm=4.0, r_mm=0.4)
    assert ys.size > 0.8 * 140
    assert np.all(np.abs(ys - 50) <= 2)  # the cleared bar only
    # the same bar detected in the baseline is left out by the labels' margin
    labels[49:52, 30:170] = 1
    ys2, _ = ddl.chains(zd, zb, zf, labels, core, PPM, hi=3.0, lo=1.5, L_mm=4.0, r_mm=0.4)
    assert ys2.size == 0

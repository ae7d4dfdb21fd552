"""Where the comparison's improvement error comes from, pair by pair (issue 6).

On the own simulation of ``bench_compare.py`` (seeds 300-319, the truth's centrelines known
in the baseline's frame) each pair's error ``measured - truth`` is split by following the
truth's visible centreline points and the comparison's own baseline centreline points (its
``_fading`` status: 0 visible in the follow-up, 1 cleared):

* ``recall``: the share of the truth's visible baseline length that has a counted
  centreline point of the comparison within half its width + max(2 px, 0.3 mm); and
  ``truth found`` / ``truth missed``: the truth's improvement on the found and on the missed
  length. ``truth found - truth`` is the part of the error that comes from what the engine
  does not find at baseline (detection: ``segment.py`` / ``measure.py``).
* ``judged``: the improvement the comparison would give if every counted point it shares with
  the truth were judged as the truth says (points, so weighted as the engine's skeleton is);
  ``judged - truth found`` is the weighting of the engine's skeleton (spurs, fragments of
  faint vessels), ``measured - judged`` the comparison's own misjudgments: ``cleared, read
  persisting`` and ``kept, read cleared`` (counts of centreline points, by the truth's kind).
* the registration residual (true mapping vs estimated), for the registration's part.

    .venv/bin/python benchmarks/bench_compare_parts.py --n 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import tests._followup as tf  # noqa: E402
from bench_compare import _sim_cases  # noqa: E402

import veinscope.compare as vc  # noqa: E402


def _truth_points(s, shape):
    """(K, 7): y, x (baseline px), length_mm, counted at baseline, gone, kind (0 kept, 1
    cleared, 2 faded), half visible width px."""
    mg = s.truth["mg"]
    h, w = shape
    g = np.linalg.inv(s.h_true) @ np.array([[1, 0, -mg], [0, 1, -mg], [0, 0, 1]], float)
    cleared, faded = set(s.truth["cleared_structures"]), set(s.truth["faded_structures"])
    scene = s.scene
    od0 = -np.log10(np.maximum(tf.to_linear(scene.rgb).astype(np.float32), 1e-4))
    rows = []
    for cl in scene.centrelines:
        p = cl["points_yx"]
        yb, xb = p[:, 0] - mg, p[:, 1] - mg
        inv = (yb >= 0) & (yb < h) & (xb >= 0) & (xb < w)
        xy = np.c_[p[:, 1], p[:, 0], np.ones(len(p))] @ g.T
        xy = xy[:, :2] / xy[:, 2:3]
        inf = (xy[:, 0] >= 8) & (xy[:, 0] < w - 8) & (xy[:, 1] >= 8) & (xy[:, 1] < h - 8)
        st = cl["structure"]
        if st in cleared:
            gone, kind = np.ones(len(p), bool), 1
        elif st in faded:  # as make_session's truth: fade 0.3 of the OD (fade_to=0.7)
            gone, kind = cl["delta_e"] * tf._faded_delta_e_ratio(od0, scene, st, 0.3)(p) < tf._DELTA_E_VISIBLE, 2
        else:
            gone, kind = np.zeros(len(p), bool), 0
        rows.append(np.c_[yb, xb, cl["length_mm"], cl["visible"] & inv & inf, gone, np.full(len(p), kind), 0.5 * np.asarray(cl["diameter_mm"]) * s.px_per_mm])
    return np.concatenate(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed0", type=int, default=300)
    args = ap.parse_args(argv)
    import veinscope

    veinscope.warmup()
    cap = {}
    orig = vc._fading

    def fading(*a, **k):
        cap["fad"] = orig(*a, **k)
        return cap["fad"]

    vc._fading = fading
    print(f"{'seed':>5} {'meas':>6} {'truth':>6} {'err':>6} | {'recall':>6} {'t.found':>7} {'t.miss':>6} {'judged':>6} | "
          f"{'detect':>6} {'weight':>6} {'judge':>6} | {'clr->pers':>9} {'kept->clr':>9} | {'res mm':>7}")
    parts = []
    for seed, b, f, ppm, truth, s in _sim_cases(args.n, args.seed0, (800, 600)):
        c = vc.compare(b, f, px_per_mm=ppm)
        fad = cap["fad"]
        ys, xs = fad["skel_yx"]
        counted = fad["status"] <= 1
        cleared = fad["status"][counted] == 1
        t = _truth_points(s, b.shape[:2])
        tb = t[t[:, 3] > 0]
        reach = np.maximum(2.0, 0.3 * ppm)
        d, j = cKDTree(tb[:, :2]).query(np.c_[ys, xs][counted])
        on = d <= tb[j, 6] + reach
        gone_at = tb[j, 4] > 0
        dd, _ = cKDTree(np.c_[ys, xs][counted]).query(tb[:, :2])
        found = dd <= tb[:, 6] + reach
        L, gone = tb[:, 2], tb[:, 4] > 0
        t_all = truth["improvement_pct"]
        t_found = 100 * L[found & gone].sum() / max(L[found].sum(), 1e-9)
        t_miss = 100 * L[~found & gone].sum() / max(L[~found].sum(), 1e-9) if (~found).any() else float("nan")
        judged = 100 * float(gone_at[on].mean()) if on.any() else float("nan")
        meas = c.improvement_pct
        kinds = tb[j, 5].astype(int)
        clr_pers = np.bincount(kinds[on & gone_at & ~cleared], minlength=3)
        kept_clr = np.bincount(kinds[on & ~gone_at & cleared], minlength=3)
        res = float(np.median(tf.true_residual_px(s, c.registration))) / ppm
        p = {"detect": t_found - t_all, "weight": judged - t_found, "judge": meas - judged}
        parts.append({"err": meas - t_all, **p})
        print(f"{seed:5d} {meas:6.1f} {t_all:6.1f} {meas - t_all:6.1f} | {100 * L[found].sum() / L.sum():6.1f} {t_found:7.1f} {t_miss:6.1f} {judged:6.1f} | "
              f"{p['detect']:6.1f} {p['weight']:6.1f} {p['judge']:6.1f} | {int(clr_pers[1]):4d}/{int(clr_pers.sum()):<4d} "
              f"{int(kept_clr[0]):4d}/{int(kept_clr.sum()):<4d} | {res:7.4f}", flush=True)
    e = np.array([[q["err"], q["detect"], q["weight"], q["judge"]] for q in parts])
    print(f"\nmedian |part| (points): error {np.median(abs(e[:, 0])):.1f}, detection {np.median(abs(e[:, 1])):.1f}, "
          f"skeleton weighting {np.median(abs(e[:, 2])):.1f}, judgement {np.median(abs(e[:, 3])):.1f}")
    print(f"median |error| if the judgement were the truth's (detect + weight): {np.median(abs(e[:, 1] + e[:, 2])):.1f}; "
          f"if also the skeleton's weighting were the truth's (detect only): {np.median(abs(e[:, 1])):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

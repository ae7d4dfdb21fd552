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

``--source series`` does the same on ``bench_compare.py --source series`` (the generator's
sessions: the truth's points are the baseline photo's visible centreline points, matched to
session k's by structure, branch and point index, gone where session k does not show them,
exactly as ``generate_series`` counts ``improvement_pct``; kinds by the truth's ΔE00 in
session k: cleared (0), faded (under 0.85 of the baseline's) or kept). It adds ``TL``: the
comparison run with the truth's baseline labels and widths in place of the engine's (the same
photos and follow-up analysis), i.e. the comparison's persist/clear decision on the truth's
baseline vessels, and its misjudged points.

    .venv/bin/python benchmarks/bench_compare_parts.py --n 20
    .venv/bin/python benchmarks/bench_compare_parts.py --source series --n 12
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
from bench_compare import _series_cases, _sim_cases  # noqa: E402

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


def _series_truth_points(ser, k):
    """(K, 9) as ``_truth_points`` plus the truth's ΔE00 at baseline and in session k, for the
    baseline photo's visible centreline points that session k's photo also holds; kind 0
    kept, 1 cleared (ΔE 0 in session k), 2 faded (under 0.85 of the baseline's ΔE)."""
    b, f = ser.photos[0], ser.photos[k]
    seen_k = {}
    for cl in f.centrelines:
        if cl["kind"] != "matting":
            for i in range(len(cl["visible"])):
                seen_k[(cl["structure"], cl["branch"], cl["start"] + i)] = (bool(cl["visible"][i]), float(cl["delta_e"][i]))
    rows = []
    for cl in b.centrelines:
        if cl["kind"] == "matting":
            continue
        for i in np.flatnonzero(cl["visible"]):
            key = (cl["structure"], cl["branch"], cl["start"] + int(i))
            if key not in seen_k:
                continue  # outside session k's photo
            vis_k, de_k = seen_k[key]
            de_0 = float(cl["delta_e"][i])
            kind = 1 if de_k < 0.05 else (0 if de_k >= 0.85 * de_0 else 2)
            y, x = cl["points_yx"][i]
            rows.append((y, x, cl["length_mm"][i], 1.0, float(not vis_k), kind, 0.5 * cl["diameter_mm"][i] * b.px_per_mm, de_0, de_k))
    return np.array(rows).reshape(-1, 9)


def _judged(fad, t, reach):
    """Points the comparison counted that lie on the truth's points: (on, gone there, read
    cleared, kind)."""
    ys, xs = fad["skel_yx"]
    counted = fad["status"] <= 1
    d, j = cKDTree(t[:, :2]).query(np.c_[ys, xs][counted])
    on = d <= t[j, 6] + reach
    return on, t[j, 4] > 0, fad["status"][counted] == 1, t[j, 5].astype(int), np.c_[ys, xs][counted]


def _series(args, cap) -> int:
    import dataclasses

    from veinscope import analyze

    print(f"{'case':>6} {'meas':>6} {'truth':>6} {'err':>6} | {'recall':>6} {'t.found':>7} {'t.miss':>6} {'judged':>6} | "
          f"{'detect':>6} {'weight':>6} {'judge':>6} | {'clr->pers':>9} {'kept->clr':>9} | {'TL':>6} {'TL err':>6} {'TL judge':>8} {'TL c->p':>7} {'TL k->c':>7}")
    parts = []
    for case, b, f, ppm, truth, (ser, k) in _series_cases(args.n, args.seed0, (800, 600), 3):
        a_b = analyze(b, px_per_mm=ppm)
        c = vc.compare(b, f, px_per_mm=ppm, baseline_analysis=a_b)
        t = _series_truth_points(ser, k)
        reach = max(2.0, 0.3 * ppm)
        on, gone_at, cleared, kinds, yx = _judged(cap["fad"], t, reach)
        dd, _ = cKDTree(yx).query(t[:, :2])
        found = dd <= t[:, 6] + reach
        L, gone = t[:, 2], t[:, 4] > 0
        t_all = truth["improvement_pct"]
        t_found = 100 * L[found & gone].sum() / max(L[found].sum(), 1e-9)
        t_miss = 100 * L[~found & gone].sum() / max(L[~found].sum(), 1e-9) if (~found).any() else float("nan")
        judged = 100 * float(gone_at[on].mean()) if on.any() else float("nan")
        meas = c.improvement_pct
        clr_pers = int((on & gone_at & ~cleared).sum())
        kept_clr = int((on & ~gone_at & cleared).sum())
        # the comparison's decision on the truth's baseline vessels
        tb = ser.photos[0]
        a_t = dataclasses.replace(a_b, labels=np.asarray(tb.labels, np.uint8).copy(),
                                  diameter_px=np.asarray(tb.diameter_mm, np.float32) * np.float32(ppm))
        ct = vc.compare(b, f, px_per_mm=ppm, baseline_analysis=a_t)
        on2, g2, c2, _, _ = _judged(cap["fad"], t, reach)
        judged2 = 100 * float(g2[on2].mean()) if on2.any() else float("nan")
        p = {"detect": t_found - t_all, "weight": judged - t_found, "judge": meas - judged, "tl": ct.improvement_pct - t_all,
             "tl_judge": ct.improvement_pct - judged2}
        parts.append({"err": meas - t_all, **p})
        print(f"{case:>6} {meas:6.1f} {t_all:6.1f} {meas - t_all:6.1f} | {100 * L[found].sum() / L.sum():6.1f} {t_found:7.1f} {t_miss:6.1f} {judged:6.1f} | "
              f"{p['detect']:6.1f} {p['weight']:6.1f} {p['judge']:6.1f} | {clr_pers:9d} {kept_clr:9d} | {ct.improvement_pct:6.1f} {p['tl']:6.1f} "
              f"{p['tl_judge']:8.1f} {int((on2 & g2 & ~c2).sum()):7d} {int((on2 & ~g2 & c2).sum()):7d}", flush=True)
    e = np.array([[q["err"], q["detect"], q["weight"], q["judge"], q["tl"], q["tl_judge"]] for q in parts])
    print(f"\nmedian |part| (points): error {np.median(abs(e[:, 0])):.1f}, detection {np.median(abs(e[:, 1])):.1f} "
          f"(median {np.median(e[:, 1]):+.1f}, {int((e[:, 1] < 0).sum())}/{len(e)} negative), skeleton weighting {np.median(abs(e[:, 2])):.1f}, "
          f"judgement {np.median(abs(e[:, 3])):.1f}")
    print(f"median |error| if the judgement were the truth's (detect + weight): {np.median(abs(e[:, 1] + e[:, 2])):.1f}; detect only: {np.median(abs(e[:, 1])):.1f}")
    print(f"with the truth's baseline vessels (TL): median |error| {np.median(abs(e[:, 4])):.1f} ({int((abs(e[:, 4]) <= 5).sum())}/{len(e)} within 5), "
          f"its judgement part {np.median(abs(e[:, 5])):.1f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=["sim", "series"], default="sim")
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
    if args.source == "series":
        return _series(args, cap)
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

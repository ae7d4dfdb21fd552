"""Engine accuracy on generated leg photos with exact truth (veinscope.synth).

Run:  .venv/bin/python benchmarks/bench_synth_accuracy.py [--n 12] [--size 1600x1200] [--seed0 100]

For each photo (seeds seed0..seed0+n-1, skin types cycling 1-6, px/mm cycling 6-15), the scale
is given to the engine and compared with the truth, ignoring the truth's ``ignore`` pixels:
- pixel Dice of the vessel masks; clDice (Shit et al. 2021, doi:10.1109/CVPR46437.2021.01629):
  harmonic mean of the share of predicted centreline inside true vessels and of true
  centreline inside predicted vessels;
- recall along the true centreline (vessels >= 0.2 mm) and precision of the predicted one;
- diameter absolute error (mm) at true centreline points covered by a prediction;
- class agreement along the matched centreline length;
- total length and area error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def evaluate(photo, analysis):
    from skimage.morphology import skeletonize

    ign = photo.ignore
    gt = (photo.labels > 0) & ~ign
    pr = (analysis.labels > 0) & ~ign
    dice = 2 * (gt & pr).sum() / max(1, gt.sum() + pr.sum())
    s_gt = skeletonize(photo.labels > 0) & ~ign
    s_pr = skeletonize(analysis.labels > 0) & ~ign
    tprec = (s_pr & (photo.labels > 0)).sum() / max(1, s_pr.sum())
    tsens = (s_gt & (analysis.labels > 0)).sum() / max(1, s_gt.sum())
    cldice = 2 * tprec * tsens / max(1e-9, tprec + tsens)
    big = s_gt & (photo.diameter_mm >= 0.2)
    recall02 = (big & (analysis.labels > 0)).sum() / max(1, big.sum())
    matched = s_gt & (analysis.labels > 0)
    derr = np.abs(analysis.diameter_mm[matched] - photo.diameter_mm[matched])
    cls_ok = (analysis.labels[matched] == photo.labels[matched]).mean() if matched.any() else float("nan")
    tf = photo.truth_figures()["total"]
    tot = analysis.to_dict()["classes"]["total"]
    return {
        "dice": dice,
        "cldice": cldice,
        "recall_ge_0.2mm": recall02,
        "centreline_precision": tprec,
        "diam_mae_mm": float(np.median(derr)) if derr.size else float("nan"),
        "class_ok": cls_ok,
        "length_err_pct": 100 * (tot["length_mm"] - tf["length_mm"]) / max(1e-9, tf["length_mm"]),
        "area_err_pct": 100 * (tot["area_mm2"] - tf["area_mm2"]) / max(1e-9, tf["area_mm2"]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--size", default="1600x1200")
    ap.add_argument("--seed0", type=int, default=100)
    ap.add_argument("--set", action="append", default=[], help="analyze keyword=value override")
    args = ap.parse_args(argv)
    import veinscope
    from veinscope.synth import generate_photo

    w, h = (int(v) for v in args.size.split("x"))
    kw = {}
    for item in args.set:
        k, v = item.split("=")
        kw[k] = float(v)
    veinscope.warmup()
    rows = []
    for i in range(args.n):
        seed = args.seed0 + i
        skin_type = 1 + i % 6
        ppm = [6.0, 8.0, 10.0, 12.0, 15.0][i % 5]
        ph = generate_photo(seed=seed, size=(w, h), px_per_mm=ppm, skin_type=skin_type)
        t = time.perf_counter()
        a = veinscope.analyze(ph.rgb, px_per_mm=ppm, **kw)
        dt = time.perf_counter() - t
        r = evaluate(ph, a)
        r.update(seed=seed, skin_type=skin_type, ppm=ppm, seconds=dt)
        rows.append(r)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
    keys = ["dice", "cldice", "recall_ge_0.2mm", "centreline_precision", "diam_mae_mm", "class_ok", "length_err_pct", "area_err_pct"]
    print("median over photos:")
    for k in keys:
        vals = [r[k] for r in rows if np.isfinite(r[k])]
        print(f"  {k}: {statistics.median(vals):.3f}" if vals else f"  {k}: n/a")
    for st in range(1, 7):
        sub = [r for r in rows if r["skin_type"] == st]
        if sub:
            print(f"  skin type {st}: " + " ".join(f"{k}={statistics.median([r[k] for r in sub]):.3f}" for k in ("cldice", "recall_ge_0.2mm", "centreline_precision")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

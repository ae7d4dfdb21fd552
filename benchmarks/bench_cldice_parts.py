"""clDice taken apart on generated photos: its two halves, and where each loses (issue 4).

Run:  .venv/bin/python benchmarks/bench_cldice_parts.py [--n 24] [--seed0 400] [--types 2 3 4]
      [--cache DIR] [--set key=value ...]

Same photos, masks and skeletons as ``bench_synth_accuracy.py`` (photo i: seed seed0 + i, skin
type 1 + i % 6, the rotating scales; the engine given the true scale; truth ``ignore`` pixels
left out of both skeletons, the true one taken by its ``truth_skeleton``), so ``cldice`` here
equals that script's figure photo by photo.
clDice (Shit et al. 2021, doi:10.1109/CVPR46437.2021.01629) is the harmonic mean of

- topology sensitivity ``tsens``: share of the true skeleton (of the true vessel mask) inside
  the engine's vessel mask, and
- topology precision ``tprec``: share of the engine's skeleton (of its painted mask, on skin)
  inside the true vessel mask.

Each true skeleton pixel the engine's mask misses is put in the first of: ``near`` (the engine's
mask is within 2 px: the vessel is found but painted beside or narrower than the true centre),
``gap`` (over 2 px away, on a true vessel stretch of which >= 20 % of the visible centreline
length is painted: a break or a tail of a vessel found), ``whole`` (a stretch found under 20 %).
Counted by the true visible diameter at the pixel (under 0.2 mm counts in clDice but not in the
recall figure) and by the vessel's contrast (the truth's ΔE00 at the nearest centreline point).
Each engine skeleton pixel off the true mask is put in the first of: ``near_truth`` (true vessel
within 2 px), ``near_ignore`` (an ``ignore`` pixel within 2 px), ``confounder`` (within 2 px of
hair, a naevus, a freckle or glare), ``false`` (anything else: texture, blotches, shading).
``cldice_tol1`` is the same figure with each mask grown by one pixel before the other's skeleton
is tested against it: how much of the figure is one-pixel placement.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth_accuracy import set_a_arguments, set_a_start, set_a_photo, truth_skeleton  # noqa: E402

D_BANDS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.5), (0.5, 1.0), (1.0, 3.0), (3.0, np.inf))
E_BANDS = ((2.0, 3.0), (3.0, 5.0), (5.0, 10.0), (10.0, np.inf))
MISS = ("near", "gap", "whole")
OFF = ("near_truth", "near_ignore", "confounder", "false")


def parts(photo, analysis) -> dict:
    """The halves of clDice and where each loses, for one photo (counts of skeleton pixels)."""
    from scipy import ndimage as ndi
    from skimage.morphology import skeletonize

    ign = photo.ignore
    truth = photo.labels > 0
    pred = (analysis.labels > 0) & photo.skin_mask
    s_gt = truth_skeleton(truth, ign)
    s_pr = skeletonize(pred) & ~ign
    m, n = truth.shape
    # the truth's centreline points: contrast and stretch of each, found share of each stretch
    de_at = np.zeros((m, n), np.float32)
    on_line = np.zeros((m, n), bool)
    stretch_at = np.full((m, n), -1, np.int64)
    found = {}
    for k, c in enumerate(photo.centrelines):
        v = c["visible"]
        if not v.any():
            continue
        y, x = np.round(c["points_yx"][v]).astype(int).T
        ok = (y >= 0) & (y < m) & (x >= 0) & (x < n)
        y, x, w = y[ok], x[ok], c["length_mm"][v][ok]
        de_at[y, x] = c["delta_e"][v][ok]
        stretch_at[y, x] = k
        on_line[y, x] = True
        found[k] = float((pred[y, x] * w).sum() / max(1e-9, w.sum()))
    _, (iy, ix) = ndi.distance_transform_edt(~on_line, return_indices=True)
    gy, gx = np.nonzero(s_gt)
    de = de_at[iy[gy, gx], ix[gy, gx]]
    share = np.array([found.get(int(s), 0.0) for s in stretch_at[iy[gy, gx], ix[gy, gx]]])
    d_true = photo.diameter_mm[gy, gx]
    hit = pred[gy, gx]
    near = ndi.distance_transform_edt(~pred)[gy, gx] <= 2
    kind = np.where(hit, "hit", np.where(near, "near", np.where(share >= 0.2, "gap", "whole")))
    out = {"n_true_skel": int(gy.size), "n_engine_skel": int(s_pr.sum())}
    for lo, hi in D_BANDS:
        b = (d_true >= lo) & (d_true < hi)
        out[f"d:{lo:g}"] = {k: int((kind[b] == k).sum()) for k in ("hit", *MISS)}
    for lo, hi in E_BANDS:
        b = (de >= lo) & (de < hi)
        out[f"e:{lo:g}"] = {k: int((kind[b] == k).sum()) for k in ("hit", *MISS)}
    py, px = np.nonzero(s_pr)
    on = truth[py, px]
    conf = np.zeros((m, n), bool)
    for name, mask in photo.confounders.items():
        if name != "card":
            conf |= mask
    off = np.where(ndi.distance_transform_edt(~truth)[py, px] <= 2, "near_truth",
                   np.where(ndi.distance_transform_edt(~ign)[py, px] <= 2, "near_ignore",
                            np.where(ndi.binary_dilation(conf, iterations=2)[py, px], "confounder", "false")))  # fmt: skip
    out["on"] = int(on.sum())
    out.update({k: int(((off == k) & ~on).sum()) for k in OFF})
    out["tsens"] = float(hit.mean()) if hit.size else float("nan")
    out["tprec"] = float(on.mean()) if on.size else float("nan")
    out["cldice"] = 2 * out["tsens"] * out["tprec"] / max(1e-9, out["tsens"] + out["tprec"])
    ts1 = float((s_gt & ndi.binary_dilation(pred)).sum() / max(1, gy.size))
    tp1 = float((s_pr & ndi.binary_dilation(truth)).sum() / max(1, py.size))
    out["cldice_tol1"] = 2 * ts1 * tp1 / max(1e-9, ts1 + tp1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)  # its --types: the skin types to include, e.g. --types 2 3 4
    args, size, kw = set_a_start(ap, argv)
    import veinscope

    types = set(args.types or range(1, 7))
    rows = []
    for i in range(args.n):
        if 1 + i % 6 not in types:
            continue
        photo = set_a_photo(i, args.seed0 + i, size, args.cache)
        r = parts(photo, veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm, **kw))
        r.update(seed=args.seed0 + i, skin_type=1 + i % 6, ppm=photo.px_per_mm)
        rows.append(r)
        miss = {k: sum(r[f"d:{lo:g}"][k] for lo, _ in D_BANDS) for k in MISS}
        print(f"seed {r['seed']} type {r['skin_type']} {r['ppm']:4.1f} px/mm: clDice {r['cldice']:.3f} tsens {r['tsens']:.3f} "
              f"tprec {r['tprec']:.3f} (1 px tolerance {r['cldice_tol1']:.3f}); true skeleton missed near/gap/whole "
              + "/".join(str(miss[k]) for k in MISS) + " of " + str(r["n_true_skel"]) + "; engine skeleton off near_truth/"
              "near_ignore/confounder/false " + "/".join(str(r[k]) for k in OFF) + " of " + str(r["n_engine_skel"]), flush=True)
    if not rows:
        print("no photo of those skin types")
        return 1
    med = statistics.median
    print(f"\n{len(rows)} photos, medians: clDice {med(r['cldice'] for r in rows):.3f}, tsens {med(r['tsens'] for r in rows):.3f}, "
          f"tprec {med(r['tprec'] for r in rows):.3f}, with 1 px tolerance {med(r['cldice_tol1'] for r in rows):.3f}; "
          f"tsens < tprec on {sum(r['tsens'] < r['tprec'] for r in rows)} photos")
    n_true = sum(r["n_true_skel"] for r in rows)
    for title, bands, key in (("true diameter, mm", D_BANDS, "d"), ("contrast ΔE00", E_BANDS, "e")):
        print(f"\n| {title} | share of true skeleton | painted | missed: near | gap | whole |\n|---|---|---|---|---|---|")
        for lo, hi in bands:
            c = {k: sum(r[f"{key}:{lo:g}"][k] for r in rows) for k in ("hit", *MISS)}
            tot = sum(c.values())
            band = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
            print(f"| {band} | {tot / n_true:.3f} | {c['hit'] / max(1, tot):.3f} | "
                  + " | ".join(f"{c[k] / n_true:.3f}" for k in MISS) + " |")
    n_eng = sum(r["n_engine_skel"] for r in rows)
    print("\nengine skeleton (share of all its pixels): on the truth "
          f"{sum(r['on'] for r in rows) / n_eng:.3f}, " + ", ".join(f"{k} {sum(r[k] for r in rows) / n_eng:.3f}" for k in OFF))
    return 0


if __name__ == "__main__":
    sys.exit(main())

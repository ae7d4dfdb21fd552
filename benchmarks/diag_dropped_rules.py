"""Which rule of ``measure_vessels`` drops the true vessel length the detection found, and how much
false length the same rule drops (issue 4).

Run:  .venv/bin/python benchmarks/diag_dropped_rules.py [--n 24] [--seed0 400] [--cache DIR] [--json F]
      .venv/bin/python benchmarks/diag_dropped_rules.py --legs DIR [--ppm 10]   # real photos: no truth

Set A's photos (as ``bench_synth_accuracy.py``: photo i seed seed0 + i, the rotating scales and
skin types, the true scale given). ``veinscope.pipeline.measure_vessels`` is wrapped for the run
and asked for its ``drop_reasons`` (the first rule that dropped each detected point,
:data:`veinscope.measure.DROP_RULES`); results are unchanged.

- **True length dropped**: every visible true centreline point of a vessel >= 0.2 mm (the recall
  figure's population) that is not painted, lies within 2 px of a detected centreline point and
  more than 2 px from every accepted one, weighted by its length, goes to the rule that dropped
  the detected point nearest it. By class and by ΔE00 band (the truth's ``delta_e``).
- **False length dropped**: every detected point a rule dropped that lies more than 2.5 px from
  every true vessel pixel and every "ignore" pixel, counted as 1 / (px per mm) mm per point (a
  chain steps 1 or 1.41 px: an underestimate of at most 1.41 x).
- ``--legs DIR``: the real photos in DIR at ``--ppm``; every dropped point counted (no truth:
  what the rules exist to remove is there with real vessels the engine missed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import recall_population, set_a_arguments, set_a_options, set_a_photo  # noqa: E402

NAMES = {"red_telangiectasia": "red", "blue_telangiectasia": "blue", "reticular": "reticular"}
BANDS = ((-np.inf, 2.0, "ΔE00 < 2"), (2.0, 3.0, "ΔE00 2-3"), (3.0, 5.0, "ΔE00 3-5"), (5.0, 10.0, "ΔE00 5-10"), (10.0, np.inf, "ΔE00 >= 10"))


def analyse(rgb, ppm, kw):
    """``veinscope.analyze`` with the last ``measure_vessels`` call's detection and drop codes
    and the detection's line strength over its noise unit: (analysis, det, codes (K,) int8, ridge)."""
    import veinscope.pipeline as pl
    from diag_isolated_pieces import analyse_capturing

    cap = {}
    mv0 = pl.measure_vessels

    def _measure(det, *a, **k):
        reasons = {}
        out = mv0(det, *a, drop_reasons=reasons, **k)
        cap.update(det=det, code=reasons["code"])
        return out

    pl.measure_vessels = _measure
    try:
        an, ridge, _ = analyse_capturing(rgb, ppm, kw)
    finally:
        pl.measure_vessels = mv0
    return an, cap["det"], cap["code"], ridge


LENGTHS = np.array([4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256])


def strong_chains(det, code, ridge, skin, away, rng, z=3.09):
    """For each chain of ``det``: whether the mean line strength over its points (the maximum of
    ``ridge`` within 1 px) beats straight lines of the nearest shorter length in ``LENGTHS`` on
    the photo's skin off every vessel (``away``; diag_missed_paths' ``Null``) by ``z`` robust
    spreads (3.09: a false-alarm rate of 1e-3 per chain)."""
    from diag_missed_paths import Null
    from scipy import ndimage as ndi

    near = ndi.maximum_filter(ridge, size=3)
    null = Null(near, skin & ~away, rng, n=1500)
    seg = det.segment
    ok = (seg >= 0) & (seg < det.n_segments)
    nseg = max(det.n_segments, 1)
    cnt = np.bincount(seg[ok], minlength=nseg)
    tot = np.bincount(seg[ok], weights=near[det.points_yx[ok, 0], det.points_yx[ok, 1]], minlength=nseg)
    mean = tot / np.maximum(cnt, 1)
    strong = np.zeros(nseg, bool)
    for c in np.unique(seg[ok & (code > 0)]):
        j = np.searchsorted(LENGTHS, cnt[c], side="right") - 1
        if j >= 0:
            strong[c] = mean[c] > null.level(int(LENGTHS[j]), z)
    return strong


def photo_rows(photo, an, det, code, strong):
    """(true rows [(rule, class, band, mm, strong evidence)], false mm by rule, dropped mm on
    truth by rule, false mm of strong chains by rule)."""
    from scipy import ndimage as ndi

    m, n = an.labels.shape
    ppm = photo.px_per_mm
    pts = det.points_yx
    free = np.ones((m, n), bool)
    free[pts[:, 0], pts[:, 1]] = False
    d_det, (iy, ix) = ndi.distance_transform_edt(free, return_indices=True)
    free[:] = True
    acc = code == 0
    free[pts[acc, 0], pts[acc, 1]] = False
    d_acc = ndi.distance_transform_edt(free)
    idx = np.full((m, n), -1, np.int64)
    idx[pts[:, 0], pts[:, 1]] = np.arange(len(pts))
    painted = (an.labels > 0) & an.skin
    rows = []
    for c, pop, y, x in recall_population(photo.centrelines, (m, n)):
        sel = pop & ~painted[y, x] & (d_det[y, x] <= 2.0) & (d_acc[y, x] > 2.0)
        cls = NAMES.get(c["class"], "over 3 mm")
        for j in np.flatnonzero(sel):
            q = idx[iy[y[j], x[j]], ix[y[j], x[j]]]
            r = int(code[q])
            de = float(c["delta_e"][j])
            band = next((b[2] for b in BANDS if b[0] <= de < b[1]), "ΔE00 < 2")
            rows.append((r, cls, band, float(c["length_mm"][j]), bool(strong[max(det.segment[q], 0)])))
    truth = ndi.binary_dilation((photo.labels > 0) | photo.ignore, iterations=2)  # ~2.5 px (chessboard 2)
    on = truth[pts[:, 0], pts[:, 1]]
    false_mm = np.bincount(code[(code > 0) & ~on], minlength=16)[:16] / ppm
    true_pts_mm = np.bincount(code[(code > 0) & on], minlength=16)[:16] / ppm
    st = strong[np.clip(det.segment, 0, len(strong) - 1)]
    false_strong = np.bincount(code[(code > 0) & ~on & st], minlength=16)[:16] / ppm
    return rows, false_mm, true_pts_mm, false_strong


def tables(rows, false_mm, on_mm, false_strong, names, total_mm, photos):
    out = {"total_recall_mm": total_mm, "photos": photos, "rules": []}
    print(f"\nTrue length (recall population, {total_mm:.0f} mm) found by the detection and dropped, by rule; "
          f"false length (detected points > 2.5 px from truth) the same rule drops; {photos} photos")  # fmt: skip
    cols = ["red", "blue", "reticular", "over 3 mm"] + [b[2] for b in BANDS]
    hdr = ["rule", "true mm"] + cols + ["false mm", "true per false", "true strong mm", "false strong mm"]
    print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
    for r, name in enumerate(names):
        if r == 0:
            continue
        mine = [x for x in rows if x[0] == r]
        t = sum(x[3] for x in mine)
        if t == 0 and false_mm[r] == 0:
            continue
        by = {k: sum(x[3] for x in mine if x[1] == k or x[2] == k) for k in cols}
        ts = sum(x[3] for x in mine if x[4])
        ratio = t / false_mm[r] if false_mm[r] > 0 else float("inf")
        print(f"| {name} | {t:.0f} | " + " | ".join(f"{by[k]:.0f}" for k in cols)
              + f" | {false_mm[r]:.0f} | {ratio:.2f} | {ts:.0f} | {false_strong[r]:.0f} |")  # fmt: skip
        out["rules"].append(dict(rule=name, true_mm=t, **by, on_truth_mm=float(on_mm[r]), false_mm=float(false_mm[r]),
                                 true_strong_mm=ts, false_strong_mm=float(false_strong[r])))  # fmt: skip
    t_all = sum(x[3] for x in rows)
    print(f"| all | {t_all:.0f} | " + " | " * len(cols) + f"{false_mm.sum():.0f} | | {sum(x[3] for x in rows if x[4]):.0f} | {false_strong.sum():.0f} |")
    out["true_mm"] = t_all
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--legs", type=Path, default=None, help="real photos in this folder instead (no truth)")
    ap.add_argument("--ppm", type=float, default=10.0)
    args = ap.parse_args(argv)
    (w, h), kw = set_a_options(args)
    import veinscope
    from veinscope.measure import DROP_RULES

    veinscope.warmup()
    if args.legs is not None:
        import cv2

        res = {}
        for f in sorted(args.legs.iterdir()):
            rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
            an, det, code, _ = analyse(rgb, args.ppm, kw)
            mm = np.bincount(code, minlength=16)[:16] / args.ppm
            res[f.name] = {("kept" if r == 0 else DROP_RULES[r]): float(mm[r]) for r in range(len(DROP_RULES)) if mm[r] > 0}
            print(f.name, ", ".join(f"{k} {v:.0f} mm" for k, v in res[f.name].items()), flush=True)
        tot = {k: sum(v.get(k, 0.0) for v in res.values()) for k in ("kept",) + DROP_RULES[1:]}
        print("all:", ", ".join(f"{k} {v:.0f} mm" for k, v in tot.items() if v > 0))
        if args.json:
            args.json.write_text(json.dumps({"photos": res, "total": tot}, indent=1))
        return 0
    rows, false_mm, on_mm, f_strong, total, k = [], np.zeros(16), np.zeros(16), np.zeros(16), 0.0, 0
    rng = np.random.default_rng(0)
    for i in range(args.n):
        if args.types and 1 + i % 6 not in args.types:
            continue
        seed = args.seed0 + i
        photo = set_a_photo(i, seed, (w, h), args.cache)
        an, det, code, ridge = analyse(photo.rgb, photo.px_per_mm, kw)
        from scipy import ndimage as ndi

        away = ndi.binary_dilation((photo.labels > 0) | photo.ignore | (an.labels > 0), iterations=5)
        inner = ndi.binary_erosion(photo.skin_mask & an.skin, iterations=max(1, int(photo.px_per_mm)))
        strong = strong_chains(det, code, ridge, inner, away, rng)
        r, f, o, fs = photo_rows(photo, an, det, code, strong)
        f_strong += fs
        rows += r
        false_mm += f
        on_mm += o
        k += 1
        for c, pop, _, _ in recall_population(photo.centrelines, photo.labels.shape):
            total += float(c["length_mm"][pop].sum())
        print(f"{seed}: dropped true {sum(x[3] for x in r):.0f} mm, false {f.sum():.0f} mm", flush=True)
    res = tables(rows, false_mm, on_mm, f_strong, DROP_RULES, total, k)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

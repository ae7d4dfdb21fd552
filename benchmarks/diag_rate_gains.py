"""The chains only ``level_rates``' lowered levels find, on set A's photos: are they vessels?

Run:  PYTHONPATH=src .venv/bin/python benchmarks/diag_rate_gains.py [--n 24] [--seed0 400] [--types 5 6]
      [--json FILE]

``analyze(level_rates=(0.04, 0.01))`` on each photo, with ``detect_vessels``' chains recorded where
the rates lowered a level (``segment._guard_rate_gains`` wrapped, every chain kept as it is). A
chain is a gain when none of its points lies in (1 px from) a band the fixed levels keep. Per
gain: its points, the diagonal of its bounding box (mm), the ratio of its principal axes, its
strength in local noise units (mean, max), whether the fixed levels would have judged its band
weak, its distance (mm) to the nearest chain the fixed levels find and to any other chain, the
share of its points on a true vessel (5 x 5 px round the truth, ``ignore`` included) and the share
painted in the end. Prints the painted gains' true and false points under each candidate rule
(session 33, helper lev33).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def gains(seed0: int, n: int, types: list[int], size=(1600, 1200)) -> list[dict]:
    import cv2
    from scipy.spatial import cKDTree

    import veinscope
    from veinscope import segment
    from veinscope.synth import generate_photo

    sys.path.insert(0, str(HERE))
    from bench_synth_accuracy import SCALES

    rec: dict = {}
    guard, rate = segment._guard_rate_gains, segment._rate_levels

    def record(ys, xs, seg, kept, weak_seg, fk, fw, *args, **kw):
        rec.update(ys=ys.copy(), xs=xs.copy(), seg=seg.copy(), kept=kept, fk=fk[ys, xs], fw=fw[ys, xs])
        return ys, xs, seg, kept, weak_seg

    def levels(q, inner, noise_map, cell_px, *args, **kw):
        rec.update(q=q, nm=noise_map, cell=cell_px)
        return rate(q, inner, noise_map, cell_px, *args, **kw)

    segment._guard_rate_gains, segment._rate_levels = record, levels
    rows = []
    try:
        for i in range(n):
            skin_type = 1 + i % 6
            if skin_type not in types:
                continue
            ppm = SCALES[(i + i // 6) % len(SCALES)]
            ph = generate_photo(seed=seed0 + i, size=size, px_per_mm=ppm, skin_type=skin_type)
            rec.clear()
            # "weak": the guard runs (and is recorded) but the wrapper keeps every chain as it is
            a = veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm, level_rates=(0.04, 0.01), level_rates_guard="weak")
            if "ys" not in rec:
                continue  # the rates lowered no level
            truth = cv2.dilate(((ph.labels > 0) | ph.ignore).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            painted = a.labels > 0
            ys, xs, seg = rec["ys"], rec["xs"], rec["seg"]
            pts = np.stack([ys, xs], 1).astype(float)
            on_kept = (np.bincount(seg, weights=rec["fk"], minlength=rec["kept"]) > 0)[seg]
            tree_k = cKDTree(pts[on_kept]) if on_kept.any() else None
            for c in range(rec["kept"]):
                m = seg == c
                if rec["fk"][m].any():
                    continue
                y, x = ys[m].astype(float), xs[m].astype(float)
                ev = np.sort(np.linalg.eigvalsh(np.cov(np.stack([y, x])))) if m.sum() > 2 else np.ones(2)
                unit = segment._upsample_at(rec["nm"], rec["cell"], y, x)
                z = rec["q"][ys[m], xs[m]] / unit
                rows.append(dict(
                    seed=seed0 + i, skin_type=skin_type, ppm=ppm, points=int(m.sum()),
                    diag_mm=float(np.hypot(np.ptp(y) + 1, np.ptp(x) + 1) / ppm),
                    axes_ratio=float(np.sqrt(ev[1] / max(ev[0], 1e-3))), z_mean=float(z.mean()), z_max=float(z.max()),
                    fixed_weak=bool(rec["fw"][m].any()),
                    to_fixed_mm=float(tree_k.query(pts[m])[0].min() / ppm) if tree_k is not None else float("inf"),
                    to_any_mm=float(cKDTree(pts[~m]).query(pts[m])[0].min() / ppm) if (~m).any() else float("inf"),
                    true=float(truth[ys[m], xs[m]].mean()), painted=float(painted[ys[m], xs[m]].mean()),
                ))
    finally:
        segment._guard_rate_gains, segment._rate_levels = guard, rate
    return rows


def table(rows: list[dict]) -> list[str]:
    """The painted gains' true / false points (a gain is painted when most of it is) under rules."""
    p = [r for r in rows if r["painted"] > 0.5]
    rules = [("all painted gains", lambda r: True)]
    rules += [(f"diagonal >= {t} mm", lambda r, t=t: r["diag_mm"] >= t) for t in (1.5, 2.0, 2.5, 3.0)]
    rules += [(f"within {t} mm of a fixed-level chain", lambda r, t=t: r["to_fixed_mm"] <= t) for t in (1, 2, 3)]
    rules += [(f"within {t} mm of any chain", lambda r, t=t: r["to_any_mm"] <= t) for t in (1, 2)]
    rules += [("within 2 mm of a fixed-level chain or >= 2.5 mm", lambda r: r["to_fixed_mm"] <= 2 or r["diag_mm"] >= 2.5)]
    rules += [(f"max strength >= {t} units", lambda r, t=t: r["z_max"] >= t) for t in (4.0, 4.5)]
    rules += [(f"axes ratio >= {t}", lambda r, t=t: r["axes_ratio"] >= t) for t in (3, 5)]
    rules += [("in a band the fixed levels judge weak", lambda r: r["fixed_weak"])]
    out = [f"{len(rows)} gains, {len(p)} painted", "| rule | gains | true points | false points |", "|---|---|---|---|"]
    for name, keep in rules:
        s = [r for r in p if keep(r)]
        t = sum(r["points"] for r in s if r["true"] > 0.5)
        f = sum(r["points"] for r in s if r["true"] <= 0.5)
        out.append(f"| {name} | {len(s)} | {t} | {f} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed0", type=int, default=400)
    ap.add_argument("--types", type=int, nargs="+", default=[5, 6])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = gains(args.seed0, args.n, args.types)
    if args.json:
        args.json.write_text(json.dumps(rows))
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

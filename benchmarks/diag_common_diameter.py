"""Diameter error at the true centreline points that every run marks (issue 4, session 35).

``bench_synth_accuracy.py``'s diameter error is a median over the true points a run marks, so
a run that finds more of the faint vessels (whose widths read worse) moves it without changing
the width of any vessel both runs measure. This script analyses each photo of a set once per
option set and reads the diameter error only at the visible true centreline points that all of
them mark.

Run:  .venv/bin/python benchmarks/diag_common_diameter.py [--n 24] [--seed0 400]
          --run main: --run lev:level_rates=0.04,0.01;level_rates_guard=drop+near+long+follow+colour

Each ``--run NAME:KEY=VALUE;KEY=VALUE`` names an option set (``bench_synth_accuracy.py``'s
``--set`` syntax, items separated by ``;``); per photo it prints the median absolute error
(mm) at the common points, and the medians over the photos at >= 10 px/mm and at 6 px/mm.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth_accuracy import analyze_options, set_a_photo  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed0", type=int, default=400)
    ap.add_argument("--size", default="1600x1200")
    ap.add_argument("--run", action="append", required=True, metavar="NAME:OPTIONS")
    args = ap.parse_args(argv)
    import veinscope

    runs = []
    for item in args.run:
        name, _, opts = item.partition(":")
        runs.append((name, analyze_options([o for o in opts.split(";") if o])))
    size = tuple(int(v) for v in args.size.split("x"))
    veinscope.warmup()
    rows = []
    print("seed ppm common " + " ".join(f"{n:>8s}" for n, _ in runs))
    for i in range(args.n):
        seed = args.seed0 + i
        photo = set_a_photo(i, seed, size)
        m, n = photo.labels.shape
        ys, xs, dt = [], [], []
        for c in photo.centrelines:
            v = c["visible"]
            if v.any():
                y, x = np.round(c["points_yx"][v]).astype(int).T
                ys.append(y.clip(0, m - 1))
                xs.append(x.clip(0, n - 1))
                dt.append(c["diameter_mm"][v])
        if not ys:
            continue
        y, x, d = np.concatenate(ys), np.concatenate(xs), np.concatenate(dt)
        maps = [veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm, **kw) for _, kw in runs]
        hit = np.logical_and.reduce([a.labels[y, x] > 0 for a in maps])
        errs = []
        for a in maps:
            e = np.abs(a.diameter_mm[y[hit], x[hit]] - d[hit])
            e = e[np.isfinite(e)]
            errs.append(float(np.median(e)) if e.size else float("nan"))
        rows.append((seed, photo.px_per_mm, errs))
        print(f"{seed} {photo.px_per_mm:4.1f} {int(hit.sum()):6d} " + " ".join(f"{e:8.3f}" for e in errs), flush=True)
    for label, sel in ((">= 10 px/mm", lambda p: p >= 10), ("6 px/mm", lambda p: p == 6)):
        meds = [statistics.median([r[2][k] for r in rows if sel(r[1]) and np.isfinite(r[2][k])] or [float("nan")])
                for k in range(len(runs))]
        print(f"median {label}: " + " ".join(f"{n} {v:.3f}" for (n, _), v in zip(runs, meds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the generator drew for each series of ``bench_compare.py --source series`` (issue 6, diagnosis only).

For the series the benchmark makes (seed, 3 sessions, 800 x 600, its px/mm draw) print, without
running ``compare``: skin type, melanin OD, px/mm, the baseline's structures by kind, the truth's
baseline vessel length, and for each follow-up the truth's improvement, staining and matting
areas on the baseline's grid (the benchmark's truth), the matting patches, the number of matting
vessel branches, and the camera's exposure and glare factor. Then one summary line per seed
range: what tells one set of seeds from another in its draws, not in compare's reading.

    PYTHONPATH=src .venv/bin/python benchmarks/diag_series_draws.py 300:334 360:372 380:392

(session 35, helper dx35: why the unseen series 380-391 read worse than 300-333 / 360-371).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_compare import benchmark_series, mask_on_baseline  # noqa: E402


def series_rows(seed: int, size=(800, 600), sessions: int = 3) -> list[dict]:
    """One row per follow-up of the benchmark's series ``seed`` (its draws and its truth)."""
    ser = benchmark_series(seed, size, sessions)
    b = ser.photos[0]
    p0 = b.params
    kinds: dict[str, int] = {}
    for st in p0["structures"]:
        kinds[st["kind"]] = kinds.get(st["kind"], 0) + 1
    course = ser.params["course"]
    rows = []
    for k in range(1, len(ser.photos)):
        ch = ser.changes[k - 1]
        f = ser.photos[k]

        def on_baseline(mask):
            return float(mask_on_baseline(ser, k, mask).sum()) / float(b.px_per_mm) ** 2

        mat_sids = [e["matting_structure"] for e in course["events"] if e["event"] == "matting" and e["session"] <= k]
        rows.append({
            "case": f"{seed}/{k}", "skin_type": int(ser.params["skin_type"]), "melanin": float(p0["skin"]["melanin_od"]),
            "ppm": float(b.px_per_mm), "n_struct": len(p0["structures"]), "kinds": kinds,
            "base_mm": float(ch["baseline_length_mm"]["total"]), "imp_truth": ch["improvement_pct"]["total"],
            "stain_mm2": on_baseline(f.staining), "matt_mm2": on_baseline(f.matting),
            "matt_patches": int(ch["matting"]["patches"]),
            "matt_branches": int(sum(course["structures"][s]["branches"] for s in mat_sids)),
            "exposure": float(f.params["camera"]["exposure"]), "glare": float(f.params["camera"]["glare_factor"]),
        })
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ranges", nargs="+", help="seed ranges A:B (B excluded)")
    args = ap.parse_args(argv)
    sets = {}
    print(f"{'case':>6} {'type':>4} {'mel':>5} {'ppm':>5} {'nst':>3} {'base mm':>7} {'imp':>5} {'stain':>6} {'matt':>6} {'pat':>3} {'mbr':>3} {'exp':>5} {'glare':>5}")
    for rg in args.ranges:
        a, b = (int(x) for x in rg.split(":"))
        rows = []
        for seed in range(a, b):
            for r in series_rows(seed):
                rows.append(r)
                imp = "  -" if r["imp_truth"] is None else f"{r['imp_truth']:5.1f}"
                print(f"{r['case']:>6} {r['skin_type']:4d} {r['melanin']:5.2f} {r['ppm']:5.1f} {r['n_struct']:3d} {r['base_mm']:7.1f} {imp} "
                      f"{r['stain_mm2']:6.1f} {r['matt_mm2']:6.1f} {r['matt_patches']:3d} {r['matt_branches']:3d} {r['exposure']:5.2f} {r['glare']:5.2f}", flush=True)
        sets[rg] = rows
    print()
    for rg, rows in sets.items():
        types = [r["skin_type"] for r in rows[::2]]
        mt = [r["matt_mm2"] for r in rows if r["matt_mm2"] > 1.0]
        st = [r["stain_mm2"] for r in rows if r["stain_mm2"] > 1.0]
        imp = [r["imp_truth"] for r in rows if r["imp_truth"] is not None]
        print(f"{rg}: series {len(types)}, skin types " + " ".join(f"{t}:{types.count(t)}" for t in range(1, 7))
              + f"; ppm median {np.median([r['ppm'] for r in rows]):.1f}; structures median {np.median([r['n_struct'] for r in rows]):.0f}"
              + f"; baseline length median {np.median([r['base_mm'] for r in rows]):.0f} mm"
              + f"; truth improvement median {np.median(imp):.1f} (n={len(imp)})"
              + f"; matting > 1 mm2 {len(mt)}/{len(rows)}, median {np.median(mt) if mt else 0:.1f} mm2"
              + f"; staining > 1 mm2 {len(st)}/{len(rows)}, median {np.median(st) if st else 0:.1f} mm2")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

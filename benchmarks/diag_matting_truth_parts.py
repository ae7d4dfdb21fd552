"""How much of the series truth's matting its 1 mm blush reading marks (issue 6, diagnosis only).

The generator's matting truth (``synth.py``) is the union of two parts, closed and filled: the
0.75 mm reach of the matting vessels visible on their own, and where the patch's redness read
over 1 mm (its blush and fine vessels together, :func:`veinscope.synth._matting_margin`) passes
the visibility test. This script renders the series of ``bench_compare.py --source series``
(the same seeds, scale and truth; no ``compare``) and reports, per follow-up with over 1 mm² of
matting, the truth's area and the part of it the 1 mm reading marks visible, on the baseline's
grid. The rest is the visible fine vessels' reach.

It reads the generator's internal margin by wrapping ``synth._matting_margin`` and ``synth._warp``
for the run (the photos and truths are unchanged).

    PYTHONPATH=src .venv/bin/python benchmarks/diag_matting_truth_parts.py --n 12 --seed0 300

(session 36, helper rim36: is matting's missed rim the blush's or the fine vessels'?)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import veinscope.synth as _synth  # noqa: E402
from bench_compare import benchmark_series, mask_on_baseline  # noqa: E402


def _wrapped():
    """Wrap the generator's margin and warp so that each session's warped margin is kept."""
    seen: dict = {"warped": []}
    margin, warp = _synth._matting_margin, _synth._warp

    def margin_kept(*a, **k):
        out = margin(*a, **k)
        seen["last"] = out
        return out

    def warp_kept(img, *a, **k):
        out = warp(img, *a, **k)
        if seen.get("last") is not None and img is seen["last"]:
            seen["warped"].append(out)
        return out

    _synth._matting_margin, _synth._warp = margin_kept, warp_kept
    return seen, (margin, warp)


def series_rows(seed: int, size=(800, 600), sessions: int = 3) -> list[dict]:
    seen, orig = _wrapped()
    try:
        ser = benchmark_series(seed, size, sessions)
    finally:
        _synth._matting_margin, _synth._warp = orig
    ppm = float(ser.photos[0].px_per_mm)
    warped = seen["warped"]  # one per session from the first with a live matting patch
    n_f = len(ser.photos) - 1
    rows = []
    for k in range(1, len(ser.photos)):
        t = mask_on_baseline(ser, k, ser.photos[k].matting)
        if t.sum() < ppm**2:
            continue
        idx = k - (n_f - len(warped)) - 1
        blush = mask_on_baseline(ser, k, warped[idx] > 0) & t if 0 <= idx < len(warped) else t & False
        rows.append({"case": f"{seed}/{k}", "ppm": ppm, "truth": float(t.sum() / ppm**2), "blush": float(blush.sum() / ppm**2)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--json", metavar="PATH", help="write the per-pair rows to PATH")
    args = ap.parse_args(argv)
    rows = []
    print("  case   ppm  truth  blush  blush %")
    for seed in range(args.seed0, args.seed0 + args.n):
        for r in series_rows(seed):
            rows.append(r)
            print(f"{r['case']:>6} {r['ppm']:5.1f} {r['truth']:6.1f} {r['blush']:6.1f} {100 * r['blush'] / r['truth']:6.1f}", flush=True)
    if rows:
        tt, tb = sum(r["truth"] for r in rows), sum(r["blush"] for r in rows)
        print(f"\ntruth {tt:.1f} mm2 over {len(rows)} pairs; marked by the 1 mm blush reading {tb:.1f} mm2 ({100 * tb / tt:.1f} %)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Real leg photos compared with a moved copy of themselves: nothing changed (issue 6).

Each photo of ``../shared/data/legs-dev`` (and ``legs-test`` when present, reported as held
out) is compared with a copy of itself rotated 3 degrees, scaled 0.97, relit (gains 1.05 /
1.0 / 0.96 on R / G / B) and saved again as a JPEG at quality 90, as a follow-up photo taken
in another pose and light and sent through a messaging app would be. Nothing changed on the
skin, so no staining, matting or new vessel should be reported and the improvement should be
near 0 %. The photos are third-party: they are read where they lie, never copied.

    .venv/bin/python benchmarks/bench_self_compare.py
    .venv/bin/python benchmarks/bench_self_compare.py veins_01 --compare-set matting_shift_check=false
        # one photo, with a compare keyword set (repeatable; true / false / none or a number)
    .venv/bin/python benchmarks/bench_self_compare.py --set short_chain_nfa=1.0
        # an analyze keyword for both photos (repeatable)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_synth_accuracy import analyze_options  # noqa: E402
from tests._followup import moved_copy  # noqa: E402


def photos(names: list[str]):
    """(set, name, path) of the real photos to compare: legs-dev, then legs-test (held out)."""
    for sub in ("legs-dev", "legs-test"):
        folder = DATA / sub
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png") and (not names or p.stem in names):
                yield sub, p.stem, p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="photo names (stems) to run; all by default")
    ap.add_argument("--compare-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a compare keyword (repeatable; true/false/none or a number)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an analyze keyword for both photos (repeatable; true/false/none or a number)")
    ap.add_argument("--json", type=Path, default=None, help="write the per-photo rows here")
    ap.add_argument("--overlays", type=Path, default=None,
                    help="write each photo's change map over the baseline to this folder (PNG)")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"no reference data at {DATA}: nothing to compare")
        return 0
    import veinscope
    from veinscope import load_photo
    from veinscope.compare import CHANGE_CODES, compare
    from veinscope.errors import RegistrationError

    kw = analyze_options(args.compare_set)
    if args.set:
        kw["analyze_options"] = analyze_options(args.set)
    veinscope.warmup()
    rows = []
    print(f"{'set':>9} {'photo':>10} {'size':>10} | {'imp %':>6} {'base px':>7} | {'stain px2':>9} {'n':>2} | {'matt px2':>9} {'n':>2} | {'new':>3} {'s':>6}", flush=True)
    for sub, name, path in photos(args.names):
        b = load_photo(path).rgb
        f = moved_copy(b)
        t0 = time.perf_counter()
        try:
            c = compare(b, f, **kw)
        except RegistrationError as exc:
            print(f"{sub:>9} {name:>10} {b.shape[1]:>4}x{b.shape[0]:<5} | refused: {exc}", flush=True)
            rows.append({"set": sub, "photo": name, "shape": list(b.shape[:2]), "refused": str(exc)})
            continue
        dt = time.perf_counter() - t0
        r = {
            "set": sub, "photo": name, "shape": list(b.shape[:2]), "improvement_pct": c.improvement_pct,
            "baseline_px": c.lengths_px["baseline"],
            "staining_px2": c.staining["area_px2"], "staining_patches": c.staining["patches"],
            "matting_px2": c.matting["area_px2"], "matting_patches": c.matting["patches"],
            "new_vessels": c.new_vessels["count"], "s": dt,
        }
        rows.append(r)
        imp = "     -" if r["improvement_pct"] is None else f"{r['improvement_pct']:6.1f}"
        print(f"{sub:>9} {name:>10} {b.shape[1]:>4}x{b.shape[0]:<5} | {imp} {r['baseline_px']:7.0f} | {r['staining_px2']:9d} {r['staining_patches']:2d} | "
              f"{r['matting_px2']:9d} {r['matting_patches']:2d} | {r['new_vessels']:3d} {dt:6.1f}", flush=True)
        if args.overlays is not None:
            args.overlays.mkdir(parents=True, exist_ok=True)
            vis = c.baseline_rgb.copy()
            for key, colour in (("persisting", (0, 255, 0)), ("cleared", (255, 0, 255)), ("staining", (255, 160, 0)),
                                ("matting", (255, 0, 0)), ("new_vessel", (0, 128, 255))):
                vis[c.change_map == CHANGE_CODES[key]] = colour
            Image.fromarray(vis).save(args.overlays / f"{name}.png")
    for sub in dict.fromkeys(r["set"] for r in rows):
        rs = [r for r in rows if r["set"] == sub and "refused" not in r]
        imps = [abs(r["improvement_pct"]) for r in rs if r["improvement_pct"] is not None]
        print(f"{sub}: {len(rs)} photos compared ({sum(r['set'] == sub for r in rows) - len(rs)} refused); staining reported on {sum(r['staining_px2'] > 0 for r in rs)}, matting on "
              f"{sum(r['matting_px2'] > 0 for r in rs)}, new vessels on {sum(r['new_vessels'] > 0 for r in rs)}; "
              f"|improvement| median {np.median(imps) if imps else float('nan'):.1f} points, max {max(imps) if imps else float('nan'):.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

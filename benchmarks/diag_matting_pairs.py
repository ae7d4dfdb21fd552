"""Where compare's matting area differs from the series truth's, pair by pair (issue 6, diagnosis only).

For each pair of ``bench_compare.py --source series`` (the same series, scale and truth) run
``compare`` with its defaults and split, on the baseline's grid, the truth's matting ``T`` and
compare's matting pixels ``C`` (change-map code 4), in mm²:

* ``T&C`` what both mark; ``C-T`` compare's outline beyond the truth, split into what lies within
  1 mm of the truth (``halo``: the outline grown around a true patch), on the staining's truth
  (``stn``: staining read as matting) and elsewhere (``far``: a patch of its own); ``T-C`` the
  truth compare misses, split by compare's code there: not compared or outside the overlap
  (``nc``), read as staining (``as st``), on a vessel code (``vsl``: cleared, persisting, new) and
  plain skin (``skin``: nothing reached compare's matting tests);
* the patches of each (connected pieces over 1 mm²), the skin type and px/mm.

``--png DIR`` writes for each pair ``DIR/SEED_K.png``: the baseline, the aligned follow-up and
the change map (matting magenta, staining brown, not compared grey, cleared blue, persisting
green, new vessels yellow) with the truth's matting outlined in white and its staining in cyan.

    PYTHONPATH=src .venv/bin/python benchmarks/diag_matting_pairs.py --n 12 --seed0 380 --png /tmp/dx35_png
    PYTHONPATH=src .venv/bin/python benchmarks/diag_matting_pairs.py --n 6 --seed0 300 --size 2400 1800   # whole-leg photos

(session 35, helper dx35: why the unseen series 380-391 read matting 43.7 %).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veinscope.compare import CHANGE_CODES, compare  # noqa: E402
from veinscope.errors import RegistrationError  # noqa: E402
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_compare import benchmark_series, mask_on_baseline  # noqa: E402

_COLOURS = {1: (60, 60, 255), 2: (40, 200, 40), 3: (150, 90, 40), 4: (255, 0, 255), 5: (255, 220, 0), 6: (110, 110, 110)}


def _pieces(mask: np.ndarray, min_px: float) -> int:
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return int(sum(stats[i, cv2.CC_STAT_AREA] >= min_px for i in range(1, n)))


def pair_rows(seed: int, png: Path | None, size=(800, 600), sessions: int = 3, c_opts: dict | None = None) -> list[dict]:
    ser = benchmark_series(seed, size, sessions)
    b = ser.photos[0]
    m, n = b.rgb.shape[:2]
    ppm = float(b.px_per_mm)
    mm2 = 1.0 / ppm**2
    rows = []
    for k in range(1, len(ser.photos)):
        f = ser.photos[k]
        t = mask_on_baseline(ser, k, f.matting)
        ts = mask_on_baseline(ser, k, f.staining)
        case = f"{seed}/{k}"
        try:
            c = compare(b.rgb, f.rgb, px_per_mm=ppm, **(c_opts or {}))
        except RegistrationError:
            rows.append({"case": case, "refused": True})
            continue
        cm = c.change_map
        cmat = cm == CHANGE_CODES["matting"]
        near_t = cv2.dilate(t.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(round(ppm)) + 1,) * 2)) > 0
        over = cmat & ~t
        miss = t & ~cmat
        nc = (cm == CHANGE_CODES["not_compared"]) | ~c.registration.overlap
        vsl = np.isin(cm, [CHANGE_CODES["cleared"], CHANGE_CODES["persisting"], CHANGE_CODES["new_vessel"]])
        r = {
            "case": case, "refused": False, "skin_type": int(ser.params["skin_type"]), "ppm": ppm,
            "truth": float(t.sum() * mm2), "reported": float(c.matting.get("area_mm2") or 0.0), "cmap": float(cmat.sum() * mm2),
            "both": float((t & cmat).sum() * mm2),
            "halo": float((over & near_t & ~ts).sum() * mm2), "stn": float((over & ts).sum() * mm2),
            "far": float((over & ~near_t & ~ts).sum() * mm2),
            "miss_nc": float((miss & nc).sum() * mm2), "miss_st": float((miss & ~nc & (cm == CHANGE_CODES["staining"])).sum() * mm2),
            "miss_vsl": float((miss & ~nc & vsl).sum() * mm2), "miss_skin": float((miss & ~nc & (cm == 0)).sum() * mm2),
            "t_pieces": _pieces(t, ppm**2), "c_pieces": _pieces(cmat, ppm**2),
            "truth_stain": float(ts.sum() * mm2),
        }
        rows.append(r)
        if png is not None:
            over_img = (0.45 * b.rgb).astype(np.uint8)
            for code, col in _COLOURS.items():
                over_img[cm == code] = col
            for mask, col in ((t, (255, 255, 255)), (ts, (0, 255, 255))):
                cnt, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(over_img, cnt, -1, col, 1)
            sheet = np.concatenate([b.rgb, c.aligned_rgb, over_img], axis=1)
            png.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(png / f"{seed}_{k}.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed0", type=int, default=380)
    ap.add_argument("--png", type=Path, default=None, help="write each pair's sheet to this folder")
    ap.add_argument("--json", metavar="PATH", help="write the per-pair rows to PATH")
    ap.add_argument("--compare-set", action="append", default=[], metavar="KEY=VALUE", help="a compare keyword (repeatable)")
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600), metavar=("W", "H"), help="the series' photo size (2400 1800: whole-leg photos)")
    args = ap.parse_args(argv)
    from bench_synth_accuracy import analyze_options

    c_opts = analyze_options(args.compare_set)
    import veinscope

    veinscope.warmup()
    hdr = "case type  ppm  truth    rep   T&C | halo   stn   far | nc  as st  vsl  skin | Tp Cp  err %"
    print(hdr)
    rows = []
    for seed in range(args.seed0, args.seed0 + args.n):
        for r in pair_rows(seed, args.png, size=tuple(args.size), c_opts=c_opts):
            rows.append(r)
            if r["refused"]:
                print(f"{r['case']:>6} refused")
                continue
            err = f"{(r['reported'] - r['truth']) / r['truth'] * 100:+6.1f}" if r["truth"] > 1.0 else "     -"
            print(f"{r['case']:>6} {r['skin_type']:2d} {r['ppm']:5.1f} {r['truth']:6.1f} {r['reported']:6.1f} {r['both']:5.1f} | "
                  f"{r['halo']:5.1f} {r['stn']:5.1f} {r['far']:5.1f} | {r['miss_nc']:4.1f} {r['miss_st']:5.1f} {r['miss_vsl']:4.1f} {r['miss_skin']:5.1f} | "
                  f"{r['t_pieces']:2d} {r['c_pieces']:2d} {err}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    ok = [r for r in rows if not r["refused"] and r["truth"] > 1.0]
    if ok:
        e = [abs(r["reported"] - r["truth"]) / r["truth"] * 100 for r in ok]
        print(f"\nmatting |error| where the truth has over 1 mm2: median {np.median(e):.1f} % (n={len(e)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

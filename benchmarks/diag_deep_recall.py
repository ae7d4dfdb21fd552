"""Which stage loses the truth's visible baseline vessels of generated series (issues 4 and 6,
diagnosis only): ``analyze`` alone on each series' baseline photo, the truth's visible
centreline length (the points the change truth counts, length shares in mm) found within 3 px
of the ordinary detection's points, of the deep search's raw ridge points, of the deep pieces
kept, and of the final labels, by class and by the truth's baseline ΔE00::

    PYTHONPATH=src .venv/bin/python benchmarks/diag_deep_recall.py --n 6 --size 2400 1800
    PYTHONPATH=src .venv/bin/python benchmarks/diag_deep_recall.py --n 6 --size 2400 1800 --set deep_veins=False

The second line passes an analyze option (a Python literal): what the deep search adds.
``--crops DIR`` writes, per seed, the photo beside the truth's points coloured found (green) or
missed (red) by the final labels, at the longest missed reticular course.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

import veinscope.segment as S
import veinscope.synth as synth
from veinscope.pipeline import analyze

sys.path.insert(0, str(Path(__file__).parent))
from bench_compare import benchmark_series  # noqa: E402

_CAP: dict = {}
CLASSES = {1: "red", 2: "blue", 3: "reticular", 4: "over 3 mm"}
DE_BINS = ((0, 3), (3, 6), (6, 10), (10, 20), (20, 99))


def _hooks():
    changes, deep_fn, detect = synth._changes, S.add_deep_veins, S.detect_vessels

    def cap_changes(plan, records, photos, k):
        _CAP["plan"], _CAP["records"] = plan, records
        return changes(plan, records, photos, k)

    def cap_deep(det, *a, **kw):
        _CAP["ordinary"] = det.points_yx.copy()
        _CAP["step"] = int(kw.get("step", 1))
        _CAP["in_deep"] = True
        try:
            out = deep_fn(det, *a, **kw)
        finally:
            _CAP["in_deep"] = False
        _CAP["deep_kept"] = out.points_yx[out.segment >= det.n_segments].copy()
        return out

    def cap_detect(*a, **kw):
        out = detect(*a, **kw)
        if _CAP.get("in_deep"):
            _CAP["deep_raw"] = out.points_yx * _CAP["step"]
        return out

    synth._changes, S.add_deep_veins, S.detect_vessels = cap_changes, cap_deep, cap_detect


def _truth(plan, rec0):
    rows = []
    for _sid, a, _b, share, base in synth._counted_baseline_vessels(plan, rec0, rec0):
        de = a.get("delta_e")
        for i in np.flatnonzero(base):
            rows.append((a["pts_photo"][i, 0], a["pts_photo"][i, 1], share[i], a["code"][i], np.nan if de is None else de[i], _sid))
    return np.array(rows, float).reshape(-1, 6)


def _near(shape, pts, r=3.0):
    mask = np.ones(shape, bool)
    if len(pts):
        mask[pts[:, 0], pts[:, 1]] = False
    return distance_transform_edt(mask) <= r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--size", type=int, nargs=2, default=(2400, 1800))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--crops", default=None)
    args = ap.parse_args(argv)
    opts = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        try:
            opts[k] = eval(v, {}, {})  # noqa: S307 (a benchmark's own command line)
        except Exception:
            opts[k] = v
    _hooks()
    stages = ("ordinary", "deep_raw", "deep_kept", "final")
    tot = {}
    for i in range(args.n):
        seed = args.seed0 + i
        _CAP.clear()
        ser = benchmark_series(seed, tuple(args.size))
        b = ser.photos[0]
        T = _truth(_CAP["plan"], _CAP["records"][0])
        m, n = b.rgb.shape[:2]
        a = analyze(b.rgb, px_per_mm=float(b.px_per_mm), **opts)
        ok = (T[:, 0] >= 0) & (T[:, 0] < m) & (T[:, 1] >= 0) & (T[:, 1] < n)
        T = T[ok]
        ty, tx = np.round(T[:, 0]).clip(0, m - 1).astype(int), np.round(T[:, 1]).clip(0, n - 1).astype(int)
        found = {}
        for st in stages[:3]:
            pts = _CAP.get(st, np.zeros((0, 2), int)).astype(int)
            pts = pts[(pts[:, 0] < m) & (pts[:, 1] < n)]
            found[st] = _near((m, n), pts)[ty, tx]
        lab = a.labels > 0
        found["final"] = (distance_transform_edt(~lab) <= 3.0)[ty, tx]
        found["skin"] = a.skin[ty, tx]
        line = [f"{seed} ppm {b.px_per_mm:4.1f} skin {b.params.get('skin_type')}"]
        for c, name in CLASSES.items():
            sel = T[:, 3] == c
            w = T[sel, 2].sum()
            if w <= 0:
                continue
            line.append(f"{name} {w:5.0f}mm " + "/".join(f"{100 * T[sel & found[st], 2].sum() / w:3.0f}" for st in (*stages, "skin")))
            for st in (*stages, "skin"):
                tot.setdefault((c, st), [0.0, 0.0])
                tot[(c, st)][0] += T[sel & found[st], 2].sum()
                tot[(c, st)][1] += w
        for lo, hi in DE_BINS:
            sel = (T[:, 4] >= lo) & (T[:, 4] < hi)
            for st in (*stages, "skin"):
                tot.setdefault((f"dE {lo}-{hi}", st), [0.0, 0.0])
                tot[(f"dE {lo}-{hi}", st)][0] += T[sel & found[st], 2].sum()
                tot[(f"dE {lo}-{hi}", st)][1] += T[sel, 2].sum()
        print("  ".join(line), flush=True)
        if args.crops:
            Path(args.crops).mkdir(parents=True, exist_ok=True)
            miss = (T[:, 3] >= 3) & ~found["final"]
            if miss.any():
                cy, cx = int(np.median(ty[miss])), int(np.median(tx[miss]))
                h = 450
                y0, x0 = max(0, min(m - 2 * h, cy - h)), max(0, min(n - 2 * h, cx - h))
                over = b.rgb.copy()
                over[lab] = (0.5 * over[lab] + [0, 0, 127]).astype(np.uint8)
                for sel, col in ((found["final"], (0, 255, 0)), (~found["final"], (255, 0, 0))):
                    over[ty[sel], tx[sel]] = col
                crop = np.concatenate([b.rgb[y0:y0 + 2 * h, x0:x0 + 2 * h], over[y0:y0 + 2 * h, x0:x0 + 2 * h]], axis=1)
                cv2.imwrite(str(Path(args.crops) / f"{seed}.png"), crop[:, :, ::-1])
                for st, col in (("ordinary", (255, 0, 255)), ("deep_raw", (255, 255, 0))):
                    pts = _CAP.get(st, np.zeros((0, 2), int)).astype(int)
                    pts = pts[(pts[:, 0] < m) & (pts[:, 1] < n)]
                    over[pts[:, 0], pts[:, 1]] = col
                for sel, col in ((found["final"], (0, 255, 0)), (~found["final"], (255, 0, 0))):
                    over[ty[sel], tx[sel]] = col
                np.save(str(Path(args.crops) / f"{seed}_over.npy"), over)
                whole = np.concatenate([b.rgb, over], axis=1)
                whole = cv2.resize(whole, (whole.shape[1] // 2, whole.shape[0] // 2), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(Path(args.crops) / f"{seed}_whole.png"), whole[:, :, ::-1])
    print(f"\npooled, % of the truth's visible length found within 3 px: {' / '.join(stages)} / in the skin mask")
    for key in [*CLASSES, *(f"dE {lo}-{hi}" for lo, hi in DE_BINS)]:
        if (key, "final") not in tot or tot[(key, "final")][1] <= 0:
            continue
        w = tot[(key, "final")][1]
        print(f"  {CLASSES.get(key, key):>10} {w:6.0f} mm  " + " / ".join(f"{100 * tot[(key, st)][0] / w:5.1f}" for st in (*stages, "skin")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The improvement's class errors taken apart by what lies on the vessel in the follow-up (issue 6,
diagnosis only), from the per-point dumps of ``diag_improvement.py --dump DIR``.

For each pair, ``compare``'s counted centreline points (matched within 3 px to the generator's
point truth) that it reads cleared where the truth keeps the vessel (``A``) or persisting where
the truth clears it (``B``) are split by where they lie in the follow-up photo: under the
truth's staining, under its matting (each grown by 2 px), or elsewhere. Then the improvement is
recomputed (``compare``'s own chain lengths) with each kind of error set right, one at a time:
what fixing that part of the reading alone would give. ``oracle`` sets every counted point right
(what is left is the cover term: the baseline vessels ``compare`` does not count). Also the
class rates per vessel class, the signed error by skin type and scale, and two per-vessel
rules (each connected baseline centreline decided as one) simulated on the same points::

    PYTHONPATH=src .venv/bin/python benchmarks/diag_improvement.py --n 12 --dump /tmp/dump-dev
    PYTHONPATH=src .venv/bin/python benchmarks/diag_improvement_split.py /tmp/dump-dev

The series are generated again (same seeds and settings as the dump) for the truth's masks.
"""

from __future__ import annotations

import argparse
import glob
import statistics
from pathlib import Path

import cv2
import numpy as np

import veinscope.synth as synth
from veinscope.measure import chain_lengths


def _load(d):
    for f in sorted(glob.glob(str(Path(d) / "*_*.npz"))):
        z = dict(np.load(f))
        z["name"] = Path(f).stem
        yield z


def _imp(z, st):
    m, n = (int(v) for v in z["shape"])
    seg = np.where(st == 0, 0, np.where(st == 1, 1, 2))
    lens = chain_lengths(np.c_[z["ys"], z["xs"]], seg, 3, (m, n))
    base = lens[0] + lens[1]
    return None if base < 0.5 * float(z["ppm"]) else 100.0 * lens[1] / base


def _components(z):
    m, n = (int(v) for v in z["shape"])
    mask = np.zeros((m, n), np.uint8)
    mask[z["ys"], z["xs"]] = 1
    _, lab = cv2.connectedComponents(mask, connectivity=8)
    return lab[z["ys"], z["xs"]]


def _per_vessel(z, how):
    """Each connected baseline centreline's counted points (not stain or matting) decided as one:
    ``ratio``: visible where the vessel's median follow-up / baseline ΔE00 times the point's
    baseline ΔE00 reaches the follow-up threshold; ``majority``: all as most of its points."""
    st = z["st"].copy()
    comp = _components(z)
    nb = (z["st"] <= 1) & ~z["brown"]
    for v in np.unique(comp[nb]):
        sel = nb & (comp == v)
        if how == "ratio":
            r = float(np.median(z["de_f"][sel] / np.maximum(z["de_b"][sel], 1e-6)))
            st[sel] = np.where(r * z["de_b"][sel] >= z["thr_f"], 0, 1)
        else:
            st[sel] = 0 if (z["st"][sel] == 0).mean() >= 0.5 else 1
    return st


def _masks_at_points(z, cache, sessions, jpeg, size=(800, 600)):
    seed, k = (int(v) for v in z["name"].split("_"))
    if seed not in cache:
        cache.clear()
        cache[seed] = synth.generate_series(seed=seed, sessions=sessions, size=tuple(size), px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)), jpeg_quality=jpeg)
    ser = cache[seed]
    stain, matt = truth_masks_at(ser, k, z["ys"], z["xs"])
    return stain, matt, ser.photos[0].params["skin_type"]


def truth_masks_at(ser, k, ys, xs):
    """Whether the baseline's points ``(ys, xs)``, carried into follow-up ``k`` of the series
    ``ser``, lie in its staining truth and (off the staining) in its matting truth, each grown by
    2 px: two bool arrays."""
    f = ser.photos[k]
    h = f.homography @ np.linalg.inv(ser.photos[0].homography)
    p = np.c_[xs, ys, np.ones(len(ys))] @ h.T
    m, n = f.rgb.shape[:2]
    x = np.clip(np.round(p[:, 0] / p[:, 2]).astype(int), 0, n - 1)
    y = np.clip(np.round(p[:, 1] / p[:, 2]).astype(int), 0, m - 1)
    grow = np.ones((5, 5), np.uint8)
    stain = cv2.dilate(f.staining.astype(np.uint8), grow)[y, x] > 0 if f.staining is not None else np.zeros(len(x), bool)
    matt = cv2.dilate(f.matting.astype(np.uint8), grow)[y, x] > 0 if f.matting is not None else np.zeros(len(x), bool)
    return stain, matt & ~stain


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", help="a directory written by diag_improvement.py --dump")
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600), metavar=("W", "H"), help="the photo size the dump was made with (diag_improvement.py --size)")
    ap.add_argument("--jpeg-quality", default="92")
    args = ap.parse_args(argv)
    jpeg = None if str(args.jpeg_quality).lower() == "none" else int(args.jpeg_quality)
    fixes = ("B stain", "B matting", "B elsewhere", "A stain", "A matting", "A elsewhere")
    rows, cache = [], {}
    pts = dict.fromkeys(fixes, 0)
    n_pts = 0
    by_class = {c: [0, 0, 0] for c in (1, 2, 3, 4)}
    ratio = {c: ([], []) for c in (1, 2, 3, 4)}
    for z in _load(args.dump):
        st = z["st"]
        on = (z["dist"] <= 3.0) & (st <= 1)
        if not on.any() or np.isnan(z["imp"]) or np.isnan(z["truth"]):
            continue
        kept = z["tkept"] > 0
        a_err, b_err = on & (st == 1) & kept, on & (st == 0) & ~kept
        stain, matt, skin = _masks_at_points(z, cache, args.sessions, jpeg, args.size)
        rest = ~stain & ~matt
        parts = dict(zip(fixes, (b_err & stain, b_err & matt, b_err & rest, a_err & stain, a_err & matt, a_err & rest)))
        truth = float(z["truth"])
        row = {"name": z["name"], "skin": skin, "ppm": float(z["ppm"]), "as is": float(z["imp"]) - truth}
        for name, sel in parts.items():
            s2 = st.copy()
            s2[sel] = 1 if name.startswith("B") else 0
            row[name] = _imp(z, s2) - truth
            pts[name] += int(sel.sum())
        s2 = st.copy()
        s2[on] = np.where(kept[on], 0, 1)
        row["oracle (cover only)"] = _imp(z, s2) - truth
        for how in ("ratio", "majority"):
            v = _imp(z, _per_vessel(z, how))
            row[f"per vessel, {how}"] = None if v is None else v - truth
        n_pts += int(on.sum())
        for c in by_class:
            sel = on & (z["cls"] == c)
            by_class[c][0] += int(sel.sum())
            by_class[c][1] += int((a_err & sel).sum())
            by_class[c][2] += int((b_err & sel).sum())
            # compare's blood ΔE00 against the truth's (2-8): at baseline, and in the follow-up on
            # vessels the truth keeps, off stain and matting
            ok_b = sel & (z["tde_b"] >= 2) & (z["tde_b"] <= 8)
            ok_f = sel & kept & rest & ~z.get("brown0", z["brown"]) & (z["tde_f"] >= 2) & (z["tde_f"] <= 8)
            ratio[c][0].append(z["de_b"][ok_b] / z["tde_b"][ok_b])
            ratio[c][1].append(z["de_f"][ok_f] / z["tde_f"][ok_f])
        rows.append(row)
    print(f"{args.dump}: {len(rows)} pairs")
    for key in ("as is", *(f"{f} set right" for f in fixes), "oracle (cover only)", "per vessel, ratio", "per vessel, majority"):
        col = key.replace(" set right", "")
        e = [r[col] for r in rows if r[col] is not None]
        a = [abs(v) for v in e]
        share = f"  ({100.0 * pts[col] / max(n_pts, 1):.1f} % of counted points)" if col in pts else ""
        print(f"  {key:24s} median |err| {statistics.median(a):5.2f} ({sum(v <= 5 for v in a):2d}/{len(a)}), median err {statistics.median(e):+5.1f}, mean err {np.mean(e):+6.2f}{share}")
    for c, (n, a, b) in by_class.items():
        if n:
            rb, rf = (np.concatenate(v) for v in ratio[c])
            med = (lambda v: f"{np.median(v):.2f}" if v.size else "-")
            print(f"  class {c}: {n} counted points, A {100.0 * a / n:.1f} %, B {100.0 * b / n:.1f} %; "
                  f"compare / truth ΔE00 {med(rb)} at baseline, {med(rf)} in the follow-up (kept)")
    for s in range(1, 7):
        e = [r["as is"] for r in rows if r["skin"] == s]
        if e:
            print(f"  skin {s}: {len(e)} pairs, median err {statistics.median(e):+.1f}, median |err| {statistics.median(abs(v) for v in e):.1f}")
    for lo, hi in ((8.0, 10.0), (10.0, 11.5), (11.5, 13.0)):
        e = [r["as is"] for r in rows if lo <= r["ppm"] < hi]
        if e:
            print(f"  {lo:.1f}-{hi:.1f} px/mm: {len(e)} pairs, median err {statistics.median(e):+.1f}, median |err| {statistics.median(abs(v) for v in e):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

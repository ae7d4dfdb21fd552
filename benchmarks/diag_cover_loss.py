"""Where the truth's baseline vessel length goes between the engine's labels and the centreline
points ``compare`` counts (issue 6, diagnosis only; session 38).

For each generated series pair the truth's baseline points (the ones the change truth counts:
visible at the baseline and inside both photos, ``synth._counted_baseline_vessels``) are put,
by their length share, in the first of these steps that loses them:

* ``labels``: no baseline label pixel within 3 px (the engine missed the vessel);
* ``skel``: within 3 px of the labels, but of no point of the labels' skeleton (a wide label's
  skeleton off the truth's centreline, or a label without a skeleton there);
* ``skin``: the skeleton is there, but not in the baseline's skin mask (``skel & a_b.skin``);
* ``frame``: the centreline points within 3 px are all not compared, outside the follow-up
  photo's frame carried over (``valid_f``);
* ``card``: ... not compared, on either photo's card or its 4 mm margin (the registration's);
* ``overlap``: ... not compared, outside the registration's overlap otherwise (its working
  resolution's 7 x 7 erosion, the follow-up's skin mask);
* ``np``: compared, but not perceptible at baseline (status 3);
* ``counted``: compared and counted (status 0 or 1).

The truth's ``inside`` is the leg and the photo's frame without the card (the generator's
alpha), so ``frame`` is left out by the truth too only where its point is outside the
follow-up photo; every step here holds truth points, i.e. points the truth counts.

Also the truth's improvement on each step's points (the share of its length the truth clears):
what counting that part would move. ``--crops DIR`` writes, per pair, crops around the longest
lost runs of each step (truth points drawn: green counted, red lost at this step).
Same photos and ``compare`` call as ``bench_compare.py --source series``::

    PYTHONPATH=src .venv/bin/python benchmarks/diag_cover_loss.py --n 6 --size 2400 1800
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))

import veinscope.compare as C  # noqa: E402
import veinscope.register as R  # noqa: E402
import veinscope.synth as synth  # noqa: E402

_CAP: dict = {}
STEPS = ("labels", "skel", "skin", "frame", "card", "overlap", "np", "counted")


def _wrap():
    changes, fading, register = synth._changes, C._fading, R.register

    def cap_changes(plan, records, photos, k):
        _CAP["plan"], _CAP["records"] = plan, records
        return changes(plan, records, photos, k)

    def cap_fading(a_b, mb, mf, cmp_area, *a, **kw):
        _CAP["a_b"], _CAP["cmp_area"] = a_b, cmp_area
        _CAP["fad"] = fading(a_b, mb, mf, cmp_area, *a, **kw)
        return _CAP["fad"]

    def cap_register(b_rgb, f_rgb, **kw):
        reg = register(b_rgb, f_rgb, **kw)
        cards = kw.get("cards")
        if cards is None:  # the cards register looked for itself
            cards = (R._detect_card(b_rgb), R._detect_card(f_rgb))
        _CAP["reg"], _CAP["cards"], _CAP["f_shape"] = reg, cards, f_rgb.shape[:2]
        return reg

    synth._changes, C._fading, R.register = cap_changes, cap_fading, cap_register


def _truth_points(plan, rec0, reck):
    rows = []
    for sid, a, b, share, base in synth._counted_baseline_vessels(plan, rec0, reck):
        for i in np.flatnonzero(base):
            de0 = a.get("delta_e")
            rows.append((a["pts_photo"][i, 0], a["pts_photo"][i, 1], share[i], bool(b["visible"][i]), a["code"][i], sid,
                         np.nan if de0 is None else de0[i]))
    return np.array(rows, float).reshape(-1, 7)


def _near(mask: np.ndarray, yx: np.ndarray, r: float = 3.0) -> np.ndarray:
    d = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    iy = np.clip(np.round(yx[:, 0]).astype(int), 0, mask.shape[0] - 1)
    ix = np.clip(np.round(yx[:, 1]).astype(int), 0, mask.shape[1] - 1)
    return d[iy, ix] <= r


def _card_masks(shape_b):
    """Both photos' cards with the registration's 4 mm margin, on the baseline's grid."""
    reg = _CAP["reg"]
    out = np.zeros(shape_b, bool)
    cb, cf = _CAP["cards"]
    if cb is not None and getattr(cb, "homography", None) is not None:
        out |= cb.card_mask(shape_b, margin_mm=4.0)
    if cf is not None and getattr(cf, "homography", None) is not None:
        fm = cf.card_mask(_CAP["f_shape"], margin_mm=4.0).astype(np.uint8)
        out |= reg.warp(fm, interpolation="nearest", fill=0) > 0
    return out


def pair(ser, k, opts=None, b_opts=None, c_opts=None, crops=None, tag=""):
    from bench_compare import compare_pair

    b = ser.photos[0]
    ppm = float(b.px_per_mm)
    c = compare_pair(b.rgb, ser.photos[k].rgb, ppm, opts, b_opts, c_opts)
    a_b, cmp_area, fad, reg = _CAP["a_b"], _CAP["cmp_area"], _CAP["fad"], _CAP["reg"]
    T = _truth_points(_CAP["plan"], _CAP["records"][0], _CAP["records"][k])
    shape = a_b.labels.shape
    lab = a_b.labels > 0
    raw = C._skeleton(lab, max(fad["tile"], 256))
    skel = fad["skel"]
    ys, xs = fad["skel_yx"]
    st = fad["status"]
    yx = T[:, :2]
    near_lab = _near(lab, yx)
    near_raw = _near(raw, yx)
    near_sk = _near(skel, yx)
    tree = cKDTree(np.c_[ys, xs].astype(float))
    nb = tree.query_ball_point(yx, 3.0)
    any_cmp = np.array([bool(len(j)) and bool((st[j] != 2).any()) for j in nb])
    any_cnt = np.array([bool(len(j)) and bool((st[j] <= 1).any()) for j in nb])
    # the not-compared points' reasons, at the nearest centreline point
    _, jn = tree.query(yx)
    py, px = ys[jn], xs[jn]
    valid_f = reg.warp(np.ones(_CAP["f_shape"], np.uint8), interpolation="nearest", fill=0) > 0
    cards = _card_masks(shape)
    step = np.full(len(T), 7)
    step[~any_cnt] = 6
    nc = ~any_cmp
    step[nc & ~cards[py, px]] = 5
    step[nc & cards[py, px]] = 4
    step[nc & ~valid_f[py, px]] = 3
    step[~near_sk] = 2
    step[~near_raw] = 1
    step[~near_lab] = 0
    w, tk = T[:, 2], T[:, 3] > 0
    out = {"imp": c.improvement_pct, "truth": ser.changes[k - 1]["improvement_pct"]["total"], "base": float(w.sum())}
    for i, s in enumerate(STEPS):
        sel = step == i
        out[s] = float(w[sel].sum())
        out[s + "_clr"] = float(w[sel & ~tk].sum())
        for c_ in (1, 2, 3, 4):
            out[f"{s}_{c_}"] = float(w[sel & (T[:, 4] == c_)].sum())
    # the skeleton step taken apart: the truth point within half the label's width (+3 px) of
    # the skeleton (an offset centreline of the same wide label) or farther (a vessel under or
    # beside a wider label whose skeleton runs elsewhere: crossings, merged labels)
    dsk = cv2.distanceTransform((~raw).astype(np.uint8), cv2.DIST_L2, 5)
    iy = np.clip(np.round(yx[:, 0]).astype(int), 0, shape[0] - 1)
    ix = np.clip(np.round(yx[:, 1]).astype(int), 0, shape[1] - 1)
    dia = a_b.diameter_px[iy, ix]
    sk1 = step == 1
    off = sk1 & (dsk[iy, ix] <= 0.5 * dia + 3.0)
    out["skel_off"], out["skel_far"] = float(w[off].sum()), float(w[sk1 & ~off].sum())
    out["skel_off_clr"], out["skel_far_clr"] = float(w[off & ~tk].sum()), float(w[sk1 & ~off & ~tk].sum())
    # compare's reading of each counted truth point: its nearest counted centreline point
    # within 3 px, 0 visible, 1 cleared (-1 not counted)
    cnt_i = np.flatnonzero(st <= 1)
    cread = np.full(len(T), -1)
    if cnt_i.size:
        dd, jj = cKDTree(np.c_[ys[cnt_i], xs[cnt_i]].astype(float)).query(yx)
        cread = np.where(dd <= 3.0, st[cnt_i[jj]], -1)
    out["T"], out["step"], out["cread"] = T, step, cread
    # overlap band: distance of the not-compared (overlap) points to the compared area's edge
    if crops is not None:
        _crops(b.rgb, T, step, cmp_area, a_b, skel, crops, tag, ppm)
    return out


def _crops(rgb, T, step, cmp_area, a_b, skel, out_dir, tag, ppm, half=120):
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    m, n = rgb.shape[:2]
    for i in (1, 2, 4, 5):
        sel = np.flatnonzero(step == i)
        if sel.size < 5:
            continue
        # the densest place of this step's points
        yx = T[sel, :2]
        tree = cKDTree(yx)
        cnt = np.array([len(v) for v in tree.query_ball_point(yx, half * 0.7)])
        cy, cx = np.round(yx[int(cnt.argmax())]).astype(int)
        y0, x0 = max(0, cy - half), max(0, cx - half)
        y1, x1 = min(m, cy + half), min(n, cx + half)
        img = cv2.cvtColor(rgb[y0:y1, x0:x1].copy(), cv2.COLOR_RGB2BGR)
        ov = img.copy()
        ov[a_b.labels[y0:y1, x0:x1] > 0] = (255, 160, 0)
        img = cv2.addWeighted(img, 0.75, ov, 0.25, 0)
        img[skel[y0:y1, x0:x1]] = (255, 255, 0)
        edge = cmp_area[y0:y1, x0:x1].astype(np.uint8)
        cnts, _ = cv2.findContours(edge, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, cnts, -1, (255, 0, 255), 1)
        for (py, px), s in zip(T[:, :2], step):
            if y0 <= py < y1 and x0 <= px < x1:
                img[int(py) - y0, int(px) - x0] = (0, 255, 0) if s == 7 else ((0, 0, 255) if s == i else (0, 200, 255))
        img = cv2.resize(img, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(Path(out_dir) / f"{tag}_{STEPS[i]}_{cy}_{cx}.png"), img)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--first-only", action="store_true", help="only each series' first follow-up")
    ap.add_argument("--size", type=int, nargs=2, default=(2400, 1800), metavar=("W", "H"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--set-baseline", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--compare-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--crops", default=None, metavar="DIR")
    ap.add_argument("--save", default=None, metavar="NPZ", help="each pair's truth points and step (npz)")
    args = ap.parse_args(argv)
    from bench_synth_accuracy import analyze_options

    import veinscope

    opts, b_opts = analyze_options(args.set) or None, analyze_options(args.set_baseline) or None
    c_opts = analyze_options(args.compare_set)
    veinscope.warmup()
    _wrap()
    rows, saved = [], {}
    print(f"{'case':>7} {'imp':>6} {'truth':>6} {'base':>6} | " + " ".join(f"{s:>7}" for s in STEPS) + "   (% of the truth's baseline length)")
    for i in range(args.n):
        seed = args.seed0 + i
        ser = synth.generate_series(seed=seed, sessions=args.sessions, size=tuple(args.size), px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)))
        for k in range(1, 2 if args.first_only else len(ser.photos)):
            o = pair(ser, k, opts, b_opts, c_opts, args.crops, f"{seed}_{k}")
            rows.append(o)
            saved[f"{seed}_{k}_T"], saved[f"{seed}_{k}_step"], saved[f"{seed}_{k}_cread"] = o["T"], o["step"], o["cread"]
            f = (lambda v: "     -" if v is None else f"{v:6.1f}")
            print(f"{seed}/{k:<3d} {f(o['imp'])} {f(o['truth'])} {o['base']:6.0f} | " + " ".join(f"{100 * o[s] / max(o['base'], 1e-9):7.1f}" for s in STEPS), flush=True)
    tot = sum(o["base"] for o in rows)
    print(f"{'pooled':>7} {'':>6} {'':>6} {tot:6.0f} | " + " ".join(f"{100 * sum(o[s] for o in rows) / tot:7.1f}" for s in STEPS))
    print("the truth's cleared share of each step's length (%):")
    print(" " * 36 + " ".join(f"{100 * sum(o[s + '_clr'] for o in rows) / max(sum(o[s] for o in rows), 1e-9):7.1f}" for s in STEPS))
    for c_, name in ((1, "red"), (2, "blue"), (3, "reticular"), (4, "over 3 mm")):
        tc = sum(sum(o[f"{s}_{c_}"] for s in STEPS) for o in rows)
        print(f"{name:>14} {tc:8.0f} mm     | " + " ".join(f"{100 * sum(o[f'{s}_{c_}'] for o in rows) / max(tc, 1e-9):7.1f}" for s in STEPS))
    for s_ in ("skel_off", "skel_far"):
        print(f"{s_}: {100 * sum(o[s_] for o in rows) / tot:.1f} % of the length, truth clears {100 * sum(o[s_ + '_clr'] for o in rows) / max(sum(o[s_] for o in rows), 1e-9):.1f} %")
    if args.save:
        np.savez_compressed(args.save, **saved)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

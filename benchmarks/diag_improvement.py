"""Where the comparison's improvement error comes from, pair by pair (issue 6, diagnosis only).

For each generated series pair the error ``improvement_pct - truth`` is split in two against the
generator's point truth (the baseline's visible centreline points that both photos show, each
with its arc length and whether it is still visible in the follow-up):

* ``cover``: the truth's improvement over the part of the baseline that ``compare`` counts
  (its centreline points matched within 3 px to a truth point, "oracle") minus the truth's
  improvement over the whole baseline: what the baseline vessels the engine did not find, or
  that ``compare`` found not perceptible at baseline, would have changed;
* ``class``: ``compare``'s improvement minus that oracle: reading its own points persisting or
  cleared differently from the truth.

``cover + class = error`` (up to the few compare points that match no truth point). Also the
share of the truth's baseline length that ``compare`` counts, finds not perceptible at
baseline, or does not have on its centrelines, and the share of each that stays visible
(``rest`` = not counted; ``np`` and ``miss`` its two parts), and the truth's improvement over
the counted part and over the counted and not-perceptible parts together (``t cnt``, ``t c+np``:
what counting the not-perceptible part, read as the truth reads it, would give).

The decision on the counted part is taken apart too (``A``: counted length ``compare`` reads
cleared where the truth keeps it; ``B``: read persisting where the truth clears it, both in % of
the counted length; ``B edge``, ``B cross``: the share of ``B`` within 1 mm of the compared
area's edge, where the registration and the background estimate are least sure, and within 1 mm
of another baseline vessel the truth keeps, where the strongest pixel within the tolerance may be
that vessel's).

``--count-missed CODES`` runs ``compare`` a second time with the truth's baseline points that
``compare`` does not have on its centrelines (``miss``) of those classes (1 red, 2 blue
telangiectasia, 3 reticular, 4 over 3 mm) added to the baseline's centrelines, read by
``compare``'s own measurement in both photos (column ``+miss``): what the engine's baseline
recall of those classes would give, with today's reading and decision (session 23).

``--dump DIR`` writes each pair's centreline points to ``DIR/SEED_K.npz``: their status, class,
blood ΔE00 in both photos and thresholds, whether they were read as stain or matting before and
after the test that the vessel still stands out (``brown0``, ``brown``), and the matched truth
point (kept or not, class, the truth's own ΔE00 and threshold in both photos, distance): the
input of ``diag_improvement_split.py``, which takes the class errors apart by what lies on the
vessel in the follow-up (session 32).

Reads the generator's internal record of each vessel point (``veinscope.synth._changes`` is
wrapped to keep it) and ``compare``'s centreline status (``veinscope.compare._fading`` wrapped):
a diagnostic, not an API. Same photos and ``compare`` call as ``bench_compare.py --source
series``::

    PYTHONPATH=src .venv/bin/python benchmarks/diag_improvement.py --n 22 --seed0 312
    PYTHONPATH=src .venv/bin/python benchmarks/diag_improvement.py --n 22 --seed0 312 --jpeg-quality none
    PYTHONPATH=src .venv/bin/python benchmarks/diag_improvement.py --n 22 --seed0 312 --count-missed 1 2 3 4
    PYTHONPATH=src .venv/bin/python benchmarks/diag_improvement.py --n 22 --seed0 312 --set-baseline level_rates=0.04,0.01
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import cv2
import numpy as np
from scipy.spatial import cKDTree

import veinscope.compare as C
import veinscope.synth as synth
from veinscope.measure import chain_lengths

_CAP: dict = {}


def _wrap():
    changes, fading = synth._changes, C._fading

    def cap_changes(plan, records, photos, k):
        _CAP["plan"], _CAP["records"] = plan, records
        return changes(plan, records, photos, k)

    skeleton = C._skeleton

    def cap_fading(a_b, *a, **kw):
        _CAP["cmp_area"] = a[2]
        _CAP["labels"] = a_b.labels
        extra = _CAP.get("extra")
        if extra is None:
            _CAP["fad"] = fading(a_b, *a, **kw)
            return _CAP["fad"]
        # the truth's missed points put on the baseline's centrelines with their class and
        # width, for this call only
        ey, ex, code, diam = extra
        labels, diameter = a_b.labels.copy(), a_b.diameter_px.copy()
        free = labels[ey, ex] == 0
        labels[ey[free], ex[free]] = code[free]
        diameter[ey[free], ex[free]] = diam[free]

        def with_extra(vessel, tile):
            sk = skeleton(vessel, tile)
            sk[ey, ex] = True
            return sk

        C._skeleton = with_extra
        try:
            _CAP["fad"] = fading(dataclasses.replace(a_b, labels=labels, diameter_px=diameter), *a, **kw)
        finally:
            C._skeleton = skeleton
        return _CAP["fad"]

    synth._changes, C._fading = cap_changes, cap_fading


def _truth_points(plan, rec0, reck):
    rows = []
    # the points the generator's truth counts (synth._changes), so that the split stays its
    for _sid, a, b, share, base in synth._counted_baseline_vessels(plan, rec0, reck):
        for i in np.flatnonzero(base):
            de0 = a.get("delta_e")
            de1 = b.get("delta_e")
            rows.append((a["pts_photo"][i, 0], a["pts_photo"][i, 1], share[i], bool(b["visible"][i]), a["code"][i], _sid,
                         np.nan if de0 is None else de0[i], np.nan if de1 is None else de1[i],
                         np.nan if a.get("thr") is None else a["thr"][i], np.nan if b.get("thr") is None else b["thr"][i]))
    return np.array(rows, float).reshape(-1, 10)


# a class's typical visible diameter (mm) for the missed points put on the centrelines (the
# generator's record keeps no width): the middle of each class's range
_CLASS_DIAMETER_MM = {1: 0.2, 2: 0.4, 3: 1.5, 4: 3.5}


def pair(ser, k, count_missed=(), opts=None, b_opts=None, c_opts=None, dump=None):
    b = ser.photos[0]
    ppm = float(b.px_per_mm)
    from bench_compare import compare_pair

    c = compare_pair(b.rgb, ser.photos[k].rgb, ppm, opts, b_opts, c_opts)
    fad = _CAP["fad"]
    ys, xs = fad["skel_yx"]
    st = fad["status"]  # 0 visible, 1 cleared, 2 not compared, 3 not perceptible at baseline
    T = _truth_points(_CAP["plan"], _CAP["records"][0], _CAP["records"][k])
    truth = ser.changes[k - 1]["improvement_pct"]["total"]
    out = {"imp": c.improvement_pct, "truth": truth, "base_t": float(T[:, 2].sum()) if len(T) else 0.0}
    if len(T) == 0 or len(ys) == 0:
        out.update(oracle=None, counted=0.0, st3=0.0, kept_counted=None, kept_rest=None, kept_np=None, kept_miss=None, t_cnt=None, t_cnp=None,
                   a=None, b=None, b_edge=None, b_cross=None, with_miss=None)
        return out
    m, n = b.rgb.shape[:2]
    d, j = cKDTree(T[:, :2]).query(np.c_[ys, xs].astype(float))
    on = (d <= 3.0) & (st <= 1)
    kept = T[j, 3] > 0
    seg = np.where(on, kept.astype(int), 2)
    lens = chain_lengths(np.c_[ys, xs], seg, 3, (m, n))
    out["oracle"] = 100.0 * (1.0 - lens[1] / (lens[0] + lens[1])) if lens[0] + lens[1] > 0 else None
    dc, jc = cKDTree(np.c_[ys, xs].astype(float)).query(T[:, :2])
    near = dc <= 3.0
    counted = near & (st[jc] <= 1)
    st3 = near & (st[jc] == 3)
    w, tk = T[:, 2], T[:, 3] > 0
    out["counted"] = 100.0 * w[counted].sum() / w.sum()
    out["st3"] = 100.0 * w[st3].sum() / w.sum()
    out["kept_counted"] = 100.0 * w[counted & tk].sum() / max(w[counted].sum(), 1e-9)
    out["kept_rest"] = 100.0 * w[~counted & tk].sum() / max(w[~counted].sum(), 1e-9)
    out["kept_np"] = 100.0 * w[st3 & tk].sum() / max(w[st3].sum(), 1e-9) if w[st3].sum() > 0 else None
    miss = ~counted & ~st3
    out["kept_miss"] = 100.0 * w[miss & tk].sum() / max(w[miss].sum(), 1e-9) if w[miss].sum() > 0 else None
    cn = counted | st3
    out["t_cnt"] = 100.0 * (1 - w[counted & tk].sum() / max(w[counted].sum(), 1e-9))
    out["t_cnp"] = 100.0 * (1 - w[cn & tk].sum() / max(w[cn].sum(), 1e-9))
    # the decision on the counted points, taken apart (point counts: compare's points are about
    # one pixel apart along a centreline)
    a_err = on & (st == 1) & kept
    b_err = on & (st == 0) & ~kept
    n_on = max(int(on.sum()), 1)
    out["a"] = 100.0 * a_err.sum() / n_on
    out["b"] = 100.0 * b_err.sum() / n_on
    ppm = float(b.px_per_mm)
    edge_mm = cv2.distanceTransform(np.pad(_CAP["cmp_area"], 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1][ys, xs] / ppm
    other_mm = np.full(len(ys), np.inf)
    tkp = T[T[:, 3] > 0]
    if len(tkp):
        dd, jj = cKDTree(tkp[:, :2]).query(np.c_[ys, xs].astype(float), k=min(8, len(tkp)))
        dd, jj = dd.reshape(len(ys), -1), jj.reshape(len(ys), -1)
        other_mm = np.where(tkp[jj, 5] != T[j, 5][:, None], dd, np.inf).min(axis=1) / ppm
    nb = max(int(b_err.sum()), 1)
    out["b_edge"] = 100.0 * (b_err & (edge_mm < 1.0)).sum() / nb if b_err.any() else None
    out["b_cross"] = 100.0 * (b_err & (other_mm < 1.0)).sum() / nb if b_err.any() else None
    out["with_miss"] = None
    if dump is not None:
        de_b, de_f, thr_b, thr_f = fad["de_bf"]
        np.savez_compressed(dump, ys=ys, xs=xs, st=st, cls=_CAP["labels"][ys, xs], de_b=de_b, de_f=de_f, thr_b=thr_b, thr_f=thr_f,
                            brown=fad["brown"], brown0=fad["brown0"], dist=d, tkept=T[j, 3], tcode=T[j, 4], tsid=T[j, 5], tde_b=T[j, 6], tde_f=T[j, 7], tthr_b=T[j, 8], tthr_f=T[j, 9], T=T, imp=np.nan if c.improvement_pct is None else c.improvement_pct,
                            truth=np.nan if truth is None else truth, ppm=ppm, skin=int(b.params.get("skin_type", 0)), shape=np.array([m, n]),
                            edge_mm=edge_mm, other_mm=other_mm,
                            skin_de_b=np.asarray(fad["tde_bf"][0], float) if fad["tde_bf"][0] is not None else np.zeros(0),
                            skin_de_f=np.asarray(fad["tde_bf"][1], float) if fad["tde_bf"][1] is not None else np.zeros(0))
    if count_missed:
        sel = miss & np.isin(T[:, 4].astype(int), list(count_missed))
        ey, ex = np.round(T[sel, 0]).astype(np.int64), np.round(T[sel, 1]).astype(np.int64)
        code = T[sel, 4].astype(np.uint8)
        inside = (ey >= 0) & (ey < m) & (ex >= 0) & (ex < n)
        diam = np.array([_CLASS_DIAMETER_MM[int(c_)] for c_ in code], np.float32) * np.float32(ppm)
        _CAP["extra"] = (ey[inside], ex[inside], code[inside], diam[inside])
        try:
            out["with_miss"] = compare_pair(b.rgb, ser.photos[k].rgb, ppm, opts, b_opts, c_opts).improvement_pct
        finally:
            _CAP["extra"] = None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600), metavar=("W", "H"), help="photo size (default 800 600, bench_compare.py's)")
    ap.add_argument("--jpeg-quality", default="92", help="the generator's JPEG round trip: 1-100, or none (default 92, as the benchmark)")
    ap.add_argument("--count-missed", type=int, nargs="*", default=(), choices=(1, 2, 3, 4), metavar="CODE",
                    help="also run compare with the truth's missed baseline points of these classes on its centrelines (1-4)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an analyze option for both photos (as bench_compare.py's)")
    ap.add_argument("--set-baseline", action="append", default=[], metavar="KEY=VALUE",
                    help="an analyze option for the baseline only (as bench_compare.py's)")
    ap.add_argument("--compare-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a compare keyword (as bench_compare.py's)")
    ap.add_argument("--dump", default=None, metavar="DIR", help="write each pair's centreline points and their matched truth to DIR/SEED_K.npz")
    args = ap.parse_args(argv)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_synth_accuracy import analyze_options

    opts, b_opts = analyze_options(args.set) or None, analyze_options(args.set_baseline) or None
    c_opts = analyze_options(args.compare_set)
    jpeg = None if str(args.jpeg_quality).lower() == "none" else int(args.jpeg_quality)
    import veinscope

    veinscope.warmup()
    _wrap()
    f = (lambda v: "     -" if v is None else f"{v:6.1f}")
    print(f"{'case':>7} {'imp':>6} {'truth':>6} {'err':>6} | {'oracle':>6} {'cover':>6} {'class':>6} | {'base mm':>7} {'cnt %':>5} {'np %':>5} {'miss %':>6} | {'kept % cnt':>10} {'rest':>6} {'np':>6} {'miss':>6} | {'t cnt':>6} {'t c+np':>6} | {'A':>5} {'B':>5} {'edge':>5} {'cross':>5} | {'+miss':>6} {'err':>6}")
    rows = []
    for i in range(args.n):
        seed = args.seed0 + i
        ser = synth.generate_series(seed=seed, sessions=args.sessions, size=tuple(args.size), px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)), jpeg_quality=jpeg)
        for k in range(1, len(ser.photos)):
            dump = None
            if args.dump:
                Path(args.dump).mkdir(parents=True, exist_ok=True)
                dump = str(Path(args.dump) / f"{seed}_{k}.npz")
            o = pair(ser, k, tuple(args.count_missed), opts, b_opts, c_opts, dump)
            imp, tr, orc = o["imp"], o["truth"], o["oracle"]
            err = None if imp is None or tr is None else imp - tr
            cover = None if orc is None or tr is None else orc - tr
            cls = None if orc is None or imp is None else imp - orc
            wm = o.get("with_miss")
            err_m = None if wm is None or tr is None else wm - tr
            rows.append((err, cover, cls, err_m))
            miss = 100.0 - o["counted"] - o["st3"]
            print(f"{seed}/{k:<3} {f(imp)} {f(tr)} {f(err)} | {f(orc)} {f(cover)} {f(cls)} | {o['base_t']:7.1f} {o['counted']:5.1f} {o['st3']:5.1f} {miss:6.1f} | {f(o['kept_counted']):>10} {f(o['kept_rest'])} {f(o['kept_np'])} {f(o['kept_miss'])} | {f(o['t_cnt'])} {f(o['t_cnp'])} | {f(o['a'])[1:]} {f(o['b'])[1:]} {f(o['b_edge'])[1:]} {f(o['b_cross'])[1:]} | {f(wm)} {f(err_m)}", flush=True)
    full = [r for r in rows if None not in r[:3]]
    if full:
        print(f"\npairs {len(full)}: median error {statistics.median(r[0] for r in full):+.1f}, "
              f"median cover {statistics.median(r[1] for r in full):+.1f}, median class {statistics.median(r[2] for r in full):+.1f}; "
              f"cover < -5 in {sum(r[1] < -5 for r in full)}, class > +5 in {sum(r[2] > 5 for r in full)}")
        print(f"median |error| {statistics.median(abs(r[0]) for r in full):.2f} ({sum(abs(r[0]) <= 5 for r in full)}/{len(full)} within 5)")
        wm = [r[3] for r in full if r[3] is not None]
        if wm:
            print(f"with the missed points of classes {' '.join(map(str, args.count_missed))} counted: median |error| "
                  f"{statistics.median(abs(v) for v in wm):.2f} ({sum(abs(v) <= 5 for v in wm)}/{len(wm)} within 5), median error {statistics.median(wm):+.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

Reads the generator's internal record of each vessel point (``veinscope.synth._changes`` is
wrapped to keep it) and ``compare``'s centreline status (``veinscope.compare._fading`` wrapped):
a diagnostic, not an API. Same photos and ``compare`` call as ``bench_compare.py --source
series``::

    PYTHONPATH=src .venv/bin/python benchmarks/diag_improvement.py --n 22 --seed0 312
    PYTHONPATH=src .venv/bin/python benchmarks/diag_improvement.py --n 22 --seed0 312 --jpeg-quality none
"""

from __future__ import annotations

import argparse
import statistics

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

    def cap_fading(*a, **kw):
        _CAP["fad"] = fading(*a, **kw)
        return _CAP["fad"]

    synth._changes, C._fading = cap_changes, cap_fading


def _truth_points(plan, rec0, reck):
    rows = []
    # the points the generator's truth counts (synth._changes), so that the split stays its
    for _sid, a, b, share, base in synth._counted_baseline_vessels(plan, rec0, reck):
        for i in np.flatnonzero(base):
            rows.append((a["pts_photo"][i, 0], a["pts_photo"][i, 1], share[i], bool(b["visible"][i])))
    return np.array(rows, float).reshape(-1, 4)


def pair(ser, k):
    b = ser.photos[0]
    ppm = float(b.px_per_mm)
    c = C.compare(b.rgb, ser.photos[k].rgb, px_per_mm=ppm)
    fad = _CAP["fad"]
    ys, xs = fad["skel_yx"]
    st = fad["status"]  # 0 visible, 1 cleared, 2 not compared, 3 not perceptible at baseline
    T = _truth_points(_CAP["plan"], _CAP["records"][0], _CAP["records"][k])
    truth = ser.changes[k - 1]["improvement_pct"]["total"]
    out = {"imp": c.improvement_pct, "truth": truth, "base_t": float(T[:, 2].sum()) if len(T) else 0.0}
    if len(T) == 0 or len(ys) == 0:
        out.update(oracle=None, counted=0.0, st3=0.0, kept_counted=None, kept_rest=None, kept_np=None, kept_miss=None, t_cnt=None, t_cnp=None)
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
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--jpeg-quality", default="92", help="the generator's JPEG round trip: 1-100, or none (default 92, as the benchmark)")
    args = ap.parse_args(argv)
    jpeg = None if str(args.jpeg_quality).lower() == "none" else int(args.jpeg_quality)
    import veinscope

    veinscope.warmup()
    _wrap()
    f = (lambda v: "     -" if v is None else f"{v:6.1f}")
    print(f"{'case':>7} {'imp':>6} {'truth':>6} {'err':>6} | {'oracle':>6} {'cover':>6} {'class':>6} | {'base mm':>7} {'cnt %':>5} {'np %':>5} {'miss %':>6} | {'kept % cnt':>10} {'rest':>6} {'np':>6} {'miss':>6} | {'t cnt':>6} {'t c+np':>6}")
    rows = []
    for i in range(args.n):
        seed = args.seed0 + i
        ser = synth.generate_series(seed=seed, sessions=args.sessions, size=(800, 600), px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)), jpeg_quality=jpeg)
        for k in range(1, len(ser.photos)):
            o = pair(ser, k)
            imp, tr, orc = o["imp"], o["truth"], o["oracle"]
            err = None if imp is None or tr is None else imp - tr
            cover = None if orc is None or tr is None else orc - tr
            cls = None if orc is None or imp is None else imp - orc
            rows.append((err, cover, cls))
            miss = 100.0 - o["counted"] - o["st3"]
            print(f"{seed}/{k:<3} {f(imp)} {f(tr)} {f(err)} | {f(orc)} {f(cover)} {f(cls)} | {o['base_t']:7.1f} {o['counted']:5.1f} {o['st3']:5.1f} {miss:6.1f} | {f(o['kept_counted']):>10} {f(o['kept_rest'])} {f(o['kept_np'])} {f(o['kept_miss'])} | {f(o['t_cnt'])} {f(o['t_cnp'])}", flush=True)
    full = [r for r in rows if None not in r]
    if full:
        print(f"\npairs {len(full)}: median error {statistics.median(r[0] for r in full):+.1f}, "
              f"median cover {statistics.median(r[1] for r in full):+.1f}, median class {statistics.median(r[2] for r in full):+.1f}; "
              f"cover < -5 in {sum(r[1] < -5 for r in full)}, class > +5 in {sum(r[2] > 5 for r in full)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

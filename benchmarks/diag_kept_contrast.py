"""Why ``compare`` reads a kept vessel's follow-up colour difference at 0.66-0.85 of the truth's
(issue 6, diagnosis only; session 36).

For each generated series pair, ``compare``'s counted baseline centreline points are matched
(within 3 px) to the generator's point truth, and each point's blood ΔE00 is read again in both
photos in several ways, each against the truth's own ΔE00 of that point in that photo:

* ``as is``: ``compare``'s reading (the strongest pixel within one pixel, the selection's lift
  on plain skin taken off, averaged along the vessel over 0.5 mm, the maps' smoothing undone);
* ``no lift``: the same without the lift taken off;
* ``no along``: the same at the point alone (not averaged along the vessel);
* ``best tol``: the strongest pixel within the registration's tolerance (``tol_px``) instead of
  one pixel, its own lift on plain skin taken off;
* ``true place``: (follow-up only) the follow-up read at the place the generator puts the
  baseline point in the follow-up photo, carried back by ``compare``'s own alignment: the
  strongest pixel within one pixel of *that* place (what a perfect registration would read);
* ``footprint``: (follow-up only) the baseline's reading times the share of its blood contrast
  the follow-up keeps on the baseline vessel's footprint: each photo's blood high-pass (against
  the skin within 0.6 mm) summed over the baseline's vessel pixels grown by the tolerance,
  within 0.5 mm of the point (a sum across a line does not change with blur or a shift
  within the footprint, a peak does);
* ``chroma fp``: the colour from the footprint, the strength from the peak's luma: each
  photo's haemoglobin-, venous- and melanin-like maps against the skin within 0.6 mm, summed over
  the baseline's vessel pixels grown by 2 px within 0.5 mm (a sum keeps what a JPEG's 4:2:0
  chroma averaging spreads), scaled so that its luma (JFIF weights at the skin's colour) is the
  peak pixel's (luma is stored at full resolution); fine vessels only (under 1 mm);
  ``chroma fp2`` the same with the luma and the sums averaged along the vessel first;
* ``resid`` is the distance (px) between that place and the point: the registration's residual.

The ratios are printed per photo and per band of the truth's ΔE00, on the points the truth
keeps, off the truth's staining and matting (grown by 2 px), so that a level effect (a constant
taken off a faint vessel's reading weighs more) and a follow-up effect (the registration, the
warp, the light matching) can be told apart: at the same truth ΔE00, a follow-up effect shows as a
lower follow-up ratio than the baseline's::

    PYTHONPATH=src .venv/bin/python benchmarks/diag_kept_contrast.py --n 12 --seed0 300 --save /tmp/kc.npz
    PYTHONPATH=src .venv/bin/python benchmarks/diag_kept_contrast.py --n 12 --seed0 300 --jpeg-quality none
    PYTHONPATH=src .venv/bin/python benchmarks/diag_kept_contrast.py --n 12 --seed0 300 --jpeg-444
        # the generator's JPEG at quality 92 without chroma subsampling: the two JPEG losses apart

Last, the share of the kept points (off stain and matting) each reading calls visible at
``compare``'s follow-up threshold, and of the truth's cleared points.

Reads ``compare``'s internals (``_fading``'s arguments and ``register``'s result) by wrapping
them: a diagnostic, not an API.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))

import diag_improvement as DI  # noqa: E402
import diag_improvement_split as DS  # noqa: E402

import veinscope.compare as C  # noqa: E402
import veinscope.register as R  # noqa: E402
import veinscope.synth as synth  # noqa: E402
from veinscope.chromophores import CHROMOPHORE_DIRECTIONS  # noqa: E402

_X: dict = {}


def _wrap():
    fading, register = C._fading, R.register

    def cap_fading(a_b, mb, mf, cmp_area, texture, windows, f_vessel, near_b, **kw):
        _X.update(a_b=a_b, mb=mb, mf=mf, cmp_area=cmp_area, kw=kw)
        return fading(a_b, mb, mf, cmp_area, texture, windows, f_vessel, near_b, **kw)

    def cap_register(*a, **kw):
        _X["reg"] = register(*a, **kw)
        return _X["reg"]

    C._fading, R.register = cap_fading, cap_register


def _best_within(blood, ys, xs, r):
    """(y, x) of the strongest ``blood`` pixel within a disc of radius ``r`` of each point."""
    m, n = blood.shape
    by, bx = ys.copy(), xs.copy()
    best = np.full(len(ys), -np.inf)
    rr = int(math.ceil(r))
    for dy in range(-rr, rr + 1):
        for dx in range(-rr, rr + 1):
            if dy * dy + dx * dx > r * r + 1e-9:
                continue
            y = np.clip(ys + dy, 0, m - 1)
            x = np.clip(xs + dx, 0, n - 1)
            v = blood[y, x]
            better = v > best
            best = np.where(better, v, best)
            by, bx = np.where(better, y, by), np.where(better, x, bx)
    return by, bx


def readings(ser, k):
    """Per counted point: the truth's ΔE00 and kept flag, and compare's ΔE00 read the ways listed
    in the module docstring, in both photos."""
    fad = DI._CAP["fad"]
    a_b, mb, mf, kw = _X["a_b"], _X["mb"], _X["mf"], _X["kw"]
    ppm, tol_px, bg_od = kw["ppm"], kw["tol_px"], kw["bg_od"]
    ys, xs = fad["skel_yx"]
    st = fad["status"]
    T = DI._truth_points(DI._CAP["plan"], DI._CAP["records"][0], DI._CAP["records"][k])
    if len(T) == 0 or len(ys) == 0:
        return None
    d, j = cKDTree(T[:, :2]).query(np.c_[ys, xs].astype(float))
    on = (d <= 3.0) & (st <= 1)
    m, n = a_b.labels.shape
    # the truth's place of each baseline point in the aligned follow-up: through the generator's
    # homographies to the follow-up photo, then back by compare's alignment
    b, f = ser.photos[0], ser.photos[k]
    h = f.homography @ np.linalg.inv(b.homography)
    p = np.c_[xs, ys, np.ones(len(ys))] @ h.T
    fxy = p[:, :2] / p[:, 2:3]
    reg = _X["reg"]
    # compare's alignment maps baseline -> follow-up (followup_xy); invert it locally by a
    # few fixed-point steps: the baseline pixel whose follow-up place is the truth's
    q = np.c_[xs, ys].astype(float)
    for _ in range(6):
        e = reg.followup_xy(q) - fxy
        q = q - e
    ty, tx = q[:, 1], q[:, 0]
    resid = np.hypot(ty - ys, tx - xs)
    along = C._Along(ys, xs, max(1, int(round(0.5 * ppm))))
    gain = C._smoothing_gain(a_b.diameter_px[ys, xs], along, psf_px=C._psf_of(a_b))
    d_hb, d_ven = CHROMOPHORE_DIRECTIONS["haemoglobin"], CHROMOPHORE_DIRECTIONS["venous"]
    bg = bg_od(ys, xs)
    # plain skin samples for the lift (the texture: skin off the baseline's vessels)
    tex = a_b.skin & ~cv2.dilate((a_b.labels > 0).astype(np.uint8), C._disc(3)).astype(bool) & _X["cmp_area"]
    sy, sx = np.nonzero(tex)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(sy), size=min(4000, len(sy)), replace=False)
    sy, sx = sy[pick], sx[pick]
    out = {}
    # the footprint: the baseline's vessel pixels grown by the tolerance; each photo's blood
    # high-pass (against the skin within 0.6 mm) summed over it within 0.5 mm of the point
    sig_loc = max(2.0, 0.6 * ppm)
    foot = cv2.dilate((a_b.labels > 0).astype(np.uint8), C._disc(int(math.ceil(tol_px)))).astype(np.float32)
    r_al = max(1, int(round(0.5 * ppm)))
    ker = C._disc(r_al).astype(np.float32)
    sums = {}
    foot2 = cv2.dilate((a_b.labels > 0).astype(np.uint8), C._disc(2)).astype(np.float32)
    d_mel = CHROMOPHORE_DIRECTIONS["melanin"]
    # JFIF luma weights on the encoded values, as OD weights at the skin's colour: d(Y') /
    # d(OD_c) is proportional to Y_c x lin_c^(1/2.4)
    wl = np.array([0.299, 0.587, 0.114])[None, :] * np.exp(-bg / 2.4)
    fine = a_b.diameter_px[ys, xs] < 1.0 * ppm
    for ph, maps in (("b", mb), ("f", mf)):
        mp = maps.box((0, m, 0, n))
        hb = cv2.GaussianBlur(mp["haemoglobin"], (0, 0), 1.0)
        ven = cv2.GaussianBlur(mp["venous"], (0, 0), 1.0)
        blood = hb + ven
        hp = blood - cv2.GaussianBlur(blood, (0, 0), sig_loc)
        sums[ph] = cv2.filter2D(hp * foot, -1, ker, borderType=cv2.BORDER_CONSTANT)[ys, xs].astype(np.float64)

        def de_at(hb_v, ven_v, alg=True):
            if alg:
                hb_v, ven_v = along(hb_v), along(ven_v)
            hb_v, ven_v = hb_v * gain, ven_v * gain
            d_od = np.maximum(hb_v, 0)[:, None] * d_hb[None, :] + np.maximum(ven_v, 0)[:, None] * d_ven[None, :]
            return C.delta_e_of_od(bg, d_od)

        def lift(r):
            qy, qx = _best_within(blood, sy, sx, r)
            return float(np.median(hb[qy, qx] - hb[sy, sx])), float(np.median(ven[qy, qx] - ven[sy, sx]))

        l1 = lift(1.0)
        # chroma from the footprint, strength from the luma at the peak: the high-passed maps
        # summed over the baseline's vessel pixels grown by 2 px within 0.5 mm give the
        # vessel's colour (a sum is kept by 4:2:0's chroma averaging); scaled so that its luma
        # is the peak pixel's (luma is at full resolution)
        mel = cv2.GaussianBlur(mp["melanin"], (0, 0), 1.0)
        hps = [x - cv2.GaussianBlur(x, (0, 0), sig_loc) for x in (hb, ven, mel)]
        S = [cv2.filter2D(x * foot2, -1, ker, borderType=cv2.BORDER_CONSTANT)[ys, xs].astype(np.float64) for x in hps]
        by, bx = _best_within(blood, ys, xs, 1.0)
        # the peak's luma: its blood as compare reads it (against the maps' background, the
        # selection's lift off) and its melanin against the skin within 0.6 mm
        P = [hb[by, bx] - l1[0], ven[by, bx] - l1[1], hps[2][by, bx]]
        lum_of = (lambda a, b_, c: (wl * (a[:, None] * d_hb[None, :] + b_[:, None] * d_ven[None, :] + c[:, None] * d_mel[None, :])).sum(axis=1))
        l_sum, l_pk = lum_of(*S), lum_of(*P)
        sc = np.where(l_sum > 1e-6, l_pk / np.maximum(l_sum, 1e-6), 0.0)
        hb_c, ven_c = np.where(fine, sc * S[0], hb[by, bx] - l1[0]), np.where(fine, sc * S[1], ven[by, bx] - l1[1])
        out[ph, "chroma fp"] = de_at(hb_c, ven_c)
        # the same, the luma and the footprint averaged along the vessel before their ratio
        sc = np.where(along(l_sum) > 1e-6, along(l_pk) / np.maximum(along(l_sum), 1e-6), 0.0)
        out[ph, "chroma fp2"] = C.delta_e_of_od(bg, np.maximum(np.where(fine, sc * along(S[0]), along(hb[by, bx] - l1[0])) * gain, 0)[:, None] * d_hb[None, :]
                                                + np.maximum(np.where(fine, sc * along(S[1]), along(ven[by, bx] - l1[1])) * gain, 0)[:, None] * d_ven[None, :])
        if ph == "b":
            hb_b_store, lift_b = (hb, ven), l1
        by, bx = _best_within(blood, ys, xs, 1.0)
        out[ph, "as is"] = de_at(hb[by, bx] - l1[0], ven[by, bx] - l1[1])
        out[ph, "no lift"] = de_at(hb[by, bx], ven[by, bx])
        out[ph, "no along"] = de_at(hb[by, bx] - l1[0], ven[by, bx] - l1[1], alg=False)
        lt = lift(tol_px)
        by, bx = _best_within(blood, ys, xs, tol_px)
        out[ph, "best tol"] = de_at(hb[by, bx] - lt[0], ven[by, bx] - lt[1])
        if ph == "f":
            iy = np.clip(np.rint(ty).astype(np.int64), 0, m - 1)
            ix = np.clip(np.rint(tx).astype(np.int64), 0, n - 1)
            by, bx = _best_within(blood, iy, ix, 1.0)
            out[ph, "true place"] = de_at(hb[by, bx] - l1[0], ven[by, bx] - l1[1])
        else:
            out[ph, "true place"] = out[ph, "as is"]
    # the follow-up as the baseline's reading times the footprint's kept share
    keep = np.clip(sums["f"] / np.maximum(sums["b"], 1e-6), 0.0, 1.5)
    keep = np.where(sums["b"] > 1e-6, keep, 0.0)
    by, bx = _best_within(hb_b_store[0] + hb_b_store[1], ys, xs, 1.0)
    out["f", "footprint"] = C.delta_e_of_od(bg, np.maximum(along(keep) * along(hb_b_store[0][by, bx] - lift_b[0]) * gain, 0)[:, None] * d_hb[None, :]
                                             + np.maximum(along(keep) * along(hb_b_store[1][by, bx] - lift_b[1]) * gain, 0)[:, None] * d_ven[None, :])
    out["b", "footprint"] = out["b", "as is"]
    # check: our "as is" against compare's own
    de_b, de_f, thr_b, thr_f = fad["de_bf"]
    stain, matt = DS.truth_masks_at(ser, k, ys, xs)
    return dict(on=on, kept=T[j, 3] > 0, tde_b=T[j, 6], tde_f=T[j, 7], cls=a_b.labels[ys, xs], resid=resid, out=out, de_b=de_b, de_f=de_f,
                thr_f=thr_f, st=st, rest=~stain & ~matt & ~fad["brown0"], ppm=ppm, tol_px=tol_px)


def estimate(P: dict, bench_json: str | None) -> None:
    """Each reading's decision put in place of ``compare``'s on the counted points off stain and
    matting (the others keep ``compare``'s status), per pair: the share of counted points read
    cleared less the truth's (the class error, in points), and, with ``bench_json`` (the same
    series' ``bench_compare.py --json``), the benchmark's improvement error moved by the change
    of that share (an estimate: points, not chain lengths)."""
    import json
    import statistics

    on = P["on"] > 0
    own = P["st"] == 0
    pairs = np.unique(P["pair"])
    J = {}
    if bench_json:
        J = {r["case"]: r for r in json.load(open(bench_json)) if not r["refused"] and r["imp"] is not None and r["imp_truth"] is not None}

    def imp(sel, vis):
        st = P["st"][sel].copy()
        r = P["rest"][sel] > 0
        st[r] = np.where(vis[sel][r], 0, 1)
        return 100.0 * np.mean(st == 1)

    readings = [("compare's own", own)] + [(k[2:], P[k] >= P["thr_f"]) for k in P if k.startswith("f:")]
    readings.append(("max(as is, footprint)", np.maximum(P["f:as is"], P["f:footprint"]) >= P["thr_f"]))
    print("\nper pair, each reading's decision in place of compare's (counted points off stain and matting):")
    for name, vis in readings:
        cls, tot = [], []
        for p in pairs:
            sel = on & (P["pair"] == p)
            if sel.sum() < 20:
                continue
            cls.append(imp(sel, vis) - 100.0 * np.mean(P["kept"][sel] == 0))
            case = f"{int(p) // 10}/{int(p) % 10}"
            if case in J:
                tot.append(J[case]["imp"] - J[case]["imp_truth"] + imp(sel, vis) - imp(sel, own))
        line = f"  {name:22s} class error median {statistics.median(cls):+5.1f}, median |.| {statistics.median(abs(v) for v in cls):5.2f}"
        if tot:
            line += f"; estimated improvement median |error| {statistics.median(abs(v) for v in tot):5.2f} ({sum(abs(v) <= 5 for v in tot)}/{len(tot)} within 5)"
        print(line)


def _ratio_line(P: dict, ways, label: str, pick) -> str:
    """One printed row: for the baseline (b) and the follow-up (f), the points ``pick(t)`` selects
    from the truth's ΔE00 ``t`` and each reading's median ratio to it."""
    line = label
    for p in "bf":
        t = P[f"tde_{p}"]
        sel = pick(t)
        line += f"  [{p} n={int(sel.sum())}]"
        for w in ways:
            if p == "b" and w == "true place":
                continue
            line += f" {w} {np.median(P[f'{p}:{w}'][sel] / t[sel]) if sel.any() else float('nan'):.2f}"
    return line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--compare-set", action="append", default=[], metavar="KEY=VALUE", help="a compare keyword (as bench_compare.py's)")
    ap.add_argument("--jpeg-quality", default="92", help="the generator's JPEG round trip: 1-100, or none (default 92, as the benchmark)")
    ap.add_argument("--jpeg-444", action="store_true", help="the generator's JPEG without chroma subsampling (4:4:4), to tell its two losses apart")
    ap.add_argument("--load", default=None, help="read the pooled readings from this .npz (written by --save) instead of running compare")
    ap.add_argument("--bench-json", default=None, help="bench_compare.py --json of the same series: estimate each reading's improvement error")
    ap.add_argument("--save", default=None, help="write the pooled per-point readings to this .npz")
    args = ap.parse_args(argv)
    from bench_synth_accuracy import analyze_options

    c_opts = analyze_options(args.compare_set)
    if args.jpeg_444:
        from PIL import Image

        save = Image.Image.save

        def save_444(self, fp, format=None, **kw):
            if str(format).upper() == "JPEG":
                kw["subsampling"] = 0
            return save(self, fp, format=format, **kw)

        Image.Image.save = save_444
    if args.load:
        P = dict(np.load(args.load))
        estimate(P, args.bench_json)
        return 0
    import veinscope

    veinscope.warmup()
    DI._wrap()
    _wrap()
    ways = ("as is", "no lift", "no along", "best tol", "true place", "footprint", "chroma fp", "chroma fp2")
    pool = {key: [] for key in ("pair", "tde_b", "tde_f", "kept", "on", "rest", "cls", "resid", "de_f", "thr_f", "st", *(f"{p}:{w}" for p in "bf" for w in ways))}
    for i in range(args.n):
        seed = args.seed0 + i
        ser = synth.generate_series(seed=seed, sessions=3, size=(800, 600), px_per_mm=float(np.random.default_rng(seed).uniform(8, 13)), jpeg_quality=None if str(args.jpeg_quality).lower() == "none" else int(args.jpeg_quality))
        for k in range(1, len(ser.photos)):
            DI.pair(ser, k, (), None, None, c_opts, None)
            r = readings(ser, k)
            if r is None:
                continue
            sel = r["on"] & r["kept"] & r["rest"]
            print(f"{seed}/{k}: {int(sel.sum())} kept points off stain/matting, residual median {np.median(r['resid'][sel]) if sel.any() else float('nan'):.2f} px, "
                  f"tol {r['tol_px']:.2f} px; own 'as is' vs compare's: b {np.median(np.abs(r['out']['b', 'as is'] - r['de_b'])):.3f}, f {np.median(np.abs(r['out']['f', 'as is'] - r['de_f'])):.3f}", flush=True)
            r["pair"] = seed * 10 + k
            for key in ("pair", "tde_b", "tde_f", "kept", "on", "rest", "cls", "resid", "de_f", "thr_f", "st"):
                v = r[key]
                pool[key].append(np.broadcast_to(np.asarray(v, float), r["on"].shape) if np.ndim(v) == 0 else np.asarray(v, float))
            for p in "bf":
                for w in ways:
                    pool[f"{p}:{w}"].append(r["out"][p, w])
    P = {key: np.concatenate(v) for key, v in pool.items()}
    if args.save:
        np.savez_compressed(args.save, **P)
    base = (P["on"] > 0) & (P["kept"] > 0) & (P["rest"] > 0)
    print("\ncompare / truth ΔE00, median (points), kept vessels off stain and matting; by the truth's ΔE00 in that photo")
    for lo, hi in ((2, 3), (3, 4), (4, 6), (6, 8), (8, 20)):
        print(_ratio_line(P, ways, f"  truth {lo}-{hi}:", lambda t, lo=lo, hi=hi: base & (t >= lo) & (t < hi)))
    for c in (1, 2, 3):
        print(_ratio_line(P, ways, f"  class {c}, truth 2-8:", lambda t, c=c: base & (P["cls"] == c) & (t >= 2) & (t <= 8)))
    sel = base & (P["tde_f"] >= 2)
    print(f"\nregistration residual at kept points: median {np.median(P['resid'][sel]):.2f} px, p90 {np.percentile(P['resid'][sel], 90):.2f} px")
    for lo, hi in ((0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 3), (3, 99)):
        s = sel & (P["resid"] >= lo) & (P["resid"] < hi)
        if s.any():
            print(f"  residual {lo}-{hi} px: n={int(s.sum())}, f as is / truth {np.median(P['f:as is'][s] / P['tde_f'][s]):.2f}, true place {np.median(P['f:true place'][s] / P['tde_f'][s]):.2f}, best tol {np.median(P['f:best tol'][s] / P['tde_f'][s]):.2f}")
    # how many kept points (truth visible in the follow-up) each reading calls visible (>= thr_f)
    kept_vis = base & (P["st"] <= 1)
    print("\nkept points off stain and matting read visible (>= the follow-up threshold), and of the truth's cleared points (off stain / matting) read visible:")
    gone = (P["on"] > 0) & (P["kept"] == 0) & (P["rest"] > 0)
    for w in ways:
        print(f"  {w:10s}: kept {100.0 * np.mean(P[f'f:{w}'][kept_vis] >= P['thr_f'][kept_vis]):.1f} %, cleared {100.0 * np.mean(P[f'f:{w}'][gone] >= P['thr_f'][gone]) if gone.any() else float('nan'):.1f} %")
    estimate(P, args.bench_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does a cleared vessel the engine missed stand out better in the registered difference than in
the baseline alone? (issue 6, diagnosis only; session 40, helper diff40).

For each generated series pair (the photos and ``compare`` call of ``bench_compare.py --source
series``), compare's own chromophore maps of the baseline and of the aligned, light-matched
follow-up are read (``haemoglobin`` and ``venous``), and the green optical density of both
photos (the JPEG's full-resolution luma channel). A line (ridge) detector, the Hessian's most
negative eigenvalue times sigma² at sigma 0.08 / 0.15 / 0.3 / 0.6 mm, is run on

* ``b``: the baseline's blood maps alone;
* ``d``: the difference, baseline minus follow-up, of the blood maps;
* ``f``: the follow-up's blood maps alone;
* ``bg`` / ``dg``: the baseline's green OD alone / the difference of the green OD,

each scale and channel divided by its 99th percentile on the pair's noise (the compared skin
away from both photos' vessels and 3 x 0.6 mm inside the compared area's edge), the largest
over scales and channels, with a 3 x 3 maximum (``z``: 1 is the noise's 99th percentile).

Read along the truth's centrelines (the points the change truth counts), split by the step
that loses them (``diag_cover_loss.py``: ``labels`` / ``skel`` are missed by the engine) and by
whether the truth clears or keeps them: the share of the length with ``z`` >= 1, 2, 3 (the
oracle of the task: where a detector could find them at all). ``--chains``: a detector on each
map (hysteresis ``hi`` / ``lo`` on ``z``, the baseline's labels grown by ``r_mm`` left out,
skeleton pieces of at least ``L`` mm whose follow-up ``z`` is at most half the baseline's), its
length on missed cleared / missed kept / counted truth vessels and on none (within 3 px), and
the improvement it would give if its length were added as cleared (``imp x base + 100 x
chains) / (base + chains)``, base = the truth's length compare counts).
``--noise``: per scale and channel, the noise's 99th percentile of the ridge response in the
baseline, the follow-up and the difference, and the correlation of the two photos' band-passed
maps on the noise pixels (how much of the skin's texture is common to both photos and cancels)::

    PYTHONPATH=src .venv/bin/python benchmarks/diag_difference_lines.py --n 6 --size 800 600 --chains
    PYTHONPATH=src .venv/bin/python benchmarks/diag_difference_lines.py --n 3 --size 2400 1800 --chains --noise
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))

import diag_cover_loss as D  # noqa: E402
import veinscope.compare as C  # noqa: E402

SIGMAS_MM = (0.08, 0.15, 0.3, 0.6)
CAP = D._CAP


def _wrap():
    D._wrap()
    inner = C._fading

    def cap(a_b, mb, mf, cmp_area, texture, windows, f_vessel, *a, **kw):
        CAP["mb"], CAP["mf"], CAP["texture"], CAP["f_vessel"] = mb, mf, texture, f_vessel
        return inner(a_b, mb, mf, cmp_area, texture, windows, f_vessel, *a, **kw)

    C._fading = cap


def ridge(x: np.ndarray, sigma: float) -> np.ndarray:
    """Bright-ridge strength: -(most negative Hessian eigenvalue) x sigma², 0 where positive."""
    xx = ndi.gaussian_filter(x, sigma, order=(0, 2))
    yy = ndi.gaussian_filter(x, sigma, order=(2, 0))
    xy = ndi.gaussian_filter(x, sigma, order=(1, 1))
    lmin = 0.5 * (xx + yy) - np.sqrt((0.5 * (xx - yy)) ** 2 + xy**2)
    return sigma**2 * np.maximum(-lmin, 0.0)


def zmap(chans, noise: np.ndarray, ppm: float) -> np.ndarray:
    """The ridge strength over scales and channels in units of its 99th percentile on ``noise``."""
    best = None
    for s_mm in SIGMAS_MM:
        s = max(0.8, s_mm * ppm)
        for c in chans:
            r = ndi.maximum_filter(ridge(np.asarray(c, np.float64), s), 3)
            z = r / max(float(np.quantile(r[noise], 0.99)), 1e-12)
            best = z if best is None else np.maximum(best, z)
    return best


def green_od(rgb: np.ndarray) -> np.ndarray:
    return -np.log((rgb[..., 1].astype(np.float64) + 0.5) / 255.0)


def chains(z, zb, zf, labels, core, ppm, *, hi, lo, L_mm, r_mm, ratio=0.5):
    """Skeleton points (ys, xs) of the lines ``z`` finds away from the baseline's labels."""
    from skimage.morphology import skeletonize

    r = max(2, int(round(r_mm * ppm)))
    near_b = cv2.dilate((labels > 0).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)).astype(bool)
    weak = (z >= lo) & core & ~near_b
    _, cc = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    ids = np.unique(cc[(z >= hi) & weak])
    sk = skeletonize(np.isin(cc, ids[ids > 0]))
    n2, cc2 = cv2.connectedComponents(sk.astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(sk)
    lab = cc2[ys, xs]
    order = np.argsort(lab, kind="stable")
    bounds = np.searchsorted(lab[order], np.arange(n2 + 1))
    good = np.zeros(n2, bool)
    for c in range(1, n2):
        idx = order[bounds[c] : bounds[c + 1]]
        if idx.size >= L_mm * ppm and np.median(zf[ys[idx], xs[idx]]) <= ratio * np.median(zb[ys[idx], xs[idx]]):
            good[c] = True
    sel = good[lab]
    return ys[sel], xs[sel]


SETTINGS = ((2.0, 1.2, 2.0), (2.0, 1.2, 4.0), (3.0, 1.5, 2.0), (3.0, 1.5, 4.0))


def pair(ser, k, *, want_chains: bool, want_noise: bool, edge_mm: float = 1.8) -> dict:
    o = D.pair(ser, k)
    a_b, mb, mf, cmpa = CAP["a_b"], CAP["mb"], CAP["mf"], CAP["cmp_area"]
    m, n = a_b.labels.shape
    B, F = mb.box((0, m, 0, n)), mf.box((0, m, 0, n))
    ppm = float(ser.photos[0].px_per_mm)
    edge = max(3, int(round(3 * SIGMAS_MM[-1] * ppm)))
    core = cv2.erode(cmpa.astype(np.uint8), np.ones((2 * edge + 1,) * 2, np.uint8)).astype(bool)
    noise = CAP["texture"] & core & ~cv2.dilate(CAP["f_vessel"].astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)

    def cz(x):
        return np.where(cmpa, x, 0.0)

    gb, gf = green_od(mb.o.rgb), green_od(mf.o.rgb)
    z = {
        "b": zmap([cz(B["haemoglobin"]), cz(B["venous"])], noise, ppm),
        "d": zmap([cz(B["haemoglobin"] - F["haemoglobin"]), cz(B["venous"] - F["venous"])], noise, ppm),
        "f": zmap([cz(F["haemoglobin"]), cz(F["venous"])], noise, ppm),
        "bg": zmap([cz(gb)], noise, ppm),
        "dg": zmap([cz(gb - gf)], noise, ppm),
    }
    T, step = o["T"], o["step"]
    iy = np.clip(np.round(T[:, 0]).astype(int), 0, m - 1)
    ix = np.clip(np.round(T[:, 1]).astype(int), 0, n - 1)
    w, kept = T[:, 2], T[:, 3] > 0
    miss = (step <= 1) & core[iy, ix]
    groups = {"miss_clr": miss & ~kept, "miss_kept": miss & kept, "cnt_clr": (step == 7) & ~kept, "cnt_kept": (step == 7) & kept}
    out = {"imp": o["imp"], "truth": o["truth"], "base_cnt": float(w[step == 7].sum()), "noise_n": int(noise.sum()), "w": {}, "above": {}, "noise_above": {}}
    for g, sel in groups.items():
        out["w"][g] = float(w[sel].sum())
        for key, zz in z.items():
            v = zz[iy, ix]
            for t in (1, 2, 3):
                out["above"][g, key, t] = float(w[sel & (v >= t)].sum())
    for key, zz in z.items():
        for t in (1, 2, 3):
            out["noise_above"][key, t] = int((zz[noise] >= t).sum())
    if want_chains:
        out["chains"] = {}
        if edge_mm > 3 * SIGMAS_MM[-1]:  # the chains looked for farther inside the compared area
            e = int(round(edge_mm * ppm))
            core = cv2.erode(cmpa.astype(np.uint8), np.ones((2 * e + 1,) * 2, np.uint8)).astype(bool)
        tT = cKDTree(T[:, :2]) if len(T) else None
        for key in ("d", "dg", "b"):
            for hi, lo, L in SETTINGS:
                ys, xs = chains(z[key], z["b"] if key != "dg" else z["bg"], z["f"], a_b.labels, core, ppm, hi=hi, lo=lo, L_mm=L, r_mm=0.4)
                r = {"chain": ys.size / ppm, "found": 0.0, "on_mc": 0.0, "on_mk": 0.0, "on_cnt": 0.0, "none": ys.size / ppm}
                if ys.size and tT is not None:
                    dd, _ = cKDTree(np.c_[ys, xs]).query(T[:, :2])
                    r["found"] = float(w[groups["miss_clr"] & (dd <= 3)].sum())
                    dT, j = tT.query(np.c_[ys, xs])
                    near = dT <= 3
                    r["on_mc"] = float((near & groups["miss_clr"][j]).sum()) / ppm
                    r["on_mk"] = float((near & groups["miss_kept"][j]).sum()) / ppm
                    r["on_cnt"] = float((near & ~miss[j]).sum()) / ppm
                    r["none"] = float((~near).sum()) / ppm
                out["chains"][key, hi, lo, L] = r
    if want_noise:
        rows = []
        tm = np.zeros((m, n), np.uint8)
        tm[iy, ix] = 1
        nz = noise & ~cv2.dilate(tm, np.ones((int(2 * ppm) | 1,) * 2, np.uint8)).astype(bool)
        for ch, (b, f) in {"haemoglobin": (B["haemoglobin"], F["haemoglobin"]), "venous": (B["venous"], F["venous"]), "green": (gb, gf)}.items():
            b, f = cz(b.astype(np.float64)), cz(f.astype(np.float64))
            for s_mm in SIGMAS_MM:
                s = max(0.8, s_mm * ppm)
                qb, qf, qd = (float(np.quantile(ridge(x, s)[nz], 0.99)) for x in (b, f, b - f))
                hb_ = ndi.gaussian_filter(b, s) - ndi.gaussian_filter(b, 4 * s)
                hf_ = ndi.gaussian_filter(f, s) - ndi.gaussian_filter(f, 4 * s)
                rows.append((ch, s_mm, qb, qf, qd, float(np.corrcoef(hb_[nz], hf_[nz])[0, 1])))
        out["noise"] = rows
        out["residual_mm"] = getattr(CAP["reg"], "residual_mm", None)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--size", type=int, nargs=2, default=(800, 600), metavar=("W", "H"))
    ap.add_argument("--chains", action="store_true")
    ap.add_argument("--noise", action="store_true")
    ap.add_argument("--edge-mm", type=float, default=1.8, help="the chains kept this far inside the compared area (the truth is read 1.8 mm inside)")
    args = ap.parse_args(argv)
    import veinscope
    from bench_compare import benchmark_series

    veinscope.warmup()
    _wrap()
    rows = []
    for i in range(args.n):
        seed = args.seed0 + i
        ser = benchmark_series(seed, size=tuple(args.size))
        for k in range(1, len(ser.photos)):
            try:
                o = pair(ser, k, want_chains=args.chains, want_noise=args.noise, edge_mm=args.edge_mm)
            except IndexError:  # no baseline centreline at all (diag_cover_loss needs one)
                print(f"{seed}/{k}: no baseline centreline, left out", flush=True)
                continue
            rows.append(o)
            imp = "-" if o["imp"] is None else f"{o['imp']:.1f}"
            print(f"{seed}/{k} imp {imp} truth {o['truth']:.1f}; missed cleared {o['w']['miss_clr']:.0f} mm, missed kept {o['w']['miss_kept']:.0f} mm", flush=True)
            if args.noise:
                print(f"  registration residual {o['residual_mm']}")
                for ch, s_mm, qb, qf, qd, cc in o["noise"]:
                    print(f"  {ch:11s} sigma {s_mm:.2f} mm: ridge q99 baseline {qb:.4f} follow-up {qf:.4f} difference {qd:.4f} (d/b {qd / max(qb, 1e-12):.2f}); band-passed maps' correlation {cc:+.2f}")
    print("share of each group's truth length with z >= 1 / 2 / 3 (%):")
    for g in ("miss_clr", "miss_kept", "cnt_clr", "cnt_kept"):
        tot = sum(o["w"][g] for o in rows)
        cells = "  ".join(f"{key:>2} " + "/".join(f"{100 * sum(o['above'][g, key, t] for o in rows) / max(tot, 1e-9):.1f}" for t in (1, 2, 3)) for key in ("b", "d", "f", "bg", "dg"))
        print(f"  {g:9s} {tot:6.0f} mm  {cells}")
    nn = sum(o["noise_n"] for o in rows)
    print("  noise px above 1 / 2 / 3 (%): " + "  ".join(f"{key} " + "/".join(f"{100 * sum(o['noise_above'][key, t] for o in rows) / max(nn, 1):.3f}" for t in (1, 2, 3)) for key in ("b", "d", "f", "bg", "dg")))
    if args.chains:
        have = [o for o in rows if o["imp"] is not None]
        e0 = np.array([o["imp"] - o["truth"] for o in have])
        print("chains (r 0.4 mm), length in mm; improvement median |err| (within 5, signed) with their length added as cleared:")
        print(f"  main: {np.median(np.abs(e0)):.2f} ({int((np.abs(e0) <= 5).sum())}/{len(e0)}, {np.median(e0):+.2f})")
        mc = sum(o["w"]["miss_clr"] for o in rows)
        for key in ("d", "dg", "b"):
            for hi, lo, L in SETTINGS:
                c = [o["chains"][key, hi, lo, L] for o in rows]
                e1 = np.array([(o["imp"] * o["base_cnt"] + 100 * o["chains"][key, hi, lo, L]["chain"]) / max(o["base_cnt"] + o["chains"][key, hi, lo, L]["chain"], 1e-9) - o["truth"] for o in have])
                s = {q: sum(x[q] for x in c) for q in c[0]}
                print(f"  {key:>2} hi {hi} lo {lo} L {L}: finds {s['found']:.1f} of {mc:.0f} mm missed cleared ({100 * s['found'] / max(mc, 1e-9):.1f} %); chains {s['chain']:.1f} mm: "
                      f"on missed cleared {s['on_mc']:.1f}, missed kept {s['on_mk']:.1f}, counted {s['on_cnt']:.1f}, none {s['none']:.1f}; "
                      f"{np.median(np.abs(e1)):.2f} ({int((np.abs(e1) <= 5).sum())}/{len(e1)}, {np.median(e1):+.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

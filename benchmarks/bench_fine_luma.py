"""Does the detection signal lose the finest vessels to JPEG 4:2:0 chroma? (issue 4, session 13)

Run:  .venv/bin/python benchmarks/bench_fine_luma.py [--n 24] [--quality 92] [--probe luma]

Set A's photos (seed 400 + i, the scale and skin type of ``bench_synth_accuracy.set_a_photo``)
are generated twice, with the same scene and the same camera noise: stored as JPEG
(``--quality``, 4:2:0 as PIL and phones store) and not stored at all (``jpeg_quality=None``).
The engine (``veinscope.analyze``, the true centre scale) runs on both, and the script prints
the recall along the truth's visible centreline (length-weighted over all photos) of every
class, of the vessels under 0.3 mm and 0.2-0.3 mm visible diameter, and of everything >= 0.2 mm
(set A's recall), with clDice and centreline precision (medians).

It also prints the detection signal's OD weights (``params["signal_weights"]``, from
``chromophores.matched_vessel_weights``) and how much of a vessel's response lies along luma:
a vessel's OD change ``d`` (unit gain, ``w . d = 1``) splits, in the encoded R'G'B' that JPEG
sees, into an equal change of R', G', B' (JPEG's Y', kept at full resolution by 4:2:0) and a
change with no Y' (Cb, Cr: averaged over 2 x 2 pixels). ``u`` is the OD of an equal change of
the encoded R', G', B' at the photo's median skin colour; the luma part of ``d`` is ``dY' u``,
and ``w . d_luma`` is the share of the detection response that survives 4:2:0 for a vessel
narrower than the chroma's pixels. Printed for the engine's vessel direction and for the red
(haemoglobin) and blue (venous) directions.

It then prints the engine's detection noise figure (``params["noise"]``, which sets the
thresholds) JPEG / no JPEG, and the detection signal the JPEG keeps at the truth's centreline:
the relative OD (less a 6 px Gaussian) at the nearest pixel, projected on the engine's weights,
on the luma-only weights and on the plain vessel direction, median over the points of a group,
JPEG / no JPEG per photo, median over photos. ``--quality 100`` keeps 4:2:0 subsampling (PIL's
default) with little quantisation: it separates the subsampling from the quantisation.

``--probe luma`` is a diagnostic, not an engine option: it replaces the matched weights by the
projection that reads luma only (``w ∝ J' (0.299, 0.587, 0.114)``, blind to Cb and Cr, scaled to
unit gain on the engine's vessel direction) on every photo and scale, to bound what a
luma-leaning signal could find.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: JPEG's (BT.601) luma weights of the encoded R', G', B'.
LUMA = np.array([0.299, 0.587, 0.114])
CLASSES = ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm")


def _encoded_per_od(rgb8_median) -> np.ndarray:
    """d(encoded value, 0-1) / d(OD) per channel at an sRGB colour (negative: darker = more OD)."""
    c = np.asarray(rgb8_median, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    dlin_dc = np.where(c <= 0.04045, 1 / 12.92, 2.4 / 1.055 * ((c + 0.055) / 1.055) ** 1.4)
    # OD = -ln(lin): dOD/dc = -dlin_dc / lin
    return -lin / dlin_dc


def luma_split(d, skin_rgb) -> tuple[np.ndarray, np.ndarray]:
    """The luma part and the chroma part (Y' = 0) of an OD change ``d`` at colour ``skin_rgb``."""
    j = _encoded_per_od(skin_rgb)  # encoded change per OD change, per channel
    de = j * np.asarray(d, dtype=np.float64)  # encoded change
    dy = float(LUMA @ de)
    u = 1.0 / j  # OD of an equal encoded change of 1 in R', G', B'
    d_l = dy * u
    return d_l, np.asarray(d, dtype=np.float64) - d_l


def luma_weights(skin_rgb, d) -> np.ndarray:
    """OD weights blind to Cb, Cr (they read Y' only), unit gain on ``d``."""
    j = _encoded_per_od(skin_rgb)
    w = LUMA * j  # w . dOD = dY'
    return w / float(w @ np.asarray(d, dtype=np.float64))


def recall_rows(photo, analysis) -> dict:
    """True visible centreline length (mm) and the length found, per group."""
    pred = (analysis.labels > 0) & photo.skin_mask
    m, n = pred.shape
    out = {}
    for c in photo.centrelines:
        v = c["visible"]
        if not v.any():
            continue
        y, x = np.round(c["points_yx"][v]).astype(int).T
        hit = pred[y.clip(0, m - 1), x.clip(0, n - 1)]
        ln, dia = c["length_mm"][v], c["diameter_mm"][v]
        groups = {
            c["class"]: np.ones_like(hit),
            "under_0.3mm": dia < 0.3,
            "0.2-0.3mm": (dia >= 0.2) & (dia < 0.3),
            "0.3-0.5mm": (dia >= 0.3) & (dia < 0.5),
            ">=0.2mm": dia >= 0.2,
        }
        for g, sel in groups.items():
            t, f = out.get(g, (0.0, 0.0))
            out[g] = (t + float(ln[sel].sum()), f + float(ln[sel & hit].sum()))
    return out


def centre_signal(photo, weights_list, sel_fn) -> list[np.ndarray]:
    """Relative OD (the photo's OD less a 6 px Gaussian of it, as the ridge filter's finest
    scales see it) projected on each of ``weights_list``, at the visible centreline points
    ``sel_fn(centreline, visible diameters)`` selects (nearest pixel)."""
    import cv2

    from veinscope.chromophores import OD_LUT

    od = OD_LUT[photo.rgb]
    rel = od - cv2.GaussianBlur(od, (0, 0), 6.0)
    m, n = photo.rgb.shape[:2]
    ys, xs = [], []
    for c in photo.centrelines:
        v = c["visible"]
        if not v.any():
            continue
        sel = sel_fn(c, c["diameter_mm"][v])
        y, x = np.round(c["points_yx"][v][sel]).astype(int).T
        ys.append(y.clip(0, m - 1))
        xs.append(x.clip(0, n - 1))
    if not ys:
        return [np.zeros(0) for _ in weights_list]
    y, x = np.concatenate(ys), np.concatenate(xs)
    px = rel[y, x].astype(np.float64)
    return [px @ np.asarray(w, dtype=np.float64) for w in weights_list]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--size", default="1600x1200")
    ap.add_argument("--seed0", type=int, default=400)
    ap.add_argument("--quality", type=int, default=92)
    ap.add_argument("--probe", choices=("none", "luma"), default="none")
    args = ap.parse_args(argv)

    import veinscope
    import veinscope.chromophores as ch
    from bench_synth_accuracy import SCALES, evaluate
    from veinscope.synth import generate_photo

    w_, h_ = (int(v) for v in args.size.split("x"))
    veinscope.warmup()
    d_v = ch.VESSEL_DIRECTION.astype(np.float64)
    d_red = ch.CHROMOPHORE_DIRECTIONS["haemoglobin"].astype(np.float64)
    d_blue = ch.CHROMOPHORE_DIRECTIONS["venous"].astype(np.float64)
    matched = ch.matched_vessel_weights
    tot = {"none": {}, "jpeg": {}}
    fig = {"none": [], "jpeg": []}
    shares = []
    noise = {}  # the engine's detection noise figure (params["noise"]) per photo
    kept = {}  # (group, projection) -> list of per-photo median ratios JPEG / no JPEG
    groups = {
        "red_telangiectasia": lambda c, dia: np.full(dia.shape, c["class"] == "red_telangiectasia"),
        "under_0.3mm": lambda c, dia: dia < 0.3,
        "0.3-1mm": lambda c, dia: (dia >= 0.3) & (dia < 1.0),
    }
    t0 = time.perf_counter()
    for i in range(args.n):
        seed = args.seed0 + i
        ppm, st = SCALES[(i + i // 6) % len(SCALES)], 1 + i % 6
        line = [f"seed {seed} type {st} {ppm:g} px/mm"]
        photos = {}
        for key, q in (("none", None), ("jpeg", args.quality)):
            ph = generate_photo(seed=seed, size=(w_, h_), px_per_mm=ppm, skin_type=st, jpeg_quality=q)
            skin_rgb = np.median(ph.rgb[ph.skin_mask], axis=0)
            if args.probe == "luma":
                ch.matched_vessel_weights = lambda optics, skin, _c=skin_rgb, **kw: luma_weights(_c, d_v).astype(np.float32)
            try:
                a = veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm)
            finally:
                ch.matched_vessel_weights = matched
            r = evaluate(ph, a)
            noise.setdefault(key, []).append(float(a.params["noise"]))
            photos[key] = (ph, np.asarray(a.params.get("signal_weights", d_v), dtype=np.float64), skin_rgb)
            fig[key].append(r)
            for g, (t, f) in recall_rows(ph, a).items():
                tt, ff = tot[key].get(g, (0.0, 0.0))
                tot[key][g] = (tt + t, ff + f)
            w = np.asarray(a.params.get("signal_weights", d_v), dtype=np.float64)
            s = [float(w @ luma_split(d, skin_rgb)[0]) for d in (d_v, d_red, d_blue)]
            if key == "jpeg":
                shares.append(s + [float(w @ d_red), float(w @ d_blue)])
            line.append(f"{key}: clDice {r['cldice']:.3f} recall {r['recall_ge_0.2mm']:.3f} "
                        f"w=({w[0]:.3f},{w[1]:.3f},{w[2]:.3f}) luma share {s[0]:.2f}/{s[1]:.2f}/{s[2]:.2f}")
        (p0, _, _), (p1, wj, cj) = photos["none"], photos["jpeg"]
        projs = {"engine": wj, "luma only": luma_weights(cj, d_v), "vessel dir.": d_v}
        for g, fn in groups.items():
            s0 = centre_signal(p0, list(projs.values()), fn)
            s1 = centre_signal(p1, list(projs.values()), fn)
            for name, a0, a1 in zip(projs, s0, s1):
                if a0.size >= 20 and np.median(a0) > 0:
                    kept.setdefault((g, name), []).append(float(np.median(a1) / np.median(a0)))
        print("  ".join(line), flush=True)
    print(f"\n{args.n} photos, {time.perf_counter() - t0:.0f} s; probe: {args.probe}; JPEG quality {args.quality}")
    print("recall along the visible true centreline (length-weighted, all photos):")
    print(f"{'group':24s} {'true mm':>9s} {'no JPEG':>8s} {'JPEG':>8s}  ratio")
    for g in (*CLASSES, "under_0.3mm", "0.2-0.3mm", "0.3-0.5mm", ">=0.2mm"):
        t, fn = tot["none"].get(g, (0.0, 0.0))
        _, fj = tot["jpeg"].get(g, (0.0, 0.0))
        if t > 0:
            rn, rj = fn / t, fj / t
            print(f"{g:24s} {t:9.0f} {rn:8.3f} {rj:8.3f}  {rj / max(rn, 1e-9):.2f}")
    for k in ("cldice", "recall_ge_0.2mm", "centreline_precision", "class_right", "diam_medae_mm", "len_err_pct:red_telangiectasia"):
        vals = {key: [r[k] for r in fig[key] if np.isfinite(r[k])] for key in fig}
        print(f"median {k:32s} no JPEG {statistics.median(vals['none']):.3f}  JPEG {statistics.median(vals['jpeg']):.3f}")
    sh = np.asarray(shares)
    print("share of the detection response along luma (w . d_luma; JPEG photos' weights), median [min, max]:")
    for j, name in enumerate(("vessel direction", "red (haemoglobin)", "blue (venous)")):
        print(f"  {name:20s} {np.median(sh[:, j]):.2f} [{sh[:, j].min():.2f}, {sh[:, j].max():.2f}]")
    print("gain of the detection weights on a unit OD change along (w . d; 1 on the vessel direction):")
    for j, name in ((3, "red (haemoglobin)"), (4, "blue (venous)")):
        print(f"  {name:20s} {np.median(sh[:, j]):.2f} [{sh[:, j].min():.2f}, {sh[:, j].max():.2f}]")
    ratio = np.asarray(noise["jpeg"]) / np.asarray(noise["none"])
    print(f"engine's detection noise (params['noise']), JPEG / no JPEG: median {np.median(ratio):.3f} "
          f"[{ratio.min():.3f}, {ratio.max():.3f}]")
    print("detection signal kept by the JPEG at the true centreline (median over photos of the")
    print("photo's median JPEG / no-JPEG relative OD projected on each weight, photos with >= 20 points):")
    for (g, name), v in sorted(kept.items()):
        print(f"  {g:20s} {name:12s} {statistics.median(v):.2f}  ({len(v)} photos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

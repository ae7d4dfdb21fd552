"""Where a class's painted area comes from on set A (issue 4 diagnostic): the engine's pixels of
each class split against the truth, and its widths against the true widths by width bin, with
the camera-blur correction of ``diameter.half_max_widths`` as it is and as given by ``--mode``.

Run:  .venv/bin/python benchmarks/bench_synth_area.py [--n 24] [--types 1,4] [--mode shape,quad]
      [--cache benchmarks/.cache/set_a]

Photos as ``bench_synth_accuracy.py`` draws them (``set_a_photo``: seed seed0 + i, skin type
1 + i % 6), analysed with the true scale at the centre. ``--mode``: ``shape`` the default
(``blur_shape=True``), ``quad`` the quadrature whole (``blur_shape=False``). Per class and mode,
summed over the photos (mm2 of skin, the truth's ``px_area_mm2``):

- truth: the class's labelled area, and its visible part (not ``ignore``);
- engine: the class's painted area, split into pixels on the truth's same class (visible or
  ignore), on another true class, on skin within 3 px of a true vessel (painted wider than the
  vessel: an edge), and further away (a false detection), of which within 3 px of the truth's
  ``ignore`` pixels (vessels too faint to count) or on a confounder (hair, naevus, ...);
- the reported area error (engine's ``area_mm2`` vs the truth's), median over photos, as in
  ``bench_synth_accuracy.py``;
- widths: the engine's diameter at the visible true centreline points of the class that it
  marks, over the true visible width, median per true-width bin;
- the blur correction at the engine's centreline points on the class's true pixels, per
  true-width bin: half-maximum width as seen, after the quadrature, and as the engine takes it
  (medians, px, over the true width in px), and the median share of the quadrature's narrowing taken (1: all of it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import CLASSES, set_a_photo  # noqa: E402

BINS_MM = (0.0, 0.2, 0.3, 0.5, 0.8, 1.0, 1.4, 2.0, 3.0, np.inf)


class _Recorder:
    """Wraps ``_kernels.fwhm.blur_shape`` to keep each call's points, widths as seen and factors."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.calls = []

    def __call__(self, img, pts, unit, width, centre, *rest):
        out = self.kernel(img, pts, unit, width, centre, *rest)
        self.calls.append((pts.copy(), width.copy(), rest[-1].copy()))
        return out


def _bin_table(name, ratios_by_bin, fmt="{:.3f}"):
    cells = []
    for lo, hi in zip(BINS_MM[:-1], BINS_MM[1:]):
        v = ratios_by_bin.get((lo, hi), [])
        v = np.concatenate(v) if v else np.zeros(0)
        v = v[np.isfinite(v)]
        cells.append("-" if v.size < 20 else fmt.format(np.median(v)) + f" ({v.size})")
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--size", default="1600x1200")
    ap.add_argument("--seed0", type=int, default=400)
    ap.add_argument("--types", default="1,2,3,4,5,6")
    ap.add_argument("--mode", default="shape,quad")
    ap.add_argument("--classes", default="red_telangiectasia,blue_telangiectasia,reticular")
    ap.add_argument("--cache", type=Path, default=HERE / ".cache" / "set_a")
    args = ap.parse_args(argv)
    import veinscope
    import veinscope._kernels.fwhm as fk
    import veinscope.diameter as dm

    types = {int(t) for t in args.types.split(",")}
    modes = args.mode.split(",")
    bad = [m for m in modes if m not in ("shape", "quad")]
    if bad:
        ap.error(f"--mode: shape or quad, got {','.join(bad)!r}")
    classes = args.classes.split(",")
    w, h = (int(v) for v in args.size.split("x"))
    original = dm.half_max_widths
    rec = _Recorder(fk.blur_shape)
    fk.blur_shape = rec
    veinscope.warmup()
    acc = {(m, c): {"truth": 0.0, "truth_vis": 0.0, "paint": 0.0, "same": 0.0, "other": 0.0, "edge": 0.0, "far": 0.0, "far_ign": 0.0, "far_conf": 0.0,
                    "err": [], "wratio": {}, "seen": {}, "quad": {}, "taken": {}, "weight": {}}
           for m in modes for c in classes}  # fmt: skip
    for i in range(args.n):
        if 1 + i % 6 not in types:
            continue
        ph = set_a_photo(i, args.seed0 + i, (w, h), args.cache)
        pa = ph.px_area_mm2()
        tf = ph.truth_figures()
        near = ndi.binary_dilation(ph.labels > 0, iterations=3)
        near_ign = ndi.binary_dilation(ph.ignore, iterations=3)
        conf = np.zeros(ph.labels.shape, bool)
        for mask in (ph.confounders or {}).values():
            conf |= mask
        m_, n_ = ph.labels.shape
        for mode in modes:
            hm_calls = []

            def hm(*a_, _shape=mode == "shape", **kw):
                out = original(*a_, blur_shape=_shape, **kw)
                hm_calls.append((kw.get("psf_sigma_px", 0.0), out[0].copy()))
                return out

            dm.half_max_widths = hm
            rec.calls.clear()
            a = veinscope.analyze(ph.rgb, px_per_mm=ph.px_per_mm)
            ef = a.to_dict()["classes"]
            ppm = ph.px_per_mm
            for cls in classes:
                code = CLASSES.index(cls) + 1
                s = acc[(mode, cls)]
                t = ph.labels == code
                e = (a.labels == code) & ph.skin_mask
                s["truth"] += pa[t].sum()
                s["truth_vis"] += pa[t & ~ph.ignore].sum()
                s["paint"] += pa[e].sum()
                s["same"] += pa[e & t].sum()
                s["other"] += pa[e & (ph.labels > 0) & ~t].sum()
                s["edge"] += pa[e & (ph.labels == 0) & near].sum()
                far = e & (ph.labels == 0) & ~near
                s["far"] += pa[far].sum()
                s["far_ign"] += pa[far & near_ign].sum()
                s["far_conf"] += pa[far & ~near_ign & conf].sum()
                if tf[cls]["area_mm2"] >= 5:
                    print(f"  {mode} {cls}: area {ef[cls]['area_mm2'] or 0.0:.1f} / {tf[cls]['area_mm2']:.1f} mm2", flush=True)
                    s["err"].append(100 * ((ef[cls]["area_mm2"] or 0.0) - tf[cls]["area_mm2"]) / tf[cls]["area_mm2"])
                for c in ph.centrelines:
                    if c["class"] != cls or not c["visible"].any():
                        continue
                    v = c["visible"]
                    y, x = np.round(c["points_yx"][v]).astype(int).T
                    y, x = y.clip(0, m_ - 1), x.clip(0, n_ - 1)
                    d = c["diameter_mm"][v]
                    hit = a.labels[y, x] > 0
                    r = a.diameter_mm[y[hit], x[hit]] / d[hit]
                    for lo, hi in zip(BINS_MM[:-1], BINS_MM[1:]):
                        sel = (d[hit] >= lo) & (d[hit] < hi) & np.isfinite(r)
                        s["wratio"].setdefault((lo, hi), []).append(r[sel])
                # the blur correction at the engine's points on this class's true pixels
                for (pts, seen, k), (psf, final) in zip(rec.calls[:1], hm_calls[:1]):
                    py, px = np.round(pts).astype(int).T
                    py, px = py.clip(0, m_ - 1), px.clip(0, n_ - 1)
                    on = (ph.labels[py, px] == code) & np.isfinite(seen)
                    dtrue = ph.diameter_mm[py, px][on] * ppm
                    ws = seen[on]
                    b2 = 8 * np.log(2) * (float(psf) ** 2 + 1 / 6)
                    quad = np.sqrt(np.maximum(ws * ws - b2, 0.25))
                    taken = final[on]
                    # the share of the quadrature's narrowing taken
                    kk = (ws - taken) / np.maximum(ws - quad, 1e-9)
                    dmm = dtrue / ppm
                    for lo, hi in zip(BINS_MM[:-1], BINS_MM[1:]):
                        sel = (dmm >= lo) & (dmm < hi) & (dtrue > 0)
                        s["seen"].setdefault((lo, hi), []).append(ws[sel] / dtrue[sel])
                        s["quad"].setdefault((lo, hi), []).append(quad[sel] / dtrue[sel])
                        s["taken"].setdefault((lo, hi), []).append(taken[sel] / dtrue[sel])
                        s["weight"].setdefault((lo, hi), []).append(kk[sel])
        print(f"photo {i} seed {args.seed0 + i} type {1 + i % 6} {ph.px_per_mm:.1f} px/mm done", flush=True)
    dm.half_max_widths = original
    fk.blur_shape = rec.kernel
    for cls in classes:
        print(f"\n### {cls} (types {args.types})")
        print("| mode | truth mm2 | visible | painted | on same class | on other class | edge (<= 3 px) | far | far: near ignore | far: on hair, naevus.. | area err % median |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for mode in modes:
            s = acc[(mode, cls)]
            med = np.median(s["err"]) if s["err"] else float("nan")
            print(f"| {mode} | {s['truth']:.1f} | {s['truth_vis']:.1f} | {s['paint']:.1f} | {s['same']:.1f} | {s['other']:.1f} "
                  f"| {s['edge']:.1f} | {s['far']:.1f} | {s['far_ign']:.1f} | {s['far_conf']:.1f} | {med:+.1f} |")  # fmt: skip
        print("\n| true width (mm) | " + " | ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(BINS_MM[:-1], BINS_MM[1:])) + " |")
        print("|---|" + "---|" * (len(BINS_MM) - 1))
        for mode in modes:
            s = acc[(mode, cls)]
            print(_bin_table(f"{mode}: painted width / true", s["wratio"]))
        # the blur correction's tables come from blur_shape's calls: only the shape mode makes them
        for mode in [m for m in modes if m == "shape"]:
            s = acc[(mode, cls)]
            print(_bin_table("FWHM as seen / true", s["seen"]))
            print(_bin_table("quadrature / true", s["quad"]))
            print(_bin_table("taken (shape) / true", s["taken"]))
            print(_bin_table("share of the quadrature taken", s["weight"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

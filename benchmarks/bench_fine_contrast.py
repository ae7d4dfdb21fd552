"""How much of a vessel's colour contrast (ΔE00) the comparison's reading finds, by width, with and
without the JPEG round trip: where the finest vessels' contrast goes (issue 6, session 12).

For generated photos (``veinscope.synth.generate_photo``, the same seed rendered with
``jpeg_quality`` 92 (4:2:0, as phones store), 100 (4:2:0, no quantisation loss to speak of)
and None (no JPEG): the camera's noise is the same), the blood contrast is read at the truth's
visible centreline points as ``compare`` reads it (chromophore maps blurred 1 px, the strongest
blood pixel within one pixel, the smoothing gain by the truth's visible width and the engine's
default PSF; "smooth 0": the maps unblurred, no gain) and divided by the truth's ΔE00 (the
vessel as the photo shows it before noise and JPEG). Median ratio per width bin (px).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_fine_contrast.py --n 3
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from veinscope.chromophores import CHROMOPHORE_DIRECTIONS, OD_LUT, skin_optics
from veinscope.compare import _Along, _smoothing_gain, delta_e_of_od
from veinscope.synth import generate_photo

_BINS = (0, 1.5, 2, 2.5, 3, 4, 6, 10, 40)
_PSF = 0.8  # veinscope.analyze's default psf_sigma_px


def _read(rgb, skin, ys, xs, diam_px, ppm, smooth):
    o = skin_optics(rgb, skin=skin, background_px=max(40.0, 20.0 * ppm))
    mp = o.chromophore_maps()
    hb, ven = mp["haemoglobin"], mp["venous"]
    if smooth > 0:
        hb, ven = cv2.GaussianBlur(hb, (0, 0), smooth), cv2.GaussianBlur(ven, (0, 0), smooth)
    blood = hb + ven
    m, n = blood.shape
    best = np.full(len(ys), -np.inf)
    bh, bv = np.zeros(len(ys)), np.zeros(len(ys))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            yy, xx = np.clip(ys + dy, 0, m - 1), np.clip(xs + dx, 0, n - 1)
            v = blood[yy, xx]
            b = v > best
            best[b], bh[b], bv[b] = v[b], hb[yy, xx][b], ven[yy, xx][b]
    g = 1.0
    if smooth > 0:  # each point its own vessel: no averaging along
        g = _smoothing_gain(diam_px, _Along(np.arange(len(ys)) * 100, np.zeros(len(ys), int), 1), psf_px=_PSF, smooth_px=smooth)
    bg = OD_LUT[rgb[ys, xs]].astype(np.float64) - o.relative_od_at(np.c_[ys, xs])
    d = np.maximum(bh * g, 0)[:, None] * CHROMOPHORE_DIRECTIONS["haemoglobin"] + np.maximum(bv * g, 0)[:, None] * CHROMOPHORE_DIRECTIONS["venous"]
    return delta_e_of_od(bg, d)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--seed0", type=int, default=300)
    args = ap.parse_args(argv)
    out: dict = {}
    for seed in range(args.seed0, args.seed0 + args.n):
        ppm = float(np.random.default_rng(seed).uniform(8, 13))
        photos = {q: generate_photo(seed=seed, size=(800, 600), px_per_mm=ppm, jpeg_quality=q, card=False) for q in (92, 100, None)}
        p = photos[None]
        ys, xs, dpx, tde = [], [], [], []
        for c in p.centrelines:
            pts = np.rint(c["points_yx"][c["visible"]]).astype(int)
            ok = (pts[:, 0] >= 0) & (pts[:, 0] < 600) & (pts[:, 1] >= 0) & (pts[:, 1] < 800)
            ys.append(pts[ok, 0])
            xs.append(pts[ok, 1])
            dpx.append(c["diameter_mm"][c["visible"]][ok] * ppm)
            tde.append(c["delta_e"][c["visible"]][ok])
        ys, xs, dpx, tde = map(np.concatenate, (ys, xs, dpx, tde))
        for q, ph in photos.items():
            for sm in (1.0, 0.0):
                de = _read(ph.rgb, p.skin_mask, ys, xs, dpx, ppm, sm)
                out.setdefault((q, sm), []).append((dpx, de / np.maximum(tde, 1e-6)))
    print("measured / true ΔE00 at visible centreline points, median per visible width (px):")
    print(f"{'':>22}" + " ".join(f"{f'{a:g}-{b:g}':>6}" for a, b in zip(_BINS[:-1], _BINS[1:])))
    for (q, sm), parts in out.items():
        d = np.concatenate([a for a, _ in parts])
        r = np.concatenate([b for _, b in parts])
        cells = []
        for a, b in zip(_BINS[:-1], _BINS[1:]):
            s = (d >= a) & (d < b)
            cells.append(f"{np.median(r[s]):6.2f}" if s.sum() > 10 else f"{'-':>6}")
        print(f"jpeg {str(q):>4}, smooth {sm:g} px: " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

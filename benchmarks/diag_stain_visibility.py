"""Is the generator's staining truth what the photo shows? (issue 6, session 33)

Each follow-up of a generated series is rendered twice: as generated, and with its stain map
switched off (the same light, camera noise draws and JPEG settings: the stain is the only
difference). Where the two photos differ by ΔE00 >= 2 (both blurred by 1 px, CIELAB of the
8-bit sRGB) is what a careful observer could see of the stain; the truth's ``staining`` mask is
compared with it per follow-up (areas on the photo's own grid, mm² at its scale, and their
intersection over union).

    PYTHONPATH=src .venv/bin/python benchmarks/diag_stain_visibility.py --skin-type 6 --n 6 --seed0 300
    PYTHONPATH=src .venv/bin/python benchmarks/diag_stain_visibility.py --n 12          # the generator's draw
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab

import veinscope.synth as synth


def _lab(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(cv2.GaussianBlur(rgb.astype(np.float32) / 255.0, (0, 0), 1.0))


def series_rows(seed: int, skin_type: int | None, *, sessions: int = 3, size=(800, 600)) -> list[dict]:
    """One row per follow-up with staining in the truth or in the photo."""
    ppm = float(np.random.default_rng(seed).uniform(8, 13))  # as bench_compare's series
    kw = dict(seed=seed, sessions=sessions, size=size, px_per_mm=ppm, skin_type=skin_type)
    with_stain = synth.generate_series(**kw)
    orig = synth._Course.stain_map
    synth._Course.stain_map = lambda self, k, shape, ppm: None
    try:
        without = synth.generate_series(**kw)
    finally:
        synth._Course.stain_map = orig
    rows = []
    for k in range(1, sessions):
        pa, pb = with_stain.photos[k], without.photos[k]
        de = deltaE_ciede2000(_lab(pa.rgb), _lab(pb.rgb), channel_axis=-1)
        seen = (de >= 2.0) & pa.skin_mask
        truth = pa.staining
        if not truth.any() and not seen.any():
            continue
        s2 = pa.px_per_mm**2
        rows.append({
            "case": f"{seed}/{k}", "skin_type": int(with_stain.params["skin_type"]),
            "truth_mm2": float(truth.sum()) / s2, "seen_mm2": float(seen.sum()) / s2,
            "iou": float((truth & seen).sum()) / max(1, int((truth | seen).sum())),
            "de_median_in_truth": float(np.median(de[truth])) if truth.any() else None,
            "truth_under_2_frac": float((de[truth] < 2.0).mean()) if truth.any() else None,
        })
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed0", type=int, default=300)
    ap.add_argument("--skin-type", type=int, choices=range(1, 7), default=None)
    args = ap.parse_args(argv)
    rows = []
    for seed in range(args.seed0, args.seed0 + args.n):
        rows += series_rows(seed, args.skin_type)
    print(f"{'case':>7} {'type':>4} {'truth':>8} {'seen':>8} {'IoU':>5} {'ΔE med':>7} {'<2':>5}")
    for r in rows:
        de = "      -" if r["de_median_in_truth"] is None else f"{r['de_median_in_truth']:7.2f}"
        u2 = "    -" if r["truth_under_2_frac"] is None else f"{r['truth_under_2_frac']:5.2f}"
        print(f"{r['case']:>7} {r['skin_type']:>4} {r['truth_mm2']:8.2f} {r['seen_mm2']:8.2f} {r['iou']:5.2f} {de} {u2}")
    if rows:
        tr = np.array([r["truth_mm2"] for r in rows])
        se = np.array([r["seen_mm2"] for r in rows])
        print(f"\nfollow-ups {len(rows)}: truth {tr.sum():.1f} mm², seen (ΔE00 >= 2) {se.sum():.1f} mm²; median |truth - seen| / seen "
              f"{100 * np.median(np.abs(tr - se) / np.maximum(se, 0.5)):.1f} %; median IoU {np.median([r['iou'] for r in rows]):.2f}; "
              f"truth with nothing seen (< 0.5 mm²): {int(((tr > 0) & (se < 0.5)).sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Accuracy of px/mm and tilt from the calibration card on generated photos.

Run:  .venv/bin/python benchmarks/bench_calibrate.py [--n 60] [--seed 0] [--native 12]

Set A (``--n``): skin from ``veinscope.synth.generate_photo`` (card=False) at a scale drawn in
6-15 px/mm, the card rendered by ``veinscope.card`` and warped on by a pinhole-camera
homography (tilt drawn in 0-30 deg about a random axis, any in-plane rotation, 2x supersampled
area anti-aliasing, linear-light blending), then the whole photo: a light (random gains),
Gaussian blur sigma 0.5-1.5 px (in linear light), Gaussian noise sd 1-3 and a JPEG round
trip at quality 75-95. Truth: ``sqrt(|det J|)`` of the homography at the card centre, and
``arccos(s_min / s_max)`` for the tilt.

Set B (``--native``): photos of the synthetic generator with its own card (its truth
``card["px_per_mm"]``), an independent check of the conventions.

Prints per-photo errors and the summary (median and worst |error| of px/mm, tilt error,
detections), with and without the sub-pixel edge refinement (OpenCV's corners only), from
the same photos in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--native", type=int, default=12)
    a = ap.parse_args()

    from veinscope.calibrate import detect_card
    from veinscope.card import card_photo
    from veinscope.errors import CalibrationError

    rng = np.random.default_rng(a.seed)
    rows = []
    for k in range(a.n):
        ppm = float(rng.uniform(6, 15))
        tilt = float(rng.uniform(0, 30))
        blur = float(rng.uniform(0.5, 1.5))
        noise = float(rng.uniform(1, 3))
        q = int(rng.integers(75, 96))
        light = tuple(float(g) for g in rng.uniform(0.7, 1.1, 3))
        cp = card_photo(seed=1000 + k, px_per_mm=ppm, tilt_deg=tilt, blur_px=blur, noise=noise, jpeg_quality=q, light_rgb=light)
        row = {"k": k, "ppm": cp.px_per_mm, "tilt": cp.tilt_deg, "blur": blur, "noise": noise, "q": q, "shape": cp.rgb.shape[:2]}
        for refine in (True, False):
            t0 = time.perf_counter()
            try:
                cal = detect_card(cp.rgb, refine=refine)
                row[refine] = (100 * (cal.px_per_mm / cp.px_per_mm - 1), cal.tilt_deg - cp.tilt_deg, len(cal.marker_ids))
            except CalibrationError:
                row[refine] = None
            row[f"t{refine}"] = time.perf_counter() - t0
        rows.append(row)
        r = row[True]
        print(
            f"A{k:02d} {row['shape'][1]}x{row['shape'][0]} ppm {row['ppm']:6.2f} tilt {row['tilt']:5.1f} blur {blur:.2f} noise {noise:.1f} q{q}: "
            + ("NOT FOUND" if r is None else f"err {r[0]:+.3f} % (opencv {row[False][0]:+.3f} %) tilt err {r[1]:+.2f} deg markers {r[2]}"),
            flush=True,
        )

    native = []
    if a.native:
        from veinscope.synth import generate_photo

        for k in range(a.native):
            ppm = float(rng.uniform(6, 15))
            size = (int(rng.integers(1800, 3000)), 0)
            size = (size[0], int(size[0] * 0.75))
            sp = generate_photo(seed=2000 + k, size=size, px_per_mm=ppm)
            card = getattr(sp, "card", None)
            if not card:
                print(f"B{k:02d} generator placed no card (view too small for it)")
                continue
            try:
                cal = detect_card(sp.rgb)
                e = 100 * (cal.px_per_mm / card["px_per_mm"] - 1)
            except CalibrationError:
                e = None
            native.append(e)
            print(f"B{k:02d} {size[0]}x{size[1]} ppm {card['px_per_mm']:6.2f}: " + ("NOT FOUND" if e is None else f"err {e:+.3f} %"), flush=True)

    def summary(label, errs, n_total):
        found = [e for e in errs if e is not None]
        ab = np.abs(found) if found else np.array([np.nan])
        print(f"{label}: detected {len(found)}/{n_total}; |px/mm error| median {np.median(ab):.3f} %, p95 {np.percentile(ab, 95):.3f} %, worst {ab.max():.3f} %")

    print()
    summary("A refined (VeinScope)", [r[True][0] if r[True] else None for r in rows], len(rows))
    summary("A OpenCV corners only", [r[False][0] if r[False] else None for r in rows], len(rows))
    tilt_err = [abs(r[True][1]) for r in rows if r[True]]
    if tilt_err:
        print(f"A tilt |error| median {statistics.median(tilt_err):.2f} deg, worst {max(tilt_err):.2f} deg")
    print(f"A detection time median {statistics.median(r['tTrue'] for r in rows):.3f} s (refined), {statistics.median(r['tFalse'] for r in rows):.3f} s (OpenCV only)")
    if native:
        summary("B synthetic generator's own card", native, len(native))
    return 0


if __name__ == "__main__":
    sys.exit(main())
